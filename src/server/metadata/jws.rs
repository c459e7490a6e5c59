//! The MDS3 BLOB's envelope: a JWS in compact serialization (RFC 7515
//! §7.1), `BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature)`,
//! signed by the key of the first certificate of the header's `x5c` chain,
//! which must validate to the configured metadata root (FIDO MDS3 §3.1.7).
//!
//! Accepted `alg` values are those MDS3 uses: ES256 (the signature is the
//! raw 64-byte `r || s` of RFC 7518 §3.4), RS256 and PS256. `x5c` holds
//! standard (not URL-safe) base64 DER certificates, leaf first (RFC 7515
//! §4.1.6). Revocation lists are not fetched (no network at verification
//! time); the chain's validity periods are checked at the caller's time.

use super::MetadataError;
use crate::crypto::{CryptoProvider, HashAlg, RsaPadding};
use crate::server::cert::{ParsedCert, PublicKey};
use crate::server::trust::{TrustVerdict, evaluate};
use base64::Engine;
use serde::Deserialize;

/// The largest BLOB accepted (the real one is a few MiB, icons included).
pub const MAX_BLOB_LEN: usize = 64 * 1024 * 1024;
/// The most certificates an `x5c` header may carry.
const MAX_X5C: usize = 8;

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    x5c: Vec<String>,
}

/// A JWS whose signature and chain have been verified: its payload bytes and
/// the chain it was signed with (leaf first).
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The `x5c` chain, DER, leaf first.
    pub chain: Vec<Vec<u8>>,
}

/// Verify a compact JWS against `roots` at `now_unix`.
pub fn verify_compact(
    provider: &dyn CryptoProvider,
    jws: &[u8],
    roots: &[Vec<u8>],
    now_unix: i64,
) -> Result<VerifiedJws, MetadataError> {
    if jws.len() > MAX_BLOB_LEN {
        return Err(MetadataError::TooLarge);
    }
    let text = std::str::from_utf8(jws).map_err(|_| MetadataError::Malformed("the BLOB is not UTF-8".into()))?;
    let text = text.trim();
    let mut parts = text.split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(MetadataError::Malformed("not a compact JWS (three dot-separated parts)".into()));
    };
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header_bytes = url.decode(h64).map_err(|_| MetadataError::Malformed("header is not base64url".into()))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|e| MetadataError::Malformed(format!("header is not a JOSE header: {e}")))?;
    let signature = url.decode(s64).map_err(|_| MetadataError::Malformed("signature is not base64url".into()))?;
    if header.x5c.is_empty() {
        return Err(MetadataError::Malformed("the header has no x5c chain".into()));
    }
    if header.x5c.len() > MAX_X5C {
        return Err(MetadataError::Malformed("the x5c chain is too long".into()));
    }
    let std_b64 = base64::engine::general_purpose::STANDARD;
    let chain: Vec<Vec<u8>> = header
        .x5c
        .iter()
        .map(|c| std_b64.decode(c).map_err(|_| MetadataError::Malformed("an x5c entry is not base64".into())))
        .collect::<Result<_, _>>()?;
    match evaluate(provider, &chain, roots, now_unix) {
        TrustVerdict::Trusted { .. } => {}
        TrustVerdict::Untrusted(e) => return Err(MetadataError::Untrusted(e.to_string())),
        TrustVerdict::SelfOrNone => return Err(MetadataError::Untrusted("no chain".into())),
    }
    let leaf_der = chain.first().ok_or_else(|| MetadataError::Malformed("empty x5c".into()))?;
    let leaf = ParsedCert::parse(leaf_der).map_err(|e| MetadataError::Malformed(format!("x5c leaf: {e}")))?;
    let key = leaf.public_key().map_err(|e| MetadataError::Malformed(format!("x5c leaf key: {e}")))?;
    let signing_input_len = h64.len() + 1 + p64.len();
    let signing_input = text.get(..signing_input_len).unwrap_or_default().as_bytes();
    let ok = match (header.alg.as_str(), &key) {
        ("ES256", PublicKey::Ec { curve: crate::crypto::EcCurve::P256, point }) => {
            let der = raw_ecdsa_to_der(&signature, 32).ok_or(MetadataError::BadSignature)?;
            provider.verify_ecdsa(crate::crypto::EcCurve::P256, HashAlg::Sha256, point, signing_input, &der)
        }
        ("RS256", PublicKey::Rsa { n, e }) => {
            provider.verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha256, n, e, signing_input, &signature)
        }
        ("PS256", PublicKey::Rsa { n, e }) => {
            provider.verify_rsa(RsaPadding::Pss, HashAlg::Sha256, n, e, signing_input, &signature)
        }
        ("ES256" | "RS256" | "PS256", _) => {
            return Err(MetadataError::Malformed("the signer's key does not fit the header's alg".into()));
        }
        (other, _) => return Err(MetadataError::UnsupportedAlgorithm(other.chars().take(16).collect())),
    };
    ok.map_err(|_| MetadataError::BadSignature)?;
    let payload = url.decode(p64).map_err(|_| MetadataError::Malformed("payload is not base64url".into()))?;
    Ok(VerifiedJws { payload, chain })
}

/// A raw `r || s` ECDSA signature (each `len` bytes) as an ASN.1 DER
/// `Ecdsa-Sig-Value`.
pub fn raw_ecdsa_to_der(raw: &[u8], len: usize) -> Option<Vec<u8>> {
    if raw.len() != 2 * len {
        return None;
    }
    let int = |b: &[u8]| {
        let i = b.iter().position(|&x| x != 0).unwrap_or(b.len().saturating_sub(1));
        let mut v = b.get(i..).unwrap_or_default().to_vec();
        if v.is_empty() {
            v.push(0);
        }
        if v.first().is_some_and(|&f| f & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let (r, s) = raw.split_at(len);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() < 0x80 {
        out.push(body.len() as u8);
    } else {
        out.extend([0x81, body.len() as u8]);
    }
    out.extend(body);
    Some(out)
}

/// An ASN.1 DER `Ecdsa-Sig-Value` as raw `r || s` (each `len` bytes), the
/// JWS form (for tests and tools that sign BLOBs).
pub fn der_ecdsa_to_raw(der: &[u8], len: usize) -> Option<Vec<u8>> {
    use crate::server::cert::Tlv;
    let seq = Tlv::parse_all(der).filter(|t| t.tag == 0x30)?;
    let (r, rest) = Tlv::parse(seq.content).filter(|(t, _)| t.tag == 0x02)?;
    let s = Tlv::parse_all(rest).filter(|t| t.tag == 0x02)?;
    let mut out = Vec::with_capacity(2 * len);
    for v in [r.content, s.content] {
        let i = v.iter().position(|&x| x != 0).unwrap_or(v.len());
        let v = v.get(i..).unwrap_or_default();
        if v.len() > len {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, len - v.len()));
        out.extend_from_slice(v);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signature_forms_round_trip() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero in DER
        raw[31] = 1;
        raw[63] = 7; // s = 7
        let der = raw_ecdsa_to_der(&raw, 32).unwrap();
        assert_eq!(der_ecdsa_to_raw(&der, 32).unwrap(), raw);
        assert!(raw_ecdsa_to_der(&raw[..63], 32).is_none());
    }

    #[test]
    fn malformed_envelopes_are_refused_not_panicking() {
        let p = crate::crypto::default_provider();
        for bad in [&b""[..], b"a.b", b"a.b.c.d", b"\xff\xfe", b"e30.e30.", b"!!.!!.!!"] {
            assert!(verify_compact(p, bad, &[], 0).is_err());
        }
    }
}

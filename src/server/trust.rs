//! Trust decisions for attestation certificate chains: path validation from
//! the x5c chain (leaf first) to caller-supplied trust anchors at a
//! caller-given time.
//!
//! Each certificate must be signed by the next, its issuer name must equal the
//! next certificate's subject, every issuer in the chain must be a CA
//! (basicConstraints CA=true, keyUsage keyCertSign when keyUsage is present,
//! pathLenConstraint respected), and every certificate on the path, anchor
//! included, must be valid at `now_unix`. Anchors are trusted by the caller's
//! choice: one that issues a chain certificate must not say CA=false or lack
//! keyCertSign, but need not carry basicConstraints (old v1 roots). Revocation
//! is not checked. The path ends at an anchor in one of two ways: a
//! certificate of the chain *is* an anchor (byte-equal, or the same subject
//! and public key: RFC 5280 makes an anchor a name and a key), or it is
//! signed by one. A chain that reaches no anchor is [`TrustVerdict::Untrusted`], never
//! valid.

use crate::crypto::CryptoProvider;
use crate::server::attestation::{AttestationType, VerifiedAttestation};
use crate::server::cert::{ParsedCert, PublicKey, oid};
use const_oid::ObjectIdentifier;

/// The outcome of path validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustVerdict {
    /// The chain validates up to the anchor at this index of the anchor list.
    Trusted {
        /// Index into the caller's anchors.
        anchor_index: usize,
    },
    /// The chain does not validate to any anchor; the reason is the first
    /// failure found.
    Untrusted(TrustError),
    /// There is no chain to judge (attestation "none" or self attestation).
    SelfOrNone,
}

impl TrustVerdict {
    /// True only for [`TrustVerdict::Trusted`].
    pub fn is_trusted(&self) -> bool {
        matches!(self, TrustVerdict::Trusted { .. })
    }
}

/// Why a chain is untrusted. Each variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A chain certificate or anchor could not be parsed.
    #[error("certificate {index} cannot be parsed: {reason}")]
    Malformed {
        /// Position in the chain (anchors: chain length + anchor index).
        index: usize,
        /// Parser message.
        reason: String,
    },
    /// A certificate is outside its validity window at the verification time.
    #[error("certificate {0} is not valid at the verification time")]
    Expired(usize),
    /// A certificate's issuer name is not the next certificate's subject.
    #[error("certificate {0}'s issuer is not the subject of the next certificate")]
    NameChain(usize),
    /// A certificate's signature does not verify under the next certificate's key.
    #[error("certificate {0}'s signature does not verify under its issuer's key")]
    BadSignature(usize),
    /// An issuing certificate is not a CA.
    #[error("certificate {0} issues certificates but is not a CA")]
    NotCa(usize),
    /// The chain validates internally but reaches no trust anchor.
    #[error("the chain does not reach a trust anchor")]
    NoAnchor,
    /// Trust-anchor PEM text could not be read.
    #[error("trust anchor PEM is malformed: {0}")]
    Pem(&'static str),
    /// A SHA-1 signature or an RSA key under 2048 bits, without the legacy option.
    #[error("certificate {0} uses SHA-1 or an RSA key under 2048 bits")]
    WeakAlgorithm(usize),
    /// A critical extension the validator does not process.
    #[error("certificate {index} has an unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// Position in the chain.
        index: usize,
        /// The extension's OID.
        oid: String,
    },
}

impl TrustError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            TrustError::Malformed { .. } => "trust_certificate_malformed",
            TrustError::Expired(_) => "trust_certificate_expired",
            TrustError::NameChain(_) => "trust_name_chain_broken",
            TrustError::BadSignature(_) => "trust_bad_signature",
            TrustError::NotCa(_) => "trust_issuer_not_ca",
            TrustError::NoAnchor => "trust_no_anchor",
            TrustError::Pem(_) => "trust_anchor_pem_malformed",
            TrustError::WeakAlgorithm(_) => "trust_weak_algorithm",
            TrustError::UnknownCriticalExtension { .. } => "trust_unknown_critical_extension",
        }
    }
}

/// How strict path validation is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainOptions {
    /// Accept SHA-1 signatures and RSA keys under 2048 bits (legacy TPMs).
    pub allow_legacy: bool,
}

/// Extensions this validator processes, or that carry no constraint on the
/// path: a critical extension outside this list refuses the certificate.
const UNDERSTOOD_EXTENSIONS: [ObjectIdentifier; 8] = [
    oid::BASIC_CONSTRAINTS,
    oid::KEY_USAGE,
    oid::EXT_KEY_USAGE,
    oid::SUBJECT_ALT_NAME,
    oid::FIDO_AAGUID,
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.32"), // certificatePolicies (no policy is required)
];

fn rsa_bits(n: &[u8]) -> usize {
    let i = n.iter().position(|&b| b != 0).unwrap_or(n.len());
    let n = n.get(i..).unwrap_or_default();
    n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize)
}

/// An RSA key under 2048 bits.
fn weak_key(cert: &ParsedCert) -> bool {
    matches!(cert.public_key(), Ok(PublicKey::Rsa { n, .. }) if rsa_bits(&n) < 2048)
}

/// SHA-1 signed, or an RSA key under 2048 bits.
fn weak(cert: &ParsedCert) -> bool {
    let alg = cert.cert.signature_algorithm.oid;
    alg == oid::ECDSA_SHA1 || alg == oid::RSA_SHA1 || weak_key(cert)
}

fn unknown_critical(cert: &ParsedCert) -> Option<String> {
    let exts = cert.cert.tbs_certificate.extensions.as_ref()?;
    exts.iter().find(|e| e.critical && !UNDERSTOOD_EXTENSIONS.contains(&e.extn_id)).map(|e| e.extn_id.to_string())
}

/// Is this chain certificate the anchor itself? The same bytes, or the same
/// subject with the same public key (RFC 5280 §6.1.1: a trust anchor is a
/// name and a key; a re-issued self-signed certificate of that key is the
/// same anchor).
fn is_anchor_cert(anchor: &ParsedCert, cert: &ParsedCert) -> bool {
    use der::Encode;
    if anchor.der == cert.der {
        return true;
    }
    let spki = |c: &ParsedCert| c.cert.tbs_certificate.subject_public_key_info.to_der().ok();
    anchor.subject_der() == cert.subject_der() && spki(anchor).is_some() && spki(anchor) == spki(cert)
}

fn issues(provider: &dyn CryptoProvider, child: &ParsedCert, issuer: &ParsedCert) -> bool {
    child.issuer_der() == issuer.subject_der()
        && issuer.public_key().is_ok_and(|k| child.verify_signed_by(provider, &k).is_ok())
}

/// May this chain certificate issue certificates, with `below` intermediate
/// CA certificates between it and the leaf?
fn may_issue(cert: &ParsedCert, below: usize) -> bool {
    matches!(cert.basic_constraints_ca(), Ok(Some(true)))
        && cert.key_cert_sign() != Some(false)
        && cert.path_len_constraint().is_none_or(|p| below <= usize::from(p))
}

/// May this anchor issue certificates? Anchors without basicConstraints are accepted.
fn anchor_may_issue(anchor: &ParsedCert, below: usize) -> bool {
    !matches!(anchor.basic_constraints_ca(), Ok(Some(false)) | Err(_))
        && anchor.key_cert_sign() != Some(false)
        && anchor.path_len_constraint().is_none_or(|p| below <= usize::from(p))
}

/// The DER certificates of every `CERTIFICATE` block in PEM text, in order
/// (for loading trust anchors). Each must parse as an X.509 certificate.
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, TrustError> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let after = rest.get(start + BEGIN.len()..).unwrap_or_default();
        let end = after.find(END).ok_or(TrustError::Pem("BEGIN without END"))?;
        let body: String = after.get(..end).unwrap_or_default().chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| TrustError::Pem("not base64"))?;
        ParsedCert::parse(&der).map_err(|_| TrustError::Pem("not an X.509 certificate"))?;
        out.push(der);
        rest = after.get(end + END.len()..).unwrap_or_default();
    }
    if out.is_empty() {
        return Err(TrustError::Pem("no CERTIFICATE block"));
    }
    Ok(out)
}

/// The trust verdict for a verified attestation statement: none and self
/// attestation have no chain to judge ([`TrustVerdict::SelfOrNone`]);
/// otherwise the statement's chain is validated against `anchors`.
pub fn evaluate_attestation(
    provider: &dyn CryptoProvider,
    verified: &VerifiedAttestation,
    anchors: &[Vec<u8>],
    now_unix: i64,
) -> TrustVerdict {
    evaluate_attestation_with(provider, verified, anchors, now_unix, ChainOptions::default())
}

/// [`evaluate_attestation`] with explicit [`ChainOptions`].
pub fn evaluate_attestation_with(
    provider: &dyn CryptoProvider,
    verified: &VerifiedAttestation,
    anchors: &[Vec<u8>],
    now_unix: i64,
    options: ChainOptions,
) -> TrustVerdict {
    match verified.attestation_type {
        AttestationType::None | AttestationType::SelfAttestation => TrustVerdict::SelfOrNone,
        _ => evaluate_with(provider, &verified.chain, anchors, now_unix, options),
    }
}

/// Validate `chain` (DER, leaf first) against `anchors` (DER root or
/// intermediate certificates) at `now_unix`. An empty chain gives
/// [`TrustVerdict::SelfOrNone`].
pub fn evaluate(provider: &dyn CryptoProvider, chain: &[Vec<u8>], anchors: &[Vec<u8>], now_unix: i64) -> TrustVerdict {
    evaluate_with(provider, chain, anchors, now_unix, ChainOptions::default())
}

/// [`evaluate`] with explicit [`ChainOptions`].
pub fn evaluate_with(
    provider: &dyn CryptoProvider,
    chain: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now_unix: i64,
    options: ChainOptions,
) -> TrustVerdict {
    if chain.is_empty() {
        return TrustVerdict::SelfOrNone;
    }
    let mut certs = Vec::with_capacity(chain.len());
    for (index, der) in chain.iter().enumerate() {
        match ParsedCert::parse(der) {
            Ok(c) => certs.push(c),
            Err(e) => return TrustVerdict::Untrusted(TrustError::Malformed { index, reason: e.to_string() }),
        }
    }
    // Anchors that cannot be parsed are skipped: a bad anchor must not make
    // another anchor's chain fail, and it can never make a chain trusted.
    let parsed_anchors: Vec<(usize, ParsedCert)> =
        anchors.iter().enumerate().filter_map(|(i, a)| ParsedCert::parse(a).ok().map(|c| (i, c))).collect();

    for (k, cert) in certs.iter().enumerate() {
        if cert.check_validity(now_unix).is_err() {
            return TrustVerdict::Untrusted(TrustError::Expired(k));
        }
        if let Some(oid) = unknown_critical(cert) {
            return TrustVerdict::Untrusted(TrustError::UnknownCriticalExtension { index: k, oid });
        }
        // An anchor is trusted by choice, whatever it is signed with; every
        // certificate below it must be strong.
        let is_anchor = parsed_anchors.iter().any(|(_, a)| is_anchor_cert(a, cert));
        if !options.allow_legacy && !is_anchor && weak(cert) {
            return TrustVerdict::Untrusted(TrustError::WeakAlgorithm(k));
        }
        // Does the path end here? Either this certificate is an anchor, or an
        // anchor issued it.
        if let Some((i, _)) = parsed_anchors.iter().find(|(_, a)| is_anchor_cert(a, cert)) {
            return TrustVerdict::Trusted { anchor_index: *i };
        }
        if let Some((i, _)) = parsed_anchors.iter().find(|(_, a)| {
            !is_anchor_cert(a, cert)
                && (options.allow_legacy || !weak_key(a))
                && anchor_may_issue(a, k)
                && a.check_validity(now_unix).is_ok()
                && issues(provider, cert, a)
        }) {
            return TrustVerdict::Trusted { anchor_index: *i };
        }
        // Otherwise the next chain certificate must issue this one.
        let Some(next) = certs.get(k + 1) else {
            return TrustVerdict::Untrusted(TrustError::NoAnchor);
        };
        if cert.issuer_der() != next.subject_der() {
            return TrustVerdict::Untrusted(TrustError::NameChain(k));
        }
        if !may_issue(next, k) {
            return TrustVerdict::Untrusted(TrustError::NotCa(k + 1));
        }
        if !options.allow_legacy && weak(next) {
            return TrustVerdict::Untrusted(TrustError::WeakAlgorithm(k + 1));
        }
        let ok = next.public_key().is_ok_and(|key| cert.verify_signed_by(provider, &key).is_ok());
        if !ok {
            return TrustVerdict::Untrusted(TrustError::BadSignature(k));
        }
    }
    TrustVerdict::Untrusted(TrustError::NoAnchor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::attestation::test_support::fixture;

    const W3C_ROOT: &str = include_str!("attestation/testdata/w3c_attestation_ca.hex");

    fn root() -> Vec<u8> {
        hex::decode(W3C_ROOT.trim()).unwrap()
    }

    #[test]
    fn chain_to_anchor() {
        let f = fixture("w3c/packed.ES256");
        let chain = vec![f.leaf()];
        for p in crate::crypto::all_providers() {
            assert_eq!(evaluate(p, &chain, &[root()], f.time), TrustVerdict::Trusted { anchor_index: 0 });
            assert_eq!(
                evaluate(p, &chain, &[vec![1, 2, 3], root()], f.time),
                TrustVerdict::Trusted { anchor_index: 1 }
            );
            assert_eq!(evaluate(p, &chain, &[], f.time), TrustVerdict::Untrusted(TrustError::NoAnchor));
            assert_eq!(evaluate(p, &[], &[root()], f.time), TrustVerdict::SelfOrNone);
            assert_eq!(evaluate(p, &chain, &[root()], 0), TrustVerdict::Untrusted(TrustError::Expired(0)));
            // A leaf that is itself an anchor, and a chain that ends in the anchor.
            assert_eq!(evaluate(p, &chain, &chain, f.time), TrustVerdict::Trusted { anchor_index: 0 });
            let with_root = vec![f.leaf(), root()];
            assert_eq!(evaluate(p, &with_root, &[root()], f.time), TrustVerdict::Trusted { anchor_index: 0 });
            // An unrelated anchor does not help.
            let other = fixture("real/tpm-rs1").leaf();
            assert!(!evaluate(p, &chain, &[other], f.time).is_trusted());
        }
    }

    #[test]
    fn multi_certificate_chain() {
        let f = fixture("real/android-key-pixel8a");
        let chain: Vec<Vec<u8>> = match f.obj.att_stmt.get_text("x5c") {
            Some(crate::proto::cbor::Value::Array(a)) => {
                a.iter().filter_map(|c| c.as_bytes().map(<[u8]>::to_vec)).collect()
            }
            _ => panic!("x5c"),
        };
        assert!(chain.len() >= 3, "fixture has a leaf, intermediates and a root");
        let last = chain.last().cloned().unwrap();
        let middle = chain[1].clone();
        for p in crate::crypto::all_providers() {
            let n = chain.len() - 1;
            assert_eq!(
                evaluate(p, &chain, std::slice::from_ref(&last), f.time),
                TrustVerdict::Trusted { anchor_index: 0 }
            );
            // An intermediate as the anchor cuts the path short.
            assert_eq!(
                evaluate(p, &chain, std::slice::from_ref(&middle), f.time),
                TrustVerdict::Trusted { anchor_index: 0 }
            );
            // Without the last certificate the anchor still issues the one before it.
            assert_eq!(
                evaluate(p, &chain[..n], std::slice::from_ref(&last), f.time),
                TrustVerdict::Trusted { anchor_index: 0 }
            );
            // Out of order: names no longer chain.
            let mut swapped = chain.clone();
            swapped.swap(1, 2);
            assert!(matches!(evaluate(p, &swapped, std::slice::from_ref(&last), f.time), TrustVerdict::Untrusted(_)));
            // A missing intermediate.
            let gap = [chain[0].clone(), last.clone()];
            assert_eq!(
                evaluate(p, &gap, std::slice::from_ref(&last), f.time),
                TrustVerdict::Untrusted(TrustError::NameChain(0))
            );
        }
    }

    #[test]
    fn pem_anchors() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(root());
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let pem = format!("junk\n-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"));
        assert_eq!(certificates_from_pem(&pem).unwrap(), vec![root()]);
        assert_eq!(certificates_from_pem(&format!("{pem}{pem}")).unwrap().len(), 2);
        assert_eq!(certificates_from_pem("").unwrap_err().code(), "trust_anchor_pem_malformed");
        assert!(certificates_from_pem("-----BEGIN CERTIFICATE-----\nAAAA").is_err());
        assert!(certificates_from_pem("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err());
        assert!(certificates_from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err());
    }

    #[test]
    fn attestation_level_verdicts() {
        let p = crate::crypto::default_provider();
        let f = fixture("w3c/packed.ES256");
        let v = f.verify().unwrap();
        assert_eq!(evaluate_attestation(p, &v, &[root()], f.time), TrustVerdict::Trusted { anchor_index: 0 });
        assert!(!evaluate_attestation(p, &v, &[], f.time).is_trusted());
        let s = fixture("w3c/packed-self.ES256").verify().unwrap();
        assert_eq!(evaluate_attestation(p, &s, &[root()], f.time), TrustVerdict::SelfOrNone);
    }

    #[test]
    fn tampered_certificates_are_untrusted() {
        let f = fixture("w3c/packed.ES256");
        let mut leaf = f.leaf();
        if let Some(b) = leaf.last_mut() {
            *b ^= 1;
        }
        for p in crate::crypto::all_providers() {
            assert!(!evaluate(p, &[leaf.clone()], &[root()], f.time).is_trusted());
            assert!(matches!(
                evaluate(p, &[vec![0x30, 0x00]], &[root()], f.time),
                TrustVerdict::Untrusted(TrustError::Malformed { index: 0, .. })
            ));
            // The leaf cannot vouch for the root: order matters and the issuer must be a CA.
            let reversed = vec![root(), f.leaf()];
            assert!(!evaluate(p, &reversed, &[], f.time).is_trusted());
            // Two leaves: the second is no CA and did not sign the first.
            let two = vec![f.leaf(), fixture("w3c/fido-u2f.ES256").leaf()];
            assert!(!evaluate(p, &two, &[], f.time).is_trusted());
        }
    }
}

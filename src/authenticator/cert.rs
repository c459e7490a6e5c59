//! The attestation certificates of the software authenticator, generated at
//! first start: a self-signed attestation root CA and a batch certificate
//! signed by it, both ECDSA P-256 / SHA-256, written with a small DER encoder.
//!
//! The batch certificate meets the packed-attestation requirements of
//! WebAuthn L3 §8.2.1: version 3; subject C, O, OU = "Authenticator
//! Attestation", CN; basic constraints CA = false (critical); the
//! id-fido-gen-ce-aaguid extension (1.3.6.1.4.1.45724.1.1.4, not critical)
//! holding the AAGUID.

use zeroize::Zeroizing;

use super::state::{AttestationMaterial, Bytes, Secret};
use crate::crypto::{CryptoError, CryptoProvider};

fn len_bytes(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else if n <= 0xff {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(len_bytes(content.len()));
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

const OID_ECDSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_C: &[u8] = &[0x55, 0x04, 0x06];
const OID_O: &[u8] = &[0x55, 0x04, 0x0A];
const OID_OU: &[u8] = &[0x55, 0x04, 0x0B];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x0F];
const OID_FIDO_AAGUID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0xE5, 0x1C, 0x01, 0x01, 0x04];

fn name(cn: &str) -> Vec<u8> {
    let rdn = |oid: &[u8], tag: u8, v: &str| tlv(0x31, &seq(&[tlv(0x06, oid), tlv(tag, v.as_bytes())]));
    seq(&[
        rdn(OID_C, 0x13, "US"),
        rdn(OID_O, 0x0C, "hwkey"),
        rdn(OID_OU, 0x0C, "Authenticator Attestation"),
        rdn(OID_CN, 0x0C, cn),
    ])
}

fn extension(oid: &[u8], critical: bool, value: Vec<u8>) -> Vec<u8> {
    let mut parts = vec![tlv(0x06, oid)];
    if critical {
        parts.push(vec![0x01, 0x01, 0xFF]);
    }
    parts.push(tlv(0x04, &value));
    seq(&parts)
}

fn serial(provider: &dyn CryptoProvider) -> Result<Vec<u8>, CryptoError> {
    let mut s = provider.random_bytes(16)?;
    s[0] = (s[0] & 0x7f) | 0x01;
    Ok(tlv(0x02, &s))
}

fn sign_cert(provider: &dyn CryptoProvider, tbs: Vec<u8>, issuer_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let sig = provider.p256_sign(issuer_key, &tbs)?;
    let mut bits = vec![0u8];
    bits.extend(sig);
    Ok(seq(&[tbs, seq(&[tlv(0x06, OID_ECDSA_SHA256)]), tlv(0x03, &bits)]))
}

#[allow(clippy::too_many_arguments)]
fn tbs(
    provider: &dyn CryptoProvider,
    issuer_cn: &str,
    subject_cn: &str,
    public_point: &[u8],
    extensions: Vec<Vec<u8>>,
) -> Result<Vec<u8>, CryptoError> {
    let mut point = vec![0u8];
    point.extend_from_slice(public_point);
    let spki = seq(&[seq(&[tlv(0x06, OID_EC_PUBLIC_KEY), tlv(0x06, OID_P256)]), tlv(0x03, &point)]);
    let validity = seq(&[tlv(0x17, b"250101000000Z"), tlv(0x18, b"20991231235959Z")]);
    Ok(seq(&[
        vec![0xA0, 0x03, 0x02, 0x01, 0x02],
        serial(provider)?,
        seq(&[tlv(0x06, OID_ECDSA_SHA256)]),
        name(issuer_cn),
        validity,
        name(subject_cn),
        spki,
        tlv(0xA3, &seq(&extensions)),
    ]))
}

/// Generate the attestation root and batch certificate for `aaguid`.
pub fn generate_attestation(
    provider: &dyn CryptoProvider,
    aaguid: &[u8; 16],
) -> Result<AttestationMaterial, CryptoError> {
    let root_key = provider.p256_generate()?;
    let root_pub = provider.p256_public(&root_key)?;
    let root_cn = "hwkey Software Authenticator Attestation Root";
    let root_tbs = tbs(
        provider,
        root_cn,
        root_cn,
        &root_pub,
        vec![
            extension(OID_BASIC_CONSTRAINTS, true, seq(&[vec![0x01, 0x01, 0xFF]])),
            extension(OID_KEY_USAGE, true, vec![0x03, 0x02, 0x01, 0x06]),
        ],
    )?;
    let root_cert = sign_cert(provider, root_tbs, &root_key)?;

    let key = provider.p256_generate()?;
    let public = provider.p256_public(&key)?;
    let leaf_tbs = tbs(
        provider,
        root_cn,
        "hwkey Software Authenticator Batch 1",
        &public,
        vec![
            extension(OID_BASIC_CONSTRAINTS, true, seq(&[])),
            extension(OID_KEY_USAGE, true, vec![0x03, 0x02, 0x07, 0x80]),
            extension(OID_FIDO_AAGUID, false, tlv(0x04, aaguid)),
        ],
    )?;
    let cert = sign_cert(provider, leaf_tbs, &root_key)?;
    Ok(AttestationMaterial {
        root_cert: Bytes(root_cert),
        cert: Bytes(cert),
        key: Secret(Zeroizing::new(key.to_vec())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;
    use der::Decode;

    #[test]
    fn certificates_parse_and_chain() {
        let p = default_provider();
        let aaguid = [0xAB; 16];
        let m = generate_attestation(p, &aaguid).unwrap();
        let root = x509_cert::Certificate::from_der(&m.root_cert.0).unwrap();
        let leaf = x509_cert::Certificate::from_der(&m.cert.0).unwrap();
        assert_eq!(leaf.tbs_certificate.version, x509_cert::certificate::Version::V3);
        assert_eq!(leaf.tbs_certificate.issuer, root.tbs_certificate.subject);
        let subject = leaf.tbs_certificate.subject.to_string();
        assert!(subject.contains("OU=Authenticator Attestation"), "{subject}");
        assert!(subject.contains("C=US") && subject.contains("O=hwkey") && subject.contains("CN="));
        let exts = leaf.tbs_certificate.extensions.as_ref().unwrap();
        let aag = exts.iter().find(|e| e.extn_id.to_string() == "1.3.6.1.4.1.45724.1.1.4").unwrap();
        assert!(!aag.critical);
        assert_eq!(aag.extn_value.as_bytes(), &tlv(0x04, &aaguid)[..]);
        // The root signed the leaf.
        let root_point = root.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
        use der::Encode;
        let tbs = leaf.tbs_certificate.to_der().unwrap();
        p.verify_ecdsa(
            crate::crypto::EcCurve::P256,
            crate::crypto::HashAlg::Sha256,
            root_point,
            &tbs,
            leaf.signature.raw_bytes(),
        )
        .unwrap();
    }
}

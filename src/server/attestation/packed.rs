//! The "packed" attestation statement format (WebAuthn L3 §8.2): self
//! attestation by the credential key, or basic/AttCA attestation by an x5c
//! certificate chain whose leaf meets §8.2.1.
//!
//! An x5c statement is reported as [`AttestationType::Basic`]: telling Basic
//! from AttCA needs knowledge from outside the statement (metadata).

use super::{AttestationError, AttestationType, FormatResult, Input, check_aaguid_ext, check_not_ca, sig_err};
use crate::crypto::cose_verify;
use crate::server::cert::{ParsedCert, oid};

/// Verify a "packed" statement.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    input.only_keys(&["alg", "sig", "x5c"])?;
    let alg = input.alg()?;
    let sig = input.bytes("sig")?;
    let cred = input.credential()?;
    let msg = input.signed_data();
    match input.x5c()? {
        Some(chain) => {
            let leaf = super::parse_cert(chain.first().map(Vec::as_slice).unwrap_or_default())?;
            let key = leaf.public_key().map_err(super::cert_err)?;
            key.verify_cose_alg(input.ctx.provider, alg, &msg, sig, false)
                .map_err(|e| sig_err("packed attestation signature by the x5c leaf", e))?;
            check_cert_requirements(&leaf)?;
            check_aaguid_ext(&leaf, &cred.aaguid)?;
            Ok((AttestationType::Basic, chain))
        }
        None => {
            // Self attestation: alg must be the credential key's algorithm
            // (or its RFC 9864 twin: ESP256 for an ES256 key, ...).
            if let Some(key_alg) = cred.public_key.alg()
                && !cose_verify::algorithms_agree(key_alg, alg)
            {
                return Err(AttestationError::Mismatch(format!(
                    "attStmt.alg {alg} differs from the credential key's algorithm {key_alg}"
                )));
            }
            cose_verify::verify_with_alg(input.ctx.provider, alg, &cred.public_key, &msg, sig, false)
                .map_err(|e| sig_err("packed self attestation signature", e))?;
            Ok((AttestationType::SelfAttestation, Vec::new()))
        }
    }
}

/// WebAuthn L3 §8.2.1: version 3; subject C, O, OU = "Authenticator
/// Attestation", CN; basicConstraints CA=false.
pub(crate) fn check_cert_requirements(leaf: &ParsedCert) -> Result<(), AttestationError> {
    let bad = |m: &str| Err(AttestationError::Certificate(format!("packed attestation certificate: {m}")));
    if !leaf.is_v3() {
        return bad("version must be 3");
    }
    let c = leaf.subject_attr(oid::AT_C);
    if c.len() != 1 || c.iter().any(|v| v.len() != 2 || !v.bytes().all(|b| b.is_ascii_alphabetic())) {
        return bad("subject C must be one ISO 3166 country code");
    }
    if leaf.subject_attr(oid::AT_O).iter().all(String::is_empty) {
        return bad("subject O missing");
    }
    let ou = leaf.subject_attr(oid::AT_OU);
    if ou.len() != 1 || ou.first().map(String::as_str) != Some("Authenticator Attestation") {
        return bad("subject OU must be \"Authenticator Attestation\"");
    }
    if leaf.subject_attr(oid::AT_CN).iter().all(String::is_empty) {
        return bad("subject CN missing or not a valid string");
    }
    check_not_ca(leaf, "packed attestation")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{AttestationType, check_aaguid_ext};
    use crate::proto::cbor::Value;
    use crate::server::cert::ParsedCert;

    #[test]
    fn x5c_and_self_verify() {
        for name in ["w3c/packed.ES256", "w3c/packed.RS256", "real/packed-aaguid-ext"] {
            let v = fixture(name).verify().unwrap();
            assert_eq!(v.attestation_type, AttestationType::Basic, "{name}");
            assert!(!v.chain.is_empty());
        }
        let v = fixture("w3c/packed-self.ES256").verify().unwrap();
        assert_eq!((v.attestation_type, v.chain.len()), (AttestationType::SelfAttestation, 0));
    }

    #[test]
    fn flipped_signature_is_bad_signature() {
        for name in ["w3c/packed.ES256", "w3c/packed-self.ES256", "w3c/packed.RS256"] {
            let mut f = fixture(name);
            f.flip_last("sig");
            assert_code(f.verify(), "attestation_bad_signature");
        }
    }

    #[test]
    fn other_client_data_is_bad_signature() {
        let mut f = fixture("w3c/packed.ES256");
        f.cdh[0] ^= 1;
        assert_code(f.verify(), "attestation_bad_signature");
    }

    #[test]
    fn self_attestation_alg_must_match_the_credential() {
        let mut f = fixture("w3c/packed-self.ES256");
        f.set("alg", Value::from(-257i64));
        assert_code(f.verify(), "attestation_mismatch");
    }

    #[test]
    fn x5c_alg_must_fit_the_certificate_key() {
        let mut f = fixture("w3c/packed.ES256");
        f.set("alg", Value::from(-257i64));
        assert_code(f.verify(), "attestation_mismatch");
    }

    #[test]
    fn missing_fields_are_malformed() {
        for key in ["alg", "sig"] {
            let mut f = fixture("w3c/packed.ES256");
            f.remove(key);
            assert_code(f.verify(), "attestation_malformed");
        }
        let mut f = fixture("w3c/packed.ES256");
        f.set("x5c", Value::Array(vec![]));
        assert_code(f.verify(), "attestation_malformed");
        let mut f = fixture("w3c/packed.ES256");
        f.set("ecdaaKeyId", Value::Bytes(vec![1]));
        assert_code(f.verify(), "attestation_malformed");
    }

    #[test]
    fn leaf_requirements_are_enforced() {
        let mut f = fixture("w3c/packed.ES256");
        let leaf = match &mut f.x5c_mut()[0] {
            Value::Bytes(b) => b,
            _ => unreachable!(),
        };
        // The subject's OU (UTF8String of 25 bytes), not the issuer's "... CA".
        replace_bytes(leaf, b"\x0c\x19Authenticator Attestation", b"\x0c\x19Authenticator Attestatioo");
        assert_code(f.verify(), "attestation_certificate_invalid");
    }

    /// Found by the webauthn-rs oracle (issue 16): a leaf whose basicConstraints
    /// OID was changed (so it has none) passed; §8.2.1 requires the extension
    /// with CA=false.
    #[test]
    fn leaf_without_basic_constraints_is_refused() {
        let mut f = fixture("w3c/packed.ES256");
        let leaf = match &mut f.x5c_mut()[0] {
            Value::Bytes(b) => b,
            _ => unreachable!(),
        };
        let before = leaf.clone();
        replace_bytes(leaf, b"\x06\x03\x55\x1d\x13", b"\x06\x03\x55\x1d\xe7");
        assert_ne!(*leaf, before, "the fixture's leaf has basicConstraints");
        assert_code(f.verify(), "attestation_certificate_invalid");
    }

    #[test]
    fn wrong_aaguid_is_mismatch() {
        let f = fixture("real/packed-aaguid-ext");
        let leaf = ParsedCert::parse(&f.leaf()).unwrap();
        let aaguid = f.obj.auth_data.attested_credential.as_ref().unwrap().aaguid;
        check_aaguid_ext(&leaf, &aaguid).unwrap();
        let mut wrong = aaguid;
        wrong[15] ^= 1;
        let e = check_aaguid_ext(&leaf, &wrong).unwrap_err();
        assert_eq!(e.code(), "attestation_mismatch");
        assert!(e.to_string().contains("1.3.6.1.4.1.45724.1.1.4"));
    }

    #[test]
    fn garbage_leaf_is_a_certificate_error() {
        let mut f = fixture("w3c/packed.ES256");
        f.x5c_mut()[0] = Value::Bytes(vec![0x30, 0x00]);
        assert_code(f.verify(), "attestation_certificate_invalid");
    }
}

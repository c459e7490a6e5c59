//! The "packed" attestation statement format (WebAuthn L3 §8.2): self
//! attestation by the credential key, or basic/AttCA attestation by an x5c
//! certificate chain whose leaf meets §8.2.1.

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
            // Self attestation: alg must be the credential key's algorithm.
            if let Some(key_alg) = cred.public_key.alg() {
                if key_alg != alg {
                    return Err(AttestationError::Mismatch(format!(
                        "attStmt.alg {alg} differs from the credential key's algorithm {key_alg}"
                    )));
                }
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
        return bad("subject CN missing");
    }
    check_not_ca(leaf, "packed attestation")
}

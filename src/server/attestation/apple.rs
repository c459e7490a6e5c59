//! The "apple" anonymous attestation statement format (WebAuthn L3 §8.8):
//! the leaf certificate carries SHA-256(authData || clientDataHash) in
//! extension 1.2.840.113635.100.8.2 and certifies the credential key.

use super::{AttestationError, AttestationType, FormatResult, Input};
use crate::server::cert::{Tlv, oid};

/// Verify an "apple" statement.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    input.only_keys(&["x5c", "alg"])?;
    let (chain, leaf) = input.x5c_required()?;
    let nonce = input.ctx.provider.sha256(&[input.auth_data_raw, input.client_data_hash]);
    let ext = leaf
        .extension(oid::APPLE_NONCE)
        .ok_or_else(|| AttestationError::Certificate("apple nonce extension 1.2.840.113635.100.8.2 missing".into()))?;
    // SEQUENCE { [1] EXPLICIT OCTET STRING nonce }
    let got = Tlv::parse_all(ext.extn_value.as_bytes())
        .filter(|t| t.tag == 0x30)
        .and_then(|seq| Tlv::parse_all(seq.content))
        .filter(|t| t.is_context(1))
        .and_then(|t| Tlv::parse_all(t.content))
        .filter(|t| t.tag == 0x04)
        .ok_or_else(|| AttestationError::Certificate("apple nonce extension is malformed".into()))?;
    if got.content != nonce {
        return Err(AttestationError::Mismatch("apple nonce differs from SHA-256(authData || clientDataHash)".into()));
    }
    let cred = input.credential()?;
    let key = leaf.public_key().map_err(super::cert_err)?;
    if !key.matches_cose(&cred.public_key) {
        return Err(AttestationError::Mismatch("apple leaf certificate key differs from the credential key".into()));
    }
    Ok((AttestationType::AnonCa, chain))
}

#[cfg(test)]
mod tests {
    use super::super::AttestationType;
    use super::super::test_support::*;

    #[test]
    fn verifies() {
        assert_eq!(fixture("w3c/apple.ES256").verify().unwrap().attestation_type, AttestationType::AnonCa);
    }

    #[test]
    fn other_client_data_is_nonce_mismatch() {
        let mut f = fixture("w3c/apple.ES256");
        f.cdh[0] ^= 1;
        assert_code(f.verify(), "attestation_mismatch");
    }

    #[test]
    fn leaf_without_nonce_extension_is_rejected() {
        let mut f = fixture("w3c/apple.ES256");
        f.x5c_mut()[0] = crate::proto::cbor::Value::Bytes(fixture("w3c/fido-u2f.ES256").leaf());
        assert_code(f.verify(), "attestation_certificate_invalid");
    }
}

//! The "fido-u2f" attestation statement format (WebAuthn L3 §8.6): a U2F
//! registration signature by a P-256 attestation certificate over
//! 0x00 || rpIdHash || clientDataHash || credentialId || publicKeyU2F.

use super::{AttestationError, AttestationType, FormatResult, Input, sig_err};
use crate::crypto::{EcCurve, HashAlg};
use crate::proto::cose::{CoseKey, curve};
use crate::server::cert::PublicKey;

/// Verify a "fido-u2f" statement.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    input.only_keys(&["sig", "x5c"])?;
    let sig = input.bytes("sig")?;
    let (chain, leaf) = input.x5c_required()?;
    if chain.len() != 1 {
        return Err(AttestationError::Malformed("fido-u2f x5c must hold exactly one certificate".into()));
    }
    let point = match leaf.public_key().map_err(super::cert_err)? {
        PublicKey::Ec { curve: EcCurve::P256, point } => point,
        _ => return Err(AttestationError::Certificate("fido-u2f attestation key must be EC P-256".into())),
    };
    let cred = input.credential()?;
    let (x, y) = match &cred.public_key {
        CoseKey::Ec2 { crv: curve::P256, x, y, .. } => (x, y),
        _ => return Err(AttestationError::Mismatch("fido-u2f credential key must be EC2 P-256".into())),
    };
    let mut data = Vec::with_capacity(1 + 32 + 32 + cred.credential_id.len() + 65);
    data.push(0x00);
    data.extend_from_slice(&input.auth_data.rp_id_hash);
    data.extend_from_slice(input.client_data_hash);
    data.extend_from_slice(&cred.credential_id);
    data.push(0x04);
    data.extend_from_slice(x);
    data.extend_from_slice(y);
    input
        .ctx
        .provider
        .verify_ecdsa(EcCurve::P256, HashAlg::Sha256, &point, &data, sig)
        .map_err(|e| sig_err("fido-u2f attestation signature", e))?;
    Ok((AttestationType::Basic, chain))
}

#[cfg(test)]
mod tests {
    use super::super::AttestationType;
    use super::super::test_support::*;

    #[test]
    fn verifies() {
        assert_eq!(fixture("w3c/fido-u2f.ES256").verify().unwrap().attestation_type, AttestationType::Basic);
    }

    #[test]
    fn flipped_signature_is_bad_signature() {
        let mut f = fixture("w3c/fido-u2f.ES256");
        f.flip_last("sig");
        assert_code(f.verify(), "attestation_bad_signature");
        let mut f = fixture("w3c/fido-u2f.ES256");
        f.cdh[5] ^= 1;
        assert_code(f.verify(), "attestation_bad_signature");
    }

    #[test]
    fn exactly_one_certificate() {
        let mut f = fixture("w3c/fido-u2f.ES256");
        let leaf = f.x5c_mut()[0].clone();
        f.x5c_mut().push(leaf);
        assert_code(f.verify(), "attestation_malformed");
    }

    #[test]
    fn leaf_key_must_be_p256() {
        let mut f = fixture("w3c/fido-u2f.ES256");
        let rsa_leaf = fixture("real/tpm-rs1").leaf();
        f.x5c_mut()[0] = crate::proto::cbor::Value::Bytes(rsa_leaf);
        assert_code(f.verify(), "attestation_certificate_invalid");
    }
}

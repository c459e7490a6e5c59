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

//! hmac-secret (CTAP 2.1 §12.5) and hmac-secret-mc (CTAP 2.2): the salts
//! sent encrypted under the key agreement, and the outputs
//! HMAC-SHA-256(CredRandom, salt) returned encrypted. getAssertion evaluates
//! them at sign-in, makeCredential (hmac-secret-mc) at creation; both use the
//! same CredRandom (one with UV, one without), so the same salts give the
//! same outputs at creation and at sign-in.

use super::Authenticator;
use super::state::cred_random;
use crate::crypto::pin_protocol::{PinUvAuthProtocol, SharedSecret};
use crate::crypto::{HashAlg, SecretBytes};
use crate::proto::ctap2::CtapStatus;
use crate::proto::extensions::HmacSecretInput;

/// Check saltAuth and decrypt the salts (one or two of 32 bytes).
pub(crate) fn open_salts(a: &Authenticator, h: &HmacSecretInput) -> Result<(SharedSecret, SecretBytes), CtapStatus> {
    let proto = PinUvAuthProtocol::from_number(h.pin_uv_auth_protocol.unwrap_or(1).into())
        .map_err(|_| CtapStatus::InvalidParameter)?;
    let shared =
        a.key_agreement(proto).decapsulate(a.provider, &h.key_agreement).map_err(|_| CtapStatus::InvalidParameter)?;
    if !shared.verify(a.provider, &h.salt_enc, &h.salt_auth) {
        return Err(CtapStatus::PinAuthInvalid);
    }
    let salts = shared.decrypt(a.provider, &h.salt_enc).map_err(|_| CtapStatus::InvalidLength)?;
    if salts.len() != 32 && salts.len() != 64 {
        return Err(CtapStatus::InvalidLength);
    }
    Ok((shared, salts))
}

/// The encrypted outputs for a credential's private key at this UV level.
pub(crate) fn outputs(
    a: &Authenticator,
    shared: &SharedSecret,
    salts: &[u8],
    private_key: &[u8],
    uv: bool,
) -> Result<Vec<u8>, CtapStatus> {
    let provider = a.provider;
    let cr = cred_random(provider, a.master_key(), private_key, uv);
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(64));
    for salt in salts.chunks(32) {
        out.extend(provider.hmac(HashAlg::Sha256, &cr, &[salt]));
    }
    shared.encrypt(provider, &out).map_err(|_| CtapStatus::Other)
}

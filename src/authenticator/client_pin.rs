//! authenticatorClientPIN: PIN set/change, retries and lockout, key
//! agreement, pinUvAuthToken issuance with permissions.
//!
//! Built-in UV (a simulated fingerprint sensor, [`super::bio_enrollment`]):
//! getPinUvAuthTokenUsingUvWithPermissions takes a sample and issues a token
//! on a match; getUVRetries reports the UV retries. A correct PIN restores
//! them (the PIN is the fallback once UV is blocked).
//!
//! Lockout: every mismatch costs one of 8 retries (persisted); three
//! consecutive mismatches block PIN use until a power cycle
//! (`CTAP2_ERR_PIN_AUTH_BLOCKED`); with no retries left the PIN is blocked
//! for good (`CTAP2_ERR_PIN_BLOCKED`; only reset helps).

use std::time::Instant;

use super::state::{Secret, StoredPin};
use super::{Authenticator, PinToken, Reply};
use crate::crypto::ct_eq;
use crate::crypto::pin_protocol::{PinUvAuthProtocol, SharedSecret, new_pin_uv_auth_token};
use crate::proto::cbor::Value;
use crate::proto::ctap2::client_pin::{ClientPinRequest, ClientPinResponse, ClientPinSubcommand, permissions};
use crate::proto::ctap2::{CtapCodec, CtapStatus};

const MAX_CONSECUTIVE_FAILURES: u8 = 3;

pub(crate) fn client_pin(a: &mut Authenticator, v: &Value) -> Result<Reply, CtapStatus> {
    let req = ClientPinRequest::from_value(v).map_err(|e| e.status())?;
    match req.sub_command {
        ClientPinSubcommand::GetPinUvAuthTokenUsingUvWithPermissions if a.config.fingerprint.is_some() => {
            uv_token(a, &req)
        }
        ClientPinSubcommand::GetUvRetries if a.config.fingerprint.is_some() => {
            let r = ClientPinResponse { uv_retries: Some(a.state.uv_retries.into()), ..Default::default() };
            Ok(Reply::Done(Some(r.to_value())))
        }
        _ => pin_subcommand(a, &req).map(Reply::Done),
    }
}

/// Token permissions this authenticator grants (`be` only with a sensor;
/// `pcmr` alone, for the persistent token).
fn check_permissions(a: &Authenticator, perms: Option<u64>) -> Result<u8, CtapStatus> {
    let perms = perms.ok_or(CtapStatus::MissingParameter)?;
    if perms == 0 || perms > 0xff {
        return Err(CtapStatus::InvalidParameter);
    }
    let perms = perms as u8;
    if perms & !0x7f != 0
        || (perms & permissions::BIO_ENROLLMENT != 0 && a.config.fingerprint.is_none())
        || (perms & permissions::PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY != 0
            && perms != permissions::PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY)
    {
        return Err(CtapStatus::UnauthorizedPermission);
    }
    Ok(perms)
}

/// Hand out a token after the PIN or UV was verified: the persistent token
/// for `pcmr` (CTAP 2.2; the volatile token is left alone), else a new
/// volatile token with these permissions.
fn issue_token(
    a: &mut Authenticator,
    shared: &SharedSecret,
    protocol: crate::crypto::pin_protocol::PinUvAuthProtocol,
    perms: u8,
    rp_id: Option<String>,
) -> Result<ClientPinResponse, CtapStatus> {
    let enc = if perms == permissions::PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY {
        if a.state.upgrade(a.provider).map_err(|_| CtapStatus::Other)? {
            let backup = a.state.clone();
            a.persist_or_restore(backup)?;
        }
        let t = a.state.persistent_token.as_ref().ok_or(CtapStatus::Other)?;
        shared.encrypt(a.provider, t.bytes()).map_err(|_| CtapStatus::Other)?
    } else {
        let token = new_pin_uv_auth_token(a.provider).map_err(|_| CtapStatus::Other)?;
        let enc = shared.encrypt(a.provider, &token).map_err(|_| CtapStatus::Other)?;
        a.volatile.token =
            Some(PinToken { token, protocol, permissions: perms, rp_id, issued: Instant::now(), used: false });
        enc
    };
    Ok(ClientPinResponse { pin_uv_auth_token: Some(enc), ..Default::default() })
}

/// getPinUvAuthTokenUsingUvWithPermissions (CTAP 2.1 §6.5.5.7.3).
fn uv_token(a: &mut Authenticator, req: &ClientPinRequest) -> Result<Reply, CtapStatus> {
    let protocol = protocol(req)?;
    let perms = check_permissions(a, req.permissions)?;
    req.key_agreement.as_ref().ok_or(CtapStatus::MissingParameter)?;
    if perms & (permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION) != 0 && req.rp_id.is_none() {
        return Err(CtapStatus::MissingParameter);
    }
    super::bio_enrollment::uv_precheck(a, CtapStatus::NotAllowed)?;
    if a.state.force_pin_change {
        return Err(CtapStatus::PinPolicyViolation);
    }
    let (_, shared) = shared_secret(a, req)?;
    let rp_id = req.rp_id.clone();
    Ok(Reply::up("userVerification", rp_id.clone(), None, move |a, outcome| {
        outcome.require()?;
        super::bio_enrollment::verify_user(a)?;
        Ok(Some(issue_token(a, &shared, protocol, perms, rp_id)?.to_value()))
    }))
}

fn pin_subcommand(a: &mut Authenticator, req: &ClientPinRequest) -> Result<Option<Value>, CtapStatus> {
    let req = req.clone();
    let resp = match req.sub_command {
        ClientPinSubcommand::GetPinRetries => ClientPinResponse {
            pin_retries: Some(a.state.pin_retries.into()),
            power_cycle_state: Some(a.volatile.consecutive_pin_failures >= MAX_CONSECUTIVE_FAILURES),
            ..Default::default()
        },
        ClientPinSubcommand::GetKeyAgreement => {
            let p = protocol(&req)?;
            ClientPinResponse { key_agreement: Some(a.key_agreement(p).public_key()), ..Default::default() }
        }
        ClientPinSubcommand::SetPin => {
            set_pin(a, &req)?;
            ClientPinResponse::default()
        }
        ClientPinSubcommand::ChangePin => {
            change_pin(a, &req)?;
            ClientPinResponse::default()
        }
        ClientPinSubcommand::GetPinToken => {
            if req.permissions.is_some() || req.rp_id.is_some() {
                return Err(CtapStatus::InvalidParameter);
            }
            get_token(a, &req, permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION, None)?
        }
        ClientPinSubcommand::GetPinUvAuthTokenUsingPinWithPermissions => {
            let perms = check_permissions(a, req.permissions)?;
            get_token(a, &req, perms, req.rp_id.clone())?
        }
        // No built-in user verification (without a sensor).
        ClientPinSubcommand::GetPinUvAuthTokenUsingUvWithPermissions | ClientPinSubcommand::GetUvRetries => {
            return Err(CtapStatus::InvalidSubcommand);
        }
        ClientPinSubcommand::Other(_) => return Err(CtapStatus::InvalidSubcommand),
    };
    // Commands without output answer the status byte alone.
    Ok((resp != Default::default()).then(|| resp.to_value()))
}

/// The PIN complexity policy (CTAP 2.2 pinComplexityPolicy): a PIN must not
/// be one character repeated (`1111`) nor a run of consecutive characters,
/// up or down (`1234`, `9876`, `abcd`).
pub(crate) fn complex_enough(pin: &str) -> bool {
    let c: Vec<u32> = pin.chars().map(u32::from).collect();
    let steps: Vec<i64> = c.windows(2).map(|w| i64::from(w[1]) - i64::from(w[0])).collect();
    let Some(&first) = steps.first() else { return false };
    !(matches!(first, -1..=1) && steps.iter().all(|&s| s == first))
}

fn protocol(req: &ClientPinRequest) -> Result<PinUvAuthProtocol, CtapStatus> {
    let p = req.pin_uv_auth_protocol.ok_or(CtapStatus::MissingParameter)?;
    PinUvAuthProtocol::from_number(p).map_err(|_| CtapStatus::InvalidParameter)
}

fn shared_secret(a: &Authenticator, req: &ClientPinRequest) -> Result<(PinUvAuthProtocol, SharedSecret), CtapStatus> {
    let p = protocol(req)?;
    let peer = req.key_agreement.as_ref().ok_or(CtapStatus::MissingParameter)?;
    let shared = a.key_agreement(p).decapsulate(a.provider, peer).map_err(|_| CtapStatus::InvalidParameter)?;
    Ok((p, shared))
}

/// Decrypt newPinEnc and check the PIN policy; returns the new stored PIN.
fn new_pin(a: &Authenticator, shared: &SharedSecret, new_pin_enc: &[u8]) -> Result<StoredPin, CtapStatus> {
    let padded = shared.decrypt(a.provider, new_pin_enc).map_err(|_| CtapStatus::InvalidParameter)?;
    if padded.len() != 64 {
        return Err(CtapStatus::InvalidParameter);
    }
    let len = padded.iter().position(|&b| b == 0).unwrap_or(64);
    if padded[len..].iter().any(|&b| b != 0) || len > 63 {
        return Err(CtapStatus::PinPolicyViolation);
    }
    let pin = std::str::from_utf8(&padded[..len]).map_err(|_| CtapStatus::PinPolicyViolation)?;
    let code_points = pin.chars().count() as u32;
    if code_points < a.state.min_pin_length.max(4) as u32 {
        return Err(CtapStatus::PinPolicyViolation);
    }
    if a.pin_complexity_policy() && !complex_enough(pin) {
        return Err(CtapStatus::PinPolicyViolation);
    }
    let hash = zeroize::Zeroizing::new(a.provider.sha256(&[&padded[..len]]));
    Ok(StoredPin { hash: Secret::new(super::secret(&hash[..16])), code_points })
}

fn set_pin(a: &mut Authenticator, req: &ClientPinRequest) -> Result<(), CtapStatus> {
    let (_, shared) = shared_secret(a, req)?;
    let param = req.pin_uv_auth_param.as_deref().ok_or(CtapStatus::MissingParameter)?;
    let new_pin_enc = req.new_pin_enc.as_deref().ok_or(CtapStatus::MissingParameter)?;
    if a.pin_is_set() {
        return Err(CtapStatus::NotAllowed);
    }
    if !shared.verify(a.provider, new_pin_enc, param) {
        return Err(CtapStatus::PinAuthInvalid);
    }
    let pin = new_pin(a, &shared, new_pin_enc)?;
    let backup = a.state.clone();
    a.state.pin = Some(pin);
    a.state.pin_retries = super::state::PIN_RETRIES;
    a.persist_or_restore(backup)
}

/// Check pinHashEnc against the stored PIN, with retry accounting.
fn verify_pin_hash(a: &mut Authenticator, shared: &SharedSecret, pin_hash_enc: &[u8]) -> Result<(), CtapStatus> {
    let stored = a.state.pin.as_ref().ok_or(CtapStatus::PinNotSet)?;
    if a.state.pin_retries == 0 {
        return Err(CtapStatus::PinBlocked);
    }
    if a.volatile.consecutive_pin_failures >= MAX_CONSECUTIVE_FAILURES {
        return Err(CtapStatus::PinAuthBlocked);
    }
    let stored_hash = stored.hash.clone();
    // A retry is consumed before the comparison and given back on success.
    let backup = a.state.clone();
    a.state.pin_retries -= 1;
    a.persist_or_restore(backup)?;
    let hash = shared.decrypt(a.provider, pin_hash_enc).map_err(|_| CtapStatus::InvalidParameter)?;
    if hash.len() != 16 || !ct_eq(&hash, stored_hash.bytes()) {
        let _ = a.volatile.key_agreement_v1.regenerate(a.provider);
        let _ = a.volatile.key_agreement_v2.regenerate(a.provider);
        a.volatile.consecutive_pin_failures = a.volatile.consecutive_pin_failures.saturating_add(1);
        if a.state.pin_retries == 0 {
            return Err(CtapStatus::PinBlocked);
        }
        if a.volatile.consecutive_pin_failures >= MAX_CONSECUTIVE_FAILURES {
            return Err(CtapStatus::PinAuthBlocked);
        }
        return Err(CtapStatus::PinInvalid);
    }
    a.volatile.consecutive_pin_failures = 0;
    let backup = a.state.clone();
    a.state.pin_retries = super::state::PIN_RETRIES;
    // The PIN is the fallback of a blocked built-in UV: it restores the UV retries.
    a.state.uv_retries = super::state::UV_RETRIES;
    a.state.uv_count_since_pin = 0;
    a.persist_or_restore(backup)
}

fn change_pin(a: &mut Authenticator, req: &ClientPinRequest) -> Result<(), CtapStatus> {
    let (_, shared) = shared_secret(a, req)?;
    let param = req.pin_uv_auth_param.as_deref().ok_or(CtapStatus::MissingParameter)?;
    let new_pin_enc = req.new_pin_enc.as_deref().ok_or(CtapStatus::MissingParameter)?;
    let pin_hash_enc = req.pin_hash_enc.as_deref().ok_or(CtapStatus::MissingParameter)?;
    if !a.pin_is_set() {
        return Err(CtapStatus::PinNotSet);
    }
    if a.state.pin_retries == 0 {
        return Err(CtapStatus::PinBlocked);
    }
    let mut msg = new_pin_enc.to_vec();
    msg.extend_from_slice(pin_hash_enc);
    if !shared.verify(a.provider, &msg, param) {
        return Err(CtapStatus::PinAuthInvalid);
    }
    verify_pin_hash(a, &shared, pin_hash_enc)?;
    let pin = new_pin(a, &shared, new_pin_enc)?;
    let backup = a.state.clone();
    a.state.pin = Some(pin);
    a.state.force_pin_change = false;
    // A new PIN ends the persistent token (CTAP 2.2 resetPersistentPinUvAuthToken).
    a.state.persistent_token =
        Some(super::state::Secret::new(new_pin_uv_auth_token(a.provider).map_err(|_| CtapStatus::Other)?));
    a.persist_or_restore(backup)?;
    a.volatile.token = None;
    Ok(())
}

fn get_token(
    a: &mut Authenticator,
    req: &ClientPinRequest,
    perms: u8,
    rp_id: Option<String>,
) -> Result<ClientPinResponse, CtapStatus> {
    let (protocol, shared) = shared_secret(a, req)?;
    let pin_hash_enc = req.pin_hash_enc.as_deref().ok_or(CtapStatus::MissingParameter)?;
    if !a.pin_is_set() {
        return Err(CtapStatus::PinNotSet);
    }
    verify_pin_hash(a, &shared, pin_hash_enc)?;
    if a.state.force_pin_change {
        return Err(CtapStatus::PinPolicyViolation);
    }
    issue_token(a, &shared, protocol, perms, rp_id)
}

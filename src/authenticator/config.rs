//! authenticatorConfig: enableEnterpriseAttestation, toggleAlwaysUv,
//! setMinPINLength (with RP list and forceChangePin).

use super::{Authenticator, MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH};
use crate::proto::cbor::Value;
use crate::proto::ctap2::client_pin::permissions;
use crate::proto::ctap2::config::{ConfigRequest, ConfigSubcommand};
use crate::proto::ctap2::{CtapCodec, CtapStatus};

pub(crate) fn config(a: &mut Authenticator, v: &Value) -> Result<Option<Value>, CtapStatus> {
    let req = ConfigRequest::from_value(v).map_err(|e| e.status())?;
    match &req.pin_uv_auth_param {
        Some(param) => a.check_token(
            req.pin_uv_auth_protocol,
            param,
            &req.auth_message(),
            permissions::AUTHENTICATOR_CONFIG,
            None,
        )?,
        None if a.pin_is_set() || a.state.always_uv => return Err(CtapStatus::PuatRequired),
        None => {}
    }
    let backup = a.state.clone();
    match req.sub_command {
        ConfigSubcommand::ToggleAlwaysUv => a.state.always_uv = !a.state.always_uv,
        ConfigSubcommand::SetMinPinLength => {
            let p = req.set_min_pin_length_params().map_err(|e| e.status())?.unwrap_or_default();
            let new_min = match p.new_min_pin_length {
                None => a.state.min_pin_length,
                Some(n) => u8::try_from(n).map_err(|_| CtapStatus::PinPolicyViolation)?,
            };
            if new_min < a.state.min_pin_length || new_min > 63 {
                return Err(CtapStatus::PinPolicyViolation);
            }
            let force = p.force_change_pin.unwrap_or(false);
            if force && !a.pin_is_set() {
                return Err(CtapStatus::PinNotSet);
            }
            if let Some(rps) = p.min_pin_length_rp_ids {
                if rps.len() > MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH {
                    return Err(CtapStatus::InvalidParameter);
                }
                a.state.min_pin_length_rp_ids = rps;
            }
            a.state.min_pin_length = new_min;
            let too_short = a.state.pin.as_ref().is_some_and(|pin| pin.code_points < new_min as u32);
            // Turning the PIN complexity policy on (it cannot be turned off):
            // the current PIN may not comply, so a set PIN must be changed.
            let newly_complex = p.pin_complexity_policy == Some(true) && !a.pin_complexity_policy();
            if p.pin_complexity_policy == Some(true) {
                a.state.pin_complexity_policy = true;
            }
            if force || too_short || (newly_complex && a.pin_is_set()) {
                a.state.force_pin_change = true;
                a.volatile.token = None;
            }
        }
        ConfigSubcommand::EnableEnterpriseAttestation => a.state.enterprise_attestation = true,
        ConfigSubcommand::VendorPrototype | ConfigSubcommand::Other(_) => return Err(CtapStatus::InvalidSubcommand),
    }
    a.persist_or_restore(backup)?;
    Ok(None)
}

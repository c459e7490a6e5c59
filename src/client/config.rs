//! authenticatorConfig, typed (CTAP 2.1 §6.11): toggle alwaysUv, set the
//! minimum PIN length (with the RP IDs that may read it and forcing a PIN
//! change), enable enterprise attestation. Each takes a pinUvAuthToken with
//! the `acfg` permission ([`super::pin::permissions::AUTHENTICATOR_CONFIG`]);
//! a key without a PIN accepts them without one.

use super::pin::PinUvAuthToken;
use super::{ClientError, Device, Op};
use crate::proto::cbor::Value;
use crate::proto::ctap2::config::{ConfigRequest, ConfigSubcommand, SetMinPinLengthParams};

impl Device {
    fn config_call(
        &mut self,
        sub: ConfigSubcommand,
        params: Option<Value>,
        token: Option<&PinUvAuthToken>,
        op: &Op,
    ) -> Result<(), ClientError> {
        let (param, proto) = match token {
            Some(t) => (
                Some(t.authenticate(&ConfigRequest::auth_message_for(sub, params.as_ref()))),
                Some(u64::from(t.protocol().number())),
            ),
            None => (None, None),
        };
        let req = ConfigRequest {
            sub_command: sub,
            sub_command_params: params,
            pin_uv_auth_protocol: proto,
            pin_uv_auth_param: param,
        };
        self.config(&req, op)?;
        // alwaysUv, minPINLength, forcePINChange and ep live in getInfo.
        self.refresh_info(op)?;
        Ok(())
    }

    /// toggleAlwaysUv: flip alwaysUv; returns its new value.
    pub fn toggle_always_uv(&mut self, token: Option<&PinUvAuthToken>, op: &Op) -> Result<bool, ClientError> {
        self.config_call(ConfigSubcommand::ToggleAlwaysUv, None, token, op)?;
        Ok(self.option("alwaysUv") == Some(true))
    }

    /// setMinPINLength: raise the minimum PIN length (code points), name the
    /// RP IDs allowed to read it (minPinLength extension), and/or force a PIN
    /// change before the next token.
    pub fn set_min_pin_length(
        &mut self,
        token: Option<&PinUvAuthToken>,
        min_pin_length: Option<u8>,
        rp_ids: Option<Vec<String>>,
        force_change_pin: bool,
        op: &Op,
    ) -> Result<(), ClientError> {
        self.set_pin_policy(token, min_pin_length, rp_ids, force_change_pin, false, op)
    }

    /// [`Device::set_min_pin_length`], and with `pin_complexity_policy` also
    /// turn on the key's PIN complexity policy (CTAP 2.2; keys that report
    /// pinComplexityPolicy in getInfo; it stays on until reset).
    pub fn set_pin_policy(
        &mut self,
        token: Option<&PinUvAuthToken>,
        min_pin_length: Option<u8>,
        rp_ids: Option<Vec<String>>,
        force_change_pin: bool,
        pin_complexity_policy: bool,
        op: &Op,
    ) -> Result<(), ClientError> {
        if pin_complexity_policy && self.info().and_then(|i| i.pin_complexity_policy).is_none() {
            return Err(ClientError::Unsupported("a PIN complexity policy".into()));
        }
        if let Some(max) = self.info().and_then(|i| i.max_rpids_for_set_min_pin_length)
            && rp_ids.as_ref().is_some_and(|r| r.len() as u64 > max)
        {
            return Err(ClientError::InvalidRequest(format!("the key takes at most {max} RP IDs")));
        }
        let params = SetMinPinLengthParams {
            new_min_pin_length: min_pin_length.map(u64::from),
            min_pin_length_rp_ids: rp_ids,
            force_change_pin: force_change_pin.then_some(true),
            pin_complexity_policy: pin_complexity_policy.then_some(true),
        };
        self.config_call(ConfigSubcommand::SetMinPinLength, Some(params.to_value()), token, op)
    }

    /// enableEnterpriseAttestation (keys listing the `ep` option).
    pub fn enable_enterprise_attestation(
        &mut self,
        token: Option<&PinUvAuthToken>,
        op: &Op,
    ) -> Result<(), ClientError> {
        if self.option("ep").is_none() {
            return Err(ClientError::Unsupported("enterprise attestation".into()));
        }
        self.config_call(ConfigSubcommand::EnableEnterpriseAttestation, None, token, op)
    }
}

//! authenticatorConfig (0x0D, CTAP 2.1 §6.11).

use super::util::{map, opt_map, opt_text_array, opt_u8, opt_u64, text_array};
use super::{Command, Ctap2Error, CtapCodec, CtapRequest};
use crate::proto::cbor::{FieldError, MapExt, Value};

/// authenticatorConfig subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSubcommand {
    /// 0x01 enableEnterpriseAttestation.
    EnableEnterpriseAttestation,
    /// 0x02 toggleAlwaysUv.
    ToggleAlwaysUv,
    /// 0x03 setMinPINLength.
    SetMinPinLength,
    /// 0xFF vendorPrototype.
    VendorPrototype,
    /// Anything else.
    Other(u8),
}

impl ConfigSubcommand {
    /// The subcommand byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::EnableEnterpriseAttestation => 1,
            Self::ToggleAlwaysUv => 2,
            Self::SetMinPinLength => 3,
            Self::VendorPrototype => 0xFF,
            Self::Other(b) => b,
        }
    }
    /// From the byte (total).
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::EnableEnterpriseAttestation,
            2 => Self::ToggleAlwaysUv,
            3 => Self::SetMinPinLength,
            0xFF => Self::VendorPrototype,
            b => Self::Other(b),
        }
    }
}

/// setMinPINLength parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetMinPinLengthParams {
    /// 0x01 newMinPINLength.
    pub new_min_pin_length: Option<u64>,
    /// 0x02 minPinLengthRPIDs.
    pub min_pin_length_rp_ids: Option<Vec<String>>,
    /// 0x03 forceChangePin.
    pub force_change_pin: Option<bool>,
    /// 0x04 pinComplexityPolicy (CTAP 2.2): `true` turns the PIN complexity policy on.
    pub pin_complexity_policy: Option<bool>,
}

impl SetMinPinLengthParams {
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(n) = self.new_min_pin_length {
            m.push((Value::from(1), Value::from(n)));
        }
        if let Some(r) = &self.min_pin_length_rp_ids {
            m.push((Value::from(2), text_array(r)));
        }
        if let Some(b) = self.force_change_pin {
            m.push((Value::from(3), Value::Bool(b)));
        }
        if let Some(b) = self.pin_complexity_policy {
            m.push((Value::from(4), Value::Bool(b)));
        }
        Value::Map(m)
    }
    /// From a CBOR map.
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self {
            new_min_pin_length: opt_u64(v, 1, "newMinPINLength")?,
            min_pin_length_rp_ids: opt_text_array(v, 2, "minPinLengthRPIDs")?,
            force_change_pin: v.opt_bool(3, "forceChangePin")?,
            pin_complexity_policy: v.opt_bool(4, "pinComplexityPolicy")?,
        })
    }
}

/// An authenticatorConfig request.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRequest {
    /// 0x01 subCommand.
    pub sub_command: ConfigSubcommand,
    /// 0x02 subCommandParams (a map; typed for setMinPINLength by [`Self::set_min_pin_length_params`]).
    pub sub_command_params: Option<Value>,
    /// 0x03 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x04 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl ConfigRequest {
    /// The message `pinUvAuthParam` authenticates:
    /// 32 × 0xff || 0x0d || subCommand || encoded subCommandParams.
    pub fn auth_message(&self) -> Vec<u8> {
        Self::auth_message_for(self.sub_command, self.sub_command_params.as_ref())
    }
    /// [`Self::auth_message`] before the request is built.
    pub fn auth_message_for(sub: ConfigSubcommand, params: Option<&Value>) -> Vec<u8> {
        let mut m = vec![0xffu8; 32];
        m.push(0x0d);
        m.push(sub.byte());
        if let Some(p) = params {
            m.extend_from_slice(&p.to_vec());
        }
        m
    }
    /// The setMinPINLength parameters, typed.
    pub fn set_min_pin_length_params(&self) -> Result<Option<SetMinPinLengthParams>, Ctap2Error> {
        self.sub_command_params.as_ref().map(SetMinPinLengthParams::from_value).transpose()
    }
}

impl CtapCodec for ConfigRequest {
    fn to_value(&self) -> Value {
        let mut m = vec![(Value::from(1), Value::from(self.sub_command.byte()))];
        if let Some(p) = &self.sub_command_params {
            m.push((Value::from(2), p.clone()));
        }
        if let Some(p) = self.pin_uv_auth_protocol {
            m.push((Value::from(3), Value::from(p)));
        }
        if let Some(p) = &self.pin_uv_auth_param {
            m.push((Value::from(4), Value::Bytes(p.clone())));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let sub = opt_u8(v, 1, "subCommand")?.ok_or(FieldError::Missing("subCommand"))?;
        Ok(Self {
            sub_command: ConfigSubcommand::from_byte(sub),
            sub_command_params: opt_map(v, 2, "subCommandParams")?.cloned(),
            pin_uv_auth_protocol: opt_u64(v, 3, "pinUvAuthProtocol")?,
            pin_uv_auth_param: v.opt_bytes(4, "pinUvAuthParam")?.map(<[u8]>::to_vec),
        })
    }
}

impl CtapRequest for ConfigRequest {
    const COMMAND: Command = Command::Config;
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(sub in any::<u8>(), n in proptest::option::of(0u64..64), rps in proptest::option::of(proptest::collection::vec(text(), 0..3)),
            f in proptest::option::of(any::<bool>()), proto in proptest::option::of(1u64..3), p in proptest::option::of(bytes(33))) {
            let params = SetMinPinLengthParams { new_min_pin_length: n, min_pin_length_rp_ids: rps, force_change_pin: f,
                pin_complexity_policy: f.map(|x| !x) };
            let r = ConfigRequest { sub_command: ConfigSubcommand::from_byte(sub), sub_command_params: Some(params.to_value()),
                pin_uv_auth_protocol: proto, pin_uv_auth_param: p };
            let back = ConfigRequest::from_cbor(&r.to_cbor()).unwrap();
            prop_assert_eq!(back.set_min_pin_length_params().unwrap(), Some(params));
            prop_assert_eq!(back, r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = ConfigRequest::from_cbor(&b);
        }
    }
}

//! authenticatorClientPIN (0x06, CTAP 2.1 §6.5): subcommands 1 to 9.
//!
//! The cryptography (key agreement, encryption, `pinUvAuthParam`) is in
//! [`crate::crypto::pin_protocol`]; this module is only the wire form.

use super::util::{map, opt_u8, opt_u64};
use super::{Command, Ctap2Error, CtapCodec, CtapRequest};
use crate::proto::cbor::{FieldError, MapExt, Value};
use crate::proto::cose::CoseKey;

/// clientPIN subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientPinSubcommand {
    /// 0x01 getPINRetries.
    GetPinRetries,
    /// 0x02 getKeyAgreement.
    GetKeyAgreement,
    /// 0x03 setPIN.
    SetPin,
    /// 0x04 changePIN.
    ChangePin,
    /// 0x05 getPinToken (superseded, still supported).
    GetPinToken,
    /// 0x06 getPinUvAuthTokenUsingUvWithPermissions.
    GetPinUvAuthTokenUsingUvWithPermissions,
    /// 0x07 getUVRetries.
    GetUvRetries,
    /// 0x09 getPinUvAuthTokenUsingPinWithPermissions.
    GetPinUvAuthTokenUsingPinWithPermissions,
    /// Any other value (0x08 is reserved).
    Other(u8),
}

impl ClientPinSubcommand {
    /// The subcommand byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::GetPinRetries => 1,
            Self::GetKeyAgreement => 2,
            Self::SetPin => 3,
            Self::ChangePin => 4,
            Self::GetPinToken => 5,
            Self::GetPinUvAuthTokenUsingUvWithPermissions => 6,
            Self::GetUvRetries => 7,
            Self::GetPinUvAuthTokenUsingPinWithPermissions => 9,
            Self::Other(b) => b,
        }
    }
    /// From the byte (total).
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::GetPinRetries,
            2 => Self::GetKeyAgreement,
            3 => Self::SetPin,
            4 => Self::ChangePin,
            5 => Self::GetPinToken,
            6 => Self::GetPinUvAuthTokenUsingUvWithPermissions,
            7 => Self::GetUvRetries,
            9 => Self::GetPinUvAuthTokenUsingPinWithPermissions,
            b => Self::Other(b),
        }
    }
}

/// pinUvAuthToken permission bits (CTAP 2.1 §6.5.5.7).
pub mod permissions {
    /// mc: makeCredential.
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    /// ga: getAssertion.
    pub const GET_ASSERTION: u8 = 0x02;
    /// cm: credentialManagement.
    pub const CREDENTIAL_MANAGEMENT: u8 = 0x04;
    /// be: bioEnrollment.
    pub const BIO_ENROLLMENT: u8 = 0x08;
    /// lbw: largeBlobWrite.
    pub const LARGE_BLOB_WRITE: u8 = 0x10;
    /// acfg: authenticatorConfig.
    pub const AUTHENTICATOR_CONFIG: u8 = 0x20;
    /// pcmr: persistent credential management, read only (CTAP 2.2): the
    /// persistent pinUvAuthToken, which survives power cycles and may only
    /// list credentials. Never combined with other permissions.
    pub const PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY: u8 = 0x40;
}

/// An authenticatorClientPIN request. Which members are present depends on
/// the subcommand; the constructors build each subcommand's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPinRequest {
    /// 0x01 pinUvAuthProtocol (required except for getPINRetries / getUVRetries in practice).
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x02 subCommand.
    pub sub_command: ClientPinSubcommand,
    /// 0x03 keyAgreement: the platform's public key.
    pub key_agreement: Option<CoseKey>,
    /// 0x04 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x05 newPinEnc.
    pub new_pin_enc: Option<Vec<u8>>,
    /// 0x06 pinHashEnc.
    pub pin_hash_enc: Option<Vec<u8>>,
    /// 0x09 permissions.
    pub permissions: Option<u64>,
    /// 0x0A rpId (permissions RP ID).
    pub rp_id: Option<String>,
}

impl ClientPinRequest {
    fn bare(protocol: Option<u64>, sub_command: ClientPinSubcommand) -> Self {
        Self {
            pin_uv_auth_protocol: protocol,
            sub_command,
            key_agreement: None,
            pin_uv_auth_param: None,
            new_pin_enc: None,
            pin_hash_enc: None,
            permissions: None,
            rp_id: None,
        }
    }
    /// getPINRetries.
    pub fn get_pin_retries() -> Self {
        Self::bare(None, ClientPinSubcommand::GetPinRetries)
    }
    /// getUVRetries.
    pub fn get_uv_retries() -> Self {
        Self::bare(None, ClientPinSubcommand::GetUvRetries)
    }
    /// getKeyAgreement for a protocol.
    pub fn get_key_agreement(protocol: u8) -> Self {
        Self::bare(Some(protocol.into()), ClientPinSubcommand::GetKeyAgreement)
    }
    /// setPIN: `param = authenticate(shared, newPinEnc)`.
    pub fn set_pin(protocol: u8, key_agreement: CoseKey, new_pin_enc: Vec<u8>, param: Vec<u8>) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            new_pin_enc: Some(new_pin_enc),
            pin_uv_auth_param: Some(param),
            ..Self::bare(Some(protocol.into()), ClientPinSubcommand::SetPin)
        }
    }
    /// changePIN: `param = authenticate(shared, newPinEnc || pinHashEnc)`.
    pub fn change_pin(
        protocol: u8,
        key_agreement: CoseKey,
        new_pin_enc: Vec<u8>,
        pin_hash_enc: Vec<u8>,
        param: Vec<u8>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            new_pin_enc: Some(new_pin_enc),
            pin_hash_enc: Some(pin_hash_enc),
            pin_uv_auth_param: Some(param),
            ..Self::bare(Some(protocol.into()), ClientPinSubcommand::ChangePin)
        }
    }
    /// getPinToken (legacy: permissions mc and ga, no RP binding).
    pub fn get_pin_token(protocol: u8, key_agreement: CoseKey, pin_hash_enc: Vec<u8>) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            ..Self::bare(Some(protocol.into()), ClientPinSubcommand::GetPinToken)
        }
    }
    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub fn get_token_with_permissions(
        protocol: u8,
        key_agreement: CoseKey,
        pin_hash_enc: Vec<u8>,
        permissions: u8,
        rp_id: Option<String>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            permissions: Some(permissions.into()),
            rp_id,
            ..Self::bare(Some(protocol.into()), ClientPinSubcommand::GetPinUvAuthTokenUsingPinWithPermissions)
        }
    }
    /// getPinUvAuthTokenUsingUvWithPermissions.
    pub fn get_token_using_uv(protocol: u8, key_agreement: CoseKey, permissions: u8, rp_id: Option<String>) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            permissions: Some(permissions.into()),
            rp_id,
            ..Self::bare(Some(protocol.into()), ClientPinSubcommand::GetPinUvAuthTokenUsingUvWithPermissions)
        }
    }
}

impl CtapCodec for ClientPinRequest {
    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(p) = self.pin_uv_auth_protocol {
            m.push((Value::from(1), Value::from(p)));
        }
        m.push((Value::from(2), Value::from(self.sub_command.byte())));
        if let Some(k) = &self.key_agreement {
            m.push((Value::from(3), k.to_value()));
        }
        if let Some(b) = &self.pin_uv_auth_param {
            m.push((Value::from(4), Value::Bytes(b.clone())));
        }
        if let Some(b) = &self.new_pin_enc {
            m.push((Value::from(5), Value::Bytes(b.clone())));
        }
        if let Some(b) = &self.pin_hash_enc {
            m.push((Value::from(6), Value::Bytes(b.clone())));
        }
        if let Some(p) = self.permissions {
            m.push((Value::from(9), Value::from(p)));
        }
        if let Some(r) = &self.rp_id {
            m.push((Value::from(10), Value::from(r.as_str())));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let sub = opt_u8(v, 2, "subCommand")?.ok_or(FieldError::Missing("subCommand"))?;
        let key_agreement = match v.get_int(3) {
            None => None,
            Some(k) => {
                Some(CoseKey::from_value(k).map_err(|_| Ctap2Error::Field(FieldError::Invalid("keyAgreement")))?)
            }
        };
        Ok(Self {
            pin_uv_auth_protocol: opt_u64(v, 1, "pinUvAuthProtocol")?,
            sub_command: ClientPinSubcommand::from_byte(sub),
            key_agreement,
            pin_uv_auth_param: v.opt_bytes(4, "pinUvAuthParam")?.map(<[u8]>::to_vec),
            new_pin_enc: v.opt_bytes(5, "newPinEnc")?.map(<[u8]>::to_vec),
            pin_hash_enc: v.opt_bytes(6, "pinHashEnc")?.map(<[u8]>::to_vec),
            permissions: opt_u64(v, 9, "permissions")?,
            rp_id: v.opt_text(10, "rpId")?.map(str::to_owned),
        })
    }
}

impl CtapRequest for ClientPinRequest {
    const COMMAND: Command = Command::ClientPin;
}

/// An authenticatorClientPIN response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientPinResponse {
    /// 0x01 keyAgreement: the authenticator's public key.
    pub key_agreement: Option<CoseKey>,
    /// 0x02 pinUvAuthToken, encrypted under the shared secret.
    pub pin_uv_auth_token: Option<Vec<u8>>,
    /// 0x03 pinRetries.
    pub pin_retries: Option<u64>,
    /// 0x04 powerCycleState: a power cycle is needed before the PIN can be tried again.
    pub power_cycle_state: Option<bool>,
    /// 0x05 uvRetries.
    pub uv_retries: Option<u64>,
}

impl CtapCodec for ClientPinResponse {
    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(k) = &self.key_agreement {
            m.push((Value::from(1), k.to_value()));
        }
        if let Some(t) = &self.pin_uv_auth_token {
            m.push((Value::from(2), Value::Bytes(t.clone())));
        }
        if let Some(n) = self.pin_retries {
            m.push((Value::from(3), Value::from(n)));
        }
        if let Some(b) = self.power_cycle_state {
            m.push((Value::from(4), Value::Bool(b)));
        }
        if let Some(n) = self.uv_retries {
            m.push((Value::from(5), Value::from(n)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let key_agreement = match v.get_int(1) {
            None => None,
            Some(k) => {
                Some(CoseKey::from_value(k).map_err(|_| Ctap2Error::Field(FieldError::Invalid("keyAgreement")))?)
            }
        };
        Ok(Self {
            key_agreement,
            pin_uv_auth_token: v.opt_bytes(2, "pinUvAuthToken")?.map(<[u8]>::to_vec),
            pin_retries: opt_u64(v, 3, "pinRetries")?,
            power_cycle_state: v.opt_bool(4, "powerCycleState")?,
            uv_retries: opt_u64(v, 5, "uvRetries")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn request_round_trip(proto in proptest::option::of(1u64..3), sub in any::<u8>(), ka in proptest::option::of(cose_key()),
            p in proptest::option::of(bytes(33)), n in proptest::option::of(bytes(80)), h in proptest::option::of(bytes(33)),
            perm in proptest::option::of(any::<u8>()), rp in proptest::option::of(text())) {
            let r = ClientPinRequest { pin_uv_auth_protocol: proto, sub_command: ClientPinSubcommand::from_byte(sub), key_agreement: ka,
                pin_uv_auth_param: p, new_pin_enc: n, pin_hash_enc: h, permissions: perm.map(u64::from), rp_id: rp };
            prop_assert_eq!(ClientPinRequest::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn response_round_trip(ka in proptest::option::of(cose_key()), t in proptest::option::of(bytes(48)),
            r in proptest::option::of(0u64..9), pc in proptest::option::of(any::<bool>()), u in proptest::option::of(0u64..9)) {
            let resp = ClientPinResponse { key_agreement: ka, pin_uv_auth_token: t, pin_retries: r, power_cycle_state: pc, uv_retries: u };
            prop_assert_eq!(ClientPinResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = ClientPinRequest::from_cbor(&b);
            let _ = ClientPinResponse::from_cbor(&b);
        }
    }

    #[test]
    fn subcommand_bytes() {
        for b in 0..=255u8 {
            assert_eq!(ClientPinSubcommand::from_byte(b).byte(), b);
        }
        assert_eq!(ClientPinRequest::get_pin_retries().to_request_bytes(), vec![0x06, 0xa1, 0x02, 0x01]);
    }
}

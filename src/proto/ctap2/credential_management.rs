//! authenticatorCredentialManagement (0x0A, CTAP 2.1 §6.8).

use super::util::{map, opt_map, opt_u8, opt_u64};
use super::{
    Command, Ctap2Error, CtapCodec, CtapRequest, PublicKeyCredentialDescriptor, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};
use crate::proto::cbor::{FieldError, MapExt, Value};
use crate::proto::cose::CoseKey;

/// credentialManagement subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialManagementSubcommand {
    /// 0x01 getCredsMetadata.
    GetCredsMetadata,
    /// 0x02 enumerateRPsBegin.
    EnumerateRpsBegin,
    /// 0x03 enumerateRPsGetNextRP.
    EnumerateRpsGetNextRp,
    /// 0x04 enumerateCredentialsBegin.
    EnumerateCredentialsBegin,
    /// 0x05 enumerateCredentialsGetNextCredential.
    EnumerateCredentialsGetNextCredential,
    /// 0x06 deleteCredential.
    DeleteCredential,
    /// 0x07 updateUserInformation.
    UpdateUserInformation,
    /// Anything else.
    Other(u8),
}

impl CredentialManagementSubcommand {
    /// The subcommand byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::GetCredsMetadata => 1,
            Self::EnumerateRpsBegin => 2,
            Self::EnumerateRpsGetNextRp => 3,
            Self::EnumerateCredentialsBegin => 4,
            Self::EnumerateCredentialsGetNextCredential => 5,
            Self::DeleteCredential => 6,
            Self::UpdateUserInformation => 7,
            Self::Other(b) => b,
        }
    }
    /// From the byte (total).
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::GetCredsMetadata,
            2 => Self::EnumerateRpsBegin,
            3 => Self::EnumerateRpsGetNextRp,
            4 => Self::EnumerateCredentialsBegin,
            5 => Self::EnumerateCredentialsGetNextCredential,
            6 => Self::DeleteCredential,
            7 => Self::UpdateUserInformation,
            b => Self::Other(b),
        }
    }
}

/// The subCommandParams map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialManagementParams {
    /// 0x01 rpIDHash.
    pub rp_id_hash: Option<Vec<u8>>,
    /// 0x02 credentialID.
    pub credential_id: Option<PublicKeyCredentialDescriptor>,
    /// 0x03 user.
    pub user: Option<PublicKeyCredentialUserEntity>,
}

impl CredentialManagementParams {
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(h) = &self.rp_id_hash {
            m.push((Value::from(1), Value::Bytes(h.clone())));
        }
        if let Some(c) = &self.credential_id {
            m.push((Value::from(2), c.to_value()));
        }
        if let Some(u) = &self.user {
            m.push((Value::from(3), u.to_value()));
        }
        Value::Map(m)
    }
    /// From a CBOR map.
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self {
            rp_id_hash: v.opt_bytes(1, "rpIDHash")?.map(<[u8]>::to_vec),
            credential_id: v.get_int(2).map(PublicKeyCredentialDescriptor::from_value).transpose()?,
            user: v.get_int(3).map(PublicKeyCredentialUserEntity::from_value).transpose()?,
        })
    }
}

/// An authenticatorCredentialManagement request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialManagementRequest {
    /// 0x01 subCommand.
    pub sub_command: CredentialManagementSubcommand,
    /// 0x02 subCommandParams.
    pub sub_command_params: Option<CredentialManagementParams>,
    /// 0x03 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x04 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl CredentialManagementRequest {
    /// The message `pinUvAuthParam` authenticates: subCommand byte, then
    /// the encoded subCommandParams when present.
    pub fn auth_message(&self) -> Vec<u8> {
        Self::auth_message_for(self.sub_command, self.sub_command_params.as_ref())
    }
    /// [`Self::auth_message`] before the request is built.
    pub fn auth_message_for(
        sub: CredentialManagementSubcommand,
        params: Option<&CredentialManagementParams>,
    ) -> Vec<u8> {
        let mut m = vec![sub.byte()];
        if let Some(p) = params {
            m.extend_from_slice(&p.to_value().to_vec());
        }
        m
    }
}

impl CtapCodec for CredentialManagementRequest {
    fn to_value(&self) -> Value {
        let mut m = vec![(Value::from(1), Value::from(self.sub_command.byte()))];
        if let Some(p) = &self.sub_command_params {
            m.push((Value::from(2), p.to_value()));
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
            sub_command: CredentialManagementSubcommand::from_byte(sub),
            sub_command_params: opt_map(v, 2, "subCommandParams")?
                .map(CredentialManagementParams::from_value)
                .transpose()?,
            pin_uv_auth_protocol: opt_u64(v, 3, "pinUvAuthProtocol")?,
            pin_uv_auth_param: v.opt_bytes(4, "pinUvAuthParam")?.map(<[u8]>::to_vec),
        })
    }
}

impl CtapRequest for CredentialManagementRequest {
    const COMMAND: Command = Command::CredentialManagement;
}

/// An authenticatorCredentialManagement response (members by subcommand).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialManagementResponse {
    /// 0x01 existingResidentCredentialsCount.
    pub existing_resident_credentials_count: Option<u64>,
    /// 0x02 maxPossibleRemainingResidentCredentialsCount.
    pub max_possible_remaining_resident_credentials_count: Option<u64>,
    /// 0x03 rp.
    pub rp: Option<PublicKeyCredentialRpEntity>,
    /// 0x04 rpIDHash.
    pub rp_id_hash: Option<Vec<u8>>,
    /// 0x05 totalRPs.
    pub total_rps: Option<u64>,
    /// 0x06 user.
    pub user: Option<PublicKeyCredentialUserEntity>,
    /// 0x07 credentialID.
    pub credential_id: Option<PublicKeyCredentialDescriptor>,
    /// 0x08 publicKey.
    pub public_key: Option<CoseKey>,
    /// 0x09 totalCredentials.
    pub total_credentials: Option<u64>,
    /// 0x0A credProtect.
    pub cred_protect: Option<u64>,
    /// 0x0B largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
    /// 0x0C thirdPartyPayment (CTAP 2.2).
    pub third_party_payment: Option<bool>,
}

impl CtapCodec for CredentialManagementResponse {
    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        let mut put = |k: i64, v: Option<Value>| {
            if let Some(v) = v {
                m.push((Value::from(k), v));
            }
        };
        put(1, self.existing_resident_credentials_count.map(Value::from));
        put(2, self.max_possible_remaining_resident_credentials_count.map(Value::from));
        put(3, self.rp.as_ref().map(|r| r.to_value()));
        put(4, self.rp_id_hash.clone().map(Value::Bytes));
        put(5, self.total_rps.map(Value::from));
        put(6, self.user.as_ref().map(|u| u.to_value()));
        put(7, self.credential_id.as_ref().map(|c| c.to_value()));
        put(8, self.public_key.as_ref().map(|k| k.to_value()));
        put(9, self.total_credentials.map(Value::from));
        put(10, self.cred_protect.map(Value::from));
        put(11, self.large_blob_key.clone().map(Value::Bytes));
        put(12, self.third_party_payment.map(Value::Bool));
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let public_key = match v.get_int(8) {
            None => None,
            Some(k) => Some(CoseKey::from_value(k).map_err(|_| Ctap2Error::Field(FieldError::Invalid("publicKey")))?),
        };
        Ok(Self {
            existing_resident_credentials_count: opt_u64(v, 1, "existingResidentCredentialsCount")?,
            max_possible_remaining_resident_credentials_count: opt_u64(v, 2, "maxPossibleRemaining")?,
            rp: v.get_int(3).map(PublicKeyCredentialRpEntity::from_value).transpose()?,
            rp_id_hash: v.opt_bytes(4, "rpIDHash")?.map(<[u8]>::to_vec),
            total_rps: opt_u64(v, 5, "totalRPs")?,
            user: v.get_int(6).map(PublicKeyCredentialUserEntity::from_value).transpose()?,
            credential_id: v.get_int(7).map(PublicKeyCredentialDescriptor::from_value).transpose()?,
            public_key,
            total_credentials: opt_u64(v, 9, "totalCredentials")?,
            cred_protect: opt_u64(v, 10, "credProtect")?,
            large_blob_key: v.opt_bytes(11, "largeBlobKey")?.map(<[u8]>::to_vec),
            third_party_payment: v.opt_bool(12, "thirdPartyPayment")?,
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
        fn request_round_trip(sub in any::<u8>(), h in proptest::option::of(bytes(33)), c in proptest::option::of(descriptor()),
            u in proptest::option::of(user()), with_params in any::<bool>(), proto in proptest::option::of(1u64..3), p in proptest::option::of(bytes(33))) {
            let r = CredentialManagementRequest { sub_command: CredentialManagementSubcommand::from_byte(sub),
                sub_command_params: with_params.then_some(CredentialManagementParams { rp_id_hash: h, credential_id: c, user: u }),
                pin_uv_auth_protocol: proto, pin_uv_auth_param: p };
            prop_assert_eq!(CredentialManagementRequest::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn response_round_trip(n in proptest::option::of(any::<u64>()), rp in proptest::option::of(rp()), h in proptest::option::of(bytes(33)),
            u in proptest::option::of(user()), c in proptest::option::of(descriptor()), k in proptest::option::of(cose_key())) {
            let r = CredentialManagementResponse { existing_resident_credentials_count: n, max_possible_remaining_resident_credentials_count: n,
                rp, rp_id_hash: h.clone(), total_rps: n, user: u, credential_id: c, public_key: k, total_credentials: n, cred_protect: n, large_blob_key: h,
                third_party_payment: n.map(|x| x % 2 == 0) };
            prop_assert_eq!(CredentialManagementResponse::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = CredentialManagementRequest::from_cbor(&b);
            let _ = CredentialManagementResponse::from_cbor(&b);
        }
    }
}

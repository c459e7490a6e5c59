//! authenticatorGetAssertion (0x02, CTAP 2.1 §6.2) and
//! authenticatorGetNextAssertion (0x08, §6.3).

use super::make_credential::CommandOptions;
use super::util::{map, opt_array, opt_map, opt_u64};
use super::{
    Command, Ctap2Error, CtapCodec, CtapRequest, PublicKeyCredentialDescriptor, PublicKeyCredentialUserEntity,
};
use crate::proto::auth_data::AuthenticatorData;
use crate::proto::cbor::{FieldError, MapExt, Value};
use crate::proto::extensions::GetAssertionExtensions;

/// An authenticatorGetAssertion request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetAssertionRequest {
    /// 0x01 rpId.
    pub rp_id: String,
    /// 0x02 clientDataHash.
    pub client_data_hash: Vec<u8>,
    /// 0x03 allowList.
    pub allow_list: Option<Vec<PublicKeyCredentialDescriptor>>,
    /// 0x04 extensions.
    pub extensions: Option<GetAssertionExtensions>,
    /// 0x05 options (`up`, `uv`; `rk` is not allowed here).
    pub options: Option<CommandOptions>,
    /// 0x06 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x07 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
}

impl CtapCodec for GetAssertionRequest {
    fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from(1), Value::from(self.rp_id.as_str())),
            (Value::from(2), Value::Bytes(self.client_data_hash.clone())),
        ];
        if let Some(l) = &self.allow_list {
            m.push((Value::from(3), Value::Array(l.iter().map(|d| d.to_value()).collect())));
        }
        if let Some(e) = &self.extensions {
            m.push((Value::from(4), e.to_value()));
        }
        if let Some(o) = &self.options {
            m.push((Value::from(5), o.to_value()));
        }
        if let Some(p) = &self.pin_uv_auth_param {
            m.push((Value::from(6), Value::Bytes(p.clone())));
        }
        if let Some(p) = self.pin_uv_auth_protocol {
            m.push((Value::from(7), Value::from(p)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let rp_id = v.opt_text(1, "rpId")?.ok_or(FieldError::Missing("rpId"))?.to_owned();
        let client_data_hash = v.req_bytes(2, "clientDataHash")?.to_vec();
        let allow_list = opt_array(v, 3, "allowList", PublicKeyCredentialDescriptor::from_value)?;
        let extensions = match opt_map(v, 4, "extensions")? {
            None => None,
            Some(e) => Some(GetAssertionExtensions::from_value(e)?),
        };
        let options = match opt_map(v, 5, "options")? {
            None => None,
            Some(o) => Some(CommandOptions::from_value(o)?),
        };
        Ok(Self {
            rp_id,
            client_data_hash,
            allow_list,
            extensions,
            options,
            pin_uv_auth_param: v.opt_bytes(6, "pinUvAuthParam")?.map(<[u8]>::to_vec),
            pin_uv_auth_protocol: opt_u64(v, 7, "pinUvAuthProtocol")?,
        })
    }
}

impl CtapRequest for GetAssertionRequest {
    const COMMAND: Command = Command::GetAssertion;
}

/// An authenticatorGetNextAssertion request (no parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetNextAssertionRequest;

impl CtapCodec for GetNextAssertionRequest {
    fn to_value(&self) -> Value {
        Value::Map(Vec::new())
    }
    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self)
    }
}

impl CtapRequest for GetNextAssertionRequest {
    const COMMAND: Command = Command::GetNextAssertion;
}

/// An authenticatorGetAssertion / authenticatorGetNextAssertion response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetAssertionResponse {
    /// 0x01 credential (may be omitted when the allowList had exactly one entry).
    pub credential: Option<PublicKeyCredentialDescriptor>,
    /// 0x02 authData, raw (the signature covers these bytes).
    pub auth_data: Vec<u8>,
    /// 0x03 signature.
    pub signature: Vec<u8>,
    /// 0x04 user (discoverable credentials).
    pub user: Option<PublicKeyCredentialUserEntity>,
    /// 0x05 numberOfCredentials (first response of a discoverable sign-in).
    pub number_of_credentials: Option<u64>,
    /// 0x06 userSelected.
    pub user_selected: Option<bool>,
    /// 0x07 largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl GetAssertionResponse {
    /// Parse the authenticator data.
    pub fn parsed_auth_data(&self) -> Result<AuthenticatorData, crate::proto::auth_data::AuthDataError> {
        AuthenticatorData::parse(&self.auth_data)
    }
}

impl CtapCodec for GetAssertionResponse {
    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(c) = &self.credential {
            m.push((Value::from(1), c.to_value()));
        }
        m.push((Value::from(2), Value::Bytes(self.auth_data.clone())));
        m.push((Value::from(3), Value::Bytes(self.signature.clone())));
        if let Some(u) = &self.user {
            m.push((Value::from(4), u.to_value()));
        }
        if let Some(n) = self.number_of_credentials {
            m.push((Value::from(5), Value::from(n)));
        }
        if let Some(b) = self.user_selected {
            m.push((Value::from(6), Value::Bool(b)));
        }
        if let Some(k) = &self.large_blob_key {
            m.push((Value::from(7), Value::Bytes(k.clone())));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let credential = match v.get_int(1) {
            None => None,
            Some(c) => Some(PublicKeyCredentialDescriptor::from_value(c)?),
        };
        let user = match v.get_int(4) {
            None => None,
            Some(u) => Some(PublicKeyCredentialUserEntity::from_value(u)?),
        };
        Ok(Self {
            credential,
            auth_data: v.req_bytes(2, "authData")?.to_vec(),
            signature: v.req_bytes(3, "signature")?.to_vec(),
            user,
            number_of_credentials: opt_u64(v, 5, "numberOfCredentials")?,
            user_selected: v.opt_bool(6, "userSelected")?,
            large_blob_key: v.opt_bytes(7, "largeBlobKey")?.map(<[u8]>::to_vec),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn python_fido2_get_assertion_response() {
        let case = vector_case(|c| c["command_byte_hex"] == "02");
        let r = GetAssertionResponse::from_cbor(&hex(case["response_cbor_hex"].as_str().unwrap())).unwrap();
        let e = &case["expected"];
        assert_eq!(r.credential.as_ref().unwrap().id, hex(e["credential"]["id_hex"].as_str().unwrap()));
        assert_eq!(r.auth_data, hex(e["authData_hex"].as_str().unwrap()));
        assert_eq!(r.signature, hex(e["signature_hex"].as_str().unwrap()));
        assert_eq!(r.parsed_auth_data().unwrap().sign_count, 29);
        assert!(r.user.is_none() && r.number_of_credentials.is_none());
        assert_eq!(GetAssertionResponse::from_cbor(&r.to_cbor()).unwrap(), r);
        // The request python-fido2 checks: 0x02 || {1: 1, 2: 2} is not a valid typed request (rpId must be text).
        assert!(GetAssertionRequest::from_cbor(&[0xa2, 0x01, 0x01, 0x02, 0x02]).is_err());
    }

    fn request() -> impl Strategy<Value = GetAssertionRequest> {
        (
            text(),
            bytes(33),
            proptest::option::of(proptest::collection::vec(descriptor(), 0..3)),
            proptest::option::of((proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()))),
            proptest::option::of(bytes(33)),
            proptest::option::of(1u64..3),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(rp_id, cdh, allow, opts, param, proto, cb)| GetAssertionRequest {
                rp_id,
                client_data_hash: cdh,
                allow_list: allow,
                extensions: cb.map(|c| GetAssertionExtensions { cred_blob: Some(c), ..Default::default() }),
                options: opts.map(|(up, uv)| CommandOptions { rk: None, up, uv }),
                pin_uv_auth_param: param,
                pin_uv_auth_protocol: proto,
            })
    }

    proptest! {
        #[test]
        fn request_round_trip(r in request()) {
            prop_assert_eq!(GetAssertionRequest::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn response_round_trip(cred in proptest::option::of(descriptor()), ad in bytes(100), sig in bytes(72),
            u in proptest::option::of(user()), n in proptest::option::of(any::<u64>()), sel in proptest::option::of(any::<bool>()),
            lbk in proptest::option::of(bytes(33))) {
            let r = GetAssertionResponse { credential: cred, auth_data: ad, signature: sig, user: u, number_of_credentials: n, user_selected: sel, large_blob_key: lbk };
            prop_assert_eq!(GetAssertionResponse::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = GetAssertionRequest::from_cbor(&b);
            let _ = GetAssertionResponse::from_cbor(&b);
        }
    }
}

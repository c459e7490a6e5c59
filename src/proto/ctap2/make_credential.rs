//! authenticatorMakeCredential (0x01, CTAP 2.1 §6.1; attestationFormatsPreference of CTAP 2.2).

use super::util::{map, opt_array, opt_map, opt_text_array, opt_u64, text_array};
use super::{
    Command, Ctap2Error, CtapCodec, CtapRequest, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use crate::proto::attestation::AttestationObject;
use crate::proto::auth_data::AuthenticatorData;
use crate::proto::cbor::{FieldError, MapExt, Value};
use crate::proto::extensions::MakeCredentialExtensions;

/// The `options` map of makeCredential and getAssertion: `rk`, `up`, `uv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandOptions {
    /// Resident (discoverable) credential.
    pub rk: Option<bool>,
    /// User presence.
    pub up: Option<bool>,
    /// Built-in user verification.
    pub uv: Option<bool>,
}

impl CommandOptions {
    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        self.rk.is_none() && self.up.is_none() && self.uv.is_none()
    }
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        for (k, v) in [("rk", self.rk), ("up", self.up), ("uv", self.uv)] {
            if let Some(b) = v {
                m.push((Value::from(k), Value::Bool(b)));
            }
        }
        Value::Map(m)
    }
    /// From a CBOR map. Unknown options are ignored; known ones must be booleans.
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        let m = v.as_map().ok_or(Ctap2Error::Field(FieldError::Invalid("options")))?;
        let mut o = Self::default();
        for (k, x) in m {
            let slot = match k.as_text() {
                Some("rk") => &mut o.rk,
                Some("up") => &mut o.up,
                Some("uv") => &mut o.uv,
                Some(_) => continue,
                None => return Err(Ctap2Error::Field(FieldError::Invalid("options key"))),
            };
            *slot = Some(x.as_bool().ok_or(Ctap2Error::Field(FieldError::Invalid("option value")))?);
        }
        Ok(o)
    }
}

/// An authenticatorMakeCredential request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MakeCredentialRequest {
    /// 0x01 clientDataHash.
    pub client_data_hash: Vec<u8>,
    /// 0x02 rp.
    pub rp: PublicKeyCredentialRpEntity,
    /// 0x03 user.
    pub user: PublicKeyCredentialUserEntity,
    /// 0x04 pubKeyCredParams, in the RP's order of preference.
    pub pub_key_cred_params: Vec<PublicKeyCredentialParameters>,
    /// 0x05 excludeList.
    pub exclude_list: Option<Vec<PublicKeyCredentialDescriptor>>,
    /// 0x06 extensions.
    pub extensions: Option<MakeCredentialExtensions>,
    /// 0x07 options.
    pub options: Option<CommandOptions>,
    /// 0x08 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x09 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x0A enterpriseAttestation.
    pub enterprise_attestation: Option<u64>,
    /// 0x0B attestationFormatsPreference (CTAP 2.2), most preferred first.
    pub attestation_formats_preference: Option<Vec<String>>,
}

impl CtapCodec for MakeCredentialRequest {
    fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from(1), Value::Bytes(self.client_data_hash.clone())),
            (Value::from(2), self.rp.to_value()),
            (Value::from(3), self.user.to_value()),
            (Value::from(4), Value::Array(self.pub_key_cred_params.iter().map(|p| p.to_value()).collect())),
        ];
        if let Some(l) = &self.exclude_list {
            m.push((Value::from(5), Value::Array(l.iter().map(|d| d.to_value()).collect())));
        }
        if let Some(e) = &self.extensions {
            m.push((Value::from(6), e.to_value()));
        }
        if let Some(o) = &self.options {
            m.push((Value::from(7), o.to_value()));
        }
        if let Some(p) = &self.pin_uv_auth_param {
            m.push((Value::from(8), Value::Bytes(p.clone())));
        }
        if let Some(p) = self.pin_uv_auth_protocol {
            m.push((Value::from(9), Value::from(p)));
        }
        if let Some(p) = self.enterprise_attestation {
            m.push((Value::from(10), Value::from(p)));
        }
        if let Some(f) = &self.attestation_formats_preference {
            m.push((Value::from(11), text_array(f)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let client_data_hash = v.req_bytes(1, "clientDataHash")?.to_vec();
        let rp = PublicKeyCredentialRpEntity::from_value(v.get_int(2).ok_or(FieldError::Missing("rp"))?)?;
        let user = PublicKeyCredentialUserEntity::from_value(v.get_int(3).ok_or(FieldError::Missing("user"))?)?;
        let pub_key_cred_params = opt_array(v, 4, "pubKeyCredParams", PublicKeyCredentialParameters::from_value)?
            .ok_or(FieldError::Missing("pubKeyCredParams"))?;
        let exclude_list = opt_array(v, 5, "excludeList", PublicKeyCredentialDescriptor::from_value)?;
        let extensions = match opt_map(v, 6, "extensions")? {
            None => None,
            Some(e) => Some(MakeCredentialExtensions::from_value(e)?),
        };
        let options = match opt_map(v, 7, "options")? {
            None => None,
            Some(o) => Some(CommandOptions::from_value(o)?),
        };
        Ok(Self {
            client_data_hash,
            rp,
            user,
            pub_key_cred_params,
            exclude_list,
            extensions,
            options,
            pin_uv_auth_param: v.opt_bytes(8, "pinUvAuthParam")?.map(<[u8]>::to_vec),
            pin_uv_auth_protocol: opt_u64(v, 9, "pinUvAuthProtocol")?,
            enterprise_attestation: opt_u64(v, 10, "enterpriseAttestation")?,
            attestation_formats_preference: opt_text_array(v, 11, "attestationFormatsPreference")?,
        })
    }
}

impl CtapRequest for MakeCredentialRequest {
    const COMMAND: Command = Command::MakeCredential;
}

/// An authenticatorMakeCredential response.
#[derive(Debug, Clone, PartialEq)]
pub struct MakeCredentialResponse {
    /// 0x01 fmt.
    pub fmt: String,
    /// 0x02 authData, as raw bytes (the attestation signature covers them).
    pub auth_data: Vec<u8>,
    /// 0x03 attStmt.
    pub att_stmt: Value,
    /// 0x04 epAtt.
    pub ep_att: Option<bool>,
    /// 0x05 largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl MakeCredentialResponse {
    /// Parse the authenticator data.
    pub fn parsed_auth_data(&self) -> Result<AuthenticatorData, crate::proto::auth_data::AuthDataError> {
        AuthenticatorData::parse(&self.auth_data)
    }
    /// The WebAuthn attestation object (`fmt`, `attStmt`, `authData`).
    pub fn to_attestation_object(&self) -> Result<AttestationObject, crate::proto::auth_data::AuthDataError> {
        Ok(AttestationObject {
            fmt: self.fmt.clone(),
            att_stmt: self.att_stmt.clone(),
            auth_data: self.parsed_auth_data()?,
            auth_data_raw: self.auth_data.clone(),
        })
    }
}

impl CtapCodec for MakeCredentialResponse {
    fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from(1), Value::from(self.fmt.as_str())),
            (Value::from(2), Value::Bytes(self.auth_data.clone())),
            (Value::from(3), self.att_stmt.clone()),
        ];
        if let Some(b) = self.ep_att {
            m.push((Value::from(4), Value::Bool(b)));
        }
        if let Some(k) = &self.large_blob_key {
            m.push((Value::from(5), Value::Bytes(k.clone())));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let fmt = v.opt_text(1, "fmt")?.ok_or(FieldError::Missing("fmt"))?.to_owned();
        let auth_data = v.req_bytes(2, "authData")?.to_vec();
        let att_stmt = opt_map(v, 3, "attStmt")?.ok_or(FieldError::Missing("attStmt"))?.clone();
        Ok(Self {
            fmt,
            auth_data,
            att_stmt,
            ep_att: v.opt_bool(4, "epAtt")?,
            large_blob_key: v.opt_bytes(5, "largeBlobKey")?.map(<[u8]>::to_vec),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn python_fido2_make_credential_response() {
        let case = vector_case(|c| c["command_byte_hex"] == "01");
        let r = MakeCredentialResponse::from_cbor(&hex(case["response_cbor_hex"].as_str().unwrap())).unwrap();
        assert_eq!(r.fmt, "packed");
        assert_eq!(r.auth_data, hex(case["expected"]["authData_hex"].as_str().unwrap()));
        let ad = r.parsed_auth_data().unwrap();
        assert_eq!(ad.sign_count, 28);
        assert_eq!(r.att_stmt.get_text("alg").and_then(Value::as_i64), Some(-7));
        assert_eq!(MakeCredentialResponse::from_cbor(&r.to_cbor()).unwrap(), r);
    }

    fn request() -> impl Strategy<Value = MakeCredentialRequest> {
        (
            bytes(33),
            rp(),
            user(),
            proptest::collection::vec(any::<i32>(), 0..4),
            proptest::option::of(proptest::collection::vec(descriptor(), 0..3)),
            proptest::option::of((proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()))),
            proptest::option::of(bytes(33)),
            proptest::option::of(1u64..3),
            proptest::option::of(proptest::option::of(1u8..4)),
        )
            .prop_map(|(cdh, rp, user, algs, exclude, opts, param, proto, cp)| MakeCredentialRequest {
                client_data_hash: cdh,
                rp,
                user,
                pub_key_cred_params: algs
                    .into_iter()
                    .map(|a| PublicKeyCredentialParameters::public_key(a as i64))
                    .collect(),
                exclude_list: exclude,
                extensions: cp.map(|c| MakeCredentialExtensions { cred_protect: c, ..Default::default() }),
                options: opts.map(|(rk, up)| CommandOptions { rk, up, uv: None }),
                pin_uv_auth_param: param,
                pin_uv_auth_protocol: proto,
                enterprise_attestation: proto,
                attestation_formats_preference: proto.map(|p| vec!["none".into(), format!("f{p}")]),
            })
    }

    proptest! {
        #[test]
        fn request_round_trip(r in request()) {
            prop_assert_eq!(MakeCredentialRequest::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn response_round_trip(ad in bytes(200), lbk in proptest::option::of(bytes(33)), ep in proptest::option::of(any::<bool>())) {
            let r = MakeCredentialResponse { fmt: "packed".into(), auth_data: ad, att_stmt: Value::Map(vec![(Value::from("alg"), Value::from(-7))]), ep_att: ep, large_blob_key: lbk };
            prop_assert_eq!(MakeCredentialResponse::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = MakeCredentialRequest::from_cbor(&b);
            let _ = MakeCredentialResponse::from_cbor(&b);
        }
    }
}

//! Extension identifiers and the authenticator-side (CBOR) values of the
//! extensions hwkey implements: credProtect, hmac-secret, hmac-secret-mc,
//! credBlob, largeBlobKey, minPinLength, thirdPartyPayment; client-side ones (credProps, prf, appid,
//! appidExclude, largeBlob) are in [`super::webauthn`].

/// Extension identifiers as they appear in CBOR maps and getInfo.
pub mod id {
    /// credProtect.
    pub const CRED_PROTECT: &str = "credProtect";
    /// hmac-secret.
    pub const HMAC_SECRET: &str = "hmac-secret";
    /// hmac-secret-mc (CTAP 2.2: hmac-secret evaluated at makeCredential).
    pub const HMAC_SECRET_MC: &str = "hmac-secret-mc";
    /// credBlob.
    pub const CRED_BLOB: &str = "credBlob";
    /// largeBlobKey.
    pub const LARGE_BLOB_KEY: &str = "largeBlobKey";
    /// minPinLength.
    pub const MIN_PIN_LENGTH: &str = "minPinLength";
    /// thirdPartyPayment (CTAP 2.2: the credential may sign payments started by another party).
    pub const THIRD_PARTY_PAYMENT: &str = "thirdPartyPayment";
}

/// credProtect levels (CTAP 2.1 §12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum CredProtect {
    /// 1: userVerificationOptional.
    UserVerificationOptional = 1,
    /// 2: userVerificationOptionalWithCredentialIDList.
    UserVerificationOptionalWithCredentialIdList = 2,
    /// 3: userVerificationRequired.
    UserVerificationRequired = 3,
}

impl CredProtect {
    /// From the CBOR integer.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::UserVerificationOptional),
            2 => Some(Self::UserVerificationOptionalWithCredentialIdList),
            3 => Some(Self::UserVerificationRequired),
            _ => None,
        }
    }
    /// The WebAuthn policy name.
    pub fn policy_name(self) -> &'static str {
        match self {
            Self::UserVerificationOptional => "userVerificationOptional",
            Self::UserVerificationOptionalWithCredentialIdList => "userVerificationOptionalWithCredentialIDList",
            Self::UserVerificationRequired => "userVerificationRequired",
        }
    }
    /// From the WebAuthn policy name.
    pub fn from_policy_name(s: &str) -> Option<Self> {
        match s {
            "userVerificationOptional" => Some(Self::UserVerificationOptional),
            "userVerificationOptionalWithCredentialIDList" => Some(Self::UserVerificationOptionalWithCredentialIdList),
            "userVerificationRequired" => Some(Self::UserVerificationRequired),
            _ => None,
        }
    }
}

use super::cbor::{FieldError, Value};
use super::cose::CoseKey;

fn ext_invalid(name: &'static str) -> FieldError {
    FieldError::Invalid(name)
}

fn text_map(v: &Value, name: &'static str) -> Result<Vec<(String, Value)>, FieldError> {
    let m = v.as_map().ok_or(ext_invalid(name))?;
    m.iter().map(|(k, v)| Ok((k.as_text().ok_or(ext_invalid(name))?.to_owned(), v.clone()))).collect()
}

fn build_text_map(entries: Vec<(String, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())
}

fn as_bool(v: &Value, name: &'static str) -> Result<bool, FieldError> {
    v.as_bool().ok_or(ext_invalid(name))
}

fn as_bytes(v: &Value, name: &'static str) -> Result<Vec<u8>, FieldError> {
    v.as_bytes().map(<[u8]>::to_vec).ok_or(ext_invalid(name))
}

/// The hmac-secret getAssertion input (CTAP 2.1 §12.5):
/// `{1: keyAgreement, 2: saltEnc, 3: saltAuth, 4?: pinUvAuthProtocol}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HmacSecretInput {
    /// The platform's key-agreement public key (COSE_Key, ECDH-ES+HKDF-256).
    pub key_agreement: CoseKey,
    /// salt1 (32 bytes) or salt1 || salt2 (64 bytes), encrypted under the shared secret.
    pub salt_enc: Vec<u8>,
    /// authenticate(sharedSecret, saltEnc).
    pub salt_auth: Vec<u8>,
    /// The PIN/UV auth protocol; absent means protocol one.
    pub pin_uv_auth_protocol: Option<u8>,
}

impl HmacSecretInput {
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from(1), self.key_agreement.to_value()),
            (Value::from(2), Value::Bytes(self.salt_enc.clone())),
            (Value::from(3), Value::Bytes(self.salt_auth.clone())),
        ];
        if let Some(p) = self.pin_uv_auth_protocol {
            m.push((Value::from(4), Value::from(p)));
        }
        Value::Map(m)
    }
    /// From a CBOR map.
    pub fn from_value(v: &Value) -> Result<Self, FieldError> {
        use super::cbor::MapExt;
        let ka = v.get_int(1).ok_or(FieldError::Missing("hmac-secret keyAgreement"))?;
        let key_agreement = CoseKey::from_value(ka).map_err(|_| ext_invalid("hmac-secret keyAgreement"))?;
        let salt_enc = v.req_bytes(2, "hmac-secret saltEnc")?.to_vec();
        let salt_auth = v.req_bytes(3, "hmac-secret saltAuth")?.to_vec();
        let pin_uv_auth_protocol = match v.opt_int(4, "hmac-secret pinUvAuthProtocol")? {
            None => None,
            Some(p) => Some(u8::try_from(p).map_err(|_| ext_invalid("hmac-secret pinUvAuthProtocol"))?),
        };
        Ok(Self { key_agreement, salt_enc, salt_auth, pin_uv_auth_protocol })
    }
}

/// Authenticator extension inputs of authenticatorMakeCredential (key 6).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MakeCredentialExtensions {
    /// credProtect level (1..=3; other values are passed through for the authenticator to reject).
    pub cred_protect: Option<u8>,
    /// hmac-secret: `true` to create the credential with a CredRandom.
    pub hmac_secret: Option<bool>,
    /// hmac-secret-mc (CTAP 2.2): evaluate at creation.
    pub hmac_secret_mc: Option<HmacSecretInput>,
    /// credBlob: bytes to store with the credential.
    pub cred_blob: Option<Vec<u8>>,
    /// largeBlobKey: `true` to create a large-blob key (resident credentials only).
    pub large_blob_key: Option<bool>,
    /// minPinLength: `true` to ask for the minimum PIN length (for permitted RPs).
    pub min_pin_length: Option<bool>,
    /// thirdPartyPayment: `true` to enable the credential for third-party payments.
    pub third_party_payment: Option<bool>,
    /// Extensions this type does not know, kept as they came.
    pub other: Vec<(String, Value)>,
}

impl MakeCredentialExtensions {
    /// True when no extension is requested.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
    /// As a CBOR map with text keys.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(c) = self.cred_protect {
            m.push((id::CRED_PROTECT.to_owned(), Value::from(c)));
        }
        if let Some(b) = self.hmac_secret {
            m.push((id::HMAC_SECRET.to_owned(), Value::Bool(b)));
        }
        if let Some(h) = &self.hmac_secret_mc {
            m.push((id::HMAC_SECRET_MC.to_owned(), h.to_value()));
        }
        if let Some(b) = &self.cred_blob {
            m.push((id::CRED_BLOB.to_owned(), Value::Bytes(b.clone())));
        }
        if let Some(b) = self.large_blob_key {
            m.push((id::LARGE_BLOB_KEY.to_owned(), Value::Bool(b)));
        }
        if let Some(b) = self.min_pin_length {
            m.push((id::MIN_PIN_LENGTH.to_owned(), Value::Bool(b)));
        }
        if let Some(b) = self.third_party_payment {
            m.push((id::THIRD_PARTY_PAYMENT.to_owned(), Value::Bool(b)));
        }
        m.extend(self.other.iter().cloned());
        build_text_map(m)
    }
    /// From a CBOR map with text keys.
    pub fn from_value(v: &Value) -> Result<Self, FieldError> {
        let mut out = Self::default();
        for (k, x) in text_map(v, "extensions")? {
            match k.as_str() {
                id::CRED_PROTECT => {
                    out.cred_protect =
                        Some(x.as_u64().and_then(|c| u8::try_from(c).ok()).ok_or(ext_invalid("credProtect"))?)
                }
                id::HMAC_SECRET => out.hmac_secret = Some(as_bool(&x, "hmac-secret")?),
                id::HMAC_SECRET_MC => out.hmac_secret_mc = Some(HmacSecretInput::from_value(&x)?),
                id::CRED_BLOB => out.cred_blob = Some(as_bytes(&x, "credBlob")?),
                id::LARGE_BLOB_KEY => out.large_blob_key = Some(as_bool(&x, "largeBlobKey")?),
                id::MIN_PIN_LENGTH => out.min_pin_length = Some(as_bool(&x, "minPinLength")?),
                id::THIRD_PARTY_PAYMENT => out.third_party_payment = Some(as_bool(&x, "thirdPartyPayment")?),
                _ => out.other.push((k, x)),
            }
        }
        Ok(out)
    }
}

/// Authenticator extension inputs of authenticatorGetAssertion (key 4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetAssertionExtensions {
    /// hmac-secret: encrypted salts.
    pub hmac_secret: Option<HmacSecretInput>,
    /// credBlob: `true` to read the stored blob.
    pub cred_blob: Option<bool>,
    /// largeBlobKey: `true` to return the credential's large-blob key.
    pub large_blob_key: Option<bool>,
    /// thirdPartyPayment: `true` to learn whether the credential is enabled for payments.
    pub third_party_payment: Option<bool>,
    /// Extensions this type does not know, kept as they came.
    pub other: Vec<(String, Value)>,
}

impl GetAssertionExtensions {
    /// True when no extension is requested.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
    /// As a CBOR map with text keys.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(h) = &self.hmac_secret {
            m.push((id::HMAC_SECRET.to_owned(), h.to_value()));
        }
        if let Some(b) = self.cred_blob {
            m.push((id::CRED_BLOB.to_owned(), Value::Bool(b)));
        }
        if let Some(b) = self.large_blob_key {
            m.push((id::LARGE_BLOB_KEY.to_owned(), Value::Bool(b)));
        }
        if let Some(b) = self.third_party_payment {
            m.push((id::THIRD_PARTY_PAYMENT.to_owned(), Value::Bool(b)));
        }
        m.extend(self.other.iter().cloned());
        build_text_map(m)
    }
    /// From a CBOR map with text keys.
    pub fn from_value(v: &Value) -> Result<Self, FieldError> {
        let mut out = Self::default();
        for (k, x) in text_map(v, "extensions")? {
            match k.as_str() {
                id::THIRD_PARTY_PAYMENT => out.third_party_payment = Some(as_bool(&x, "thirdPartyPayment")?),
                id::HMAC_SECRET => out.hmac_secret = Some(HmacSecretInput::from_value(&x)?),
                id::CRED_BLOB => out.cred_blob = Some(as_bool(&x, "credBlob")?),
                id::LARGE_BLOB_KEY => out.large_blob_key = Some(as_bool(&x, "largeBlobKey")?),
                _ => out.other.push((k, x)),
            }
        }
        Ok(out)
    }
}

/// Authenticator extension outputs in the authenticator data of a new credential.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MakeCredentialExtensionOutputs {
    /// credProtect: the level applied.
    pub cred_protect: Option<u8>,
    /// hmac-secret: `true` if the credential has a CredRandom.
    pub hmac_secret: Option<bool>,
    /// hmac-secret-mc: encrypted outputs.
    pub hmac_secret_mc: Option<Vec<u8>>,
    /// credBlob: `true` if the blob was stored.
    pub cred_blob: Option<bool>,
    /// minPinLength: the current minimum PIN length.
    pub min_pin_length: Option<u64>,
    /// Outputs this type does not know.
    pub other: Vec<(String, Value)>,
}

impl MakeCredentialExtensionOutputs {
    /// True when there is no output.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
    /// As a CBOR map with text keys.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(c) = self.cred_protect {
            m.push((id::CRED_PROTECT.to_owned(), Value::from(c)));
        }
        if let Some(b) = self.hmac_secret {
            m.push((id::HMAC_SECRET.to_owned(), Value::Bool(b)));
        }
        if let Some(b) = &self.hmac_secret_mc {
            m.push((id::HMAC_SECRET_MC.to_owned(), Value::Bytes(b.clone())));
        }
        if let Some(b) = self.cred_blob {
            m.push((id::CRED_BLOB.to_owned(), Value::Bool(b)));
        }
        if let Some(n) = self.min_pin_length {
            m.push((id::MIN_PIN_LENGTH.to_owned(), Value::from(n)));
        }
        m.extend(self.other.iter().cloned());
        build_text_map(m)
    }
    /// From a CBOR map with text keys.
    pub fn from_value(v: &Value) -> Result<Self, FieldError> {
        let mut out = Self::default();
        for (k, x) in text_map(v, "extension outputs")? {
            match k.as_str() {
                id::CRED_PROTECT => {
                    out.cred_protect =
                        Some(x.as_u64().and_then(|c| u8::try_from(c).ok()).ok_or(ext_invalid("credProtect"))?)
                }
                id::HMAC_SECRET => out.hmac_secret = Some(as_bool(&x, "hmac-secret")?),
                id::HMAC_SECRET_MC => out.hmac_secret_mc = Some(as_bytes(&x, "hmac-secret-mc")?),
                id::CRED_BLOB => out.cred_blob = Some(as_bool(&x, "credBlob")?),
                id::MIN_PIN_LENGTH => out.min_pin_length = Some(x.as_u64().ok_or(ext_invalid("minPinLength"))?),
                _ => out.other.push((k, x)),
            }
        }
        Ok(out)
    }
}

/// Authenticator extension outputs in the authenticator data of an assertion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetAssertionExtensionOutputs {
    /// hmac-secret: output1 (|| output2), encrypted under the shared secret.
    pub hmac_secret: Option<Vec<u8>>,
    /// credBlob: the stored blob (empty if none).
    pub cred_blob: Option<Vec<u8>>,
    /// thirdPartyPayment: whether the credential is enabled for third-party payments.
    pub third_party_payment: Option<bool>,
    /// Outputs this type does not know.
    pub other: Vec<(String, Value)>,
}

impl GetAssertionExtensionOutputs {
    /// True when there is no output.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
    /// As a CBOR map with text keys.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(b) = &self.hmac_secret {
            m.push((id::HMAC_SECRET.to_owned(), Value::Bytes(b.clone())));
        }
        if let Some(b) = &self.cred_blob {
            m.push((id::CRED_BLOB.to_owned(), Value::Bytes(b.clone())));
        }
        if let Some(b) = self.third_party_payment {
            m.push((id::THIRD_PARTY_PAYMENT.to_owned(), Value::Bool(b)));
        }
        m.extend(self.other.iter().cloned());
        build_text_map(m)
    }
    /// From a CBOR map with text keys.
    pub fn from_value(v: &Value) -> Result<Self, FieldError> {
        let mut out = Self::default();
        for (k, x) in text_map(v, "extension outputs")? {
            match k.as_str() {
                id::HMAC_SECRET => out.hmac_secret = Some(as_bytes(&x, "hmac-secret")?),
                id::CRED_BLOB => out.cred_blob = Some(as_bytes(&x, "credBlob")?),
                id::THIRD_PARTY_PAYMENT => out.third_party_payment = Some(as_bool(&x, "thirdPartyPayment")?),
                _ => out.other.push((k, x)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> CoseKey {
        CoseKey::Ec2 {
            alg: Some(super::super::cose::CoseAlgorithm::ECDH_ES_HKDF_256),
            crv: 1,
            x: vec![1; 32],
            y: vec![2; 32],
        }
    }

    proptest! {
        #[test]
        fn mc_extensions_round_trip(cp in proptest::option::of(1u8..4), hs in proptest::option::of(any::<bool>()),
            blob in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)), lbk in proptest::option::of(any::<bool>()),
            mpl in proptest::option::of(any::<bool>()), other in proptest::option::of(any::<u32>())) {
            let e = MakeCredentialExtensions { cred_protect: cp, hmac_secret: hs, hmac_secret_mc: None, cred_blob: blob,
                large_blob_key: lbk, min_pin_length: mpl, third_party_payment: hs, other: other.map(|o| vec![("x-other".to_owned(), Value::from(o))]).unwrap_or_default() };
            prop_assert_eq!(MakeCredentialExtensions::from_value(&e.to_value()).unwrap(), e);
        }

        #[test]
        fn ga_extensions_round_trip(salt in proptest::collection::vec(any::<u8>(), 0..80), p in proptest::option::of(1u8..3),
            cb in proptest::option::of(any::<bool>()), lbk in proptest::option::of(any::<bool>())) {
            let e = GetAssertionExtensions { hmac_secret: Some(HmacSecretInput { key_agreement: key(), salt_enc: salt.clone(),
                salt_auth: salt, pin_uv_auth_protocol: p }), cred_blob: cb, large_blob_key: lbk, third_party_payment: cb, other: vec![] };
            prop_assert_eq!(GetAssertionExtensions::from_value(&e.to_value()).unwrap(), e);
            let o = GetAssertionExtensionOutputs { hmac_secret: Some(vec![1, 2]), cred_blob: Some(vec![]), third_party_payment: lbk, other: vec![] };
            prop_assert_eq!(GetAssertionExtensionOutputs::from_value(&o.to_value()).unwrap(), o);
            let o = MakeCredentialExtensionOutputs { cred_protect: Some(2), hmac_secret: Some(true), hmac_secret_mc: None,
                cred_blob: cb, min_pin_length: Some(4), other: vec![] };
            prop_assert_eq!(MakeCredentialExtensionOutputs::from_value(&o.to_value()).unwrap(), o);
        }
    }

    #[test]
    fn wrong_types_are_errors() {
        let v = Value::Map(vec![(Value::from("hmac-secret"), Value::from(1))]);
        assert!(MakeCredentialExtensions::from_value(&v).is_err());
        assert!(GetAssertionExtensions::from_value(&v).is_err());
        assert!(MakeCredentialExtensions::from_value(&Value::from(1)).is_err());
    }
}

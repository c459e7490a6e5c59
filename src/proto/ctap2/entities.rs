//! The CBOR forms of the WebAuthn entities that CTAP2 messages carry:
//! relying party, user, credential descriptor and credential parameters.

use super::Ctap2Error;
use crate::proto::cbor::{FieldError, MapBuilder, Value};

fn invalid(name: &'static str) -> Ctap2Error {
    Ctap2Error::Field(FieldError::Invalid(name))
}

fn opt_text_key(v: &Value, key: &str, name: &'static str) -> Result<Option<String>, Ctap2Error> {
    match v.get_text(key) {
        None => Ok(None),
        Some(x) => x.as_text().map(|s| Some(s.to_owned())).ok_or(invalid(name)),
    }
}

/// `PublicKeyCredentialRpEntity` as CBOR: `{"id": text, "name"?: text}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKeyCredentialRpEntity {
    /// The RP ID.
    pub id: String,
    /// Human-palatable name.
    pub name: Option<String>,
}

impl PublicKeyCredentialRpEntity {
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = vec![(Value::from("id"), Value::from(self.id.as_str()))];
        if let Some(n) = &self.name {
            m.push((Value::from("name"), Value::from(n.as_str())));
        }
        Value::Map(m)
    }
    /// From a CBOR map; unknown keys are ignored.
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        if v.as_map().is_none() {
            return Err(invalid("rp"));
        }
        let id = opt_text_key(v, "id", "rp.id")?.ok_or(Ctap2Error::Field(FieldError::Missing("rp.id")))?;
        Ok(Self { id, name: opt_text_key(v, "name", "rp.name")? })
    }
}

/// `PublicKeyCredentialUserEntity` as CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKeyCredentialUserEntity {
    /// The user handle (at most 64 bytes).
    pub id: Vec<u8>,
    /// Account name.
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

impl PublicKeyCredentialUserEntity {
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = vec![(Value::from("id"), Value::Bytes(self.id.clone()))];
        if let Some(n) = &self.name {
            m.push((Value::from("name"), Value::from(n.as_str())));
        }
        if let Some(n) = &self.display_name {
            m.push((Value::from("displayName"), Value::from(n.as_str())));
        }
        Value::Map(m)
    }
    /// From a CBOR map; unknown keys (e.g. `icon`) are ignored.
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        if v.as_map().is_none() {
            return Err(invalid("user"));
        }
        let id = match v.get_text("id") {
            None => return Err(Ctap2Error::Field(FieldError::Missing("user.id"))),
            Some(x) => x.as_bytes().ok_or(invalid("user.id"))?.to_vec(),
        };
        Ok(Self {
            id,
            name: opt_text_key(v, "name", "user.name")?,
            display_name: opt_text_key(v, "displayName", "user.displayName")?,
        })
    }
}

/// `PublicKeyCredentialDescriptor` as CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKeyCredentialDescriptor {
    /// Credential type, normally "public-key".
    pub type_: String,
    /// Credential ID.
    pub id: Vec<u8>,
    /// Transport hints.
    pub transports: Option<Vec<String>>,
}

impl PublicKeyCredentialDescriptor {
    /// A "public-key" descriptor without transports.
    pub fn public_key(id: Vec<u8>) -> Self {
        Self { type_: "public-key".into(), id, transports: None }
    }
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from("id"), Value::Bytes(self.id.clone())),
            (Value::from("type"), Value::from(self.type_.as_str())),
        ];
        if let Some(t) = &self.transports {
            m.push((Value::from("transports"), Value::Array(t.iter().map(|s| Value::from(s.as_str())).collect())));
        }
        Value::Map(m)
    }
    /// From a CBOR map.
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        if v.as_map().is_none() {
            return Err(invalid("credential descriptor"));
        }
        let type_ = opt_text_key(v, "type", "descriptor.type")?
            .ok_or(Ctap2Error::Field(FieldError::Missing("descriptor.type")))?;
        let id = match v.get_text("id") {
            None => return Err(Ctap2Error::Field(FieldError::Missing("descriptor.id"))),
            Some(x) => x.as_bytes().ok_or(invalid("descriptor.id"))?.to_vec(),
        };
        let transports = match v.get_text("transports") {
            None => None,
            Some(t) => Some(
                t.as_array()
                    .ok_or(invalid("descriptor.transports"))?
                    .iter()
                    .map(|x| x.as_text().map(str::to_owned).ok_or(invalid("descriptor.transports")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Self { type_, id, transports })
    }
}

/// `PublicKeyCredentialParameters` as CBOR: `{"alg": int, "type": text}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyCredentialParameters {
    /// Credential type, normally "public-key".
    pub type_: String,
    /// COSE algorithm identifier.
    pub alg: i64,
}

impl PublicKeyCredentialParameters {
    /// A "public-key" parameter.
    pub fn public_key(alg: i64) -> Self {
        Self { type_: "public-key".into(), alg }
    }
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new().insert("alg", self.alg).insert("type", self.type_.as_str()).build()
    }
    /// From a CBOR map.
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        if v.as_map().is_none() {
            return Err(invalid("credential parameters"));
        }
        let type_ =
            opt_text_key(v, "type", "params.type")?.ok_or(Ctap2Error::Field(FieldError::Missing("params.type")))?;
        let alg = match v.get_text("alg") {
            None => return Err(Ctap2Error::Field(FieldError::Missing("params.alg"))),
            Some(x) => x.as_i64().ok_or(invalid("params.alg"))?,
        };
        Ok(Self { type_, alg })
    }
}

//! The attestation object (WebAuthn L3 §6.5.4): `fmt`, `attStmt`, `authData`.

use super::auth_data::{AuthDataError, AuthenticatorData};
use super::cbor::{self, CborError, MapBuilder, Value};

/// Why an attestation object could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationObjectError {
    /// Not valid CBOR.
    #[error("attestation object is not valid CBOR: {0}")]
    Cbor(#[from] CborError),
    /// A required key is missing or has the wrong type.
    #[error("attestation object is malformed: {0}")]
    Malformed(&'static str),
    /// The embedded authenticator data is malformed.
    #[error("attestation object: {0}")]
    AuthData(#[from] AuthDataError),
}

/// An attestation object.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationObject {
    /// Attestation statement format identifier ("none", "packed", ...).
    pub fmt: String,
    /// The attestation statement, format-specific.
    pub att_stmt: Value,
    /// Authenticator data, parsed.
    pub auth_data: AuthenticatorData,
    /// Authenticator data, exactly as received (signatures cover these bytes).
    pub auth_data_raw: Vec<u8>,
}

impl AttestationObject {
    /// Parse strictly.
    pub fn parse(b: &[u8]) -> Result<Self, AttestationObjectError> {
        let v = cbor::decode(b)?;
        if v.as_map().is_none() {
            return Err(AttestationObjectError::Malformed("not a map"));
        }
        let fmt = v
            .get_text("fmt")
            .and_then(Value::as_text)
            .ok_or(AttestationObjectError::Malformed("fmt missing or not text"))?;
        let att_stmt = v.get_text("attStmt").ok_or(AttestationObjectError::Malformed("attStmt missing"))?;
        // Every format's attStmt is a map, except "compound" (WebAuthn L3),
        // whose attStmt is an array of {fmt, attStmt} statements.
        let shape_ok = if fmt == "compound" { att_stmt.as_array().is_some() } else { att_stmt.as_map().is_some() };
        if !shape_ok {
            return Err(AttestationObjectError::Malformed("attStmt is not a map"));
        }
        let raw = v
            .get_text("authData")
            .and_then(Value::as_bytes)
            .ok_or(AttestationObjectError::Malformed("authData missing or not bytes"))?;
        let auth_data = AuthenticatorData::parse(raw)?;
        Ok(AttestationObject {
            fmt: fmt.to_owned(),
            att_stmt: att_stmt.clone(),
            auth_data,
            auth_data_raw: raw.to_vec(),
        })
    }

    /// Encode canonically.
    pub fn to_bytes(&self) -> Vec<u8> {
        MapBuilder::new()
            .insert("fmt", self.fmt.as_str())
            .insert("attStmt", self.att_stmt.clone())
            .insert("authData", self.auth_data_raw.clone())
            .build()
            .to_vec()
    }
}

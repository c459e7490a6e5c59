//! Client data checks shared by both ceremonies (WebAuthn L3 §7.1 steps 5-10,
//! §7.2 steps 10-14): type, challenge, origin, crossOrigin and topOrigin.

use super::RpConfig;
use super::origin::origin_allowed;
use crate::crypto::ct_eq;
use crate::proto::webauthn::{CollectedClientData, b64url_encode};

/// Why the client data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientDataError {
    /// clientDataJSON is not valid JSON of the expected shape.
    #[error("clientDataJSON is malformed: {0}")]
    Malformed(String),
    /// `type` is not the ceremony's ("webauthn.create" / "webauthn.get").
    #[error("client data type is {got:?}, expected {expected:?}")]
    TypeMismatch {
        /// The expected type.
        expected: &'static str,
        /// What the client sent.
        got: String,
    },
    /// `challenge` is not the pending one.
    #[error("client data challenge does not match the pending challenge")]
    ChallengeMismatch,
    /// `origin` is not allowed.
    #[error("origin {0:?} is not allowed")]
    OriginMismatch(String),
    /// `crossOrigin` is true but cross-origin ceremonies are not allowed.
    #[error("cross-origin ceremonies are not allowed")]
    CrossOriginNotAllowed,
    /// `topOrigin` is not allowed, or present without `crossOrigin`.
    #[error("top origin {0:?} is not allowed")]
    TopOriginMismatch(String),
    /// `tokenBinding.status` is not "present" or "supported" (WebAuthn L2 §7.1 step 10).
    #[error("token binding status {0:?} is invalid")]
    TokenBindingInvalid(String),
}

impl ClientDataError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ClientDataError::Malformed(_) => "malformed_client_data",
            ClientDataError::TypeMismatch { .. } => "client_data_type_mismatch",
            ClientDataError::ChallengeMismatch => "challenge_mismatch",
            ClientDataError::OriginMismatch(_) => "origin_mismatch",
            ClientDataError::CrossOriginNotAllowed => "cross_origin_not_allowed",
            ClientDataError::TopOriginMismatch(_) => "top_origin_mismatch",
            ClientDataError::TokenBindingInvalid(_) => "token_binding_invalid",
        }
    }
}

/// Parse and check client data. Returns the parsed value.
pub fn check_client_data(
    json: &[u8],
    expected_type: &'static str,
    challenge: &[u8],
    config: &RpConfig,
) -> Result<CollectedClientData, ClientDataError> {
    let c = CollectedClientData::parse(json).map_err(|e| ClientDataError::Malformed(e.to_string()))?;
    if c.type_ != expected_type {
        return Err(ClientDataError::TypeMismatch { expected: expected_type, got: c.type_ });
    }
    // C.challenge must be the base64url encoding of the challenge (padding tolerated).
    if !ct_eq(c.challenge.trim_end_matches('=').as_bytes(), b64url_encode(challenge).as_bytes()) {
        return Err(ClientDataError::ChallengeMismatch);
    }
    if !origin_allowed(&c.origin, config) {
        return Err(ClientDataError::OriginMismatch(c.origin));
    }
    let cross = c.cross_origin.unwrap_or(false);
    if cross && !config.allow_cross_origin {
        return Err(ClientDataError::CrossOriginNotAllowed);
    }
    match (&c.top_origin, cross) {
        (Some(top), false) => return Err(ClientDataError::TopOriginMismatch(top.clone())),
        // A cross-origin ceremony is accepted only inside a top-level origin
        // the relying party named: none named, none accepted.
        (Some(top), true) if !config.allowed_top_origins.iter().any(|o| o == top) => {
            return Err(ClientDataError::TopOriginMismatch(top.clone()));
        }
        // Without topOrigin (clients before Level 3) the embedding site is
        // unknown: accepted only when no top origin is configured to check.
        (None, true) if !config.allowed_top_origins.is_empty() => {
            return Err(ClientDataError::TopOriginMismatch(String::new()));
        }
        _ => {}
    }
    check_token_binding(json)?;
    Ok(c)
}

/// Level 2 clients may send `tokenBinding: {"status": ...}`; Level 3 dropped
/// it. hwkey does not use token binding, but a status other than the two the
/// spec defines is a malformed client and is refused. Non-object values (old
/// Edge sent the string "unused") are ignored.
fn check_token_binding(json: &[u8]) -> Result<(), ClientDataError> {
    #[derive(serde::Deserialize)]
    struct Tb {
        #[serde(rename = "tokenBinding")]
        token_binding: Option<serde_json::Value>,
    }
    if !json.windows(12).any(|w| w == b"tokenBinding") {
        return Ok(());
    }
    let tb: Tb = serde_json::from_slice(json).map_err(|e| ClientDataError::Malformed(e.to_string()))?;
    if let Some(serde_json::Value::Object(o)) = tb.token_binding {
        match o.get("status").and_then(|s| s.as_str()) {
            Some("present") | Some("supported") => {}
            other => return Err(ClientDataError::TokenBindingInvalid(other.unwrap_or("").to_string())),
        }
    }
    Ok(())
}

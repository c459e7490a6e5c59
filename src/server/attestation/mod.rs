//! Attestation statement verification (WebAuthn L3 §8): one file per format.
//!
//! [`verify_attestation`] dispatches on `fmt` and returns the attestation
//! type and certificate chain; whether that chain is *trusted* is decided
//! separately in [`super::trust`] against caller-supplied anchors.

use crate::crypto::CryptoProvider;
use crate::proto::auth_data::AuthenticatorData;
use crate::proto::cbor::Value;
use serde::{Deserialize, Serialize};

/// Attestation types (WebAuthn L3 §6.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationType {
    /// No attestation statement ("none" format).
    None,
    /// Self attestation: signed by the credential key itself.
    SelfAttestation,
    /// Basic attestation: a batch attestation certificate.
    Basic,
    /// Attestation CA (TPM AIK certificates).
    AttCa,
    /// Anonymization CA (Apple).
    AnonCa,
}

impl AttestationType {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationType::None => "none",
            AttestationType::SelfAttestation => "self",
            AttestationType::Basic => "basic",
            AttestationType::AttCa => "att_ca",
            AttestationType::AnonCa => "anon_ca",
        }
    }
}

/// What a verified attestation statement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAttestation {
    /// The format identifier.
    pub fmt: String,
    /// The attestation type.
    pub attestation_type: AttestationType,
    /// The certificate chain, leaf first (DER), empty for none/self.
    pub chain: Vec<Vec<u8>>,
}

/// Inputs a format check needs besides the statement.
#[derive(Debug, Clone, Copy)]
pub struct AttestationContext<'a> {
    /// The crypto provider.
    pub provider: &'a dyn CryptoProvider,
    /// Verification time for certificate validity and timestamps, in seconds since the Unix epoch.
    pub now_unix: i64,
    /// Accept android-safetynet (deprecated; off by default).
    pub allow_safetynet: bool,
    /// Accept RS1 (SHA-1) signatures, for legacy TPMs (off by default).
    pub allow_rs1: bool,
}

/// Why an attestation statement failed verification. Each variant has a
/// stable code ([`AttestationError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// The format identifier is not one hwkey knows.
    #[error("unsupported attestation format {0:?}")]
    UnsupportedFormat(String),
    /// The format is known but disabled by policy (android-safetynet).
    #[error("attestation format {0:?} is disabled by policy")]
    FormatDisabled(String),
    /// attStmt lacks a field or has the wrong shape.
    #[error("malformed attestation statement: {0}")]
    Malformed(String),
    /// The attestation signature does not verify.
    #[error("attestation signature invalid: {0}")]
    BadSignature(String),
    /// A certificate violates the format's requirements.
    #[error("attestation certificate requirement failed: {0}")]
    Certificate(String),
    /// A format-specific consistency check failed (nonce, AAGUID, pubArea, ...).
    #[error("attestation check failed: {0}")]
    Mismatch(String),
    /// The algorithm is not supported or not allowed.
    #[error("attestation algorithm unsupported: {0}")]
    UnsupportedAlgorithm(String),
}

impl AttestationError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            AttestationError::UnsupportedFormat(_) => "attestation_format_unsupported",
            AttestationError::FormatDisabled(_) => "attestation_format_disabled",
            AttestationError::Malformed(_) => "attestation_malformed",
            AttestationError::BadSignature(_) => "attestation_bad_signature",
            AttestationError::Certificate(_) => "attestation_certificate_invalid",
            AttestationError::Mismatch(_) => "attestation_mismatch",
            AttestationError::UnsupportedAlgorithm(_) => "attestation_algorithm_unsupported",
        }
    }
}

/// Verify an attestation statement of format `fmt`.
///
/// `auth_data_raw` are the exact authenticator data bytes; `client_data_hash`
/// is SHA-256 of clientDataJSON.
pub fn verify_attestation(
    fmt: &str,
    att_stmt: &Value,
    auth_data: &AuthenticatorData,
    auth_data_raw: &[u8],
    client_data_hash: &[u8; 32],
    ctx: &AttestationContext<'_>,
) -> Result<VerifiedAttestation, AttestationError> {
    match fmt {
        "none" => {
            if att_stmt.as_map().is_some_and(|m| !m.is_empty()) {
                return Err(AttestationError::Malformed("attStmt of format none must be empty".into()));
            }
            Ok(VerifiedAttestation { fmt: fmt.into(), attestation_type: AttestationType::None, chain: vec![] })
        }
        other => {
            let _ = (auth_data, auth_data_raw, client_data_hash, ctx);
            Err(AttestationError::UnsupportedFormat(other.into()))
        }
    }
}

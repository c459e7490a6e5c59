//! Attestation statement verification (WebAuthn L3 §8): one file per format.
//!
//! [`verify_attestation`] dispatches on `fmt` and returns the attestation
//! type and certificate chain; whether that chain is *trusted* is decided
//! separately in [`super::trust`] against caller-supplied anchors.
//!
//! A format check verifies the statement itself: signatures, the format's
//! certificate requirements and the bindings to authenticator data and
//! client data. Certificate validity windows and chain signatures are path
//! validation, done by [`super::trust::evaluate`] at the caller's time, so a
//! statement whose leaf has since expired still reports what it attests.

pub mod android_key;
pub mod android_safetynet;
pub mod apple;
pub mod compound;
pub mod fido_u2f;
pub mod none;
pub mod packed;
pub mod tpm;

use crate::crypto::{CryptoError, CryptoProvider};
use crate::proto::auth_data::{AttestedCredentialData, AuthenticatorData};
use crate::proto::cbor::Value;
use crate::proto::cose::CoseAlgorithm;
use crate::server::cert::{AaguidExtError, CertError, ParsedCert};
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
    /// Verification time, in seconds since the Unix epoch: android-safetynet
    /// timestamps are judged against it here, certificate validity windows in
    /// [`crate::server::trust::evaluate`] (called with the same time).
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

/// Policy choices of the formats that have them. [`Default`] is the strict,
/// spec-recommended setting; [`verify_attestation`] uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AttestationPolicy {
    /// android-key: take `origin` and `purpose` only from the TEE-enforced
    /// authorization list (true) or from the union of the TEE- and
    /// software-enforced lists (false, the spec's default).
    pub android_key_require_tee: bool,
    /// android-safetynet: the largest accepted distance between the
    /// response's `timestampMs` and `now_unix`, in seconds; `None` skips the check.
    pub safetynet_max_age_secs: Option<i64>,
    /// android-safetynet: require `ctsProfileMatch: true`.
    pub safetynet_require_cts_profile_match: bool,
}

impl Default for AttestationPolicy {
    fn default() -> Self {
        AttestationPolicy {
            android_key_require_tee: false,
            safetynet_max_age_secs: Some(60),
            safetynet_require_cts_profile_match: true,
        }
    }
}

/// Every attestation statement format identifier hwkey verifies.
pub const FORMATS: &[&str] =
    &["none", "packed", "fido-u2f", "tpm", "android-key", "android-safetynet", "apple", "compound"];

/// Verify an attestation statement of format `fmt` under the default
/// [`AttestationPolicy`].
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
    verify_attestation_with_policy(
        fmt,
        att_stmt,
        auth_data,
        auth_data_raw,
        client_data_hash,
        ctx,
        &AttestationPolicy::default(),
    )
}

/// Verify an attestation statement of format `fmt` under `policy`.
pub fn verify_attestation_with_policy(
    fmt: &str,
    att_stmt: &Value,
    auth_data: &AuthenticatorData,
    auth_data_raw: &[u8],
    client_data_hash: &[u8; 32],
    ctx: &AttestationContext<'_>,
    policy: &AttestationPolicy,
) -> Result<VerifiedAttestation, AttestationError> {
    let input = Input { att_stmt, auth_data, auth_data_raw, client_data_hash, ctx, policy };
    let (attestation_type, chain) = match fmt {
        "none" => none::verify(&input)?,
        "packed" => packed::verify(&input)?,
        "fido-u2f" => fido_u2f::verify(&input)?,
        "tpm" => tpm::verify(&input)?,
        "android-key" => android_key::verify(&input)?,
        "android-safetynet" => android_safetynet::verify(&input)?,
        "apple" => apple::verify(&input)?,
        "compound" => compound::verify(&input)?,
        other => return Err(AttestationError::UnsupportedFormat(other.into())),
    };
    Ok(VerifiedAttestation { fmt: fmt.into(), attestation_type, chain })
}

/// What every format check receives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'a> {
    pub att_stmt: &'a Value,
    pub auth_data: &'a AuthenticatorData,
    pub auth_data_raw: &'a [u8],
    pub client_data_hash: &'a [u8; 32],
    pub ctx: &'a AttestationContext<'a>,
    pub policy: &'a AttestationPolicy,
}

/// The result of one format check: attestation type and chain (leaf first).
pub(crate) type FormatResult = Result<(AttestationType, Vec<Vec<u8>>), AttestationError>;

impl Input<'_> {
    /// authenticatorData || clientDataHash, the message most formats sign.
    pub(crate) fn signed_data(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.auth_data_raw.len() + 32);
        m.extend_from_slice(self.auth_data_raw);
        m.extend_from_slice(self.client_data_hash);
        m
    }

    /// The attested credential data, which every registration carries.
    pub(crate) fn credential(&self) -> Result<&AttestedCredentialData, AttestationError> {
        self.auth_data
            .attested_credential
            .as_ref()
            .ok_or_else(|| AttestationError::Malformed("authenticator data has no attested credential data".into()))
    }

    /// A required byte-string field of attStmt.
    pub(crate) fn bytes(&self, key: &str) -> Result<&[u8], AttestationError> {
        self.att_stmt
            .get_text(key)
            .and_then(Value::as_bytes)
            .ok_or_else(|| AttestationError::Malformed(format!("attStmt.{key} missing or not a byte string")))
    }

    /// A required text field of attStmt.
    pub(crate) fn text(&self, key: &str) -> Result<&str, AttestationError> {
        self.att_stmt
            .get_text(key)
            .and_then(Value::as_text)
            .ok_or_else(|| AttestationError::Malformed(format!("attStmt.{key} missing or not text")))
    }

    /// The required `alg` field.
    pub(crate) fn alg(&self) -> Result<CoseAlgorithm, AttestationError> {
        self.att_stmt
            .get_text("alg")
            .and_then(Value::as_i64)
            .map(CoseAlgorithm)
            .ok_or_else(|| AttestationError::Malformed("attStmt.alg missing or not an integer".into()))
    }

    /// The `x5c` field: `None` when absent, else a non-empty list of DER certificates.
    pub(crate) fn x5c(&self) -> Result<Option<Vec<Vec<u8>>>, AttestationError> {
        let Some(v) = self.att_stmt.get_text("x5c") else { return Ok(None) };
        let arr = v.as_array().ok_or_else(|| AttestationError::Malformed("attStmt.x5c is not an array".into()))?;
        if arr.is_empty() {
            return Err(AttestationError::Malformed("attStmt.x5c is empty".into()));
        }
        arr.iter()
            .map(|c| {
                c.as_bytes()
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| AttestationError::Malformed("attStmt.x5c entry is not a byte string".into()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The `x5c` field, required; returns the chain and the parsed leaf.
    pub(crate) fn x5c_required(&self) -> Result<(Vec<Vec<u8>>, ParsedCert), AttestationError> {
        let chain = self.x5c()?.ok_or_else(|| AttestationError::Malformed("attStmt.x5c missing".into()))?;
        let leaf = parse_cert(chain.first().map(Vec::as_slice).unwrap_or_default())?;
        Ok((chain, leaf))
    }

    /// Refuse attStmt keys other than `allowed`.
    pub(crate) fn only_keys(&self, allowed: &[&str]) -> Result<(), AttestationError> {
        let map = self.att_stmt.as_map().ok_or_else(|| AttestationError::Malformed("attStmt is not a map".into()))?;
        for (k, _) in map {
            match k.as_text() {
                Some(t) if allowed.contains(&t) => {}
                _ => return Err(AttestationError::Malformed(format!("unexpected attStmt key {k:?}"))),
            }
        }
        Ok(())
    }
}

/// Parse a certificate, mapping errors to [`AttestationError::Certificate`].
pub(crate) fn parse_cert(der: &[u8]) -> Result<ParsedCert, AttestationError> {
    ParsedCert::parse(der).map_err(cert_err)
}

/// A certificate error as an attestation error.
pub(crate) fn cert_err(e: CertError) -> AttestationError {
    AttestationError::Certificate(e.to_string())
}

/// A signature check's error as an attestation error.
pub(crate) fn sig_err(what: &str, e: CryptoError) -> AttestationError {
    match e {
        CryptoError::BadSignature => AttestationError::BadSignature(what.into()),
        CryptoError::Unsupported(m) => AttestationError::UnsupportedAlgorithm(format!("{what}: {m}")),
        CryptoError::InvalidKey(m) => AttestationError::Mismatch(format!("{what}: {m}")),
        other => AttestationError::BadSignature(format!("{what}: {other}")),
    }
}

/// The id-fido-gen-ce-aaguid check shared by packed, tpm and others.
pub(crate) fn check_aaguid_ext(cert: &ParsedCert, aaguid: &[u8; 16]) -> Result<(), AttestationError> {
    cert.check_aaguid_extension(aaguid).map_err(|e| match e {
        AaguidExtError::Critical => {
            AttestationError::Certificate("id-fido-gen-ce-aaguid (1.3.6.1.4.1.45724.1.1.4) must not be critical".into())
        }
        AaguidExtError::Malformed => {
            AttestationError::Certificate("id-fido-gen-ce-aaguid (1.3.6.1.4.1.45724.1.1.4) is malformed".into())
        }
        AaguidExtError::Mismatch => AttestationError::Mismatch(
            "certificate extension id-fido-gen-ce-aaguid (1.3.6.1.4.1.45724.1.1.4) differs from the AAGUID in authenticator data".into(),
        ),
    })
}

/// basicConstraints must not say CA=true.
pub(crate) fn check_not_ca(cert: &ParsedCert, what: &str) -> Result<(), AttestationError> {
    // WebAuthn L3 §8.2.1 and §8.3.1: "The Basic Constraints extension MUST
    // have the CA component set to false": the extension must be there.
    match cert.basic_constraints_ca().map_err(cert_err)? {
        Some(true) => Err(AttestationError::Certificate(format!("{what} certificate has basicConstraints CA=true"))),
        None => Err(AttestationError::Certificate(format!("{what} certificate has no basicConstraints extension"))),
        Some(false) => Ok(()),
    }
}

/// The hash a COSE signature algorithm uses.
pub(crate) fn alg_hash(alg: CoseAlgorithm) -> Option<crate::crypto::HashAlg> {
    use crate::crypto::HashAlg;
    match alg {
        CoseAlgorithm::ES256 | CoseAlgorithm::RS256 | CoseAlgorithm::PS256 | CoseAlgorithm::ESP256 => {
            Some(HashAlg::Sha256)
        }
        CoseAlgorithm::ES384 | CoseAlgorithm::RS384 | CoseAlgorithm::PS384 | CoseAlgorithm::ESP384 => {
            Some(HashAlg::Sha384)
        }
        CoseAlgorithm::ES512 | CoseAlgorithm::RS512 | CoseAlgorithm::PS512 | CoseAlgorithm::ESP512 => {
            Some(HashAlg::Sha512)
        }
        CoseAlgorithm::RS1 => Some(HashAlg::Sha1),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod test_support;

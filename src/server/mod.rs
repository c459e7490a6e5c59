//! The WebAuthn relying party (feature `server`).
//!
//! Sans-I/O ceremonies: [`RelyingParty::start_registration`] /
//! [`RelyingParty::finish_registration`] (WebAuthn L3 §7.1, in
//! [`registration`]) and [`RelyingParty::start_authentication`] /
//! [`RelyingParty::finish_authentication`] (§7.2, in [`authentication`]).
//! The pending ceremony state is a serializable value the caller stores (with
//! its creation time and expiry inside) and hands back to `finish`, which
//! consumes it. One file per attestation format lives under [`attestation`];
//! certificate-path trust decisions are in [`trust`]. Origin rules (exact
//! origins, opt-in subdomains, cross-origin iframes, Related Origin Requests)
//! are in [`origin`]. FIDO metadata (MDS3) and the attestation policy built
//! on it are in [`metadata`].

pub mod attestation;
pub mod authentication;
pub mod cert;
pub mod client_data;
pub mod config;
pub mod metadata;
pub mod origin;
pub mod registration;
pub mod testing;
pub mod trust;

pub use authentication::{AuthenticationError, AuthenticationRequest, AuthenticationResult, AuthenticationState};
pub use config::{
    AttestationConveyance, AttestationPolicy, CounterPolicy, ResidentKeyRequirement, RpConfig, UserVerification,
};
pub use registration::{
    CredentialRecord, RegistrationError, RegistrationRequest, RegistrationResult, RegistrationState,
};

use crate::crypto::CryptoProvider;
use std::time::{SystemTime, UNIX_EPOCH};

/// A configured relying party. Cheap to share (`Arc`) across requests; all
/// methods take `&self`.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    pub(crate) config: RpConfig,
    pub(crate) provider: &'static dyn CryptoProvider,
    pub(crate) rp_id_hash: [u8; 32],
    pub(crate) metadata: Option<std::sync::Arc<metadata::MetadataService>>,
}

/// Errors in setting up a relying party or starting a ceremony (caller errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The configuration is inconsistent.
    #[error("invalid relying-party configuration: {0}")]
    Invalid(String),
    /// The random source failed.
    #[error("random source failed")]
    Rng,
}

impl ConfigError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Invalid(_) => "invalid_configuration",
            ConfigError::Rng => "internal_error",
        }
    }
}

impl RelyingParty {
    /// A relying party with the default crypto provider.
    pub fn new(config: RpConfig) -> Result<Self, ConfigError> {
        Self::with_provider(config, crate::crypto::default_provider())
    }

    /// A relying party with an explicit crypto provider.
    pub fn with_provider(config: RpConfig, provider: &'static dyn CryptoProvider) -> Result<Self, ConfigError> {
        config.validate()?;
        let rp_id_hash = provider.sha256(&[config.rp_id.as_bytes()]);
        Ok(RelyingParty { config, provider, rp_id_hash, metadata: None })
    }

    /// Use FIDO metadata: registrations are named from it, refused when it
    /// reports a revocation or compromise, and judged by
    /// [`AttestationPolicy::requirement`]. The service can be reloaded while
    /// the relying party is in use.
    pub fn with_metadata(mut self, metadata: std::sync::Arc<metadata::MetadataService>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The metadata service in use, if any.
    pub fn metadata(&self) -> Option<&std::sync::Arc<metadata::MetadataService>> {
        self.metadata.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &RpConfig {
        &self.config
    }

    /// The user verification a ceremony asks for and checks: `requested`,
    /// but never less than the configured floor
    /// ([`RpConfig::user_verification`]); the floor when nothing is asked.
    pub fn user_verification_for(&self, requested: Option<UserVerification>) -> UserVerification {
        requested.map_or(self.config.user_verification, |r| r.at_least(self.config.user_verification))
    }

    /// The crypto provider.
    pub fn provider(&self) -> &'static dyn CryptoProvider {
        self.provider
    }

    /// The `/.well-known/webauthn` document for Related Origin Requests
    /// (WebAuthn L3 §5.11): `{"origins": [...]}` listing every allowed origin.
    pub fn well_known_webauthn(&self) -> serde_json::Value {
        let mut origins: Vec<&str> = self.config.origins.iter().map(String::as_str).collect();
        origins.extend(self.config.related_origins.iter().map(String::as_str));
        serde_json::json!({ "origins": origins })
    }

    pub(crate) fn random_challenge(&self) -> Result<Vec<u8>, ConfigError> {
        self.provider.random_bytes(32).map_err(|_| ConfigError::Rng)
    }
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

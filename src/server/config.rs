//! Relying-party configuration and policies.

use super::ConfigError;
use crate::proto::cose::CoseAlgorithm;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A WebAuthn enumeration carried as a lowercase string: the enum, its serde
/// form, and `as_str`/`parse` from one list of (variant, string) pairs.
macro_rules! webauthn_string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The WebAuthn string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
            /// Parse the WebAuthn string.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }
    };
}

webauthn_string_enum! {
    /// `UserVerificationRequirement`.
    UserVerification {
        /// UV must happen; assertions without the UV flag are refused.
        Required = "required",
        /// UV if the authenticator can; not enforced.
        Preferred = "preferred",
        /// Avoid UV; not enforced.
        Discouraged = "discouraged",
    } default Preferred
}

impl UserVerification {
    /// How much user verification it asks for: discouraged < preferred < required.
    fn rank(self) -> u8 {
        match self {
            UserVerification::Discouraged => 0,
            UserVerification::Preferred => 1,
            UserVerification::Required => 2,
        }
    }

    /// The stronger of `self` and `floor`: a request may raise the
    /// configured requirement, never lower it.
    pub fn at_least(self, floor: UserVerification) -> UserVerification {
        if self.rank() > floor.rank() { self } else { floor }
    }
}

webauthn_string_enum! {
    /// `ResidentKeyRequirement`.
    ResidentKeyRequirement {
        /// A server-side credential is preferred.
        Discouraged = "discouraged",
        /// A discoverable credential if possible.
        Preferred = "preferred",
        /// A discoverable credential (passkey) is required.
        Required = "required",
    } default Discouraged
}

webauthn_string_enum! {
    /// `AttestationConveyancePreference`.
    AttestationConveyance {
        /// No attestation wanted.
        None = "none",
        /// The client may anonymize.
        Indirect = "indirect",
        /// The authenticator's attestation, as generated.
        Direct = "direct",
        /// Enterprise attestation (uniquely identifying).
        Enterprise = "enterprise",
    } default None
}

/// What the relying party does when a signature counter does not increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CounterPolicy {
    /// Refuse the assertion with `counter_regression` (a cloned authenticator is likely).
    #[default]
    Reject,
    /// Accept, but report `counter_regressed: true` in the result for the caller to log.
    Report,
}

/// Which attestation statements are accepted and how trust is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationPolicy {
    /// DER certificates (roots or intermediates) that attestation chains must reach.
    #[serde(default)]
    pub trust_anchors: Vec<Vec<u8>>,
    /// Refuse registrations whose attestation is not trusted (None/Self included).
    pub require_trusted: bool,
    /// Accept the "none" format and self attestation (ignored when `require_trusted`).
    pub allow_untrusted: bool,
    /// Accept android-safetynet (deprecated by Google).
    pub allow_safetynet: bool,
    /// Accept RS1 (SHA-1) signatures from legacy TPMs.
    pub allow_rs1: bool,
    /// Format-specific knobs (android-key TEE, SafetyNet timestamp window and CTS profile).
    #[serde(default)]
    pub formats: super::attestation::AttestationPolicy,
    /// What the attestation must show against FIDO metadata
    /// ([`RelyingParty::with_metadata`](super::RelyingParty::with_metadata)):
    /// `any` (default), `metadata` or `certified`.
    #[serde(default)]
    pub requirement: super::metadata::AttestationRequirement,
    /// AAGUIDs (UUID strings) allowed to register; empty: all.
    #[serde(default)]
    pub allowed_aaguids: Vec<String>,
    /// Accept SHA-1 signatures and RSA keys under 2048 bits in attestation
    /// certificate chains (some old TPMs); off by default.
    #[serde(default)]
    pub allow_legacy_chains: bool,
}

impl Default for AttestationPolicy {
    fn default() -> Self {
        AttestationPolicy {
            trust_anchors: Vec::new(),
            require_trusted: false,
            allow_untrusted: true,
            allow_safetynet: false,
            allow_rs1: false,
            formats: Default::default(),
            requirement: Default::default(),
            allowed_aaguids: Vec::new(),
            allow_legacy_chains: false,
        }
    }
}

/// Relying-party configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpConfig {
    /// The RP ID: a registrable domain suffix of the origins' hosts (e.g. "example.com").
    pub rp_id: String,
    /// Human-palatable RP name.
    pub rp_name: String,
    /// Exact allowed origins, with scheme and port (e.g. `https://login.example.com`).
    pub origins: Vec<String>,
    /// Also accept any https origin whose host is the RP ID or a subdomain of it.
    pub allow_subdomains: bool,
    /// Accept ceremonies from cross-origin iframes (`crossOrigin: true`).
    pub allow_cross_origin: bool,
    /// Top-level origins allowed to embed such iframes (`topOrigin`); empty:
    /// none (a cross-origin ceremony that names its top origin is refused).
    pub allowed_top_origins: Vec<String>,
    /// Related origins (WebAuthn L3 §5.11) listed in `/.well-known/webauthn` and accepted as origins.
    pub related_origins: Vec<String>,
    /// The user-verification floor: what ceremonies ask for when the
    /// request names nothing, and the least they ask for and check when it
    /// does (a request may raise it, never lower it; see
    /// [`UserVerification::at_least`]).
    pub user_verification: UserVerification,
    /// Default resident-key requirement.
    pub resident_key: ResidentKeyRequirement,
    /// Default attestation conveyance.
    pub attestation: AttestationConveyance,
    /// Attestation acceptance and trust.
    pub attestation_policy: AttestationPolicy,
    /// Allowed credential algorithms, most preferred first.
    pub algorithms: Vec<CoseAlgorithm>,
    /// Ceremony timeout (sent to clients, and the challenge lifetime).
    pub timeout: Duration,
    /// Signature-counter policy.
    pub counter_policy: CounterPolicy,
}

impl RpConfig {
    /// Defaults for `rp_id` with one allowed origin: UV preferred, no attestation,
    /// ES256/EdDSA/ES384/RS256/PS256 then ML-DSA-65/44/87, 5-minute timeout,
    /// counter regressions refused.
    pub fn new(rp_id: impl Into<String>, rp_name: impl Into<String>, origin: impl Into<String>) -> Self {
        RpConfig {
            rp_id: rp_id.into(),
            rp_name: rp_name.into(),
            origins: vec![origin.into()],
            allow_subdomains: false,
            allow_cross_origin: false,
            allowed_top_origins: Vec::new(),
            related_origins: Vec::new(),
            user_verification: UserVerification::Preferred,
            resident_key: ResidentKeyRequirement::Discouraged,
            attestation: AttestationConveyance::None,
            attestation_policy: AttestationPolicy::default(),
            algorithms: vec![
                CoseAlgorithm::ES256,
                CoseAlgorithm::EDDSA,
                CoseAlgorithm::ES384,
                CoseAlgorithm::RS256,
                CoseAlgorithm::PS256,
                // Post-quantum (RFC 9964) last, so that clients keep choosing
                // the classical algorithms they support; ML-DSA-65 first of
                // the three (FIPS 204's middle set).
                CoseAlgorithm::ML_DSA_65,
                CoseAlgorithm::ML_DSA_44,
                CoseAlgorithm::ML_DSA_87,
            ],
            timeout: Duration::from_secs(300),
            counter_policy: CounterPolicy::Reject,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.rp_id.is_empty() || self.rp_id.contains(['/', ':', ' ']) {
            return Err(ConfigError::Invalid(format!("rp_id {:?} must be a bare domain", self.rp_id)));
        }
        if self.origins.is_empty() && self.related_origins.is_empty() && !self.allow_subdomains {
            return Err(ConfigError::Invalid("at least one allowed origin is needed".into()));
        }
        // Exact origins are compared as strings: web origins (scheme://host[:port])
        // and app origins such as "android:apk-key-hash:..." alike.
        for o in self.origins.iter().chain(&self.related_origins).chain(&self.allowed_top_origins) {
            if o.is_empty() || o.contains(char::is_whitespace) || o.ends_with('/') {
                return Err(ConfigError::Invalid(format!("origin {o:?} is not a serialized origin")));
            }
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::Invalid("no credential algorithm allowed".into()));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid("timeout must be positive".into()));
        }
        Ok(())
    }
}

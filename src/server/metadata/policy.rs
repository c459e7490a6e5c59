//! The attestation policy of a registration, decided from metadata: which
//! authenticators may register, and what the result says about them.
//!
//! | requirement | what a registration must show |
//! |---|---|
//! | [`Any`](AttestationRequirement::Any) | nothing beyond the relying party's other checks |
//! | [`Metadata`](AttestationRequirement::Metadata) | an attestation chain that ends in a root listed by the metadata entry of its own AAGUID (or, for U2F, of its certificate's key identifier) |
//! | [`Certified`](AttestationRequirement::Certified) | the same, and a FIDO_CERTIFIED status in force |
//!
//! Under every requirement, when metadata is loaded, an entry whose status
//! reports REVOKED, ATTESTATION_KEY_COMPROMISE, USER_KEY_REMOTE_COMPROMISE or
//! USER_KEY_PHYSICAL_COMPROMISE refuses the registration
//! (`authenticator_revoked`). A non-empty AAGUID allow-list admits only
//! those AAGUIDs; under `any` an AAGUID is what the authenticator claims, so
//! combine the list with `metadata` where it must be proven.

use super::{Metadata, days, passkey_providers};
use crate::crypto::CryptoProvider;
use crate::proto::auth_data::aaguid_to_string;
use crate::server::attestation::{AttestationType, VerifiedAttestation};
use crate::server::trust::{TrustVerdict, evaluate};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// What the attestation of a new credential must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationRequirement {
    /// No metadata requirement.
    #[default]
    Any,
    /// A chain to a root the AAGUID's metadata statement lists.
    Metadata,
    /// That, and a FIDO certification in force.
    Certified,
}

impl AttestationRequirement {
    /// Parse `any`, `metadata` or `certified`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "any" => Some(Self::Any),
            "metadata" => Some(Self::Metadata),
            "certified" => Some(Self::Certified),
            _ => None,
        }
    }

    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Metadata => "metadata",
            Self::Certified => "certified",
        }
    }
}

/// What is known of the authenticator that made a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatorInfo {
    /// The model's name.
    pub name: String,
    /// Its icon (`data:` URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// The FIDO certification in force (`FIDO_CERTIFIED_L1`, ...), from metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certification: Option<String>,
    /// True when the name comes from verified metadata and the attestation
    /// chain ends in the entry's roots; false for a name from the bundled
    /// passkey-provider list or an unproven AAGUID.
    pub attested: bool,
}

/// Why the policy refused a registration. Codes are the HTTP contract's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataRefusal {
    /// The model's metadata reports a revocation or a compromise.
    #[error("the authenticator's metadata reports {0}")]
    Revoked(&'static str),
    /// The attestation does not meet the policy.
    #[error("attestation does not meet the policy: {0}")]
    NotTrusted(String),
}

impl MetadataRefusal {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Revoked(_) => "authenticator_revoked",
            Self::NotTrusted(_) => "attestation_not_trusted",
        }
    }
}

/// Decide a registration's attestation under `requirement`, `allowed_aaguids`
/// (empty: all) and the loaded `metadata`, and name the authenticator.
pub fn decide(
    provider: &dyn CryptoProvider,
    metadata: Option<&Metadata>,
    requirement: AttestationRequirement,
    allowed_aaguids: &[String],
    aaguid: &[u8; 16],
    verified: &VerifiedAttestation,
    now: SystemTime,
) -> Result<Option<AuthenticatorInfo>, MetadataRefusal> {
    let aaguid_str = aaguid_to_string(aaguid);
    if !allowed_aaguids.is_empty() && !allowed_aaguids.iter().any(|a| a.eq_ignore_ascii_case(&aaguid_str)) {
        return Err(MetadataRefusal::NotTrusted(format!("AAGUID {aaguid_str} is not on the allow-list")));
    }
    let today = days(now);
    let now_unix = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let has_chain = !matches!(verified.attestation_type, AttestationType::None | AttestationType::SelfAttestation)
        && !verified.chain.is_empty();
    let entry = metadata.and_then(|m| m.for_attestation(provider, aaguid, &verified.chain));
    if let Some(e) = entry
        && let Some(status) = e.refusal(&verified.chain, today)
    {
        return Err(MetadataRefusal::Revoked(status.as_str()));
    }
    // Does the chain end in this entry's own roots (scoped anchors)?
    let chain_in_entry_roots = entry.is_some_and(|e| {
        has_chain && matches!(evaluate(provider, &verified.chain, &e.roots, now_unix), TrustVerdict::Trusted { .. })
    });
    match requirement {
        AttestationRequirement::Any => {}
        AttestationRequirement::Metadata | AttestationRequirement::Certified => {
            if metadata.is_none() {
                return Err(MetadataRefusal::NotTrusted("no metadata is loaded".into()));
            }
            let Some(e) = entry else {
                return Err(MetadataRefusal::NotTrusted(format!("no metadata statement for AAGUID {aaguid_str}")));
            };
            if !has_chain {
                return Err(MetadataRefusal::NotTrusted(format!(
                    "{} attestation has no certificate chain",
                    verified.attestation_type.as_str()
                )));
            }
            if !chain_in_entry_roots {
                return Err(MetadataRefusal::NotTrusted(
                    "the attestation chain does not end in a root of this authenticator's metadata statement".into(),
                ));
            }
            if requirement == AttestationRequirement::Certified && e.certification(today).is_none() {
                return Err(MetadataRefusal::NotTrusted("the authenticator is not FIDO certified".into()));
            }
        }
    }
    if let Some(e) = entry
        && !e.name.is_empty()
    {
        return Ok(Some(AuthenticatorInfo {
            name: e.name.clone(),
            icon: e.icon.clone(),
            certification: e.certification(today).map(|s| s.as_str().to_owned()),
            attested: chain_in_entry_roots,
        }));
    }
    Ok(passkey_providers::lookup(&aaguid_str).map(|p| AuthenticatorInfo {
        name: p.name.clone(),
        icon: p.icon_light.clone(),
        certification: None,
        attested: false,
    }))
}

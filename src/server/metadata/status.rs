//! Authenticator status values (FIDO MDS3 §3.1.4) and what each means for a
//! registration.

use serde::{Deserialize, Serialize};

/// `AuthenticatorStatus`. Values this version does not know parse as
/// [`AuthenticatorStatus::Other`] and have no effect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthenticatorStatus {
    /// Not FIDO certified.
    #[serde(rename = "NOT_FIDO_CERTIFIED")]
    NotFidoCertified,
    /// FIDO certified (functional), level not given.
    #[serde(rename = "FIDO_CERTIFIED")]
    FidoCertified,
    /// User verification can be bypassed.
    #[serde(rename = "USER_VERIFICATION_BYPASS")]
    UserVerificationBypass,
    /// The attestation key is compromised.
    #[serde(rename = "ATTESTATION_KEY_COMPROMISE")]
    AttestationKeyCompromise,
    /// User keys can be extracted remotely.
    #[serde(rename = "USER_KEY_REMOTE_COMPROMISE")]
    UserKeyRemoteCompromise,
    /// User keys can be extracted with physical access.
    #[serde(rename = "USER_KEY_PHYSICAL_COMPROMISE")]
    UserKeyPhysicalCompromise,
    /// A firmware update is available.
    #[serde(rename = "UPDATE_AVAILABLE")]
    UpdateAvailable,
    /// The FIDO Alliance revoked the model's certification.
    #[serde(rename = "REVOKED")]
    Revoked,
    /// The vendor submitted a self-assertion.
    #[serde(rename = "SELF_ASSERTION_SUBMITTED")]
    SelfAssertionSubmitted,
    /// Certified at level 1.
    #[serde(rename = "FIDO_CERTIFIED_L1")]
    FidoCertifiedL1,
    /// Certified at level 1+.
    #[serde(rename = "FIDO_CERTIFIED_L1plus")]
    FidoCertifiedL1Plus,
    /// Certified at level 2.
    #[serde(rename = "FIDO_CERTIFIED_L2")]
    FidoCertifiedL2,
    /// Certified at level 2+.
    #[serde(rename = "FIDO_CERTIFIED_L2plus")]
    FidoCertifiedL2Plus,
    /// Certified at level 3.
    #[serde(rename = "FIDO_CERTIFIED_L3")]
    FidoCertifiedL3,
    /// Certified at level 3+.
    #[serde(rename = "FIDO_CERTIFIED_L3plus")]
    FidoCertifiedL3Plus,
    /// A value this version does not know.
    #[serde(other)]
    Other,
}

impl AuthenticatorStatus {
    /// A status after which no new credential of the model is accepted:
    /// REVOKED and the three compromise statuses (an attestation-key
    /// compromise that names one certificate affects only chains holding it).
    pub fn refuses(&self) -> bool {
        matches!(
            self,
            Self::Revoked
                | Self::AttestationKeyCompromise
                | Self::UserKeyRemoteCompromise
                | Self::UserKeyPhysicalCompromise
        )
    }

    /// A FIDO certification status (any level).
    pub fn is_certified(&self) -> bool {
        matches!(
            self,
            Self::FidoCertified
                | Self::FidoCertifiedL1
                | Self::FidoCertifiedL1Plus
                | Self::FidoCertifiedL2
                | Self::FidoCertifiedL2Plus
                | Self::FidoCertifiedL3
                | Self::FidoCertifiedL3Plus
        )
    }

    /// The MDS3 string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotFidoCertified => "NOT_FIDO_CERTIFIED",
            Self::FidoCertified => "FIDO_CERTIFIED",
            Self::UserVerificationBypass => "USER_VERIFICATION_BYPASS",
            Self::AttestationKeyCompromise => "ATTESTATION_KEY_COMPROMISE",
            Self::UserKeyRemoteCompromise => "USER_KEY_REMOTE_COMPROMISE",
            Self::UserKeyPhysicalCompromise => "USER_KEY_PHYSICAL_COMPROMISE",
            Self::UpdateAvailable => "UPDATE_AVAILABLE",
            Self::Revoked => "REVOKED",
            Self::SelfAssertionSubmitted => "SELF_ASSERTION_SUBMITTED",
            Self::FidoCertifiedL1 => "FIDO_CERTIFIED_L1",
            Self::FidoCertifiedL1Plus => "FIDO_CERTIFIED_L1plus",
            Self::FidoCertifiedL2 => "FIDO_CERTIFIED_L2",
            Self::FidoCertifiedL2Plus => "FIDO_CERTIFIED_L2plus",
            Self::FidoCertifiedL3 => "FIDO_CERTIFIED_L3",
            Self::FidoCertifiedL3Plus => "FIDO_CERTIFIED_L3plus",
            Self::Other => "OTHER",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_classify() {
        let s: Vec<AuthenticatorStatus> =
            serde_json::from_str(r#"["REVOKED","FIDO_CERTIFIED_L1plus","SOMETHING_NEW","UPDATE_AVAILABLE"]"#).unwrap();
        assert_eq!(
            s,
            vec![
                AuthenticatorStatus::Revoked,
                AuthenticatorStatus::FidoCertifiedL1Plus,
                AuthenticatorStatus::Other,
                AuthenticatorStatus::UpdateAvailable
            ]
        );
        assert!(s[0].refuses() && !s[0].is_certified());
        assert!(s[1].is_certified() && !s[1].refuses());
        assert!(!s[2].refuses() && !s[2].is_certified());
        assert_eq!(s[1].as_str(), "FIDO_CERTIFIED_L1plus");
    }
}

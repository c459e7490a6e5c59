//! Extension identifiers and the authenticator-side (CBOR) values of the
//! extensions hwkey implements: credProtect, hmac-secret, credBlob,
//! largeBlobKey, minPinLength; client-side ones (credProps, prf, appid,
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

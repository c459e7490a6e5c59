//! Authentication ceremony: options and every verification step of WebAuthn
//! L3 §7.2 "Verifying an Authentication Assertion".

use super::client_data::{ClientDataError, check_client_data};
use super::config::{CounterPolicy, UserVerification};
use super::registration::CredentialRecord;
use super::{ConfigError, RelyingParty, unix_ms};
use crate::crypto::{CryptoError, ct_eq};
use crate::proto::auth_data::AuthenticatorData;
use crate::proto::cose::CoseKey;
use crate::proto::webauthn::{
    AuthenticationResponseJson, Base64Url, ClientExtensionInputs, ClientExtensionOutputs, CredentialDescriptor,
    RequestOptionsJson,
};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// What the caller asks for when starting an authentication.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationRequest {
    /// The identified user's handle (username-first flow); `None` for a
    /// discoverable-credential (passkey) sign-in.
    pub user_id: Option<Vec<u8>>,
    /// The user's credentials (username-first flow); empty for discoverable.
    pub allow_credentials: Vec<CredentialDescriptor>,
    /// Raises the configured user-verification requirement
    /// ([`RpConfig::user_verification`](super::RpConfig::user_verification));
    /// a weaker one than configured is ignored.
    pub user_verification: Option<UserVerification>,
    /// Hints.
    pub hints: Vec<String>,
    /// Extension inputs (e.g. `appid` for credentials registered over U2F).
    pub extensions: Option<ClientExtensionInputs>,
}

/// The pending authentication; consumed by [`RelyingParty::finish_authentication`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticationState {
    /// The challenge sent to the client.
    pub challenge: Base64Url,
    /// The identified user, if any.
    pub user_id: Option<Base64Url>,
    /// Allowed credential IDs (empty: any discoverable credential).
    pub allow_credentials: Vec<Base64Url>,
    /// The UV requirement in force: the request's, never below the
    /// configured floor. [`RelyingParty::finish_authentication`] checks the
    /// stronger of this and the configuration's current floor.
    pub user_verification: UserVerification,
    /// The U2F AppID requested, if any.
    #[serde(default)]
    pub appid: Option<String>,
    /// Created, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Expires, milliseconds since the Unix epoch.
    pub expires_unix_ms: u64,
}

/// The outcome of a successful authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticationResult {
    /// The credential used.
    pub credential_id: Vec<u8>,
    /// Its user.
    pub user_id: Vec<u8>,
    /// The counter to store (max of old and new, so a reported regression never moves it back).
    pub new_sign_count: u32,
    /// The counter the authenticator reported.
    pub reported_sign_count: u32,
    /// Whether the counter failed to increase (only with [`CounterPolicy::Report`]).
    pub counter_regressed: bool,
    /// UV flag.
    pub user_verified: bool,
    /// Current backup state.
    pub backed_up: bool,
    /// Whether the backup state differs from the stored one (update the record).
    pub backup_state_changed: bool,
    /// Whether the assertion was scoped to the U2F AppID.
    pub appid_used: bool,
    /// Client extension outputs as reported.
    pub client_extension_results: ClientExtensionOutputs,
    /// Authenticator extension outputs (CBOR), if any.
    pub authenticator_extensions: Option<crate::proto::cbor::Value>,
}

/// Why an authentication failed: one variant per §7.2 step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticationError {
    /// The response JSON is malformed.
    #[error("malformed authentication response: {0}")]
    MalformedResponse(String),
    /// The pending ceremony expired.
    #[error("the authentication challenge expired")]
    ChallengeExpired,
    /// Step 5: the credential is not in allowCredentials.
    #[error("credential is not one of the allowed credentials")]
    CredentialNotAllowed,
    /// Step 6/7: the stored credential is not the one in the response.
    #[error("the stored credential does not match the response's credential ID")]
    UnknownCredential,
    /// Step 6: the credential belongs to another user.
    #[error("the credential belongs to another user")]
    CredentialUserMismatch,
    /// Step 6: userHandle absent in a discoverable-credential sign-in.
    #[error("userHandle is required for a discoverable-credential sign-in")]
    UserHandleMissing,
    /// Step 6: userHandle is not the credential's user.
    #[error("userHandle does not match the credential's user")]
    UserHandleMismatch,
    /// Steps 10-14.
    #[error(transparent)]
    ClientData(#[from] ClientDataError),
    /// authenticatorData cannot be parsed.
    #[error("malformed authenticator data: {0}")]
    MalformedAuthenticatorData(String),
    /// Step 15.
    #[error("rpIdHash does not match the RP ID")]
    RpIdMismatch,
    /// Step 16.
    #[error("user presence flag not set")]
    UserPresenceRequired,
    /// Step 17.
    #[error("user verification required but not performed")]
    UserVerificationRequired,
    /// Step 18: BS without BE.
    #[error("backup state set on a credential that is not backup eligible")]
    InvalidBackupFlags,
    /// Step 18: BE differs from the stored value.
    #[error("backup eligibility changed since registration")]
    BackupEligibilityChanged,
    /// The stored public key is unusable.
    #[error("stored credential public key is invalid: {0}")]
    InvalidStoredKey(String),
    /// Step 21.
    #[error("signature does not verify")]
    BadSignature,
    /// Step 22.
    #[error("signature counter did not increase (stored {stored}, received {received})")]
    CounterRegression {
        /// Stored counter.
        stored: u32,
        /// Received counter.
        received: u32,
    },
}

impl AuthenticationError {
    /// Stable snake_case code (the HTTP contract uses it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedResponse(_) => "malformed_request",
            Self::ChallengeExpired => "challenge_expired",
            Self::CredentialNotAllowed => "credential_not_allowed",
            Self::UnknownCredential => "unknown_credential",
            Self::CredentialUserMismatch => "credential_user_mismatch",
            Self::UserHandleMissing => "user_handle_missing",
            Self::UserHandleMismatch => "user_handle_mismatch",
            Self::ClientData(e) => e.code(),
            Self::MalformedAuthenticatorData(_) => "malformed_authenticator_data",
            Self::RpIdMismatch => "rp_id_mismatch",
            Self::UserPresenceRequired => "user_presence_required",
            Self::UserVerificationRequired => "user_verification_required",
            Self::InvalidBackupFlags => "invalid_backup_flags",
            Self::BackupEligibilityChanged => "backup_eligibility_changed",
            Self::InvalidStoredKey(_) => "invalid_stored_key",
            Self::BadSignature => "bad_signature",
            Self::CounterRegression { .. } => "counter_regression",
        }
    }
}

impl RelyingParty {
    /// Start an authentication: the options for the client and the state to keep.
    pub fn start_authentication(
        &self,
        req: AuthenticationRequest,
        now: SystemTime,
    ) -> Result<(RequestOptionsJson, AuthenticationState), ConfigError> {
        let challenge = self.random_challenge()?;
        let uv = self.user_verification_for(req.user_verification);
        let timeout_ms = self.config.timeout.as_millis() as u64;
        let appid = req.extensions.as_ref().and_then(|e| e.appid.clone());
        if appid.as_ref().is_some_and(|a| !a.starts_with("https://")) {
            return Err(ConfigError::Invalid("the appid extension takes an https URL".into()));
        }
        let options = RequestOptionsJson {
            challenge: Base64Url(challenge.clone()),
            timeout: Some(timeout_ms),
            rp_id: Some(self.config.rp_id.clone()),
            allow_credentials: req.allow_credentials.clone(),
            user_verification: Some(uv.as_str().into()),
            hints: req.hints,
            extensions: req.extensions,
        };
        let created = unix_ms(now);
        let state = AuthenticationState {
            challenge: Base64Url(challenge),
            user_id: req.user_id.map(Base64Url),
            allow_credentials: req.allow_credentials.into_iter().map(|d| d.id).collect(),
            user_verification: uv,
            appid,
            created_unix_ms: created,
            expires_unix_ms: created.saturating_add(timeout_ms),
        };
        Ok((options, state))
    }

    /// Finish from the response's JSON bytes. `lookup` finds the stored
    /// credential by (credential ID, userHandle) — the only I/O the ceremony needs.
    pub fn finish_authentication_json<F, R>(
        &self,
        state: AuthenticationState,
        response_json: &[u8],
        lookup: F,
        now: SystemTime,
    ) -> Result<AuthenticationResult, AuthenticationError>
    where
        F: FnOnce(&[u8], Option<&[u8]>) -> Option<R>,
        R: std::borrow::Borrow<CredentialRecord>,
    {
        let response: AuthenticationResponseJson =
            serde_json::from_slice(response_json).map_err(|e| AuthenticationError::MalformedResponse(e.to_string()))?;
        let stored = lookup(&response.raw_id, response.response.user_handle.as_deref())
            .ok_or(AuthenticationError::UnknownCredential)?;
        self.finish_authentication(state, &response, stored.borrow(), now)
    }

    /// Finish an authentication against the stored credential record: every
    /// step of WebAuthn L3 §7.2. Consumes the state. On success, store
    /// `new_sign_count` and, if `backup_state_changed`, the new backup state.
    pub fn finish_authentication(
        &self,
        state: AuthenticationState,
        response: &AuthenticationResponseJson,
        stored: &CredentialRecord,
        now: SystemTime,
    ) -> Result<AuthenticationResult, AuthenticationError> {
        if unix_ms(now) > state.expires_unix_ms {
            return Err(AuthenticationError::ChallengeExpired);
        }
        if response.type_ != "public-key" {
            return Err(AuthenticationError::MalformedResponse(format!(
                "type is {:?}, not public-key",
                response.type_
            )));
        }
        let cred_id: &[u8] = &response.raw_id;
        if crate::proto::webauthn::b64url_decode(&response.id).ok().as_deref() != Some(cred_id) {
            return Err(AuthenticationError::MalformedResponse("id does not match rawId".into()));
        }
        // Step 5.
        if !state.allow_credentials.is_empty() && !state.allow_credentials.iter().any(|c| c.0 == cred_id) {
            return Err(AuthenticationError::CredentialNotAllowed);
        }
        // Step 7: the record the caller found must be this credential's.
        if stored.credential_id.0 != cred_id {
            return Err(AuthenticationError::UnknownCredential);
        }
        // Step 6: the user.
        let user_handle = response.response.user_handle.as_ref().filter(|h| !h.is_empty());
        match &state.user_id {
            Some(uid) => {
                if stored.user_id != *uid {
                    return Err(AuthenticationError::CredentialUserMismatch);
                }
                if let Some(h) = user_handle
                    && h != uid
                {
                    return Err(AuthenticationError::UserHandleMismatch);
                }
            }
            None => {
                let h = user_handle.ok_or(AuthenticationError::UserHandleMissing)?;
                if *h != stored.user_id {
                    return Err(AuthenticationError::UserHandleMismatch);
                }
            }
        }
        // Steps 10-14.
        let cdj: &[u8] = &response.response.client_data_json;
        check_client_data(cdj, "webauthn.get", &state.challenge, &self.config)?;
        let raw_ad: &[u8] = &response.response.authenticator_data;
        let ad = AuthenticatorData::parse(raw_ad)
            .map_err(|e| AuthenticationError::MalformedAuthenticatorData(e.to_string()))?;
        // Step 15. With the appid extension in play (the client reports
        // `appid: true`), the rpIdHash MUST be SHA-256 of the AppID and not of
        // the RP ID (FIDO AppID extension, WebAuthn L3 §10.1.1). An AppID must
        // be an https URL; anything else is never honoured.
        let appid_used = match (&state.appid, response.client_extension_results.appid) {
            (Some(appid), Some(true)) => {
                if !appid.starts_with("https://") || !ct_eq(&ad.rp_id_hash, &self.provider.sha256(&[appid.as_bytes()]))
                {
                    return Err(AuthenticationError::RpIdMismatch);
                }
                true
            }
            _ => {
                if !ct_eq(&ad.rp_id_hash, &self.rp_id_hash) {
                    return Err(AuthenticationError::RpIdMismatch);
                }
                false
            }
        };
        // Step 16.
        if !ad.flags.up() {
            return Err(AuthenticationError::UserPresenceRequired);
        }
        // Step 17: against the state's requirement, and never below the
        // configured floor (a state made elsewhere cannot lower it).
        if self.user_verification_for(Some(state.user_verification)) == UserVerification::Required && !ad.flags.uv() {
            return Err(AuthenticationError::UserVerificationRequired);
        }
        // Step 18.
        if !ad.flags.be() && ad.flags.bs() {
            return Err(AuthenticationError::InvalidBackupFlags);
        }
        if ad.flags.be() != stored.backup_eligible {
            return Err(AuthenticationError::BackupEligibilityChanged);
        }
        // Steps 20-21.
        let key = CoseKey::from_bytes(&stored.public_key)
            .map_err(|e| AuthenticationError::InvalidStoredKey(e.to_string()))?;
        let hash = self.provider.sha256(&[cdj]);
        let mut signed = Vec::with_capacity(raw_ad.len() + 32);
        signed.extend_from_slice(raw_ad);
        signed.extend_from_slice(&hash);
        crate::crypto::cose_verify::verify_with_alg(
            self.provider,
            stored.algorithm,
            &key,
            &signed,
            &response.response.signature,
            self.config.attestation_policy.allow_rs1,
        )
        .map_err(|e| match e {
            CryptoError::BadSignature => AuthenticationError::BadSignature,
            other => AuthenticationError::InvalidStoredKey(other.to_string()),
        })?;
        // Step 22.
        let received = ad.sign_count;
        let regressed = (received != 0 || stored.sign_count != 0) && received <= stored.sign_count;
        if regressed && self.config.counter_policy == CounterPolicy::Reject {
            return Err(AuthenticationError::CounterRegression { stored: stored.sign_count, received });
        }
        Ok(AuthenticationResult {
            credential_id: cred_id.to_vec(),
            user_id: stored.user_id.0.clone(),
            new_sign_count: received.max(stored.sign_count),
            reported_sign_count: received,
            counter_regressed: regressed,
            user_verified: ad.flags.uv(),
            backed_up: ad.flags.bs(),
            backup_state_changed: ad.flags.bs() != stored.backed_up,
            appid_used,
            client_extension_results: response.client_extension_results.clone(),
            authenticator_extensions: ad.extensions,
        })
    }
}

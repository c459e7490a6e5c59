//! Registration ceremony: options and every verification step of WebAuthn L3
//! §7.1 "Registering a New Credential".

use super::attestation::{self, AttestationContext, AttestationError, AttestationType, VerifiedAttestation};
use super::client_data::{ClientDataError, check_client_data};
use super::config::{AttestationConveyance, ResidentKeyRequirement, UserVerification};
use super::metadata::{AuthenticatorInfo, MetadataRefusal};
use super::{ConfigError, RelyingParty, unix_ms};
use crate::proto::attestation::AttestationObject;
use crate::proto::auth_data::aaguid_to_string;
use crate::proto::cose::CoseAlgorithm;
use crate::proto::extensions::CredProtect;
use crate::proto::webauthn::{
    AuthenticatorSelection, Base64Url, ClientExtensionInputs, ClientExtensionOutputs, CreationOptionsJson,
    CredentialDescriptor, PubKeyCredParam, RegistrationResponseJson, RpEntity, UserEntity,
};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Longest credential ID a relying party accepts (§7.1 step 25).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// What the caller asks for when starting a registration.
#[derive(Debug, Clone, Default)]
pub struct RegistrationRequest {
    /// The user handle: random, at most 64 bytes, no personal data.
    pub user_id: Vec<u8>,
    /// Account name.
    pub user_name: String,
    /// Display name (defaults to the account name when empty).
    pub display_name: String,
    /// The user's existing credentials, so an authenticator does not register twice.
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// Overrides the configured resident-key requirement.
    pub resident_key: Option<ResidentKeyRequirement>,
    /// Raises the configured user-verification requirement
    /// ([`RpConfig::user_verification`](super::RpConfig::user_verification));
    /// a weaker one than configured is ignored.
    pub user_verification: Option<UserVerification>,
    /// Overrides the configured attestation conveyance.
    pub attestation: Option<AttestationConveyance>,
    /// "platform" or "cross-platform".
    pub authenticator_attachment: Option<String>,
    /// Hints ("security-key", "client-device", "hybrid").
    pub hints: Vec<String>,
    /// Extension inputs (credProps is always requested).
    pub extensions: Option<ClientExtensionInputs>,
    /// A conditional create (WebAuthn L3 `mediation: "conditional"`): the
    /// browser creates a passkey without a dialog, after a password sign-in,
    /// so user presence is not required (§7.1 step 14).
    pub conditional: bool,
}

/// The pending registration: store it (e.g. in a session or database) and
/// hand it back to [`RelyingParty::finish_registration`], which consumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationState {
    /// The challenge sent to the client.
    pub challenge: Base64Url,
    /// The user handle.
    pub user_id: Base64Url,
    /// The account name.
    pub user_name: String,
    /// The UV requirement in force: the request's, never below the
    /// configured floor. [`RelyingParty::finish_registration`] checks the
    /// stronger of this and the configuration's current floor.
    pub user_verification: UserVerification,
    /// Credential IDs the authenticator must not already hold.
    pub exclude_credentials: Vec<Base64Url>,
    /// credProtect level that must be applied, if enforced.
    #[serde(default)]
    pub enforce_cred_protect: Option<u8>,
    /// Created, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Expires, milliseconds since the Unix epoch.
    pub expires_unix_ms: u64,
    /// A conditional create: user presence is not required.
    #[serde(default)]
    pub conditional: bool,
}

/// A stored credential (WebAuthn L3 "credential record").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Credential ID.
    pub credential_id: Base64Url,
    /// The user handle the credential belongs to.
    pub user_id: Base64Url,
    /// COSE_Key bytes of the credential public key.
    pub public_key: Base64Url,
    /// COSE algorithm of the key.
    pub algorithm: CoseAlgorithm,
    /// Last signature counter seen.
    pub sign_count: u32,
    /// Whether UV was performed at registration.
    pub uv_initialized: bool,
    /// Transports reported by the client.
    pub transports: Vec<String>,
    /// Backup eligibility (fixed for the credential's lifetime).
    pub backup_eligible: bool,
    /// Backup state (may change).
    pub backed_up: bool,
    /// Authenticator AAGUID as a UUID string.
    pub aaguid: String,
    /// Attestation statement format.
    pub attestation_format: String,
    /// Attestation type.
    pub attestation_type: AttestationType,
    /// Whether the attestation chain reached a configured trust anchor.
    pub attestation_trusted: bool,
    /// Whether the client reported the credential as discoverable (credProps).
    #[serde(default)]
    pub discoverable: Option<bool>,
}

/// The outcome of a successful registration.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationResult {
    /// The record to store.
    pub credential: CredentialRecord,
    /// UV flag.
    pub user_verified: bool,
    /// The verified attestation (type and chain).
    pub attestation: VerifiedAttestation,
    /// Why the attestation is not trusted, when it is not.
    pub untrusted_reason: Option<String>,
    /// Client extension outputs as the client reported them.
    pub client_extension_results: ClientExtensionOutputs,
    /// Authenticator extension outputs (CBOR), if any.
    pub authenticator_extensions: Option<crate::proto::cbor::Value>,
    /// The authenticator's name, icon and certification, when its AAGUID is
    /// known to the metadata or to the bundled passkey-provider list.
    pub authenticator: Option<AuthenticatorInfo>,
}

/// Why a registration failed: one variant per §7.1 step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The response JSON is malformed (step 3 and decoding).
    #[error("malformed registration response: {0}")]
    MalformedResponse(String),
    /// The pending ceremony expired.
    #[error("the registration challenge expired")]
    ChallengeExpired,
    /// Steps 5-10: client data checks.
    #[error(transparent)]
    ClientData(#[from] ClientDataError),
    /// Step 12: the attestation object cannot be decoded.
    #[error("malformed attestation object: {0}")]
    MalformedAttestationObject(String),
    /// Step 13: rpIdHash is not SHA-256 of the RP ID.
    #[error("rpIdHash does not match the RP ID")]
    RpIdMismatch,
    /// Step 14: UP flag not set.
    #[error("user presence flag not set")]
    UserPresenceRequired,
    /// Step 15: UV required but not performed.
    #[error("user verification required but not performed")]
    UserVerificationRequired,
    /// Step 16: BS set without BE.
    #[error("backup state set on a credential that is not backup eligible")]
    InvalidBackupFlags,
    /// Attested credential data absent.
    #[error("authenticator data carries no attested credential data")]
    MissingAttestedCredential,
    /// Step 19: credential algorithm not in pubKeyCredParams.
    #[error("credential algorithm {0} is not allowed")]
    AlgorithmNotAllowed(String),
    /// Step 20: extension outputs inconsistent with the request.
    #[error("extension output unexpected: {0}")]
    ExtensionMismatch(String),
    /// Steps 21-22: attestation statement verification.
    #[error(transparent)]
    Attestation(#[from] AttestationError),
    /// Step 24: attestation not trustworthy under the policy.
    #[error("attestation is not trusted: {0}")]
    AttestationUntrusted(String),
    /// Step 25: credential ID too long.
    #[error("credential ID longer than 1023 bytes")]
    CredentialIdTooLong,
    /// Step 26 (in part): the authenticator returned an excluded credential.
    #[error("the authenticator already holds a credential of this user")]
    CredentialExcluded,
    /// The credential ID is empty.
    #[error("the credential ID is empty")]
    EmptyCredentialId,
    /// The credential public key could never verify a signature (off its
    /// curve, too short, of the wrong type for its algorithm).
    #[error("the credential public key is not usable: {0}")]
    InvalidCredentialKey(String),
    /// FIDO metadata refuses the authenticator, or the attestation policy is not met.
    #[error(transparent)]
    Metadata(#[from] MetadataRefusal),
}

impl RegistrationError {
    /// Stable snake_case code (the HTTP contract uses it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedResponse(_) => "malformed_request",
            Self::ChallengeExpired => "challenge_expired",
            Self::ClientData(e) => e.code(),
            Self::MalformedAttestationObject(_) => "malformed_attestation_object",
            Self::RpIdMismatch => "rp_id_mismatch",
            Self::UserPresenceRequired => "user_presence_required",
            Self::UserVerificationRequired => "user_verification_required",
            Self::InvalidBackupFlags => "invalid_backup_flags",
            Self::MissingAttestedCredential => "missing_attested_credential",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::ExtensionMismatch(_) => "extension_mismatch",
            Self::Attestation(e) => e.code(),
            Self::AttestationUntrusted(_) => "attestation_untrusted",
            Self::CredentialIdTooLong => "credential_id_too_long",
            Self::CredentialExcluded => "credential_excluded",
            Self::EmptyCredentialId => "invalid_credential_id",
            Self::InvalidCredentialKey(_) => "invalid_credential_key",
            Self::Metadata(e) => e.code(),
        }
    }
}

impl RelyingParty {
    /// Start a registration: the options for the client and the state to keep.
    pub fn start_registration(
        &self,
        req: RegistrationRequest,
        now: SystemTime,
    ) -> Result<(CreationOptionsJson, RegistrationState), ConfigError> {
        if req.user_id.is_empty() || req.user_id.len() > 64 {
            return Err(ConfigError::Invalid("user handle must be 1 to 64 bytes".into()));
        }
        let challenge = self.random_challenge()?;
        let uv = self.user_verification_for(req.user_verification);
        let rk = req.resident_key.unwrap_or(self.config.resident_key);
        let att = req.attestation.unwrap_or(self.config.attestation);
        let mut ext = req.extensions.unwrap_or_default();
        ext.cred_props = Some(true);
        let enforce_cred_protect = match (&ext.credential_protection_policy, ext.enforce_credential_protection_policy) {
            (Some(p), Some(true)) => CredProtect::from_policy_name(p).map(|c| c as u8),
            _ => None,
        };
        let timeout_ms = self.config.timeout.as_millis() as u64;
        let display_name = if req.display_name.is_empty() { req.user_name.clone() } else { req.display_name };
        let options = CreationOptionsJson {
            rp: RpEntity { id: Some(self.config.rp_id.clone()), name: self.config.rp_name.clone() },
            user: UserEntity { id: Base64Url(req.user_id.clone()), name: req.user_name.clone(), display_name },
            challenge: Base64Url(challenge.clone()),
            pub_key_cred_params: self.config.algorithms.iter().map(|a| PubKeyCredParam::public_key(*a)).collect(),
            timeout: Some(timeout_ms),
            exclude_credentials: req.exclude_credentials.clone(),
            authenticator_selection: Some(AuthenticatorSelection {
                authenticator_attachment: req.authenticator_attachment,
                resident_key: Some(rk.as_str().into()),
                require_resident_key: rk == ResidentKeyRequirement::Required,
                user_verification: Some(uv.as_str().into()),
            }),
            hints: req.hints,
            attestation: Some(att.as_str().into()),
            attestation_formats: Vec::new(),
            extensions: Some(ext),
        };
        let created = unix_ms(now);
        let state = RegistrationState {
            challenge: Base64Url(challenge),
            user_id: Base64Url(req.user_id),
            user_name: req.user_name,
            user_verification: uv,
            exclude_credentials: req.exclude_credentials.into_iter().map(|d| d.id).collect(),
            enforce_cred_protect,
            created_unix_ms: created,
            expires_unix_ms: created.saturating_add(timeout_ms),
            conditional: req.conditional,
        };
        Ok((options, state))
    }

    /// Finish a registration from the response's JSON bytes.
    pub fn finish_registration_json(
        &self,
        state: RegistrationState,
        response_json: &[u8],
        now: SystemTime,
    ) -> Result<RegistrationResult, RegistrationError> {
        let response: RegistrationResponseJson =
            serde_json::from_slice(response_json).map_err(|e| RegistrationError::MalformedResponse(e.to_string()))?;
        self.finish_registration(state, &response, now)
    }

    /// Finish a registration: every step of WebAuthn L3 §7.1. Consumes the state.
    pub fn finish_registration(
        &self,
        state: RegistrationState,
        response: &RegistrationResponseJson,
        now: SystemTime,
    ) -> Result<RegistrationResult, RegistrationError> {
        if unix_ms(now) > state.expires_unix_ms {
            return Err(RegistrationError::ChallengeExpired);
        }
        // Step 3: the credential type.
        if response.type_ != "public-key" {
            return Err(RegistrationError::MalformedResponse(format!("type is {:?}, not public-key", response.type_)));
        }
        // Steps 5-10.
        let cdj = &response.response.client_data_json.0;
        check_client_data(cdj, "webauthn.create", &state.challenge, &self.config)?;
        // Step 11.
        let client_data_hash = self.provider.sha256(&[cdj]);
        // Step 12.
        let att = AttestationObject::parse(&response.response.attestation_object)
            .map_err(|e| RegistrationError::MalformedAttestationObject(e.to_string()))?;
        let ad = &att.auth_data;
        // Step 13.
        if !crate::crypto::ct_eq(&ad.rp_id_hash, &self.rp_id_hash) {
            return Err(RegistrationError::RpIdMismatch);
        }
        // Step 14: user presence, unless this is a conditional create.
        if !state.conditional && !ad.flags.up() {
            return Err(RegistrationError::UserPresenceRequired);
        }
        // Step 15: against the state's requirement, and never below the
        // configured floor (a state made elsewhere cannot lower it).
        if self.user_verification_for(Some(state.user_verification)) == UserVerification::Required && !ad.flags.uv() {
            return Err(RegistrationError::UserVerificationRequired);
        }
        // Step 16.
        if !ad.flags.be() && ad.flags.bs() {
            return Err(RegistrationError::InvalidBackupFlags);
        }
        let acd = ad.attested_credential.as_ref().ok_or(RegistrationError::MissingAttestedCredential)?;
        // Step 19: the credential key's algorithm must be one we offered.
        let alg =
            acd.public_key.alg().ok_or_else(|| RegistrationError::AlgorithmNotAllowed("key has no alg".into()))?;
        // An RFC 9864 fully specified identifier is accepted where its
        // polymorphic twin was offered (ESP256 for ES256, Ed25519 for EdDSA).
        let offered = self.config.algorithms.contains(&alg)
            || alg.polymorphic_twin().is_some_and(|twin| self.config.algorithms.contains(&twin));
        if !offered {
            return Err(RegistrationError::AlgorithmNotAllowed(alg.to_string()));
        }
        // A key that could never verify a signature is refused now, not at
        // its first sign-in.
        crate::crypto::cose_verify::validate_credential_key(self.provider, alg, &acd.public_key)
            .map_err(|e| RegistrationError::InvalidCredentialKey(e.to_string()))?;
        if acd.credential_id.is_empty() {
            return Err(RegistrationError::EmptyCredentialId);
        }
        // Step 20: extension outputs.
        if let Some(level) = state.enforce_cred_protect {
            let got = ad.extension("credProtect").and_then(|v| v.as_u64()).unwrap_or(1);
            if got < level as u64 {
                return Err(RegistrationError::ExtensionMismatch(format!(
                    "credProtect {got} is weaker than the enforced {level}"
                )));
            }
        }
        // Steps 21-22.
        let ctx = AttestationContext {
            provider: self.provider,
            now_unix: (unix_ms(now) / 1000) as i64,
            allow_safetynet: self.config.attestation_policy.allow_safetynet,
            allow_rs1: self.config.attestation_policy.allow_rs1,
        };
        let verified = attestation::verify_attestation_with_policy(
            &att.fmt,
            &att.att_stmt,
            ad,
            &att.auth_data_raw,
            &client_data_hash,
            &ctx,
            &self.config.attestation_policy.formats,
        )?;
        // Steps 23-24: trust.
        let (trusted, untrusted_reason) = self.assess_trust(&verified, ctx.now_unix);
        let policy = &self.config.attestation_policy;
        if !trusted && (policy.require_trusted || !policy.allow_untrusted) {
            return Err(RegistrationError::AttestationUntrusted(
                untrusted_reason.clone().unwrap_or_else(|| "not trusted".into()),
            ));
        }
        // Metadata: revoked or compromised models, the attestation policy,
        // and the authenticator's name.
        let metadata = self.metadata.as_ref().map(|m| m.current());
        let authenticator = super::metadata::decide(
            self.provider,
            metadata.as_deref(),
            policy.requirement,
            &policy.allowed_aaguids,
            &acd.aaguid,
            &verified,
            now,
        )?;
        // Step 25.
        if acd.credential_id.len() > super::registration::MAX_CREDENTIAL_ID_LEN {
            return Err(RegistrationError::CredentialIdTooLong);
        }
        // The attested credential ID is authoritative. Clients report it as
        // rawId too, but real responses exist whose rawId differs (accepted by
        // every major relying-party library), and authData is what is signed.
        // Step 26 (the part that needs no storage): excluded credentials.
        if state.exclude_credentials.iter().any(|c| c.0 == acd.credential_id) {
            return Err(RegistrationError::CredentialExcluded);
        }
        // Step 27: the credential record.
        let ext = &response.client_extension_results;
        let credential = CredentialRecord {
            credential_id: Base64Url(acd.credential_id.clone()),
            user_id: state.user_id,
            public_key: Base64Url(acd.public_key_bytes.clone()),
            algorithm: alg,
            sign_count: ad.sign_count,
            uv_initialized: ad.flags.uv(),
            transports: crate::proto::webauthn::known_transports(
                response.response.transports.as_deref().unwrap_or_default(),
            ),
            backup_eligible: ad.flags.be(),
            backed_up: ad.flags.bs(),
            aaguid: aaguid_to_string(&acd.aaguid),
            attestation_format: att.fmt.clone(),
            attestation_type: verified.attestation_type,
            attestation_trusted: trusted,
            discoverable: ext.cred_props.as_ref().and_then(|p| p.rk),
        };
        Ok(RegistrationResult {
            credential,
            user_verified: ad.flags.uv(),
            attestation: verified,
            untrusted_reason,
            client_extension_results: ext.clone(),
            authenticator_extensions: ad.extensions.clone(),
            authenticator,
        })
    }

    fn assess_trust(&self, verified: &VerifiedAttestation, now_unix: i64) -> (bool, Option<String>) {
        use super::trust::{ChainOptions, TrustVerdict, evaluate_attestation_with};
        let policy = &self.config.attestation_policy;
        let options = ChainOptions { allow_legacy: policy.allow_legacy_chains };
        match evaluate_attestation_with(self.provider, verified, &policy.trust_anchors, now_unix, options) {
            TrustVerdict::Trusted { .. } => (true, None),
            TrustVerdict::Untrusted(e) => (false, Some(e.to_string())),
            TrustVerdict::SelfOrNone => {
                (false, Some(format!("{} attestation has no certificate chain", verified.attestation_type.as_str())))
            }
        }
    }
}

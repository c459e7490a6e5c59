//! The FIDO2 hmac-secret backend of "a stable 32-byte secret from the user's
//! key" ([`crate::derive`]).
//!
//! Enrollment creates one non-discoverable credential with hmac-secret
//! enabled under a relying party id of the program's choosing (nothing is
//! stored on the key); the [`Backend::Fido2HmacSecret`] record keeps the RP
//! id, the credential id and whether the user is verified. Every derivation
//! is then a getAssertion for that credential with the hmac-secret
//! extension, salt1 = the derivation's 32-byte challenge, run through the
//! [`WebAuthnClient`] with the origin `https://RP_ID` so that PIN and
//! built-in UV are handled as for any WebAuthn ceremony.
//!
//! A FIDO2 key holds two hmac-secret keys per credential, one used when the
//! user was verified and one when not. The choice is therefore made once at
//! enrollment ([`Fido2Options::uv`]; by default: verify when the key has a PIN
//! or built-in UV) and recorded; later derivations ask for the same, and a key
//! that verifies when the enrollment did not (e.g. alwaysUv switched on since)
//! is reported as [`DeriveError::UvMismatch`] rather than as a wrong key.
//!
//! PINs: the source asks the caller's [`UserInteraction`] at most once per
//! source and reuses the answer for each ceremony it runs (credential
//! creation, then derivations), so a [`FixedPin`](super::webauthn::FixedPin)
//! serves a whole enrollment. A PIN the key rejects is forgotten and asked
//! again, never replayed.

use super::webauthn::{UserInteraction, WebAuthnClient};
use super::{ClientError, Device, Op};
use crate::derive::{Backend, DeriveError, Enrollment, SecretSource};
use crate::proto::auth_data::AuthenticatorData;
use crate::proto::cose::CoseAlgorithm;
use crate::proto::ctap2::PublicKeyCredentialUserEntity;
use crate::proto::extensions::id as ext_id;
use crate::proto::webauthn::{
    AuthenticatorSelection, Base64Url, ClientExtensionInputs, CreationOptionsJson, CredentialDescriptor,
    HmacGetSecretInput, PubKeyCredParam, RequestOptionsJson, RpEntity, UserEntity, b64url_decode, b64url_encode,
};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use zeroize::Zeroizing;

/// How to create the enrollment credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2Options {
    /// The relying party id the credential is scoped to: any name of the
    /// program's own (e.g. `myapp.example.org` or `myapp-vault`); it must be
    /// a valid host name, as the client checks it against `https://RP_ID`.
    pub rp_id: String,
    /// The account name stored with the credential (shown by credential
    /// managers; not secret).
    pub user_name: String,
    /// Verify the user (PIN or built-in UV) on every derivation: `Some(true)`
    /// or `Some(false)`; `None`: yes when the key has a PIN or built-in UV.
    pub uv: Option<bool>,
}

impl Fido2Options {
    /// Options for `rp_id`, user name "hwkey derive", UV decided from the key.
    pub fn new(rp_id: impl Into<String>) -> Self {
        Fido2Options { rp_id: rp_id.into(), user_name: "hwkey derive".into(), uv: None }
    }
}

/// The FIDO2 hmac-secret backend: one credential of one security key.
pub struct Fido2HmacSecretSource<'a> {
    dev: &'a mut Device,
    ui: &'a dyn UserInteraction,
    pin: Mutex<Option<Zeroizing<String>>>,
    op: Op,
    rp_id: String,
    credential_id: Vec<u8>,
    uv: bool,
}

impl std::fmt::Debug for Fido2HmacSecretSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fido2HmacSecretSource")
            .field("device", &self.dev.describe())
            .field("rp_id", &self.rp_id)
            .field("credential_id", &b64url_encode(&self.credential_id))
            .field("uv", &self.uv)
            .finish_non_exhaustive()
    }
}

/// The caller's [`UserInteraction`] seen through the source's PIN cache, for
/// one ceremony: the first request of the ceremony gets the cached PIN (or
/// asks); any later request means the PIN was wrong, so it is dropped and
/// the caller is asked again.
struct CeremonyUi<'b> {
    inner: &'b dyn UserInteraction,
    cache: &'b Mutex<Option<Zeroizing<String>>>,
    calls: AtomicU32,
}

impl UserInteraction for CeremonyUi<'_> {
    fn request_pin(&self, retries: Option<u64>) -> Option<Zeroizing<String>> {
        let mut cache = self.cache.lock().ok()?;
        if self.calls.fetch_add(1, Ordering::SeqCst) > 0 {
            *cache = None;
        }
        if cache.is_none() {
            *cache = self.inner.request_pin(retries);
        }
        cache.clone()
    }

    fn choose_account(&self, users: &[Option<PublicKeyCredentialUserEntity>]) -> Option<usize> {
        self.inner.choose_account(users)
    }
}

fn random(n: usize) -> Result<Vec<u8>, DeriveError> {
    crate::crypto::default_provider().random_bytes(n).map_err(|e| DeriveError::Other(e.to_string()))
}

impl<'a> Fido2HmacSecretSource<'a> {
    /// Create the enrollment credential on `dev` (one touch, and the PIN if
    /// user verification is chosen) and return the source for it; pass it to
    /// [`enroll`](crate::derive::enroll), which asks the key once more.
    pub fn create(
        dev: &'a mut Device,
        ui: &'a dyn UserInteraction,
        options: &Fido2Options,
        op: Op,
    ) -> Result<Self, DeriveError> {
        let supported = dev.info().is_some_and(|i| i.supports_extension(ext_id::HMAC_SECRET));
        if !supported {
            return Err(DeriveError::Unsupported(format!(
                "the security key at {} does not support the hmac-secret extension",
                dev.describe()
            )));
        }
        let uv = options.uv.unwrap_or_else(|| {
            dev.option("clientPin") == Some(true)
                || dev.option("uv") == Some(true)
                || dev.option("alwaysUv") == Some(true)
        });
        let creation = CreationOptionsJson {
            rp: RpEntity { id: Some(options.rp_id.clone()), name: options.rp_id.clone() },
            user: UserEntity {
                id: Base64Url(random(16)?),
                name: options.user_name.clone(),
                display_name: options.user_name.clone(),
            },
            challenge: Base64Url(random(32)?),
            pub_key_cred_params: vec![
                PubKeyCredParam::public_key(CoseAlgorithm::ES256),
                PubKeyCredParam::public_key(CoseAlgorithm::EDDSA),
            ],
            timeout: None,
            exclude_credentials: Vec::new(),
            authenticator_selection: Some(AuthenticatorSelection {
                resident_key: Some("discouraged".into()),
                user_verification: Some(uv_word(uv).into()),
                ..Default::default()
            }),
            hints: vec!["security-key".into()],
            attestation: Some("none".into()),
            attestation_formats: Vec::new(),
            extensions: Some(ClientExtensionInputs { hmac_create_secret: Some(true), ..Default::default() }),
        };
        let mut source = Fido2HmacSecretSource {
            dev,
            ui,
            pin: Mutex::new(None),
            op,
            rp_id: options.rp_id.clone(),
            credential_id: Vec::new(),
            uv,
        };
        let origin = source.origin();
        let response = {
            let cui = ceremony_ui(source.ui, &source.pin);
            WebAuthnClient::new(&cui).register(source.dev, &creation, &origin, &source.op)?
        };
        if response.client_extension_results.hmac_create_secret != Some(true) {
            return Err(DeriveError::Unsupported("the credential was created without hmac-secret".into()));
        }
        if response.raw_id.is_empty() {
            return Err(DeriveError::Client(ClientError::Malformed("empty credential id".into())));
        }
        source.credential_id = response.raw_id.0;
        Ok(source)
    }

    /// The source for an existing credential, from its backend record (which
    /// must be [`Backend::Fido2HmacSecret`], else [`DeriveError::BackendMismatch`]).
    pub fn new(
        dev: &'a mut Device,
        ui: &'a dyn UserInteraction,
        backend: &Backend,
        op: Op,
    ) -> Result<Self, DeriveError> {
        let Backend::Fido2HmacSecret { rp_id, credential_id, uv } = backend else {
            return Err(DeriveError::BackendMismatch { enrolled: backend.kind(), presented: "fido2_hmac_secret" });
        };
        let id = b64url_decode(credential_id)
            .map_err(|_| DeriveError::BadEnrollment("credential_id is not base64url".into()))?;
        if id.is_empty() {
            return Err(DeriveError::BadEnrollment("empty credential_id".into()));
        }
        if rp_id.is_empty() {
            return Err(DeriveError::BadEnrollment("empty rp_id".into()));
        }
        Ok(Fido2HmacSecretSource {
            dev,
            ui,
            pin: Mutex::new(None),
            op,
            rp_id: rp_id.clone(),
            credential_id: id,
            uv: *uv,
        })
    }

    /// The source for the credential of `enrollment`.
    pub fn for_enrollment(
        dev: &'a mut Device,
        ui: &'a dyn UserInteraction,
        enrollment: &Enrollment,
        op: Op,
    ) -> Result<Self, DeriveError> {
        Self::new(dev, ui, &enrollment.backend, op)
    }

    /// Use `op` (deadline, cancel handle, progress) for the next ceremonies.
    pub fn set_op(&mut self, op: Op) {
        self.op = op;
    }

    /// The credential id.
    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }

    /// The relying party id.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Whether the user is verified on each derivation.
    pub fn user_verification(&self) -> bool {
        self.uv
    }

    fn origin(&self) -> String {
        format!("https://{}", self.rp_id)
    }
}

fn ceremony_ui<'b>(inner: &'b dyn UserInteraction, cache: &'b Mutex<Option<Zeroizing<String>>>) -> CeremonyUi<'b> {
    CeremonyUi { inner, cache, calls: AtomicU32::new(0) }
}

fn uv_word(uv: bool) -> &'static str {
    if uv { "required" } else { "discouraged" }
}

impl SecretSource for Fido2HmacSecretSource<'_> {
    fn backend(&mut self) -> Result<Backend, DeriveError> {
        Ok(Backend::Fido2HmacSecret {
            rp_id: self.rp_id.clone(),
            credential_id: b64url_encode(&self.credential_id),
            uv: self.uv,
        })
    }

    fn respond(&mut self, challenge: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, DeriveError> {
        let request = RequestOptionsJson {
            challenge: Base64Url(random(32)?),
            timeout: None,
            rp_id: Some(self.rp_id.clone()),
            allow_credentials: vec![CredentialDescriptor::public_key(self.credential_id.clone(), None)],
            user_verification: Some(uv_word(self.uv).into()),
            hints: vec!["security-key".into()],
            extensions: Some(ClientExtensionInputs {
                hmac_get_secret: Some(HmacGetSecretInput { salt1: Base64Url(challenge.to_vec()), salt2: None }),
                ..Default::default()
            }),
        };
        let origin = self.origin();
        let result = {
            let cui = ceremony_ui(self.ui, &self.pin);
            WebAuthnClient::new(&cui).authenticate(self.dev, &request, &origin, &self.op)
        };
        let mut response = match result {
            Ok(r) => r,
            Err(ClientError::NoCredentials) => {
                return Err(DeriveError::CredentialNotFound { rp_id: self.rp_id.clone() });
            }
            Err(e) => return Err(e.into()),
        };
        let ad = AuthenticatorData::parse(&response.response.authenticator_data)
            .map_err(|e| DeriveError::Client(ClientError::Malformed(e.to_string())))?;
        if ad.flags.uv() != self.uv {
            return Err(DeriveError::UvMismatch { enrolled: self.uv });
        }
        let output = response.client_extension_results.hmac_get_secret.take().ok_or_else(|| {
            DeriveError::Unsupported("the security key returned no hmac-secret output for the credential".into())
        })?;
        let out = Zeroizing::new(output.output1.0);
        if out.len() != 32 {
            return Err(DeriveError::Client(ClientError::Malformed("hmac-secret output is not 32 bytes".into())));
        }
        Ok(out)
    }
}

//! A software CTAP 2.2 authenticator (feature `virtual`), sans-I/O, with an
//! optional simulated fingerprint sensor ([`bio_enrollment`]).
//!
//! [`Authenticator`] maps request bytes to response bytes:
//! [`Authenticator::handle_cbor`] takes a CTAPHID CBOR message (command byte
//! followed by CBOR) and returns status byte and CBOR;
//! [`Authenticator::handle_u2f`] takes a U2F APDU (CTAPHID MSG) and returns
//! response data and status word. One module per command family mirrors
//! [`crate::proto::ctap2`]; [`state`] holds what survives power cycles.
//!
//! # User presence and KEEPALIVE
//!
//! User presence is a policy ([`UserPresence`]: approve, deny, ask a
//! callback, or approve after a delay). Commands that need it are resumable,
//! so a CTAPHID layer can send KEEPALIVE while the user is asked:
//!
//! 1. [`Authenticator::start_cbor`] runs a command up to the point where it
//!    needs the user. It returns [`Poll::Ready`] with the response, or
//!    [`Poll::Pending`]: the authenticator now waits for user presence
//!    (KEEPALIVE status `UPNEEDED`).
//! 2. While pending, call [`Authenticator::poll`] (every ≤100 ms, sending a
//!    KEEPALIVE each time it returns [`Poll::Pending`]). `Approve` / `Deny`
//!    resolve at the first poll; `Delay(d)` resolves once `d` has passed;
//!    `Callback(f)` calls `f` inside `poll`, which then blocks until `f`
//!    returns. To keep sending KEEPALIVE during a blocking callback, run the
//!    authenticator (it is `Send`) on a worker thread and send KEEPALIVE from
//!    the transport thread until the response arrives.
//! 3. CTAPHID CANCEL: call [`Authenticator::cancel`] (same thread), or set
//!    the [`CancelFlag`] from [`Authenticator::cancel_flag`] (any thread;
//!    the callback sees it in [`UpRequest::cancel`]). The pending command
//!    then ends with `CTAP2_ERR_KEEPALIVE_CANCEL`.
//! 4. A wait longer than [`AuthenticatorConfig::up_timeout`] ends with
//!    `CTAP2_ERR_USER_ACTION_TIMEOUT`.
//!
//! [`Authenticator::handle_cbor`] does all of this in one blocking call.
//!
//! # Permissions and tokens
//!
//! One pinUvAuthToken exists at a time (a new one per getPinToken /
//! getPinUvAuthTokenUsingPinWithPermissions, all dropped at power cycle); it
//! expires after 10 minutes. A token without an RP ID is bound to the RP of
//! its first makeCredential / getAssertion. Tokens stay usable for further
//! operations until they expire or are replaced, and only with the PIN/UV
//! auth protocol they were issued under.
//!
//! The persistent pinUvAuthToken (CTAP 2.2, permission `pcmr` alone) is
//! separate: kept in the state file, it survives power cycles, never
//! expires, is renewed by a PIN change and by reset, and only reads
//! credential management (metadata, RPs, credentials) and opens the
//! encrypted getInfo members (encIdentifier, encCredStoreState).
//!
//! With a fingerprint sensor ([`AuthenticatorConfig::fingerprint`]),
//! getPinUvAuthTokenUsingUvWithPermissions issues tokens on a match and the
//! `uv` option of makeCredential / getAssertion verifies the user at the touch.

pub mod bio_enrollment;
mod cert;
pub use bio_enrollment::FingerprintMode;
pub use cert::generate_attestation;
mod client_pin;
mod config;
mod credential_management;
mod get_assertion;
mod get_info;
mod hmac_secret;
mod large_blobs;
mod make_credential;
mod reset;
pub mod state;
mod u2f;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::crypto::pin_protocol::{KeyAgreementKey, PinUvAuthProtocol};
use crate::crypto::{CryptoError, CryptoProvider, MlDsaLevel, SecretBytes};
use crate::proto::cbor::{self, Value};
use crate::proto::cose::{CoseAlgorithm, CoseKey, curve};
use crate::proto::ctap2::{Command, CtapStatus};
use state::{CredentialAlg, PersistentState, StateError, Store, StoredCredential};

/// The AAGUID of hwkey's software authenticator.
pub const AAGUID: [u8; 16] =
    [0xdf, 0xdb, 0x3b, 0x95, 0xae, 0x0d, 0x49, 0x8c, 0x98, 0x12, 0x41, 0x0f, 0x45, 0x3e, 0x80, 0x65];
/// maxMsgSize.
pub const MAX_MSG_SIZE: usize = 7609;
/// maxCredentialCountInList.
pub const MAX_CREDENTIAL_COUNT_IN_LIST: usize = 16;
/// maxCredentialIdLength.
pub const MAX_CREDENTIAL_ID_LENGTH: usize = 128;
/// maxCredBlobLength.
pub const MAX_CRED_BLOB_LENGTH: usize = 32;
/// maxSerializedLargeBlobArray.
pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: usize = 4096;
/// maxRPIDsForSetMinPINLength.
pub const MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH: usize = 8;
/// How long a pinUvAuthToken lives.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// The default initial-use window of a pinUvAuthToken
/// ([`AuthenticatorConfig::token_initial_use`]).
pub const TOKEN_INITIAL_USE: Duration = Duration::from_secs(30);

/// Errors creating or loading an authenticator.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticatorError {
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Key generation failed.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// The PIN breaks the policy (length in code points below minPINLength,
    /// over 63 bytes, or too simple under the PIN complexity policy).
    #[error(
        "PIN must have at least {min} characters and at most 63 bytes (and not be a run like 1234 or 1111 when the PIN complexity policy is on)"
    )]
    PinPolicy {
        /// The current minimum length.
        min: u8,
    },
}

impl AuthenticatorError {
    /// A stable snake_case identifier.
    pub fn code(&self) -> &'static str {
        match self {
            Self::State(e) => e.code(),
            Self::Crypto(_) => "crypto_error",
            Self::PinPolicy { .. } => "pin_policy_violation",
        }
    }
}

/// A shared flag that cancels a pending user-presence wait.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Request cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// What the user is asked to approve.
#[derive(Debug, Clone)]
pub struct UpRequest {
    /// The command asking ("makeCredential", "getAssertion", "reset", "selection", "u2fRegister", ...).
    pub operation: &'static str,
    /// The relying party, when there is one.
    pub rp_id: Option<String>,
    /// The user's name, when known.
    pub user_name: Option<String>,
    /// Set when the platform cancels; a callback may poll it and give up.
    pub cancel: CancelFlag,
}

/// The user-presence policy.
pub enum UserPresence {
    /// Grant presence at once (scripts and tests).
    Approve,
    /// Refuse every request.
    Deny,
    /// Ask: the callback returns whether the user approved. It runs inside
    /// [`Authenticator::poll`] and may block.
    Callback(Box<dyn Fn(&UpRequest) -> bool + Send>),
    /// Approve once this much time has passed (exercises KEEPALIVE).
    Delay(Duration),
}

impl std::fmt::Debug for UserPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Approve => write!(f, "Approve"),
            Self::Deny => write!(f, "Deny"),
            Self::Callback(_) => write!(f, "Callback(..)"),
            Self::Delay(d) => write!(f, "Delay({d:?})"),
        }
    }
}

/// Which attestation makeCredential produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationMode {
    /// Packed with the batch certificate (x5c).
    Packed,
    /// Packed self attestation (signed by the credential key).
    SelfAttestation,
    /// "none".
    None,
}

/// Configuration of a software authenticator.
#[derive(Debug)]
pub struct AuthenticatorConfig {
    /// Crypto provider.
    pub provider: &'static dyn CryptoProvider,
    /// State file (`--state FILE`); `None` keeps state in memory.
    pub state_path: Option<PathBuf>,
    /// User-presence policy.
    pub user_presence: UserPresence,
    /// Attestation mode.
    pub attestation: AttestationMode,
    /// How many discoverable credentials fit.
    pub max_resident_credentials: usize,
    /// How long to wait for user presence.
    pub up_timeout: Duration,
    /// How long after power-up reset is allowed.
    pub reset_window: Duration,
    /// firmwareVersion reported by getInfo.
    pub firmware_version: u64,
    /// A pinUvAuthToken not used this soon after it was issued expires
    /// (CTAP 2.1 §6.5.5.7 initialUsageTimeLimit; 30 s, as for USB keys).
    pub token_initial_use: Duration,
    /// A simulated fingerprint sensor (bioEnrollment and built-in UV);
    /// `None`: no sensor, user verification by PIN only.
    pub fingerprint: Option<FingerprintMode>,
    /// Enforce a PIN complexity policy (CTAP 2.2 pinComplexityPolicy): no
    /// PIN of one repeated character or a run such as `1234` or `dcba`.
    pub pin_complexity_policy: bool,
    /// A page describing the PIN complexity policy, reported in getInfo as
    /// pinComplexityPolicyURL (CTAP 2.2, 0x1C) while the policy is on, for a
    /// platform to show when a PIN is refused.
    pub pin_complexity_policy_url: Option<String>,
    /// The RP IDs vendor-facilitated enterprise attestation is granted to
    /// (once enabled by authenticatorConfig enableEnterpriseAttestation).
    pub enterprise_rp_ids: Vec<String>,
    /// Reset needs a long touch (CTAP 2.2 longTouchForReset): the
    /// user-presence request of reset is then the operation
    /// `"resetLongTouch"`, so a [`UserPresence::Callback`] can insist on a
    /// held touch.
    pub long_touch_for_reset: bool,
}

impl Default for AuthenticatorConfig {
    fn default() -> Self {
        Self {
            provider: crate::crypto::default_provider(),
            state_path: None,
            user_presence: UserPresence::Approve,
            attestation: AttestationMode::Packed,
            max_resident_credentials: 50,
            up_timeout: Duration::from_secs(30),
            reset_window: Duration::from_secs(10),
            firmware_version: 1,
            token_initial_use: TOKEN_INITIAL_USE,
            fingerprint: None,
            pin_complexity_policy: false,
            pin_complexity_policy_url: None,
            enterprise_rp_ids: Vec::new(),
            long_touch_for_reset: false,
        }
    }
}

/// The result of starting or polling a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// The response (status byte + CBOR).
    Ready(Vec<u8>),
    /// Waiting for user presence: send KEEPALIVE (UPNEEDED) and poll again.
    Pending,
}

/// How a user-presence wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpOutcome {
    Approved,
    Denied,
    Cancelled,
    TimedOut,
}

impl UpOutcome {
    /// Ok when approved, else the status to answer.
    fn require(self) -> Result<(), CtapStatus> {
        match self {
            UpOutcome::Approved => Ok(()),
            UpOutcome::Denied => Err(CtapStatus::OperationDenied),
            UpOutcome::Cancelled => Err(CtapStatus::KeepaliveCancel),
            UpOutcome::TimedOut => Err(CtapStatus::UserActionTimeout),
        }
    }
}

type Continuation = Box<dyn FnOnce(&mut Authenticator, UpOutcome) -> Result<Option<Value>, CtapStatus> + Send>;

/// A command's reply: done, or waiting for user presence.
pub(crate) enum Reply {
    Done(Option<Value>),
    NeedUp { operation: &'static str, rp_id: Option<String>, user_name: Option<String>, then: Continuation },
}

impl Reply {
    fn up(
        operation: &'static str,
        rp_id: Option<String>,
        user_name: Option<String>,
        then: impl FnOnce(&mut Authenticator, UpOutcome) -> Result<Option<Value>, CtapStatus> + Send + 'static,
    ) -> Self {
        Reply::NeedUp { operation, rp_id, user_name, then: Box::new(then) }
    }
}

struct Pending {
    request: UpRequest,
    started: Instant,
    then: Continuation,
}

/// The current pinUvAuthToken and its state.
pub(crate) struct PinToken {
    pub token: SecretBytes,
    pub protocol: PinUvAuthProtocol,
    pub permissions: u8,
    pub rp_id: Option<String>,
    pub issued: Instant,
    /// Whether a request has used it (its initial-use window is over then).
    pub used: bool,
}

/// State lost at power-off.
pub(crate) struct Volatile {
    pub power_up: Instant,
    pub key_agreement_v1: KeyAgreementKey,
    pub key_agreement_v2: KeyAgreementKey,
    pub token: Option<PinToken>,
    pub consecutive_pin_failures: u8,
    pub next_assertion: Option<get_assertion::NextAssertions>,
    pub rp_enumeration: Option<credential_management::RpEnumeration>,
    pub cred_enumeration: Option<credential_management::CredEnumeration>,
    pub large_blob_write: Option<large_blobs::PendingWrite>,
    pub u2f_up_since: Option<Instant>,
    pub sensor: bio_enrollment::SensorVolatile,
}

impl Volatile {
    fn new(provider: &dyn CryptoProvider) -> Result<Self, CryptoError> {
        let ka = |p| KeyAgreementKey::new(provider, p).map_err(|_| CryptoError::Rng);
        Ok(Self {
            power_up: Instant::now(),
            key_agreement_v1: ka(PinUvAuthProtocol::One)?,
            key_agreement_v2: ka(PinUvAuthProtocol::Two)?,
            token: None,
            consecutive_pin_failures: 0,
            next_assertion: None,
            rp_enumeration: None,
            cred_enumeration: None,
            large_blob_write: None,
            u2f_up_since: None,
            sensor: bio_enrollment::SensorVolatile::default(),
        })
    }
}

/// A software CTAP 2.2 authenticator. See the [module documentation](self).
pub struct Authenticator {
    pub(crate) config: AuthenticatorConfig,
    pub(crate) provider: &'static dyn CryptoProvider,
    pub(crate) store: Store,
    pub(crate) state: PersistentState,
    pub(crate) volatile: Volatile,
    pending: Option<Pending>,
    cancel: CancelFlag,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("state_path", &self.store.path())
            .field("credentials", &self.state.credentials.len())
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Create an authenticator: load the state file if it exists, otherwise
    /// generate a fresh state (and write it, when a file is configured).
    pub fn new(config: AuthenticatorConfig) -> Result<Self, AuthenticatorError> {
        let provider = config.provider;
        let store = match &config.state_path {
            Some(p) => Store::file(p.clone()),
            None => Store::memory(),
        };
        let state = match store.load()? {
            Some(mut s) => {
                if s.upgrade(provider)? {
                    store.save(&s)?;
                }
                s
            }
            None => {
                let s = PersistentState::generate(provider, AAGUID)?;
                store.save(&s)?;
                s
            }
        };
        let volatile = Volatile::new(provider)?;
        Ok(Self { config, provider, store, state, volatile, pending: None, cancel: CancelFlag::default() })
    }

    /// An in-memory authenticator that approves user presence at once.
    pub fn in_memory() -> Result<Self, AuthenticatorError> {
        Self::new(AuthenticatorConfig::default())
    }

    /// Change the user-presence policy.
    pub fn set_user_presence(&mut self, policy: UserPresence) {
        self.config.user_presence = policy;
    }

    /// The attestation root certificate (DER), for relying parties' trust stores.
    pub fn attestation_root_der(&self) -> &[u8] {
        &self.state.attestation.root_cert.0
    }

    /// The batch attestation certificate (DER).
    pub fn attestation_cert_der(&self) -> &[u8] {
        &self.state.attestation.cert.0
    }

    /// The AAGUID.
    pub fn aaguid(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        if self.state.aaguid.0.len() == 16 {
            a.copy_from_slice(&self.state.aaguid.0);
        }
        a
    }

    /// Set or replace the PIN directly (the `--pin` option of
    /// `hwkey virtual serve`), resetting the retry counter and dropping tokens.
    pub fn set_pin(&mut self, pin: &str) -> Result<(), AuthenticatorError> {
        let min = self.state.min_pin_length.max(4);
        if pin.chars().count() < min as usize
            || pin.len() > 63
            || (self.pin_complexity_policy() && !client_pin::complex_enough(pin))
        {
            return Err(AuthenticatorError::PinPolicy { min });
        }
        let hash = Zeroizing::new(self.provider.sha256(&[pin.as_bytes()]));
        let mut next = self.state.clone();
        next.pin = Some(state::StoredPin {
            hash: state::Secret::new(secret(&hash[..16])),
            code_points: pin.chars().count() as u32,
        });
        next.pin_retries = state::PIN_RETRIES;
        next.force_pin_change = false;
        next.persistent_token = Some(state::Secret::new(
            crate::crypto::pin_protocol::new_pin_uv_auth_token(self.provider).map_err(|_| CryptoError::Rng)?,
        ));
        self.store.save(&next)?;
        self.state = next;
        self.volatile.token = None;
        self.volatile.consecutive_pin_failures = 0;
        Ok(())
    }

    /// Number of discoverable credentials stored.
    pub fn resident_credential_count(&self) -> usize {
        self.state.credentials.len()
    }

    /// Simulate unplugging and plugging in: volatile state (tokens, key
    /// agreement keys, PIN auth block, pending operations) is reset and the
    /// reset window starts again. Persistent state is kept.
    pub fn power_cycle(&mut self) -> Result<(), AuthenticatorError> {
        self.volatile = Volatile::new(self.provider)?;
        self.pending = None;
        self.cancel.clear();
        Ok(())
    }

    /// Whether a command is waiting for user presence.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A flag that cancels the pending user-presence wait from any thread.
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
    }

    /// Handle a CTAP2 message and block until it is answered (user presence
    /// included). Request: command byte + CBOR; response: status + CBOR.
    pub fn handle_cbor(&mut self, request: &[u8]) -> Vec<u8> {
        let mut p = self.start_cbor(request);
        loop {
            match p {
                Poll::Ready(r) => return r,
                Poll::Pending => {
                    std::thread::sleep(Duration::from_millis(5));
                    p = self.poll();
                }
            }
        }
    }

    /// Start a CTAP2 message; see the [module documentation](self).
    pub fn start_cbor(&mut self, request: &[u8]) -> Poll {
        if self.pending.is_some() {
            return Poll::Ready(status_only(CtapStatus::ChannelBusy));
        }
        self.cancel.clear();
        match self.dispatch(request) {
            Ok(Reply::Done(body)) => Poll::Ready(encode(Ok(body))),
            Ok(Reply::NeedUp { operation, rp_id, user_name, then }) => {
                let request = UpRequest { operation, rp_id, user_name, cancel: self.cancel.clone() };
                self.pending = Some(Pending { request, started: Instant::now(), then });
                self.poll()
            }
            Err(s) => Poll::Ready(encode(Err(s))),
        }
    }

    /// Advance a pending command; see the [module documentation](self).
    /// Without one, answers `CTAP2_ERR_NO_OPERATION_PENDING`.
    pub fn poll(&mut self) -> Poll {
        let Some(p) = self.pending.take() else {
            return Poll::Ready(status_only(CtapStatus::NoOperationPending));
        };
        let outcome = if p.request.cancel.is_cancelled() {
            UpOutcome::Cancelled
        } else if p.started.elapsed() > self.config.up_timeout {
            UpOutcome::TimedOut
        } else {
            match &self.config.user_presence {
                UserPresence::Approve => UpOutcome::Approved,
                UserPresence::Deny => UpOutcome::Denied,
                UserPresence::Delay(d) => {
                    if p.started.elapsed() >= *d {
                        UpOutcome::Approved
                    } else {
                        self.pending = Some(p);
                        return Poll::Pending;
                    }
                }
                UserPresence::Callback(f) => {
                    let ok = f(&p.request);
                    if p.request.cancel.is_cancelled() {
                        UpOutcome::Cancelled
                    } else if ok {
                        UpOutcome::Approved
                    } else {
                        UpOutcome::Denied
                    }
                }
            }
        };
        let result = (p.then)(self, outcome);
        Poll::Ready(encode(result))
    }

    /// CTAPHID CANCEL: end a pending command with `CTAP2_ERR_KEEPALIVE_CANCEL`.
    /// Returns that response, or `None` if nothing was pending.
    pub fn cancel(&mut self) -> Option<Vec<u8>> {
        self.pending.as_ref()?;
        self.cancel.cancel();
        match self.poll() {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    /// Handle a U2F APDU (CTAPHID MSG); returns response data + status word.
    pub fn handle_u2f(&mut self, apdu: &[u8]) -> Vec<u8> {
        u2f::handle(self, apdu)
    }

    fn dispatch(&mut self, request: &[u8]) -> Result<Reply, CtapStatus> {
        let (&cmd, body) = request.split_first().ok_or(CtapStatus::InvalidLength)?;
        if request.len() > MAX_MSG_SIZE {
            return Err(CtapStatus::InvalidLength);
        }
        let command = Command::from_byte(cmd).ok_or(CtapStatus::InvalidCommand)?;
        let value = if body.is_empty() {
            Value::Map(Vec::new())
        } else {
            let v = cbor::decode(body).map_err(|_| CtapStatus::InvalidCbor)?;
            if v.as_map().is_none() {
                return Err(CtapStatus::CborUnexpectedType);
            }
            v
        };
        // Stateful sequences end when another command arrives.
        if command != Command::GetNextAssertion {
            self.volatile.next_assertion = None;
        }
        if !matches!(command, Command::CredentialManagement | Command::CredentialManagementPreview) {
            self.volatile.rp_enumeration = None;
            self.volatile.cred_enumeration = None;
        }
        if command != Command::LargeBlobs {
            self.volatile.large_blob_write = None;
        }
        if !matches!(command, Command::BioEnrollment | Command::BioEnrollmentPreview) {
            self.volatile.sensor.enrollment = None;
        }
        match command {
            Command::GetInfo => Ok(Reply::Done(Some(get_info::get_info(self)))),
            Command::MakeCredential => make_credential::make_credential(self, &value),
            Command::GetAssertion => get_assertion::get_assertion(self, &value),
            Command::GetNextAssertion => get_assertion::get_next_assertion(self).map(Reply::Done),
            Command::ClientPin => client_pin::client_pin(self, &value),
            Command::Reset => reset::reset(self),
            Command::Selection => Ok(reset::selection()),
            Command::CredentialManagement | Command::CredentialManagementPreview => {
                credential_management::credential_management(self, &value).map(Reply::Done)
            }
            Command::Config => config::config(self, &value).map(Reply::Done),
            Command::LargeBlobs => large_blobs::large_blobs(self, &value).map(Reply::Done),
            Command::BioEnrollment | Command::BioEnrollmentPreview => bio_enrollment::bio_enrollment(self, &value),
        }
    }

    // ---- helpers shared by the command modules ----

    pub(crate) fn rp_id_hash(&self, rp_id: &str) -> [u8; 32] {
        self.provider.sha256(&[rp_id.as_bytes()])
    }

    pub(crate) fn pin_is_set(&self) -> bool {
        self.state.pin.is_some()
    }

    /// Whether the PIN complexity policy applies (configured, or turned on by setMinPINLength).
    pub(crate) fn pin_complexity_policy(&self) -> bool {
        self.config.pin_complexity_policy || self.state.pin_complexity_policy
    }

    /// Save the persistent state; on failure restore `backup` and answer an error.
    pub(crate) fn persist_or_restore(&mut self, backup: PersistentState) -> Result<(), CtapStatus> {
        match self.store.save(&self.state) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "saving authenticator state failed");
                self.state = backup;
                Err(CtapStatus::Other)
            }
        }
    }

    /// Increment and persist the signature counter.
    pub(crate) fn next_sign_count(&mut self) -> Result<u32, CtapStatus> {
        let backup = self.state.clone();
        self.state.sign_count = self.state.sign_count.wrapping_add(1);
        self.persist_or_restore(backup)?;
        Ok(self.state.sign_count)
    }

    /// Check a pinUvAuthParam made with the current token: protocol, MAC,
    /// expiry, permission and RP binding (binding an unbound token to `rp_id`).
    pub(crate) fn check_token(
        &mut self,
        protocol: Option<u64>,
        param: &[u8],
        message: &[u8],
        permission: u8,
        rp_id: Option<&str>,
    ) -> Result<(), CtapStatus> {
        let protocol = protocol.ok_or(CtapStatus::MissingParameter)?;
        let protocol = PinUvAuthProtocol::from_number(protocol).map_err(|_| CtapStatus::InvalidParameter)?;
        let initial_use = self.config.token_initial_use;
        let token = self.volatile.token.as_mut().ok_or(CtapStatus::PinAuthInvalid)?;
        let age = token.issued.elapsed();
        if age > TOKEN_LIFETIME || (!token.used && age > initial_use) {
            self.volatile.token = None;
            return Err(CtapStatus::PinAuthInvalid);
        }
        if token.protocol != protocol || !protocol.verify(self.provider, &token.token, message, param) {
            return Err(CtapStatus::PinAuthInvalid);
        }
        if token.permissions & permission == 0 {
            return Err(CtapStatus::PinAuthInvalid);
        }
        if let Some(rp) = rp_id {
            match &token.rp_id {
                Some(bound) if bound != rp => return Err(CtapStatus::PinAuthInvalid),
                Some(_) => {}
                None => token.rp_id = Some(rp.to_owned()),
            }
        }
        token.used = true;
        Ok(())
    }

    /// Check a pinUvAuthParam made with the persistent pinUvAuthToken
    /// (permission `pcmr`, CTAP 2.2), under either PIN/UV auth protocol.
    pub(crate) fn check_persistent_token(&self, protocol: Option<u64>, param: &[u8], message: &[u8]) -> bool {
        let Some(Ok(protocol)) = protocol.map(PinUvAuthProtocol::from_number) else { return false };
        let Some(token) = &self.state.persistent_token else { return false };
        protocol.verify(self.provider, token.bytes(), message, param)
    }

    /// After user presence was collected for makeCredential or getAssertion:
    /// the token keeps only largeBlobWrite (CTAP 2.1 §6.5.5.7
    /// clearPinUvAuthTokenPermissionsExceptLbw), so each operation needs a
    /// fresh token, as on real 2.1 keys.
    pub(crate) fn spend_token_permissions(&mut self) {
        if let Some(t) = self.volatile.token.as_mut() {
            t.permissions &= crate::proto::ctap2::client_pin::permissions::LARGE_BLOB_WRITE;
        }
    }

    /// The key-agreement key of a protocol.
    pub(crate) fn key_agreement(&self, p: PinUvAuthProtocol) -> &KeyAgreementKey {
        match p {
            PinUvAuthProtocol::One => &self.volatile.key_agreement_v1,
            PinUvAuthProtocol::Two => &self.volatile.key_agreement_v2,
        }
    }

    /// Find a credential by ID for an RP: a stored one, or a sealed ID.
    pub(crate) fn find_credential(&self, rp_id: &str, rp_id_hash: &[u8; 32], id: &[u8]) -> Option<StoredCredential> {
        if let Some(c) = self.state.credentials.iter().find(|c| c.rp_id == rp_id && c.id.0 == id) {
            return Some(c.clone());
        }
        let c = state::open_credential_id(self.provider, self.state.master_key.bytes(), rp_id_hash, rp_id, id)?;
        // The sealed ID of a discoverable credential that is no longer stored (deleted) is dead.
        (!c.resident).then_some(c)
    }

    pub(crate) fn master_key(&self) -> &[u8] {
        self.state.master_key.bytes()
    }
}

/// Key operations per credential algorithm.
pub(crate) fn generate_key(provider: &dyn CryptoProvider, alg: CredentialAlg) -> Result<SecretBytes, CtapStatus> {
    match alg {
        CredentialAlg::Es256 | CredentialAlg::Esp256 => provider.p256_generate(),
        CredentialAlg::EdDsa | CredentialAlg::Ed25519 => provider.ed25519_generate(),
        CredentialAlg::MlDsa44 => provider.ml_dsa_generate(MlDsaLevel::MlDsa44),
        CredentialAlg::MlDsa65 => provider.ml_dsa_generate(MlDsaLevel::MlDsa65),
        CredentialAlg::MlDsa87 => provider.ml_dsa_generate(MlDsaLevel::MlDsa87),
    }
    .map_err(|_| CtapStatus::Other)
}

/// The ML-DSA parameter set of a credential algorithm.
fn ml_dsa_level(alg: CredentialAlg) -> Option<MlDsaLevel> {
    match alg {
        CredentialAlg::MlDsa44 => Some(MlDsaLevel::MlDsa44),
        CredentialAlg::MlDsa65 => Some(MlDsaLevel::MlDsa65),
        CredentialAlg::MlDsa87 => Some(MlDsaLevel::MlDsa87),
        _ => None,
    }
}

/// The COSE public key of a credential.
pub(crate) fn public_cose(
    provider: &dyn CryptoProvider,
    alg: CredentialAlg,
    key: &[u8],
) -> Result<CoseKey, CtapStatus> {
    let cose_alg = CoseAlgorithm(alg.cose());
    match alg {
        CredentialAlg::Es256 | CredentialAlg::Esp256 => {
            let p = provider.p256_public(key).map_err(|_| CtapStatus::Other)?;
            CoseKey::p256_from_sec1(&p, cose_alg).map_err(|_| CtapStatus::Other)
        }
        CredentialAlg::EdDsa | CredentialAlg::Ed25519 => {
            let x = provider.ed25519_public(key).map_err(|_| CtapStatus::Other)?;
            Ok(CoseKey::Okp { alg: Some(cose_alg), crv: curve::ED25519, x })
        }
        CredentialAlg::MlDsa44 | CredentialAlg::MlDsa65 | CredentialAlg::MlDsa87 => {
            let level = ml_dsa_level(alg).ok_or(CtapStatus::Other)?;
            let public = provider.ml_dsa_public(level, key).map_err(|_| CtapStatus::Other)?;
            Ok(CoseKey::Akp { alg: cose_alg, public })
        }
    }
}

/// Sign with a credential key (ML-DSA: pure, empty context, over the message itself).
pub(crate) fn sign(
    provider: &dyn CryptoProvider,
    alg: CredentialAlg,
    key: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, CtapStatus> {
    match alg {
        CredentialAlg::Es256 | CredentialAlg::Esp256 => provider.p256_sign(key, msg),
        CredentialAlg::EdDsa | CredentialAlg::Ed25519 => provider.ed25519_sign(key, msg),
        CredentialAlg::MlDsa44 | CredentialAlg::MlDsa65 | CredentialAlg::MlDsa87 => match ml_dsa_level(alg) {
            Some(level) => provider.ml_dsa_sign(level, key, msg),
            None => return Err(CtapStatus::Other),
        },
    }
    .map_err(|_| CtapStatus::Other)
}

fn status_only(s: CtapStatus) -> Vec<u8> {
    vec![s.code()]
}

fn encode(r: Result<Option<Value>, CtapStatus>) -> Vec<u8> {
    match r {
        Ok(body) => crate::proto::ctap2::encode_response(body.as_ref()),
        Err(s) => status_only(s),
    }
}

/// Zeroizing copy helper.
pub(crate) fn secret(b: &[u8]) -> SecretBytes {
    Zeroizing::new(b.to_vec())
}

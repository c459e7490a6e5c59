//! The platform side (feature `client`): a driver for FIDO2 and U2F
//! authenticators reached through any CTAPHID transport.
//!
//! - [`Device`] is one opened authenticator: its CTAPHID channel, its
//!   getInfo (read once when opened) and the cached PIN/UV key agreement.
//! - [`ctap2`]: a typed call for every CTAP2 command.
//! - [`pin`]: PIN and built-in UV: set, change, retries, tokens.
//! - [`bio`]: fingerprint enrollment (bioEnrollment).
//! - [`config`]: authenticatorConfig, typed.
//! - [`ctap1`]: U2F register and authenticate, for U2F-only keys.
//! - [`large_blob`]: the largeBlob array (read, write, per-credential entries).
//! - [`derive`](mod@derive): the FIDO2 hmac-secret backend of
//!   [`crate::derive`] ("a stable 32-byte secret from the user's key").
//! - [`discovery`]: finding devices, `--device` specs, touch-to-select.
//! - [`webauthn`]: the WebAuthn client: JSON options and an origin in, JSON
//!   responses out.
//!
//! Every blocking call takes an [`Op`]: a deadline, a cancel handle and a
//! progress callback.

pub mod bio;
pub mod config;
pub mod ctap1;
pub mod ctap2;
pub mod derive;
pub mod discovery;
pub mod large_blob;
pub mod pin;
pub mod webauthn;

use crate::crypto::pin_protocol::{PinProtocolError, PinUvAuthProtocol, SharedSecret};
use crate::crypto::{CryptoProvider, default_provider};
use crate::proto::cose::CoseKey;
use crate::proto::ctap1::Ctap1Error;
use crate::proto::ctap2::get_info::GetInfoResponse;
use crate::proto::ctap2::{Ctap2Error, CtapStatus};
use crate::transport::ctaphid::{CtapHidDevice, HidError, HidErrorCode, InitInfo};
pub use crate::transport::{CancelToken, Op, Progress, ReportTransport};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// CTAPHID or the transport below it failed.
    #[error(transparent)]
    Hid(HidError),
    /// The deadline passed.
    #[error("timed out waiting for the security key")]
    Timeout,
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The authenticator answered with an error status.
    #[error("the security key answered {0}")]
    Status(CtapStatus),
    /// The authenticator's answer is malformed.
    #[error("malformed answer from the security key: {0}")]
    Malformed(String),
    /// A U2F exchange failed.
    #[error("U2F: {0}")]
    U2f(#[from] Ctap1Error),
    /// The PIN/UV auth protocol failed.
    #[error("PIN protocol: {0}")]
    PinProtocol(#[from] PinProtocolError),
    /// User verification is required but the key has no PIN and no built-in UV.
    #[error("this security key has no PIN: set a PIN first (hwkey pin set)")]
    PinNotSet,
    /// A PIN is needed and none was given.
    #[error("a PIN is required")]
    PinRequired,
    /// The PIN was wrong.
    #[error("wrong PIN{}", retries.map(|r| format!(" ({r} attempts left)")).unwrap_or_default())]
    PinInvalid {
        /// Attempts left before the PIN is blocked, when the key said.
        retries: Option<u64>,
    },
    /// Too many wrong PINs in a row: unplug and replug the key.
    #[error("too many wrong PINs: unplug and replug the security key to try again")]
    PinAuthBlocked,
    /// The PIN is blocked: the key must be reset.
    #[error("the PIN is blocked: the security key must be reset")]
    PinBlocked,
    /// The key demands a new PIN before it hands out tokens (forcePINChange).
    #[error("this security key requires a new PIN first (hwkey pin change)")]
    PinChangeRequired,
    /// The new PIN breaks the key's PIN policy.
    #[error("the PIN does not meet the security key's policy (length, or complexity: no 1111 or 1234)")]
    PinPolicy,
    /// Built-in user verification (the fingerprint) did not match.
    #[error("fingerprint not recognized{}", retries.map(|r| format!(" ({r} attempts left)")).unwrap_or_default())]
    UvInvalid {
        /// UV attempts left before built-in UV is blocked, when the key said.
        retries: Option<u64>,
    },
    /// Built-in user verification is blocked: the PIN must be used (it unblocks it).
    #[error("fingerprint verification is blocked: use the PIN")]
    UvBlocked,
    /// No enrolled fingerprint has that template ID.
    #[error("no such fingerprint on this security key")]
    NoSuchFingerprint,
    /// No credential of the request exists on the key.
    #[error("no matching credential on this security key")]
    NoCredentials,
    /// The key already holds one of the excluded credentials.
    #[error("this security key is already registered")]
    CredentialExcluded,
    /// The caller's request is invalid (options, origin, RP ID).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The RP ID is not a registrable suffix of the origin's host.
    #[error("security error: {0}")]
    Security(String),
    /// The key cannot do what is asked.
    #[error("not supported by this security key: {0}")]
    Unsupported(String),
    /// No device found.
    #[error("no security key found")]
    NoDevice,
}

impl ClientError {
    /// A stable snake_case identifier of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Hid(e) => e.code(),
            ClientError::Timeout => "timeout",
            ClientError::Cancelled => "cancelled",
            ClientError::Status(_) => "ctap_status",
            ClientError::Malformed(_) => "malformed_response",
            ClientError::U2f(_) => "u2f_error",
            ClientError::PinProtocol(_) => "pin_protocol_error",
            ClientError::PinNotSet => "pin_not_set",
            ClientError::PinRequired => "pin_required",
            ClientError::PinInvalid { .. } => "pin_invalid",
            ClientError::PinAuthBlocked => "pin_auth_blocked",
            ClientError::PinBlocked => "pin_blocked",
            ClientError::PinChangeRequired => "pin_change_required",
            ClientError::PinPolicy => "pin_policy_violation",
            ClientError::UvInvalid { .. } => "uv_invalid",
            ClientError::UvBlocked => "uv_blocked",
            ClientError::NoSuchFingerprint => "no_such_fingerprint",
            ClientError::NoCredentials => "no_credentials",
            ClientError::CredentialExcluded => "credential_excluded",
            ClientError::InvalidRequest(_) => "invalid_request",
            ClientError::Security(_) => "security_error",
            ClientError::Unsupported(_) => "unsupported",
            ClientError::NoDevice => "no_device",
        }
    }

    pub(crate) fn from_status(s: CtapStatus) -> Self {
        match s {
            CtapStatus::KeepaliveCancel => ClientError::Cancelled,
            CtapStatus::PinBlocked => ClientError::PinBlocked,
            CtapStatus::PinAuthBlocked => ClientError::PinAuthBlocked,
            CtapStatus::PinNotSet => ClientError::PinNotSet,
            CtapStatus::PinPolicyViolation => ClientError::PinPolicy,
            CtapStatus::PinInvalid => ClientError::PinInvalid { retries: None },
            CtapStatus::UvInvalid => ClientError::UvInvalid { retries: None },
            CtapStatus::UvBlocked => ClientError::UvBlocked,
            CtapStatus::NoCredentials => ClientError::NoCredentials,
            CtapStatus::CredentialExcluded => ClientError::CredentialExcluded,
            s => ClientError::Status(s),
        }
    }
}

impl From<HidError> for ClientError {
    fn from(e: HidError) -> Self {
        match e {
            HidError::Timeout => ClientError::Timeout,
            HidError::Cancelled => ClientError::Cancelled,
            e => ClientError::Hid(e),
        }
    }
}

impl From<Ctap2Error> for ClientError {
    fn from(e: Ctap2Error) -> Self {
        match e {
            Ctap2Error::Status(s) => ClientError::from_status(s),
            e => ClientError::Malformed(e.to_string()),
        }
    }
}

/// The cached result of one key agreement with the authenticator.
pub(crate) struct KeyAgreement {
    pub(crate) platform_key: CoseKey,
    pub(crate) shared: SharedSecret,
}

/// One opened authenticator.
pub struct Device {
    hid: CtapHidDevice<Box<dyn ReportTransport>>,
    info: Option<GetInfoResponse>,
    key_agreement: Option<KeyAgreement>,
    provider: &'static dyn CryptoProvider,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("transport", &self.hid.transport().describe())
            .field("init", self.hid.info())
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Open a device: allocate a CTAPHID channel and, for a CTAP2 key, read
    /// getInfo once.
    pub fn open(transport: impl ReportTransport + 'static, op: &Op) -> Result<Self, ClientError> {
        Self::open_boxed(Box::new(transport), op)
    }

    /// [`Device::open`] for a boxed transport.
    pub fn open_boxed(transport: Box<dyn ReportTransport>, op: &Op) -> Result<Self, ClientError> {
        let hid = CtapHidDevice::open(transport, op.deadline)?;
        let mut dev = Device { hid, info: None, key_agreement: None, provider: default_provider() };
        if dev.hid.info().has_cbor() {
            match dev.get_info(op) {
                Ok(i) => dev.info = Some(i),
                // Some U2F keys claim CBOR and then reject it: with status
                // 0x01, or with a CTAPHID ERROR.
                Err(ClientError::Status(CtapStatus::InvalidCommand)) if dev.hid.info().has_msg() => {}
                Err(ClientError::Hid(HidError::Device(
                    HidErrorCode::InvalidCmd
                    | HidErrorCode::InvalidPar
                    | HidErrorCode::InvalidLen
                    | HidErrorCode::Other
                    | HidErrorCode::Unknown(_),
                ))) if dev.hid.info().has_msg() => {}
                Err(e) => return Err(e),
            }
        } else if !dev.hid.info().has_msg() {
            return Err(ClientError::Unsupported("neither CTAP2 nor U2F".into()));
        }
        Ok(dev)
    }

    /// getInfo as read when the device was opened; `None` for a U2F-only key.
    pub fn info(&self) -> Option<&GetInfoResponse> {
        self.info.as_ref()
    }

    /// What CTAPHID INIT reported.
    pub fn init_info(&self) -> &InitInfo {
        self.hid.info()
    }

    /// Where the device is (`hid:/dev/hidraw3`, `udp:127.0.0.1:8111`, ...).
    pub fn describe(&self) -> String {
        self.hid.transport().describe()
    }

    /// The CTAPHID channel (for PING, WINK, LOCK and raw access).
    pub fn hid(&mut self) -> &mut CtapHidDevice<Box<dyn ReportTransport>> {
        &mut self.hid
    }

    /// Whether the key speaks CTAP2.
    pub fn is_ctap2(&self) -> bool {
        self.info.is_some()
    }

    /// Whether the key supports CTAP 2.1 (`FIDO_2_1` in versions).
    pub fn is_ctap21(&self) -> bool {
        self.info.as_ref().is_some_and(|i| i.versions.iter().any(|v| v == "FIDO_2_1"))
    }

    /// An option of getInfo.
    pub fn option(&self, name: &str) -> Option<bool> {
        self.info.as_ref().and_then(|i| i.option(name))
    }

    /// The PIN/UV auth protocol to use: the key's first preference among
    /// those hwkey implements (2, 1); protocol one if the key lists none.
    pub fn pin_protocol(&self) -> PinUvAuthProtocol {
        self.info
            .as_ref()
            .and_then(|i| i.pin_uv_auth_protocols.as_ref())
            .and_then(|ps| ps.iter().find_map(|p| PinUvAuthProtocol::from_number(*p).ok()))
            .unwrap_or(PinUvAuthProtocol::One)
    }

    /// The crypto provider in use.
    pub fn provider(&self) -> &'static dyn CryptoProvider {
        self.provider
    }

    /// Forget the cached key agreement (after a wrong PIN the key makes a new one).
    pub fn forget_key_agreement(&mut self) {
        self.key_agreement = None;
    }

    /// WINK.
    pub fn wink(&mut self, op: &Op) -> Result<(), ClientError> {
        Ok(self.hid.wink(op)?)
    }
}

//! The YubiKey OTP HID interface (feature `yubikey`).
//!
//! The OTP application of a YubiKey is driven through 8-byte HID feature
//! reports on its keyboard interface: no libusb and no detaching of the
//! kernel driver. The layers, bottom up:
//!
//! - [`frame`]: 70-byte command frames, 7-byte pieces, CRC-16 and its residue.
//! - [`device`]: the [`FeatureReportTransport`] trait (hidapi, UDP, or the
//!   in-process software key) and [`OtpConnection`], which writes frames,
//!   polls for responses, reports "touch your key" and times out.
//! - [`status`]: firmware version, programming sequence, slot flags; serial.
//! - [`chalresp`]: HMAC-SHA1 challenge-response (HMAC_LT64 padding).
//! - [`config`]: programming a slot for HMAC-SHA1 challenge-response.
//! - [`virtual`](crate::yubikey::VirtualYubikey) (module `virtual`): a software YubiKey OTP interface, in-process and over UDP.
//! - [`derive`](mod@derive): the YubiKey HMAC-SHA1 backend of
//!   [`crate::derive`] ("a stable 32-byte secret from the user's key"; the
//!   FIDO2 hmac-secret backend plugs into the same [`derive::SecretSource`]
//!   trait).

pub mod chalresp;
pub mod config;
pub mod derive;
pub mod device;
pub mod frame;
pub mod status;
pub mod r#virtual;

pub use chalresp::{Slot, challenge_response, hmac_lt64_pad};
pub use config::{AccessCode, HmacSlotConfig};
pub use device::{FeatureReportTransport, OtpConnection, Progress, UdpTransport, open_device};
pub use frame::FrameError;
pub use status::Status;
pub use r#virtual::VirtualYubikey;

/// Errors talking to a YubiKey's OTP interface. The first line of every
/// message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YubikeyError {
    /// No YubiKey OTP interface is connected.
    #[error("no YubiKey found (no Yubico OTP HID interface is connected or accessible)")]
    NoDevice,
    /// More than one YubiKey is connected.
    #[error("{0} YubiKeys are connected; choose one with --device hid:PATH")]
    MultipleDevices(usize),
    /// The `--device` specification is not understood.
    #[error("bad device {0:?}: use hid:PATH or udp:HOST:PORT")]
    BadDeviceSpec(String),
    /// A HID or socket operation failed.
    #[error("device I/O failed: {0}")]
    Io(String),
    /// The device went away (unplugged) during the command.
    #[error("the YubiKey was disconnected")]
    Disconnected,
    /// The device node exists but the user may not open it.
    #[error(
        "permission denied opening {0}: install the udev rules from udev/70-hwkey.rules (see udev/README.md), then replug the key"
    )]
    PermissionDenied(String),
    /// The device did not answer a feature report read (UDP timeout).
    #[error("the device did not answer (no reply from {0})")]
    NotAnswering(String),
    /// The device answered with something that is not a feature report.
    #[error("the device sent a malformed report: {0}")]
    Garbage(String),
    /// The slot gave no response: it is empty or not set up for HMAC-SHA1
    /// challenge-response.
    #[error("slot {0} gave no response: it is not programmed for HMAC-SHA1 challenge-response")]
    NoResponse(u8),
    /// The device did not accept a command (e.g. a configuration with a wrong
    /// access code).
    #[error("the YubiKey rejected the command: {0}")]
    Rejected(String),
    /// A touch was required and did not come in time.
    #[error("timed out waiting for a touch of the YubiKey")]
    TouchTimeout,
    /// The device stayed busy beyond the deadline.
    #[error("timed out waiting for the YubiKey to respond")]
    Timeout,
    /// Response pieces came out of order.
    #[error("the device sent response pieces out of sequence")]
    Sequence,
    /// A response failed its CRC or length check.
    #[error("bad response from the device: {0}")]
    Frame(#[from] FrameError),
    /// The challenge is longer than 64 bytes.
    #[error("challenge of {0} bytes is too long: at most 64")]
    ChallengeTooLong(usize),
    /// A parameter is out of range (slot number, key length, access code).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

//! The status report and the serial number.
//!
//! When no response is pending, a feature report read from the OTP interface
//! is the status report: byte 0 reserved, bytes 1-3 firmware version, byte 4
//! the programming sequence (advanced by every accepted configuration), bytes
//! 5-6 the touch level little-endian, whose low bits say which slots hold a
//! configuration and which of them are touch-triggered.

use super::YubikeyError;
use super::device::{FeatureReportTransport, OtpConnection};

/// Touch-level bit: slot 1 holds a configuration.
pub const CONFIG1_VALID: u16 = 0x01;
/// Touch-level bit: slot 2 holds a configuration.
pub const CONFIG2_VALID: u16 = 0x02;
/// Touch-level bit: slot 1 requires touch.
pub const CONFIG1_TOUCH: u16 = 0x04;
/// Touch-level bit: slot 2 requires touch.
pub const CONFIG2_TOUCH: u16 = 0x08;
/// Touch-level bit: LED behaviour inverted.
pub const CONFIG_LED_INV: u16 = 0x10;
/// Command: read the serial number.
pub const SLOT_DEVICE_SERIAL: u8 = 0x10;

/// The OTP interface's status report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Firmware version (major, minor, build).
    pub version: (u8, u8, u8),
    /// Programming sequence number.
    pub prog_seq: u8,
    /// Touch level / slot flags.
    pub touch_level: u16,
}

impl Status {
    /// Decode from an 8-byte feature report.
    pub fn from_report(r: &[u8; 8]) -> Status {
        Status { version: (r[1], r[2], r[3]), prog_seq: r[4], touch_level: u16::from_le_bytes([r[5], r[6]]) }
    }

    /// Encode as a feature report (status byte 0).
    pub fn to_report(&self) -> [u8; 8] {
        let t = self.touch_level.to_le_bytes();
        [0, self.version.0, self.version.1, self.version.2, self.prog_seq, t[0], t[1], 0]
    }

    /// Whether `slot` (1 or 2) holds a configuration.
    pub fn slot_programmed(&self, slot: u8) -> bool {
        match slot {
            1 => self.touch_level & CONFIG1_VALID != 0,
            2 => self.touch_level & CONFIG2_VALID != 0,
            _ => false,
        }
    }

    /// Whether `slot` (1 or 2) requires touch.
    pub fn slot_requires_touch(&self, slot: u8) -> bool {
        match slot {
            1 => self.touch_level & CONFIG1_TOUCH != 0,
            2 => self.touch_level & CONFIG2_TOUCH != 0,
            _ => false,
        }
    }

    /// The version as `major.minor.build`.
    pub fn version_string(&self) -> String {
        format!("{}.{}.{}", self.version.0, self.version.1, self.version.2)
    }
}

impl<T: FeatureReportTransport> OtpConnection<T> {
    /// The device serial number (big-endian on the wire).
    pub fn serial(&mut self) -> Result<u32, YubikeyError> {
        let d = self.transact_data(SLOT_DEVICE_SERIAL, &[], 4, &mut |_| {}).map_err(|e| match e {
            YubikeyError::NoResponse(_) => {
                YubikeyError::Rejected("the serial number is not readable (not visible through the API)".into())
            }
            e => e,
        })?;
        Ok(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
    }
}

//! HMAC-SHA1 challenge-response on slot 1 or 2.
//!
//! The key always hashes a 64-byte block. A slot programmed with HMAC_LT64
//! (variable-length challenges, the default here and in ykman) drops the
//! trailing run of bytes equal to the block's last byte before hashing, so
//! [`hmac_lt64_pad`] pads a shorter challenge with a byte different from its
//! last one (0x01 after a 0x00, else 0x00) and the key answers
//! HMAC-SHA1(key, challenge). A 64-byte challenge is sent as it is.
//!
//! A slot that needs a touch makes the key wait; the progress callback hears
//! [`Progress::TouchNeeded`] so the caller can say "touch your key". An empty
//! slot answers nothing, reported as [`YubikeyError::NoResponse`].

use super::YubikeyError;
use super::device::{FeatureReportTransport, OtpConnection, Progress};
use zeroize::Zeroizing;

/// Command: HMAC-SHA1 challenge to slot 1.
pub const SLOT_CHAL_HMAC1: u8 = 0x30;
/// Command: HMAC-SHA1 challenge to slot 2.
pub const SLOT_CHAL_HMAC2: u8 = 0x38;
/// Longest challenge.
pub const MAX_CHALLENGE: usize = 64;
/// Length of the HMAC-SHA1 response.
pub const RESPONSE_LEN: usize = 20;

/// One of the two OTP slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Slot {
    /// Slot 1 (short touch).
    One,
    /// Slot 2 (long touch).
    Two,
}

impl Slot {
    /// Slot from its number, 1 or 2.
    pub fn from_number(n: u64) -> Result<Slot, YubikeyError> {
        match n {
            1 => Ok(Slot::One),
            2 => Ok(Slot::Two),
            _ => Err(YubikeyError::InvalidArgument(format!("slot {n}: must be 1 or 2"))),
        }
    }

    /// 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            Slot::One => 1,
            Slot::Two => 2,
        }
    }

    /// The HMAC challenge command of this slot.
    pub fn hmac_command(self) -> u8 {
        match self {
            Slot::One => SLOT_CHAL_HMAC1,
            Slot::Two => SLOT_CHAL_HMAC2,
        }
    }
}

/// Pad a challenge of 0 to 64 bytes to the 64-byte block sent to the key.
pub fn hmac_lt64_pad(challenge: &[u8]) -> Result<Zeroizing<[u8; 64]>, YubikeyError> {
    if challenge.len() > MAX_CHALLENGE {
        return Err(YubikeyError::ChallengeTooLong(challenge.len()));
    }
    let pad = if challenge.last() == Some(&0) { 1 } else { 0 };
    let mut block = Zeroizing::new([pad; 64]);
    block[..challenge.len()].copy_from_slice(challenge);
    Ok(block)
}

/// The message a variable-length (HMAC_LT64) slot hashes from a 64-byte
/// block: the block without its trailing run of bytes equal to its last byte.
pub fn hmac_lt64_message(block: &[u8; 64]) -> &[u8] {
    let last = block[63];
    let keep = block.iter().rposition(|&b| b != last).map_or(0, |i| i + 1);
    &block[..keep]
}

/// Send `challenge` (0 to 64 bytes) to `slot` and return the 20-byte
/// HMAC-SHA1 response. `progress` hears when the key waits for a touch.
pub fn challenge_response<T: FeatureReportTransport>(
    conn: &mut OtpConnection<T>,
    slot: Slot,
    challenge: &[u8],
    progress: &mut dyn FnMut(Progress),
) -> Result<Zeroizing<[u8; RESPONSE_LEN]>, YubikeyError> {
    let block = hmac_lt64_pad(challenge)?;
    let data = conn.transact_data(slot.hmac_command(), &block[..], RESPONSE_LEN, progress)?;
    let mut out = Zeroizing::new([0u8; RESPONSE_LEN]);
    out.copy_from_slice(&data[..RESPONSE_LEN]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_roundtrip() {
        for c in [&b""[..], b"\x00", b"\x01", b"abc", b"ab\x00\x00", &[7u8; 63]] {
            let b = hmac_lt64_pad(c).unwrap();
            assert_eq!(hmac_lt64_message(&b), c);
        }
        assert!(matches!(hmac_lt64_pad(&[0; 65]), Err(YubikeyError::ChallengeTooLong(65))));
    }
}

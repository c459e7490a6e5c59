//! Programming a slot for HMAC-SHA1 challenge-response.
//!
//! A configuration is the 52-byte `config_st` of ykcore: `fixed[16]`,
//! `uid[6]`, `key[16]`, `accCode[6]`, `fixedSize`, `extFlags`, `tktFlags`,
//! `cfgFlags`, `rfu[2]` and the complemented CRC-16 of the first 50 bytes (little-endian). A 20-byte
//! HMAC key is split: bytes 0-15 in `key`, bytes 16-19 in `uid`. The write
//! command (SLOT_CONFIG for slot 1, SLOT_CONFIG2 for slot 2) carries the
//! configuration followed by the slot's *current* access code; `accCode`
//! inside the configuration is the new one. The key takes it when its
//! programming sequence advances.

use super::YubikeyError;
use super::chalresp::Slot;
use super::device::{FeatureReportTransport, OtpConnection, Reply};
use super::frame::crc16;
use super::status::Status;
use zeroize::Zeroizing;

/// Command: write the configuration of slot 1.
pub const SLOT_CONFIG: u8 = 0x01;
/// Command: write the configuration of slot 2.
pub const SLOT_CONFIG2: u8 = 0x03;
/// Command: swap the two slots.
pub const SLOT_SWAP: u8 = 0x06;
/// Size of `config_st`.
pub const CONFIG_SIZE: usize = 52;
/// Size of an access code.
pub const ACC_CODE_SIZE: usize = 6;
/// Ticket flag: challenge-response mode.
pub const TKTFLAG_CHAL_RESP: u8 = 0x40;
/// Configuration flags: HMAC-SHA1 challenge-response (both bits).
pub const CFGFLAG_CHAL_HMAC: u8 = 0x22;
/// Configuration flag: variable-length HMAC challenges.
pub const CFGFLAG_HMAC_LT64: u8 = 0x04;
/// Configuration flag: challenge-response requires a button press.
pub const CFGFLAG_CHAL_BTN_TRIG: u8 = 0x08;
/// Extended flag: serial number readable through the API.
pub const EXTFLAG_SERIAL_API_VISIBLE: u8 = 0x04;
/// Extended flag: the configuration may be updated.
pub const EXTFLAG_ALLOW_UPDATE: u8 = 0x20;

/// A 6-byte slot access code.
pub type AccessCode = [u8; ACC_CODE_SIZE];

/// An HMAC-SHA1 challenge-response slot configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacSlotConfig {
    /// The 20-byte HMAC key.
    pub key: Zeroizing<[u8; 20]>,
    /// Require a touch for every challenge.
    pub require_touch: bool,
    /// Hash all 64 bytes of every challenge (no HMAC_LT64).
    pub fixed_64: bool,
    /// The access code to protect the slot with (None: unprotected).
    pub access_code: Option<AccessCode>,
}

impl std::fmt::Debug for HmacSlotConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacSlotConfig")
            .field("require_touch", &self.require_touch)
            .field("fixed_64", &self.fixed_64)
            .field("access_code", &self.access_code.map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl HmacSlotConfig {
    /// A variable-length configuration for `key` (up to 20 bytes; shorter
    /// keys are zero-padded, which HMAC treats the same).
    pub fn new(key: &[u8], require_touch: bool) -> Result<HmacSlotConfig, YubikeyError> {
        if key.len() > 20 {
            return Err(YubikeyError::InvalidArgument(format!(
                "HMAC key of {} bytes is too long: at most 20",
                key.len()
            )));
        }
        let mut k = Zeroizing::new([0u8; 20]);
        k[..key.len()].copy_from_slice(key);
        Ok(HmacSlotConfig { key: k, require_touch, fixed_64: false, access_code: None })
    }

    /// The 52 configuration bytes.
    pub fn to_bytes(&self) -> Zeroizing<[u8; CONFIG_SIZE]> {
        let mut c = Zeroizing::new([0u8; CONFIG_SIZE]);
        c[22..38].copy_from_slice(&self.key[..16]);
        c[16..20].copy_from_slice(&self.key[16..20]);
        if let Some(acc) = self.access_code {
            c[38..44].copy_from_slice(&acc);
        }
        c[45] = EXTFLAG_SERIAL_API_VISIBLE | EXTFLAG_ALLOW_UPDATE;
        c[46] = TKTFLAG_CHAL_RESP;
        let mut cfg = CFGFLAG_CHAL_HMAC;
        if !self.fixed_64 {
            cfg |= CFGFLAG_HMAC_LT64;
        }
        if self.require_touch {
            cfg |= CFGFLAG_CHAL_BTN_TRIG;
        }
        c[47] = cfg;
        let crc = !crc16(&c[..50]);
        c[50..52].copy_from_slice(&crc.to_le_bytes());
        c
    }

    /// Parse 52 configuration bytes. `Ok(None)`: a valid configuration that is
    /// not HMAC challenge-response. Errors on a CRC mismatch.
    pub fn from_bytes(c: &[u8; CONFIG_SIZE]) -> Result<Option<HmacSlotConfig>, YubikeyError> {
        if crc16(&c[..]) != super::frame::CRC_OK_RESIDUAL {
            return Err(YubikeyError::Garbage("configuration CRC mismatch".into()));
        }
        let hmac = c[46] & TKTFLAG_CHAL_RESP != 0 && c[47] & CFGFLAG_CHAL_HMAC == CFGFLAG_CHAL_HMAC;
        if !hmac {
            return Ok(None);
        }
        let mut key = Zeroizing::new([0u8; 20]);
        key[..16].copy_from_slice(&c[22..38]);
        key[16..].copy_from_slice(&c[16..20]);
        let mut acc = [0u8; ACC_CODE_SIZE];
        acc.copy_from_slice(&c[38..44]);
        Ok(Some(HmacSlotConfig {
            key,
            require_touch: c[47] & CFGFLAG_CHAL_BTN_TRIG != 0,
            fixed_64: c[47] & CFGFLAG_HMAC_LT64 == 0,
            access_code: (acc != [0; ACC_CODE_SIZE]).then_some(acc),
        }))
    }

    /// The configuration write command: configuration then the current access code.
    pub fn write_payload(&self, current_access_code: Option<&AccessCode>) -> Zeroizing<Vec<u8>> {
        let mut p = Zeroizing::new(Vec::with_capacity(CONFIG_SIZE + ACC_CODE_SIZE));
        p.extend_from_slice(&self.to_bytes()[..]);
        p.extend_from_slice(current_access_code.unwrap_or(&[0; ACC_CODE_SIZE]));
        p
    }
}

/// Parse a 12-hex-digit access code.
pub fn parse_access_code(hex: &str) -> Result<AccessCode, YubikeyError> {
    let bytes =
        decode_hex(hex).map_err(|_| YubikeyError::InvalidArgument("access code must be 12 hex digits".into()))?;
    bytes.as_slice().try_into().map_err(|_| YubikeyError::InvalidArgument("access code must be 12 hex digits".into()))
}

/// Decode hex (case-insensitive, no separators).
pub fn decode_hex(s: &str) -> Result<Vec<u8>, YubikeyError> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(YubikeyError::InvalidArgument("not an even number of hex digits".into()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| YubikeyError::InvalidArgument("bad hex".into())))
        .collect()
}

impl<T: FeatureReportTransport> OtpConnection<T> {
    /// Program `slot` with `config`. `current_access_code` unlocks a slot
    /// protected by one. Returns the new status.
    pub fn program_hmac(
        &mut self,
        slot: Slot,
        config: &HmacSlotConfig,
        current_access_code: Option<&AccessCode>,
    ) -> Result<Status, YubikeyError> {
        let cmd = match slot {
            Slot::One => SLOT_CONFIG,
            Slot::Two => SLOT_CONFIG2,
        };
        let payload = config.write_payload(current_access_code);
        match self.transact(cmd, &payload, &mut |_| {}) {
            Ok(Reply::Status(s)) => Ok(s),
            Ok(Reply::Data(_)) => Err(YubikeyError::Garbage("data where a status report was expected".into())),
            Err(YubikeyError::NoResponse(_)) => Err(YubikeyError::Rejected(format!(
                "slot {} was not programmed (wrong or missing access code?)",
                slot.number()
            ))),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_roundtrip() {
        let mut c = HmacSlotConfig::new(&[0x11; 20], true).unwrap();
        c.access_code = Some([1, 2, 3, 4, 5, 6]);
        let b = c.to_bytes();
        assert_eq!(b[46], 0x40);
        assert_eq!(b[47], 0x22 | 0x04 | 0x08);
        assert_eq!(HmacSlotConfig::from_bytes(&b).unwrap().unwrap(), c);
        let mut bad = *b;
        bad[0] ^= 1;
        assert!(HmacSlotConfig::from_bytes(&bad).is_err());
        assert!(HmacSlotConfig::new(&[0; 21], false).is_err());
        assert_eq!(parse_access_code("010203040506").unwrap(), [1, 2, 3, 4, 5, 6]);
        assert!(parse_access_code("0102").is_err());
    }
}

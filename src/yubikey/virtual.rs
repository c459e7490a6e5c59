//! A software YubiKey OTP interface: feature reports in, feature reports out.
//!
//! [`VirtualYubikey`] behaves as a YubiKey 5 (firmware 5.4.3 unless set
//! otherwise) as CONTRACTS "Settled details" fixes it: the status report is
//! byte 0 reserved, bytes 1-3 version, byte 4 programming sequence (advanced by
//! every accepted configuration write), bytes 5-6 touch level / slot flags;
//! responses end with the complemented CRC; "response done" is the pending
//! flag with sequence 0; a write whose last byte is 0xFF resets the read
//! state; the serial is big-endian; a challenge to an empty slot gets no
//! response; malformed input is ignored, never a panic.
//!
//! It implements [`FeatureReportTransport`] itself, so a client can drive it
//! in-process, and [`serve_udp`] puts it on a UDP socket (`0x01` + 8 bytes
//! sets a report; `0x02` gets one, the reply is the 8 bytes).
//!
//! A slot that requires touch makes the key report "waiting for touch" for a
//! configurable number of reads ([`VirtualYubikey::touch_polls`], default 2)
//! and then grants it, so scripts need no human.

use super::YubikeyError;
use super::chalresp::hmac_lt64_message;
use super::config::{ACC_CODE_SIZE, CONFIG_SIZE, HmacSlotConfig, SLOT_CONFIG, SLOT_CONFIG2, SLOT_SWAP};
use super::device::{FeatureReportTransport, Report};
use super::frame::{
    FRAME_SIZE, Frame, PIECE_SIZE, PIECES, RESP_PENDING_FLAG, RESP_TIMEOUT_WAIT_FLAG, SLOT_WRITE_FLAG, response_reports,
};
use super::status::{CONFIG1_TOUCH, CONFIG1_VALID, CONFIG2_TOUCH, CONFIG2_VALID, SLOT_DEVICE_SERIAL, Status};
use crate::crypto::HashAlg;
use std::net::UdpSocket;

/// The YubiKey 4/5 "read device info" command of the management
/// application over the OTP interface (what ykman sends first).
pub const SLOT_YK4_CAPABILITIES: u8 = 0x13;

/// What a slot holds.
#[derive(Debug, Clone)]
enum SlotState {
    Empty,
    /// A configuration that is not HMAC challenge-response (kept opaque).
    Other {
        access_code: [u8; ACC_CODE_SIZE],
    },
    Hmac(HmacSlotConfig),
}

impl SlotState {
    fn access_code(&self) -> [u8; ACC_CODE_SIZE] {
        match self {
            SlotState::Empty => [0; ACC_CODE_SIZE],
            SlotState::Other { access_code } => *access_code,
            SlotState::Hmac(c) => c.access_code.unwrap_or([0; ACC_CODE_SIZE]),
        }
    }
}

/// Read-side state.
#[derive(Debug, Clone)]
enum ReadState {
    Idle,
    TouchWait { polls_left: u32, reports: Vec<Report> },
    Pending { reports: Vec<Report>, next: usize },
}

/// A software YubiKey OTP interface.
#[derive(Debug, Clone)]
pub struct VirtualYubikey {
    serial: u32,
    version: (u8, u8, u8),
    prog_seq: u8,
    slots: [SlotState; 2],
    write_buf: [u8; FRAME_SIZE],
    writing: bool,
    read: ReadState,
    /// Reads answered with "waiting for touch" before a touch is granted.
    pub touch_polls: u32,
}

impl VirtualYubikey {
    /// A key with empty slots, the given serial and firmware 5.4.3.
    pub fn new(serial: u32) -> VirtualYubikey {
        VirtualYubikey {
            serial,
            version: (5, 4, 3),
            prog_seq: 0,
            slots: [SlotState::Empty, SlotState::Empty],
            write_buf: [0; FRAME_SIZE],
            writing: false,
            read: ReadState::Idle,
            touch_polls: 2,
        }
    }

    /// Set the firmware version.
    pub fn with_version(mut self, version: (u8, u8, u8)) -> VirtualYubikey {
        self.version = version;
        self
    }

    /// Parse `major.minor.build`.
    pub fn parse_version(s: &str) -> Result<(u8, u8, u8), YubikeyError> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let bad = || YubikeyError::InvalidArgument(format!("version {:?}: expected MAJOR.MINOR.BUILD", s));
        if parts.len() != 3 {
            return Err(bad());
        }
        let n = |p: &str| p.parse::<u8>().map_err(|_| bad());
        Ok((n(parts[0])?, n(parts[1])?, n(parts[2])?))
    }

    /// Program `slot` (1 or 2) for variable-length HMAC-SHA1 challenge-response.
    pub fn set_hmac_slot(&mut self, slot: u8, key: &[u8], require_touch: bool) -> Result<(), YubikeyError> {
        let cfg = HmacSlotConfig::new(key, require_touch)?;
        self.set_slot_config(slot, cfg)
    }

    /// Put a full configuration in `slot` (1 or 2).
    pub fn set_slot_config(&mut self, slot: u8, cfg: HmacSlotConfig) -> Result<(), YubikeyError> {
        let i = match slot {
            1 => 0,
            2 => 1,
            _ => return Err(YubikeyError::InvalidArgument(format!("slot {slot}: must be 1 or 2"))),
        };
        self.slots[i] = SlotState::Hmac(cfg);
        self.bump_seq();
        Ok(())
    }

    /// The device information a YubiKey 5 returns to
    /// [`SLOT_YK4_CAPABILITIES`]: a length byte, then tag-length-value
    /// entries: 0x01 USB capabilities supported and 0x03 enabled (OTP 0x01,
    /// U2F 0x02, FIDO2 0x200: the interfaces this key has), 0x02 the serial
    /// (big-endian), 0x04 the form factor (0x01, USB-A keychain), 0x05 the
    /// firmware version.
    pub fn device_info(&self) -> Vec<u8> {
        let caps: [u8; 2] = 0x0203u16.to_be_bytes();
        let (a, b, c) = self.version;
        let mut tlv = Vec::with_capacity(32);
        for (tag, value) in [
            (0x01u8, &caps[..]),
            (0x02, &self.serial.to_be_bytes()[..]),
            (0x03, &caps[..]),
            (0x04, &[0x01][..]),
            (0x05, &[a, b, c][..]),
        ] {
            tlv.push(tag);
            tlv.push(value.len() as u8);
            tlv.extend_from_slice(value);
        }
        let mut out = vec![tlv.len() as u8];
        out.extend_from_slice(&tlv);
        out
    }

    /// The serial number.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The current status.
    pub fn status(&self) -> Status {
        let mut t = 0u16;
        for (i, s) in self.slots.iter().enumerate() {
            let (valid, touch) = if i == 0 { (CONFIG1_VALID, CONFIG1_TOUCH) } else { (CONFIG2_VALID, CONFIG2_TOUCH) };
            match s {
                SlotState::Empty => {}
                SlotState::Other { .. } => t |= valid,
                SlotState::Hmac(c) => {
                    t |= valid;
                    if c.require_touch {
                        t |= touch;
                    }
                }
            }
        }
        Status { version: self.version, prog_seq: self.prog_seq, touch_level: t }
    }

    /// Every accepted configuration write advances the programming sequence
    /// (CONTRACTS: "incremented by every successful write"), even one that
    /// empties both slots.
    fn bump_seq(&mut self) {
        self.prog_seq = self.prog_seq.wrapping_add(1);
    }

    /// Take one feature report written by the host.
    pub fn handle_set(&mut self, report: &Report) {
        let st = report[PIECE_SIZE];
        if st & SLOT_WRITE_FLAG == 0 {
            return; // not a write: ignored
        }
        let seq = usize::from(st & 0x7f);
        if seq == 0x7f || seq == 0x0f {
            // 0xFF: reset the read state; 0x8F: ykcore's dummy report.
            self.read = ReadState::Idle;
            self.writing = false;
            return;
        }
        if seq >= PIECES {
            return;
        }
        if seq == 0 {
            self.write_buf = [0; FRAME_SIZE];
            self.writing = true;
            self.read = ReadState::Idle;
        }
        if !self.writing {
            return;
        }
        self.write_buf[seq * PIECE_SIZE..(seq + 1) * PIECE_SIZE].copy_from_slice(&report[..PIECE_SIZE]);
        if seq == PIECES - 1 {
            self.writing = false;
            let buf = self.write_buf;
            self.write_buf = [0; FRAME_SIZE];
            if let Ok(frame) = Frame::from_bytes(&buf) {
                self.execute(&frame);
            }
        }
    }

    /// Answer one feature report read by the host.
    pub fn handle_get(&mut self) -> Report {
        match &mut self.read {
            ReadState::Idle => self.status().to_report(),
            ReadState::TouchWait { polls_left, reports } => {
                if *polls_left == 0 {
                    let reports = std::mem::take(reports);
                    self.read = ReadState::Pending { reports, next: 0 };
                    return self.handle_get();
                }
                *polls_left -= 1;
                let mut r = self.status().to_report();
                r[PIECE_SIZE] = RESP_TIMEOUT_WAIT_FLAG | 15;
                r
            }
            ReadState::Pending { reports, next } => match reports.get(*next) {
                Some(r) => {
                    *next += 1;
                    *r
                }
                None => {
                    let mut r = [0u8; 8];
                    r[PIECE_SIZE] = RESP_PENDING_FLAG;
                    r
                }
            },
        }
    }

    fn respond(&mut self, data: &[u8], touch: bool) {
        let reports = response_reports(data);
        self.read = if touch && self.touch_polls > 0 {
            ReadState::TouchWait { polls_left: self.touch_polls, reports }
        } else {
            ReadState::Pending { reports, next: 0 }
        };
    }

    fn execute(&mut self, frame: &Frame) {
        match frame.slot {
            0x30 | 0x38 => {
                let i = usize::from(frame.slot == 0x38);
                let SlotState::Hmac(cfg) = &self.slots[i] else { return };
                let msg = if cfg.fixed_64 { &frame.payload[..] } else { hmac_lt64_message(&frame.payload) };
                let mac = zeroize::Zeroizing::new(crate::crypto::default_provider().hmac(
                    HashAlg::Sha1,
                    &cfg.key[..],
                    &[msg],
                ));
                let touch = cfg.require_touch;
                self.respond(&mac, touch);
            }
            SLOT_DEVICE_SERIAL => {
                let s = self.serial.to_be_bytes();
                self.respond(&s, false);
            }
            SLOT_YK4_CAPABILITIES => {
                let info = self.device_info();
                self.respond(&info, false);
            }
            SLOT_CONFIG | SLOT_CONFIG2 => {
                let i = usize::from(frame.slot == SLOT_CONFIG2);
                let mut cfg = [0u8; CONFIG_SIZE];
                cfg.copy_from_slice(&frame.payload[..CONFIG_SIZE]);
                let mut given = [0u8; ACC_CODE_SIZE];
                given.copy_from_slice(&frame.payload[CONFIG_SIZE..CONFIG_SIZE + ACC_CODE_SIZE]);
                let current = self.slots[i].access_code();
                if !crate::crypto::ct_eq(&current, &given) {
                    return; // wrong access code: refused, sequence unchanged
                }
                let new = if cfg[..50].iter().all(|&b| b == 0) {
                    SlotState::Empty
                } else {
                    match HmacSlotConfig::from_bytes(&cfg) {
                        Ok(Some(c)) => SlotState::Hmac(c),
                        Ok(None) => {
                            let mut access_code = [0u8; ACC_CODE_SIZE];
                            access_code.copy_from_slice(&cfg[38..44]);
                            SlotState::Other { access_code }
                        }
                        Err(_) => return,
                    }
                };
                self.slots[i] = new;
                self.bump_seq();
            }
            SLOT_SWAP => {
                self.slots.swap(0, 1);
                self.bump_seq();
            }
            _ => {} // unknown commands get no response
        }
    }

    /// Serve this key on `socket` until an I/O error. Malformed datagrams are
    /// ignored.
    pub fn serve_udp(mut self, socket: &UdpSocket) -> std::io::Result<()> {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
                Err(e) => return Err(e),
            };
            match (n, buf[0]) {
                (9, 0x01) => {
                    let mut r = [0u8; 8];
                    r.copy_from_slice(&buf[1..9]);
                    self.handle_set(&r);
                }
                (1, 0x02) => {
                    let r = self.handle_get();
                    // A lost reply is the client's timeout to handle.
                    let _ = socket.send_to(&r, from);
                }
                _ => {}
            }
        }
    }
}

impl FeatureReportTransport for VirtualYubikey {
    fn set_feature(&mut self, report: &Report) -> Result<(), YubikeyError> {
        self.handle_set(report);
        Ok(())
    }

    fn get_feature(&mut self) -> Result<Report, YubikeyError> {
        Ok(self.handle_get())
    }
}

/// Serve `key` on `socket` (see [`VirtualYubikey::serve_udp`]).
pub fn serve_udp(key: VirtualYubikey, socket: &UdpSocket) -> std::io::Result<()> {
    key.serve_udp(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yubikey::OtpConnection;

    #[test]
    fn device_info_through_the_otp_interface() {
        let mut conn = OtpConnection::new(VirtualYubikey::new(12_345_678));
        let info = conn.transact_data(SLOT_YK4_CAPABILITIES, &[], 23, &mut |_| {}).unwrap();
        assert_eq!(info[0], 22);
        assert_eq!(&info[1..5], &[0x01, 2, 0x02, 0x03]);
        assert_eq!(&info[5..11], &[0x02, 4, 0x00, 0xbc, 0x61, 0x4e]); // 12345678
        assert_eq!(&info[11..18], &[0x03, 2, 0x02, 0x03, 0x04, 1, 0x01]);
        assert_eq!(&info[18..23], &[0x05, 3, 5, 4, 3]);
    }
}

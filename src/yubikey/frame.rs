//! The OTP HID wire format: 70-byte frames carried in 8-byte feature reports.
//!
//! A command is a [`Frame`]: 64 payload bytes, the slot (command) byte, the
//! CRC-16 of the payload (little-endian) and 3 filler bytes. It is written as
//! ten 7-byte pieces, each in a feature report whose last byte is the piece's
//! sequence number with [`SLOT_WRITE_FLAG`] set; all-zero pieces other than
//! the first and the last are skipped, as ykcore does. A response is read back
//! 7 bytes per report while [`RESP_PENDING_FLAG`] is set, the low five bits
//! counting the pieces; the count returning to zero ends it. Its last two
//! bytes are the one's complement of the CRC, so the CRC over data and CRC
//! bytes is the residue [`CRC_OK_RESIDUAL`].

/// Size of a HID feature report of the OTP interface.
pub const FEATURE_RPT_SIZE: usize = 8;
/// Data bytes per feature report.
pub const PIECE_SIZE: usize = 7;
/// Payload bytes of a frame.
pub const SLOT_DATA_SIZE: usize = 64;
/// Size of a whole frame.
pub const FRAME_SIZE: usize = 70;
/// Number of 7-byte pieces of a frame.
pub const PIECES: usize = FRAME_SIZE / PIECE_SIZE;
/// Status byte: set by the host on writes, cleared by the device when taken.
pub const SLOT_WRITE_FLAG: u8 = 0x80;
/// Status byte: a response is being read out.
pub const RESP_PENDING_FLAG: u8 = 0x40;
/// Status byte: the device waits for a touch; low five bits are seconds left.
pub const RESP_TIMEOUT_WAIT_FLAG: u8 = 0x20;
/// Status byte: sequence-number bits of a response piece.
pub const SEQUENCE_MASK: u8 = 0x1f;
/// The CRC-16 over a response and its complemented CRC.
pub const CRC_OK_RESIDUAL: u16 = 0xf0b8;
/// The report that resets the device's read state (last byte 0xFF).
pub const RESET_REPORT: [u8; FEATURE_RPT_SIZE] = [0, 0, 0, 0, 0, 0, 0, 0xff];

/// Errors of frame encoding and decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload is longer than 64 bytes.
    #[error("frame payload of {0} bytes is longer than 64")]
    PayloadTooLong(usize),
    /// The frame's CRC does not match its payload.
    #[error("frame CRC mismatch")]
    BadCrc,
    /// A response is shorter than its expected length plus CRC.
    #[error("response too short: {got} bytes, expected {want}")]
    ShortResponse {
        /// Bytes received.
        got: usize,
        /// Bytes needed.
        want: usize,
    },
    /// A response's CRC residue is wrong.
    #[error("response CRC check failed (corrupt data)")]
    ResponseCrc,
}

/// CRC-16 as the YubiKey computes it: initial value 0xFFFF, reflected
/// polynomial 0x8408, no final XOR.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0x8408;
            }
        }
    }
    crc
}

/// A command frame: slot (command) byte and 64 bytes of payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The payload, zero-padded.
    pub payload: [u8; SLOT_DATA_SIZE],
    /// The slot / command byte.
    pub slot: u8,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload may hold a key or access code: not shown.
        write!(f, "Frame {{ slot: {:#04x}, .. }}", self.slot)
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.payload);
    }
}

impl Frame {
    /// A frame for `slot` with `data` (at most 64 bytes, zero-padded).
    pub fn new(slot: u8, data: &[u8]) -> Result<Frame, FrameError> {
        if data.len() > SLOT_DATA_SIZE {
            return Err(FrameError::PayloadTooLong(data.len()));
        }
        let mut payload = [0u8; SLOT_DATA_SIZE];
        payload[..data.len()].copy_from_slice(data);
        Ok(Frame { payload, slot })
    }

    /// The 70 bytes on the wire: payload, slot, CRC-16 (LE), 3 filler.
    pub fn to_bytes(&self) -> [u8; FRAME_SIZE] {
        let mut out = [0u8; FRAME_SIZE];
        out[..SLOT_DATA_SIZE].copy_from_slice(&self.payload);
        out[64] = self.slot;
        out[65..67].copy_from_slice(&crc16(&self.payload).to_le_bytes());
        out
    }

    /// Parse 70 wire bytes, checking the payload CRC.
    pub fn from_bytes(bytes: &[u8; FRAME_SIZE]) -> Result<Frame, FrameError> {
        let mut payload = [0u8; SLOT_DATA_SIZE];
        payload.copy_from_slice(&bytes[..SLOT_DATA_SIZE]);
        let frame = Frame { payload, slot: bytes[64] };
        if crc16(&frame.payload).to_le_bytes() != [bytes[65], bytes[66]] {
            return Err(FrameError::BadCrc);
        }
        Ok(frame)
    }

    /// The feature reports that write this frame, in order: 7 data bytes and
    /// `SLOT_WRITE_FLAG | sequence`, all-zero pieces skipped except the first
    /// and the last.
    pub fn write_reports(&self) -> Vec<[u8; FEATURE_RPT_SIZE]> {
        let bytes = self.to_bytes();
        let mut out = Vec::with_capacity(PIECES);
        for (seq, piece) in bytes.chunks(PIECE_SIZE).enumerate() {
            let first_or_last = seq == 0 || seq == PIECES - 1;
            if !first_or_last && piece.iter().all(|&b| b == 0) {
                continue;
            }
            let mut report = [0u8; FEATURE_RPT_SIZE];
            report[..PIECE_SIZE].copy_from_slice(piece);
            report[PIECE_SIZE] = SLOT_WRITE_FLAG | seq as u8;
            out.push(report);
        }
        let mut b = bytes;
        zeroize::Zeroize::zeroize(&mut b[..]);
        out
    }
}

/// Check a response read from the device: `data` holds at least
/// `expected_len + 2` bytes whose CRC residue is right. Returns the
/// `expected_len` data bytes.
pub fn check_response(data: &[u8], expected_len: usize) -> Result<&[u8], FrameError> {
    let want = expected_len + 2;
    let framed = data.get(..want).ok_or(FrameError::ShortResponse { got: data.len(), want })?;
    if crc16(framed) != CRC_OK_RESIDUAL {
        return Err(FrameError::ResponseCrc);
    }
    Ok(&framed[..expected_len])
}

/// Device side: the feature reports that carry `data` as a response (data,
/// complemented CRC-16 little-endian, zero-padded to whole pieces, each piece
/// with `RESP_PENDING_FLAG | sequence`).
pub fn response_reports(data: &[u8]) -> Vec<[u8; FEATURE_RPT_SIZE]> {
    let mut framed = data.to_vec();
    framed.extend_from_slice(&(!crc16(data)).to_le_bytes());
    let out = framed
        .chunks(PIECE_SIZE)
        .enumerate()
        .map(|(seq, piece)| {
            let mut report = [0u8; FEATURE_RPT_SIZE];
            report[..piece.len()].copy_from_slice(piece);
            report[PIECE_SIZE] = RESP_PENDING_FLAG | (seq as u8 & SEQUENCE_MASK);
            report
        })
        .collect();
    zeroize::Zeroize::zeroize(&mut framed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residue() {
        let data = b"0123456789abcdefghij";
        let mut v = data.to_vec();
        v.extend_from_slice(&(!crc16(data)).to_le_bytes());
        assert_eq!(crc16(&v), CRC_OK_RESIDUAL);
        assert_eq!(check_response(&v, 20).unwrap(), data);
        v[3] ^= 1;
        assert_eq!(check_response(&v, 20), Err(FrameError::ResponseCrc));
        assert!(matches!(check_response(&v[..5], 20), Err(FrameError::ShortResponse { .. })));
    }

    #[test]
    fn frame_roundtrip() {
        let f = Frame::new(0x38, b"Sample").unwrap();
        assert_eq!(Frame::from_bytes(&f.to_bytes()).unwrap(), f);
        let mut b = f.to_bytes();
        b[0] ^= 1;
        assert_eq!(Frame::from_bytes(&b), Err(FrameError::BadCrc));
        assert_eq!(Frame::new(1, &[0; 65]).unwrap_err(), FrameError::PayloadTooLong(65));
    }
}

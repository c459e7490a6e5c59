//! CTAPHID (CTAP 2.1 §11.2): messages cut into 64-byte reports, channels,
//! keepalives, cancellation and errors, for both ends of the wire.
//!
//! A message is one initialization packet (channel id, command with bit 7
//! set, 16-bit big-endian length, 57 data bytes) followed by up to 128
//! continuation packets (channel id, sequence number 0..=127, 59 data bytes),
//! so no message exceeds [`MAX_MESSAGE_LEN`] = 7609 bytes.
//!
//! - Host side: [`CtapHidDevice`] opens a channel on any [`ReportTransport`]
//!   (INIT on the broadcast channel, nonce checked) and runs transactions
//!   with a deadline, a cancel handle and progress reports. Everything the
//!   device sends is checked: channel id, command, length, sequence.
//! - Device side: [`DeviceChannel`] is a sans-I/O state machine. Feed it
//!   reports and the time; it hands complete CBOR and MSG requests to a
//!   [`Handler`], emits KEEPALIVE every [`DeviceConfig::keepalive_interval`]
//!   while the handler waits for a touch, and answers CANCEL with
//!   `CTAP2_ERR_KEEPALIVE_CANCEL`.

use super::{Op, Progress, REPORT_LEN, Report, ReportTransport, TransportError};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The broadcast channel id, used only by INIT.
pub const BROADCAST_CID: u32 = 0xffff_ffff;
/// Data bytes in an initialization packet.
pub const INIT_DATA_LEN: usize = REPORT_LEN - 7;
/// Data bytes in a continuation packet.
pub const CONT_DATA_LEN: usize = REPORT_LEN - 5;
/// The longest message: one initialization and 128 continuation packets.
pub const MAX_MESSAGE_LEN: usize = INIT_DATA_LEN + 128 * CONT_DATA_LEN;
/// The CTAPHID protocol version reported by INIT.
pub const PROTOCOL_VERSION: u8 = 2;
/// CTAP2 status `CTAP2_ERR_KEEPALIVE_CANCEL`, the answer to a cancelled request.
pub const CTAP2_ERR_KEEPALIVE_CANCEL: u8 = 0x2d;

/// CTAPHID command codes (without the initialization-packet bit 7).
pub mod cmd {
    /// Echo the data.
    pub const PING: u8 = 0x01;
    /// A U2F (CTAP1) APDU.
    pub const MSG: u8 = 0x03;
    /// Lock the device to one channel for some seconds.
    pub const LOCK: u8 = 0x04;
    /// Allocate a channel / resynchronize.
    pub const INIT: u8 = 0x06;
    /// Make the device show itself.
    pub const WINK: u8 = 0x08;
    /// A CTAP2 CBOR request.
    pub const CBOR: u8 = 0x10;
    /// Cancel the outstanding request on the channel.
    pub const CANCEL: u8 = 0x11;
    /// The device is still working (status byte follows).
    pub const KEEPALIVE: u8 = 0x3b;
    /// An error (code byte follows).
    pub const ERROR: u8 = 0x3f;
}

/// Capability flags in the INIT response.
pub mod capability {
    /// Implements WINK.
    pub const WINK: u8 = 0x01;
    /// Implements CBOR.
    pub const CBOR: u8 = 0x04;
    /// Does not implement MSG.
    pub const NMSG: u8 = 0x08;
}

/// KEEPALIVE status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveStatus {
    /// 1: processing.
    Processing,
    /// 2: waiting for user presence.
    UpNeeded,
}

impl KeepaliveStatus {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            KeepaliveStatus::Processing => 1,
            KeepaliveStatus::UpNeeded => 2,
        }
    }
}

/// CTAPHID error codes (the payload of an ERROR response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HidErrorCode {
    /// 0x01 the command is not known.
    InvalidCmd,
    /// 0x02 a parameter is invalid.
    InvalidPar,
    /// 0x03 the length is invalid.
    InvalidLen,
    /// 0x04 a sequence number is out of order.
    InvalidSeq,
    /// 0x05 the message was not completed in time.
    MsgTimeout,
    /// 0x06 another channel holds the device.
    ChannelBusy,
    /// 0x0a the command needs a channel lock.
    LockRequired,
    /// 0x0b the channel id is not valid.
    InvalidChannel,
    /// 0x7f another error.
    Other,
    /// A code CTAPHID does not define.
    Unknown(u8),
}

impl HidErrorCode {
    /// From the wire byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x01 => Self::InvalidCmd,
            0x02 => Self::InvalidPar,
            0x03 => Self::InvalidLen,
            0x04 => Self::InvalidSeq,
            0x05 => Self::MsgTimeout,
            0x06 => Self::ChannelBusy,
            0x0a => Self::LockRequired,
            0x0b => Self::InvalidChannel,
            0x7f => Self::Other,
            b => Self::Unknown(b),
        }
    }
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::InvalidCmd => 0x01,
            Self::InvalidPar => 0x02,
            Self::InvalidLen => 0x03,
            Self::InvalidSeq => 0x04,
            Self::MsgTimeout => 0x05,
            Self::ChannelBusy => 0x06,
            Self::LockRequired => 0x0a,
            Self::InvalidChannel => 0x0b,
            Self::Other => 0x7f,
            Self::Unknown(b) => b,
        }
    }
}

impl std::fmt::Display for HidErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::InvalidCmd => "invalid command",
            Self::InvalidPar => "invalid parameter",
            Self::InvalidLen => "invalid length",
            Self::InvalidSeq => "invalid sequence",
            Self::MsgTimeout => "message timeout",
            Self::ChannelBusy => "channel busy",
            Self::LockRequired => "lock required",
            Self::InvalidChannel => "invalid channel",
            Self::Other => "other error",
            Self::Unknown(b) => return write!(f, "unknown error 0x{b:02x}"),
        };
        f.write_str(s)
    }
}

/// Why a CTAPHID exchange failed (host side).
#[derive(Debug, thiserror::Error)]
pub enum HidError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The deadline passed before the device answered.
    #[error("the device did not answer in time")]
    Timeout,
    /// The caller cancelled the operation.
    #[error("cancelled")]
    Cancelled,
    /// The device answered with a CTAPHID ERROR.
    #[error("device error: {0}")]
    Device(HidErrorCode),
    /// The request is longer than a CTAPHID message can be.
    #[error("request of {0} bytes exceeds the CTAPHID limit of 7609")]
    RequestTooLong(usize),
    /// The device answered with a command other than the request's.
    #[error("device answered command 0x{got:02x} to command 0x{expected:02x}")]
    UnexpectedCommand {
        /// The request's command.
        expected: u8,
        /// The response's command.
        got: u8,
    },
    /// The device announced a response longer than allowed, or a malformed length.
    #[error("device announced an invalid length {0}")]
    InvalidLength(usize),
    /// A continuation packet arrived out of order.
    #[error("continuation packet out of sequence (expected {expected}, got {got})")]
    InvalidSequence {
        /// The expected sequence number.
        expected: u8,
        /// The received one.
        got: u8,
    },
    /// The INIT response was malformed (short payload, reserved channel id).
    #[error("malformed INIT response: {0}")]
    InvalidInitResponse(&'static str),
    /// INIT responses arrived, but none echoed our nonce.
    #[error("the device's INIT response did not echo our nonce")]
    NonceMismatch,
    /// The device does not implement the command (capability flags).
    #[error("the device does not support {0}")]
    Unsupported(&'static str),
}

impl HidError {
    /// A stable snake_case identifier of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            HidError::Transport(e) => e.code(),
            HidError::Timeout => "timeout",
            HidError::Cancelled => "cancelled",
            HidError::Device(_) => "device_error",
            HidError::RequestTooLong(_) => "request_too_long",
            HidError::UnexpectedCommand { .. } => "unexpected_command",
            HidError::InvalidLength(_) => "invalid_length",
            HidError::InvalidSequence { .. } => "invalid_sequence",
            HidError::InvalidInitResponse(_) => "invalid_init_response",
            HidError::NonceMismatch => "nonce_mismatch",
            HidError::Unsupported(_) => "unsupported",
        }
    }
}

/// Cut a message into reports. Returns `None` when `payload` is longer than
/// [`MAX_MESSAGE_LEN`].
///
/// ```
/// use hwkey::transport::ctaphid::{cmd, fragment};
/// let reports = fragment(0x0102_0304, cmd::PING, &[7u8; 100]).unwrap();
/// assert_eq!(reports.len(), 2);
/// assert_eq!(reports[0][4], 0x81);
/// assert_eq!(reports[1][4], 0);
/// ```
pub fn fragment(cid: u32, command: u8, payload: &[u8]) -> Option<Vec<Report>> {
    if payload.len() > MAX_MESSAGE_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(1 + payload.len().saturating_sub(INIT_DATA_LEN).div_ceil(CONT_DATA_LEN));
    let mut r = [0u8; REPORT_LEN];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = 0x80 | (command & 0x7f);
    r[5..7].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    let first = payload.len().min(INIT_DATA_LEN);
    r[7..7 + first].copy_from_slice(&payload[..first]);
    out.push(r);
    for (seq, chunk) in payload[first..].chunks(CONT_DATA_LEN).enumerate() {
        let mut r = [0u8; REPORT_LEN];
        r[..4].copy_from_slice(&cid.to_be_bytes());
        r[4] = seq as u8;
        r[5..5 + chunk.len()].copy_from_slice(chunk);
        out.push(r);
    }
    Some(out)
}

fn report_cid(r: &Report) -> u32 {
    u32::from_be_bytes([r[0], r[1], r[2], r[3]])
}

/// A parsed report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// An initialization packet.
    Init {
        /// Channel id.
        cid: u32,
        /// Command (bit 7 cleared).
        cmd: u8,
        /// Announced message length.
        len: usize,
        /// The 57 data bytes (possibly more than the message needs).
        data: &'a [u8],
    },
    /// A continuation packet.
    Cont {
        /// Channel id.
        cid: u32,
        /// Sequence number (0..=127).
        seq: u8,
        /// The 59 data bytes.
        data: &'a [u8],
    },
}

impl<'a> Packet<'a> {
    /// Parse a report.
    pub fn parse(r: &'a Report) -> Self {
        let cid = report_cid(r);
        if r[4] & 0x80 != 0 {
            Packet::Init { cid, cmd: r[4] & 0x7f, len: u16::from_be_bytes([r[5], r[6]]) as usize, data: &r[7..] }
        } else {
            Packet::Cont { cid, seq: r[4], data: &r[5..] }
        }
    }
    /// The channel id.
    pub fn cid(&self) -> u32 {
        match self {
            Packet::Init { cid, .. } | Packet::Cont { cid, .. } => *cid,
        }
    }
}

/// What the device reported in its INIT response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitInfo {
    /// The allocated channel id.
    pub cid: u32,
    /// CTAPHID protocol version (2).
    pub protocol_version: u8,
    /// Device version: major, minor, build.
    pub device_version: (u8, u8, u8),
    /// Capability flags ([`capability`]).
    pub capabilities: u8,
}

impl InitInfo {
    /// Whether the device speaks CBOR (CTAP2).
    pub fn has_cbor(&self) -> bool {
        self.capabilities & capability::CBOR != 0
    }
    /// Whether the device speaks MSG (U2F).
    pub fn has_msg(&self) -> bool {
        self.capabilities & capability::NMSG == 0
    }
    /// Whether the device implements WINK.
    pub fn has_wink(&self) -> bool {
        self.capabilities & capability::WINK != 0
    }
}

/// How long the host waits for a device to acknowledge a CANCEL before it
/// reports the cancellation anyway.
const CANCEL_GRACE: Duration = Duration::from_millis(300);
/// How often the host looks at the cancel handle while waiting.
const POLL_SLICE: Duration = Duration::from_millis(20);
/// How many times a request answered `ERR_CHANNEL_BUSY` is sent again.
pub const BUSY_RETRIES: u32 = 5;
/// The pause before the n-th busy retry is n times this.
const BUSY_PAUSE: Duration = Duration::from_millis(50);

/// The host side of a CTAPHID channel on one device.
#[derive(Debug)]
pub struct CtapHidDevice<T> {
    transport: T,
    info: InitInfo,
}

impl<T: ReportTransport> CtapHidDevice<T> {
    /// Allocate a channel: INIT with a random nonce on the broadcast channel;
    /// responses for other nonces or channels are skipped until `deadline`.
    pub fn open(mut transport: T, deadline: Instant) -> Result<Self, HidError> {
        let info = Self::init_channel(&mut transport, deadline)?;
        Ok(CtapHidDevice { transport, info })
    }

    /// INIT on the broadcast channel with a fresh nonce; the new channel.
    fn init_channel(transport: &mut T, deadline: Instant) -> Result<InitInfo, HidError> {
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).map_err(|_| HidError::InvalidInitResponse("no random nonce available"))?;
        let reports = fragment(BROADCAST_CID, cmd::INIT, &nonce).ok_or(HidError::RequestTooLong(8))?;
        transport.send_report(&reports[0])?;
        let mut saw_other_nonce = false;
        loop {
            let Some(r) = transport.recv_report(deadline)? else {
                return Err(if saw_other_nonce { HidError::NonceMismatch } else { HidError::Timeout });
            };
            let Packet::Init { cid: BROADCAST_CID, cmd: cmd::INIT, len, data } = Packet::parse(&r) else {
                continue;
            };
            if data[..8] != nonce {
                saw_other_nonce = true;
                continue;
            }
            if len < 17 {
                return Err(HidError::InvalidInitResponse("payload shorter than 17 bytes"));
            }
            let cid = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
            if cid == 0 || cid == BROADCAST_CID {
                return Err(HidError::InvalidInitResponse("reserved channel id"));
            }
            return Ok(InitInfo {
                cid,
                protocol_version: data[12],
                device_version: (data[13], data[14], data[15]),
                capabilities: data[16],
            });
        }
    }

    /// What INIT reported.
    pub fn info(&self) -> &InitInfo {
        &self.info
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Give the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Send a raw report (for tests and tools).
    pub fn send_raw(&mut self, report: &Report) -> Result<(), HidError> {
        Ok(self.transport.send_report(report)?)
    }

    /// PING: the device echoes `data`.
    pub fn ping(&mut self, data: &[u8], op: &Op) -> Result<Vec<u8>, HidError> {
        self.transact(cmd::PING, data, op)
    }

    /// WINK: the device shows itself.
    pub fn wink(&mut self, op: &Op) -> Result<(), HidError> {
        if !self.info.has_wink() {
            return Err(HidError::Unsupported("WINK"));
        }
        self.transact(cmd::WINK, &[], op).map(|_| ())
    }

    /// LOCK the device to this channel for `seconds` (0 releases, at most 10).
    pub fn lock(&mut self, seconds: u8, op: &Op) -> Result<(), HidError> {
        self.transact(cmd::LOCK, &[seconds], op).map(|_| ())
    }

    /// A CTAP2 request: command byte and CBOR parameters in, status byte and
    /// CBOR response out (undecoded).
    pub fn cbor(&mut self, request: &[u8], op: &Op) -> Result<Vec<u8>, HidError> {
        if !self.info.has_cbor() {
            return Err(HidError::Unsupported("CBOR"));
        }
        self.transact(cmd::CBOR, request, op)
    }

    /// A U2F APDU.
    pub fn msg(&mut self, apdu: &[u8], op: &Op) -> Result<Vec<u8>, HidError> {
        if !self.info.has_msg() {
            return Err(HidError::Unsupported("U2F MSG"));
        }
        self.transact(cmd::MSG, apdu, op)
    }

    /// Send CANCEL on this channel (no answer is expected to the CANCEL itself).
    pub fn send_cancel(&mut self) -> Result<(), HidError> {
        let r = fragment(self.info.cid, cmd::CANCEL, &[]).ok_or(HidError::RequestTooLong(0))?;
        self.transport.send_report(&r[0])?;
        Ok(())
    }

    /// One transaction: send `payload` under `command`, return the response
    /// payload. KEEPALIVEs are reported through `op`; on cancellation or at the
    /// deadline a CANCEL is sent and [`HidError::Cancelled`] /
    /// [`HidError::Timeout`] returned.
    ///
    /// A device that answers `ERR_INVALID_CHANNEL` (it lost its channels, e.g.
    /// after a reset or re-plug) gets one fresh INIT and the request once
    /// more; `ERR_CHANNEL_BUSY` (another channel holds it) is retried up to
    /// [`BUSY_RETRIES`] times with a growing pause, within the deadline.
    pub fn transact(&mut self, command: u8, payload: &[u8], op: &Op) -> Result<Vec<u8>, HidError> {
        let mut reinitialized = false;
        let mut busy = 0u32;
        loop {
            match self.transact_once(command, payload, op) {
                Err(HidError::Device(HidErrorCode::InvalidChannel)) if !reinitialized => {
                    reinitialized = true;
                    self.info = Self::init_channel(&mut self.transport, op.deadline)?;
                }
                Err(HidError::Device(HidErrorCode::ChannelBusy)) if busy < BUSY_RETRIES => {
                    busy += 1;
                    let until = Instant::now() + BUSY_PAUSE * busy;
                    if until >= op.deadline {
                        return Err(HidError::Device(HidErrorCode::ChannelBusy));
                    }
                    while Instant::now() < until {
                        if op.is_cancelled() {
                            return Err(HidError::Cancelled);
                        }
                        std::thread::sleep(POLL_SLICE.min(until.saturating_duration_since(Instant::now())));
                    }
                }
                other => return other,
            }
        }
    }

    fn transact_once(&mut self, command: u8, payload: &[u8], op: &Op) -> Result<Vec<u8>, HidError> {
        let reports = fragment(self.info.cid, command, payload).ok_or(HidError::RequestTooLong(payload.len()))?;
        if op.is_cancelled() {
            return Err(HidError::Cancelled);
        }
        for r in &reports {
            self.transport.send_report(r)?;
        }
        match self.receive(command, op) {
            Err(HidError::Cancelled) => {
                self.abort(command);
                Err(HidError::Cancelled)
            }
            Err(HidError::Timeout) => {
                self.abort(command);
                Err(HidError::Timeout)
            }
            other => other,
        }
    }

    /// After a cancel or timeout: tell the device and give it a moment to
    /// acknowledge, reading (and dropping) its answer to the abandoned request,
    /// so the next request does not take that answer for its own.
    fn abort(&mut self, command: u8) {
        if command != cmd::CBOR {
            return;
        }
        if self.send_cancel().is_err() {
            return;
        }
        let until = Instant::now() + CANCEL_GRACE;
        // Bounded by the clock too: a device that never stops sending
        // (endless keepalives) must not keep the host here.
        while Instant::now() < until
            && let Ok(Some(r)) = self.transport.recv_report(until)
        {
            if let Packet::Init { cid, cmd, .. } = Packet::parse(&r)
                && cid == self.info.cid
                && cmd != cmd::KEEPALIVE
            {
                break;
            }
        }
    }

    fn recv_sliced(&mut self, op: &Op) -> Result<Report, HidError> {
        loop {
            if op.is_cancelled() {
                return Err(HidError::Cancelled);
            }
            let now = Instant::now();
            if now >= op.deadline {
                return Err(HidError::Timeout);
            }
            let slice = op.deadline.min(now + POLL_SLICE);
            if let Some(r) = self.transport.recv_report(slice)? {
                return Ok(r);
            }
        }
    }

    fn receive(&mut self, command: u8, op: &Op) -> Result<Vec<u8>, HidError> {
        let cid = self.info.cid;
        // The initialization packet of the response, skipping keepalives and
        // anything on other channels.
        let (len, mut msg) = loop {
            let r = self.recv_sliced(op)?;
            match Packet::parse(&r) {
                Packet::Init { cid: c, .. } | Packet::Cont { cid: c, .. } if c != cid => continue,
                Packet::Cont { .. } => continue,
                Packet::Init { cmd: cmd::KEEPALIVE, len, data, .. } => {
                    if len >= 1 {
                        op.report(match data[0] {
                            1 => Progress::Processing,
                            2 => Progress::WaitingForTouch,
                            s => Progress::OtherStatus(s),
                        });
                    }
                    continue;
                }
                Packet::Init { cmd: cmd::ERROR, len, data, .. } => {
                    if len < 1 {
                        return Err(HidError::InvalidLength(len));
                    }
                    return Err(HidError::Device(HidErrorCode::from_byte(data[0])));
                }
                Packet::Init { cmd: got, len, data, .. } => {
                    if got != command {
                        return Err(HidError::UnexpectedCommand { expected: command, got });
                    }
                    if len > MAX_MESSAGE_LEN {
                        return Err(HidError::InvalidLength(len));
                    }
                    let mut msg = Vec::with_capacity(len);
                    msg.extend_from_slice(&data[..len.min(INIT_DATA_LEN)]);
                    break (len, msg);
                }
            }
        };
        let mut seq = 0u8;
        while msg.len() < len {
            let r = self.recv_sliced(op)?;
            match Packet::parse(&r) {
                Packet::Init { cid: c, .. } | Packet::Cont { cid: c, .. } if c != cid => continue,
                Packet::Init { cmd: got, .. } => return Err(HidError::UnexpectedCommand { expected: command, got }),
                Packet::Cont { seq: got, data, .. } => {
                    if got != seq {
                        return Err(HidError::InvalidSequence { expected: seq, got });
                    }
                    let n = (len - msg.len()).min(CONT_DATA_LEN);
                    msg.extend_from_slice(&data[..n]);
                    seq = seq.wrapping_add(1);
                }
            }
        }
        Ok(msg)
    }
}

/// The kind of request a [`Handler`] is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A CTAP2 request (CTAPHID_CBOR): command byte and CBOR.
    Cbor,
    /// A U2F APDU (CTAPHID_MSG).
    Msg,
}

/// A handler's answer: finished, or still working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The response payload.
    Done(Vec<u8>),
    /// Still working; KEEPALIVEs with this status are sent meanwhile.
    Pending(KeepaliveStatus),
}

/// The authenticator behind a [`DeviceChannel`]: receives complete requests.
pub trait Handler {
    /// Start processing a request.
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome;
    /// Continue a request that returned [`Outcome::Pending`]; called at every
    /// keepalive tick (at least every [`DeviceConfig::keepalive_interval`]).
    fn poll(&mut self, now: Instant) -> Outcome {
        let _ = now;
        Outcome::Done(vec![0x7f])
    }
    /// The pending request was cancelled (CANCEL, or INIT on its channel).
    /// The channel answers a cancelled CBOR request itself.
    fn cancel(&mut self) {}
    /// WINK: show yourself.
    fn wink(&mut self) {}
    /// Whether U2F (MSG) is implemented.
    fn supports_msg(&self) -> bool {
        true
    }
    /// Whether CTAP2 (CBOR) is implemented.
    fn supports_cbor(&self) -> bool {
        true
    }
}

/// A handler shared with other owners (e.g. to take it back after a device
/// channel is done with it).
impl<H: Handler> Handler for std::sync::Arc<std::sync::Mutex<H>> {
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome {
        match self.lock() {
            Ok(mut h) => h.start(kind, request, now),
            Err(_) => Outcome::Done(vec![0x7f]),
        }
    }
    fn poll(&mut self, now: Instant) -> Outcome {
        match self.lock() {
            Ok(mut h) => h.poll(now),
            Err(_) => Outcome::Done(vec![0x7f]),
        }
    }
    fn cancel(&mut self) {
        if let Ok(mut h) = self.lock() {
            h.cancel();
        }
    }
    fn wink(&mut self) {
        if let Ok(mut h) = self.lock() {
            h.wink();
        }
    }
    fn supports_msg(&self) -> bool {
        self.lock().map(|h| h.supports_msg()).unwrap_or(false)
    }
    fn supports_cbor(&self) -> bool {
        self.lock().map(|h| h.supports_cbor()).unwrap_or(false)
    }
}

/// Device-side settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// A message whose packets do not all arrive within this time is dropped
    /// with ERR_MSG_TIMEOUT.
    pub message_timeout: Duration,
    /// KEEPALIVE period while a request is pending (under 100 ms).
    pub keepalive_interval: Duration,
    /// Device version reported by INIT.
    pub device_version: (u8, u8, u8),
    /// How many channels are remembered; the oldest is forgotten beyond this.
    pub max_channels: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            message_timeout: Duration::from_millis(500),
            keepalive_interval: Duration::from_millis(75),
            device_version: (0, 1, 0),
            max_channels: 64,
        }
    }
}

#[derive(Debug)]
enum State {
    Idle,
    Receiving { cid: u32, cmd: u8, len: usize, buf: Vec<u8>, seq: u8, deadline: Instant },
    Processing { cid: u32, cmd: u8, status: KeepaliveStatus, next_keepalive: Instant },
}

/// The device side of CTAPHID: a sans-I/O state machine over reports.
///
/// ```
/// use hwkey::transport::ctaphid::*;
/// use std::time::Instant;
/// struct Echo;
/// impl Handler for Echo {
///     fn start(&mut self, _: MessageKind, req: &[u8], _: Instant) -> Outcome {
///         Outcome::Done(req.to_vec())
///     }
/// }
/// let mut dev = DeviceChannel::new(DeviceConfig::default());
/// let init = fragment(BROADCAST_CID, cmd::INIT, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
/// dev.receive(&init[0], Instant::now(), &mut Echo);
/// let resp = dev.poll_output().unwrap();
/// assert_eq!(&resp[7..15], &[1, 2, 3, 4, 5, 6, 7, 8]);
/// ```
#[derive(Debug)]
pub struct DeviceChannel {
    config: DeviceConfig,
    state: State,
    channels: VecDeque<u32>,
    next_cid: u32,
    lock: Option<(u32, Instant)>,
    out: VecDeque<Report>,
    capabilities: Option<u8>,
}

impl DeviceChannel {
    /// A device with no channels allocated.
    pub fn new(config: DeviceConfig) -> Self {
        let mut seed = [0u8; 4];
        let _ = getrandom::getrandom(&mut seed);
        // Start somewhere random so a restarted device does not reissue the
        // channel ids of its previous life to stale hosts.
        let next_cid = (u32::from_be_bytes(seed) & 0x00ff_ffff) | 1;
        DeviceChannel {
            config,
            state: State::Idle,
            channels: VecDeque::new(),
            next_cid,
            lock: None,
            out: VecDeque::new(),
            capabilities: None,
        }
    }

    /// The next report to send to the host, if any.
    pub fn poll_output(&mut self) -> Option<Report> {
        self.out.pop_front()
    }

    /// When [`DeviceChannel::poll`] must next be called (a keepalive, a
    /// message timeout, a lock expiry), if anything is scheduled.
    pub fn next_deadline(&self) -> Option<Instant> {
        let s = match &self.state {
            State::Idle => None,
            State::Receiving { deadline, .. } => Some(*deadline),
            State::Processing { next_keepalive, .. } => Some(*next_keepalive),
        };
        match (s, self.lock.map(|(_, t)| t)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a request is being processed by the handler.
    pub fn is_processing(&self) -> bool {
        matches!(self.state, State::Processing { .. })
    }

    fn send(&mut self, cid: u32, command: u8, payload: &[u8]) {
        if let Some(rs) = fragment(cid, command, payload) {
            self.out.extend(rs);
        } else {
            self.send_error(cid, HidErrorCode::Other);
        }
    }

    fn send_error(&mut self, cid: u32, code: HidErrorCode) {
        if let Some(rs) = fragment(cid, cmd::ERROR, &[code.byte()]) {
            self.out.extend(rs);
        }
    }

    fn allocated(&self, cid: u32) -> bool {
        self.channels.contains(&cid)
    }

    fn allocate(&mut self) -> u32 {
        loop {
            let c = self.next_cid;
            self.next_cid = self.next_cid.wrapping_add(1);
            if c != 0 && c != BROADCAST_CID && !self.allocated(c) {
                self.channels.push_back(c);
                while self.channels.len() > self.config.max_channels.max(1) {
                    self.channels.pop_front();
                }
                return c;
            }
        }
    }

    fn capabilities<H: Handler + ?Sized>(&mut self, handler: &H) -> u8 {
        *self.capabilities.get_or_insert_with(|| {
            let mut c = capability::WINK;
            if handler.supports_cbor() {
                c |= capability::CBOR;
            }
            if !handler.supports_msg() {
                c |= capability::NMSG;
            }
            c
        })
    }

    /// Drive timers: message timeouts, lock expiry, keepalives, and the
    /// pending handler. Call at [`DeviceChannel::next_deadline`] (or more often).
    pub fn poll<H: Handler + ?Sized>(&mut self, now: Instant, handler: &mut H) {
        if let Some((_, until)) = self.lock
            && now >= until
        {
            self.lock = None;
        }
        match &mut self.state {
            State::Receiving { cid, deadline, .. } if now >= *deadline => {
                let cid = *cid;
                self.state = State::Idle;
                self.send_error(cid, HidErrorCode::MsgTimeout);
            }
            State::Processing { cid, cmd, .. } => {
                let (cid, command) = (*cid, *cmd);
                match handler.poll(now) {
                    Outcome::Done(resp) => {
                        self.state = State::Idle;
                        self.send(cid, command, &resp);
                    }
                    Outcome::Pending(s) => {
                        if let State::Processing { status, next_keepalive, .. } = &mut self.state {
                            *status = s;
                            if now >= *next_keepalive {
                                *next_keepalive = now + self.config.keepalive_interval;
                                self.send(cid, cmd::KEEPALIVE, &[s.byte()]);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Take one report from the host.
    pub fn receive<H: Handler + ?Sized>(&mut self, report: &Report, now: Instant, handler: &mut H) {
        self.poll(now, handler);
        match Packet::parse(report) {
            Packet::Init { cid, cmd: command, len, data } => self.receive_init(cid, command, len, data, now, handler),
            Packet::Cont { cid, seq, data } => {
                let State::Receiving { cid: c, seq: expected, .. } = &self.state else {
                    return; // spurious continuation packets are ignored
                };
                if *c != cid {
                    return;
                }
                if seq != *expected {
                    self.state = State::Idle;
                    self.send_error(cid, HidErrorCode::InvalidSeq);
                    return;
                }
                let complete = if let State::Receiving { len, buf, seq, .. } = &mut self.state {
                    let n = (*len - buf.len()).min(CONT_DATA_LEN);
                    buf.extend_from_slice(&data[..n]);
                    *seq = seq.wrapping_add(1);
                    buf.len() == *len
                } else {
                    false
                };
                if complete
                    && let State::Receiving { cid, cmd, buf, .. } = std::mem::replace(&mut self.state, State::Idle)
                {
                    self.dispatch(cid, cmd, &buf, now, handler);
                }
            }
        }
    }

    fn receive_init<H: Handler + ?Sized>(
        &mut self,
        cid: u32,
        command: u8,
        len: usize,
        data: &[u8],
        now: Instant,
        handler: &mut H,
    ) {
        if cid == 0 {
            self.send_error(cid, HidErrorCode::InvalidChannel);
            return;
        }
        if command == cmd::INIT {
            self.init(cid, len, data, handler);
            return;
        }
        if cid == BROADCAST_CID || !self.allocated(cid) {
            self.send_error(cid, HidErrorCode::InvalidChannel);
            return;
        }
        match &self.state {
            State::Processing { cid: c, cmd: pending, .. } => {
                let (c, pending) = (*c, *pending);
                if command == cmd::CANCEL {
                    if c == cid {
                        handler.cancel();
                        self.state = State::Idle;
                        if pending == cmd::CBOR {
                            self.send(cid, cmd::CBOR, &[CTAP2_ERR_KEEPALIVE_CANCEL]);
                        }
                    }
                    return;
                }
                self.send_error(cid, HidErrorCode::ChannelBusy);
                return;
            }
            State::Receiving { cid: c, .. } => {
                let c = *c;
                if command == cmd::CANCEL {
                    return;
                }
                if c != cid {
                    self.send_error(cid, HidErrorCode::ChannelBusy);
                } else {
                    self.state = State::Idle;
                    self.send_error(cid, HidErrorCode::InvalidSeq);
                }
                return;
            }
            State::Idle => {}
        }
        if let Some((owner, _)) = self.lock
            && owner != cid
        {
            if command != cmd::CANCEL {
                self.send_error(cid, HidErrorCode::ChannelBusy);
            }
            return;
        }
        if command == cmd::CANCEL {
            return; // nothing outstanding
        }
        if len > MAX_MESSAGE_LEN {
            self.send_error(cid, HidErrorCode::InvalidLen);
            return;
        }
        let first = len.min(INIT_DATA_LEN);
        if len == first {
            let payload = data[..first].to_vec();
            self.dispatch(cid, command, &payload, now, handler);
        } else {
            let mut buf = Vec::with_capacity(len);
            buf.extend_from_slice(&data[..first]);
            self.state =
                State::Receiving { cid, cmd: command, len, buf, seq: 0, deadline: now + self.config.message_timeout };
        }
    }

    fn init<H: Handler + ?Sized>(&mut self, cid: u32, len: usize, data: &[u8], handler: &mut H) {
        if len != 8 {
            self.send_error(cid, HidErrorCode::InvalidLen);
            return;
        }
        let new_cid = if cid == BROADCAST_CID {
            self.allocate()
        } else {
            if !self.allocated(cid) {
                self.send_error(cid, HidErrorCode::InvalidChannel);
                return;
            }
            // Resynchronize: abandon whatever this channel had going.
            match &self.state {
                State::Receiving { cid: c, .. } if *c == cid => self.state = State::Idle,
                State::Processing { cid: c, .. } if *c == cid => {
                    handler.cancel();
                    self.state = State::Idle;
                }
                _ => {}
            }
            cid
        };
        let mut resp = [0u8; 17];
        resp[..8].copy_from_slice(&data[..8]);
        resp[8..12].copy_from_slice(&new_cid.to_be_bytes());
        resp[12] = PROTOCOL_VERSION;
        let (a, b, c) = self.config.device_version;
        resp[13] = a;
        resp[14] = b;
        resp[15] = c;
        resp[16] = self.capabilities(handler);
        self.send(cid, cmd::INIT, &resp);
    }

    fn dispatch<H: Handler + ?Sized>(&mut self, cid: u32, command: u8, payload: &[u8], now: Instant, handler: &mut H) {
        match command {
            cmd::PING => self.send(cid, cmd::PING, payload),
            cmd::WINK => {
                if !payload.is_empty() {
                    self.send_error(cid, HidErrorCode::InvalidLen);
                } else {
                    handler.wink();
                    self.send(cid, cmd::WINK, &[]);
                }
            }
            cmd::LOCK => {
                if payload.len() != 1 {
                    self.send_error(cid, HidErrorCode::InvalidLen);
                } else if payload[0] > 10 {
                    self.send_error(cid, HidErrorCode::InvalidPar);
                } else {
                    self.lock = (payload[0] > 0).then(|| (cid, now + Duration::from_secs(payload[0] as u64)));
                    self.send(cid, cmd::LOCK, &[]);
                }
            }
            cmd::CBOR | cmd::MSG => {
                let kind = if command == cmd::CBOR { MessageKind::Cbor } else { MessageKind::Msg };
                if (kind == MessageKind::Msg && !handler.supports_msg())
                    || (kind == MessageKind::Cbor && !handler.supports_cbor())
                {
                    self.send_error(cid, HidErrorCode::InvalidCmd);
                    return;
                }
                if payload.is_empty() {
                    self.send_error(cid, HidErrorCode::InvalidLen);
                    return;
                }
                match handler.start(kind, payload, now) {
                    Outcome::Done(resp) => self.send(cid, command, &resp),
                    Outcome::Pending(status) => {
                        self.send(cid, cmd::KEEPALIVE, &[status.byte()]);
                        self.state = State::Processing {
                            cid,
                            cmd: command,
                            status,
                            next_keepalive: now + self.config.keepalive_interval,
                        };
                    }
                }
            }
            _ => self.send_error(cid, HidErrorCode::InvalidCmd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_limits() {
        assert_eq!(MAX_MESSAGE_LEN, 7609);
        assert_eq!(fragment(1, cmd::PING, &[0; 7609]).unwrap().len(), 129);
        assert!(fragment(1, cmd::PING, &[0; 7610]).is_none());
        assert_eq!(fragment(1, cmd::PING, &[]).unwrap().len(), 1);
        assert_eq!(fragment(1, cmd::PING, &[0; 57]).unwrap().len(), 1);
        assert_eq!(fragment(1, cmd::PING, &[0; 58]).unwrap().len(), 2);
    }

    #[test]
    fn packet_parse_roundtrip() {
        let rs = fragment(0xdead_beef, cmd::CBOR, &[9; 70]).unwrap();
        assert_eq!(
            Packet::parse(&rs[0]),
            Packet::Init { cid: 0xdead_beef, cmd: cmd::CBOR, len: 70, data: &rs[0][7..] }
        );
        assert!(matches!(Packet::parse(&rs[1]), Packet::Cont { seq: 0, .. }));
    }
}

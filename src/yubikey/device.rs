//! Reaching the OTP interface: feature-report transports and the command loop.
//!
//! [`FeatureReportTransport`] is all a device has to offer: set and get one
//! 8-byte feature report. Implementations: [`HidTransport`] (hidapi, feature
//! `hid`), [`UdpTransport`] (the software YubiKey over UDP, CONTRACTS "YubiKey
//! OTP HID over UDP") and [`crate::yubikey::VirtualYubikey`] in-process.
//!
//! [`OtpConnection`] runs commands over a transport as ykcore does: wait for
//! the write flag to clear before each piece, then poll for the response,
//! reporting [`Progress::TouchNeeded`] while the key waits for a touch.
//! Everything read is untrusted: sequence numbers, CRCs and lengths are
//! checked, and a device that answers garbage yields an error, not a panic.

use super::YubikeyError;
use super::frame::{
    FEATURE_RPT_SIZE, Frame, PIECE_SIZE, RESET_REPORT, RESP_PENDING_FLAG, RESP_TIMEOUT_WAIT_FLAG, SEQUENCE_MASK,
    SLOT_WRITE_FLAG, check_response,
};
use super::status::Status;
use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// One 8-byte feature report.
pub type Report = [u8; FEATURE_RPT_SIZE];

/// A device that exchanges 8-byte HID feature reports.
pub trait FeatureReportTransport {
    /// Send (set) a feature report.
    fn set_feature(&mut self, report: &Report) -> Result<(), YubikeyError>;
    /// Read (get) a feature report.
    fn get_feature(&mut self) -> Result<Report, YubikeyError>;
}

impl<T: FeatureReportTransport + ?Sized> FeatureReportTransport for Box<T> {
    fn set_feature(&mut self, report: &Report) -> Result<(), YubikeyError> {
        (**self).set_feature(report)
    }
    fn get_feature(&mut self) -> Result<Report, YubikeyError> {
        (**self).get_feature()
    }
}

/// Feature reports over UDP: `0x01` + 8 bytes sets a report; `0x02` gets one
/// and the reply datagram is the 8 bytes.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    peer: String,
}

impl UdpTransport {
    /// Connect to `host:port` with a reply timeout of 2 seconds.
    pub fn connect(addr: &str) -> Result<UdpTransport, YubikeyError> {
        Self::connect_with_timeout(addr, Duration::from_secs(2))
    }

    /// Connect to `host:port`; a get that gets no reply within `timeout` fails.
    pub fn connect_with_timeout(addr: &str, timeout: Duration) -> Result<UdpTransport, YubikeyError> {
        let target = addr
            .to_socket_addrs()
            .map_err(|e| YubikeyError::BadDeviceSpec(format!("udp:{addr} ({e})")))?
            .next()
            .ok_or_else(|| YubikeyError::BadDeviceSpec(format!("udp:{addr}")))?;
        let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = UdpSocket::bind(bind).map_err(|e| YubikeyError::Io(e.to_string()))?;
        socket.connect(target).map_err(|e| YubikeyError::Io(e.to_string()))?;
        socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| YubikeyError::Io(e.to_string()))?;
        Ok(UdpTransport { socket, peer: target.to_string() })
    }
}

impl FeatureReportTransport for UdpTransport {
    fn set_feature(&mut self, report: &Report) -> Result<(), YubikeyError> {
        let mut dgram = [0u8; 9];
        dgram[0] = 0x01;
        dgram[1..].copy_from_slice(report);
        self.socket.send(&dgram).map_err(|e| YubikeyError::Io(e.to_string()))?;
        Ok(())
    }

    fn get_feature(&mut self) -> Result<Report, YubikeyError> {
        self.socket.send(&[0x02]).map_err(|e| YubikeyError::Io(e.to_string()))?;
        let mut buf = [0u8; 64];
        let n = match self.socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(YubikeyError::NotAnswering(format!("udp:{}", self.peer)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(YubikeyError::NotAnswering(format!("udp:{} (connection refused)", self.peer)));
            }
            Err(e) => return Err(YubikeyError::Io(e.to_string())),
        };
        if n != FEATURE_RPT_SIZE {
            return Err(YubikeyError::Garbage(format!("a {n}-byte datagram instead of an 8-byte feature report")));
        }
        let mut r = [0u8; FEATURE_RPT_SIZE];
        r.copy_from_slice(&buf[..FEATURE_RPT_SIZE]);
        Ok(r)
    }
}

/// The OTP interface of a YubiKey through hidapi feature reports.
#[cfg(feature = "hid")]
pub struct HidTransport {
    device: hidapi::HidDevice,
    path: String,
}

/// Why opening `path` failed, as the OS says it (hidapi's message does not
/// say): a permission error names the node and the udev rules.
#[cfg(feature = "hid")]
fn open_error(path: &str, e: hidapi::HidError) -> YubikeyError {
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => YubikeyError::PermissionDenied(path.to_owned()),
        Err(io) => YubikeyError::Io(format!("{path}: {io}")),
        Ok(_) => YubikeyError::Io(format!("{path}: {e}")),
    }
}

#[cfg(feature = "hid")]
impl std::fmt::Debug for HidTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidTransport").field("path", &self.path).finish()
    }
}

/// Yubico's USB vendor id.
pub const YUBICO_VID: u16 = 0x1050;

#[cfg(feature = "hid")]
impl HidTransport {
    /// Open the single connected YubiKey OTP interface (the keyboard
    /// interface: usage page 1, usage 6, or interface 0 when the backend
    /// reports no usages).
    pub fn open_default() -> Result<HidTransport, YubikeyError> {
        let api = hidapi::HidApi::new().map_err(|e| YubikeyError::Io(e.to_string()))?;
        let mut paths: Vec<std::ffi::CString> = Vec::new();
        for d in api.device_list() {
            if d.vendor_id() != YUBICO_VID {
                continue;
            }
            let keyboard = (d.usage_page() == 1 && d.usage() == 6)
                || (d.usage_page() == 0 && d.usage() == 0 && d.interface_number() == 0);
            if keyboard && !paths.iter().any(|p| p.as_c_str() == d.path()) {
                paths.push(d.path().to_owned());
            }
        }
        match paths.len() {
            0 => Err(YubikeyError::NoDevice),
            1 => {
                let path = paths[0].to_string_lossy().into_owned();
                let device = api.open_path(&paths[0]).map_err(|e| open_error(&path, e))?;
                Ok(HidTransport { device, path })
            }
            n => Err(YubikeyError::MultipleDevices(n)),
        }
    }

    /// Open a hidraw path.
    pub fn open_path(path: &str) -> Result<HidTransport, YubikeyError> {
        let api = hidapi::HidApi::new().map_err(|e| YubikeyError::Io(e.to_string()))?;
        let c = std::ffi::CString::new(path).map_err(|_| YubikeyError::BadDeviceSpec(format!("hid:{path}")))?;
        let device = api.open_path(&c).map_err(|e| open_error(path, e))?;
        Ok(HidTransport { device, path: path.to_owned() })
    }

    fn io_error(&self, e: hidapi::HidError) -> YubikeyError {
        match crate::transport::hid::io_error(e, std::path::Path::new(&self.path).exists()) {
            crate::transport::TransportError::Disconnected => YubikeyError::Disconnected,
            e => YubikeyError::Io(e.to_string()),
        }
    }
}

#[cfg(feature = "hid")]
impl FeatureReportTransport for HidTransport {
    fn set_feature(&mut self, report: &Report) -> Result<(), YubikeyError> {
        let mut buf = [0u8; FEATURE_RPT_SIZE + 1];
        buf[1..].copy_from_slice(report);
        self.device.send_feature_report(&buf).map_err(|e| self.io_error(e))
    }

    fn get_feature(&mut self) -> Result<Report, YubikeyError> {
        // Zeroized: a report may carry part of an HMAC response.
        let mut buf = zeroize::Zeroizing::new([0u8; FEATURE_RPT_SIZE + 1]);
        let n = self.device.get_feature_report(&mut buf[..]).map_err(|e| self.io_error(e))?;
        if n < FEATURE_RPT_SIZE + 1 {
            return Err(YubikeyError::Garbage(format!("a {n}-byte feature report")));
        }
        let mut r = [0u8; FEATURE_RPT_SIZE];
        r.copy_from_slice(&buf[1..]);
        Ok(r)
    }
}

/// Open a device from a `--device` specification: `udp:HOST:PORT`,
/// `hid:PATH`, or `None` for the one connected YubiKey.
pub fn open_device(spec: Option<&str>) -> Result<Box<dyn FeatureReportTransport>, YubikeyError> {
    match spec {
        Some(s) if s.starts_with("udp:") => Ok(Box::new(UdpTransport::connect(&s[4..])?)),
        #[cfg(feature = "hid")]
        Some(s) if s.starts_with("hid:") => Ok(Box::new(HidTransport::open_path(&s[4..])?)),
        #[cfg(feature = "hid")]
        None => Ok(Box::new(HidTransport::open_default()?)),
        #[cfg(not(feature = "hid"))]
        None => Err(YubikeyError::NoDevice),
        Some(s) => Err(YubikeyError::BadDeviceSpec(s.chars().take(100).collect())),
    }
}

/// What a command is waiting for, reported to a progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The key waits for a touch; `seconds_left` as the key reports it.
    TouchNeeded {
        /// Seconds until the key gives up.
        seconds_left: u8,
    },
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Response data (pieces concatenated, CRC not yet checked); it may be
    /// an HMAC response, so it is zeroized on drop.
    Data(zeroize::Zeroizing<Vec<u8>>),
    /// A status report with an advanced programming sequence (a configuration
    /// command was taken).
    Status(Status),
}

/// A command channel to a YubiKey OTP interface over any transport.
#[derive(Debug)]
pub struct OtpConnection<T: FeatureReportTransport> {
    transport: T,
    poll_interval: Duration,
    timeout: Duration,
}

impl<T: FeatureReportTransport> OtpConnection<T> {
    /// A connection with a 20-second command timeout (a YubiKey waits 15
    /// seconds for a touch).
    pub fn new(transport: T) -> OtpConnection<T> {
        OtpConnection { transport, poll_interval: Duration::from_millis(20), timeout: Duration::from_secs(20) }
    }

    /// Set the command timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> OtpConnection<T> {
        self.timeout = timeout;
        self
    }

    /// The transport.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Read the status report, first resetting a read left pending.
    pub fn status(&mut self) -> Result<Status, YubikeyError> {
        let mut r = self.transport.get_feature()?;
        if r[PIECE_SIZE] & (RESP_PENDING_FLAG | SLOT_WRITE_FLAG) != 0 {
            self.transport.set_feature(&RESET_REPORT)?;
            r = self.wait_idle()?;
        }
        Ok(Status::from_report(&r))
    }

    /// Poll until the write flag and pending flag are clear; returns that report.
    fn wait_idle(&mut self) -> Result<Report, YubikeyError> {
        let deadline = Instant::now() + Duration::from_secs(2).min(self.timeout);
        loop {
            let r = self.transport.get_feature()?;
            if r[PIECE_SIZE] & (SLOT_WRITE_FLAG | RESP_PENDING_FLAG) == 0 {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(YubikeyError::Timeout);
            }
            std::thread::sleep(self.poll_interval);
        }
    }

    /// Write one frame: each piece after the device cleared the write flag.
    fn write_frame(&mut self, frame: &Frame) -> Result<(), YubikeyError> {
        let mut reports = frame.write_reports();
        let result = self.write_reports(&reports);
        for r in reports.iter_mut() {
            zeroize::Zeroize::zeroize(r); // pieces may carry a key or access code
        }
        result
    }

    fn write_reports(&mut self, reports: &[Report]) -> Result<(), YubikeyError> {
        for report in reports {
            let deadline = Instant::now() + Duration::from_secs(2).min(self.timeout);
            loop {
                let r = self.transport.get_feature()?;
                if r[PIECE_SIZE] & SLOT_WRITE_FLAG == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(YubikeyError::Timeout);
                }
                std::thread::sleep(self.poll_interval);
            }
            self.transport.set_feature(report)?;
        }
        Ok(())
    }

    /// Send a command frame (`slot`, `data` up to 64 bytes) and wait for its
    /// outcome: response data, or a status report whose programming sequence
    /// advanced. A status report without that is [`YubikeyError::NoResponse`]
    /// (or [`YubikeyError::TouchTimeout`] after a touch wait).
    pub fn transact(
        &mut self,
        slot: u8,
        data: &[u8],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Reply, YubikeyError> {
        let frame = Frame::new(slot, data)?;
        let before = self.status()?;
        self.write_frame(&frame)?;
        let deadline = Instant::now() + self.timeout;
        // Allocated once at its largest (no reallocation leaves copies
        // behind) and zeroized on drop: it may carry an HMAC response.
        let mut response = zeroize::Zeroizing::new(Vec::with_capacity(32 * PIECE_SIZE));
        let mut seq: u8 = 0;
        let mut touch_reported: Option<u8> = None;
        loop {
            let r = zeroize::Zeroizing::new(self.transport.get_feature()?);
            let st = r[PIECE_SIZE];
            if st & RESP_PENDING_FLAG != 0 {
                let got = st & SEQUENCE_MASK;
                if got == seq && response.len() < 32 * PIECE_SIZE {
                    response.extend_from_slice(&r[..PIECE_SIZE]);
                    seq = seq.wrapping_add(1) & SEQUENCE_MASK;
                    if Instant::now() < deadline {
                        continue; // more pieces are ready: no need to wait
                    }
                } else if got == 0 && !response.is_empty() {
                    self.transport.set_feature(&RESET_REPORT)?;
                    return Ok(Reply::Data(response));
                } else {
                    let _ = self.transport.set_feature(&RESET_REPORT);
                    return Err(YubikeyError::Sequence);
                }
            } else if st == 0 {
                if !response.is_empty() {
                    return Err(YubikeyError::Garbage("the response ended before it was complete".into()));
                }
                let now = Status::from_report(&r);
                let advanced = now.prog_seq == before.prog_seq.wrapping_add(1)
                    || (now.prog_seq == 0
                        && before.prog_seq != 0
                        && !now.slot_programmed(1)
                        && !now.slot_programmed(2));
                if advanced {
                    return Ok(Reply::Status(now));
                }
                if touch_reported.is_some() {
                    return Err(YubikeyError::TouchTimeout);
                }
                return Err(YubikeyError::NoResponse(match slot {
                    0x30 | 0x20 | 0x01 => 1,
                    0x38 | 0x28 | 0x03 => 2,
                    _ => 0,
                }));
            } else if st & RESP_TIMEOUT_WAIT_FLAG != 0 && st & SLOT_WRITE_FLAG == 0 {
                let left = st & SEQUENCE_MASK;
                if touch_reported != Some(left) {
                    progress(Progress::TouchNeeded { seconds_left: left });
                    touch_reported = Some(left);
                }
            }
            if Instant::now() >= deadline {
                let _ = self.transport.set_feature(&RESET_REPORT);
                return Err(if touch_reported.is_some() { YubikeyError::TouchTimeout } else { YubikeyError::Timeout });
            }
            std::thread::sleep(if touch_reported.is_some() { Duration::from_millis(100) } else { self.poll_interval });
        }
    }

    /// Send a command and check a data response of `expected_len` bytes.
    pub fn transact_data(
        &mut self,
        slot: u8,
        data: &[u8],
        expected_len: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, YubikeyError> {
        match self.transact(slot, data, progress)? {
            Reply::Data(d) => Ok(zeroize::Zeroizing::new(check_response(&d, expected_len)?.to_vec())),
            Reply::Status(_) => Err(YubikeyError::Garbage("a status report where data was expected".into())),
        }
    }
}

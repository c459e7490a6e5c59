//! Transports: CTAPHID framing ([`ctaphid`]) and the ways 64-byte reports
//! travel between a host and an authenticator: in memory ([`memory`]), over
//! UDP ([`udp`], the framing of CONTRACTS §3) and through USB HID ([`hid`],
//! feature `hid`); the software devices also become kernel HID devices
//! through `/dev/uhid` (`uhid`, feature `uhid`, Linux).
//!
//! The host side talks to any [`ReportTransport`]; the device side is a
//! sans-I/O state machine ([`ctaphid::DeviceChannel`]) that the in-memory and
//! UDP servers drive.

#[cfg(feature = "virtual")]
mod authenticator;
pub mod ctaphid;
#[cfg(feature = "hid")]
pub mod hid;
pub mod memory;
pub mod udp;
#[cfg(all(feature = "uhid", target_os = "linux"))]
pub mod uhid;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The length of every CTAPHID report (full-speed USB HID, no report id).
pub const REPORT_LEN: usize = 64;

/// One CTAPHID report.
pub type Report = [u8; REPORT_LEN];

/// Why a transport could not move a report.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An operating-system I/O error.
    #[error("I/O error on {what}: {source}")]
    Io {
        /// What was being accessed (device path or address).
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The device node exists but the user may not open it.
    #[error(
        "permission denied opening {path}: install the udev rules from udev/70-hwkey.rules (see udev/README.md), then replug the key"
    )]
    PermissionDenied {
        /// The device node, e.g. `/dev/hidraw3`.
        path: String,
    },
    /// The device went away (unplugged, or the other end of a channel closed).
    #[error("device disconnected")]
    Disconnected,
    /// The HID library reported an error.
    #[error("HID error: {0}")]
    Hid(String),
}

impl TransportError {
    /// A stable snake_case identifier of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::Io { .. } => "io_error",
            TransportError::PermissionDenied { .. } => "permission_denied",
            TransportError::Disconnected => "disconnected",
            TransportError::Hid(_) => "hid_error",
        }
    }
}

/// A channel of 64-byte reports to one device (host side).
pub trait ReportTransport: Send {
    /// Send one report.
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError>;
    /// Receive one report, waiting at most until `deadline`; `Ok(None)` when
    /// the deadline passed first.
    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError>;
    /// A human-readable description of where the device is (`udp:…`, a hidraw path).
    fn describe(&self) -> String {
        String::from("unknown")
    }
}

impl<T: ReportTransport + ?Sized> ReportTransport for Box<T> {
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError> {
        (**self).send_report(report)
    }
    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError> {
        (**self).recv_report(deadline)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// A shared flag that aborts a blocking operation. Clone it, hand one copy to
/// the operation and call [`CancelToken::cancel`] on another (from any thread).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Request cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a blocking operation is doing, reported through [`Op`]'s callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The authenticator is working (KEEPALIVE status 1).
    Processing,
    /// The authenticator waits for the user to touch it (KEEPALIVE status 2).
    WaitingForTouch,
    /// A KEEPALIVE with a status this implementation does not know.
    OtherStatus(u8),
}

/// A progress callback shared between threads.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The context of one blocking operation: its deadline, a cancel handle and
/// an optional progress callback.
///
/// ```
/// use hwkey::transport::{CancelToken, Op};
/// use std::time::Duration;
/// let cancel = CancelToken::new();
/// let op = Op::timeout(Duration::from_secs(30)).with_cancel(cancel.clone()).on_progress(|p| eprintln!("{p:?}"));
/// assert!(!op.is_cancelled());
/// ```
#[derive(Clone)]
pub struct Op {
    /// When the operation gives up with a timeout error.
    pub deadline: Instant,
    /// Cancels the operation when triggered.
    pub cancel: CancelToken,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op").field("deadline", &self.deadline).field("cancel", &self.cancel).finish_non_exhaustive()
    }
}

impl Op {
    /// An operation that must end by `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Op { deadline, cancel: CancelToken::new(), progress: None }
    }
    /// An operation that must end within `timeout` from now.
    pub fn timeout(timeout: Duration) -> Self {
        Self::until(Instant::now() + timeout)
    }
    /// Use `cancel` as the cancel handle.
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }
    /// Report progress through `f`.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
    /// Report progress through a shared callback.
    pub fn with_progress(mut self, f: Option<ProgressFn>) -> Self {
        self.progress = f;
        self
    }
    /// The progress callback, if any.
    pub fn progress_fn(&self) -> Option<&ProgressFn> {
        self.progress.as_ref()
    }
    /// Report `p` to the callback.
    pub fn report(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(p);
        }
    }
    /// Whether the cancel handle was triggered.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
    /// The same operation with a deadline no later than `deadline`.
    pub fn bounded(&self, deadline: Instant) -> Self {
        let mut o = self.clone();
        o.deadline = o.deadline.min(deadline);
        o
    }
}

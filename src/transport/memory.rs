//! In-memory CTAPHID.
//!
//! - [`MemoryDevice`]: a [`DeviceChannel`] and its [`Handler`] run on a
//!   thread, and any number of host ends exchange 64-byte reports with it
//!   through channels. Like a real HID device, every report the device sends
//!   reaches every connected host end; each host filters by channel id.
//! - [`Loopback`]: the device runs inline, inside the host's calls, with no
//!   thread at all (for benchmarks and for setting up a device before serving it).

use super::ctaphid::{DeviceChannel, DeviceConfig, Handler};
use super::{Report, ReportTransport, TransportError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counts reports in both directions (for measurements).
#[derive(Debug, Default)]
pub struct ReportCounter {
    /// Reports the hosts sent.
    pub to_device: AtomicU64,
    /// Reports the device sent (counted once per report, not per host).
    pub to_host: AtomicU64,
}

impl ReportCounter {
    /// (to device, to host).
    pub fn get(&self) -> (u64, u64) {
        (self.to_device.load(Ordering::Relaxed), self.to_host.load(Ordering::Relaxed))
    }
    /// Reset both counts to zero.
    pub fn reset(&self) {
        self.to_device.store(0, Ordering::Relaxed);
        self.to_host.store(0, Ordering::Relaxed);
    }
}

/// The host end of an in-memory device.
#[derive(Debug)]
pub struct MemoryTransport {
    to_device: Sender<Report>,
    from_device: Receiver<Report>,
    counter: Arc<ReportCounter>,
}

impl ReportTransport for MemoryTransport {
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError> {
        self.counter.to_device.fetch_add(1, Ordering::Relaxed);
        self.to_device.send(*report).map_err(|_| TransportError::Disconnected)
    }

    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.from_device.recv_timeout(wait) {
            Ok(r) => Ok(Some(r)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(TransportError::Disconnected),
        }
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// A software device running on its own thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct MemoryDevice {
    to_device: Sender<Report>,
    hosts: Arc<Mutex<Vec<Sender<Report>>>>,
    counter: Arc<ReportCounter>,
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl MemoryDevice {
    /// Start `handler` behind a CTAPHID device channel on a new thread.
    pub fn spawn<H: Handler + Send + 'static>(handler: H, config: DeviceConfig) -> Self {
        let (to_device, rx) = mpsc::channel::<Report>();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let hosts: Arc<Mutex<Vec<Sender<Report>>>> = Arc::default();
        let counter: Arc<ReportCounter> = Arc::default();
        let (h2, c2) = (hosts.clone(), counter.clone());
        let thread = std::thread::Builder::new()
            .name("hwkey-memory-device".into())
            .spawn(move || run(handler, config, rx, stop_rx, h2, c2))
            .ok();
        MemoryDevice { to_device, hosts, counter, stop, thread }
    }

    /// A new host end.
    pub fn connect(&self) -> MemoryTransport {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut h) = self.hosts.lock() {
            h.push(tx);
        }
        MemoryTransport { to_device: self.to_device.clone(), from_device: rx, counter: self.counter.clone() }
    }

    /// The report counter shared by all host ends.
    pub fn counter(&self) -> Arc<ReportCounter> {
        self.counter.clone()
    }
}

impl Drop for MemoryDevice {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        // Wake the thread if it is blocked waiting for a report.
        let _ = self.to_device.send([0u8; 64]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run<H: Handler>(
    mut handler: H,
    config: DeviceConfig,
    rx: Receiver<Report>,
    stop: Receiver<()>,
    hosts: Arc<Mutex<Vec<Sender<Report>>>>,
    counter: Arc<ReportCounter>,
) {
    let mut dev = DeviceChannel::new(config);
    loop {
        if stop.try_recv().is_ok() {
            return;
        }
        let now = Instant::now();
        let wait = dev.next_deadline().map_or(Duration::from_millis(200), |d| d.saturating_duration_since(now));
        match rx.recv_timeout(wait) {
            Ok(r) => {
                if stop.try_recv().is_ok() {
                    return;
                }
                dev.receive(&r, Instant::now(), &mut handler)
            }
            Err(RecvTimeoutError::Timeout) => dev.poll(Instant::now(), &mut handler),
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let mut hosts = match hosts.lock() {
            Ok(h) => h,
            Err(_) => return,
        };
        while let Some(out) = dev.poll_output() {
            counter.to_host.fetch_add(1, Ordering::Relaxed);
            hosts.retain(|h| h.send(out).is_ok());
        }
    }
}

/// A host transport that runs the device inline: each report sent is fed to
/// the device channel at once, and receiving drives the device's timers.
#[derive(Debug)]
pub struct Loopback<H> {
    device: DeviceChannel,
    handler: H,
    counter: Arc<ReportCounter>,
}

impl<H: Handler + Send> Loopback<H> {
    /// Put `handler` behind a device channel.
    pub fn new(handler: H, config: DeviceConfig) -> Self {
        Loopback { device: DeviceChannel::new(config), handler, counter: Arc::default() }
    }
    /// The report counter.
    pub fn counter(&self) -> Arc<ReportCounter> {
        self.counter.clone()
    }
    /// The handler.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }
    /// Take the handler back.
    pub fn into_handler(self) -> H {
        self.handler
    }
}

impl<H: Handler + Send> ReportTransport for Loopback<H> {
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError> {
        self.counter.to_device.fetch_add(1, Ordering::Relaxed);
        self.device.receive(report, Instant::now(), &mut self.handler);
        Ok(())
    }

    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError> {
        loop {
            if let Some(r) = self.device.poll_output() {
                self.counter.to_host.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(r));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let Some(next) = self.device.next_deadline() else {
                // Nothing scheduled: nothing will come before the host sends.
                std::thread::sleep(deadline - now);
                return Ok(None);
            };
            if next > now {
                std::thread::sleep((next.min(deadline)) - now);
            }
            self.device.poll(Instant::now(), &mut self.handler);
        }
    }

    fn describe(&self) -> String {
        "loopback".into()
    }
}

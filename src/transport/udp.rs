//! CTAPHID over UDP (CONTRACTS §3): each datagram carries exactly one
//! 64-byte report, with no report-id byte; the device answers to the address
//! a request came from. This is the framing of SoloKeys' firmware simulator.
//!
//! [`UdpTransport`] is the host end; [`UdpServer`] serves a [`Handler`]
//! behind a [`DeviceChannel`].

use super::ctaphid::{BROADCAST_CID, DeviceChannel, DeviceConfig, Handler};
use super::{CancelToken, REPORT_LEN, Report, ReportTransport, TransportError};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TransportError {
    let what = what.into();
    move |source| TransportError::Io { what, source }
}

/// The host end: a UDP socket connected to one device address.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl UdpTransport {
    /// Connect to a device at `addr` (`host:port`).
    pub fn connect(addr: &str) -> Result<Self, TransportError> {
        let peer = addr.to_socket_addrs().map_err(io_err(format!("udp:{addr}")))?.next().ok_or_else(|| {
            TransportError::Io {
                what: format!("udp:{addr}"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "address did not resolve"),
            }
        })?;
        let local: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| {
            TransportError::Io { what: "local address".into(), source: std::io::ErrorKind::InvalidInput.into() }
        })?;
        let socket = UdpSocket::bind(local).map_err(io_err("local UDP socket"))?;
        socket.connect(peer).map_err(io_err(format!("udp:{peer}")))?;
        Ok(UdpTransport { socket, peer })
    }

    /// The device's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl ReportTransport for UdpTransport {
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError> {
        self.socket.send(report).map_err(io_err(format!("udp:{}", self.peer)))?;
        Ok(())
    }

    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError> {
        let mut buf = [0u8; REPORT_LEN + 1];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(wait)).map_err(io_err("UDP socket"))?;
            match self.socket.recv(&mut buf) {
                Ok(REPORT_LEN) => {
                    let mut r = [0u8; REPORT_LEN];
                    r.copy_from_slice(&buf[..REPORT_LEN]);
                    return Ok(Some(r));
                }
                Ok(_) => continue, // not a report: ignore
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(TransportError::Io { what: format!("udp:{}", self.peer), source: e });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TransportError::Io { what: format!("udp:{}", self.peer), source: e }),
            }
        }
    }

    fn describe(&self) -> String {
        format!("udp:{}", self.peer)
    }
}

/// A software device reached over UDP.
#[derive(Debug)]
pub struct UdpServer {
    socket: UdpSocket,
    config: DeviceConfig,
}

impl UdpServer {
    /// Bind to `addr` (port 0 picks a free port).
    pub fn bind(addr: &str) -> Result<Self, TransportError> {
        let socket = UdpSocket::bind(addr).map_err(io_err(format!("udp:{addr}")))?;
        Ok(UdpServer { socket, config: DeviceConfig::default() })
    }

    /// Use `config` for the device channel.
    pub fn with_config(mut self, config: DeviceConfig) -> Self {
        self.config = config;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        self.socket.local_addr().map_err(io_err("UDP socket"))
    }

    /// Serve until `stop` is cancelled (checked at least every 100 ms).
    pub fn serve<H: Handler>(self, handler: &mut H, stop: &CancelToken) -> Result<(), TransportError> {
        let mut dev = DeviceChannel::new(self.config);
        let mut peers: HashMap<u32, SocketAddr> = HashMap::new();
        let mut buf = [0u8; REPORT_LEN + 1];
        while !stop.is_cancelled() {
            let now = Instant::now();
            let wait = dev
                .next_deadline()
                .map_or(Duration::from_millis(100), |d| d.saturating_duration_since(now))
                .clamp(Duration::from_millis(1), Duration::from_millis(100));
            self.socket.set_read_timeout(Some(wait)).map_err(io_err("UDP socket"))?;
            let mut sender = None;
            match self.socket.recv_from(&mut buf) {
                Ok((REPORT_LEN, from)) => {
                    let mut r = [0u8; REPORT_LEN];
                    r.copy_from_slice(&buf[..REPORT_LEN]);
                    let cid = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
                    if cid != BROADCAST_CID {
                        if peers.len() > 1024 && !peers.contains_key(&cid) {
                            peers.clear();
                        }
                        peers.insert(cid, from);
                    }
                    sender = Some(from);
                    dev.receive(&r, Instant::now(), handler);
                }
                Ok(_) => {} // not a report: ignore
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    dev.poll(Instant::now(), handler)
                }
                Err(e) => return Err(TransportError::Io { what: "UDP socket".into(), source: e }),
            }
            while let Some(out) = dev.poll_output() {
                let cid = u32::from_be_bytes([out[0], out[1], out[2], out[3]]);
                let to = if cid == BROADCAST_CID || cid == 0 { sender } else { peers.get(&cid).copied().or(sender) };
                if let Some(to) = to {
                    let _ = self.socket.send_to(&out, to);
                }
            }
        }
        Ok(())
    }
}

//! Helpers of the fault and load suite (`tests/limits_*.rs`): the demo
//! server as a child process on 127.0.0.1, raw HTTP/1.1 over TCP, RSS, the
//! open-file limit.
//!
//! The server binary is `HWKEY_RP_SERVER` when set (to run the suite
//! against another build, e.g. the code before a change), else the
//! `rp_server` example of this build, built on first use.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The origin the suite's servers allow (the one `tests/common` signs for).
pub const ORIGIN: &str = "http://localhost:8080";

/// The `rp_server` binary under test.
pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("HWKEY_RP_SERVER") {
            return PathBuf::from(p);
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "rp_server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --example rp_server");
        assert!(status.success(), "cargo build --example rp_server failed");
        // target/<profile>/deps/<this test> -> target/<profile>/examples/rp_server
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        profile_dir.join("examples").join("rp_server")
    })
    .clone()
}

/// A running demo server; killed (SIGKILL) when dropped.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr, collected by a thread.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Start the server on 127.0.0.1 with `database` and extra flags; wait
    /// (at most 60 s) for its `listening on` line.
    pub fn start(database: &str, extra: &[&str]) -> Server {
        let mut cmd = Command::new(server_bin());
        cmd.args(["--bind", "127.0.0.1:0", "--rp-id", "localhost", "--origin", ORIGIN, "--database", database])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start rp_server");
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if s.len() < 1 << 20 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not start: {}",
                    stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
                );
            }
        };
        Server { child, addr, stderr }
    }

    /// The server's resident set size in bytes (Linux `/proc`).
    pub fn rss(&self) -> u64 {
        rss_of(self.child.id())
    }

    /// Send a signal (`kill -s NAME`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// Wait for the process to exit, at most `limit`; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Raise this process's soft open-file limit to its hard limit (with
/// util-linux's `prlimit` on our own pid: no `unsafe` here); the soft limit after.
pub fn raise_fd_limit() -> u64 {
    let me = std::process::id().to_string();
    let hard = Command::new("prlimit")
        .args(["--pid", &me, "--nofile", "--output=HARD", "--noheadings"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(h) = hard {
        let _ = Command::new("prlimit").args(["--pid", &me, &format!("--nofile={h}:{h}")]).status();
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.trim_start_matches("Max open files").split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One response read from a keep-alive connection.
#[derive(Debug)]
pub struct RawReply {
    /// Status code.
    pub status: u16,
    /// Header lines, lowercased names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawReply {
    /// The body as JSON (Null when not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connect to `addr`.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::new() })
    }

    /// Send one request and read its response (`None`: the server closed
    /// the connection or broke the framing).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<RawReply> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).await.ok()?;
        self.read_reply().await
    }

    /// Read one response.
    pub async fn read_reply(&mut self) -> Option<RawReply> {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize =
            headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let body_start = head_end + 4;
        while self.buf.len() < body_start + len {
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = self.buf[body_start..body_start + len].to_vec();
        self.buf.drain(..body_start + len);
        Some(RawReply { status, headers, body })
    }

    /// Wait until the server closes the connection (read returns 0 or an
    /// error), at most `limit`; true when it did.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {} // e.g. a 408 before closing
            }
        }
    }
}

/// One POST with a JSON body on a fresh connection.
pub async fn post_json(addr: SocketAddr, path: &str, body: &[u8]) -> Option<RawReply> {
    let mut c = Conn::connect(addr).await.ok()?;
    c.request("POST", path, &[("Content-Type", "application/json")], body).await
}

/// The `p`-th percentile (0..=100) of `samples`.
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let i = (samples.len() * p / 100).min(samples.len() - 1);
    samples[i]
}

/// Latencies of `n` sequential `POST /api/login/options` on one keep-alive connection.
pub async fn probe_latencies(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    let mut conn = Conn::connect(addr).await.expect("probe connect");
    for _ in 0..n {
        let t = Instant::now();
        let r = match conn.request("POST", "/api/login/options", &[], b"{}").await {
            Some(r) => r,
            None => {
                conn = Conn::connect(addr).await.expect("probe reconnect");
                conn.request("POST", "/api/login/options", &[], b"{}").await.expect("probe reply")
            }
        };
        assert_eq!(r.status, 200, "probe: {}", String::from_utf8_lossy(&r.body));
        out.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

//! Memory under a flood of pending ceremonies (CONTRACTS §2.2): sends N
//! `POST /api/login/options` (discoverable sign-in: each leaves a pending
//! ceremony) at concurrency C to a running `rp_server`, and prints the
//! server's resident set size before, at its peak and after, from /proc.
//!
//! ```text
//! cargo run --release --example rp_server -- --bind 127.0.0.1:8080 --database sqlite:///tmp/rss.sqlite3 &
//! cargo run --release --example rss_options -- --url http://127.0.0.1:8080 \
//!     --requests 100000 --concurrency 64 --server-pid $(pgrep -n rp_server)
//! ```
//!
//! `.ci/rss-options.sh` does both. The acceptance bound is an RSS growth
//! under 300 MB; the exit status is 1 when it is exceeded or when any
//! request was answered 5xx other than 503 `overloaded`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    requests: u64,
    concurrency: usize,
    pid: u32,
    body: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args { addr: "127.0.0.1:8080".into(), requests: 100_000, concurrency: 64, pid: 0, body: "{}".into() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.addr = v()?.trim_start_matches("http://").trim_end_matches('/').to_owned(),
            "--requests" => a.requests = v()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--concurrency" => a.concurrency = v()?.parse().map_err(|e| format!("--concurrency: {e}"))?,
            "--server-pid" => a.pid = v()?.parse().map_err(|e| format!("--server-pid: {e}"))?,
            "--username" => a.body = serde_json::json!({ "username": v()? }).to_string(),
            _ => {
                return Err("usage: rss_options --url http://HOST:PORT --server-pid PID [--requests N] \
                            [--concurrency C] [--username NAME]"
                    .into());
            }
        }
    }
    if a.pid == 0 {
        return Err("--server-pid is required".into());
    }
    Ok(a)
}

fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// One request on a keep-alive connection; the status.
async fn request(stream: &mut TcpStream, buf: &mut Vec<u8>, req: &[u8]) -> std::io::Result<u16> {
    stream.write_all(req).await?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response");
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(bad());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return Ok(status);
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let idle = rss(args.pid);
    let req = Arc::new(
        format!(
            "POST /api/login/options HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            args.addr,
            args.body.len(),
            args.body
        )
        .into_bytes(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let peak = Arc::new(AtomicU64::new(idle));
    let start = Instant::now();
    let sampler = {
        let peak = peak.clone();
        let pid = args.pid;
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (req, next, statuses, addr, total) =
            (req.clone(), next.clone(), statuses.clone(), args.addr.clone(), args.requests);
        tasks.push(tokio::spawn(async move {
            let mut conn: Option<TcpStream> = None;
            let mut buf = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let status = loop {
                    if conn.is_none() {
                        buf.clear();
                        match TcpStream::connect(&addr).await {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                conn = Some(s);
                            }
                            Err(_) => break 0,
                        }
                    }
                    let Some(s) = conn.as_mut() else { break 0 };
                    match request(s, &mut buf, &req).await {
                        Ok(st) => break st,
                        Err(_) => conn = None, // closed (idle timeout): reconnect
                    }
                };
                *statuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(status).or_default() += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sampler.abort();
    let after = rss(args.pid);
    let peak = peak.load(Ordering::Relaxed).max(after);
    let statuses = statuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "{} requests at concurrency {} in {:.1} s ({:.0}/s); statuses {statuses:?}",
        args.requests,
        args.concurrency,
        took.as_secs_f64(),
        args.requests as f64 / took.as_secs_f64()
    );
    println!(
        "server RSS: idle {:.1} MiB, peak {:.1} MiB, after {:.1} MiB; growth {:.1} MiB (bound 300 MB)",
        mib(idle),
        mib(peak),
        mib(after),
        mib(peak.saturating_sub(idle))
    );
    let bad = statuses.keys().any(|s| *s == 0 || (*s >= 500 && *s != 503));
    if peak.saturating_sub(idle) >= 300_000_000 || bad { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

//! Load generator for the demo relying party: N concurrent virtual users,
//! each with its own software P-256 credential, doing whole sign-in
//! ceremonies over HTTP (options, sign, verify) against a running
//! `rp_server`, for a fixed time. Prints sign-ins per second and p50/p99
//! latency of a whole ceremony, and, given `--server-pid`, the server's CPU
//! time per sign-in (from /proc).
//!
//! ```text
//! cargo run --release --example rp_server -- --bind 127.0.0.1:8080 --database sqlite:///tmp/load.sqlite3 &
//! cargo run --release --example load_rp -- --url http://127.0.0.1:8080 --concurrency 32 --seconds 10 \
//!     --server-pid $(pgrep -n rp_server)
//! ```
//!
//! The HTTP client is a minimal HTTP/1.1 keep-alive client on tokio (one
//! connection per virtual user), so the generator itself stays cheap.

use hwkey::crypto::default_provider;
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
use hwkey::proto::cbor::MapBuilder;
use hwkey::proto::cose::{CoseAlgorithm, CoseKey};
use hwkey::proto::webauthn::{CollectedClientData, b64url_decode, b64url_encode};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
struct Args {
    host: String,
    port: u16,
    origin: String,
    rp_id: String,
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    server_pid: Option<u32>,
}

fn usage() -> &'static str {
    "usage: load_rp [--url http://HOST:PORT] [--origin URL] [--rp-id ID] [--concurrency N] [--seconds S] \
     [--warmup S] [--server-pid PID]"
}

fn parse_args() -> Result<Args, String> {
    let mut url = "http://127.0.0.1:8080".to_owned();
    let mut args = Args {
        host: String::new(),
        port: 0,
        origin: "http://localhost:8080".into(),
        rp_id: "localhost".into(),
        concurrency: 32,
        seconds: 10.0,
        warmup: 1.0,
        server_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{}", usage()));
        match flag.as_str() {
            "--url" => url = value()?,
            "--origin" => args.origin = value()?,
            "--rp-id" => args.rp_id = value()?,
            "--concurrency" => args.concurrency = value()?.parse().map_err(|e| format!("--concurrency: {e}"))?,
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--server-pid" => args.server_pid = Some(value()?.parse().map_err(|e| format!("--server-pid: {e}"))?),
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown flag {other}\n{}", usage())),
        }
    }
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = hostport.rsplit_once(':').ok_or("the URL needs a port")?;
    args.host = host.to_owned();
    args.port = port.parse().map_err(|e| format!("port: {e}"))?;
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    Ok(args)
}

// ------------------------------------------------------------ HTTP/1.1 keep-alive client

struct Conn {
    io: BufReader<TcpStream>,
    host: String,
    cookies: Vec<(String, String)>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(host: &str, port: u16) -> Result<Self, BoxError> {
        let s = TcpStream::connect((host, port)).await?;
        s.set_nodelay(true)?;
        Ok(Conn { io: BufReader::new(s), host: format!("{host}:{port}"), cookies: Vec::new(), buf: Vec::new() })
    }

    async fn post(&mut self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), BoxError> {
        self.buf.clear();
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            self.host,
            body.len(),
            if cookie.is_empty() { String::new() } else { format!("Cookie: {cookie}\r\n") }
        );
        self.buf.extend_from_slice(head.as_bytes());
        self.buf.extend_from_slice(body);
        self.io.get_mut().write_all(&self.buf).await?;

        let mut line = String::new();
        self.io.read_line(&mut line).await?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
        let mut len = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.io.read_line(&mut line).await? == 0 {
                return Err("connection closed".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else { continue };
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                len = Some(v.parse::<usize>()?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k.eq_ignore_ascii_case("set-cookie") {
                let first = v.split(';').next().unwrap_or("");
                if let Some((name, val)) = first.split_once('=') {
                    self.cookies.retain(|(n, _)| n != name);
                    if !val.is_empty() && !v.contains("Max-Age=0") {
                        self.cookies.push((name.to_owned(), val.to_owned()));
                    }
                }
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.io.read_line(&mut line).await?;
                let n = usize::from_str_radix(line.trim(), 16)?;
                let mut chunk = vec![0; n + 2];
                self.io.read_exact(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        } else {
            out.resize(len.unwrap_or(0), 0);
            self.io.read_exact(&mut out).await?;
        }
        Ok((status, out))
    }

    async fn post_json(&mut self, path: &str, body: &Value) -> Result<Value, BoxError> {
        let (status, bytes) = self.post(path, &serde_json::to_vec(body)?).await?;
        let v: Value = serde_json::from_slice(&bytes)?;
        if status != 200 {
            return Err(format!("{path}: {status} {v}").into());
        }
        Ok(v)
    }
}

// ------------------------------------------------------------ software credential

struct Credential {
    scalar: Vec<u8>,
    cose: Vec<u8>,
    id: Vec<u8>,
    counter: u32,
    rp_id_hash: [u8; 32],
}

impl Credential {
    fn new(rp_id: &str) -> Result<Self, BoxError> {
        let p = default_provider();
        let scalar = p.p256_generate()?.to_vec();
        let point = p.p256_public(&scalar)?;
        let cose = CoseKey::p256_from_sec1(&point, CoseAlgorithm::ES256)?.to_bytes();
        Ok(Credential { scalar, cose, id: p.random_bytes(16)?, counter: 0, rp_id_hash: p.sha256(&[rp_id.as_bytes()]) })
    }

    fn client_data(typ: &str, options: &Value, origin: &str) -> Result<Vec<u8>, BoxError> {
        let challenge = options["challenge"].as_str().ok_or("options without a challenge")?;
        Ok(CollectedClientData {
            type_: typ.into(),
            challenge: challenge.into(),
            origin: origin.into(),
            cross_origin: Some(false),
            top_origin: None,
        }
        .to_json_bytes())
    }

    fn register(&self, options: &Value, origin: &str) -> Result<Value, BoxError> {
        let cdj = Self::client_data("webauthn.create", options, origin)?;
        let ad = AuthenticatorData {
            rp_id_hash: self.rp_id_hash,
            flags: Flags(Flags::UP | Flags::UV),
            sign_count: 0,
            attested_credential: Some(AttestedCredentialData {
                aaguid: [0; 16],
                credential_id: self.id.clone(),
                public_key: CoseKey::from_bytes(&self.cose)?,
                public_key_bytes: self.cose.clone(),
            }),
            extensions: None,
        };
        let raw = ad.to_bytes();
        let att = AttestationObject {
            fmt: "none".into(),
            att_stmt: MapBuilder::new().build(),
            auth_data: ad,
            auth_data_raw: raw,
        };
        let id = b64url_encode(&self.id);
        Ok(json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(&cdj),
                "attestationObject": b64url_encode(&att.to_bytes()),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        }))
    }

    fn assert(&mut self, options: &Value, origin: &str) -> Result<Value, BoxError> {
        self.counter += 1;
        let cdj = Self::client_data("webauthn.get", options, origin)?;
        let mut ad = Vec::with_capacity(37 + 32);
        ad.extend_from_slice(&self.rp_id_hash);
        ad.push(Flags::UP | Flags::UV);
        ad.extend_from_slice(&self.counter.to_be_bytes());
        let p = default_provider();
        let hash = p.sha256(&[&cdj]);
        let mut msg = ad.clone();
        msg.extend_from_slice(&hash);
        let sig = p.p256_sign(&self.scalar, &msg)?;
        let id = b64url_encode(&self.id);
        Ok(json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(&cdj),
                "authenticatorData": b64url_encode(&ad),
                "signature": b64url_encode(&sig),
            },
            "clientExtensionResults": {},
        }))
    }
}

// ------------------------------------------------------------ virtual users

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

async fn virtual_user(
    args: Arc<Args>,
    n: usize,
    run: String,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<Tally, BoxError> {
    let mut conn = Conn::open(&args.host, args.port).await?;
    let mut cred = Credential::new(&args.rp_id)?;
    let username = format!("load-{run}-{n}");
    let o = conn.post_json("/api/register/options", &json!({ "username": username })).await?;
    if b64url_decode(o["user"]["id"].as_str().unwrap_or("")).map(|h| h.len()).unwrap_or(0) == 0 {
        return Err("registration options without a user handle".into());
    }
    conn.post_json("/api/register/verify", &cred.register(&o, &args.origin)?).await?;
    let login = serde_json::to_vec(&json!({ "username": username }))?;
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let result: Result<(), BoxError> = async {
            let (status, body) = conn.post("/api/login/options", &login).await?;
            let o: Value = serde_json::from_slice(&body)?;
            if status != 200 {
                return Err(format!("options: {status} {o}").into());
            }
            let resp = serde_json::to_vec(&cred.assert(&o, &args.origin)?)?;
            let (status, body) = conn.post("/api/login/verify", &resp).await?;
            if status != 200 {
                return Err(format!("verify: {status} {}", String::from_utf8_lossy(&body)).into());
            }
            Ok(())
        }
        .await;
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if measuring.load(Ordering::Relaxed) {
            match result {
                Ok(()) => tally.latencies_us.push(us),
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        } else if let Err(e) = result {
            tally.errors += 1;
            tally.first_error.get_or_insert_with(|| e.to_string());
        }
    }
    Ok(tally)
}

/// utime + stime of a process, in seconds (Linux /proc).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn run(args: Args) -> Result<(), BoxError> {
    let args = Arc::new(args);
    let run_id = b64url_encode(&default_provider().random_bytes(6)?);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|n| tokio::spawn(virtual_user(args.clone(), n, run_id.clone(), measuring.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let server_pid = args.server_pid.map(|p| p.to_string());
    let server_cpu0 = server_pid.as_deref().and_then(cpu_seconds);
    let self_cpu0 = cpu_seconds("self");
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let server_cpu1 = server_pid.as_deref().and_then(cpu_seconds);
    let self_cpu1 = cpu_seconds("self");
    stop.store(true, Ordering::Relaxed);

    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let tally = t.await??;
        all.extend(tally.latencies_us);
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    all.sort_unstable();
    let n = all.len();
    let rate = n as f64 / elapsed;
    println!("concurrency {}  duration {:.1} s  sign-ins {}  errors {}", args.concurrency, elapsed, n, errors);
    println!("sign-ins/s {:.0}", rate);
    println!(
        "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(&all, 0.5),
        pct(&all, 0.9),
        pct(&all, 0.99),
        pct(&all, 1.0)
    );
    if let (Some(a), Some(b)) = (server_cpu0, server_cpu1) {
        if n > 0 {
            println!(
                "server CPU {:.2} s = {:.0} µs per sign-in ({:.2} cores)",
                b - a,
                (b - a) / n as f64 * 1e6,
                (b - a) / elapsed
            );
        }
    }
    if let (Some(a), Some(b)) = (self_cpu0, self_cpu1) {
        if n > 0 {
            println!("load generator CPU {:.0} µs per sign-in", (b - a) / n as f64 * 1e6);
        }
    }
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

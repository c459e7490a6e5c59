//! Load generator for the demo relying party: N concurrent virtual users,
//! each with its own software authenticator, doing whole sign-in ceremonies
//! over HTTP (options, sign, verify) against a running `rp_server`, for a
//! fixed time. Prints sign-ins per second and p50/p99
//! latency of a whole ceremony, and, given `--server-pid`, the server's CPU
//! time per sign-in (from /proc).
//!
//! ```text
//! cargo run --release --example rp_server -- --bind 127.0.0.1:8080 --database sqlite:///tmp/load.sqlite3 &
//! cargo run --release --example load_rp -- --url http://127.0.0.1:8080 --concurrency 32 --seconds 10 \
//!     --server-pid $(pgrep -n rp_server)
//! ```
//!
//! Each virtual user registers once, then signs in over and over by
//! username. It signs as a desktop program does: hwkey's WebAuthn client
//! turns the server's JSON options into CTAP2 commands for hwkey's software
//! CTAP2.1 authenticator (in process, over CTAPHID framing) and its answer
//! into the JSON response. `--raw-key` swaps that for a bare P-256 key that
//! builds the response directly, to load the server with the cheapest
//! possible client.
//!
//! `--password` makes each sign-in a password sign-in: the user sets a
//! password once, then every sign-in is `POST /api/login/password` (one
//! Argon2id verification on the server's capped pool) followed by the key
//! (options, verify). Answers 503 `overloaded` (every password worker busy)
//! are counted apart and not as errors; the rate of completed sign-ins is
//! then the rate of Argon2 verifications the cap allows:
//!
//! ```text
//! cargo run --release --example load_rp -- --url http://127.0.0.1:8080 --concurrency 32 --seconds 10 --password
//! ```
//!
//! The HTTP client is a minimal HTTP/1.1 keep-alive client on tokio (one
//! connection per virtual user), so the generator itself stays cheap.

use hwkey::authenticator::Authenticator;
use hwkey::client::Device;
use hwkey::client::webauthn::{FixedPin, WebAuthnClient};
use hwkey::crypto::default_provider;
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
use hwkey::proto::cbor::MapBuilder;
use hwkey::proto::cose::{CoseAlgorithm, CoseKey};
use hwkey::proto::webauthn::{CollectedClientData, CreationOptionsJson, RequestOptionsJson, b64url_encode};
use hwkey::transport::Op;
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::Loopback;
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
    raw_key: bool,
    password: bool,
}

fn usage() -> &'static str {
    "usage: load_rp [--url http://HOST:PORT] [--origin URL] [--rp-id ID] [--concurrency N] [--seconds S] \
     [--warmup S] [--server-pid PID] [--raw-key] [--password]"
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
        raw_key: false,
        password: false,
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
            "--raw-key" => args.raw_key = true,
            "--password" => args.password = true,
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
}

// ------------------------------------------------------------ signers

/// What answers the server's options for one virtual user.
enum Signer {
    /// hwkey's software CTAP2.1 authenticator, reached through the desktop
    /// WebAuthn client over in-process CTAPHID framing: JSON options in,
    /// JSON response out, as a desktop program with a security key does.
    Authenticator(Box<Device>),
    /// A bare P-256 key that builds responses directly (`--raw-key`): the
    /// cheapest possible client, to load the server alone.
    Raw(RawCredential),
}

impl Signer {
    fn new(raw: bool, rp_id: &str) -> Result<Self, BoxError> {
        if raw {
            return Ok(Signer::Raw(RawCredential::new(rp_id)?));
        }
        let authenticator = Authenticator::in_memory()?;
        let dev = Device::open(Loopback::new(authenticator, DeviceConfig::default()), &op())?;
        Ok(Signer::Authenticator(Box::new(dev)))
    }

    fn register(&mut self, options: &[u8], origin: &str) -> Result<Vec<u8>, BoxError> {
        match self {
            Signer::Authenticator(dev) => {
                let options: CreationOptionsJson = serde_json::from_slice(options)?;
                let ui = FixedPin::default();
                let response = WebAuthnClient::new(&ui).register(dev, &options, origin, &op())?;
                Ok(serde_json::to_vec(&response)?)
            }
            Signer::Raw(c) => c.register(&serde_json::from_slice(options)?, origin),
        }
    }

    fn assert(&mut self, options: &[u8], origin: &str) -> Result<Vec<u8>, BoxError> {
        match self {
            Signer::Authenticator(dev) => {
                let options: RequestOptionsJson = serde_json::from_slice(options)?;
                let ui = FixedPin::default();
                let response = WebAuthnClient::new(&ui).authenticate(dev, &options, origin, &op())?;
                Ok(serde_json::to_vec(&response)?)
            }
            Signer::Raw(c) => c.assert(&serde_json::from_slice(options)?, origin),
        }
    }
}

fn op() -> Op {
    Op::timeout(Duration::from_secs(10))
}

/// A software P-256 credential with no authenticator around it.
struct RawCredential {
    scalar: Vec<u8>,
    cose: Vec<u8>,
    id: Vec<u8>,
    counter: u32,
    rp_id_hash: [u8; 32],
}

impl RawCredential {
    fn new(rp_id: &str) -> Result<Self, BoxError> {
        let p = default_provider();
        let scalar = p.p256_generate()?.to_vec();
        let point = p.p256_public(&scalar)?;
        let cose = CoseKey::p256_from_sec1(&point, CoseAlgorithm::ES256)?.to_bytes();
        Ok(RawCredential {
            scalar,
            cose,
            id: p.random_bytes(16)?,
            counter: 0,
            rp_id_hash: p.sha256(&[rp_id.as_bytes()]),
        })
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

    fn register(&self, options: &Value, origin: &str) -> Result<Vec<u8>, BoxError> {
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
        Ok(serde_json::to_vec(&json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(&cdj),
                "attestationObject": b64url_encode(&att.to_bytes()),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        }))?)
    }

    fn assert(&mut self, options: &Value, origin: &str) -> Result<Vec<u8>, BoxError> {
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
        Ok(serde_json::to_vec(&json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(&cdj),
                "authenticatorData": b64url_encode(&ad),
                "signature": b64url_encode(&sig),
            },
            "clientExtensionResults": {},
        }))?)
    }
}

// ------------------------------------------------------------ virtual users

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    overloaded: u64,
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
    let mut signer = Signer::new(args.raw_key, &args.rp_id)?;
    let username = format!("load-{run}-{n}");
    let (status, o) =
        conn.post("/api/register/options", &serde_json::to_vec(&json!({ "username": username }))?).await?;
    if status != 200 {
        return Err(format!("register options: {status} {}", String::from_utf8_lossy(&o)).into());
    }
    let (status, v) = conn.post("/api/register/verify", &signer.register(&o, &args.origin)?).await?;
    if status != 200 {
        return Err(format!("register verify: {status} {}", String::from_utf8_lossy(&v)).into());
    }
    let login = serde_json::to_vec(&json!({ "username": username }))?;
    let password = format!("load test password {run} {n}");
    let password_login = serde_json::to_vec(&json!({ "username": username, "password": password }))?;
    if args.password {
        let set = serde_json::to_vec(&json!({ "password": password }))?;
        let mut tries = 0;
        loop {
            let (status, body) = conn.post("/api/account/password", &set).await?;
            match status {
                200 => break,
                // Every password worker busy (all users start at once): wait, retry.
                503 if tries < 200 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return Err(format!("set password: {status} {}", String::from_utf8_lossy(&body)).into()),
            }
        }
    }
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let mut overloaded = false;
        let result: Result<(), BoxError> = async {
            if args.password {
                let (status, body) = conn.post("/api/login/password", &password_login).await?;
                if status == 503 {
                    overloaded = true;
                    return Ok(());
                }
                if status != 200 {
                    return Err(format!("password: {status} {}", String::from_utf8_lossy(&body)).into());
                }
            }
            let (status, body) = conn.post("/api/login/options", &login).await?;
            if status != 200 {
                return Err(format!("options: {status} {}", String::from_utf8_lossy(&body)).into());
            }
            let resp = signer.assert(&body, &args.origin)?;
            let (status, body) = conn.post("/api/login/verify", &resp).await?;
            if status != 200 {
                return Err(format!("verify: {status} {}", String::from_utf8_lossy(&body)).into());
            }
            Ok(())
        }
        .await;
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if overloaded {
            if measuring.load(Ordering::Relaxed) {
                tally.overloaded += 1;
            }
            // Retry-After is 1 s; a real client waits, this one backs off briefly.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
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
    let mut overloaded = 0;
    let mut first_error = None;
    for t in tasks {
        let tally = t.await??;
        all.extend(tally.latencies_us);
        errors += tally.errors;
        overloaded += tally.overloaded;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    all.sort_unstable();
    let n = all.len();
    let rate = n as f64 / elapsed;
    println!("concurrency {}  duration {:.1} s  sign-ins {}  errors {}", args.concurrency, elapsed, n, errors);
    println!("sign-ins/s {:.0}", rate);
    if args.password {
        println!(
            "password sign-ins (each one Argon2id verification) {n}, refused 503 overloaded {overloaded} ({:.0}/s)",
            overloaded as f64 / elapsed
        );
    }
    println!(
        "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(&all, 0.5),
        pct(&all, 0.9),
        pct(&all, 0.99),
        pct(&all, 1.0)
    );
    if let (Some(a), Some(b)) = (server_cpu0, server_cpu1)
        && n > 0
    {
        println!(
            "server CPU {:.2} s = {:.0} µs per sign-in ({:.2} cores)",
            b - a,
            (b - a) / n as f64 * 1e6,
            (b - a) / elapsed
        );
    }
    if let (Some(a), Some(b)) = (self_cpu0, self_cpu1)
        && n > 0
    {
        println!("load generator CPU {:.0} µs per sign-in", (b - a) / n as f64 * 1e6);
    }
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
    if errors > 0 || n == 0 {
        return Err(format!("{errors} failed sign-ins, {n} completed").into());
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

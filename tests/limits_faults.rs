//! The fault and load suite (CONTRACTS §2.2) against the `rp_server`
//! process on 127.0.0.1: a flood of 40,000 ceremonies with bloated
//! credential fields, kill -9 in the middle of 32 concurrent registrations,
//! and PostgreSQL stopped and restarted under load.
//!
//! These take a minute or more and start processes of their own, so they
//! run when `HWKEY_FAULTS=1` (`.ci/faults.sh` sets it, from `.ci/run`);
//! without it each says so and returns.
#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;
mod limits_common;

use common::SoftKey;
use limits_common::{Conn, RawReply, Server, post_json};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn enabled(what: &str) -> bool {
    if std::env::var("HWKEY_FAULTS").is_ok_and(|v| v == "1") {
        return true;
    }
    println!("skipped {what}: set HWKEY_FAULTS=1 (as .ci/faults.sh does) to run the fault suite");
    false
}

/// One POST on a fresh connection with the cookies in `jar` (name=value
/// pairs), keeping the ones the reply sets; `None` when the server is gone.
async fn call(addr: SocketAddr, path: &str, jar: &mut Vec<String>, body: &serde_json::Value) -> Option<RawReply> {
    let mut conn = Conn::connect(addr).await.ok()?;
    let cookie = jar.join("; ");
    let mut headers = vec![("Content-Type", "application/json")];
    if !cookie.is_empty() {
        headers.push(("Cookie", cookie.as_str()));
    }
    let r = conn.request("POST", path, &headers, body.to_string().as_bytes()).await?;
    for (k, v) in &r.headers {
        if k == "set-cookie"
            && let Some((pair, _)) = v.split_once(';')
            && let Some((name, value)) = pair.split_once('=')
        {
            jar.retain(|c| !c.starts_with(&format!("{name}=")));
            if !value.is_empty() {
                jar.push(pair.to_owned());
            }
        }
    }
    Some(r)
}

/// Register `username` with `key` against the server at `addr`, with
/// `transports` in the response; the verify reply's status (0: the server
/// went away).
async fn register_remote(addr: SocketAddr, username: &str, key: &mut SoftKey, transports: Option<Vec<String>>) -> u16 {
    let mut jar = Vec::new();
    let Some(opts) = call(addr, "/api/register/options", &mut jar, &json!({ "username": username })).await else {
        return 0;
    };
    if opts.status != 200 {
        return opts.status;
    }
    let mut resp = key.register(&opts.json(), common::ORIGIN);
    if let Some(t) = transports {
        resp["response"]["transports"] = json!(t);
    }
    call(addr, "/api/register/verify", &mut jar, &resp).await.map_or(0, |r| r.status)
}

/// Sign in as `username` with `key`; the verify reply's status (0: the server went away).
async fn sign_in_remote(addr: SocketAddr, username: &str, key: &mut SoftKey) -> u16 {
    let mut jar = Vec::new();
    let Some(opts) = call(addr, "/api/login/options", &mut jar, &json!({ "username": username })).await else {
        return 0;
    };
    if opts.status != 200 {
        return opts.status;
    }
    let resp = key.assert(&opts.json(), common::ORIGIN);
    call(addr, "/api/login/verify", &mut jar, &resp).await.map_or(0, |r| r.status)
}

/// 40,000 pending ceremonies (half of them for a user whose credential
/// came with 2,000 `transports` strings, which every sign-in's options and
/// pending ceremony used to copy): the server's RSS grows by less than
/// 300 MB and nothing is answered 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_40000_ceremonies_stays_bounded() {
    if !enabled("the ceremony flood") {
        return;
    }
    let server = Server::start("sqlite::memory:", &[]);
    let addr = server.addr;
    let mut key = SoftKey::new();
    let transports: Vec<String> = (0..2000).map(|i| format!("bloated-transport-{i:06}")).collect();
    assert_eq!(register_remote(addr, "bloat", &mut key, Some(transports)).await, 200);
    let idle = server.rss();
    const LIMIT: u64 = 300 << 20;
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (next, stop, statuses) = (next.clone(), stop.clone(), statuses.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = limits_common::Conn::connect(addr).await.expect("connect");
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 40_000 {
                    break;
                }
                let body: &[u8] = if i % 2 == 0 { br#"{"username":"bloat"}"# } else { b"{}" };
                let r = match conn.request("POST", "/api/login/options", &[], body).await {
                    Some(r) => r,
                    None => {
                        conn = limits_common::Conn::connect(addr).await.expect("reconnect");
                        conn.request("POST", "/api/login/options", &[], body).await.expect("reply")
                    }
                };
                *statuses.lock().expect("lock").entry(r.status).or_default() += 1;
            }
        }));
    }
    let mut peak = idle;
    let start = Instant::now();
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(server.rss());
        if peak.saturating_sub(idle) > LIMIT {
            // Do not take the machine down with it.
            stop.store(true, Ordering::Relaxed);
        }
        assert!(start.elapsed() < Duration::from_secs(600), "the flood took over 10 minutes");
    }
    for t in tasks {
        t.await.expect("flood task");
    }
    peak = peak.max(server.rss());
    let statuses = statuses.lock().expect("lock").clone();
    println!("idle RSS {} MiB, peak {} MiB; statuses {statuses:?}", idle >> 20, peak >> 20);
    assert!(
        peak.saturating_sub(idle) < LIMIT,
        "RSS grew by {} MiB (limit 300 MiB) after {} requests",
        peak.saturating_sub(idle) >> 20,
        next.load(Ordering::Relaxed)
    );
    assert!(statuses.keys().all(|s| *s == 200 || *s == 503), "statuses {statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) >= 20_000, "statuses {statuses:?}");
}

/// kill -9 while 32 clients register, then restart on the same file:
/// every registration that was answered 200 signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_registrations_loses_no_acknowledged_one() {
    if !enabled("kill -9 during registrations") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hwkey-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = format!("sqlite://{}", dir.join("kill9.sqlite3").display());
    let mut server = Server::start(&db, &[]);
    let addr = server.addr;
    let acknowledged: Arc<std::sync::Mutex<Vec<(String, SoftKey)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let username = format!("k9-{w}-{n}");
                let mut key = SoftKey::new();
                match register_remote(addr, &username, &mut key, None).await {
                    200 => acknowledged.lock().expect("lock").push((username, key)),
                    0 => return, // killed
                    s => panic!("registration answered {s}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some(), "the server survived kill -9");
    for t in tasks {
        t.await.expect("registration task");
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("lock"));
    assert!(acknowledged.len() >= 32, "only {} registrations before the kill", acknowledged.len());
    drop(server);
    let server = Server::start(&db, &[]);
    let mut failed = Vec::new();
    for (username, mut key) in acknowledged.iter().cloned() {
        let status = sign_in_remote(server.addr, &username, &mut key).await;
        if status != 200 {
            failed.push((username, status));
        }
    }
    println!("{} acknowledged registrations before kill -9", acknowledged.len());
    assert!(failed.is_empty(), "acknowledged but lost after kill -9: {failed:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A throw-away PostgreSQL cluster of our own (initdb/pg_ctl from Debian's
/// postgresql package, run as the `postgres` user when we are root), so
/// stopping it disturbs nobody.
struct Cluster {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        cmd.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    }

    fn create() -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("pg_ctl").exists())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("hwkey-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        if is_root() {
            std::process::Command::new("chown").args(["postgres:", &dir.display().to_string()]).status().ok()?;
        }
        let c = Cluster { bin, dir, port };
        let data = c.dir.join("data").display().to_string();
        if !c.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"]) {
            return None;
        }
        c.start().then_some(c)
    }

    fn start(&self) -> bool {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("log").display().to_string();
        let opts = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.display());
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"])
    }

    fn stop(&self) -> bool {
        let data = self.dir.join("data").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}

/// PostgreSQL stopped under load: requests are answered (503 `overloaded`)
/// within 3 s each, none hangs; once it is back, the server answers 200
/// again within 5 s without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_under_load() {
    if !enabled("the PostgreSQL outage") {
        return;
    }
    let cluster = Cluster::create().expect("a throw-away PostgreSQL cluster (Debian's postgresql package)");
    let server = Server::start(&cluster.url(), &[]);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<std::sync::Mutex<Vec<(Instant, u16, Duration)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (stop, log) = (stop.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = format!(r#"{{"username":"pg-{w}-{n}"}}"#);
                let t = Instant::now();
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    post_json(addr, "/api/register/options", body.as_bytes()),
                )
                .await;
                let status = match r {
                    Ok(Some(r)) => r.status,
                    Ok(None) => 0,
                    Err(_) => 999, // hung
                };
                // (when it started, status, how long it took)
                log.lock().expect("lock").push((t, status, t.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = Instant::now();
    assert!(cluster.stop(), "pg_ctl stop");
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(cluster.start(), "pg_ctl start");
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    let log = log.lock().expect("lock").clone();
    let before: Vec<u16> = log.iter().filter(|(at, _, took)| *at + *took < stopping).map(|l| l.1).collect();
    assert!(before.len() > 10 && before.iter().all(|s| *s == 200), "before the outage: {before:?}");
    let during: Vec<_> = log.iter().filter(|(at, _, _)| *at > stopped && *at < restarted).collect();
    assert!(!during.is_empty());
    let statuses: Vec<u16> = during.iter().map(|l| l.1).collect();
    for (_, s, took) in &during {
        assert!(*s == 200 || *s == 503, "during the outage: status {s} (all: {statuses:?})");
        assert!(*took <= Duration::from_secs(3), "a request took {took:?} during the outage");
    }
    let recovered = log
        .iter()
        .filter(|(at, s, _)| *at > restarted && *s == 200)
        .map(|(at, _, _)| *at)
        .min()
        .expect("never answered 200 after the restart");
    let took = recovered - restarted;
    println!("{} requests during the outage; first 200 {took:?} after the restart", during.len());
    assert!(took <= Duration::from_secs(5), "recovered {took:?} after PostgreSQL came back (limit 5 s)");
    let late: Vec<_> = log.iter().filter(|(at, _, _)| *at > recovered + Duration::from_secs(1)).collect();
    assert!(
        !late.is_empty() && late.iter().all(|(_, s, _)| *s == 200),
        "after recovery: {:?}",
        late.iter().map(|l| l.1).collect::<Vec<_>>()
    );
    drop(server);
}

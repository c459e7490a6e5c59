//! The demo relying party (CONTRACTS §2): the WebAuthn HTTP API and the demo
//! page, over SQLite or PostgreSQL.
//!
//! ```text
//! cargo run --release --example rp_server -- --bind 127.0.0.1:8080 \
//!     --rp-id localhost --origin http://localhost:8080 --database sqlite://hwkey-demo.sqlite3
//! ```
//!
//! Every flag can also be given in the environment variable named in its
//! help. Prints `listening on http://ADDR` once it accepts connections, and
//! shuts down gracefully on SIGINT or SIGTERM.

use axum::serve::ListenerExt;
use clap::Parser;
use hwkey::http::{HttpOptions, router_with, spawn_maintenance};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::{DbStore, redact_url};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The hwkey demo relying party.
#[derive(Debug, Parser)]
#[command(name = "rp_server", about = "WebAuthn relying party demo: security keys and passkeys")]
struct Args {
    /// Listen address (port 0 picks a free port).
    #[arg(long, env = "HWKEY_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Relying party ID.
    #[arg(long = "rp-id", env = "HWKEY_RP_ID", default_value = "localhost")]
    rp_id: String,
    /// Relying party name.
    #[arg(long = "rp-name", env = "HWKEY_RP_NAME", default_value = "hwkey demo")]
    rp_name: String,
    /// Allowed origin(s); repeatable, or comma separated.
    #[arg(long, env = "HWKEY_ORIGIN", value_delimiter = ',', default_value = "http://localhost:8080")]
    origin: Vec<String>,
    /// `sqlite://FILE`, `sqlite::memory:`, or `postgres://...`.
    #[arg(long, env = "HWKEY_DATABASE", default_value = "sqlite://hwkey-demo.sqlite3")]
    database: String,
    /// The key file that seals TOTP secrets and the session key (AES-256-GCM;
    /// one 64-hex-digit key a line, the first seals). Default: beside a
    /// SQLite database file (`FILE.secret-key`), or `hwkey-secret-key` in
    /// the working directory; created (mode 0600) when missing.
    #[arg(long = "secret-key-file", env = "HWKEY_SECRET_KEY_FILE")]
    secret_key_file: Option<std::path::PathBuf>,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, env = "HWKEY_THREADS")]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
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

async fn run(args: Args) -> Result<(), String> {
    let origins: Vec<String> =
        args.origin.iter().map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
    let mut config = RpConfig::new(args.rp_id.clone(), args.rp_name.clone(), String::new());
    config.origins = origins;
    let rp = RelyingParty::new(config).map_err(|e| e.to_string())?;
    let store = DbStore::connect(&args.database)
        .await
        .map_err(|e| format!("cannot open database {}: {e}", redact_url(&args.database)))?;
    let secret_key = secret_key(&args)?;
    // Seal what older versions stored in the clear, re-seal under a rotated key.
    hwkey::account::secrets::migrate(&store, &secret_key).await.map_err(|e| format!("secrets at rest: {e}"))?;
    // Usernames from before RFC 8265 normalization: renamed to their canonical form.
    let names = hwkey::account::username::migrate(&store).await.map_err(|e| format!("usernames: {e}"))?;
    for name in &names.conflicts {
        eprintln!("warning: user {name:?} keeps its name: its normalized form is taken or invalid");
    }
    let maintenance = spawn_maintenance(store.clone(), Duration::from_secs(60));
    let opts = HttpOptions { secret_key: Some(std::sync::Arc::new(secret_key)), ..HttpOptions::default() };
    let app = router_with(rp, store.clone(), opts);
    let listener =
        tokio::net::TcpListener::bind(&args.bind).await.map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Responses go out at once, not held back by Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    maintenance.abort();
    store.close().await;
    Ok(())
}

/// The key file: the flag's, or beside the SQLite file, or in the working
/// directory; created when missing (said on stderr).
fn secret_key(args: &Args) -> Result<hwkey::account::SecretKeyring, String> {
    let db = args.database.as_str();
    let memory = db.contains(":memory:");
    let path = match &args.secret_key_file {
        Some(p) => p.clone(),
        None if memory => {
            return hwkey::account::SecretKeyring::ephemeral().map_err(|e| e.to_string());
        }
        None => match db.strip_prefix("sqlite://") {
            Some(file) => {
                let file = file.split('?').next().unwrap_or(file);
                std::path::PathBuf::from(format!("{file}.secret-key"))
            }
            None => std::path::PathBuf::from("hwkey-secret-key"),
        },
    };
    let (keys, created) = hwkey::account::SecretKeyring::load_or_create(&path).map_err(|e| e.to_string())?;
    if created {
        eprintln!(
            "created the secret key file {} (mode 0600): keep it with the database and back it up",
            path.display()
        );
        if !db.starts_with("sqlite:") {
            eprintln!(
                "warning: with PostgreSQL every server instance needs this same file (--secret-key-file / HWKEY_SECRET_KEY_FILE)"
            );
        }
    }
    Ok(keys)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

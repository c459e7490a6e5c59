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
    let maintenance = spawn_maintenance(store.clone(), Duration::from_secs(60));
    let app = router_with(rp, store.clone(), HttpOptions::default());
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

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
//! shuts down gracefully on SIGINT or SIGTERM (stops accepting, finishes the
//! requests in flight, exits 0 within 10 s).
//!
//! The limits of CONTRACTS §2.2 ([`hwkey::http::serve::ServeLimits`]):
//!
//! | flag (environment) | default | when reached |
//! |---|---|---|
//! | `--header-timeout SECS` (`HWKEY_HEADER_TIMEOUT`) | 10 | a connection without a complete request head (also: an idle keep-alive one) is closed |
//! | `--request-timeout SECS` (`HWKEY_REQUEST_TIMEOUT`) | 30 | 503 `overloaded` + `Retry-After` |
//! | `--max-header-bytes N` (`HWKEY_MAX_HEADER_BYTES`) | 65536 | 431, connection closed |
//! | `--max-connections N` (`HWKEY_MAX_CONNECTIONS`) | 2048 per CPU, at least 4096, at most the open-file limit less 128 | not accepted until one closes |
//! | `--max-in-flight N` (`HWKEY_MAX_IN_FLIGHT`) | 1024 | 503 `overloaded` + `Retry-After` |
//! | `--max-ceremonies N` (`HWKEY_MAX_CEREMONIES`) | 100000 | pending ceremonies: 503 `overloaded` + `Retry-After` |
//! | `--max-ceremony-bytes N` (`HWKEY_MAX_CEREMONY_BYTES`) | 268435456 | the same, by bytes of ceremony state |

use clap::Parser;
use hwkey::http::serve::{ServeLimits, serve, shutdown_signal};
use hwkey::http::{HttpOptions, router_with, spawn_maintenance};
use hwkey::server::metadata::{AttestationRequirement, MetadataService, default_roots};
use hwkey::server::{RelyingParty, RpConfig};
use hwkey::store::ceremony_cache::CeremonyLimits;
use hwkey::store::{DbStore, redact_url};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

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
    /// A FIDO Metadata Service (MDS3) BLOB, the JWS as downloaded; verified at start.
    #[arg(long, env = "HWKEY_METADATA")]
    metadata: Option<std::path::PathBuf>,
    /// PEM root(s) the BLOB's chain must end in (default: the FIDO Alliance MDS roots, bundled).
    #[arg(long = "metadata-root", env = "HWKEY_METADATA_ROOT")]
    metadata_root: Option<std::path::PathBuf>,
    /// What a registration's attestation must show: `any`, `metadata` (a chain to a root the
    /// AAGUID's metadata statement lists) or `certified` (that, and a FIDO certification).
    #[arg(long = "attestation-policy", env = "HWKEY_ATTESTATION_POLICY", default_value = "any")]
    attestation_policy: String,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, env = "HWKEY_THREADS")]
    threads: Option<usize>,
    /// Seconds a connection may take to send a complete request head (and
    /// may stay idle between requests) before it is closed.
    #[arg(long = "header-timeout", env = "HWKEY_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds one request may take, its body included, before it gets 503 `overloaded`.
    #[arg(long = "request-timeout", env = "HWKEY_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
    /// Largest request head in bytes; larger gets 431.
    #[arg(long = "max-header-bytes", env = "HWKEY_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Open connections at most (default: sized for the machine and the open-file limit).
    #[arg(long = "max-connections", env = "HWKEY_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Requests handled at once at most; more get 503 `overloaded`.
    #[arg(long = "max-in-flight", env = "HWKEY_MAX_IN_FLIGHT", default_value_t = 1024)]
    max_in_flight: usize,
    /// Pending ceremonies (options given, verify not yet) at most; more get 503 `overloaded`.
    #[arg(long = "max-ceremonies", env = "HWKEY_MAX_CEREMONIES", default_value_t = 100_000)]
    max_ceremonies: usize,
    /// Bytes of pending ceremony state at most; more get 503 `overloaded`.
    #[arg(long = "max-ceremony-bytes", env = "HWKEY_MAX_CEREMONY_BYTES", default_value_t = 256 << 20)]
    max_ceremony_bytes: usize,
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
    config.attestation_policy.requirement = AttestationRequirement::parse(&args.attestation_policy)
        .ok_or_else(|| format!("--attestation-policy {:?}: use any, metadata or certified", args.attestation_policy))?;
    if config.attestation_policy.requirement != AttestationRequirement::Any {
        // A chain is needed: ask authenticators for their attestation.
        config.attestation = hwkey::server::AttestationConveyance::Direct;
    }
    let mut rp = RelyingParty::new(config).map_err(|e| e.to_string())?;
    match load_metadata(&args)? {
        Some(md) => rp = rp.with_metadata(std::sync::Arc::new(md)),
        None if rp.config().attestation_policy.requirement != AttestationRequirement::Any => {
            return Err(format!("--attestation-policy {} needs --metadata FILE", args.attestation_policy));
        }
        None => {}
    }
    let store = DbStore::connect(&args.database)
        .await
        .map_err(|e| format!("cannot open database {}: {e}", redact_url(&args.database)))?;
    let ceremony_limits = CeremonyLimits {
        max_count: args.max_ceremonies.max(1),
        max_bytes: args.max_ceremony_bytes.max(1024),
        ..CeremonyLimits::default()
    };
    let store = store.with_ceremony_limits(ceremony_limits);
    let secret_key = secret_key(&args)?;
    // Seal what older versions stored in the clear, re-seal under a rotated key.
    hwkey::account::secrets::migrate(&store, &secret_key).await.map_err(|e| format!("secrets at rest: {e}"))?;
    // Usernames from before RFC 8265 normalization: renamed to their canonical form.
    let names = hwkey::account::username::migrate(&store).await.map_err(|e| format!("usernames: {e}"))?;
    for name in &names.conflicts {
        eprintln!("warning: user {name:?} keeps its name: its normalized form is taken or invalid");
    }
    let maintenance = spawn_maintenance(store.clone(), Duration::from_secs(60));
    let opts =
        HttpOptions { secret_key: Some(std::sync::Arc::new(secret_key)), ceremony_limits, ..HttpOptions::default() };
    let app = router_with(rp, store.clone(), opts);
    let defaults = ServeLimits::default();
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(args.header_timeout.max(1)),
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        max_header_bytes: args.max_header_bytes.max(1024),
        max_connections: args.max_connections.unwrap_or(defaults.max_connections).max(1),
        max_in_flight: args.max_in_flight.max(1),
        ..defaults
    };
    let listener =
        tokio::net::TcpListener::bind(&args.bind).await.map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }
    serve(listener, app, limits, shutdown_signal()).await.map_err(|e| format!("server failed: {e}"))?;
    maintenance.abort();
    // Bounded, so that SIGTERM still exits within 10 s.
    let _ = tokio::time::timeout(Duration::from_secs(1), store.close()).await;
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

/// The MDS3 BLOB of `--metadata`, verified against `--metadata-root` (or
/// the bundled FIDO roots); an unreadable or unverifiable BLOB stops the
/// server with the reason.
fn load_metadata(args: &Args) -> Result<Option<MetadataService>, String> {
    let Some(path) = &args.metadata else { return Ok(None) };
    let blob = std::fs::read(path).map_err(|e| format!("cannot read --metadata {}: {e}", path.display()))?;
    let roots = match &args.metadata_root {
        Some(p) => {
            let pem =
                std::fs::read_to_string(p).map_err(|e| format!("cannot read --metadata-root {}: {e}", p.display()))?;
            hwkey::server::trust::certificates_from_pem(&pem)
                .map_err(|e| format!("--metadata-root {}: {e}", p.display()))?
        }
        None => default_roots(),
    };
    let md = MetadataService::load(hwkey::crypto::default_provider(), &blob, roots, SystemTime::now())
        .map_err(|e| format!("--metadata {}: {e} ({})", path.display(), e.code()))?;
    let cur = md.current();
    eprintln!("metadata: BLOB #{} with {} entries ({} skipped)", cur.serial(), cur.len(), cur.skipped());
    if cur.is_stale(SystemTime::now()) {
        eprintln!("warning: the metadata BLOB is past its nextUpdate; download a newer one");
    }
    drop(cur);
    Ok(Some(md))
}

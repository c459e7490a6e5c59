//! Shared fixtures of the hwkey fuzz targets: the fixed relying party, its
//! fixed ceremony states and credential, the two crypto providers, and small
//! input-splitting helpers. The same constants are used by the corpus seeder
//! (`tests/fuzz_seeds.rs` in the main crate), so the committed seeds carry
//! valid challenges and signatures for these states.
#![forbid(unsafe_code)]

use hwkey::crypto::CryptoProvider;
use hwkey::proto::cose::{CoseAlgorithm, CoseKey, curve};
use hwkey::proto::webauthn::Base64Url;
use hwkey::server::attestation::AttestationType;
use hwkey::server::{
    AuthenticationState, CredentialRecord, RegistrationState, RelyingParty, RpConfig, UserVerification,
};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// RP ID of the fixed relying party.
pub const RP_ID: &str = "example.com";
/// Its origin.
pub const ORIGIN: &str = "https://example.com";
/// The challenge of every fixed ceremony state.
pub const CHALLENGE: [u8; 32] = [0x42; 32];
/// The fixed Ed25519 credential's seed (fuzzing only, not a secret).
pub const ED25519_SEED: [u8; 32] = [0x07; 32];
/// The fixed credential ID.
pub const CREDENTIAL_ID: [u8; 32] = [0xc1; 32];
/// The fixed user handle.
pub const USER_ID: &[u8] = b"fuzz-user";
/// Verification time: 2026-01-01T00:00:00Z, in seconds.
pub const NOW_UNIX: u64 = 1_767_225_600;

/// The verification time as a `SystemTime`.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

/// The aws-lc provider.
pub fn aws() -> &'static dyn CryptoProvider {
    &hwkey::crypto::aws_lc::AwsLcProvider
}

/// The RustCrypto provider.
pub fn rust() -> &'static dyn CryptoProvider {
    &hwkey::crypto::rust_crypto::RustCryptoProvider
}

/// Both providers, aws-lc first.
pub fn providers() -> [&'static dyn CryptoProvider; 2] {
    [aws(), rust()]
}

/// The fixed configuration: subdomains allowed, so origin matching is exercised.
pub fn config() -> RpConfig {
    let mut c = RpConfig::new(RP_ID, "fuzz", ORIGIN);
    c.allow_subdomains = true;
    c
}

/// The fixed relying parties, one per provider (aws-lc, RustCrypto).
pub fn rps() -> &'static [RelyingParty; 2] {
    static RPS: OnceLock<[RelyingParty; 2]> = OnceLock::new();
    RPS.get_or_init(|| {
        [
            RelyingParty::with_provider(config(), aws()).expect("fixed config is valid"),
            RelyingParty::with_provider(config(), rust()).expect("fixed config is valid"),
        ]
    })
}

/// The fixed pending registration.
pub fn registration_state() -> RegistrationState {
    let created = hwkey::server::unix_ms(now());
    RegistrationState {
        challenge: Base64Url(CHALLENGE.to_vec()),
        user_id: Base64Url(USER_ID.to_vec()),
        user_name: "fuzz".into(),
        user_verification: UserVerification::Preferred,
        exclude_credentials: vec![Base64Url(vec![0xee; 16])],
        enforce_cred_protect: None,
        created_unix_ms: created,
        expires_unix_ms: created + 300_000,
        conditional: false,
    }
}

/// The fixed pending authentication (no allow list: discoverable flow).
pub fn authentication_state() -> AuthenticationState {
    let created = hwkey::server::unix_ms(now());
    AuthenticationState {
        challenge: Base64Url(CHALLENGE.to_vec()),
        user_id: None,
        allow_credentials: Vec::new(),
        user_verification: UserVerification::Preferred,
        appid: None,
        created_unix_ms: created,
        expires_unix_ms: created + 300_000,
    }
}

/// The stored record of the fixed Ed25519 credential.
pub fn credential_record() -> &'static CredentialRecord {
    static REC: OnceLock<CredentialRecord> = OnceLock::new();
    REC.get_or_init(|| {
        let x = aws().ed25519_public(&ED25519_SEED).expect("fixed seed");
        let key = CoseKey::Okp { alg: Some(CoseAlgorithm::EDDSA), crv: curve::ED25519, x };
        CredentialRecord {
            credential_id: Base64Url(CREDENTIAL_ID.to_vec()),
            user_id: Base64Url(USER_ID.to_vec()),
            public_key: Base64Url(key.to_bytes()),
            algorithm: CoseAlgorithm::EDDSA,
            sign_count: 5,
            uv_initialized: true,
            transports: vec!["usb".into()],
            backup_eligible: false,
            backed_up: false,
            aaguid: "00000000-0000-0000-0000-000000000000".into(),
            attestation_format: "none".into(),
            attestation_type: AttestationType::None,
            attestation_trusted: false,
            discoverable: Some(true),
        }
    })
}

/// Take a one-byte-length-prefixed chunk from the front of `data`.
pub fn take_u8_chunk<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&n, rest) = data.split_first()?;
    let n = (n as usize).min(rest.len());
    let (chunk, rest) = rest.split_at(n);
    *data = rest;
    Some(chunk)
}

/// Take a two-byte (big-endian) length-prefixed chunk from the front of `data`.
pub fn take_u16_chunk<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    if data.len() < 2 {
        return None;
    }
    let n = (u16::from_be_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let chunk = &data[2..2 + n];
    *data = &data[2 + n..];
    Some(chunk)
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat`
/// (nanoseconds), when the system provides it.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Run one input (one request's worth of work) through `f` and make sure it
/// does not pin a core: when a run takes longer than `HWKEY_FUZZ_SLOW_MS`
/// (default 50 ms; `0` turns the check off) of wall time, it is run again
/// and its CPU time measured (the machine is shared, so wall time alone is
/// noise); over the limit in CPU time panics (a libFuzzer crash, so the
/// input is saved). A new slowest input is reported on stderr (`slowest
/// input so far: N us`), the figure `fuzz/STATUS.md` records.
pub fn timed<R>(mut f: impl FnMut() -> R) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LIMIT: OnceLock<u128> = OnceLock::new();
    static SLOWEST_US: AtomicU64 = AtomicU64::new(0);
    let limit = *LIMIT.get_or_init(|| {
        std::env::var("HWKEY_FUZZ_SLOW_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(50)
    });
    let start = std::time::Instant::now();
    let _ = f();
    let mut took_us = start.elapsed().as_micros();
    if limit > 0 && took_us > limit * 1000 {
        let cpu0 = thread_cpu_ns();
        let again = std::time::Instant::now();
        let _ = f();
        let wall = again.elapsed().as_micros();
        took_us = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) => u128::from(b.saturating_sub(a) / 1000),
            _ => took_us.min(wall),
        };
        if took_us > limit * 1000 {
            panic!("input took {} ms of CPU time (limit {limit} ms)", took_us / 1000);
        }
    }
    let us = took_us as u64;
    if us > SLOWEST_US.fetch_max(us, Ordering::Relaxed) && us > 1000 {
        eprintln!("slowest input so far: {us} us");
    }
}

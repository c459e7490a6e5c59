//! Helpers to read ../shared/vectors (located relative to the crate root).
#![allow(dead_code)]

use serde_json::Value as J;
use std::path::PathBuf;

/// Directory of the shared vectors: `HWKEY_VECTORS`, else `../shared/vectors`
/// (or `../../shared/vectors` from a worktree one level deeper).
pub fn vectors_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        std::env::var_os("HWKEY_VECTORS").map(PathBuf::from),
        Some(manifest.join("../shared/vectors")),
        Some(manifest.join("../../shared/vectors")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.join("real-device-registrations.json").exists())
    .expect("test vectors not found: set HWKEY_VECTORS to the shared/vectors directory")
}

/// Load one vector file.
pub fn load(name: &str) -> J {
    let p = vectors_dir().join(name);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&s).expect("vector file is JSON")
}

/// Lenient base64/base64url decode.
pub fn b64(s: &str) -> Vec<u8> {
    hwkey::proto::webauthn::b64url_decode(s).unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
}

/// Hex decode.
pub fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

/// `{"hex": ...}` field.
pub fn hexf(v: &J) -> Vec<u8> {
    hex(v["hex"].as_str().expect("hex field"))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Parse "2025,1,8,0,0,0 (...)" or "2025-01-30T23:59:59.000Z" to Unix seconds.
pub fn parse_time(s: &str) -> i64 {
    let nums: Vec<i64> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .take(6)
        .map(|p| p.parse().expect("number"))
        .collect();
    let (y, mo, d, h, mi, se) = (nums[0], nums[1], nums[2], nums[3], nums[4], nums[5]);
    days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se
}

/// A `SystemTime` from Unix seconds.
pub fn system_time(unix: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64)
}

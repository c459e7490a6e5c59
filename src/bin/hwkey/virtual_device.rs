//! `hwkey virtual serve` (waiting for the software authenticator).
use std::path::PathBuf;
/// Run `virtual serve`.
pub fn serve(_udp: &str, _state: Option<PathBuf>, _pin: Option<String>) -> Result<(), String> {
    Err("the software authenticator is not built in yet".into())
}

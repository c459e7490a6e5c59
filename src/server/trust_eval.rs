//! Adapter from a verified attestation chain to a trust verdict (wired to `trust`).

use crate::crypto::CryptoProvider;

/// (trusted, reason when not).
pub(crate) fn evaluate(
    _provider: &dyn CryptoProvider,
    chain: &[Vec<u8>],
    anchors: &[Vec<u8>],
    _now_unix: i64,
) -> (bool, Option<String>) {
    if anchors.is_empty() {
        return (false, Some("no trust anchors configured".into()));
    }
    if chain.is_empty() {
        return (false, Some("no certificate chain".into()));
    }
    // TODO(integration): path validation lands with server::trust.
    (false, Some("certificate path validation unavailable".into()))
}

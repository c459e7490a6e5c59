//! The "android-safetynet" attestation statement format (WebAuthn L3 §8.5):
//! a SafetyNet attestation response, a JWS in compact serialization signed
//! (RS256) by a certificate issued to attest.android.com. The API is
//! deprecated, so the format is refused unless the caller opts in
//! ([`super::AttestationContext::allow_safetynet`]).

use super::{AttestationError, AttestationType, FormatResult, Input, sig_err};
use crate::crypto::{HashAlg, RsaPadding};
use crate::server::cert::{PublicKey, oid};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The hostname the signing certificate must be issued to.
pub const SAFETYNET_HOSTNAME: &str = "attest.android.com";

fn malformed(m: &str) -> AttestationError {
    AttestationError::Malformed(format!("android-safetynet response: {m}"))
}

fn b64url(s: &str) -> Result<Vec<u8>, AttestationError> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| malformed("JWS part is not base64url"))
}

/// Verify an "android-safetynet" statement.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    if !input.ctx.allow_safetynet {
        return Err(AttestationError::FormatDisabled("android-safetynet".into()));
    }
    input.only_keys(&["ver", "response"])?;
    if input.text("ver")?.is_empty() {
        return Err(malformed("ver is empty"));
    }
    let response = std::str::from_utf8(input.bytes("response")?).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = response.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("not a compact JWS"));
    };
    let header: serde_json::Value = serde_json::from_slice(&b64url(h)?).map_err(|_| malformed("header JSON"))?;
    let payload: serde_json::Value = serde_json::from_slice(&b64url(p)?).map_err(|_| malformed("payload JSON"))?;
    let sig = b64url(s)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err(AttestationError::UnsupportedAlgorithm("android-safetynet JWS alg must be RS256".into()));
    }
    let chain = header
        .get("x5c")
        .and_then(|x| x.as_array())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| malformed("header x5c missing"))?
        .iter()
        .map(|c| c.as_str().and_then(|c| STANDARD.decode(c).ok()).ok_or_else(|| malformed("x5c entry")))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = super::parse_cert(chain.first().map(Vec::as_slice).unwrap_or_default())?;

    // Signature over the ASCII "header.payload".
    let signed_len = h.len() + 1 + p.len();
    let signed = response.as_bytes().get(..signed_len).ok_or_else(|| malformed("JWS"))?;
    let (n, e) = match leaf.public_key().map_err(super::cert_err)? {
        PublicKey::Rsa { n, e } => (n, e),
        _ => return Err(AttestationError::Certificate("android-safetynet signing key is not RSA".into())),
    };
    input
        .ctx
        .provider
        .verify_rsa(RsaPadding::Pkcs1v15, HashAlg::Sha256, &n, &e, signed, &sig)
        .map_err(|e| sig_err("android-safetynet JWS signature", e))?;
    let hostname_ok = leaf.subject_attr(oid::AT_CN).iter().any(|cn| cn == SAFETYNET_HOSTNAME);
    if !hostname_ok {
        return Err(AttestationError::Certificate(format!(
            "android-safetynet signing certificate is not issued to {SAFETYNET_HOSTNAME}"
        )));
    }

    let want_nonce = STANDARD.encode(input.ctx.provider.sha256(&[input.auth_data_raw, input.client_data_hash]));
    if payload.get("nonce").and_then(|n| n.as_str()) != Some(want_nonce.as_str()) {
        return Err(AttestationError::Mismatch(
            "android-safetynet nonce differs from base64(SHA-256(authData || clientDataHash))".into(),
        ));
    }
    if input.policy.safetynet_require_cts_profile_match
        && payload.get("ctsProfileMatch").and_then(|c| c.as_bool()) != Some(true)
    {
        return Err(AttestationError::Mismatch("android-safetynet ctsProfileMatch is not true".into()));
    }
    if let Some(max_age) = input.policy.safetynet_max_age_secs {
        let ts = payload.get("timestampMs").and_then(|t| t.as_i64()).ok_or_else(|| malformed("timestampMs"))?;
        let now_ms = input.ctx.now_unix.saturating_mul(1000);
        let age_ms = now_ms.saturating_sub(ts);
        if age_ms.saturating_abs() > max_age.saturating_mul(1000) {
            return Err(AttestationError::Mismatch(
                "android-safetynet timestampMs is outside the accepted window (has expired or is in the future)".into(),
            ));
        }
    }
    Ok((AttestationType::Basic, chain))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{AttestationPolicy, AttestationType};
    use crate::proto::cbor::Value;

    fn lenient() -> AttestationPolicy {
        AttestationPolicy { safetynet_max_age_secs: None, ..AttestationPolicy::default() }
    }

    #[test]
    fn verifies_under_opt_in_only() {
        let f = fixture("real/android-safetynet");
        assert_eq!(f.verify_with(true, false, &lenient()).unwrap().attestation_type, AttestationType::Basic);
        assert_code(f.verify_with(false, false, &lenient()), "attestation_format_disabled");
    }

    #[test]
    fn timestamp_window() {
        let mut f = fixture("real/android-safetynet");
        f.time += 10 * 365 * 86_400;
        assert_code(f.verify_with(true, false, &AttestationPolicy::default()), "attestation_mismatch");
    }

    #[test]
    fn tampered_jws_is_rejected() {
        let mut f = fixture("real/android-safetynet");
        let resp = f.bytes_mut("response");
        // Change one character of the signature part.
        let last = resp.len() - 2;
        resp[last] = if resp[last] == b'A' { b'B' } else { b'A' };
        assert_code(f.verify_with(true, false, &lenient()), "attestation_bad_signature");
        let mut f = fixture("real/android-safetynet");
        f.cdh[0] ^= 1;
        assert_code(f.verify_with(true, false, &lenient()), "attestation_mismatch");
        let mut f = fixture("real/android-safetynet");
        f.set("response", Value::Bytes(b"a.b".to_vec()));
        assert_code(f.verify_with(true, false, &lenient()), "attestation_malformed");
    }
}

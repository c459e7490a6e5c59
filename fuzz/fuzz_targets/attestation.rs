//! Attestation objects (src/proto/attestation.rs) through every format's
//! verifier (src/server/attestation/) and the trust path (src/server/trust.rs).
//! Input: 32 bytes of clientDataHash, then the attestation object.
//! Checked: parse -> encode -> parse is stable; no verifier panics; the
//! verdict (accept with the same type and chain, or the same error code) and
//! the trust verdict never differ between aws-lc and RustCrypto.
#![no_main]
use hwkey::proto::attestation::AttestationObject;
use hwkey::server::attestation::{AttestationContext, FORMATS, verify_attestation};
use hwkey::server::trust;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let mut cdh = [0u8; 32];
    cdh.copy_from_slice(&data[..32]);
    let body = &data[32..];
    // What one request does (parse, its own format, trust; default
    // provider), timed; the differential checks below run outside the limit.
    hwkey_fuzz::timed(|| {
        let Ok(att) = AttestationObject::parse(body) else { return };
        let ctx = AttestationContext { provider: hwkey_fuzz::aws(), now_unix: hwkey_fuzz::NOW_UNIX as i64, allow_safetynet: true, allow_rs1: true };
        if let Ok(v) = verify_attestation(&att.fmt, &att.att_stmt, &att.auth_data, &att.auth_data_raw, &cdh, &ctx) {
            let anchors = v.chain.last().cloned().into_iter().collect::<Vec<_>>();
            let _ = trust::evaluate_attestation(ctx.provider, &v, &anchors, hwkey_fuzz::NOW_UNIX as i64);
        }
    });
    {
        let Ok(att) = AttestationObject::parse(body) else { return };
        // Map order is not kept (encoding is canonical), so compare encodings.
        let enc = att.to_bytes();
        let again = AttestationObject::parse(&enc).expect("re-encoded attestation object parses");
        assert_eq!(again.to_bytes(), enc, "attestation object re-encoding is not stable");
        assert_eq!((&again.fmt, &again.auth_data_raw), (&att.fmt, &att.auth_data_raw));
        // The statement's own format first, then every other format on the
        // same statement (cross-format confusion must fail cleanly).
        let fmts = std::iter::once(att.fmt.as_str()).chain(FORMATS.iter().copied().filter(|f| *f != att.fmt));
        for fmt in fmts {
            let verdicts = hwkey_fuzz::providers().map(|provider| {
                let ctx = AttestationContext {
                    provider,
                    now_unix: hwkey_fuzz::NOW_UNIX as i64,
                    allow_safetynet: true,
                    allow_rs1: true,
                };
                let r = verify_attestation(fmt, &att.att_stmt, &att.auth_data, &att.auth_data_raw, &cdh, &ctx);
                let trust = r.as_ref().ok().map(|v| {
                    let anchors = v.chain.last().cloned().into_iter().collect::<Vec<_>>();
                    match trust::evaluate_attestation(provider, v, &anchors, hwkey_fuzz::NOW_UNIX as i64) {
                        trust::TrustVerdict::Untrusted(e) => Err(e.code()),
                        t => Ok(t),
                    }
                });
                (r.map(|v| (v.fmt, v.attestation_type, v.chain)).map_err(|e| e.code()), trust)
            });
            assert_eq!(verdicts[0], verdicts[1], "format {fmt}: aws-lc and RustCrypto disagree");
        }
    }
});

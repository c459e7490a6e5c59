//! COSE keys (src/proto/cose.rs) and signature verification
//! (src/crypto/cose_verify.rs). Input: a COSE_Key as a CBOR prefix, then a
//! one-byte-length-prefixed signature, then the message. Checked: parse ->
//! encode -> parse is stable; verification never panics and its verdict is
//! the same under aws-lc and RustCrypto, for the key's own algorithm and for
//! every other algorithm id (algorithm confusion must fail cleanly).
#![no_main]
use hwkey::crypto::cose_verify;
use hwkey::proto::cbor;
use hwkey::proto::cose::{CoseAlgorithm, CoseKey};
use libfuzzer_sys::fuzz_target;

const ALGS: &[i64] = &[-7, -8, -9, -19, -35, -36, -37, -38, -39, -257, -258, -259, -65535, -47];

fuzz_target!(|data: &[u8]| {
    let Ok((v, used)) = cbor::decode_prefix(data) else { return };
    let mut rest = &data[used..];
    let sig = hwkey_fuzz::take_u8_chunk(&mut rest).unwrap_or_default().to_vec();
    let msg = rest;
    // What one request does (default provider), timed; the differential
    // checks below run outside the time limit.
    hwkey_fuzz::timed(|| {
        let Ok(key) = CoseKey::from_value(&v) else { return };
        let _ = cose_verify::verify(hwkey_fuzz::aws(), &key, msg, &sig);
    });
    {
        let Ok(key) = CoseKey::from_value(&v) else { return };
        let b = key.to_bytes();
        let key2 = CoseKey::from_bytes(&b).expect("re-encoded COSE key parses");
        assert_eq!(key2, key, "COSE key re-encoding changes it");
        let _ = key.sec1_uncompressed();
        let own = hwkey_fuzz::providers().map(|p| cose_verify::verify(p, &key, msg, &sig).map_err(|e| e.to_string()));
        assert_eq!(own[0].is_ok(), own[1].is_ok(), "verify verdict differs: {own:?}");
        for &alg in ALGS {
            for rs1 in [false, true] {
                let r = hwkey_fuzz::providers().map(|p| {
                    cose_verify::verify_with_alg(p, CoseAlgorithm(alg), &key, msg, &sig, rs1).is_ok()
                });
                assert_eq!(r[0], r[1], "alg {alg} (rs1 {rs1}): verdict differs between providers");
            }
        }
    }
});

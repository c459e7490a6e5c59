//! X.509 certificates and chain building (src/server/cert.rs,
//! src/server/trust.rs). Input: one byte (its low two bits: how many of the
//! certificates at the end are trust anchors), then DER certificates one
//! after another. Checked: parsing and every accessor never panic; the trust
//! verdict is the same under aws-lc and RustCrypto.
#![no_main]
use hwkey::server::cert::{ParsedCert, Tlv, oid};
use hwkey::server::trust::{self, TrustVerdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let mut certs: Vec<Vec<u8>> = Vec::new();
    while !rest.is_empty() && certs.len() < 6 {
        match Tlv::parse(rest) {
            Some((_, after)) => {
                let used = rest.len() - after.len();
                certs.push(rest[..used].to_vec());
                rest = after;
            }
            None => {
                certs.push(rest.to_vec());
                break;
            }
        }
    }
    if certs.is_empty() {
        return;
    }
    let n_anchors = ((sel & 3) as usize).min(certs.len());
    let (chain, anchors) = certs.split_at(certs.len() - n_anchors);
    hwkey_fuzz::timed(|| trust::evaluate(hwkey_fuzz::aws(), chain, anchors, hwkey_fuzz::NOW_UNIX as i64));
    {
        for der in &certs {
            if let Ok(c) = ParsedCert::parse(der) {
                let _ = c.public_key();
                let _ = c.check_validity(hwkey_fuzz::NOW_UNIX as i64);
                let _ = c.basic_constraints_ca();
                let _ = c.path_len_constraint();
                let _ = c.key_cert_sign();
                let _ = c.subject_attr(oid::AT_CN);
                let _ = c.subject_attr(oid::AT_OU);
                let _ = c.check_aaguid_extension(&[0u8; 16]);
                let _ = c.subject_der();
                let _ = c.issuer_der();
                assert!(!c.tbs_bytes().is_empty());
                if let Ok(k) = c.public_key() {
                    let own = hwkey_fuzz::providers().map(|p| c.verify_signed_by(p, &k).map_err(|e| e.code()));
                    assert_eq!(own[0], own[1], "self-signature verdict differs between providers");
                }
            }
        }
        let verdicts = hwkey_fuzz::providers().map(|p| match trust::evaluate(p, chain, anchors, hwkey_fuzz::NOW_UNIX as i64) {
            TrustVerdict::Untrusted(e) => Err(e.code()),
            v => Ok(v),
        });
        assert_eq!(verdicts[0], verdicts[1], "trust verdict differs between aws-lc and RustCrypto");
    }
});

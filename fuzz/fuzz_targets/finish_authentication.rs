//! AuthenticationResponseJSON through `RelyingParty::finish_authentication_json`
//! with a fixed state and a fixed stored Ed25519 credential
//! (src/server/authentication.rs: every step of WebAuthn L3 §7.2). Input:
//! the JSON body. Checked: no panic, no slow input, the verdict is the same
//! under aws-lc and RustCrypto, and an accepted assertion never moves the
//! counter backwards.
#![no_main]
use libfuzzer_sys::fuzz_target;

fn one(rp: &hwkey::server::RelyingParty, data: &[u8]) -> bool {
    let rec = hwkey_fuzz::credential_record();
    rp.finish_authentication_json(
        hwkey_fuzz::authentication_state(),
        data,
        |id, _| (id == rec.credential_id.0.as_slice()).then_some(rec),
        hwkey_fuzz::now(),
    )
    .is_ok()
}

fuzz_target!(|data: &[u8]| {
    let rps = hwkey_fuzz::rps();
    let rec = hwkey_fuzz::credential_record();
    // One request (default provider) is timed; the differential runs after.
    hwkey_fuzz::timed(|| one(&rps[0], data));
    {
        let verdicts = rps.each_ref().map(|rp| {
            rp.finish_authentication_json(
                hwkey_fuzz::authentication_state(),
                data,
                |id, _handle| (id == rec.credential_id.0.as_slice()).then_some(rec),
                hwkey_fuzz::now(),
            )
            .map_err(|e| e.code())
        });
        if let Ok(r) = &verdicts[0] {
            assert!(r.new_sign_count >= rec.sign_count, "accepted assertion moved the counter back");
            assert_eq!(r.credential_id, rec.credential_id.0);
        }
        assert_eq!(verdicts[0], verdicts[1], "authentication verdict differs between aws-lc and RustCrypto");
    }
});

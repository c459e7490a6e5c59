//! RegistrationResponseJSON through `RelyingParty::finish_registration_json`
//! with a fixed state (src/server/registration.rs: every step of WebAuthn L3
//! §7.1). Input: the JSON body. Checked: no panic, no slow input, and the
//! verdict (the stored record, or the error code) is the same under aws-lc
//! and RustCrypto.
#![no_main]
use libfuzzer_sys::fuzz_target;

fn one(rp: &hwkey::server::RelyingParty, data: &[u8]) -> bool {
    rp.finish_registration_json(hwkey_fuzz::registration_state(), data, hwkey_fuzz::now()).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let rps = hwkey_fuzz::rps();
    // One request (default provider) is timed; the differential runs after.
    hwkey_fuzz::timed(|| one(&rps[0], data));
    {
        let verdicts = rps.each_ref().map(|rp| {
            rp.finish_registration_json(hwkey_fuzz::registration_state(), data, hwkey_fuzz::now())
                .map(|r| (r.credential, r.user_verified, r.attestation.attestation_type))
                .map_err(|e| e.code())
        });
        assert_eq!(verdicts[0], verdicts[1], "registration verdict differs between aws-lc and RustCrypto");
    }
});

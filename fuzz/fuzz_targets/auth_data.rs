//! Authenticator data (src/proto/auth_data.rs): parse never panics, and a
//! parsed value re-encodes to bytes that parse to the same value; when the
//! input carries no extensions and its key is canonical, the re-encoding is
//! the input itself.
#![no_main]
use hwkey::proto::auth_data::AuthenticatorData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hwkey_fuzz::timed(|| {
        let Ok(ad) = AuthenticatorData::parse(data) else { return };
        let b = ad.to_bytes();
        let ad2 = match AuthenticatorData::parse(&b) {
            Ok(x) => x,
            Err(e) => panic!("re-encoded authenticator data does not parse: {e}"),
        };
        assert_eq!(ad2.to_bytes(), b, "authenticator data re-encoding is not stable");
        assert_eq!(ad2.flags.0, ad.flags.0);
        assert_eq!(ad2.sign_count, ad.sign_count);
        assert_eq!(ad2.rp_id_hash, ad.rp_id_hash);
    });
});

//! CBOR decoding (src/proto/cbor.rs): strict decoding with limits never
//! panics, stays within the time limit, and decode -> encode -> decode is
//! stable (the canonical encoding of a decoded value decodes to a value that
//! encodes to the same bytes).
#![no_main]
use hwkey::proto::cbor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hwkey_fuzz::timed(|| {
        let _ = cbor::decode_prefix(data);
        let Ok(v) = cbor::decode(data) else { return };
        let e = cbor::encode(&v);
        let v2 = match cbor::decode(&e) {
            Ok(v2) => v2,
            Err(err) => panic!("the encoding of a decoded value does not decode: {err}\nvalue {v:?}\nencoding {e:02x?}"),
        };
        assert_eq!(cbor::encode(&v2), e, "decode -> encode -> decode -> encode is not stable");
    });
});

//! The software authenticator's CTAP2 command dispatcher
//! (src/authenticator/), with a PIN set and two discoverable credentials
//! present, and its U2F (CTAP1) handler. The state is made once (two
//! makeCredential calls, then the PIN) and reloaded from a copy of its state
//! file for every input, so inputs do not leak into each other.
//! Input: a sequence of two-byte-length-prefixed messages; a message whose
//! first byte is 0xff goes to the U2F handler without that byte, any other
//! to the CTAP2 dispatcher (command byte + CBOR).
//! Checked: no panic; every CTAP2 answer has a status byte, and a success
//! body is one well-formed CBOR map; known commands' success answers decode
//! with the client's typed decoder; U2F answers end in a status word.
#![no_main]
use hwkey::authenticator::{Authenticator, AuthenticatorConfig};
use hwkey::proto::cbor::{self, MapBuilder, Value};
use hwkey::proto::ctap2::client_pin::ClientPinResponse;
use hwkey::proto::ctap2::credential_management::CredentialManagementResponse;
use hwkey::proto::ctap2::get_assertion::GetAssertionResponse;
use hwkey::proto::ctap2::get_info::GetInfoResponse;
use hwkey::proto::ctap2::large_blobs::LargeBlobsResponse;
use hwkey::proto::ctap2::make_credential::MakeCredentialResponse;
use hwkey::proto::ctap2::decode_response;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Template {
    bytes: Vec<u8>,
    work: PathBuf,
}

fn make_credential(a: &mut Authenticator, user: &[u8]) {
    let req = MapBuilder::new()
        .insert(1, vec![0x11u8; 32])
        .insert(2, MapBuilder::new().insert("id", hwkey_fuzz::RP_ID).insert("name", "Example").build())
        .insert(
            3,
            MapBuilder::new().insert("id", user.to_vec()).insert("name", "fuzz").insert("displayName", "Fuzz").build(),
        )
        .insert(4, Value::Array(vec![MapBuilder::new().insert("alg", -7).insert("type", "public-key").build()]))
        .insert(7, MapBuilder::new().insert("rk", true).build())
        .build();
    let mut msg = vec![0x01];
    msg.extend_from_slice(&req.to_vec());
    let resp = a.handle_cbor(&msg);
    assert_eq!(resp.first(), Some(&0), "template makeCredential failed: {resp:02x?}");
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let pid = std::process::id();
        let tpl = dir.join(format!("hwkey-fuzz-authn-{pid}.template"));
        let work = dir.join(format!("hwkey-fuzz-authn-{pid}.state"));
        let _ = std::fs::remove_file(&tpl);
        let config = AuthenticatorConfig { state_path: Some(tpl.clone()), ..Default::default() };
        let mut a = Authenticator::new(config).expect("authenticator");
        make_credential(&mut a, b"user-one");
        make_credential(&mut a, b"user-two");
        a.set_pin("123456").expect("PIN");
        assert_eq!(a.resident_credential_count(), 2);
        drop(a);
        let bytes = std::fs::read(&tpl).expect("template state");
        let _ = std::fs::remove_file(&tpl);
        Template { bytes, work }
    })
}

fn check_ctap2(req: &[u8], resp: &[u8]) {
    let (&status, body) = resp.split_first().expect("a CTAP2 answer has a status byte");
    if status != 0 {
        assert!(body.is_empty(), "an error status with a body");
        return;
    }
    if body.is_empty() {
        return;
    }
    let v = cbor::decode(body).expect("a success body is well-formed CBOR");
    assert!(v.as_map().is_some(), "a success body is a map");
    let ok = match req.first() {
        Some(0x01) => decode_response::<MakeCredentialResponse>(resp).map(drop),
        Some(0x02) | Some(0x08) => decode_response::<GetAssertionResponse>(resp).map(drop),
        Some(0x04) => decode_response::<GetInfoResponse>(resp).map(drop),
        Some(0x06) => decode_response::<ClientPinResponse>(resp).map(drop),
        Some(0x0a) | Some(0x41) => decode_response::<CredentialManagementResponse>(resp).map(drop),
        Some(0x0c) => decode_response::<LargeBlobsResponse>(resp).map(drop),
        _ => Ok(()),
    };
    assert!(ok.is_ok(), "the client cannot decode the authenticator's answer to {:02x?}: {ok:?}", req.first());
}

fuzz_target!(|data: &[u8]| {
    let t = template();
    let mut msgs = Vec::new();
    let mut rest = data;
    while let Some(m) = hwkey_fuzz::take_u16_chunk(&mut rest) {
        msgs.push(m);
        if msgs.len() == 8 {
            break;
        }
    }
    hwkey_fuzz::timed(|| {
        std::fs::write(&t.work, &t.bytes).expect("state copy");
        let config = AuthenticatorConfig { state_path: Some(t.work.clone()), ..Default::default() };
        let mut a = Authenticator::new(config).expect("authenticator from the template");
        for m in &msgs {
            if let Some(apdu) = m.strip_prefix(&[0xff]) {
                let r = a.handle_u2f(apdu);
                assert!(r.len() >= 2, "a U2F answer ends in a status word");
            } else {
                let r = a.handle_cbor(m);
                check_ctap2(m, &r);
            }
        }
    });
});

//! CTAP1/U2F APDUs both ways (src/proto/ctap1.rs): the device side parses
//! request APDUs (and the software authenticator answers them,
//! src/authenticator/u2f.rs); the host side parses U2F_REGISTER and
//! U2F_AUTHENTICATE responses and turns a registration into a WebAuthn
//! attestation object. Input: byte 0 picks the direction, the rest is the
//! message. Checked: no panic; APDU parse -> encode -> parse is stable;
//! response parse -> encode gives the input back; a converted registration
//! is a well-formed fido-u2f attestation object whose verdict is the same
//! under aws-lc and RustCrypto.
#![no_main]
use hwkey::authenticator::Authenticator;
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::ctap1::{self, Apdu, AuthenticateRequest, AuthenticateResponse, RegisterRequest, RegisterResponse};
use hwkey::server::attestation::{AttestationContext, verify_attestation};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

fn authenticator() -> &'static Mutex<Authenticator> {
    static A: OnceLock<Mutex<Authenticator>> = OnceLock::new();
    A.get_or_init(|| Mutex::new(Authenticator::in_memory().expect("authenticator")))
}

const APP: [u8; 32] = [0xa5; 32];

fuzz_target!(|data: &[u8]| {
    let a = authenticator();
    let Some((&sel, msg)) = data.split_first() else { return };
    hwkey_fuzz::timed(|| match sel % 4 {
        // Device side: request APDUs.
        0 => {
            if let Ok(apdu) = Apdu::parse(msg) {
                let again = Apdu::parse(&apdu.encode()).expect("an encoded APDU parses");
                assert_eq!(again, apdu, "APDU parse -> encode -> parse changes it");
                if let Ok(r) = RegisterRequest::from_data(&apdu.data) {
                    assert_eq!(RegisterRequest::from_data(&r.to_apdu().data).ok(), Some(r));
                }
                if let Ok(r) = AuthenticateRequest::from_apdu(&apdu) {
                    assert_eq!(AuthenticateRequest::from_apdu(&r.to_apdu()).ok(), Some(r));
                }
            }
            let mut g = a.lock().unwrap_or_else(|e| e.into_inner());
            let r = g.handle_u2f(msg);
            assert!(r.len() >= 2, "a U2F answer ends in a status word");
        }
        // Host side: a register response (with its status word).
        1 => {
            let Ok(body) = ctap1::parse_response(msg) else { return };
            let Ok(r) = RegisterResponse::parse(body) else { return };
            assert_eq!(r.encode(), body, "register response parse -> encode is not the input");
            let _ = r.signed_data(&APP, &[0; 32]);
            if let Ok(att) = r.to_attestation_object(&APP) {
                let parsed = AttestationObject::parse(&att.to_bytes()).expect("converted attestation object parses");
                assert_eq!(parsed.fmt, "fido-u2f");
                let v = hwkey_fuzz::providers().map(|provider| {
                    let ctx = AttestationContext { provider, now_unix: hwkey_fuzz::NOW_UNIX as i64, allow_safetynet: false, allow_rs1: false };
                    verify_attestation(&parsed.fmt, &parsed.att_stmt, &parsed.auth_data, &parsed.auth_data_raw, &[0; 32], &ctx)
                        .map(|v| v.attestation_type)
                        .map_err(|e| e.code())
                });
                assert_eq!(v[0], v[1], "fido-u2f verdict differs between aws-lc and RustCrypto");
            }
        }
        // Host side: an authenticate response.
        2 => {
            let Ok(body) = ctap1::parse_response(msg) else { return };
            let Ok(r) = AuthenticateResponse::parse(body) else { return };
            assert_eq!(r.encode(), body, "authenticate response parse -> encode is not the input");
            // The signature covers the device's user-presence byte as sent,
            // so it is copied into the flags; a device that sets the AT or
            // ED bit (reserved in U2F) yields authenticator data that does
            // not parse, and the sign-in fails cleanly.
            let ad = r.auth_data(&APP);
            let parsed = hwkey::proto::auth_data::AuthenticatorData::parse(&ad);
            if r.user_presence & 0xc0 == 0 {
                assert!(parsed.is_ok(), "converted authenticator data parses");
            }
        }
        // Device side, a whole exchange: register, then authenticate with the key handle the device returned.
        _ => {
            let mut g = a.lock().unwrap_or_else(|e| e.into_inner());
            let reg = RegisterRequest { challenge: [1; 32], application: APP };
            let resp = g.handle_u2f(&reg.to_apdu().encode());
            let Ok(body) = ctap1::parse_response(&resp) else { return };
            let r = RegisterResponse::parse(body).expect("the software authenticator's register response parses");
            let auth = AuthenticateRequest {
                control: msg.first().copied().unwrap_or(3),
                challenge: [2; 32],
                application: APP,
                key_handle: if msg.len() > 1 { msg[1..].to_vec() } else { r.key_handle },
            };
            let out = g.handle_u2f(&auth.to_apdu().encode());
            assert!(out.len() >= 2);
        }
    });
});

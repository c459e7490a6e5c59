//! YubiKey OTP frames and status (src/yubikey/frame.rs, status.rs) and the
//! software YubiKey's report handling (src/yubikey/virtual.rs). Input: byte 0
//! picks: a 70-byte frame to decode; a response to check; a status report;
//! or a script of 8-byte feature reports written to the software YubiKey
//! (each followed by reading reports back).
//! Checked: no panic; frame decode -> encode gives the input back; a
//! response built by `response_reports` reassembles and passes
//! `check_response`; the status report decodes the same after a round
//! through the software YubiKey's own status.
#![no_main]
use hwkey::yubikey::frame::{self, FEATURE_RPT_SIZE, FRAME_SIZE, Frame, PIECE_SIZE, RESP_PENDING_FLAG};
use hwkey::yubikey::status::Status;
use hwkey::yubikey::r#virtual::VirtualYubikey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else { return };
    hwkey_fuzz::timed(|| match sel % 4 {
        0 => {
            let mut b = [0u8; FRAME_SIZE];
            let n = msg.len().min(FRAME_SIZE);
            b[..n].copy_from_slice(&msg[..n]);
            if let Ok(f) = Frame::from_bytes(&b) {
                let out = f.to_bytes();
                assert_eq!(out[..FRAME_SIZE - 3], b[..FRAME_SIZE - 3], "frame decode -> encode changed it");
                for r in f.write_reports() {
                    assert!(r[FEATURE_RPT_SIZE - 1] & frame::SLOT_WRITE_FLAG != 0);
                }
            }
            if let Ok(f) = Frame::new(msg.first().copied().unwrap_or(0), msg.get(1..).unwrap_or_default()) {
                assert_eq!(Frame::from_bytes(&f.to_bytes()).ok().map(|g| g.to_bytes()), Some(f.to_bytes()));
            }
        }
        1 => {
            let want = msg.first().copied().unwrap_or(0) as usize;
            let _ = frame::check_response(msg.get(1..).unwrap_or_default(), want);
            // What the device side builds, the host side accepts.
            let payload = msg.get(1..).unwrap_or_default();
            let reports = frame::response_reports(payload);
            let mut got = Vec::new();
            for r in &reports {
                assert!(r[FEATURE_RPT_SIZE - 1] & RESP_PENDING_FLAG != 0);
                got.extend_from_slice(&r[..PIECE_SIZE]);
            }
            assert_eq!(frame::check_response(&got, payload.len()).ok(), Some(payload));
        }
        2 => {
            let mut r = [0u8; FEATURE_RPT_SIZE];
            let n = msg.len().min(FEATURE_RPT_SIZE);
            r[..n].copy_from_slice(&msg[..n]);
            let s = Status::from_report(&r);
            let yk = VirtualYubikey::new(1).with_version(s.version);
            assert_eq!(yk.status().version, s.version);
        }
        _ => {
            let mut yk = VirtualYubikey::new(0x0102_0304);
            let _ = yk.set_hmac_slot(2, &[0x33; 20], false);
            for chunk in msg.chunks(FEATURE_RPT_SIZE).take(64) {
                let mut r = [0u8; FEATURE_RPT_SIZE];
                r[..chunk.len()].copy_from_slice(chunk);
                yk.handle_set(&r);
                for _ in 0..12 {
                    let _ = yk.handle_get();
                }
            }
        }
    });
});

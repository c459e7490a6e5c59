//! The YubiKey OTP interface: frames and CRC against yubikey-otp-hid.json;
//! the client and the software YubiKey talking only in 8-byte feature
//! reports, in-process and over UDP; the `hwkey yubikey` commands against
//! `hwkey virtual yubikey`; devices that answer garbage.
#![cfg(all(feature = "yubikey", feature = "cli"))]

use hwkey::crypto::{HashAlg, default_provider};
use hwkey::yubikey::device::Report;
use hwkey::yubikey::frame::{CRC_OK_RESIDUAL, FEATURE_RPT_SIZE, FRAME_SIZE, Frame, crc16, response_reports};
use hwkey::yubikey::{
    FeatureReportTransport, HmacSlotConfig, OtpConnection, Progress, Slot, UdpTransport, VirtualYubikey, YubikeyError,
    challenge_response,
};
use proptest::prelude::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEY1: [u8; 20] = *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14";

fn vectors() -> Value {
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/yubikey-otp-hid.json");
    let path = if std::path::Path::new(local).exists() { local } else { "/work/shared/vectors/yubikey-otp-hid.json" };
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    default_provider().hmac(HashAlg::Sha1, key, &[msg])
}

fn challenges() -> Vec<Vec<u8>> {
    vec![vec![], vec![0x00], vec![0x42], (0..63).collect(), vec![0xaa; 63], (0..64).map(|i| i as u8 ^ 0x5a).collect()]
}

/// The message an HMAC_LT64 slot hashes for a 64-byte block.
fn lt64_msg(block: &[u8]) -> &[u8] {
    let last = block[63];
    let keep = block.iter().rposition(|&b| b != last).map_or(0, |i| i + 1);
    &block[..keep]
}

#[test]
fn frames_match_vectors() {
    let v = vectors();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let challenge = hex::decode(c["challenge_hex"].as_str().unwrap()).unwrap();
        let slot = u8::from_str_radix(c["slot"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        let frame = Frame::new(slot, &challenge).unwrap();
        let bytes = frame.to_bytes();
        assert_eq!(bytes.len(), FRAME_SIZE);
        assert_eq!(hex::encode(bytes), c["frame_hex_70_bytes"].as_str().unwrap(), "{}", c["name"]);
        assert_eq!(format!("{:04x}", crc16(&frame.payload)), c["payload_crc16_hex"].as_str().unwrap());
        let reports: Vec<String> = frame.write_reports().iter().map(hex::encode).collect();
        let expected: Vec<String> =
            c["feature_reports_hex"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
        assert_eq!(reports, expected, "{}", c["name"]);
        assert_eq!(Frame::from_bytes(&bytes).unwrap(), frame);
    }
}

#[test]
fn crc_residue_fact() {
    // Fact: crc16(data || LE16(~crc16(data))) == 0xf0b8, for any data.
    for data in [&b""[..], b"\x00", b"123456789", &[0xff; 64]] {
        let mut v = data.to_vec();
        v.extend_from_slice(&(!crc16(data)).to_le_bytes());
        assert_eq!(crc16(&v), CRC_OK_RESIDUAL);
    }
    // response_reports carries exactly that, pending flag and sequence.
    let r = response_reports(&[7u8; 20]);
    assert_eq!(r.len(), 4);
    for (i, rep) in r.iter().enumerate() {
        assert_eq!(rep[7], 0x40 | i as u8);
    }
}

fn check_chalresp<T: FeatureReportTransport>(conn: &mut OtpConnection<T>, slot: Slot, key: &[u8], fixed64: bool) {
    for ch in challenges() {
        let resp = challenge_response(conn, slot, &ch, &mut |_| {}).unwrap();
        let block = hwkey::yubikey::hmac_lt64_pad(&ch).unwrap();
        let expected = match (fixed64, ch.len()) {
            (false, 64) => hmac(key, lt64_msg(&ch)),
            (false, _) => hmac(key, &ch),
            // A fixed-64 slot hashes the whole (padded) block.
            (true, _) => hmac(key, &block[..]),
        };
        assert_eq!(&resp[..], &expected[..], "challenge of {} bytes", ch.len());
    }
}

#[test]
fn in_process_chalresp_status_serial() {
    let mut key = VirtualYubikey::new(1234567);
    key.set_hmac_slot(1, &KEY1, false).unwrap();
    let mut conn = OtpConnection::new(key);
    let st = conn.status().unwrap();
    assert_eq!(st.version, (5, 4, 3));
    assert!(st.slot_programmed(1) && !st.slot_programmed(2));
    assert_eq!(conn.serial().unwrap(), 1234567);
    check_chalresp(&mut conn, Slot::One, &KEY1, false);
    // Slot 2 is empty: the specific "no response" error, not "no key".
    assert_eq!(challenge_response(&mut conn, Slot::Two, b"x", &mut |_| {}).unwrap_err(), YubikeyError::NoResponse(2));
    assert!(YubikeyError::NoResponse(2).to_string().contains("not programmed"));
    // Oversized challenge.
    assert_eq!(
        challenge_response(&mut conn, Slot::One, &[0; 65], &mut |_| {}).unwrap_err(),
        YubikeyError::ChallengeTooLong(65)
    );
}

#[test]
fn in_process_program_fixed64_touch_and_access_code() {
    let mut conn = OtpConnection::new(VirtualYubikey::new(1));
    let seq0 = conn.status().unwrap().prog_seq;
    let key2 = [0x5cu8; 20];
    let mut cfg = HmacSlotConfig::new(&key2, false).unwrap();
    cfg.fixed_64 = true;
    cfg.access_code = Some(*b"secret");
    let st = conn.program_hmac(Slot::Two, &cfg, None).unwrap();
    assert_eq!(st.prog_seq, seq0 + 1);
    assert!(st.slot_programmed(2));
    check_chalresp(&mut conn, Slot::Two, &key2, true);
    // Reprogramming without the access code is refused, with it accepted.
    let new = HmacSlotConfig::new(&[9; 20], true).unwrap();
    assert!(matches!(conn.program_hmac(Slot::Two, &new, None), Err(YubikeyError::Rejected(_))));
    assert!(matches!(conn.program_hmac(Slot::Two, &new, Some(b"wrong!")), Err(YubikeyError::Rejected(_))));
    let st = conn.program_hmac(Slot::Two, &new, Some(b"secret")).unwrap();
    assert!(st.slot_requires_touch(2));
    // Touch slot: progress callback hears it, the answer is right.
    let mut touched = 0;
    let resp = challenge_response(&mut conn, Slot::Two, b"hello", &mut |p| {
        assert!(matches!(p, Progress::TouchNeeded { .. }));
        touched += 1;
    })
    .unwrap();
    assert!(touched >= 1);
    assert_eq!(&resp[..], &hmac(&[9; 20], b"hello")[..]);
}

#[test]
fn touch_timeout() {
    let mut key = VirtualYubikey::new(1);
    key.set_hmac_slot(1, &KEY1, true).unwrap();
    key.touch_polls = u32::MAX;
    let mut conn = OtpConnection::new(key).with_timeout(Duration::from_millis(300));
    assert_eq!(challenge_response(&mut conn, Slot::One, b"x", &mut |_| {}).unwrap_err(), YubikeyError::TouchTimeout);
    // The key is usable again afterwards.
    conn.transport_mut().touch_polls = 0;
    let r = challenge_response(&mut conn, Slot::One, b"x", &mut |_| {}).unwrap();
    assert_eq!(&r[..], &hmac(&KEY1, b"x")[..]);
}

fn spawn_udp(key: VirtualYubikey) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    std::thread::spawn(move || key.serve_udp(&sock));
    addr
}

#[test]
fn over_udp_in_process() {
    let mut key = VirtualYubikey::new(42).with_version((5, 7, 1));
    key.set_hmac_slot(2, &KEY1, false).unwrap();
    let addr = spawn_udp(key);
    let mut conn = OtpConnection::new(UdpTransport::connect(&addr).unwrap());
    assert_eq!(conn.status().unwrap().version, (5, 7, 1));
    assert_eq!(conn.serial().unwrap(), 42);
    check_chalresp(&mut conn, Slot::Two, &KEY1, false);
    assert_eq!(challenge_response(&mut conn, Slot::One, b"", &mut |_| {}).unwrap_err(), YubikeyError::NoResponse(1));
    // Program slot 1 over UDP, then use it.
    conn.program_hmac(Slot::One, &HmacSlotConfig::new(&[3; 20], false).unwrap(), None).unwrap();
    check_chalresp(&mut conn, Slot::One, &[3; 20], false);
}

#[test]
fn malformed_datagrams_ignored() {
    let mut key = VirtualYubikey::new(7);
    key.set_hmac_slot(1, &KEY1, false).unwrap();
    let addr = spawn_udp(key);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(&addr).unwrap();
    for d in [&[][..], &[0x01], &[0x01; 5], &[0x02, 0x00], &[0x03; 9], &[0x01; 10], &[0xff; 300]] {
        s.send(d).unwrap();
    }
    let mut conn = OtpConnection::new(UdpTransport::connect(&addr).unwrap());
    assert_eq!(conn.serial().unwrap(), 7);
    check_chalresp(&mut conn, Slot::One, &KEY1, false);
}

/// A scripted device answering `answers` in a cycle and accepting any write.
struct Scripted {
    answers: Vec<Report>,
    i: usize,
}

impl FeatureReportTransport for Scripted {
    fn set_feature(&mut self, _r: &Report) -> Result<(), YubikeyError> {
        Ok(())
    }
    fn get_feature(&mut self) -> Result<Report, YubikeyError> {
        let r = self.answers[self.i % self.answers.len()];
        self.i += 1;
        Ok(r)
    }
}

fn scripted(answers: Vec<Report>) -> OtpConnection<Scripted> {
    OtpConnection::new(Scripted { answers, i: 0 }).with_timeout(Duration::from_millis(300))
}

#[test]
fn garbage_devices_give_clear_errors() {
    let idle: Report = [0, 5, 4, 3, 1, 1, 0, 0];
    // One status read, then one write-flag check per written piece.
    let block = hwkey::yubikey::hmac_lt64_pad(b"x").unwrap();
    let n_idle = 1 + Frame::new(0x30, &block[..]).unwrap().write_reports().len();
    // Bad CRC in an otherwise well-formed response.
    let mut bad = response_reports(&[1u8; 20]);
    bad[1][0] ^= 0xff;
    let mut answers = vec![idle; n_idle];
    answers.extend(bad);
    answers.push([0, 0, 0, 0, 0, 0, 0, 0x40]);
    let e = challenge_response(&mut scripted(answers), Slot::One, b"x", &mut |_| {}).unwrap_err();
    assert!(matches!(e, YubikeyError::Frame(_)), "{e}");
    assert!(e.to_string().contains("CRC"));
    // Response pieces out of order.
    let good = response_reports(&[1u8; 20]);
    let mut answers = vec![idle; n_idle];
    answers.extend([good[0], good[2], good[1], good[3]]);
    let e = challenge_response(&mut scripted(answers), Slot::One, b"x", &mut |_| {}).unwrap_err();
    assert_eq!(e, YubikeyError::Sequence);
    // Too short a response.
    let mut answers = vec![idle; n_idle];
    answers.extend([good[0], [0, 0, 0, 0, 0, 0, 0, 0x40]]);
    let e = challenge_response(&mut scripted(answers), Slot::One, b"x", &mut |_| {}).unwrap_err();
    assert!(matches!(e, YubikeyError::Frame(_)), "{e}");
    // A device stuck with its write flag set.
    let e = challenge_response(&mut scripted(vec![[0xff; 8]]), Slot::One, b"x", &mut |_| {}).unwrap_err();
    assert_eq!(e, YubikeyError::Timeout);
    // Random bytes: whatever error, never a panic, never success.
    let mut x: u32 = 0x1234_5678;
    for _ in 0..25 {
        let answers: Vec<Report> = (0..40)
            .map(|_| {
                let mut r = [0u8; FEATURE_RPT_SIZE];
                for b in r.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *b = x as u8;
                }
                r
            })
            .collect();
        let mut c = scripted(answers).with_timeout(Duration::from_millis(30));
        assert!(challenge_response(&mut c, Slot::One, b"x", &mut |_| {}).is_err());
    }
}

#[test]
fn udp_device_garbage_and_silence() {
    // A UDP "device" answering 3-byte datagrams.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(b"abc", from);
        }
    });
    let mut conn = OtpConnection::new(UdpTransport::connect(&addr).unwrap());
    let e = conn.status().unwrap_err();
    assert!(matches!(e, YubikeyError::Garbage(_)), "{e}");
    // Nothing listening.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut conn = OtpConnection::new(UdpTransport::connect_with_timeout(&addr, Duration::from_millis(200)).unwrap());
    assert!(matches!(conn.status().unwrap_err(), YubikeyError::NotAnswering(_)));
}

// ---- the binary ----------------------------------------------------------

struct VirtualProc {
    child: Child,
    addr: String,
}

impl Drop for VirtualProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn virtual_yubikey(args: &[&str]) -> VirtualProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hwkey"))
        .args(["virtual", "yubikey", "--udp", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on udp://").expect("listening line").to_string();
    VirtualProc { child, addr }
}

fn hwkey(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hwkey")).args(args).output().unwrap()
}

fn ok_stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap().trim().to_string()
}

fn failing(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let e = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(e.starts_with("error:") && !e.contains("panicked"), "{e}");
    e
}

#[test]
fn cli_chalresp_against_virtual_yubikey() {
    let key1 = hex::encode(KEY1);
    let v = virtual_yubikey(&["--serial", "987654", "--slot1-hmac", &key1]);
    let dev = format!("udp:{}", v.addr);
    // 0, 1, 63 bytes on the variable-length slot: HMAC-SHA1(key, challenge).
    for ch in [vec![], vec![0x00], vec![0x61], (0..63).map(|i| i as u8).collect::<Vec<u8>>()] {
        let out = hwkey(&["yubikey", "chalresp", "--slot", "1", &hex::encode(&ch), "--device", &dev]);
        let got = ok_stdout(&out);
        assert_eq!(got.len(), 40);
        assert_eq!(got, hex::encode(hmac(&KEY1, &ch)), "challenge {} bytes", ch.len());
    }
    // 64 bytes on a variable-length slot: trailing run treated as padding.
    let ch64: Vec<u8> = (0..64).map(|i| i as u8).collect();
    let out = hwkey(&["yubikey", "chalresp", "--slot", "1", &hex::encode(&ch64), "--device", &dev]);
    assert_eq!(ok_stdout(&out), hex::encode(hmac(&KEY1, &ch64[..63])));
    // Program slot 2 fixed-64, then 0/1/63/64 bytes all give HMAC(key, challenge).
    let key2 = "00112233445566778899aabbccddeeff01234567";
    let out = hwkey(&["yubikey", "program", "--slot", "2", "--hmac-key", key2, "--fixed-64", "--device", &dev]);
    ok_stdout(&out);
    let k2 = hex::decode(key2).unwrap();
    for ch in [vec![], vec![0x01], vec![0xee; 63], ch64.clone()] {
        let out = hwkey(&["yubikey", "chalresp", "--slot", "2", &hex::encode(&ch), "--device", &dev]);
        let expected = if ch.len() == 64 {
            hmac(&k2, &ch)
        } else {
            // A shorter challenge is padded; a fixed-64 slot hashes the block.
            let mut block = ch.clone();
            let pad = if ch.last() == Some(&0) { 1 } else { 0 };
            block.resize(64, pad);
            hmac(&k2, &block)
        };
        assert_eq!(ok_stdout(&out), hex::encode(expected));
    }
    // Info and serial.
    let info = ok_stdout(&hwkey(&["yubikey", "info", "--device", &dev]));
    assert!(info.contains("5.4.3") && info.contains("987654"), "{info}");
    assert!(info.contains("slot 1: programmed") && info.contains("slot 2: programmed"));
    assert_eq!(ok_stdout(&hwkey(&["yubikey", "serial", "--device", &dev])), "987654");
}

#[test]
fn cli_program_then_chalresp_and_errors() {
    let v = virtual_yubikey(&["--version", "5.2.7"]);
    let dev = format!("udp:{}", v.addr);
    // Empty slot: the specific error.
    let e = failing(&hwkey(&["yubikey", "chalresp", "--slot", "2", "00", "--device", &dev]));
    assert!(e.contains("slot 2") && e.contains("not programmed"), "{e}");
    // Program with touch (the virtual key grants it) and use it.
    let key = "0a0b0c";
    let out = hwkey(&["yubikey", "program", "--slot", "2", "--hmac-key", key, "--touch", "--device", &dev]);
    ok_stdout(&out);
    let out = hwkey(&["yubikey", "chalresp", "--slot", "2", "cafe", "--device", &dev]);
    assert_eq!(ok_stdout(&out), hex::encode(hmac(&hex::decode(key).unwrap(), &[0xca, 0xfe])));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Touch your YubiKey"));
    let info = ok_stdout(&hwkey(&["yubikey", "info", "--device", &dev]));
    assert!(info.contains("5.2.7") && info.contains("slot 2: programmed, requires touch"), "{info}");
    // Bad arguments.
    failing(&hwkey(&["yubikey", "chalresp", "--slot", "1", &"00".repeat(65), "--device", &dev]));
    failing(&hwkey(&["yubikey", "chalresp", "--slot", "3", "00", "--device", &dev]));
    failing(&hwkey(&["yubikey", "chalresp", "--slot", "1", "zz", "--device", &dev]));
    failing(&hwkey(&["yubikey", "program", "--slot", "1", "--hmac-key", &"00".repeat(21), "--device", &dev]));
    failing(&hwkey(&["yubikey", "serial", "--device", "bogus:thing"]));
    failing(&hwkey(&["virtual", "yubikey", "--udp", "127.0.0.1:0", "--slot1-hmac", "xyz"]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Any sequence of reports written to the software key never panics, and
    /// it still answers correctly afterwards.
    #[test]
    fn virtual_key_survives_any_reports(reports in proptest::collection::vec(proptest::array::uniform8(any::<u8>()), 0..40)) {
        let mut key = VirtualYubikey::new(5);
        key.set_hmac_slot(1, &KEY1, false).unwrap();
        for r in &reports {
            key.handle_set(r);
            let _ = key.handle_get();
        }
        let mut conn = OtpConnection::new(key);
        let resp = challenge_response(&mut conn, Slot::One, b"abc", &mut |_| {});
        // A random frame may have reprogrammed slot 1 (valid CRC needed,
        // vanishingly unlikely); otherwise the answer is the HMAC.
        if let Ok(r) = resp {
            prop_assert_eq!(&r[..], &hmac(&KEY1, b"abc")[..]);
        }
    }
}

#[test]
fn programming_sequence_advances_on_every_write() {
    let mut conn = OtpConnection::new(VirtualYubikey::new(1));
    assert_eq!(conn.status().unwrap().prog_seq, 0);
    for i in 1..=3u8 {
        let st = conn.program_hmac(Slot::One, &HmacSlotConfig::new(&[i; 20], false).unwrap(), None).unwrap();
        assert_eq!(st.prog_seq, i);
    }
    // A challenge does not advance it.
    challenge_response(&mut conn, Slot::One, b"x", &mut |_| {}).unwrap();
    assert_eq!(conn.status().unwrap().prog_seq, 3);
}

#[test]
fn hmac_response_buffers_are_zeroized_on_drop() {
    // The raw response (HMAC and CRC) is held only in zeroizing buffers, at
    // every layer: the assembled reply and the checked data.
    use hwkey::yubikey::chalresp::SLOT_CHAL_HMAC1;
    use hwkey::yubikey::device::Reply;
    use zeroize::Zeroizing;
    let mut key = VirtualYubikey::new(1);
    key.set_hmac_slot(1, &KEY1, false).unwrap();
    let mut conn = OtpConnection::new(key);
    let block = hwkey::yubikey::chalresp::hmac_lt64_pad(b"abc").unwrap();
    let reply = conn.transact(SLOT_CHAL_HMAC1, &block[..], &mut |_| {}).unwrap();
    let Reply::Data(raw) = reply else { panic!("a status where data was expected") };
    let raw: &Zeroizing<Vec<u8>> = &raw;
    assert!(raw.len() >= 22);
    let data: Zeroizing<Vec<u8>> = conn.transact_data(SLOT_CHAL_HMAC1, &block[..], 20, &mut |_| {}).unwrap();
    assert_eq!(data.as_slice(), hmac(&KEY1, b"abc").as_slice());
}

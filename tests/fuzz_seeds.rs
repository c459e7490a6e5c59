//! Seeds for the fuzz corpora (`fuzz/corpus/<target>/`, issue 16): the shared
//! vectors, the test fixtures, and captured traffic. The CTAPHID reports of
//! an end-to-end client/authenticator run (registration and sign-in, with
//! and without a PIN, hmac-secret, credential management, U2F) are recorded
//! through [`Recording`], a transport wrapper that exists only here.
//!
//! Run `cargo test --test fuzz_seeds -- --ignored` to (re)write the seeds,
//! then minimize with `cargo +nightly fuzz cmin TARGET` (see fuzz/STATUS.md).
//! The input layouts are the ones documented at the top of each target in
//! `fuzz/fuzz_targets/`; the fixed challenge, key and credential ID are
//! those of `fuzz/src/lib.rs`.
#![cfg(all(feature = "client", feature = "virtual", feature = "server"))]

mod support;

use hwkey::authenticator::Authenticator;
use hwkey::client::webauthn::{FixedPin, WebAuthnClient};
use hwkey::client::{Device, Op};
use hwkey::crypto::default_provider;
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::cbor::Value;
use hwkey::proto::cose::{CoseAlgorithm, CoseKey, curve};
use hwkey::proto::webauthn::*;
use hwkey::server::testing::{ResponseParams, SoftCredential};
use hwkey::transport::ctaphid::{DeviceConfig, Packet, cmd};
use hwkey::transport::memory::MemoryDevice;
use hwkey::transport::{Report, ReportTransport, TransportError};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::vectors::{b64, hex, hexf, load};

// The fixtures of fuzz/src/lib.rs.
const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://example.com";
const CHALLENGE: [u8; 32] = [0x42; 32];
const ED25519_SEED: [u8; 32] = [0x07; 32];
const CREDENTIAL_ID: [u8; 32] = [0xc1; 32];
const USER_ID: &[u8] = b"fuzz-user";

/// Which way a recorded report went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    HostToDevice,
    DeviceToHost,
}

/// A transport that records every report it carries (test-only).
struct Recording<T> {
    inner: T,
    log: Arc<Mutex<Vec<(Dir, Report)>>>,
}

impl<T: ReportTransport> ReportTransport for Recording<T> {
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError> {
        self.log.lock().unwrap().push((Dir::HostToDevice, *report));
        self.inner.send_report(report)
    }
    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError> {
        let r = self.inner.recv_report(deadline)?;
        if let Some(r) = &r {
            self.log.lock().unwrap().push((Dir::DeviceToHost, *r));
        }
        Ok(r)
    }
}

struct Seeds {
    root: PathBuf,
    written: usize,
}

impl Seeds {
    fn new() -> Self {
        Seeds { root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"), written: 0 }
    }
    fn put(&mut self, target: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let h = default_provider().sha256(&[bytes]);
        let name: String = h[..10].iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        self.written += 1;
    }
}

fn op() -> Op {
    Op::timeout(Duration::from_secs(10))
}

fn u16_framed(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let n = m.len().min(0xffff);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&m[..n]);
    }
    out
}

/// Reassemble the recorded reports of one direction into (command, payload) messages.
fn messages(log: &[(Dir, Report)], dir: Dir) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cur: Option<(u8, usize, Vec<u8>)> = None;
    for (d, r) in log {
        if *d != dir {
            continue;
        }
        match Packet::parse(r) {
            Packet::Init { cmd, len, data, .. } => {
                let mut buf = data[..len.min(data.len())].to_vec();
                buf.truncate(len);
                if buf.len() == len {
                    out.push((cmd, buf));
                    cur = None;
                } else {
                    cur = Some((cmd, len, buf));
                }
            }
            Packet::Cont { data, .. } => {
                if let Some((c, len, mut buf)) = cur.take() {
                    let n = (len - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..n]);
                    if buf.len() == len {
                        out.push((c, buf));
                    } else {
                        cur = Some((c, len, buf));
                    }
                }
            }
        }
    }
    out
}

/// Run the client against the software authenticator over recorded CTAPHID reports.
fn record_traffic() -> Vec<(Dir, Report)> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let run = |pin: Option<&str>| {
        let mut a = Authenticator::in_memory().unwrap();
        if let Some(p) = pin {
            a.set_pin(p).unwrap();
        }
        let dev = MemoryDevice::spawn(a, DeviceConfig::default());
        let t = Recording { inner: dev.connect(), log: log.clone() };
        let mut d = Device::open(t, &op()).unwrap();
        let ui = FixedPin::new(pin.map(str::to_owned));
        let client = WebAuthnClient::new(&ui);
        let creation: CreationOptionsJson = serde_json::from_value(json!({
            "rp": {"id": RP_ID, "name": "Example"},
            "user": {"id": b64url_encode(USER_ID), "name": "fuzz", "displayName": "Fuzz"},
            "challenge": b64url_encode(&CHALLENGE),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -8}],
            "authenticatorSelection": {"residentKey": "required", "userVerification": if pin.is_some() {"required"} else {"discouraged"}},
            "attestation": "direct",
            "extensions": {"credProps": true, "prf": {"eval": {"first": b64url_encode(&[1; 32])}}, "credProtect": 2}
        }))
        .unwrap();
        let reg = client.register(&mut d, &creation, ORIGIN, &op()).unwrap();
        let request: RequestOptionsJson = serde_json::from_value(json!({
            "challenge": b64url_encode(&CHALLENGE),
            "rpId": RP_ID,
            "userVerification": if pin.is_some() {"required"} else {"discouraged"},
            "allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.raw_id)}],
            "extensions": {"prf": {"eval": {"first": b64url_encode(&[2; 32])}}}
        }))
        .unwrap();
        // FixedPin hands its PIN out once: a fresh one for the sign-in.
        let ui2 = FixedPin::new(pin.map(str::to_owned));
        WebAuthnClient::new(&ui2).authenticate(&mut d, &request, ORIGIN, &op()).unwrap();
        let _ = d.get_info(&op());
        let _ = d.pin_retries(&op());
        if let Some(p) = pin
            && let Ok(token) = d.pin_token(p, 0x04, None, &op())
        {
            let _ = d.list_credentials(&token, &op());
        }
        let _ = d.u2f_apdu(&[0, 3, 0, 0, 0, 0, 0], &op());
        let _ = d.hid().ping(&[0x11; 80], &op());
        let _ = d.wink(&op());
        (reg, d)
    };
    let _ = run(None);
    let _ = run(Some("123456"));
    log.lock().unwrap().clone()
}

fn ed25519_assertion(flags: u8, count: u32, origin: &str) -> Vec<u8> {
    let p = default_provider();
    let cdj = CollectedClientData {
        type_: "webauthn.get".into(),
        challenge: b64url_encode(&CHALLENGE),
        origin: origin.into(),
        cross_origin: None,
        top_origin: None,
    }
    .to_json_bytes();
    let mut ad = p.sha256(&[RP_ID.as_bytes()]).to_vec();
    ad.push(flags);
    ad.extend_from_slice(&count.to_be_bytes());
    let cdh = p.sha256(&[&cdj]);
    let sig = p.ed25519_sign(&ED25519_SEED, &[&ad[..], &cdh[..]].concat()).unwrap();
    serde_json::to_vec(&AuthenticationResponseJson {
        id: b64url_encode(&CREDENTIAL_ID),
        raw_id: Base64Url(CREDENTIAL_ID.to_vec()),
        response: AssertionResponseJson {
            client_data_json: Base64Url(cdj),
            authenticator_data: Base64Url(ad),
            signature: Base64Url(sig),
            user_handle: Some(Base64Url(USER_ID.to_vec())),
        },
        authenticator_attachment: Some("cross-platform".into()),
        client_extension_results: Default::default(),
        type_: "public-key".into(),
    })
    .unwrap()
}

/// Every certificate of every x5c in an attestation statement (compound included).
fn x5c(stmt: &Value, out: &mut Vec<Vec<Vec<u8>>>) {
    if let Some(a) = stmt.as_array() {
        for s in a {
            if let Some(inner) = s.get_text("attStmt") {
                x5c(inner, out);
            }
        }
    }
    if let Some(chain) = stmt.get_text("x5c").and_then(Value::as_array) {
        out.push(chain.iter().filter_map(|c| c.as_bytes().map(<[u8]>::to_vec)).collect());
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run with --ignored to regenerate the seeds"]
fn write_fuzz_seeds() {
    let p = default_provider();
    let mut s = Seeds::new();
    let mut registrations: Vec<(Vec<u8>, Vec<u8>)> = Vec::new(); // (clientDataJSON, attestationObject)

    // Real-device registrations and assertions.
    for c in load("real-device-registrations.json")["cases"].as_array().unwrap() {
        let cred = &c["credential"];
        let (Some(ao), Some(cdj)) =
            (cred["response"]["attestationObject"].as_str(), cred["response"]["clientDataJSON"].as_str())
        else {
            continue;
        };
        registrations.push((b64(cdj), b64(ao)));
        s.put("finish_registration", serde_json::to_string(cred).unwrap().as_bytes());
    }
    for c in load("real-device-assertions.json")["cases"].as_array().unwrap() {
        let cred = &c["credential"];
        s.put("finish_authentication", serde_json::to_string(cred).unwrap().as_bytes());
        if let Some(k) = c["credential_public_key_cose_b64url"].as_str() {
            let resp = &cred["response"];
            if let (Some(ad), Some(cdj), Some(sig)) =
                (resp["authenticatorData"].as_str(), resp["clientDataJSON"].as_str(), resp["signature"].as_str())
            {
                let (ad, cdj, sig) = (b64(ad), b64(cdj), b64(sig));
                s.put("client_data", &cdj);
                s.put("auth_data", &ad);
                let mut seed = b64(k);
                seed.push(sig.len().min(255) as u8);
                seed.extend_from_slice(&sig[..sig.len().min(255)]);
                seed.extend_from_slice(&ad);
                seed.extend_from_slice(&p.sha256(&[&cdj]));
                s.put("cose_key", &seed);
            }
        }
    }
    // W3C WebAuthn L3 test vectors.
    for c in load("webauthn-l3-test-vectors.json")["cases"].as_array().unwrap() {
        if let Some(r) = c.get("registration") {
            registrations.push((hexf(&r["clientDataJSON"]), hexf(&r["attestationObject"])));
        }
        if let Some(a) = c.get("authentication") {
            s.put("auth_data", &hexf(&a["authenticatorData"]));
            s.put("client_data", &hexf(&a["clientDataJSON"]));
        }
    }
    for (cdj, ao) in &registrations {
        s.put("client_data", cdj);
        s.put("cbor_decode", ao);
        s.put("cbor_ciborium", ao);
        let mut seed = p.sha256(&[cdj]).to_vec();
        seed.extend_from_slice(ao);
        s.put("attestation", &seed);
        if let Ok(att) = AttestationObject::parse(ao) {
            s.put("auth_data", &att.auth_data_raw);
            if let Some(acd) = &att.auth_data.attested_credential {
                s.put("cose_key", &acd.public_key_bytes);
                s.put("cbor_decode", &acd.public_key_bytes);
            }
            let mut chains = Vec::new();
            x5c(&att.att_stmt, &mut chains);
            for chain in chains {
                for anchors in 0..=1u8 {
                    let mut seed = vec![anchors];
                    for c in &chain {
                        seed.extend_from_slice(c);
                    }
                    s.put("x509_chain", &seed);
                }
            }
        }
    }
    // CTAP examples: responses and a U2F registration.
    for c in load("ctap-examples.json")["cases"].as_array().unwrap() {
        if let Some(h) = c["response_cbor_hex"].as_str() {
            let body = hex(h);
            s.put("cbor_decode", &body);
            s.put("cbor_ciborium", &body);
            for sel in 0..6u8 {
                let mut m = vec![sel, 0];
                m.extend_from_slice(&body);
                s.put("ctap2_responses", &m);
            }
        }
        if let Some(h) = c["u2f_registration_data_hex"].as_str() {
            let mut m = vec![1];
            m.extend_from_slice(&hex(h));
            m.extend_from_slice(&[0x90, 0x00]);
            s.put("ctap1_apdu", &m);
        }
    }
    // YubiKey frames and reports.
    for c in load("yubikey-otp-hid.json")["cases"].as_array().unwrap() {
        if let Some(h) = c["frame_hex_70_bytes"].as_str() {
            let mut m = vec![0];
            m.extend_from_slice(&hex(h));
            s.put("yubikey_frame", &m);
        }
        if let Some(reps) = c["feature_reports_hex"].as_array() {
            let mut m = vec![3];
            for r in reps.iter().filter_map(|r| r.as_str()) {
                m.extend_from_slice(&hex(r));
            }
            s.put("yubikey_frame", &m);
        }
    }
    s.put("yubikey_frame", &[2, 0, 5, 4, 3, 7, 1, 0, 0]);
    s.put("yubikey_frame", &[1, 4, 1, 2, 3, 4, 0xf0, 0xb8]);
    // otpauth URIs built from the RFC secrets, and a few by hand.
    for c in load("otp-rfc.json")["cases"].as_array().unwrap() {
        let Some(secret) = c["secret_hex"].as_str() else { continue };
        let b32 = data_encoding_base32(&hex(secret));
        let kind = if c["kind"] == "totp" { "totp" } else { "hotp" };
        let alg = c["algorithm"].as_str().unwrap_or("HMAC-SHA1").trim_start_matches("HMAC-").replace('-', "");
        let tail = if kind == "hotp" { "&counter=0".to_owned() } else { "&period=30".to_owned() };
        let uri = format!(
            "otpauth://{kind}/ACME%20Co:alice%40example.com?secret={b32}&issuer=ACME%20Co&algorithm={alg}&digits=8{tail}"
        );
        s.put("otpauth_uri", uri.as_bytes());
    }
    s.put("otpauth_uri", b"otpauth://totp/ACME%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30");
    s.put("otpauth_uri", b"otpauth://hotp/alice?secret=JBSWY3DPEHPK3PXP&counter=18446744073709551615");

    // Fixtures signed for the fixed states of the fuzz targets.
    for alg in [CoseAlgorithm::ES256, CoseAlgorithm::EDDSA] {
        let cred = SoftCredential::new(p, alg).unwrap();
        for fmt in ["none", "packed"] {
            let mut params = ResponseParams::new(RP_ID, ORIGIN);
            params.fmt = fmt.into();
            let r = cred.register(&CHALLENGE, &params).unwrap();
            s.put("finish_registration", &serde_json::to_vec(&r).unwrap());
            let mut seed = p.sha256(&[&r.response.client_data_json]).to_vec();
            seed.extend_from_slice(&r.response.attestation_object);
            s.put("attestation", &seed);
            s.put("client_data", &r.response.client_data_json);
        }
    }
    for (flags, count, origin) in
        [(0x01, 6, ORIGIN), (0x05, 7, ORIGIN), (0x01, 3, ORIGIN), (0x01, 9, "https://login.example.com")]
    {
        s.put("finish_authentication", &ed25519_assertion(flags, count, origin));
    }
    let x = p.ed25519_public(&ED25519_SEED).unwrap();
    let key = CoseKey::Okp { alg: Some(CoseAlgorithm::EDDSA), crv: curve::ED25519, x }.to_bytes();
    let sig = p.ed25519_sign(&ED25519_SEED, b"fuzz").unwrap();
    let mut seed = key.clone();
    seed.push(sig.len() as u8);
    seed.extend_from_slice(&sig);
    seed.extend_from_slice(b"fuzz");
    s.put("cose_key", &seed);
    // The two findings the issue names (reproducers).
    s.put("client_data", &regressions::non_ascii_origin_client_data());
    s.put("cbor_decode", &regressions::big_map(4096));

    // HTTP request bodies (route index, flags, segment length, segment, body).
    let bodies: &[(u8, &[u8])] = &[
        (0, br#"{"username":"alice","displayName":"Alice","residentKey":"required","userVerification":"preferred","attestation":"direct"}"#),
        (2, br#"{"username":"fuzz","userVerification":"required"}"#),
        (2, b"{}"),
        (11, br#"{"code":"123456"}"#),
        (14, br#"{"username":"fuzz","code":"123456"}"#),
        (15, br#"{"username":"fuzz","code":"abcd-efgh-ijkl"}"#),
        (6, br#"{"name":"my key"}"#),
    ];
    for (route, body) in bodies {
        for flags in [0u8, 3, 7] {
            let mut m = vec![*route, flags, 0];
            m.extend_from_slice(body);
            s.put("http_router", &m);
        }
    }
    for (route, path) in [(4u8, ""), (5, ""), (9, ""), (10, ""), (16, ""), (7, "AAAA")] {
        let mut m = vec![route, 7, path.len() as u8];
        m.extend_from_slice(path.as_bytes());
        s.put("http_router", &m);
    }

    // Captured CTAPHID traffic.
    let log = record_traffic();
    assert!(log.len() > 20, "the recording transport saw the traffic");
    let to_dev: Vec<Report> = log.iter().filter(|(d, _)| *d == Dir::HostToDevice).map(|(_, r)| *r).collect();
    let to_host: Vec<Report> = log.iter().filter(|(d, _)| *d == Dir::DeviceToHost).map(|(_, r)| *r).collect();
    // Device side: each host report is step opcode 0x00 + the report; one
    // seed per message exchange window keeps the seeds small.
    for w in to_dev.chunks(8) {
        let mut m = Vec::new();
        for r in w {
            m.push(0);
            m.extend_from_slice(r);
            m.push(0xc0);
        }
        s.put("ctaphid_device", &m);
    }
    // Host side: raw device reports (mode 0 and 2), and the CBOR responses as messages (mode 1 and 3).
    for w in to_host.chunks(12) {
        for mode in [0u8, 2] {
            let mut m = vec![mode, 0x0d];
            for r in w {
                m.extend_from_slice(r);
            }
            s.put("ctaphid_host", &m);
        }
    }
    let responses: Vec<Vec<u8>> =
        messages(&log, Dir::DeviceToHost).into_iter().filter(|(c, _)| *c == cmd::CBOR).map(|(_, p)| p).collect();
    let requests: Vec<Vec<u8>> =
        messages(&log, Dir::HostToDevice).into_iter().filter(|(c, _)| *c == cmd::CBOR).map(|(_, p)| p).collect();
    let u2f: Vec<Vec<u8>> =
        messages(&log, Dir::HostToDevice).into_iter().filter(|(c, _)| *c == cmd::MSG).map(|(_, p)| p).collect();
    assert!(!responses.is_empty() && !requests.is_empty());
    for w in responses.chunks(6) {
        for mode in [1u8, 3] {
            let mut m = vec![mode, 0x0d];
            m.extend_from_slice(&u16_framed(w));
            s.put("ctaphid_host", &m);
        }
    }
    for r in &responses {
        s.put("cbor_decode", r.get(1..).unwrap_or_default());
        for sel in 0..6u8 {
            let mut m = vec![sel];
            m.extend_from_slice(r);
            s.put("ctap2_responses", &m);
        }
    }
    for r in &requests {
        s.put("authenticator_ctap2", &u16_framed(std::slice::from_ref(r)));
        if let Some((&c, body)) = r.split_first() {
            s.put("cbor_ciborium", body);
            let sel = match c {
                0x01 => 6,
                0x02 => 7,
                0x06 => 8,
                0x0a | 0x41 => 9,
                0x0d => 10,
                0x0c => 11,
                _ => continue,
            };
            let mut m = vec![sel];
            m.extend_from_slice(body);
            s.put("ctap2_responses", &m);
        }
    }
    s.put("authenticator_ctap2", &u16_framed(&requests));
    for a in &u2f {
        let mut m = vec![0];
        m.extend_from_slice(a);
        s.put("ctap1_apdu", &m);
        let mut f = vec![0xff];
        f.extend_from_slice(a);
        s.put("authenticator_ctap2", &u16_framed(&[f]));
    }
    s.put("ctap1_apdu", &[3, 3]);
    assert!(s.written > 100, "seeds written: {}", s.written);
}

/// RFC 4648 base32 without padding.
fn data_encoding_base32(b: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &x in b {
        acc = (acc << 8) | x as u32;
        bits += 8;
        while bits >= 5 {
            out.push(A[((acc >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Reproducers shared with tests/fuzz_regressions.rs.
mod regressions {
    /// clientDataJSON whose origin host has a multi-byte UTF-8 character
    /// where `host_within_rp_id` slices: "aéxample.com" is 13 bytes, and
    /// its last 11 (the length of "example.com") start inside "é" (issue 16
    /// finding 1).
    pub fn non_ascii_origin_client_data() -> Vec<u8> {
        let challenge = hwkey::proto::webauthn::b64url_encode(&super::CHALLENGE);
        format!(r#"{{"type":"webauthn.get","challenge":"{challenge}","origin":"https://a\u00e9xample.com"}}"#)
            .into_bytes()
    }

    /// A CBOR map of `n` distinct integer keys (issue 16 finding 2: the
    /// duplicate-key check compares each key with every earlier one).
    pub fn big_map(n: usize) -> Vec<u8> {
        let m: Vec<_> =
            (0..n as i64).map(|i| (hwkey::proto::cbor::Value::from(i), hwkey::proto::cbor::Value::Null)).collect();
        hwkey::proto::cbor::Value::Map(m).to_vec()
    }
}

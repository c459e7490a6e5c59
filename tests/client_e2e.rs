//! The client and the software authenticator, meeting only through 64-byte
//! CTAPHID reports: in memory and over UDP.
#![cfg(all(feature = "client", feature = "virtual", feature = "server"))]

use hwkey::authenticator::{Authenticator, UserPresence};
use hwkey::client::webauthn::{FixedPin, WebAuthnClient, prf_salt};
use hwkey::client::{CancelToken, ClientError, Device, Op, Progress};
use hwkey::crypto::{cose_verify, default_provider};
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::auth_data::AuthenticatorData;
use hwkey::proto::cose::CoseKey;
use hwkey::proto::webauthn::*;
use hwkey::transport::ctaphid::{DeviceConfig, Handler, MessageKind, Outcome};
use hwkey::transport::memory::MemoryDevice;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ORIGIN: &str = "https://login.example.com";

fn op() -> Op {
    Op::timeout(Duration::from_secs(10))
}

fn authenticator() -> Authenticator {
    Authenticator::in_memory().unwrap()
}

fn memory() -> MemoryDevice {
    MemoryDevice::spawn(authenticator(), DeviceConfig::default())
}

fn open(dev: &MemoryDevice) -> Device {
    Device::open(dev.connect(), &op()).unwrap()
}

fn creation(user: &[u8], extra: serde_json::Value) -> CreationOptionsJson {
    let mut v = json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64url_encode(user), "name": format!("user-{}", user[0]), "displayName": "User"},
        "challenge": "AAECAwQFBgcICQoLDA0ODw",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -8}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "discouraged"},
        "attestation": "direct"
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn request(extra: serde_json::Value) -> RequestOptionsJson {
    let mut v =
        json!({"challenge": "ZmVkY2JhOTg3NjU0MzIxMA", "rpId": "example.com", "userVerification": "discouraged"});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

struct Registered {
    id: Vec<u8>,
    key: CoseKey,
    response: RegistrationResponseJson,
}

fn register(dev: &mut Device, pin: Option<&str>, opts: &CreationOptionsJson) -> Result<Registered, ClientError> {
    let ui = FixedPin::new(pin.map(str::to_owned));
    let r = WebAuthnClient::new(&ui).register(dev, opts, ORIGIN, &op())?;
    let att = AttestationObject::parse(&r.response.attestation_object).unwrap();
    let acd = att.auth_data.attested_credential.clone().unwrap();
    assert_eq!(acd.credential_id, r.raw_id.0);
    // The client data is the spec's serialization, with our origin.
    let cd = CollectedClientData::parse(&r.response.client_data_json).unwrap();
    assert_eq!((cd.type_.as_str(), cd.origin.as_str()), ("webauthn.create", ORIGIN));
    assert_eq!(cd.to_json_bytes(), r.response.client_data_json.0);
    // Packed attestation: the signature covers authData || SHA-256(clientDataJSON).
    if att.fmt == "packed" && att.att_stmt.get_text("x5c").is_none() {
        let sig = att.att_stmt.get_text("sig").and_then(|s| s.as_bytes()).unwrap();
        let mut msg = att.auth_data_raw.clone();
        msg.extend_from_slice(&default_provider().sha256(&[&r.response.client_data_json]));
        cose_verify::verify(default_provider(), &acd.public_key, &msg, sig).unwrap();
    }
    Ok(Registered { id: acd.credential_id, key: acd.public_key, response: r })
}

fn login(
    dev: &mut Device,
    pin: Option<&str>,
    opts: &RequestOptionsJson,
) -> Result<AuthenticationResponseJson, ClientError> {
    let ui = FixedPin::new(pin.map(str::to_owned));
    WebAuthnClient::new(&ui).authenticate(dev, opts, ORIGIN, &op())
}

fn verify_assertion(a: &AuthenticationResponseJson, key: &CoseKey) -> AuthenticatorData {
    let mut msg = a.response.authenticator_data.0.clone();
    msg.extend_from_slice(&default_provider().sha256(&[&a.response.client_data_json]));
    cose_verify::verify(default_provider(), key, &msg, &a.response.signature).expect("assertion signature verifies");
    let ad = AuthenticatorData::parse(&a.response.authenticator_data).unwrap();
    assert_eq!(ad.rp_id_hash, default_provider().sha256(&[b"example.com"]));
    assert!(ad.flags.up());
    let cd = CollectedClientData::parse(&a.response.client_data_json).unwrap();
    assert_eq!(cd.type_, "webauthn.get");
    ad
}

#[test]
fn register_and_login_in_memory() {
    let d = memory();
    let mut dev = open(&d);
    assert!(dev.is_ctap21());
    let reg = register(&mut dev, None, &creation(&[1], json!({"extensions": {"credProps": true}}))).unwrap();
    assert_eq!(reg.response.client_extension_results.cred_props, Some(CredPropsOutput { rk: Some(true) }));
    assert!(reg.response.response.public_key.is_some());
    let a = login(
        &mut dev,
        None,
        &request(json!({"allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.id)}]})),
    )
    .unwrap();
    assert_eq!(a.raw_id.0, reg.id);
    let ad = verify_assertion(&a, &reg.key);
    assert!(!ad.flags.uv());
    // Counters go up.
    let b = login(
        &mut dev,
        None,
        &request(json!({"allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.id)}]})),
    )
    .unwrap();
    assert!(verify_assertion(&b, &reg.key).sign_count > ad.sign_count);
}

#[test]
fn attestation_none_strips_the_statement() {
    let d = memory();
    let mut dev = open(&d);
    let reg = register(&mut dev, None, &creation(&[1], json!({"attestation": "none"}))).unwrap();
    let att = AttestationObject::parse(&reg.response.response.attestation_object).unwrap();
    assert_eq!(att.fmt, "none");
    assert_eq!(att.att_stmt, hwkey::proto::cbor::Value::Map(vec![]));
}

#[test]
fn discoverable_login_with_several_accounts() {
    let d = memory();
    let mut dev = open(&d);
    let a = register(&mut dev, None, &creation(&[1], json!({}))).unwrap();
    let b = register(&mut dev, None, &creation(&[2], json!({}))).unwrap();
    let r = login(&mut dev, None, &request(json!({}))).unwrap();
    assert_eq!(r.response.user_handle.as_ref().map(|h| h.0.clone()), Some(vec![2]), "newest account first");
    assert_eq!(r.raw_id.0, b.id);
    verify_assertion(&r, &b.key);
    let _ = a;
}

#[test]
fn pin_set_then_user_verification() {
    let d = memory();
    let mut dev = open(&d);
    // UV required on a key without PIN: a clear "set a PIN first".
    let req_uv =
        creation(&[1], json!({"authenticatorSelection": {"residentKey": "required", "userVerification": "required"}}));
    let e = register(&mut dev, None, &req_uv).err().unwrap();
    assert!(matches!(e, ClientError::PinNotSet), "{e:?}");
    assert!(e.to_string().contains("set a PIN first"));

    dev.set_pin("123456", &op()).unwrap();
    assert_eq!(dev.option("clientPin"), Some(true));
    assert_eq!(dev.pin_retries(&op()).unwrap().0, 8);
    let e = register(&mut dev, None, &req_uv).err().unwrap();
    assert!(matches!(e, ClientError::PinRequired), "{e:?}");
    let reg = register(&mut dev, Some("123456"), &req_uv).unwrap();
    let ad = AttestationObject::parse(&reg.response.response.attestation_object).unwrap().auth_data;
    assert!(ad.flags.uv());

    let allow = json!({"allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.id)}], "userVerification": "required"});
    let e = login(&mut dev, Some("000000"), &request(allow.clone())).err().unwrap();
    assert!(matches!(e, ClientError::PinInvalid { retries: Some(7) }), "{e:?}");
    let a = login(&mut dev, Some("123456"), &request(allow)).unwrap();
    assert!(verify_assertion(&a, &reg.key).flags.uv());

    dev.change_pin("123456", "654321", &op()).unwrap();
    let e = dev.pin_token("123456", 2, Some("example.com"), &op()).err().unwrap();
    assert!(matches!(e, ClientError::PinInvalid { .. }));
    dev.pin_token("654321", 2, Some("example.com"), &op()).unwrap();
}

#[test]
fn pin_lockout_after_three_wrong_pins() {
    let d = memory();
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    for left in [7, 6] {
        let e = dev.pin_token("999999", 2, None, &op()).err().unwrap();
        assert!(matches!(e, ClientError::PinInvalid { retries: Some(n) } if n == left), "{e:?}");
    }
    let e = dev.pin_token("999999", 2, None, &op()).err().unwrap();
    assert!(matches!(e, ClientError::PinAuthBlocked), "{e:?}");
    let e = dev.pin_token("123456", 2, None, &op()).err().unwrap();
    assert!(matches!(e, ClientError::PinAuthBlocked), "{e:?}");
}

#[test]
fn prf_and_hmac_secret() {
    let d = memory();
    let mut dev = open(&d);
    let reg = register(&mut dev, None, &creation(&[1], json!({"extensions": {"prf": {}}}))).unwrap();
    assert_eq!(reg.response.client_extension_results.prf.as_ref().and_then(|p| p.enabled), Some(true));
    let id = b64url_encode(&reg.id);
    let allow = json!([{"type": "public-key", "id": id}]);
    let eval = |dev: &mut Device, first: &[u8], second: Option<&[u8]>| {
        let mut values = json!({"first": b64url_encode(first)});
        if let Some(s) = second {
            values["second"] = json!(b64url_encode(s));
        }
        let r = login(dev, None, &request(json!({"allowCredentials": allow, "extensions": {"prf": {"eval": values}}})))
            .unwrap();
        verify_assertion(&r, &reg.key);
        r.client_extension_results.prf.unwrap().results.unwrap()
    };
    let a = eval(&mut dev, b"salt one", None);
    let b = eval(&mut dev, b"salt one", Some(b"salt two"));
    assert_eq!(a.first, b.first, "same salt, same output");
    assert_ne!(b.first.0, b.second.as_ref().unwrap().0);
    assert_eq!(a.first.len(), 32);

    // evalByCredential wins over eval for the matching credential.
    let r = login(
        &mut dev,
        None,
        &request(json!({"allowCredentials": allow, "extensions": {"prf": {
            "eval": {"first": b64url_encode(b"other")},
            "evalByCredential": {id.clone(): {"first": b64url_encode(b"salt one")}}}}})),
    )
    .unwrap();
    assert_eq!(r.client_extension_results.prf.unwrap().results.unwrap().first, a.first);

    // PRF is hmac-secret with the salt SHA-256("WebAuthn PRF" || 0x00 || input).
    let salt = prf_salt(default_provider(), b"salt one");
    let r = login(
        &mut dev,
        None,
        &request(json!({"allowCredentials": allow, "extensions": {"hmacGetSecret": {"salt1": b64url_encode(&salt)}}})),
    )
    .unwrap();
    assert_eq!(r.client_extension_results.hmac_get_secret.unwrap().output1, a.first);
}

#[test]
fn exclude_and_allow_lists_longer_than_the_key_takes() {
    let d = memory();
    let mut dev = open(&d);
    let max = dev.info().unwrap().max_credential_count_in_list.unwrap() as usize;
    let reg = register(&mut dev, None, &creation(&[1], json!({}))).unwrap();
    let mut list: Vec<serde_json::Value> =
        (0..max * 2 + 3).map(|i| json!({"type": "public-key", "id": b64url_encode(&[i as u8; 40])})).collect();
    // Too long for the key: filtered out by maxCredentialIdLength.
    list.push(json!({"type": "public-key", "id": b64url_encode(&[9u8; 600])}));
    list.push(json!({"type": "public-key", "id": b64url_encode(&reg.id)}));
    let e = register(&mut dev, None, &creation(&[2], json!({"excludeCredentials": list}))).err().unwrap();
    assert!(matches!(e, ClientError::CredentialExcluded), "{e:?}");
    let a = login(&mut dev, None, &request(json!({"allowCredentials": list}))).unwrap();
    assert_eq!(a.raw_id.0, reg.id);
    verify_assertion(&a, &reg.key);
    // Nothing matching at all.
    list.pop();
    let e = login(&mut dev, None, &request(json!({"allowCredentials": list}))).err().unwrap();
    assert!(matches!(e, ClientError::NoCredentials), "{e:?}");
}

#[test]
fn cred_protect_required_hides_the_credential_without_uv() {
    let d = memory();
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let opts = creation(
        &[1],
        json!({"extensions": {"credentialProtectionPolicy": "userVerificationRequired", "enforceCredentialProtectionPolicy": true}}),
    );
    let reg = register(&mut dev, Some("123456"), &opts).unwrap();
    let ad = AttestationObject::parse(&reg.response.response.attestation_object).unwrap().auth_data;
    assert_eq!(ad.extension("credProtect").and_then(|v| v.as_u64()), Some(3));
    let e = login(&mut dev, None, &request(json!({}))).err().unwrap();
    assert!(matches!(e, ClientError::NoCredentials), "{e:?}");
    let a = login(&mut dev, Some("123456"), &request(json!({"userVerification": "required"}))).unwrap();
    verify_assertion(&a, &reg.key);
}

#[test]
fn rp_id_must_be_a_registrable_suffix_of_the_origin() {
    let d = memory();
    let mut dev = open(&d);
    let ui = FixedPin::new(None);
    let c = WebAuthnClient::new(&ui);
    for (rp, origin) in
        [("com", "https://example.com"), ("example.org", "https://example.com"), ("example.com", "http://example.com")]
    {
        let mut o = creation(&[1], json!({}));
        o.rp.id = Some(rp.into());
        let e = c.register(&mut dev, &o, origin, &op()).err().unwrap();
        assert_eq!(e.code(), "security_error", "{rp} at {origin}");
    }
}

#[test]
fn cancel_while_waiting_for_touch() {
    let mut auth = authenticator();
    auth.set_user_presence(UserPresence::Delay(Duration::from_secs(20)));
    let d = MemoryDevice::spawn(auth, DeviceConfig::default());
    let mut dev = open(&d);
    let token = CancelToken::new();
    let t2 = token.clone();
    let o = Op::timeout(Duration::from_secs(10)).with_cancel(token).on_progress(move |p| {
        if p == Progress::WaitingForTouch {
            t2.cancel();
        }
    });
    let ui = FixedPin::new(None);
    let t0 = Instant::now();
    let e = WebAuthnClient::new(&ui).register(&mut dev, &creation(&[1], json!({})), ORIGIN, &o).err().unwrap();
    assert!(matches!(e, ClientError::Cancelled), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // And a timeout ends in Timeout, not a hang.
    let o = Op::timeout(Duration::from_millis(400));
    let e = WebAuthnClient::new(&ui).register(&mut dev, &creation(&[1], json!({})), ORIGIN, &o).err().unwrap();
    assert!(matches!(e, ClientError::Timeout), "{e:?}");
}

/// A U2F-only key: the software authenticator with CBOR switched off.
struct U2fOnly(Authenticator);

impl Handler for U2fOnly {
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome {
        self.0.start(kind, request, now)
    }
    fn supports_cbor(&self) -> bool {
        false
    }
}

#[test]
fn u2f_only_key_falls_back_to_ctap1() {
    let d = MemoryDevice::spawn(U2fOnly(authenticator()), DeviceConfig::default());
    let mut dev = open(&d);
    assert!(!dev.is_ctap2());
    let opts = creation(
        &[1],
        json!({"authenticatorSelection": {"residentKey": "discouraged", "userVerification": "discouraged"}}),
    );
    let reg = register(&mut dev, None, &opts).unwrap();
    let a = login(
        &mut dev,
        None,
        &request(json!({"allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.id)}]})),
    )
    .unwrap();
    verify_assertion(&a, &reg.key);
    let e = login(&mut dev, None, &request(json!({}))).err().unwrap();
    assert_eq!(e.code(), "unsupported");
}

#[test]
fn appid_extension_finds_u2f_credentials() {
    let appid = "https://example.com/appid.json";
    let d = MemoryDevice::spawn(U2fOnly(authenticator()), DeviceConfig::default());
    let mut dev = open(&d);
    let app = default_provider().sha256(&[appid.as_bytes()]);
    let reg = dev.u2f_register(&[0; 32], &app, &op()).unwrap();
    let key = CoseKey::p256_from_sec1(&reg.public_key, hwkey::proto::cose::CoseAlgorithm::ES256).unwrap();
    let r = login(
        &mut dev,
        None,
        &request(json!({"allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.key_handle)}],
            "extensions": {"appid": appid}})),
    )
    .unwrap();
    assert_eq!(r.client_extension_results.appid, Some(true));
    let mut msg = r.response.authenticator_data.0.clone();
    msg.extend_from_slice(&default_provider().sha256(&[&r.response.client_data_json]));
    cose_verify::verify(default_provider(), &key, &msg, &r.response.signature).unwrap();
    assert_eq!(AuthenticatorData::parse(&r.response.authenticator_data).unwrap().rp_id_hash, app);
}

#[test]
fn over_udp() {
    use hwkey::transport::udp::UdpServer;
    let server = UdpServer::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let stop = CancelToken::new();
    let s2 = stop.clone();
    let th = std::thread::spawn(move || server.serve(&mut authenticator(), &s2).unwrap());
    let spec: hwkey::client::discovery::DeviceSpec = format!("udp:{addr}").parse().unwrap();
    let mut dev = spec.open(&op()).unwrap();
    dev.set_pin("4321abcd", &op()).unwrap();
    let opts = creation(
        &[5],
        json!({"extensions": {"prf": {}}, "authenticatorSelection": {"residentKey": "required", "userVerification": "required"}}),
    );
    let reg = register(&mut dev, Some("4321abcd"), &opts).unwrap();
    let a = login(
        &mut dev,
        Some("4321abcd"),
        &request(json!({"userVerification": "required", "extensions": {"prf": {"eval": {"first": "AAAA"}}}})),
    )
    .unwrap();
    assert!(verify_assertion(&a, &reg.key).flags.uv());
    assert!(a.client_extension_results.prf.unwrap().results.is_some());
    stop.cancel();
    th.join().unwrap();
}

/// Records the command byte of every CTAP2 request.
struct Counting(Authenticator, Arc<Mutex<Vec<u8>>>);

impl Handler for Counting {
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome {
        if kind == MessageKind::Cbor {
            self.1.lock().unwrap().push(request[0]);
        }
        self.0.start(kind, request, now)
    }
    fn poll(&mut self, now: Instant) -> Outcome {
        Handler::poll(&mut self.0, now)
    }
    fn cancel(&mut self) {
        Handler::cancel(&mut self.0)
    }
}

#[test]
fn reports_for_a_pin_protected_login() {
    let commands: Arc<Mutex<Vec<u8>>> = Arc::default();
    let d = MemoryDevice::spawn(Counting(authenticator(), commands.clone()), DeviceConfig::default());
    let reg = {
        let mut dev = open(&d);
        dev.set_pin("123456", &op()).unwrap();
        register(&mut dev, Some("123456"), &creation(&[1], json!({}))).unwrap()
    };
    let counter = d.counter();
    counter.reset();
    commands.lock().unwrap().clear();
    // A fresh process's view: open the key, then one PIN-protected login.
    let mut dev = open(&d);
    let a = login(
        &mut dev,
        Some("123456"),
        &request(json!({"userVerification": "required",
            "allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.id)}]})),
    )
    .unwrap();
    verify_assertion(&a, &reg.key);
    let (to_dev, to_host) = counter.get();
    eprintln!("PIN-protected login: {to_dev} reports to the key, {to_host} from it, {} in all", to_dev + to_host);
    // getInfo once, one key agreement, one token, one getAssertion: nothing redundant.
    assert_eq!(*commands.lock().unwrap(), vec![0x04, 0x06, 0x06, 0x02]);
    // 29: the CTAP 2.2 getInfo (FIDO_2_2, hmac-secret-mc, thirdPartyPayment,
    // perCredMgmtRO, encIdentifier, encCredStoreState, ...) and its algorithms
    // list (ES256, EdDSA, ESP256, Ed25519, ML-DSA-44/65/87) take three reports
    // more than the CTAP 2.1 getInfo did.
    assert!(to_dev + to_host <= 29, "{} reports", to_dev + to_host);
}

#[test]
fn touch_to_select_among_several_keys() {
    use hwkey::client::discovery::select_by_touch;
    // Key A refuses, key B is touched after a moment, key C is never touched.
    let mut a = authenticator();
    a.set_user_presence(UserPresence::Deny);
    let mut b = authenticator();
    b.set_user_presence(UserPresence::Delay(Duration::from_millis(300)));
    let b_commands: Arc<Mutex<Vec<u8>>> = Arc::default();
    let mut c = authenticator();
    c.set_user_presence(UserPresence::Delay(Duration::from_secs(60)));
    let da = MemoryDevice::spawn(a, DeviceConfig::default());
    let db = MemoryDevice::spawn(Counting(b, b_commands.clone()), DeviceConfig::default());
    let dc = MemoryDevice::spawn(c, DeviceConfig::default());
    let devices = vec![open(&da), open(&db), open(&dc)];
    let t0 = Instant::now();
    let mut chosen = select_by_touch(devices, &op()).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "the untouched key was cancelled");
    assert!(b_commands.lock().unwrap().contains(&0x0b), "authenticatorSelection was used");
    // The chosen one is B: a registration lands there.
    let n = b_commands.lock().unwrap().len();
    register(&mut chosen, None, &creation(&[1], json!({}))).unwrap();
    assert!(b_commands.lock().unwrap().len() > n);
}

#[test]
fn large_blob_write_then_read() {
    let d = memory();
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let reg = register(
        &mut dev,
        Some("123456"),
        &creation(&[1], json!({"extensions": {"largeBlob": {"support": "required"}}})),
    )
    .unwrap();
    assert_eq!(reg.response.client_extension_results.large_blob.as_ref().and_then(|l| l.supported), Some(true));
    let other = register(
        &mut dev,
        Some("123456"),
        &creation(&[2], json!({"extensions": {"largeBlob": {"support": "preferred"}}})),
    )
    .unwrap();
    let allow = |id: &[u8]| json!([{"type": "public-key", "id": b64url_encode(id)}]);
    let blob: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
    for (id, data) in [(&reg.id, blob.clone()), (&other.id, b"second".to_vec())] {
        let w = login(
            &mut dev,
            Some("123456"),
            &request(
                json!({"allowCredentials": allow(id), "extensions": {"largeBlob": {"write": b64url_encode(&data)}}}),
            ),
        )
        .unwrap();
        assert_eq!(w.client_extension_results.large_blob.unwrap().written, Some(true));
    }
    for (id, data) in [(&reg.id, blob), (&other.id, b"second".to_vec())] {
        let r = login(
            &mut dev,
            None,
            &request(json!({"allowCredentials": allow(id), "extensions": {"largeBlob": {"read": true}}})),
        )
        .unwrap();
        assert_eq!(r.client_extension_results.large_blob.unwrap().blob.map(|b| b.0), Some(data));
    }
    // Misuse is refused before the key is touched.
    let e = login(&mut dev, None, &request(json!({"extensions": {"largeBlob": {"write": "AAAA"}}}))).err().unwrap();
    assert_eq!(e.code(), "invalid_request");
}

/// The software authenticator with its getInfo rewritten (to play an older
/// or differently configured key).
struct Rewrite<F: Fn(&mut hwkey::proto::ctap2::get_info::GetInfoResponse) + Send>(Authenticator, F);

impl<F: Fn(&mut hwkey::proto::ctap2::get_info::GetInfoResponse) + Send> Handler for Rewrite<F> {
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome {
        use hwkey::proto::ctap2::CtapCodec;
        let out = self.0.start(kind, request, now);
        match (&out, request.first()) {
            (Outcome::Done(r), Some(0x04)) if kind == MessageKind::Cbor && r.first() == Some(&0) => {
                let mut info = hwkey::proto::ctap2::get_info::GetInfoResponse::from_cbor(&r[1..]).unwrap();
                (self.1)(&mut info);
                let mut b = vec![0];
                b.extend_from_slice(&info.to_cbor());
                Outcome::Done(b)
            }
            _ => out,
        }
    }
    fn poll(&mut self, now: Instant) -> Outcome {
        Handler::poll(&mut self.0, now)
    }
    fn cancel(&mut self) {
        Handler::cancel(&mut self.0)
    }
}

#[test]
fn pin_protocol_one() {
    let d = MemoryDevice::spawn(
        Rewrite(authenticator(), |i: &mut hwkey::proto::ctap2::get_info::GetInfoResponse| {
            i.pin_uv_auth_protocols = Some(vec![1])
        }),
        DeviceConfig::default(),
    );
    let mut dev = open(&d);
    assert_eq!(dev.pin_protocol().number(), 1);
    dev.set_pin("123456", &op()).unwrap();
    let opts = creation(
        &[1],
        json!({"extensions": {"prf": {}}, "authenticatorSelection": {"residentKey": "required", "userVerification": "required"}}),
    );
    let reg = register(&mut dev, Some("123456"), &opts).unwrap();
    let a = login(
        &mut dev,
        Some("123456"),
        &request(json!({"userVerification": "required", "extensions": {"prf": {"eval": {"first": "AAAA"}}}})),
    )
    .unwrap();
    assert!(verify_assertion(&a, &reg.key).flags.uv());
    assert_eq!(a.client_extension_results.prf.unwrap().results.unwrap().first.len(), 32);
}

#[test]
fn ctap20_key_is_selected_through_a_dummy_make_credential() {
    use hwkey::client::discovery::wait_for_touch;
    let d = MemoryDevice::spawn(
        Rewrite(authenticator(), |i: &mut hwkey::proto::ctap2::get_info::GetInfoResponse| {
            i.versions.retain(|v| v != "FIDO_2_1")
        }),
        DeviceConfig::default(),
    );
    let mut dev = open(&d);
    assert!(dev.is_ctap2() && !dev.is_ctap21());
    wait_for_touch(&mut dev, &op()).unwrap();
    // The dummy request left no credential behind.
    let e = login(&mut dev, None, &request(json!({}))).err().unwrap();
    assert!(matches!(e, ClientError::NoCredentials), "{e:?}");
}

/// A key with built-in UV that is locked out: getPinUvAuthTokenUsingUv answers UV_BLOCKED.
struct UvLocked(Authenticator, Arc<Mutex<u32>>);

impl Handler for UvLocked {
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome {
        use hwkey::proto::ctap2::CtapCodec;
        if kind == MessageKind::Cbor && request.first() == Some(&0x06) {
            let v = hwkey::proto::cbor::decode(&request[1..]).unwrap();
            if v.get_int(2).and_then(|s| s.as_u64()) == Some(6) {
                *self.1.lock().unwrap() += 1;
                return Outcome::Done(vec![0x3c]);
            }
        }
        let out = self.0.start(kind, request, now);
        match (&out, request.first()) {
            (Outcome::Done(r), Some(0x04)) if kind == MessageKind::Cbor && r.first() == Some(&0) => {
                let mut info = hwkey::proto::ctap2::get_info::GetInfoResponse::from_cbor(&r[1..]).unwrap();
                info.options.get_or_insert_default().insert("uv".into(), true);
                let mut b = vec![0];
                b.extend_from_slice(&info.to_cbor());
                Outcome::Done(b)
            }
            _ => out,
        }
    }
    fn poll(&mut self, now: Instant) -> Outcome {
        Handler::poll(&mut self.0, now)
    }
}

#[test]
fn uv_lockout_falls_back_to_the_pin() {
    let uv_attempts: Arc<Mutex<u32>> = Arc::default();
    let d = MemoryDevice::spawn(UvLocked(authenticator(), uv_attempts.clone()), DeviceConfig::default());
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let opts =
        creation(&[1], json!({"authenticatorSelection": {"residentKey": "required", "userVerification": "required"}}));
    let reg = register(&mut dev, Some("123456"), &opts).unwrap();
    assert_eq!(*uv_attempts.lock().unwrap(), 1, "built-in UV was tried first");
    let a = login(&mut dev, Some("123456"), &request(json!({"userVerification": "required"}))).unwrap();
    assert!(verify_assertion(&a, &reg.key).flags.uv());
}

#[test]
fn hwkeys_relying_party_accepts_what_the_client_produces() {
    use hwkey::server::{
        AttestationConveyance, AuthenticationRequest, RegistrationRequest, RelyingParty, ResidentKeyRequirement,
        RpConfig, UserVerification,
    };
    use std::time::SystemTime;
    let rp = RelyingParty::new(RpConfig::new("example.com", "Example", ORIGIN)).unwrap();
    let d = memory();
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let ui = FixedPin::new(Some("123456".into()));
    for attestation in [AttestationConveyance::None, AttestationConveyance::Direct] {
        let (opts, state) = rp
            .start_registration(
                RegistrationRequest {
                    user_id: vec![attestation as u8 + 1; 16],
                    user_name: "alice".into(),
                    resident_key: Some(ResidentKeyRequirement::Required),
                    user_verification: Some(UserVerification::Required),
                    attestation: Some(attestation),
                    ..Default::default()
                },
                SystemTime::now(),
            )
            .unwrap();
        let ui = FixedPin::new(Some("123456".into()));
        let reg = WebAuthnClient::new(&ui).register(&mut dev, &opts, ORIGIN, &op()).unwrap();
        let json = serde_json::to_vec(&reg).unwrap();
        let result = rp.finish_registration_json(state, &json, SystemTime::now()).unwrap();
        assert!(result.user_verified);
        let record = result.credential;
        assert_eq!(record.discoverable, Some(true));

        // Discoverable sign-in, UV required.
        let (opts, state) = rp
            .start_authentication(
                AuthenticationRequest { user_verification: Some(UserVerification::Required), ..Default::default() },
                SystemTime::now(),
            )
            .unwrap();
        let a = WebAuthnClient::new(&FixedPin::new(Some("123456".into())))
            .authenticate(&mut dev, &opts, ORIGIN, &op())
            .unwrap();
        let json = serde_json::to_vec(&a).unwrap();
        let r = rp
            .finish_authentication_json(
                state,
                &json,
                |id, _| (id == record.credential_id.0.as_slice()).then_some(&record),
                SystemTime::now(),
            )
            .unwrap();
        assert_eq!(r.credential_id, record.credential_id.0);
    }
    let _ = ui;
}

fn cred_protect_3(user: &[u8], extra: serde_json::Value) -> CreationOptionsJson {
    let mut v = json!({
        "authenticatorSelection": {"residentKey": "discouraged", "userVerification": "required"},
        "extensions": {"credentialProtectionPolicy": "userVerificationRequired", "enforceCredentialProtectionPolicy": true}
    });
    merge(&mut v, extra);
    creation(user, v)
}

fn long_list(n: usize, real: &[u8]) -> Vec<serde_json::Value> {
    let mut list: Vec<serde_json::Value> =
        (0..n).map(|i| json!({"type": "public-key", "id": b64url_encode(&[i as u8; 40])})).collect();
    list.push(json!({"type": "public-key", "id": b64url_encode(real)}));
    list
}

#[test]
fn uv_required_login_finds_a_cred_protect_3_credential_in_a_long_allow_list() {
    // D3: the silent pre-flight must carry the token, or credProtect=3
    // credentials are invisible to it.
    let d = memory();
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let reg = register(&mut dev, Some("123456"), &cred_protect_3(&[1], json!({}))).unwrap();
    let max = dev.info().unwrap().max_credential_count_in_list.unwrap() as usize;
    let list = long_list(max + 2, &reg.id);
    let a =
        login(&mut dev, Some("123456"), &request(json!({"allowCredentials": list, "userVerification": "required"})))
            .unwrap();
    assert_eq!(a.raw_id.0, reg.id);
    assert!(verify_assertion(&a, &reg.key).flags.uv());

    // A key that does not report maxCredentialCountInList takes one at a time.
    let d = MemoryDevice::spawn(
        Rewrite(authenticator(), |i: &mut hwkey::proto::ctap2::get_info::GetInfoResponse| {
            i.max_credential_count_in_list = None
        }),
        DeviceConfig::default(),
    );
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let reg = register(&mut dev, Some("123456"), &cred_protect_3(&[1], json!({}))).unwrap();
    let list = long_list(1, &reg.id);
    let a =
        login(&mut dev, Some("123456"), &request(json!({"allowCredentials": list, "userVerification": "required"})))
            .unwrap();
    assert_eq!(a.raw_id.0, reg.id);
}

#[test]
fn long_exclude_list_blocks_a_duplicate_of_a_cred_protect_3_credential() {
    // D3b.
    let d = memory();
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let reg = register(&mut dev, Some("123456"), &cred_protect_3(&[1], json!({}))).unwrap();
    let max = dev.info().unwrap().max_credential_count_in_list.unwrap() as usize;
    let list = long_list(max + 2, &reg.id);
    let e = register(&mut dev, Some("123456"), &cred_protect_3(&[1], json!({"excludeCredentials": list})))
        .err()
        .expect("a duplicate was created");
    assert!(matches!(e, ClientError::CredentialExcluded), "{e:?}");
}

/// Answers PIN prompts from a list, in order.
struct PinSequence(Mutex<Vec<&'static str>>);

impl hwkey::client::webauthn::UserInteraction for PinSequence {
    fn request_pin(&self, _: Option<u64>) -> Option<zeroize::Zeroizing<String>> {
        let mut v = self.0.lock().unwrap();
        (!v.is_empty()).then(|| zeroize::Zeroizing::new(v.remove(0).to_owned()))
    }
}

/// Like a 2.1 key with alwaysUv: a getAssertion with user presence and
/// without pinUvAuthParam is answered PUAT_REQUIRED.
struct DemandsToken(Authenticator);

impl Handler for DemandsToken {
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome {
        use hwkey::proto::ctap2::CtapCodec;
        use hwkey::proto::ctap2::get_assertion::GetAssertionRequest;
        if kind == MessageKind::Cbor
            && request.first() == Some(&0x02)
            && let Ok(r) = GetAssertionRequest::from_cbor(&request[1..])
            && r.pin_uv_auth_param.is_none()
            && r.options.and_then(|o| o.up) != Some(false)
        {
            return Outcome::Done(vec![0x36]);
        }
        self.0.start(kind, request, now)
    }
    fn poll(&mut self, now: Instant) -> Outcome {
        Handler::poll(&mut self.0, now)
    }
    fn cancel(&mut self) {
        Handler::cancel(&mut self.0)
    }
}

#[test]
fn prf_survives_a_mistyped_pin() {
    // D4: the salts are encrypted under the key agreement in force when the
    // request is sent, not the one a wrong PIN made the key discard.
    let d = MemoryDevice::spawn(DemandsToken(authenticator()), DeviceConfig::default());
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    let reg = register(&mut dev, Some("123456"), &creation(&[1], json!({"extensions": {"prf": {}}}))).unwrap();
    let opts = request(json!({
        "allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.id)}],
        "extensions": {"prf": {"eval": {"first": b64url_encode(b"salt one")}}}
    }));
    let ui = PinSequence(Mutex::new(vec!["000000", "123456"]));
    let a = WebAuthnClient::new(&ui).authenticate(&mut dev, &opts, ORIGIN, &op()).unwrap();
    verify_assertion(&a, &reg.key);
    let first = a.client_extension_results.prf.unwrap().results.unwrap().first;
    assert_eq!(first.len(), 32);
    // The same output as without a typo.
    let ui = PinSequence(Mutex::new(vec!["123456"]));
    let b = WebAuthnClient::new(&ui).authenticate(&mut dev, &opts, ORIGIN, &op()).unwrap();
    assert_eq!(b.client_extension_results.prf.unwrap().results.unwrap().first, first);
}

/// A key that announces CBOR in INIT but answers every CBOR request with a
/// CTAPHID ERROR (INVALID_CMD), as some U2F keys do.
struct CborRefused(hwkey::transport::memory::MemoryTransport, std::collections::VecDeque<hwkey::transport::Report>);

impl hwkey::transport::ReportTransport for CborRefused {
    fn send_report(&mut self, r: &hwkey::transport::Report) -> Result<(), hwkey::transport::TransportError> {
        use hwkey::transport::ctaphid::{Packet, cmd, fragment};
        if let Packet::Init { cid, cmd: cmd::CBOR, .. } = Packet::parse(r) {
            self.1.extend(fragment(cid, cmd::ERROR, &[0x01]).unwrap());
            return Ok(());
        }
        self.0.send_report(r)
    }
    fn recv_report(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<hwkey::transport::Report>, hwkey::transport::TransportError> {
        match self.1.pop_front() {
            Some(r) => Ok(Some(r)),
            None => self.0.recv_report(deadline),
        }
    }
}

#[test]
fn ctaphid_error_to_cbor_falls_back_to_u2f() {
    let d = memory();
    let mut dev = Device::open(CborRefused(d.connect(), Default::default()), &op()).unwrap();
    assert!(dev.init_info().has_cbor());
    assert!(!dev.is_ctap2());
    let opts = creation(
        &[1],
        json!({"authenticatorSelection": {"residentKey": "discouraged", "userVerification": "discouraged"}}),
    );
    let reg = register(&mut dev, None, &opts).unwrap();
    let a = login(
        &mut dev,
        None,
        &request(json!({"allowCredentials": [{"type": "public-key", "id": b64url_encode(&reg.id)}]})),
    )
    .unwrap();
    verify_assertion(&a, &reg.key);
}

/// A key that makes a new key agreement after a PIN change (what the
/// documentation of `Device` promises to expect): here by a power cycle.
struct NewKeyOnPinChange(Authenticator);

impl Handler for NewKeyOnPinChange {
    fn start(&mut self, kind: MessageKind, request: &[u8], now: Instant) -> Outcome {
        use hwkey::proto::ctap2::CtapCodec;
        use hwkey::proto::ctap2::client_pin::{ClientPinRequest, ClientPinSubcommand};
        let change = kind == MessageKind::Cbor
            && request.first() == Some(&0x06)
            && ClientPinRequest::from_cbor(&request[1..])
                .is_ok_and(|r| r.sub_command == ClientPinSubcommand::ChangePin);
        let out = self.0.start(kind, request, now);
        if change && out == Outcome::Done(vec![0]) {
            self.0.power_cycle().unwrap();
        }
        out
    }
}

#[test]
fn pin_change_drops_the_cached_key_agreement() {
    let d = MemoryDevice::spawn(NewKeyOnPinChange(authenticator()), DeviceConfig::default());
    let mut dev = open(&d);
    dev.set_pin("123456", &op()).unwrap();
    dev.pin_token("123456", 2, None, &op()).unwrap();
    dev.change_pin("123456", "654321", &op()).unwrap();
    // With the stale key the new PIN would arrive garbled and burn a retry.
    dev.pin_token("654321", 2, None, &op()).unwrap();
    assert_eq!(dev.pin_retries(&op()).unwrap().0, 8);
}

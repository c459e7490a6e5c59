//! CTAP 2.2 on both ends, client against the software authenticator in
//! process: the FIDO_2_2 getInfo, PRF at creation (hmac-secret-mc) equal to
//! PRF at sign-in, thirdPartyPayment, the persistent pcmr token (lists,
//! cannot delete, survives power cycles, dies with a PIN change), the
//! encrypted getInfo members, pinComplexityPolicy.
#![cfg(all(feature = "client", feature = "virtual"))]

use hwkey::authenticator::{Authenticator, AuthenticatorConfig, AuthenticatorError};
use hwkey::client::pin::permissions;
use hwkey::client::webauthn::{FixedPin, WebAuthnClient};
use hwkey::client::{ClientError, Device, Op};
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::ctap2::CtapStatus;
use hwkey::proto::webauthn::*;
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::MemoryDevice;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORIGIN: &str = "https://login.example.com";
const PIN: &str = "135790";

fn op() -> Op {
    Op::timeout(Duration::from_secs(10))
}

struct Key {
    auth: Arc<Mutex<Authenticator>>,
    mem: MemoryDevice,
}

impl Key {
    fn new() -> Self {
        Self::with(AuthenticatorConfig::default())
    }
    fn with(config: AuthenticatorConfig) -> Self {
        let mut a = Authenticator::new(config).unwrap();
        a.set_pin(PIN).unwrap();
        let auth = Arc::new(Mutex::new(a));
        let mem = MemoryDevice::spawn(auth.clone(), DeviceConfig::default());
        Key { auth, mem }
    }
    fn open(&self) -> Device {
        Device::open(self.mem.connect(), &op()).unwrap()
    }
}

fn creation(user: u8, extensions: serde_json::Value) -> CreationOptionsJson {
    serde_json::from_value(json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64url_encode(&[user]), "name": format!("user-{user}"), "displayName": "User"},
        "challenge": "AAECAwQFBgcICQoLDA0ODw",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        "extensions": extensions,
    }))
    .unwrap()
}

fn request(id: &[u8], extensions: serde_json::Value) -> RequestOptionsJson {
    serde_json::from_value(json!({
        "challenge": "ZmVkY2JhOTg3NjU0MzIxMA", "rpId": "example.com", "userVerification": "required",
        "allowCredentials": [{"type": "public-key", "id": b64url_encode(id)}],
        "extensions": extensions,
    }))
    .unwrap()
}

fn register(dev: &mut Device, user: u8, extensions: serde_json::Value) -> RegistrationResponseJson {
    let ui = FixedPin::new(Some(PIN.into()));
    WebAuthnClient::new(&ui).register(dev, &creation(user, extensions), ORIGIN, &op()).unwrap()
}

fn login(dev: &mut Device, id: &[u8], extensions: serde_json::Value) -> AuthenticationResponseJson {
    let ui = FixedPin::new(Some(PIN.into()));
    WebAuthnClient::new(&ui).authenticate(dev, &request(id, extensions), ORIGIN, &op()).unwrap()
}

#[test]
fn get_info_is_ctap_2_2() {
    let key = Key::new();
    let dev = key.open();
    let info = dev.info().unwrap();
    assert!(info.supports_version("FIDO_2_2") && info.supports_version("FIDO_2_1"));
    for e in ["hmac-secret-mc", "thirdPartyPayment"] {
        assert!(info.supports_extension(e), "{e}");
    }
    assert_eq!(dev.option("perCredMgmtRO"), Some(true));
    assert_eq!(info.max_pin_length, Some(63));
    assert_eq!(info.attestation_formats, Some(vec!["packed".to_owned()]));
    assert_eq!(info.pin_complexity_policy, Some(false));
    assert_eq!(info.pin_complexity_policy_url, None);
    assert_eq!(info.enc_identifier.as_ref().map(Vec::len), Some(32));
    assert_eq!(info.enc_cred_store_state.as_ref().map(Vec::len), Some(32));
    // Reset works on the only transport: no transportsForReset.
    assert_eq!(info.transports_for_reset, None);
    assert_eq!(info.authenticator_config_commands, Some(vec![1, 2, 3]));
    assert_eq!(info.uv_count_since_last_pin_entry, None, "no sensor");
    assert!(info.ignored_fields.is_empty(), "{:?}", info.ignored_fields);
}

#[test]
fn prf_at_creation_equals_prf_at_sign_in() {
    let key = Key::new();
    let mut dev = key.open();
    let eval = json!({"prf": {"eval": {"first": "c2FsdC1vbmU", "second": "c2FsdC10d28"}}});
    let reg = register(&mut dev, 1, eval.clone());
    let prf = reg.client_extension_results.prf.clone().unwrap();
    assert_eq!(prf.enabled, Some(true));
    let at_creation = prf.results.expect("PRF results at creation (hmac-secret-mc)");
    assert_eq!(at_creation.first.0.len(), 32);
    let a = login(&mut dev, &reg.raw_id.0, eval);
    let at_sign_in = a.client_extension_results.prf.unwrap().results.unwrap();
    assert_eq!(at_sign_in.first, at_creation.first);
    assert_eq!(at_sign_in.second, at_creation.second);
    assert_ne!(at_creation.first, at_creation.second.unwrap());
    // Without eval at creation there is nothing to report but "enabled".
    let reg = register(&mut dev, 2, json!({"prf": {}}));
    assert_eq!(reg.client_extension_results.prf.unwrap().results, None);
}

#[test]
fn third_party_payment_is_stored_and_reported() {
    let key = Key::new();
    let mut dev = key.open();
    let pay = register(&mut dev, 1, json!({"payment": {"isPayment": true}}));
    let plain = register(&mut dev, 2, json!({}));
    let t = dev.pin_token(PIN, permissions::CREDENTIAL_MANAGEMENT, None, &op()).unwrap();
    let creds = dev.list_credentials(&t, &op()).unwrap();
    let flag = |id: &[u8]| creds.iter().find(|c| c.credential_id == id).and_then(|c| c.third_party_payment);
    assert_eq!(flag(&pay.raw_id.0), Some(true));
    assert_eq!(flag(&plain.raw_id.0), Some(false));
    // getAssertion with thirdPartyPayment says whether the credential is enabled.
    for (id, expected) in [(&pay.raw_id.0, true), (&plain.raw_id.0, false)] {
        let a = login(&mut dev, id, json!({"payment": {"isPayment": true}}));
        let ad = hwkey::proto::auth_data::AuthenticatorData::parse(&a.response.authenticator_data).unwrap();
        let ext = ad.extensions.expect("extension outputs");
        assert_eq!(ext.get_text("thirdPartyPayment").and_then(|v| v.as_bool()), Some(expected));
    }
}

#[test]
fn persistent_token_lists_but_cannot_delete_and_survives_power_cycles() {
    let key = Key::new();
    let mut dev = key.open();
    let reg = register(&mut dev, 1, json!({}));
    let p = dev.persistent_token(PIN, &op()).unwrap();
    // pcmr never comes with other permissions.
    let e = dev
        .pin_token(
            PIN,
            permissions::PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY | permissions::GET_ASSERTION,
            None,
            &op(),
        )
        .unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::UnauthorizedPermission)), "{e:?}");
    let listed = dev.list_credentials(&p, &op()).unwrap();
    assert_eq!(listed.len(), 1);
    let e = dev.delete_credential(&p, &reg.raw_id.0, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::PinAuthInvalid)), "{e:?}");
    // A volatile token taken since does not replace it, and it outlives a power cycle.
    dev.pin_token(PIN, permissions::GET_ASSERTION, Some("example.com"), &op()).unwrap();
    key.auth.lock().unwrap().power_cycle().unwrap();
    let mut dev = key.open();
    assert_eq!(dev.list_credentials(&p, &op()).unwrap().len(), 1);
    // The encrypted members open with it: a stable identifier, a store state that moves.
    let id1 = dev.identifier(&p, &op()).unwrap().expect("encIdentifier");
    assert_eq!(dev.identifier(&p, &op()).unwrap(), Some(id1));
    let state1 = dev.cred_store_state(&p, &op()).unwrap().expect("encCredStoreState");
    assert_eq!(dev.cred_store_state(&p, &op()).unwrap(), Some(state1));
    register(&mut dev, 2, json!({}));
    let state2 = dev.cred_store_state(&p, &op()).unwrap().unwrap();
    assert_ne!(state1, state2);
    let cm = dev.pin_token(PIN, permissions::CREDENTIAL_MANAGEMENT, None, &op()).unwrap();
    dev.delete_credential(&cm, &reg.raw_id.0, &op()).unwrap();
    assert_ne!(dev.cred_store_state(&p, &op()).unwrap().unwrap(), state2);
    // A volatile token cannot read the members.
    let v = dev.pin_token(PIN, permissions::CREDENTIAL_MANAGEMENT, None, &op()).unwrap();
    assert_ne!(dev.identifier(&v, &op()).unwrap(), Some(id1));
    // A PIN change ends the persistent token.
    dev.change_pin(PIN, "246801", &op()).unwrap();
    let e = dev.list_credentials(&p, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::PinAuthInvalid)), "{e:?}");
    let p2 = dev.persistent_token("246801", &op()).unwrap();
    assert_eq!(dev.list_credentials(&p2, &op()).unwrap().len(), 1);
    // Reset makes a new identifier.
    dev.reset(&op()).unwrap();
    dev.set_pin(PIN, &op()).unwrap();
    let p3 = dev.persistent_token(PIN, &op()).unwrap();
    assert_ne!(dev.identifier(&p3, &op()).unwrap().unwrap(), id1);
}

#[test]
fn pin_complexity_policy() {
    let mut a = Authenticator::new(AuthenticatorConfig { pin_complexity_policy: true, ..Default::default() }).unwrap();
    for weak in ["1111", "1234", "98765", "abcd", "zzzzzz"] {
        assert!(matches!(a.set_pin(weak), Err(AuthenticatorError::PinPolicy { .. })), "{weak}");
    }
    a.set_pin("1357").unwrap();
    let auth = Arc::new(Mutex::new(a));
    let mem = MemoryDevice::spawn(auth, DeviceConfig::default());
    let mut dev = Device::open(mem.connect(), &op()).unwrap();
    assert_eq!(dev.info().unwrap().pin_complexity_policy, Some(true));
    let e = dev.change_pin("1357", "4567", &op()).unwrap_err();
    assert!(matches!(e, ClientError::PinPolicy), "{e:?}");
    dev.change_pin("1357", "4072", &op()).unwrap();
    // Without the policy a run is a valid PIN.
    let mut b = Authenticator::in_memory().unwrap();
    b.set_pin("1234").unwrap();
}

fn attestation_of(dev: &mut Device, user: u8, extra: serde_json::Value, client: &WebAuthnClient) -> AttestationObject {
    let mut v = serde_json::to_value(creation(user, json!({}))).unwrap();
    if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    let opts: CreationOptionsJson = serde_json::from_value(v).unwrap();
    let r = client.register(dev, &opts, ORIGIN, &op()).unwrap();
    AttestationObject::parse(&r.response.attestation_object).unwrap()
}

#[test]
fn attestation_formats_preference() {
    let key = Key::new();
    let mut dev = key.open();
    let pin = || FixedPin::new(Some(PIN.into()));
    let (a, b, c) = (pin(), pin(), pin());
    // The platform prefers none: the key answers none although it attests by default.
    let att = attestation_of(
        &mut dev,
        1,
        json!({"attestation": "direct", "attestationFormats": ["none", "packed"]}),
        &WebAuthnClient::new(&a),
    );
    assert_eq!(att.fmt, "none");
    let att = attestation_of(
        &mut dev,
        2,
        json!({"attestation": "direct", "attestationFormats": ["tpm", "packed"]}),
        &WebAuthnClient::new(&b),
    );
    assert_eq!(att.fmt, "packed");
    assert!(att.att_stmt.get_text("x5c").is_some());
    // Formats the key cannot make leave its default.
    let att = attestation_of(
        &mut dev,
        3,
        json!({"attestation": "direct", "attestationFormats": ["tpm"]}),
        &WebAuthnClient::new(&c),
    );
    assert_eq!(att.fmt, "packed");
}

#[test]
fn enterprise_attestation_vendor_facilitated_and_platform_managed() {
    let key = Key::with(AuthenticatorConfig { enterprise_rp_ids: vec!["example.com".into()], ..Default::default() });
    let mut dev = key.open();
    assert_eq!(dev.option("ep"), Some(false));
    // Not enabled: a raw request with enterpriseAttestation is refused.
    let t = dev.pin_token(PIN, permissions::MAKE_CREDENTIAL, Some("example.com"), &op()).unwrap();
    let cdh = vec![3u8; 32];
    let raw = hwkey::proto::ctap2::make_credential::MakeCredentialRequest {
        client_data_hash: cdh.clone(),
        rp: hwkey::proto::ctap2::PublicKeyCredentialRpEntity { id: "example.com".into(), name: None },
        user: hwkey::proto::ctap2::PublicKeyCredentialUserEntity { id: vec![1], name: None, display_name: None },
        pub_key_cred_params: vec![hwkey::proto::ctap2::PublicKeyCredentialParameters::public_key(-7)],
        pin_uv_auth_param: Some(t.authenticate(&cdh)),
        pin_uv_auth_protocol: Some(2),
        enterprise_attestation: Some(1),
        ..Default::default()
    };
    let e = dev.make_credential(&raw, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::InvalidParameter)), "{e:?}");
    // Enable it (typed authenticatorConfig, with an acfg token).
    let cfg = dev.pin_token(PIN, permissions::AUTHENTICATOR_CONFIG, None, &op()).unwrap();
    dev.enable_enterprise_attestation(Some(&cfg), &op()).unwrap();
    assert_eq!(dev.option("ep"), Some(true));
    // Vendor-facilitated: the key's list has example.com.
    let t = dev.pin_token(PIN, permissions::MAKE_CREDENTIAL, Some("example.com"), &op()).unwrap();
    let raw = hwkey::proto::ctap2::make_credential::MakeCredentialRequest {
        pin_uv_auth_param: Some(t.authenticate(&cdh)),
        ..raw
    };
    let r = dev.make_credential(&raw, &op()).unwrap();
    assert_eq!((r.fmt.as_str(), r.ep_att), ("packed", Some(true)));
    // The WebAuthn client asks for it with attestation "enterprise".
    let ui = FixedPin::new(Some(PIN.into()));
    let client = WebAuthnClient::new(&ui);
    let att = attestation_of(&mut dev, 4, json!({"attestation": "enterprise"}), &client);
    assert_eq!(att.fmt, "packed");
    // An RP off the key's list: vendor-facilitated gives ordinary attestation,
    // a platform that manages it (platform-managed, 2) gets enterprise attestation.
    let t = dev.pin_token(PIN, permissions::MAKE_CREDENTIAL, Some("other.example"), &op()).unwrap();
    let other =
        |kind, t: &hwkey::client::pin::PinUvAuthToken| hwkey::proto::ctap2::make_credential::MakeCredentialRequest {
            rp: hwkey::proto::ctap2::PublicKeyCredentialRpEntity { id: "other.example".into(), name: None },
            pin_uv_auth_param: Some(t.authenticate(&cdh)),
            enterprise_attestation: Some(kind),
            ..raw.clone()
        };
    let r = dev.make_credential(&other(1, &t), &op()).unwrap();
    assert_eq!(r.ep_att, None);
    let t = dev.pin_token(PIN, permissions::MAKE_CREDENTIAL, Some("other.example"), &op()).unwrap();
    assert_eq!(dev.make_credential(&other(2, &t), &op()).unwrap().ep_att, Some(true));
    let t = dev.pin_token(PIN, permissions::MAKE_CREDENTIAL, Some("other.example"), &op()).unwrap();
    let e = dev.make_credential(&other(3, &t), &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::InvalidOption)), "{e:?}");
    // Reset disables it again.
    dev.reset(&op()).unwrap();
    assert_eq!(dev.option("ep"), Some(false));
}

#[test]
fn typed_config_and_update_user_information() {
    let key = Key::new();
    let mut dev = key.open();
    let reg = register(&mut dev, 1, json!({}));
    let cm = dev.pin_token(PIN, permissions::CREDENTIAL_MANAGEMENT, None, &op()).unwrap();
    let user = hwkey::proto::ctap2::PublicKeyCredentialUserEntity {
        id: vec![1],
        name: Some("alice@example.com".into()),
        display_name: Some("Alice".into()),
    };
    dev.update_user_information(&cm, &reg.raw_id.0, user.clone(), &op()).unwrap();
    let listed = dev.list_credentials(&cm, &op()).unwrap();
    assert_eq!(listed[0].user.as_ref(), Some(&user));
    // The user ID cannot change.
    let other = hwkey::proto::ctap2::PublicKeyCredentialUserEntity { id: vec![2], ..user };
    let e = dev.update_user_information(&cm, &reg.raw_id.0, other, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::InvalidParameter)), "{e:?}");

    let cfg = dev.pin_token(PIN, permissions::AUTHENTICATOR_CONFIG, None, &op()).unwrap();
    assert!(dev.toggle_always_uv(Some(&cfg), &op()).unwrap());
    assert!(!dev.info().unwrap().supports_version("U2F_V2"), "alwaysUv turns U2F off");
    assert!(!dev.toggle_always_uv(Some(&cfg), &op()).unwrap());
    dev.set_min_pin_length(Some(&cfg), Some(8), Some(vec!["example.com".into()]), false, &op()).unwrap();
    assert_eq!(dev.info().unwrap().min_pin_length, Some(8));
    // The 6-character PIN is now too short: the key wants a new one.
    assert_eq!(dev.info().unwrap().force_pin_change, Some(true));
    let e = dev.set_min_pin_length(None, Some(9), None, false, &op()).unwrap_err();
    assert!(matches!(e, ClientError::Status(CtapStatus::PuatRequired)), "{e:?}");
}

#[test]
fn pin_complexity_policy_turned_on_by_set_min_pin_length() {
    let key = Key::new();
    let mut dev = key.open();
    assert_eq!(dev.info().unwrap().pin_complexity_policy, Some(false));
    let cfg = dev.pin_token(PIN, permissions::AUTHENTICATOR_CONFIG, None, &op()).unwrap();
    dev.set_pin_policy(Some(&cfg), None, None, false, true, &op()).unwrap();
    let info = dev.info().unwrap();
    assert_eq!(info.pin_complexity_policy, Some(true));
    // The PIN set before the policy must be changed, and to one that complies.
    assert_eq!(info.force_pin_change, Some(true));
    let e = dev.change_pin(PIN, "111111", &op()).unwrap_err();
    assert!(matches!(e, ClientError::PinPolicy), "{e:?}");
    dev.change_pin(PIN, "802461", &op()).unwrap();
    assert_eq!(dev.info().unwrap().force_pin_change, Some(false));
    // Reset turns it off.
    dev.reset(&op()).unwrap();
    assert_eq!(dev.info().unwrap().pin_complexity_policy, Some(false));
}

/// pinComplexityPolicyURL is reported while the policy is on, and only then.
#[test]
fn pin_complexity_policy_url_while_the_policy_is_on() {
    let config = AuthenticatorConfig {
        pin_complexity_policy_url: Some("https://example.com/pin-rules".into()),
        ..Default::default()
    };
    let key = Key::with(config);
    let mut dev = key.open();
    assert_eq!(dev.info().unwrap().pin_complexity_policy_url, None, "policy off");
    let cfg = dev.pin_token(PIN, permissions::AUTHENTICATOR_CONFIG, None, &op()).unwrap();
    dev.set_pin_policy(Some(&cfg), None, None, false, true, &op()).unwrap();
    let info = dev.info().unwrap();
    assert_eq!(info.pin_complexity_policy, Some(true));
    assert_eq!(info.pin_complexity_policy_url.as_deref(), Some(&b"https://example.com/pin-rules"[..]));
}

#[test]
fn long_touch_for_reset() {
    use hwkey::authenticator::UserPresence;
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let s = seen.clone();
    let config = AuthenticatorConfig {
        long_touch_for_reset: true,
        // The "user" holds the key only when asked for a long touch.
        user_presence: UserPresence::Callback(Box::new(move |r| {
            s.lock().unwrap().push(r.operation);
            r.operation == "resetLongTouch"
        })),
        ..Default::default()
    };
    let key = Key::with(config);
    let mut dev = key.open();
    assert_eq!(dev.info().unwrap().long_touch_for_reset, Some(true));
    dev.reset(&op()).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["resetLongTouch"]);
    assert_eq!(dev.option("clientPin"), Some(false));
    // Without the option getInfo leaves it out and reset asks for a plain touch.
    assert_eq!(Key::new().open().info().unwrap().long_touch_for_reset, None);
}

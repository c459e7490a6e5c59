//! Property tests for the shared wire types: encode then decode is the
//! identity; decoding arbitrary bytes or arbitrary JSON never panics.

use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
use hwkey::proto::cbor::{self, Value};
use hwkey::proto::cose::{CoseAlgorithm, CoseKey, curve};
use hwkey::proto::webauthn::*;
use proptest::prelude::*;

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i as i128)),
        any::<u64>().prop_map(|i| Value::Integer(i as i128)),
        (0u64..=u64::MAX).prop_map(|n| Value::Integer(-1 - n as i128)),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        ".{0,20}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Undefined),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(Value::Float),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<i32>(), inner.clone(), 0..6)
                .prop_map(|m| Value::Map(m.into_iter().map(|(k, v)| (Value::Integer(k as i128), v)).collect())),
            proptest::collection::btree_map("[a-z]{0,6}", inner.clone(), 0..6)
                .prop_map(|m| Value::Map(m.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())),
            (any::<u32>(), inner).prop_map(|(t, v)| Value::Tag(t as u64, Box::new(v))),
        ]
    })
}

/// Canonical form: maps sorted as the encoder sorts them.
fn canonical(v: &Value) -> Value {
    cbor::decode(&v.to_vec()).unwrap()
}

fn arb_cose_key() -> impl Strategy<Value = CoseKey> {
    prop_oneof![
        (proptest::collection::vec(any::<u8>(), 32), proptest::collection::vec(any::<u8>(), 32))
            .prop_map(|(x, y)| { CoseKey::Ec2 { alg: Some(CoseAlgorithm::ES256), crv: curve::P256, x, y } }),
        (proptest::collection::vec(any::<u8>(), 48), proptest::collection::vec(any::<u8>(), 48))
            .prop_map(|(x, y)| { CoseKey::Ec2 { alg: Some(CoseAlgorithm::ES384), crv: curve::P384, x, y } }),
        proptest::collection::vec(any::<u8>(), 32).prop_map(|x| CoseKey::Okp {
            alg: Some(CoseAlgorithm::EDDSA),
            crv: curve::ED25519,
            x
        }),
        (proptest::collection::vec(any::<u8>(), 1..300), proptest::collection::vec(any::<u8>(), 1..5))
            .prop_map(|(n, e)| CoseKey::Rsa { alg: Some(CoseAlgorithm::RS256), n, e }),
    ]
}

fn arb_auth_data() -> impl Strategy<Value = AuthenticatorData> {
    (
        any::<[u8; 32]>(),
        any::<u8>(),
        any::<u32>(),
        proptest::option::of((any::<[u8; 16]>(), proptest::collection::vec(any::<u8>(), 0..80), arb_cose_key())),
        proptest::option::of(proptest::collection::btree_map("[a-zA-Z-]{1,12}", any::<i32>(), 0..4)),
    )
        .prop_map(|(h, f, c, acd, ext)| AuthenticatorData {
            rp_id_hash: h,
            flags: Flags(
                f & !(Flags::AT | Flags::ED)
                    | if acd.is_some() { Flags::AT } else { 0 }
                    | if ext.is_some() { Flags::ED } else { 0 },
            ),
            sign_count: c,
            attested_credential: acd.map(|(aaguid, credential_id, public_key)| AttestedCredentialData {
                aaguid,
                credential_id,
                public_key_bytes: public_key.to_bytes(),
                public_key,
            }),
            extensions: ext.map(|m| {
                canonical(&Value::Map(m.into_iter().map(|(k, v)| (Value::Text(k), Value::from(v))).collect()))
            }),
        })
}

fn b64u() -> impl Strategy<Value = Base64Url> {
    proptest::collection::vec(any::<u8>(), 0..48).prop_map(Base64Url)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cbor_value_round_trip(v in arb_value()) {
        let enc = v.to_vec();
        let dec = cbor::decode(&enc).unwrap();
        prop_assert_eq!(&dec, &canonical(&v));
        prop_assert_eq!(dec.to_vec(), enc, "canonical encoding is stable");
    }

    #[test]
    fn cbor_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = cbor::decode(&bytes);
        let _ = cbor::decode_prefix(&bytes);
    }

    #[test]
    fn cose_key_round_trip(k in arb_cose_key()) {
        prop_assert_eq!(CoseKey::from_bytes(&k.to_bytes()).unwrap(), k);
    }

    #[test]
    fn cose_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = CoseKey::from_bytes(&bytes);
    }

    #[test]
    fn auth_data_round_trip(ad in arb_auth_data()) {
        let bytes = ad.to_bytes();
        let back = AuthenticatorData::parse(&bytes).unwrap();
        prop_assert_eq!(&back, &ad);
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn auth_data_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = AuthenticatorData::parse(&bytes);
    }

    #[test]
    fn attestation_object_round_trip(ad in arb_auth_data(), fmt in "[a-z-]{1,12}", stmt in arb_value()) {
        let att_stmt = match stmt { Value::Map(m) => Value::Map(m), other => Value::Map(vec![(Value::Text("x".into()), other)]) };
        let raw = ad.to_bytes();
        let ao = AttestationObject { fmt, att_stmt: canonical(&att_stmt), auth_data: ad, auth_data_raw: raw };
        prop_assert_eq!(AttestationObject::parse(&ao.to_bytes()).unwrap(), ao);
    }

    #[test]
    fn attestation_object_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = AttestationObject::parse(&bytes);
    }

    #[test]
    fn webauthn_json_round_trip(c in b64u(), id in b64u(), name in ".{0,16}", t in proptest::option::of(1u64..1_000_000), uv in proptest::option::of("(required|preferred|discouraged)")) {
        let req = RequestOptionsJson {
            challenge: c.clone(), timeout: t, rp_id: Some("example.com".into()),
            allow_credentials: vec![CredentialDescriptor::public_key(id.0.clone(), Some(vec!["usb".into()]))],
            user_verification: uv.clone(), hints: vec![], extensions: Some(ClientExtensionInputs { appid: Some("https://a".into()), ..Default::default() }),
        };
        let j = serde_json::to_string(&req).unwrap();
        prop_assert_eq!(serde_json::from_str::<RequestOptionsJson>(&j).unwrap(), req);
        let cre = CreationOptionsJson {
            rp: RpEntity { id: Some("example.com".into()), name: name.clone() },
            user: UserEntity { id: id.clone(), name: name.clone(), display_name: name.clone() },
            challenge: c.clone(), pub_key_cred_params: vec![PubKeyCredParam::public_key(CoseAlgorithm::ES256)],
            timeout: t, exclude_credentials: vec![], authenticator_selection: Some(AuthenticatorSelection { user_verification: uv, ..Default::default() }),
            hints: vec!["security-key".into()], attestation: Some("none".into()), attestation_formats: vec![],
            extensions: Some(ClientExtensionInputs { cred_props: Some(true), prf: Some(PrfInputs { eval: Some(PrfValues { first: c.clone(), second: None }), eval_by_credential: None }), ..Default::default() }),
        };
        let j = serde_json::to_string(&cre).unwrap();
        prop_assert_eq!(serde_json::from_str::<CreationOptionsJson>(&j).unwrap(), cre);
        let reg = RegistrationResponseJson {
            id: id.encode(), raw_id: id.clone(),
            response: AttestationResponseJson { client_data_json: c.clone(), attestation_object: id.clone(), authenticator_data: Some(c.clone()), transports: Some(vec!["nfc".into()]), public_key: None, public_key_algorithm: Some(-7) },
            authenticator_attachment: None, client_extension_results: ClientExtensionOutputs { cred_props: Some(CredPropsOutput { rk: Some(true) }), ..Default::default() }, type_: "public-key".into(),
        };
        let j = serde_json::to_string(&reg).unwrap();
        prop_assert_eq!(serde_json::from_str::<RegistrationResponseJson>(&j).unwrap(), reg);
        let auth = AuthenticationResponseJson {
            id: id.encode(), raw_id: id.clone(),
            response: AssertionResponseJson { client_data_json: c.clone(), authenticator_data: c.clone(), signature: id.clone(), user_handle: Some(c.clone()) },
            authenticator_attachment: Some("platform".into()), client_extension_results: Default::default(), type_: "public-key".into(),
        };
        let j = serde_json::to_string(&auth).unwrap();
        prop_assert_eq!(serde_json::from_str::<AuthenticationResponseJson>(&j).unwrap(), auth);
        let ccd = CollectedClientData { type_: "webauthn.get".into(), challenge: c.encode(), origin: format!("https://{}", name.escape_default()), cross_origin: Some(false), top_origin: None };
        prop_assert_eq!(CollectedClientData::parse(&ccd.to_json_bytes()).unwrap(), ccd);
    }

    #[test]
    fn ceremonies_never_panic_on_arbitrary_json(s in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        use hwkey::server::*;
        let rp = RelyingParty::new(RpConfig::new("example.com", "x", "https://example.com")).unwrap();
        let now = std::time::SystemTime::now();
        let (_, st) = rp.start_registration(RegistrationRequest { user_id: vec![1], user_name: "a".into(), ..Default::default() }, now).unwrap();
        let _ = rp.finish_registration_json(st.clone(), s.as_bytes(), now);
        let _ = rp.finish_registration_json(st, &bytes, now);
        let (_, st) = rp.start_authentication(AuthenticationRequest::default(), now).unwrap();
        let _ = rp.finish_authentication_json(st, s.as_bytes(), |_, _| None::<CredentialRecord>, now);
    }

    #[test]
    fn ceremonies_never_panic_on_arbitrary_fields(cdj in proptest::collection::vec(any::<u8>(), 0..200), ao in proptest::collection::vec(any::<u8>(), 0..300), sig in proptest::collection::vec(any::<u8>(), 0..80)) {
        use hwkey::server::*;
        let rp = RelyingParty::new(RpConfig::new("example.com", "x", "https://example.com")).unwrap();
        let now = std::time::SystemTime::now();
        let (_, st) = rp.start_registration(RegistrationRequest { user_id: vec![1], user_name: "a".into(), ..Default::default() }, now).unwrap();
        let resp = RegistrationResponseJson {
            id: "AA".into(), raw_id: Base64Url(vec![0]),
            response: AttestationResponseJson { client_data_json: Base64Url(cdj.clone()), attestation_object: Base64Url(ao.clone()), authenticator_data: None, transports: None, public_key: None, public_key_algorithm: None },
            authenticator_attachment: None, client_extension_results: Default::default(), type_: "public-key".into(),
        };
        let _ = rp.finish_registration(st, &resp, now);
        let (_, st) = rp.start_authentication(AuthenticationRequest::default(), now).unwrap();
        let json = serde_json::json!({"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON": b64url_encode(&cdj),"authenticatorData": b64url_encode(&ao),"signature": b64url_encode(&sig),"userHandle":"AQ"}});
        let _ = rp.finish_authentication_json(st, json.to_string().as_bytes(), |_, _| None::<CredentialRecord>, now);
    }
}

//! authenticatorGetInfo: what this authenticator supports (CTAP 2.1 and
//! the CTAP 2.2 members: encIdentifier, encCredStoreState, maxPINLength,
//! attestationFormats, the persistent token's perCredMgmtRO).

use std::collections::BTreeMap;

use super::{
    Authenticator, MAX_CRED_BLOB_LENGTH, MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH, MAX_MSG_SIZE,
    MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH, MAX_SERIALIZED_LARGE_BLOB_ARRAY,
};
use crate::proto::cbor::Value;
use crate::proto::ctap2::enc_info;
use crate::proto::ctap2::get_info::GetInfoResponse;
use crate::proto::ctap2::{CtapCodec, PublicKeyCredentialParameters};
use crate::proto::extensions::id;

/// The getInfo response for the authenticator's current state.
pub(crate) fn info(a: &Authenticator) -> GetInfoResponse {
    let mut options = BTreeMap::new();
    for (k, v) in [
        ("rk", true),
        ("up", true),
        ("plat", false),
        ("clientPin", a.pin_is_set()),
        ("credMgmt", true),
        ("authnrCfg", true),
        ("largeBlobs", true),
        ("pinUvAuthToken", true),
        ("setMinPINLength", true),
        ("makeCredUvNotRqd", false),
        ("alwaysUv", a.state.always_uv),
        ("perCredMgmtRO", true),
        ("ep", a.state.enterprise_attestation),
    ] {
        options.insert(k.to_owned(), v);
    }
    // A fingerprint sensor: bioEnroll and uv are present, true once a finger is enrolled.
    let sensor = a.config.fingerprint.is_some();
    if sensor {
        options.insert("bioEnroll".to_owned(), a.uv_configured());
        options.insert("uv".to_owned(), a.uv_configured());
    }
    let remaining = a.config.max_resident_credentials.saturating_sub(a.state.credentials.len());
    GetInfoResponse {
        // With alwaysUv, U2F (which cannot verify the user) is switched off.
        versions: if a.state.always_uv {
            vec!["FIDO_2_0".into(), "FIDO_2_1".into(), "FIDO_2_2".into()]
        } else {
            vec!["U2F_V2".into(), "FIDO_2_0".into(), "FIDO_2_1".into(), "FIDO_2_2".into()]
        },
        extensions: Some(
            [
                id::CRED_PROTECT,
                id::HMAC_SECRET,
                id::HMAC_SECRET_MC,
                id::CRED_BLOB,
                id::LARGE_BLOB_KEY,
                id::MIN_PIN_LENGTH,
                id::THIRD_PARTY_PAYMENT,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        aaguid: a.aaguid().to_vec(),
        options: Some(options),
        max_msg_size: Some(MAX_MSG_SIZE as u64),
        pin_uv_auth_protocols: Some(vec![2, 1]),
        max_credential_count_in_list: Some(MAX_CREDENTIAL_COUNT_IN_LIST as u64),
        max_credential_id_length: Some(MAX_CREDENTIAL_ID_LENGTH as u64),
        transports: Some(vec!["usb".into()]),
        // ES256, EdDSA, their RFC 9864 ids ESP256 and Ed25519, ML-DSA-44/65/87.
        algorithms: Some(
            super::state::CredentialAlg::ALL
                .iter()
                .map(|alg| PublicKeyCredentialParameters::public_key(alg.cose()))
                .collect(),
        ),
        max_serialized_large_blob_array: Some(MAX_SERIALIZED_LARGE_BLOB_ARRAY as u64),
        force_pin_change: Some(a.state.force_pin_change),
        min_pin_length: Some(a.state.min_pin_length.into()),
        firmware_version: Some(a.config.firmware_version),
        max_cred_blob_length: Some(MAX_CRED_BLOB_LENGTH as u64),
        max_rpids_for_set_min_pin_length: Some(MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH as u64),
        preferred_platform_uv_attempts: sensor.then_some(super::bio_enrollment::PREFERRED_PLATFORM_UV_ATTEMPTS),
        uv_modality: sensor.then_some(super::bio_enrollment::UV_MODALITY_FINGERPRINT),
        certifications: None,
        remaining_discoverable_credentials: Some(remaining as u64),
        vendor_prototype_config_commands: None,
        attestation_formats: Some(vec![
            match a.config.attestation {
                super::AttestationMode::None => "none",
                _ => "packed",
            }
            .into(),
        ]),
        max_pin_length: Some(63),
        pin_complexity_policy: Some(a.pin_complexity_policy()),
        pin_complexity_policy_url: a
            .config
            .pin_complexity_policy_url
            .as_ref()
            .filter(|_| a.pin_complexity_policy())
            .map(|u| u.as_bytes().to_vec()),
        long_touch_for_reset: a.config.long_touch_for_reset.then_some(true),
        uv_count_since_last_pin_entry: sensor.then_some(a.state.uv_count_since_pin),
        // CTAP 2.3: the authenticatorConfig subcommands this key takes.
        authenticator_config_commands: Some(vec![1, 2, 3]),
        enc_identifier: enc_member(a, enc_info::IDENTIFIER_LABEL, a.state.device_identifier.as_ref().map(|d| &d.0[..])),
        enc_cred_store_state: enc_member(a, enc_info::CRED_STORE_STATE_LABEL, Some(&cred_store_state(a))),
        ..Default::default()
    }
}

/// An encrypted getInfo member under the persistent token (fresh IV each time).
fn enc_member(a: &Authenticator, label: &[u8], value: Option<&[u8]>) -> Option<Vec<u8>> {
    let token = a.state.persistent_token.as_ref()?;
    let value: [u8; 16] = value?.try_into().ok()?;
    let mut iv = [0u8; 16];
    a.provider.fill_random(&mut iv).ok()?;
    enc_info::encrypt(a.provider, token.bytes(), label, &iv, &value)
}

/// A 16-byte digest of the discoverable credentials (IDs, users, payment
/// flags) and the master key: it changes whenever one is created, deleted
/// or updated, and at reset.
fn cred_store_state(a: &Authenticator) -> [u8; 16] {
    let mut parts: Vec<&[u8]> = vec![b"hwkey credStoreState v1", a.master_key()];
    let mut lens = Vec::new();
    for c in &a.state.credentials {
        for f in [
            &c.id.0[..],
            &c.user_id.0[..],
            c.user_name.as_deref().unwrap_or("").as_bytes(),
            c.user_display_name.as_deref().unwrap_or("").as_bytes(),
        ] {
            lens.push((f.len() as u32).to_be_bytes());
            parts.push(f);
        }
    }
    let lens_flat: Vec<u8> = lens.concat();
    parts.push(&lens_flat);
    let h = a.provider.sha256(&parts);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

pub(crate) fn get_info(a: &Authenticator) -> Value {
    info(a).to_value()
}

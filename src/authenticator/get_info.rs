//! authenticatorGetInfo: what this authenticator supports.

use std::collections::BTreeMap;

use super::{
    Authenticator, MAX_CRED_BLOB_LENGTH, MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH, MAX_MSG_SIZE,
    MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH, MAX_SERIALIZED_LARGE_BLOB_ARRAY,
};
use crate::proto::cbor::Value;
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
    ] {
        options.insert(k.to_owned(), v);
    }
    let remaining = a.config.max_resident_credentials.saturating_sub(a.state.credentials.len());
    GetInfoResponse {
        // With alwaysUv, U2F (which cannot verify the user) is switched off.
        versions: if a.state.always_uv {
            vec!["FIDO_2_0".into(), "FIDO_2_1".into()]
        } else {
            vec!["U2F_V2".into(), "FIDO_2_0".into(), "FIDO_2_1".into()]
        },
        extensions: Some(
            [id::CRED_PROTECT, id::HMAC_SECRET, id::CRED_BLOB, id::LARGE_BLOB_KEY, id::MIN_PIN_LENGTH]
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
        preferred_platform_uv_attempts: None,
        uv_modality: None,
        certifications: None,
        remaining_discoverable_credentials: Some(remaining as u64),
        vendor_prototype_config_commands: None,
        ignored_fields: Vec::new(),
    }
}

pub(crate) fn get_info(a: &Authenticator) -> Value {
    info(a).to_value()
}

//! authenticatorGetInfo (0x04, CTAP 2.1 §6.4, with the CTAP 2.2 members
//! 0x16 to 0x1F).

use std::collections::BTreeMap;

use super::util::{map, opt_array, opt_map, opt_text_array, opt_u64, text_array};
use super::{Command, Ctap2Error, CtapCodec, CtapRequest, PublicKeyCredentialParameters};
use crate::proto::cbor::{FieldError, MapExt, Value};

/// The authenticatorGetInfo request (no parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetInfoRequest;

impl CtapCodec for GetInfoRequest {
    fn to_value(&self) -> Value {
        Value::Map(Vec::new())
    }
    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self)
    }
}

impl CtapRequest for GetInfoRequest {
    const COMMAND: Command = Command::GetInfo;
}

/// The authenticatorGetInfo response, with every CTAP 2.1 and 2.2 member.
/// Unknown keys are tolerated and dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetInfoResponse {
    /// 0x01 versions ("FIDO_2_0", "FIDO_2_1", "U2F_V2", ...).
    pub versions: Vec<String>,
    /// 0x02 extensions.
    pub extensions: Option<Vec<String>>,
    /// 0x03 aaguid (16 bytes).
    pub aaguid: Vec<u8>,
    /// 0x04 options.
    pub options: Option<BTreeMap<String, bool>>,
    /// 0x05 maxMsgSize.
    pub max_msg_size: Option<u64>,
    /// 0x06 pinUvAuthProtocols, in order of preference.
    pub pin_uv_auth_protocols: Option<Vec<u64>>,
    /// 0x07 maxCredentialCountInList.
    pub max_credential_count_in_list: Option<u64>,
    /// 0x08 maxCredentialIdLength.
    pub max_credential_id_length: Option<u64>,
    /// 0x09 transports.
    pub transports: Option<Vec<String>>,
    /// 0x0A algorithms.
    pub algorithms: Option<Vec<PublicKeyCredentialParameters>>,
    /// 0x0B maxSerializedLargeBlobArray.
    pub max_serialized_large_blob_array: Option<u64>,
    /// 0x0C forcePINChange.
    pub force_pin_change: Option<bool>,
    /// 0x0D minPINLength.
    pub min_pin_length: Option<u64>,
    /// 0x0E firmwareVersion.
    pub firmware_version: Option<u64>,
    /// 0x0F maxCredBlobLength.
    pub max_cred_blob_length: Option<u64>,
    /// 0x10 maxRPIDsForSetMinPINLength.
    pub max_rpids_for_set_min_pin_length: Option<u64>,
    /// 0x11 preferredPlatformUvAttempts.
    pub preferred_platform_uv_attempts: Option<u64>,
    /// 0x12 uvModality.
    pub uv_modality: Option<u64>,
    /// 0x13 certifications.
    pub certifications: Option<Value>,
    /// 0x14 remainingDiscoverableCredentials.
    pub remaining_discoverable_credentials: Option<u64>,
    /// 0x15 vendorPrototypeConfigCommands.
    pub vendor_prototype_config_commands: Option<Vec<u64>>,
    /// 0x16 attestationFormats (CTAP 2.2), in order of preference.
    pub attestation_formats: Option<Vec<String>>,
    /// 0x17 uvCountSinceLastPinEntry (CTAP 2.2).
    pub uv_count_since_last_pin_entry: Option<u64>,
    /// 0x18 longTouchForReset (CTAP 2.2).
    pub long_touch_for_reset: Option<bool>,
    /// 0x19 encIdentifier (CTAP 2.2): `iv || AES-128-CBC(key, identifier)`,
    /// the key derived from the persistent pinUvAuthToken.
    pub enc_identifier: Option<Vec<u8>>,
    /// 0x1A transportsForReset (CTAP 2.2).
    pub transports_for_reset: Option<Vec<String>>,
    /// 0x1B pinComplexityPolicy (CTAP 2.2).
    pub pin_complexity_policy: Option<bool>,
    /// 0x1C pinComplexityPolicyURL (CTAP 2.2).
    pub pin_complexity_policy_url: Option<Vec<u8>>,
    /// 0x1D maxPINLength (CTAP 2.2), in code points.
    pub max_pin_length: Option<u64>,
    /// 0x1E encCredStoreState (CTAP 2.2): like encIdentifier, for a value
    /// that changes with every change to the discoverable credentials.
    pub enc_cred_store_state: Option<Vec<u8>>,
    /// 0x1F authenticatorConfigCommands (CTAP 2.3).
    pub authenticator_config_commands: Option<Vec<u64>>,
    /// Optional members that were present but mistyped, and so ignored when
    /// parsing (one bad field must not make a key unusable). Never encoded.
    pub ignored_fields: Vec<&'static str>,
}

impl GetInfoResponse {
    /// An option's value; absent options are `None`.
    pub fn option(&self, name: &str) -> Option<bool> {
        self.options.as_ref()?.get(name).copied()
    }
    /// True if `versions` lists `v`.
    pub fn supports_version(&self, v: &str) -> bool {
        self.versions.iter().any(|x| x == v)
    }
    /// True if `extensions` lists `e`.
    pub fn supports_extension(&self, e: &str) -> bool {
        self.extensions.as_ref().is_some_and(|x| x.iter().any(|y| y == e))
    }
}

/// The value of an optional member, or `None` (and its name noted) when it
/// is mistyped.
fn keep<T, E>(ignored: &mut Vec<&'static str>, r: Result<Option<T>, E>, name: &'static str) -> Option<T> {
    r.unwrap_or_else(|_| {
        ignored.push(name);
        None
    })
}

fn u64_array(a: &[u64]) -> Value {
    Value::Array(a.iter().map(|x| Value::from(*x)).collect())
}

impl CtapCodec for GetInfoResponse {
    fn to_value(&self) -> Value {
        let mut m = vec![(Value::from(1), text_array(&self.versions))];
        let mut put = |k: i64, v: Option<Value>| {
            if let Some(v) = v {
                m.push((Value::from(k), v));
            }
        };
        put(2, self.extensions.as_deref().map(text_array));
        put(3, Some(Value::Bytes(self.aaguid.clone())));
        put(
            4,
            self.options
                .as_ref()
                .map(|o| Value::Map(o.iter().map(|(k, v)| (Value::from(k.as_str()), Value::Bool(*v))).collect())),
        );
        put(5, self.max_msg_size.map(Value::from));
        put(6, self.pin_uv_auth_protocols.as_deref().map(u64_array));
        put(7, self.max_credential_count_in_list.map(Value::from));
        put(8, self.max_credential_id_length.map(Value::from));
        put(9, self.transports.as_deref().map(text_array));
        put(10, self.algorithms.as_ref().map(|a| Value::Array(a.iter().map(|p| p.to_value()).collect())));
        put(11, self.max_serialized_large_blob_array.map(Value::from));
        put(12, self.force_pin_change.map(Value::Bool));
        put(13, self.min_pin_length.map(Value::from));
        put(14, self.firmware_version.map(Value::from));
        put(15, self.max_cred_blob_length.map(Value::from));
        put(16, self.max_rpids_for_set_min_pin_length.map(Value::from));
        put(17, self.preferred_platform_uv_attempts.map(Value::from));
        put(18, self.uv_modality.map(Value::from));
        put(19, self.certifications.clone());
        put(20, self.remaining_discoverable_credentials.map(Value::from));
        put(21, self.vendor_prototype_config_commands.as_deref().map(u64_array));
        put(22, self.attestation_formats.as_deref().map(text_array));
        put(23, self.uv_count_since_last_pin_entry.map(Value::from));
        put(24, self.long_touch_for_reset.map(Value::Bool));
        put(25, self.enc_identifier.clone().map(Value::Bytes));
        put(26, self.transports_for_reset.as_deref().map(text_array));
        put(27, self.pin_complexity_policy.map(Value::Bool));
        put(28, self.pin_complexity_policy_url.clone().map(Value::Bytes));
        put(29, self.max_pin_length.map(Value::from));
        put(30, self.enc_cred_store_state.clone().map(Value::Bytes));
        put(31, self.authenticator_config_commands.as_deref().map(u64_array));
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let versions = opt_text_array(v, 1, "versions")?.ok_or(FieldError::Missing("versions"))?;
        let aaguid = v.req_bytes(3, "aaguid")?.to_vec();
        if aaguid.len() != 16 {
            return Err(Ctap2Error::Field(FieldError::Invalid("aaguid")));
        }
        // Every other member is optional: a mistyped one is dropped and
        // noted in `ignored_fields` instead of failing the whole response.
        let mut ignored = Vec::new();
        let options = keep(&mut ignored, opt_map(v, 4, "options"), "options").map(|o| {
            let mut out = BTreeMap::new();
            for (k, x) in o.as_map().unwrap_or(&[]) {
                match (k.as_text(), x.as_bool()) {
                    (Some(k), Some(b)) => {
                        out.insert(k.to_owned(), b);
                    }
                    // One mistyped option drops that option only.
                    _ => ignored.push("options"),
                }
            }
            out
        });
        let u64s = |key: i64, name: &'static str| {
            opt_array(v, key, name, |x| x.as_u64().ok_or(Ctap2Error::Field(FieldError::Invalid(name))))
        };
        let u64f = |key: i64, name: &'static str| opt_u64(v, key, name);
        let texts = |key: i64, name: &'static str| opt_text_array(v, key, name);
        let ig = &mut ignored;
        let certifications = keep(ig, opt_map(v, 19, "certifications").map(|c| c.cloned()), "certifications");
        let mut info = Self {
            versions,
            extensions: keep(ig, texts(2, "extensions"), "extensions"),
            aaguid,
            options,
            max_msg_size: keep(ig, u64f(5, "maxMsgSize"), "maxMsgSize"),
            pin_uv_auth_protocols: keep(ig, u64s(6, "pinUvAuthProtocols"), "pinUvAuthProtocols"),
            max_credential_count_in_list: keep(ig, u64f(7, "maxCredentialCountInList"), "maxCredentialCountInList"),
            max_credential_id_length: keep(ig, u64f(8, "maxCredentialIdLength"), "maxCredentialIdLength"),
            transports: keep(ig, texts(9, "transports"), "transports"),
            algorithms: keep(
                ig,
                opt_array(v, 10, "algorithms", PublicKeyCredentialParameters::from_value),
                "algorithms",
            ),
            max_serialized_large_blob_array: keep(
                ig,
                u64f(11, "maxSerializedLargeBlobArray"),
                "maxSerializedLargeBlobArray",
            ),
            force_pin_change: keep(ig, v.opt_bool(12, "forcePINChange"), "forcePINChange"),
            min_pin_length: keep(ig, u64f(13, "minPINLength"), "minPINLength"),
            firmware_version: keep(ig, u64f(14, "firmwareVersion"), "firmwareVersion"),
            max_cred_blob_length: keep(ig, u64f(15, "maxCredBlobLength"), "maxCredBlobLength"),
            max_rpids_for_set_min_pin_length: keep(
                ig,
                u64f(16, "maxRPIDsForSetMinPINLength"),
                "maxRPIDsForSetMinPINLength",
            ),
            preferred_platform_uv_attempts: keep(
                ig,
                u64f(17, "preferredPlatformUvAttempts"),
                "preferredPlatformUvAttempts",
            ),
            uv_modality: keep(ig, u64f(18, "uvModality"), "uvModality"),
            certifications,
            remaining_discoverable_credentials: keep(
                ig,
                u64f(20, "remainingDiscoverableCredentials"),
                "remainingDiscoverableCredentials",
            ),
            vendor_prototype_config_commands: keep(
                ig,
                u64s(21, "vendorPrototypeConfigCommands"),
                "vendorPrototypeConfigCommands",
            ),
            attestation_formats: keep(ig, texts(22, "attestationFormats"), "attestationFormats"),
            uv_count_since_last_pin_entry: keep(ig, u64f(23, "uvCountSinceLastPinEntry"), "uvCountSinceLastPinEntry"),
            long_touch_for_reset: keep(ig, v.opt_bool(24, "longTouchForReset"), "longTouchForReset"),
            enc_identifier: keep(ig, v.opt_bytes(25, "encIdentifier").map(|b| b.map(<[u8]>::to_vec)), "encIdentifier"),
            transports_for_reset: keep(ig, texts(26, "transportsForReset"), "transportsForReset"),
            pin_complexity_policy: keep(ig, v.opt_bool(27, "pinComplexityPolicy"), "pinComplexityPolicy"),
            pin_complexity_policy_url: keep(
                ig,
                v.opt_bytes(28, "pinComplexityPolicyURL").map(|b| b.map(<[u8]>::to_vec)),
                "pinComplexityPolicyURL",
            ),
            max_pin_length: keep(ig, u64f(29, "maxPINLength"), "maxPINLength"),
            enc_cred_store_state: keep(
                ig,
                v.opt_bytes(30, "encCredStoreState").map(|b| b.map(<[u8]>::to_vec)),
                "encCredStoreState",
            ),
            authenticator_config_commands: keep(
                ig,
                u64s(31, "authenticatorConfigCommands"),
                "authenticatorConfigCommands",
            ),
            ignored_fields: Vec::new(),
        };
        ignored.dedup();
        if !ignored.is_empty() {
            tracing::debug!(fields = ?ignored, "getInfo: mistyped optional members ignored");
        }
        info.ignored_fields = ignored;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn python_fido2_info() {
        let case = vector_case(|c| c["source"]["test"] == "TestInfo.test_parse_bytes");
        let raw = hex(case["response_cbor_hex"].as_str().unwrap());
        let info = GetInfoResponse::from_cbor(&raw).unwrap();
        assert_eq!(info.versions, vec!["U2F_V2", "FIDO_2_0"]);
        assert_eq!(info.extensions, Some(vec!["uvm".to_owned(), "hmac-secret".to_owned()]));
        assert_eq!(info.aaguid, hex("f8a011f38c0a4d15800617111f9edc7d"));
        assert_eq!(info.option("rk"), Some(true));
        assert_eq!(info.option("plat"), Some(false));
        assert_eq!(info.option("clientPin"), Some(false));
        assert_eq!(info.max_msg_size, Some(1200));
        assert_eq!(info.pin_uv_auth_protocols, Some(vec![1]));
        assert_eq!(info.to_cbor(), raw);
        assert_eq!(GetInfoRequest.to_request_bytes(), vec![0x04]);
    }

    #[test]
    fn unknown_key_tolerated() {
        let case = vector_case(|c| c["source"]["test"] == "TestInfo.test_info_with_extra_field");
        let info = GetInfoResponse::from_cbor(&hex(case["response_cbor_hex"].as_str().unwrap())).unwrap();
        assert_eq!(info.versions, vec!["U2F_V2", "FIDO_2_0"]);
    }

    proptest! {
        #[test]
        fn round_trip(versions in proptest::collection::vec(text(), 0..4), aaguid in proptest::array::uniform16(any::<u8>()),
            opts in proptest::option::of(proptest::collection::btree_map(text(), any::<bool>(), 0..5)),
            n in proptest::option::of(any::<u64>()), protos in proptest::option::of(proptest::collection::vec(1u64..3, 0..3)),
            fpc in proptest::option::of(any::<bool>()), algs in proptest::option::of(proptest::collection::vec(any::<i32>(), 0..3))) {
            let info = GetInfoResponse { versions, aaguid: aaguid.to_vec(), options: opts, max_msg_size: n,
                pin_uv_auth_protocols: protos.clone(), max_credential_count_in_list: n, force_pin_change: fpc,
                algorithms: algs.map(|a| a.into_iter().map(|x| PublicKeyCredentialParameters::public_key(x as i64)).collect()),
                remaining_discoverable_credentials: n, vendor_prototype_config_commands: protos.clone(), firmware_version: n,
                attestation_formats: Some(vec!["packed".into(), "none".into()]), uv_count_since_last_pin_entry: n,
                long_touch_for_reset: fpc, enc_identifier: Some(aaguid.to_vec()), transports_for_reset: Some(vec!["usb".into()]),
                pin_complexity_policy: fpc, pin_complexity_policy_url: Some(b"https://example.com/pin".to_vec()),
                max_pin_length: n, enc_cred_store_state: Some(aaguid[..8].to_vec()), authenticator_config_commands: protos,
                ..Default::default() };
            prop_assert_eq!(GetInfoResponse::from_cbor(&info.to_cbor()).unwrap(), info);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = GetInfoResponse::from_cbor(&b);
        }
    }
}

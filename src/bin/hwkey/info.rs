//! `hwkey list`, `hwkey info`, `hwkey wink`.

use crate::common::{self, DeviceArg, Touch};
use hwkey::proto::auth_data::aaguid_to_string;
use std::time::Duration;

/// `hwkey list`: FIDO HID devices.
pub fn list() -> Result<(), String> {
    let devices = hwkey::client::discovery::list_hid().map_err(common::message)?;
    if devices.is_empty() {
        eprintln!("No FIDO security key found.");
        return Ok(());
    }
    for d in devices {
        let denied = matches!(
            std::fs::OpenOptions::new().read(true).write(true).open(&d.path),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied
        );
        let name =
            [d.manufacturer.as_deref(), d.product.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        println!(
            "hid:{}\t{:04x}:{:04x}\t{}{}",
            d.path,
            d.vendor_id,
            d.product_id,
            name,
            if denied { "\t(no permission: install udev/70-hwkey.rules, see udev/README.md)" } else { "" }
        );
    }
    Ok(())
}

/// `hwkey info`.
pub fn info(dev_arg: &DeviceArg, json: bool) -> Result<(), String> {
    let touch = Touch::new();
    let dev = common::open(dev_arg, &touch)?;
    let init = *dev.init_info();
    let Some(i) = dev.info() else {
        if json {
            let v = serde_json::json!({"device": dev.describe(), "versions": ["U2F_V2"]});
            println!("{v}");
        } else {
            println!("device:    {}\nversions:  U2F_V2 (no CTAP2)", dev.describe());
        }
        return Ok(());
    };
    let aaguid: [u8; 16] = i.aaguid.as_slice().try_into().unwrap_or([0; 16]);
    if json {
        let v = serde_json::json!({
            "device": dev.describe(),
            "ctaphid": {"protocolVersion": init.protocol_version,
                "deviceVersion": format!("{}.{}.{}", init.device_version.0, init.device_version.1, init.device_version.2),
                "capabilities": init.capabilities},
            "versions": i.versions,
            "extensions": i.extensions,
            "aaguid": aaguid_to_string(&aaguid),
            "options": i.options,
            "maxMsgSize": i.max_msg_size,
            "pinUvAuthProtocols": i.pin_uv_auth_protocols,
            "maxCredentialCountInList": i.max_credential_count_in_list,
            "maxCredentialIdLength": i.max_credential_id_length,
            "transports": i.transports,
            "algorithms": i.algorithms.as_ref().map(|a| a.iter().map(|p| p.alg).collect::<Vec<_>>()),
            "maxSerializedLargeBlobArray": i.max_serialized_large_blob_array,
            "forcePINChange": i.force_pin_change,
            "minPINLength": i.min_pin_length,
            "firmwareVersion": i.firmware_version,
            "maxCredBlobLength": i.max_cred_blob_length,
            "remainingDiscoverableCredentials": i.remaining_discoverable_credentials,
            "maxRPIDsForSetMinPINLength": i.max_rpids_for_set_min_pin_length,
            "preferredPlatformUvAttempts": i.preferred_platform_uv_attempts,
            "uvModality": i.uv_modality,
            "attestationFormats": i.attestation_formats,
            "uvCountSinceLastPinEntry": i.uv_count_since_last_pin_entry,
            "longTouchForReset": i.long_touch_for_reset,
            "encIdentifier": i.enc_identifier.as_deref().map(hwkey::proto::webauthn::b64url_encode),
            "transportsForReset": i.transports_for_reset,
            "pinComplexityPolicy": i.pin_complexity_policy,
            "pinComplexityPolicyURL": i.pin_complexity_policy_url.as_deref().map(|u| String::from_utf8_lossy(u).into_owned()),
            "maxPINLength": i.max_pin_length,
            "encCredStoreState": i.enc_cred_store_state.as_deref().map(hwkey::proto::webauthn::b64url_encode),
            "authenticatorConfigCommands": i.authenticator_config_commands,
        });
        println!("{v}");
        return Ok(());
    }
    println!("device:      {}", dev.describe());
    println!("versions:    {}", i.versions.join(", "));
    println!("aaguid:      {}", aaguid_to_string(&aaguid));
    if let Some(e) = &i.extensions {
        println!("extensions:  {}", e.join(", "));
    }
    if let Some(o) = &i.options {
        let s: Vec<String> = o.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("options:     {}", s.join(", "));
    }
    if let Some(p) = &i.pin_uv_auth_protocols {
        println!("pin/uv auth protocols: {}", p.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
    }
    let opt = |name: &str, v: Option<u64>| {
        if let Some(v) = v {
            println!("{name}: {v}");
        }
    };
    opt("max message size", i.max_msg_size);
    opt("max credentials in list", i.max_credential_count_in_list);
    opt("max credential ID length", i.max_credential_id_length);
    opt("min PIN length", i.min_pin_length);
    opt("firmware version", i.firmware_version);
    opt("remaining discoverable credentials", i.remaining_discoverable_credentials);
    opt("max PIN length", i.max_pin_length);
    opt("fingerprint attempts before the PIN", i.preferred_platform_uv_attempts);
    opt("fingerprint matches since the last PIN", i.uv_count_since_last_pin_entry);
    if let Some(a) = &i.algorithms {
        println!("algorithms:  {}", a.iter().map(|p| p.alg.to_string()).collect::<Vec<_>>().join(", "));
    }
    if let Some(f) = &i.attestation_formats {
        println!("attestation formats: {}", f.join(", "));
    }
    if let Some(p) = i.pin_complexity_policy {
        let url = i.pin_complexity_policy_url.as_deref().map(String::from_utf8_lossy);
        match url {
            Some(u) if p => println!("PIN complexity policy: on ({u})"),
            _ => println!("PIN complexity policy: {}", if p { "on" } else { "off" }),
        }
    }
    if i.long_touch_for_reset == Some(true) {
        println!("reset:       needs a long touch");
    }
    if let Some(t) = &i.transports_for_reset {
        println!("reset over:  {}", t.join(", "));
    }
    if let Some(c) = &i.authenticator_config_commands {
        println!("config commands: {}", c.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
    }
    if i.enc_identifier.is_some() {
        println!("identifier:  encrypted (read it with a persistent PIN/UV token)");
    }
    Ok(())
}

/// `hwkey wink`.
pub fn wink(dev_arg: &DeviceArg) -> Result<(), String> {
    let touch = Touch::new();
    let mut dev = common::open(dev_arg, &touch)?;
    dev.wink(&touch.op(Duration::from_secs(5))).map_err(common::message)
}

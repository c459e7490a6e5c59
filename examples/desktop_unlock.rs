//! A desktop program that keeps local data encrypted under a secret derived
//! from the user's YubiKey (HMAC-SHA1 challenge-response slot).
//!
//! ```text
//! # with a real key (slot 2 programmed, e.g. `hwkey yubikey program --slot 2 --hmac-key HEX`)
//! cargo run --example desktop_unlock -- seal vault.json "my secret notes"
//! cargo run --example desktop_unlock -- open vault.json
//! # with the software key
//! hwkey virtual yubikey --udp 127.0.0.1:7000 --slot2-hmac 000102030405060708090a0b0c0d0e0f10111213 &
//! cargo run --example desktop_unlock -- --device udp:127.0.0.1:7000 seal vault.json "notes"
//! ```
//!
//! `seal` enrolls the key (random salt), encrypts with AES-256-GCM under the
//! derived 32 bytes and writes the enrollment record, nonce and ciphertext.
//! `open` derives the same 32 bytes from the same key and decrypts; another
//! key is refused by the enrollment's key check.

#[cfg(feature = "yubikey")]
fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(feature = "yubikey"))]
fn main() {
    eprintln!("error: this example needs feature `yubikey`");
    std::process::exit(1);
}

#[cfg(feature = "yubikey")]
fn run() -> Result<(), String> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use hwkey::crypto::default_provider;
    use hwkey::yubikey::derive::{Enrollment, YubikeyHmacSource, derive, enroll, random_salt};
    use hwkey::yubikey::{OtpConnection, Progress, Slot, open_device};

    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut device = None;
    let mut slot = Slot::Two;
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let value = if args.is_empty() { return Err(format!("{flag} needs a value")) } else { args.remove(0) };
        match flag.as_str() {
            "--device" => device = Some(value),
            "--slot" => {
                slot = Slot::from_number(value.parse().map_err(|_| "bad --slot")?).map_err(|e| e.to_string())?
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let mut conn = OtpConnection::new(open_device(device.as_deref()).map_err(|e| e.to_string())?);
    let mut prompted = false;
    let mut progress = |p: Progress| {
        if matches!(p, Progress::TouchNeeded { .. }) && !prompted {
            eprintln!("Touch your YubiKey...");
            prompted = true;
        }
    };
    let p = default_provider();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["seal", path, text] => {
            let salt = random_salt().map_err(|e| e.to_string())?;
            let mut source = YubikeyHmacSource::new(&mut conn, slot, &mut progress);
            let (enrollment, key) = enroll(&mut source, &salt).map_err(|e| e.to_string())?;
            let mut nonce = [0u8; 12];
            p.fill_random(&mut nonce).map_err(|e| e.to_string())?;
            let sealed =
                p.aes256_gcm_seal(&key[..], &nonce, b"hwkey vault", text.as_bytes()).map_err(|e| e.to_string())?;
            let file = serde_json::json!({
                "enrollment": enrollment,
                "nonce": B64.encode(nonce),
                "ciphertext": B64.encode(sealed),
            });
            std::fs::write(path, serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?)
                .map_err(|e| format!("cannot write {path}: {e}"))?;
            eprintln!("sealed {path} under the key in slot {}", slot.number());
            Ok(())
        }
        ["open", path] => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            let enrollment: Enrollment =
                serde_json::from_value(v["enrollment"].clone()).map_err(|e| format!("{path}: {e}"))?;
            let field = |k: &str| B64.decode(v[k].as_str().unwrap_or_default()).map_err(|_| format!("{path}: bad {k}"));
            let nonce: [u8; 12] = field("nonce")?.try_into().map_err(|_| format!("{path}: bad nonce"))?;
            let ciphertext = field("ciphertext")?;
            let mut source = YubikeyHmacSource::new(&mut conn, slot, &mut progress);
            let key = derive(&enrollment, &mut source).map_err(|e| e.to_string())?;
            let plain = p.aes256_gcm_open(&key[..], &nonce, b"hwkey vault", &ciphertext).map_err(|e| e.to_string())?;
            println!("{}", String::from_utf8_lossy(&plain));
            Ok(())
        }
        _ => Err("usage: desktop_unlock [--device D] [--slot 1|2] seal FILE TEXT | open FILE".into()),
    }
}

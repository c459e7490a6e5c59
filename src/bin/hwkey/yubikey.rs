//! `hwkey yubikey` and `hwkey virtual yubikey`: the YubiKey OTP interface.

use clap::Subcommand;
use hwkey::yubikey::config::{decode_hex, parse_access_code};
use hwkey::yubikey::{
    FeatureReportTransport, HmacSlotConfig, OtpConnection, Progress, Slot, VirtualYubikey, YubikeyError,
    challenge_response, open_device,
};
use std::io::Write;
use std::time::Duration;

/// The `yubikey` command group.
#[derive(Debug, Subcommand)]
pub enum YubikeyCommand {
    /// Firmware version, serial number and slot status.
    Info {
        /// hid:PATH or udp:HOST:PORT (default: the one connected YubiKey).
        #[arg(long)]
        device: Option<String>,
    },
    /// Print the serial number.
    Serial {
        /// hid:PATH or udp:HOST:PORT (default: the one connected YubiKey).
        #[arg(long)]
        device: Option<String>,
    },
    /// HMAC-SHA1 challenge-response; prints the 20-byte response as hex.
    Chalresp {
        /// Slot 1 or 2.
        #[arg(long)]
        slot: u64,
        /// The challenge as hex, 0 to 64 bytes.
        #[arg(default_value = "")]
        challenge: String,
        /// hid:PATH or udp:HOST:PORT (default: the one connected YubiKey).
        #[arg(long)]
        device: Option<String>,
        /// Seconds to wait for a touch.
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
    /// Program a slot for HMAC-SHA1 challenge-response.
    Program {
        /// Slot 1 or 2.
        #[arg(long)]
        slot: u64,
        /// The HMAC key as hex, up to 20 bytes.
        #[arg(long)]
        hmac_key: String,
        /// Require a touch for every challenge.
        #[arg(long)]
        touch: bool,
        /// Hash all 64 bytes of every challenge (no variable-length challenges).
        #[arg(long)]
        fixed_64: bool,
        /// The slot's current access code (12 hex digits), if it has one.
        #[arg(long, value_name = "HEX")]
        access_code: Option<String>,
        /// Protect the slot with this access code (12 hex digits).
        #[arg(long, value_name = "HEX")]
        new_access_code: Option<String>,
        /// hid:PATH or udp:HOST:PORT (default: the one connected YubiKey).
        #[arg(long)]
        device: Option<String>,
    },
}

fn connect(device: Option<&str>) -> Result<OtpConnection<Box<dyn FeatureReportTransport>>, String> {
    Ok(OtpConnection::new(open_device(device).map_err(|e| e.to_string())?))
}

fn err(e: YubikeyError) -> String {
    e.to_string()
}

/// Run a `yubikey` command. Results on stdout; prompts on stderr.
pub fn run(cmd: YubikeyCommand) -> Result<(), String> {
    match cmd {
        YubikeyCommand::Info { device } => {
            let mut conn = connect(device.as_deref())?;
            let status = conn.status().map_err(err)?;
            let serial = match conn.serial() {
                Ok(s) => s.to_string(),
                Err(YubikeyError::Rejected(_)) => "not visible".to_string(),
                Err(e) => return Err(err(e)),
            };
            println!("firmware version: {}", status.version_string());
            println!("serial: {serial}");
            println!("programming sequence: {}", status.prog_seq);
            for slot in [1u8, 2] {
                let what = if !status.slot_programmed(slot) {
                    "empty"
                } else if status.slot_requires_touch(slot) {
                    "programmed, requires touch"
                } else {
                    "programmed"
                };
                println!("slot {slot}: {what}");
            }
            Ok(())
        }
        YubikeyCommand::Serial { device } => {
            let mut conn = connect(device.as_deref())?;
            println!("{}", conn.serial().map_err(err)?);
            Ok(())
        }
        YubikeyCommand::Chalresp { slot, challenge, device, timeout } => {
            let slot = Slot::from_number(slot).map_err(err)?;
            let challenge = decode_hex(&challenge).map_err(|_| "challenge must be hex".to_string())?;
            if challenge.len() > 64 {
                return Err(err(YubikeyError::ChallengeTooLong(challenge.len())));
            }
            let mut conn = connect(device.as_deref())?.with_timeout(Duration::from_secs(timeout.clamp(1, 600)));
            let mut prompted = false;
            let resp = challenge_response(&mut conn, slot, &challenge, &mut |p| match p {
                Progress::TouchNeeded { .. } if !prompted => {
                    eprintln!("Touch your YubiKey...");
                    prompted = true;
                }
                _ => {}
            })
            .map_err(err)?;
            println!("{}", hex(&resp[..]));
            Ok(())
        }
        YubikeyCommand::Program { slot, hmac_key, touch, fixed_64, access_code, new_access_code, device } => {
            let slot = Slot::from_number(slot).map_err(err)?;
            let key = zeroize::Zeroizing::new(decode_hex(&hmac_key).map_err(|_| "--hmac-key must be hex".to_string())?);
            if key.len() > 20 {
                return Err(format!("--hmac-key is {} bytes: at most 20", key.len()));
            }
            let mut cfg = HmacSlotConfig::new(&key, touch).map_err(err)?;
            cfg.fixed_64 = fixed_64;
            cfg.access_code = new_access_code.as_deref().map(parse_access_code).transpose().map_err(err)?;
            let current = access_code.as_deref().map(parse_access_code).transpose().map_err(err)?;
            let mut conn = connect(device.as_deref())?;
            conn.program_hmac(slot, &cfg, current.as_ref()).map_err(err)?;
            eprintln!("slot {} programmed for HMAC-SHA1 challenge-response", slot.number());
            Ok(())
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `hwkey virtual yubikey`: serve a software YubiKey OTP interface over UDP
/// (`udp` given) or as uhid devices (`None`). Prints `listening on
/// udp://ADDR` (or `listening on hid:/dev/hidrawN`) once ready, then serves
/// until killed.
pub fn run_virtual_yubikey(
    udp: Option<String>,
    serial: Option<u32>,
    slot1_hmac: Option<String>,
    slot2_hmac: Option<String>,
    version: Option<String>,
) -> Result<(), String> {
    let mut key = VirtualYubikey::new(serial.unwrap_or(5_000_000));
    if let Some(v) = version {
        key = key.with_version(VirtualYubikey::parse_version(&v).map_err(err)?);
    }
    for (n, hexkey) in [(1u8, slot1_hmac), (2, slot2_hmac)] {
        if let Some(h) = hexkey {
            let k = zeroize::Zeroizing::new(decode_hex(&h).map_err(|_| format!("--slot{n}-hmac must be hex"))?);
            key.set_hmac_slot(n, &k, false).map_err(err)?;
        }
    }
    let Some(udp) = udp else {
        return crate::virtual_device::uhid::serve_yubikey(key);
    };
    let socket = std::net::UdpSocket::bind(&udp).map_err(|e| format!("cannot bind udp {udp}: {e}"))?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    println!("listening on udp://{addr}");
    let _ = std::io::stdout().flush();
    key.serve_udp(&socket).map_err(|e| format!("udp: {e}"))
}

//! `hwkey config always-uv|min-pin-length|enterprise-attestation`:
//! authenticatorConfig (CTAP 2.1 §6.11). With a PIN set, the PIN is asked
//! for (a token with the `acfg` permission).

use crate::common::{self, CliPin, DeviceArg, PinArg, Touch};
use clap::Subcommand;
use hwkey::client::pin::{PinUvAuthToken, permissions};
use hwkey::client::webauthn::UserInteraction;
use hwkey::client::{ClientError, Device, Op};
use std::time::Duration;

/// The `config` command group.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Toggle alwaysUv (user verification for every operation; turns U2F off).
    AlwaysUv {
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Raise the minimum PIN length, name the RPs that may read it, force a PIN
    /// change, turn the PIN complexity policy on.
    MinPinLength {
        /// The new minimum length in characters (not below the current one).
        length: Option<u8>,
        /// An RP ID allowed to read the minimum length (minPinLength extension); repeatable.
        #[arg(long = "rp-id")]
        rp_ids: Vec<String>,
        /// Require a new PIN before the key hands out tokens again.
        #[arg(long)]
        force_change: bool,
        /// Turn the key's PIN complexity policy on (CTAP 2.2; stays on until reset).
        #[arg(long)]
        pin_complexity: bool,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Enable enterprise attestation (keys that support it).
    EnterpriseAttestation {
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
}

fn token(dev: &mut Device, ui: &CliPin, op: &Op) -> Result<Option<PinUvAuthToken>, String> {
    if dev.option("authnrCfg") != Some(true) {
        return Err("this security key has no authenticatorConfig".into());
    }
    if dev.option("clientPin") != Some(true) && dev.option("uv") != Some(true) {
        return Ok(None);
    }
    if dev.option("uv") == Some(true) && dev.option("pinUvAuthToken") == Some(true) {
        eprintln!("Touch the fingerprint sensor to verify...");
        match dev.uv_token_with_retries(permissions::AUTHENTICATOR_CONFIG, None, op) {
            Ok(t) => return Ok(Some(t)),
            Err(e @ (ClientError::UvBlocked | ClientError::UvInvalid { .. }))
                if dev.option("clientPin") == Some(true) =>
            {
                eprintln!("{e}; using the PIN instead.");
            }
            Err(e) => return Err(common::message(e)),
        }
    }
    let pin = ui.request_pin(None).ok_or_else(|| common::message(ClientError::PinRequired))?;
    dev.pin_token(&pin, permissions::AUTHENTICATOR_CONFIG, None, op).map(Some).map_err(common::message)
}

/// Run the command.
pub fn run(cmd: ConfigCommand) -> Result<(), String> {
    let touch = Touch::new();
    let op = touch.op(Duration::from_secs(30));
    match cmd {
        ConfigCommand::AlwaysUv { device, pin } => {
            let mut dev = common::open(&device, &touch)?;
            let t = token(&mut dev, &CliPin::new(&pin, &touch), &op)?;
            let on = dev.toggle_always_uv(t.as_ref(), &op).map_err(common::message)?;
            println!("alwaysUv: {}", if on { "on" } else { "off" });
        }
        ConfigCommand::MinPinLength { length, rp_ids, force_change, pin_complexity, device, pin } => {
            let mut dev = common::open(&device, &touch)?;
            let t = token(&mut dev, &CliPin::new(&pin, &touch), &op)?;
            let rps = (!rp_ids.is_empty()).then_some(rp_ids);
            dev.set_pin_policy(t.as_ref(), length, rps, force_change, pin_complexity, &op).map_err(common::message)?;
            let info = dev.info();
            println!("minimum PIN length: {}", info.and_then(|i| i.min_pin_length).unwrap_or(4));
            if info.and_then(|i| i.force_pin_change) == Some(true) {
                eprintln!("The key now requires a new PIN (hwkey pin change).");
            }
        }
        ConfigCommand::EnterpriseAttestation { device, pin } => {
            let mut dev = common::open(&device, &touch)?;
            let t = token(&mut dev, &CliPin::new(&pin, &touch), &op)?;
            dev.enable_enterprise_attestation(t.as_ref(), &op).map_err(common::message)?;
            eprintln!("Enterprise attestation enabled.");
        }
    }
    Ok(())
}

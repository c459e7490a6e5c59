//! The `hwkey` command-line tool (CONTRACTS §3): FIDO security keys
//! (`list`, `info`, `wink`, `webauthn`, `pin`, `creds`, `bio`, `reset`), the
//! software authenticator (`virtual serve`), OTP codes (`otp`) and the
//! YubiKey OTP interface (`yubikey`, `virtual yubikey`).
//!
//! Prompts and the touch spinner go to stderr; results to stdout. On failure
//! the exit status is non-zero, stdout stays empty and stderr says what is
//! wrong in its first line.
#![forbid(unsafe_code)]

mod bio;
mod common;
mod config;
mod creds;
mod info;
mod otp;
mod pam;
mod pin;
mod reset;
mod virtual_device;
mod webauthn;
mod yubikey;

use clap::{Parser, Subcommand};
use common::DeviceArg;
use std::path::PathBuf;

/// Possession-factor hardware for authentication: FIDO2/U2F security keys,
/// WebAuthn, a software authenticator, YubiKey OTP, HOTP/TOTP.
#[derive(Debug, Parser)]
#[command(name = "hwkey", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the connected FIDO HID devices.
    List,
    /// Show the authenticator's getInfo.
    Info {
        #[command(flatten)]
        device: DeviceArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the key blink.
    Wink {
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Run WebAuthn ceremonies as a client.
    #[command(subcommand)]
    Webauthn(webauthn::WebauthnCommand),
    /// Manage the PIN.
    #[command(subcommand)]
    Pin(pin::PinCommand),
    /// Manage discoverable credentials.
    #[command(subcommand)]
    Creds(creds::CredsCommand),
    /// Manage fingerprints (keys with a fingerprint sensor).
    #[command(subcommand)]
    Bio(bio::BioCommand),
    /// authenticatorConfig: alwaysUv, minimum PIN length, enterprise attestation.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Erase every credential and the PIN (asks for confirmation).
    Reset {
        #[command(flatten)]
        device: DeviceArg,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Software devices.
    #[command(subcommand)]
    Virtual(VirtualCommand),
    /// HOTP/TOTP codes and enrollment.
    #[command(subcommand)]
    Otp(otp::OtpCommand),
    /// The YubiKey OTP interface: info, serial, challenge-response, programming.
    #[command(subcommand)]
    Yubikey(yubikey::YubikeyCommand),
    /// Desktop login: pam-u2f authfile lines for pam_hwkey (and pam_u2f).
    #[command(subcommand)]
    Pam(pam::PamCommand),
}

#[derive(Debug, Subcommand)]
enum VirtualCommand {
    /// A software CTAP 2.2 authenticator speaking CTAPHID over UDP, or a
    /// kernel HID device through /dev/uhid (--uhid).
    Serve {
        /// Address to bind, e.g. 127.0.0.1:0 (port 0 picks a free port).
        #[arg(long, required_unless_present = "uhid", conflicts_with = "uhid")]
        udp: Option<String>,
        /// Create a Linux HID device through /dev/uhid instead (prints listening on hid:/dev/hidrawN).
        #[arg(long)]
        uhid: bool,
        /// State file (credentials, PIN); kept in memory without it.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Set this PIN at start-up if the authenticator has none.
        #[arg(long)]
        pin: Option<String>,
        /// Grant user presence only after this many milliseconds (default: at once).
        #[arg(long, value_name = "MS")]
        touch_delay: Option<u64>,
        /// Simulate a fingerprint sensor (bioEnrollment, built-in UV): every
        /// sample matches (always), none does (never), or each verification
        /// matches after N failed samples (after:N).
        #[arg(long, value_name = "always|never|after:N")]
        fingerprint: Option<hwkey::authenticator::FingerprintMode>,
        /// Enforce a PIN complexity policy (CTAP 2.2): refuse PINs such as 1111 or 1234.
        #[arg(long)]
        pin_complexity: bool,
        /// An RP ID granted vendor-facilitated enterprise attestation once it is
        /// enabled (hwkey config enterprise-attestation); repeatable.
        #[arg(long = "enterprise-rp-id", value_name = "RP_ID")]
        enterprise_rp_ids: Vec<String>,
    },
    /// A software YubiKey OTP interface over UDP, or a YubiKey 5 (OTP and
    /// FIDO interfaces) as kernel HID devices through /dev/uhid (--uhid).
    Yubikey {
        /// Address to bind, e.g. 127.0.0.1:0.
        #[arg(long, required_unless_present = "uhid", conflicts_with = "uhid")]
        udp: Option<String>,
        /// Create Linux HID devices through /dev/uhid instead.
        #[arg(long)]
        uhid: bool,
        /// Serial number.
        #[arg(long)]
        serial: Option<u32>,
        /// HMAC-SHA1 key of slot 1 (hex, up to 20 bytes).
        #[arg(long)]
        slot1_hmac: Option<String>,
        /// HMAC-SHA1 key of slot 2 (hex, up to 20 bytes).
        #[arg(long)]
        slot2_hmac: Option<String>,
        /// Firmware version (default 5.4.3).
        #[arg(long)]
        version: Option<String>,
    },
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::List => info::list(),
        Command::Info { device, json } => info::info(&device, json),
        Command::Wink { device } => info::wink(&device),
        Command::Webauthn(c) => webauthn::run(c),
        Command::Pin(c) => pin::run(c),
        Command::Creds(c) => creds::run(c),
        Command::Bio(c) => bio::run(c),
        Command::Config(c) => config::run(c),
        Command::Reset { device, yes } => reset::run(&device, yes),
        Command::Virtual(VirtualCommand::Serve {
            udp,
            uhid,
            state,
            pin,
            touch_delay,
            fingerprint,
            pin_complexity,
            enterprise_rp_ids,
        }) => {
            let listen = match udp {
                Some(a) if !uhid => virtual_device::Listen::Udp(a),
                _ => virtual_device::Listen::Uhid,
            };
            let sensor = virtual_device::Options { touch_delay, fingerprint, pin_complexity, enterprise_rp_ids };
            virtual_device::serve(listen, state, pin, sensor)
        }
        Command::Virtual(VirtualCommand::Yubikey { udp, uhid, serial, slot1_hmac, slot2_hmac, version }) => {
            let udp = if uhid { None } else { udp };
            yubikey::run_virtual_yubikey(udp, serial, slot1_hmac, slot2_hmac, version)
        }
        Command::Otp(c) => otp::run(c),
        Command::Yubikey(c) => yubikey::run(c),
        Command::Pam(c) => pam::run(c),
    }
}

fn main() {
    // Never a panic trace: one line on stderr, exit status 2.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("error: internal error: {what}");
        std::process::exit(2);
    }));
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Virtual(_) | Command::Otp(_) | Command::Yubikey(_)) {
        common::install_ctrl_c();
    }
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

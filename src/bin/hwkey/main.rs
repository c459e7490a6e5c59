//! The `hwkey` command-line tool.
//!
//! This worktree's main wires only the OTP and YubiKey groups; the full main
//! (FIDO commands) lives with the client engineer and adds `mod otp; mod yubikey;`.

mod otp;
mod yubikey;

use clap::{Parser, Subcommand};

/// Possession-factor hardware for authentication.
#[derive(Debug, Parser)]
#[command(name = "hwkey", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// HOTP/TOTP codes and enrollment.
    #[command(subcommand)]
    Otp(otp::OtpCommand),
    /// The YubiKey OTP interface: info, serial, challenge-response, programming.
    #[command(subcommand)]
    Yubikey(yubikey::YubikeyCommand),
    /// Software devices.
    #[command(subcommand)]
    Virtual(VirtualCommand),
}

#[derive(Debug, Subcommand)]
enum VirtualCommand {
    /// A software YubiKey OTP interface over UDP.
    Yubikey {
        /// Address to bind, e.g. 127.0.0.1:0.
        #[arg(long)]
        udp: String,
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

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Otp(c) => otp::run(c),
        Command::Yubikey(c) => yubikey::run(c),
        Command::Virtual(VirtualCommand::Yubikey { udp, serial, slot1_hmac, slot2_hmac, version }) => {
            yubikey::run_virtual_yubikey(udp, serial, slot1_hmac, slot2_hmac, version)
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

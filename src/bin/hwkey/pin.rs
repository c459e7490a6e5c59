//! `hwkey pin set|change|retries`.

use crate::common::{self, DeviceArg, Touch, read_secret};
use clap::Subcommand;
use std::time::Duration;
use zeroize::Zeroizing;

/// The `pin` command group.
#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Set the first PIN.
    Set {
        #[command(flatten)]
        device: DeviceArg,
        /// The new PIN (else HWKEY_NEW_PIN, else asked twice).
        #[arg(long, env = "HWKEY_NEW_PIN", hide_env_values = true)]
        new_pin: Option<String>,
    },
    /// Change the PIN.
    Change {
        #[command(flatten)]
        device: DeviceArg,
        /// The current PIN (else HWKEY_PIN, else asked).
        #[arg(long, env = "HWKEY_PIN", hide_env_values = true)]
        pin: Option<String>,
        /// The new PIN (else HWKEY_NEW_PIN, else asked twice).
        #[arg(long, env = "HWKEY_NEW_PIN", hide_env_values = true)]
        new_pin: Option<String>,
    },
    /// How many PIN attempts are left.
    Retries {
        #[command(flatten)]
        device: DeviceArg,
    },
}

fn new_pin(given: Option<String>) -> Result<Zeroizing<String>, String> {
    if let Some(p) = given {
        return Ok(Zeroizing::new(p));
    }
    let a = read_secret("New PIN: ").ok_or("no PIN entered")?;
    let b = read_secret("New PIN again: ").ok_or("no PIN entered")?;
    if *a != *b {
        return Err("the two PINs differ".into());
    }
    Ok(a)
}

/// Run the command.
pub fn run(cmd: PinCommand) -> Result<(), String> {
    let touch = Touch::new();
    let op = || touch.op(Duration::from_secs(30));
    match cmd {
        PinCommand::Set { device, new_pin: np } => {
            let mut dev = common::open(&device, &touch)?;
            if dev.option("clientPin") == Some(true) {
                return Err("this security key already has a PIN: use `hwkey pin change`".into());
            }
            let p = new_pin(np)?;
            dev.set_pin(&p, &op()).map_err(common::message)?;
            eprintln!("PIN set.");
        }
        PinCommand::Change { device, pin, new_pin: np } => {
            let mut dev = common::open(&device, &touch)?;
            let old = match pin {
                Some(p) => Zeroizing::new(p),
                None => read_secret("Current PIN: ").ok_or("no PIN entered")?,
            };
            let p = new_pin(np)?;
            dev.change_pin(&old, &p, &op()).map_err(common::message)?;
            eprintln!("PIN changed.");
        }
        PinCommand::Retries { device } => {
            let mut dev = common::open(&device, &touch)?;
            let (n, power_cycle) = dev.pin_retries(&op()).map_err(common::message)?;
            println!("{n}");
            if power_cycle == Some(true) {
                eprintln!("Unplug and replug the key before the next PIN attempt.");
            }
        }
    }
    Ok(())
}

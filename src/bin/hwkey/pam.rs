//! `hwkey pam enroll`: print a pam-u2f authfile line for a key (CONTRACTS
//! §4), as pamu2fcfg does; `--append` prints only `:credential`, to add to
//! an existing line.

use crate::common::{self, CliPin, DeviceArg, PinArg, Touch};
use clap::Subcommand;
use hwkey::client::webauthn::UserInteraction;
use hwkey::desktop::authfile::{self, CoseType};
use hwkey::desktop::enroll::{EnrollOptions, enroll};
use std::time::Duration;

/// The `pam` command group.
#[derive(Debug, Subcommand)]
pub enum PamCommand {
    /// Make a credential for PAM login and print its authfile line.
    Enroll {
        /// The user name of the line (default: the current user).
        #[arg(long)]
        user: Option<String>,
        /// The origin, i.e. the RP ID (default: pam://HOSTNAME).
        #[arg(long)]
        origin: Option<String>,
        /// The appid, i.e. the RP name (default: the origin).
        #[arg(long)]
        appid: Option<String>,
        /// A resident (discoverable) credential; the line's key handle is `*`.
        #[arg(long)]
        resident: bool,
        /// Require the PIN at login (+pin).
        #[arg(long)]
        pin_verification: bool,
        /// Require built-in user verification at login (+verification).
        #[arg(long)]
        user_verification: bool,
        /// Log in without a touch (no +presence).
        #[arg(long)]
        no_user_presence: bool,
        /// The key type: es256 (default), eddsa or rs256.
        #[arg(long, value_name = "TYPE", default_value = "es256")]
        r#type: String,
        /// Print only `:KeyHandle,UserKey,CoseType,Options`, to append to an existing line.
        #[arg(long)]
        append: bool,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

fn current_user() -> Option<String> {
    std::env::var("USER").ok().or_else(|| std::env::var("LOGNAME").ok()).filter(|u| !u.is_empty())
}

/// Run the command.
pub fn run(cmd: PamCommand) -> Result<(), String> {
    let PamCommand::Enroll {
        user,
        origin,
        appid,
        resident,
        pin_verification,
        user_verification,
        no_user_presence,
        r#type,
        append,
        device,
        pin,
    } = cmd;
    let user = user.or_else(current_user).ok_or("no user name: pass --user")?;
    let origin = origin.unwrap_or_else(|| format!("pam://{}", hostname()));
    let appid = appid.unwrap_or_else(|| origin.clone());
    let cose_type = CoseType::parse(&r#type)
        .ok_or_else(|| format!("--type {type:?}: expected es256, eddsa or rs256", type = r#type))?;
    let o = EnrollOptions {
        user: user.clone(),
        origin,
        appid,
        resident,
        pin_verification,
        user_verification,
        no_user_presence,
        cose_type,
    };
    let touch = Touch::new();
    let mut dev = common::open(&device, &touch)?;
    let ui = CliPin::new(&pin, &touch);
    let op = touch.op(Duration::from_secs(60));
    let cred = enroll(&mut dev, &o, &|| ui.request_pin(None), &op);
    touch.done();
    let cred = cred.map_err(common::message)?;
    if append {
        println!(":{}", cred.to_field());
    } else {
        println!("{}", authfile::format_line(&user, &[cred]));
    }
    Ok(())
}

//! `hwkey creds list|delete|update`: discoverable credentials (credential management).

use crate::common::{self, CliPin, DeviceArg, PinArg, Touch};
use clap::Subcommand;
use hwkey::client::pin::permissions;
use hwkey::client::webauthn::UserInteraction;
use hwkey::client::{ClientError, Device, Op};
use hwkey::proto::webauthn::{b64url_decode, b64url_encode};
use std::time::Duration;

/// The `creds` command group.
#[derive(Debug, Subcommand)]
pub enum CredsCommand {
    /// List the discoverable credentials.
    List {
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Change the user name and display name stored with a discoverable credential.
    Update {
        /// The credential ID (base64url, as `creds list` prints it).
        id: String,
        /// The new user name.
        #[arg(long)]
        name: Option<String>,
        /// The new display name.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Delete a discoverable credential by its ID (base64url, as `creds list` prints it).
    Delete {
        /// The credential ID.
        id: String,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
}

fn token(dev: &mut Device, ui: &CliPin, op: &Op) -> Result<hwkey::client::pin::PinUvAuthToken, String> {
    if dev.option("clientPin") != Some(true) {
        return Err(common::message(ClientError::PinNotSet));
    }
    let pin = ui.request_pin(None).ok_or_else(|| common::message(ClientError::PinRequired))?;
    dev.pin_token(&pin, permissions::CREDENTIAL_MANAGEMENT, None, op).map_err(common::message)
}

/// Run the command.
pub fn run(cmd: CredsCommand) -> Result<(), String> {
    let touch = Touch::new();
    let op = touch.op(Duration::from_secs(30));
    match cmd {
        CredsCommand::List { device, pin } => {
            let mut dev = common::open(&device, &touch)?;
            let ui = CliPin::new(&pin, &touch);
            let t = token(&mut dev, &ui, &op)?;
            let creds = dev.list_credentials(&t, &op).map_err(common::message)?;
            if creds.is_empty() {
                eprintln!("No discoverable credentials on this key.");
            }
            for c in creds {
                let user = c.user.as_ref();
                println!(
                    "{}\t{}\t{}\t{}",
                    c.rp_id.as_deref().unwrap_or("?"),
                    user.and_then(|u| u.name.as_deref()).unwrap_or(""),
                    user.map(|u| b64url_encode(&u.id)).unwrap_or_default(),
                    b64url_encode(&c.credential_id)
                );
            }
        }
        CredsCommand::Update { id, name, display_name, device, pin } => {
            let raw = b64url_decode(&id).map_err(|_| format!("{id:?} is not base64url"))?;
            let mut dev = common::open(&device, &touch)?;
            let ui = CliPin::new(&pin, &touch);
            let t = token(&mut dev, &ui, &op)?;
            // The user ID must stay the stored one: read it first.
            let creds = dev.list_credentials(&t, &op).map_err(common::message)?;
            let c = creds
                .into_iter()
                .find(|c| c.credential_id == raw)
                .ok_or_else(|| common::message(ClientError::NoCredentials))?;
            let old = c.user.unwrap_or_default();
            let user = hwkey::proto::ctap2::PublicKeyCredentialUserEntity {
                id: old.id,
                name: name.or(old.name),
                display_name: display_name.or(old.display_name),
            };
            dev.update_user_information(&t, &raw, user, &op).map_err(common::message)?;
            eprintln!("Credential updated.");
        }
        CredsCommand::Delete { id, device, pin } => {
            let raw = b64url_decode(&id).map_err(|_| format!("{id:?} is not base64url"))?;
            let mut dev = common::open(&device, &touch)?;
            let ui = CliPin::new(&pin, &touch);
            let t = token(&mut dev, &ui, &op)?;
            dev.delete_credential(&t, &raw, &op).map_err(common::message)?;
            eprintln!("Credential deleted.");
        }
    }
    Ok(())
}

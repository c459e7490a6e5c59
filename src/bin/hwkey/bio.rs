//! `hwkey bio enroll|list|rename|delete|info`: fingerprints (bioEnrollment).
//!
//! Template IDs are printed and taken in base64url, as `creds` does for
//! credential IDs. The token (permission `be`) comes from a fingerprint when
//! one is enrolled (falling back to the PIN if it is not recognized or UV is
//! blocked), else from the PIN.

use crate::common::{self, CliPin, DeviceArg, PinArg, Touch};
use clap::Subcommand;
use hwkey::client::bio::{EnrollEvent, status};
use hwkey::client::pin::{PinUvAuthToken, permissions};
use hwkey::client::webauthn::UserInteraction;
use hwkey::client::{ClientError, Device, Op};
use hwkey::proto::webauthn::{b64url_decode, b64url_encode};
use std::time::Duration;

/// The `bio` command group.
#[derive(Debug, Subcommand)]
pub enum BioCommand {
    /// Enroll a fingerprint (touch the sensor once per sample); prints its template ID.
    Enroll {
        /// A friendly name for the fingerprint.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// List the enrolled fingerprints (template ID, name).
    List {
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Rename an enrolled fingerprint.
    Rename {
        /// The template ID (base64url, as `bio list` prints it).
        id: String,
        /// The new name.
        name: String,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Delete an enrolled fingerprint.
    Delete {
        /// The template ID (base64url, as `bio list` prints it).
        id: String,
        #[command(flatten)]
        device: DeviceArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// Show the fingerprint sensor's kind and how many samples an enrollment takes.
    Info {
        #[command(flatten)]
        device: DeviceArg,
    },
}

/// A token with the bioEnrollment permission: by fingerprint when one is
/// enrolled, else (or when it fails) by PIN.
fn token(dev: &mut Device, ui: &CliPin, op: &Op) -> Result<PinUvAuthToken, String> {
    if !dev.supports_bio_enrollment() {
        return Err("this security key has no fingerprint sensor".into());
    }
    let pin_set = dev.option("clientPin") == Some(true);
    if dev.option("uv") == Some(true) && dev.option("pinUvAuthToken") == Some(true) {
        eprintln!("Touch the fingerprint sensor to verify...");
        match dev.uv_token_with_retries(permissions::BIO_ENROLLMENT, None, op) {
            Ok(t) => return Ok(t),
            Err(e @ (ClientError::UvBlocked | ClientError::UvInvalid { .. })) if pin_set => {
                eprintln!("{e}; using the PIN instead.");
            }
            Err(e) => return Err(common::message(e)),
        }
    }
    if !pin_set {
        return Err("set a PIN first (hwkey pin set): the first fingerprint is enrolled with the PIN".into());
    }
    let pin = ui.request_pin(None).ok_or_else(|| common::message(ClientError::PinRequired))?;
    dev.pin_token(&pin, permissions::BIO_ENROLLMENT, None, op).map_err(common::message)
}

fn template_id(id: &str) -> Result<Vec<u8>, String> {
    b64url_decode(id).ok().filter(|b| !b.is_empty()).ok_or_else(|| format!("{id:?} is not a base64url template ID"))
}

/// Run the command.
pub fn run(cmd: BioCommand) -> Result<(), String> {
    let touch = Touch::new();
    let op = touch.op(Duration::from_secs(30));
    match cmd {
        BioCommand::Enroll { name, device, pin } => {
            let mut dev = common::open(&device, &touch)?;
            let ui = CliPin::new(&pin, &touch);
            let t = token(&mut dev, &ui, &op)?;
            // The touch spinner would repeat the prompt below for every sample.
            let quiet = Op::timeout(Duration::from_secs(120)).with_cancel(op.cancel.clone());
            let mut progress = |e: EnrollEvent| match e {
                EnrollEvent::Touch { remaining: None } => eprintln!("Touch the fingerprint sensor..."),
                EnrollEvent::Touch { remaining: Some(n) } => {
                    eprintln!(
                        "Touch the fingerprint sensor again ({n} sample{} left)...",
                        if n == 1 { "" } else { "s" }
                    )
                }
                EnrollEvent::Sample { status: s, .. } if s != status::GOOD => {
                    eprintln!("  {}: try again", status::describe(s))
                }
                EnrollEvent::Sample { .. } => {}
            };
            let id = dev.bio_enroll(&t, name.as_deref(), None, &mut progress, &quiet).map_err(common::message)?;
            eprintln!("Fingerprint enrolled.");
            println!("{}", b64url_encode(&id));
        }
        BioCommand::List { device, pin } => {
            let mut dev = common::open(&device, &touch)?;
            let ui = CliPin::new(&pin, &touch);
            let t = token(&mut dev, &ui, &op)?;
            let list = dev.bio_list(&t, &op).map_err(common::message)?;
            touch.done();
            if list.is_empty() {
                eprintln!("No fingerprints enrolled.");
            }
            for e in list {
                println!("{}\t{}", b64url_encode(&e.template_id), e.name.unwrap_or_default());
            }
        }
        BioCommand::Rename { id, name, device, pin } => {
            let raw = template_id(&id)?;
            let mut dev = common::open(&device, &touch)?;
            let ui = CliPin::new(&pin, &touch);
            let t = token(&mut dev, &ui, &op)?;
            dev.bio_rename(&t, &raw, &name, &op).map_err(common::message)?;
            touch.done();
            eprintln!("Fingerprint renamed.");
        }
        BioCommand::Delete { id, device, pin } => {
            let raw = template_id(&id)?;
            let mut dev = common::open(&device, &touch)?;
            let ui = CliPin::new(&pin, &touch);
            let t = token(&mut dev, &ui, &op)?;
            dev.bio_delete(&t, &raw, &op).map_err(common::message)?;
            touch.done();
            eprintln!("Fingerprint deleted.");
        }
        BioCommand::Info { device } => {
            let mut dev = common::open(&device, &touch)?;
            if !dev.supports_bio_enrollment() {
                return Err("this security key has no fingerprint sensor".into());
            }
            let info = dev.bio_sensor_info(&op).map_err(common::message)?;
            let kind = match info.fingerprint_kind {
                Some(1) => "touch".to_owned(),
                Some(2) => "swipe".to_owned(),
                Some(k) => format!("kind {k}"),
                None => "unknown".to_owned(),
            };
            println!("sensor: {kind}");
            if let Some(n) = info.max_samples {
                println!("samples per enrollment: {n}");
            }
            if let Some(n) = info.max_name_len {
                println!("longest name: {n} bytes");
            }
            if let Some(u) = dev.option("uv") {
                println!("fingerprints enrolled: {}", if u { "yes" } else { "no" });
            }
        }
    }
    Ok(())
}

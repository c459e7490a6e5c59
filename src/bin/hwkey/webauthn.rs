//! `hwkey webauthn register|login`: the WebAuthn client on JSON options.

use crate::common::{self, CliPin, DeviceArg, PinArg, Touch};
use clap::Subcommand;
use hwkey::client::webauthn::WebAuthnClient;
use hwkey::proto::webauthn::{CreationOptionsJson, RequestOptionsJson};
use std::io::Read;
use std::time::Duration;

/// The `webauthn` command group.
#[derive(Debug, Subcommand)]
pub enum WebauthnCommand {
    /// Read PublicKeyCredentialCreationOptionsJSON, print RegistrationResponseJSON.
    Register(CeremonyArgs),
    /// Read PublicKeyCredentialRequestOptionsJSON, print AuthenticationResponseJSON.
    Login(CeremonyArgs),
}

/// Arguments of both ceremonies.
#[derive(Debug, clap::Args)]
pub struct CeremonyArgs {
    /// The caller's origin, e.g. https://example.com.
    #[arg(long)]
    origin: String,
    /// The options JSON: a file, or - for stdin.
    #[arg(long, value_name = "FILE|-")]
    options: String,
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    pin: PinArg,
}

fn read_options(src: &str) -> Result<serde_json::Value, String> {
    let mut text = String::new();
    if src == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("reading options from stdin: {e}"))?;
    } else {
        text = std::fs::read_to_string(src).map_err(|e| format!("reading {src}: {e}"))?;
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("options are not valid JSON: {e}"))?;
    // Accept the bare options or the {"publicKey": {...}} wrapper of navigator.credentials.
    Ok(match v {
        serde_json::Value::Object(mut m) if m.contains_key("publicKey") => m.remove("publicKey").unwrap_or_default(),
        v => v,
    })
}

fn timeout(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(120_000).clamp(5_000, 600_000))
}

/// Run the command.
pub fn run(cmd: WebauthnCommand) -> Result<(), String> {
    let touch = Touch::new();
    let out = match cmd {
        WebauthnCommand::Register(a) => {
            let options: CreationOptionsJson = serde_json::from_value(read_options(&a.options)?)
                .map_err(|e| format!("invalid creation options: {e}"))?;
            let mut dev = common::open(&a.device, &touch)?;
            let ui = CliPin::new(&a.pin, &touch);
            let r = WebAuthnClient::new(&ui)
                .register(&mut dev, &options, &a.origin, &touch.op(timeout(options.timeout)))
                .map_err(common::message)?;
            serde_json::to_string(&r)
        }
        WebauthnCommand::Login(a) => {
            let options: RequestOptionsJson = serde_json::from_value(read_options(&a.options)?)
                .map_err(|e| format!("invalid request options: {e}"))?;
            let mut dev = common::open(&a.device, &touch)?;
            let ui = CliPin::new(&a.pin, &touch);
            let r = WebAuthnClient::new(&ui)
                .authenticate(&mut dev, &options, &a.origin, &touch.op(timeout(options.timeout)))
                .map_err(common::message)?;
            serde_json::to_string(&r)
        }
    };
    touch.done();
    println!("{}", out.map_err(|e| format!("encoding the response: {e}"))?);
    Ok(())
}

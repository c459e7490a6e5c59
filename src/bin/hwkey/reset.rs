//! `hwkey reset`: erase every credential and the PIN (asks for confirmation).

use crate::common::{self, DeviceArg, Touch};
use std::io::{BufRead, Write};
use std::time::Duration;

/// Run the command.
pub fn run(device: &DeviceArg, yes: bool) -> Result<(), String> {
    if !yes {
        eprint!("This erases every credential and the PIN on the security key. Type \"yes\" to continue: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading the answer: {e}"))?;
        if line.trim() != "yes" {
            return Err("reset not confirmed".into());
        }
    }
    let touch = Touch::new();
    let mut dev = common::open(device, &touch)?;
    // CTAP 2.2 longTouchForReset: a tap is not enough.
    if dev.info().and_then(|i| i.long_touch_for_reset) == Some(true) {
        eprintln!("Touch and hold the security key until it stops blinking (a long touch resets it).");
    }
    let r = dev.reset(&touch.op(Duration::from_secs(30)));
    touch.done();
    r.map_err(|e| match e {
        hwkey::client::ClientError::Status(hwkey::proto::ctap2::CtapStatus::NotAllowed) => {
            "the key refuses to reset now: unplug it, plug it back in and run `hwkey reset` within 10 seconds".into()
        }
        e => common::message(e),
    })?;
    eprintln!("The security key was reset.");
    Ok(())
}

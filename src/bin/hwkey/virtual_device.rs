//! `hwkey virtual serve`: the software CTAP2.1 authenticator over UDP.

use hwkey::authenticator::{Authenticator, AuthenticatorConfig, UserPresence};
use hwkey::client::{Device, Op};
use hwkey::transport::CancelToken;
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::Loopback;
use hwkey::transport::udp::UdpServer;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Run `virtual serve`.
pub fn serve(udp: &str, state: Option<PathBuf>, pin: Option<String>, touch_delay: Option<u64>) -> Result<(), String> {
    let config = AuthenticatorConfig { state_path: state, user_presence: UserPresence::Approve, ..Default::default() };
    let mut auth = Authenticator::new(config).map_err(|e| format!("software authenticator: {e}"))?;
    if let Some(pin) = pin {
        auth = set_pin(auth, &pin)?;
    }
    if let Some(ms) = touch_delay {
        auth.set_user_presence(UserPresence::Delay(Duration::from_millis(ms)));
    }
    let server = UdpServer::bind(udp).map_err(|e| e.to_string())?.with_config(DeviceConfig::default());
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    println!("listening on udp://{addr}");
    let _ = std::io::stdout().flush();
    server.serve(&mut auth, &CancelToken::new()).map_err(|e| e.to_string())
}

/// Set the PIN (if none is set yet) through the authenticator's own
/// clientPIN command, driven by hwkey's client over an inline CTAPHID loop.
fn set_pin(auth: Authenticator, pin: &str) -> Result<Authenticator, String> {
    let shared = Arc::new(Mutex::new(auth));
    let op = Op::timeout(Duration::from_secs(10));
    {
        let mut dev =
            Device::open(Loopback::new(shared.clone(), DeviceConfig::default()), &op).map_err(|e| e.to_string())?;
        if dev.option("clientPin") != Some(true) {
            dev.set_pin(pin, &op).map_err(|e| format!("setting the PIN: {e}"))?;
        }
    }
    let m = Arc::try_unwrap(shared).map_err(|_| "internal: the authenticator is still shared".to_string())?;
    m.into_inner().map_err(|_| "internal: the authenticator's lock is poisoned".to_string())
}

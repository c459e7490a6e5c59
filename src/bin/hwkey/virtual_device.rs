//! `hwkey virtual serve`: the software CTAP2.1 authenticator over UDP, or as
//! a Linux kernel HID device through `/dev/uhid` (`--uhid`).

use hwkey::authenticator::{Authenticator, AuthenticatorConfig, FingerprintMode, UserPresence};
use hwkey::client::{Device, Op};
use hwkey::transport::CancelToken;
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::Loopback;
use hwkey::transport::udp::UdpServer;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where `virtual serve` puts the authenticator.
pub enum Listen {
    /// CTAPHID over UDP at this address.
    Udp(String),
    /// A kernel HID device through /dev/uhid.
    Uhid,
}

/// Behaviour options of `virtual serve`.
pub struct Options {
    /// `--touch-delay MS`.
    pub touch_delay: Option<u64>,
    /// `--fingerprint always|never|after:N`.
    pub fingerprint: Option<FingerprintMode>,
    /// `--pin-complexity`.
    pub pin_complexity: bool,
    /// `--enterprise-rp-id`.
    pub enterprise_rp_ids: Vec<String>,
}

/// Run `virtual serve`.
pub fn serve(listen: Listen, state: Option<PathBuf>, pin: Option<String>, options: Options) -> Result<(), String> {
    let Options { touch_delay, fingerprint, pin_complexity, enterprise_rp_ids } = options;
    let config = AuthenticatorConfig {
        state_path: state,
        user_presence: UserPresence::Approve,
        fingerprint,
        pin_complexity_policy: pin_complexity,
        enterprise_rp_ids,
        ..Default::default()
    };
    let mut auth = Authenticator::new(config).map_err(|e| format!("software authenticator: {e}"))?;
    if let Some(pin) = pin {
        auth = set_pin(auth, &pin)?;
    }
    if let Some(ms) = touch_delay {
        auth.set_user_presence(UserPresence::Delay(Duration::from_millis(ms)));
    }
    let udp = match listen {
        Listen::Udp(a) => a,
        Listen::Uhid => return uhid::serve_fido(&mut auth),
    };
    let server = UdpServer::bind(&udp).map_err(|e| e.to_string())?.with_config(DeviceConfig::default());
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

/// The `--uhid` side: kernel HID devices that disappear when the process ends.
#[cfg(target_os = "linux")]
pub mod uhid {
    use hwkey::authenticator::{Authenticator, AuthenticatorConfig, UserPresence};
    use hwkey::transport::CancelToken;
    use hwkey::transport::ctaphid::DeviceConfig;
    use hwkey::transport::uhid::{
        CreateParams, SOFTWARE_PID, SOFTWARE_VID, UHID_PATH, UhidError, UhidSet, YUBICO_VID, YUBIKEY5_OTP_FIDO_PID,
        descriptor, serve_fido as bridge_fido, serve_yubikey as bridge_yubikey,
    };
    use hwkey::yubikey::VirtualYubikey;
    use std::io::Write;

    /// A token cancelled by SIGTERM or SIGINT, so that the devices are
    /// destroyed before the process exits.
    fn stop_on_signal() -> CancelToken {
        let stop = CancelToken::new();
        let token = stop.clone();
        let _ = std::thread::Builder::new().name("signals".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            token.cancel();
        });
        stop
    }

    fn err(e: UhidError) -> String {
        e.to_string()
    }

    fn announce(set: &UhidSet, index: usize, what: &str) -> Result<(), String> {
        let path = set.hidraw_path(index).map_err(err)?;
        println!("listening on hid:{}{what}", path.display());
        let _ = std::io::stdout().flush();
        Ok(())
    }

    fn finish(r: Result<(), UhidError>) -> Result<(), String> {
        match r {
            Ok(()) => Ok(()),
            Err(UhidError::Gone) => Err("the uhid device was destroyed".into()),
            Err(e) => Err(err(e)),
        }
    }

    /// `virtual serve --uhid`.
    pub fn serve_fido(auth: &mut Authenticator) -> Result<(), String> {
        let stop = stop_on_signal();
        let mut set = UhidSet::new();
        let params = CreateParams::usb("hwkey software authenticator", SOFTWARE_VID, SOFTWARE_PID, descriptor::FIDO);
        let fido = set.create(UHID_PATH, &params).map_err(err)?;
        announce(&set, fido, "")?;
        let r = bridge_fido(&set, fido, auth, DeviceConfig::default(), &stop);
        set.destroy_all();
        finish(r)
    }

    /// `virtual yubikey --uhid`: the OTP interface and a FIDO interface, two
    /// uhid devices with Yubico's vendor id and a YubiKey 5 product id.
    pub fn serve_yubikey(mut key: VirtualYubikey) -> Result<(), String> {
        let stop = stop_on_signal();
        let config = AuthenticatorConfig { user_presence: UserPresence::Approve, ..Default::default() };
        let mut auth = Authenticator::new(config).map_err(|e| format!("software authenticator: {e}"))?;
        let mut set = UhidSet::new();
        let name = "Yubico YubiKey OTP+FIDO";
        let mut otp_params = CreateParams::usb(name, YUBICO_VID, YUBIKEY5_OTP_FIDO_PID, descriptor::YUBIKEY_OTP);
        let mut fido_params = CreateParams::usb(name, YUBICO_VID, YUBIKEY5_OTP_FIDO_PID, descriptor::FIDO);
        otp_params.uniq.push_str("-otp");
        fido_params.uniq.push_str("-fido");
        let otp = set.create(UHID_PATH, &otp_params).map_err(err)?;
        let fido = set.create(UHID_PATH, &fido_params).map_err(err)?;
        announce(&set, otp, " (OTP interface)")?;
        announce(&set, fido, " (FIDO interface)")?;
        let r = bridge_yubikey(&set, otp, &mut key, Some((fido, &mut auth)), &stop);
        set.destroy_all();
        finish(r)
    }
}

/// Without Linux there is no uhid.
#[cfg(not(target_os = "linux"))]
pub mod uhid {
    use hwkey::authenticator::Authenticator;
    use hwkey::yubikey::VirtualYubikey;

    const MSG: &str = "--uhid needs Linux: load the uhid module; needs root or access to /dev/uhid";

    /// `virtual serve --uhid`.
    pub fn serve_fido(_: &mut Authenticator) -> Result<(), String> {
        Err(MSG.into())
    }

    /// `virtual yubikey --uhid`.
    pub fn serve_yubikey(_: VirtualYubikey) -> Result<(), String> {
        Err(MSG.into())
    }
}

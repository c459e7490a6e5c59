//! Finding authenticators: `--device` specs (`hid:PATH`, `udp:HOST:PORT`),
//! the connected FIDO HID keys, and touch-to-select when several are
//! plugged in: every key is asked to wait for a touch (authenticatorSelection
//! on CTAP 2.1, a dummy makeCredential on CTAP 2.0, a dummy U2F register on
//! U2F keys); the first touched wins and the others are cancelled.

use super::{CancelToken, ClientError, Device, Op, Progress};
use crate::proto::ctap2::CtapStatus;
use crate::proto::ctap2::make_credential::MakeCredentialRequest;
use crate::proto::ctap2::{PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity};
use crate::transport::ReportTransport;
use crate::transport::udp::UdpTransport;
use std::str::FromStr;
use std::sync::mpsc;

/// Where a device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A HID device path (a hidraw node on Linux).
    Hid(String),
    /// A CTAPHID-over-UDP device, `host:port`.
    Udp(String),
}

impl FromStr for DeviceSpec {
    type Err = ClientError;
    /// Parse `hid:PATH` or `udp:HOST:PORT`.
    ///
    /// ```
    /// use hwkey::client::discovery::DeviceSpec;
    /// assert_eq!("udp:127.0.0.1:8111".parse::<DeviceSpec>().unwrap(), DeviceSpec::Udp("127.0.0.1:8111".into()));
    /// assert!("usb:1".parse::<DeviceSpec>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, ClientError> {
        if let Some(p) = s.strip_prefix("hid:").filter(|p| !p.is_empty()) {
            return Ok(DeviceSpec::Hid(p.to_owned()));
        }
        if let Some(a) = s.strip_prefix("udp:")
            && a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            return Ok(DeviceSpec::Udp(a.to_owned()));
        }
        Err(ClientError::InvalidRequest(format!("device {s:?}: expected hid:PATH or udp:HOST:PORT")))
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Hid(p) => write!(f, "hid:{p}"),
            DeviceSpec::Udp(a) => write!(f, "udp:{a}"),
        }
    }
}

impl DeviceSpec {
    /// Open the transport (no CTAPHID exchange yet).
    pub fn transport(&self) -> Result<Box<dyn ReportTransport>, ClientError> {
        match self {
            DeviceSpec::Udp(a) => Ok(Box::new(UdpTransport::connect(a).map_err(|e| ClientError::Hid(e.into()))?)),
            #[cfg(feature = "hid")]
            DeviceSpec::Hid(p) => {
                Ok(Box::new(crate::transport::hid::HidTransport::open(p).map_err(|e| ClientError::Hid(e.into()))?))
            }
            #[cfg(not(feature = "hid"))]
            DeviceSpec::Hid(_) => Err(ClientError::Unsupported("HID (hwkey was built without feature `hid`)".into())),
        }
    }

    /// Open the device.
    pub fn open(&self, op: &Op) -> Result<Device, ClientError> {
        Device::open_boxed(self.transport()?, op)
    }
}

/// The connected FIDO HID devices.
#[cfg(feature = "hid")]
pub fn list_hid() -> Result<Vec<crate::transport::hid::HidDeviceInfo>, ClientError> {
    crate::transport::hid::list_devices().map_err(|e| ClientError::Hid(e.into()))
}

/// Open `spec`, or without one the connected FIDO HID key (touch-to-select
/// among several).
pub fn open(spec: Option<&DeviceSpec>, op: &Op) -> Result<Device, ClientError> {
    if let Some(s) = spec {
        return s.open(op);
    }
    #[cfg(feature = "hid")]
    {
        let found = list_hid()?;
        let mut devices = Vec::new();
        let mut first_err = None;
        for d in &found {
            match DeviceSpec::Hid(d.path.clone()).open(op) {
                Ok(dev) => devices.push(dev),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match devices.len() {
            0 => Err(first_err.unwrap_or(ClientError::NoDevice)),
            1 => Ok(devices.remove(0)),
            _ => select_by_touch(devices, op),
        }
    }
    #[cfg(not(feature = "hid"))]
    {
        let _ = op;
        Err(ClientError::NoDevice)
    }
}

/// Wait for a touch on one device (see the module docs for how).
pub fn wait_for_touch(dev: &mut Device, op: &Op) -> Result<(), ClientError> {
    if dev.is_ctap21() {
        return dev.selection(op);
    }
    if dev.is_ctap2() {
        // CTAP 2.0: a makeCredential with an empty pinUvAuthParam makes the
        // key wait for a touch, then answer PIN_NOT_SET or PIN_INVALID.
        let req = MakeCredentialRequest {
            client_data_hash: vec![0; 32],
            rp: PublicKeyCredentialRpEntity { id: ".dummy".into(), name: None },
            user: PublicKeyCredentialUserEntity { id: vec![1], name: Some("dummy".into()), display_name: None },
            pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(-7)],
            pin_uv_auth_param: Some(Vec::new()),
            pin_uv_auth_protocol: Some(1),
            ..Default::default()
        };
        return match dev.make_credential(&req, op) {
            Ok(_) | Err(ClientError::PinNotSet) | Err(ClientError::PinInvalid { .. }) => Ok(()),
            Err(ClientError::Status(CtapStatus::PinAuthInvalid)) => Ok(()),
            Err(e) => Err(e),
        };
    }
    // U2F: register under a bogus application; the touch is all that matters.
    dev.u2f_register(&[b'A'; 32], &[b'@'; 32], op).map(|_| ())
}

/// Several keys: the first one touched is returned, the others are cancelled.
pub fn select_by_touch(devices: Vec<Device>, op: &Op) -> Result<Device, ClientError> {
    op.report(Progress::WaitingForTouch);
    let (tx, rx) = mpsc::channel::<(usize, Result<(), ClientError>)>();
    let mut tokens = Vec::new();
    let mut handles = Vec::new();
    for (i, mut dev) in devices.into_iter().enumerate() {
        let token = CancelToken::new();
        tokens.push(token.clone());
        let sub = Op::until(op.deadline).with_cancel(token);
        let tx = tx.clone();
        handles.push(std::thread::spawn(move || {
            let r = wait_for_touch(&mut dev, &sub);
            let _ = tx.send((i, r));
            dev
        }));
    }
    drop(tx);
    let mut winner = None;
    let mut last_err = None;
    let mut pending = handles.len();
    while pending > 0 {
        if op.is_cancelled() {
            break;
        }
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok((i, Ok(()))) => {
                winner = Some(i);
                break;
            }
            Ok((_, Err(e))) => {
                pending -= 1;
                last_err = Some(e);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for t in &tokens {
        t.cancel();
    }
    let mut devs: Vec<Option<Device>> = handles.into_iter().map(|h| h.join().ok()).collect();
    match winner {
        Some(i) => devs.get_mut(i).and_then(Option::take).ok_or(ClientError::NoDevice),
        None if op.is_cancelled() => Err(ClientError::Cancelled),
        None => Err(last_err.unwrap_or(ClientError::Timeout)),
    }
}

//! Which authenticators desktop login talks to: the `device=` PAM option and
//! the sk-api `device` option (the `--device` forms of CONTRACTS §3), the
//! `HWKEY_DEVICE` environment variable (sk-api only), else every FIDO HID
//! device. Every open is bounded by the operation's deadline.

use crate::client::discovery::DeviceSpec;
use crate::client::{ClientError, Device, Op};

/// The environment variable that names the device for the sk-api provider.
pub const DEVICE_ENV: &str = "HWKEY_DEVICE";

/// Where devices come from. Tests inject in-memory authenticators; the
/// plug-ins use [`Specs`].
pub trait DeviceSource {
    /// Open every device that answers before `op`'s deadline. Devices that
    /// fail to open are reported to `log` and left out.
    fn open_all(&self, op: &Op, log: &dyn Fn(&str)) -> Vec<Device>;
}

impl<F: Fn(&Op) -> Vec<Device>> DeviceSource for F {
    fn open_all(&self, op: &Op, _log: &dyn Fn(&str)) -> Vec<Device> {
        self(op)
    }
}

/// Named devices, or every FIDO HID device when the list is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Specs(pub Vec<DeviceSpec>);

impl Specs {
    /// Parse a device option: specs separated by commas. A bare absolute
    /// path (`/dev/hidraw3`, as libfido2 names devices) means `hid:PATH`.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let spec = if part.starts_with('/') { format!("hid:{part}") } else { part.to_owned() };
            out.push(spec.parse::<DeviceSpec>()?);
        }
        Ok(Specs(out))
    }

    /// From `HWKEY_DEVICE`, when set and not empty.
    pub fn from_env() -> Result<Option<Self>, ClientError> {
        match std::env::var(DEVICE_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// Every FIDO HID device's spec (none without feature `hid`).
    pub fn all_hid() -> Result<Vec<DeviceSpec>, ClientError> {
        #[cfg(feature = "hid")]
        {
            Ok(crate::client::discovery::list_hid()?.into_iter().map(|d| DeviceSpec::Hid(d.path)).collect())
        }
        #[cfg(not(feature = "hid"))]
        {
            Ok(Vec::new())
        }
    }
}

impl DeviceSource for Specs {
    fn open_all(&self, op: &Op, log: &dyn Fn(&str)) -> Vec<Device> {
        let specs = if self.0.is_empty() {
            match Self::all_hid() {
                Ok(s) => s,
                Err(e) => {
                    log(&format!("listing HID devices: {e}"));
                    Vec::new()
                }
            }
        } else {
            self.0.clone()
        };
        let mut out = Vec::new();
        for s in specs {
            match s.open(op) {
                Ok(d) => out.push(d),
                Err(e) => log(&format!("device {s}: {e}")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs() {
        let s = Specs::parse("udp:127.0.0.1:8111, /dev/hidraw3,hid:/dev/hidraw4").unwrap();
        assert_eq!(s.0.len(), 3);
        assert_eq!(s.0[1].to_string(), "hid:/dev/hidraw3");
        assert!(Specs::parse("tcp:1.2.3.4:5").is_err());
        assert!(Specs::parse("").unwrap().0.is_empty());
    }

    #[test]
    fn an_unreachable_device_is_left_out_in_bounded_time() {
        // A UDP port nobody answers on: the open times out at the deadline.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let s = Specs::parse(&format!("udp:{addr}")).unwrap();
        let t = std::time::Instant::now();
        let logged = std::sync::Mutex::new(Vec::new());
        let devs = s.open_all(&Op::timeout(std::time::Duration::from_millis(300)), &|m| {
            logged.lock().unwrap().push(m.to_owned())
        });
        assert!(devs.is_empty());
        assert!(t.elapsed() < std::time::Duration::from_secs(3));
        assert_eq!(logged.lock().unwrap().len(), 1);
    }
}

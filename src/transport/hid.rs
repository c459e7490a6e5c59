//! USB HID devices through hidapi (feature `hid`). FIDO devices are found by
//! their HID usage page 0xF1D0 (CTAP 2.1 §11.2.8.1), not by a vendor list.
//! On Linux hidapi's native hidraw backend is used, so no system library is
//! needed; opening a device node the user may not read fails with
//! [`TransportError::PermissionDenied`] naming the node and the udev rules.

use super::{REPORT_LEN, Report, ReportTransport, TransportError};
use std::ffi::CString;
use std::time::Instant;

/// The FIDO Alliance HID usage page.
pub const FIDO_USAGE_PAGE: u16 = 0xf1d0;
/// The CTAPHID usage on that page.
pub const FIDO_USAGE_CTAPHID: u16 = 0x01;

/// A FIDO HID device as enumeration found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HidDeviceInfo {
    /// Platform path (a hidraw node on Linux).
    pub path: String,
    /// USB vendor id.
    pub vendor_id: u16,
    /// USB product id.
    pub product_id: u16,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
    /// Serial number string.
    pub serial: Option<String>,
}

fn hid_err(e: hidapi::HidError) -> TransportError {
    TransportError::Hid(e.to_string())
}

/// An error reading or writing an open device: the device being gone
/// (unplugged, or a uhid device destroyed) is [`TransportError::Disconnected`],
/// whatever form hidapi gives it: the node vanished, ENODEV/EIO/ENXIO from
/// the kernel, or hidraw's POLLHUP/POLLERR (hidapi: "unexpected poll error
/// (device disconnected)"). Found by the guest suite (tests/guest): a device
/// removed mid-request used to surface as "HID error: hidapi error: ...".
pub(crate) fn io_error(e: hidapi::HidError, node_exists: bool) -> TransportError {
    const EIO: i32 = 5;
    const ENXIO: i32 = 6;
    const ENODEV: i32 = 19;
    let gone = !node_exists
        || match &e {
            hidapi::HidError::IoError { error } => matches!(error.raw_os_error(), Some(EIO | ENXIO | ENODEV)),
            hidapi::HidError::HidApiError { message } => message.contains("disconnected"),
            _ => false,
        };
    if gone { TransportError::Disconnected } else { hid_err(e) }
}

/// All connected FIDO HID devices.
pub fn list_devices() -> Result<Vec<HidDeviceInfo>, TransportError> {
    let api = hidapi::HidApi::new().map_err(hid_err)?;
    let mut out: Vec<HidDeviceInfo> = Vec::new();
    for d in api.device_list() {
        if d.usage_page() != FIDO_USAGE_PAGE {
            continue;
        }
        let path = d.path().to_string_lossy().into_owned();
        if out.iter().any(|o| o.path == path) {
            continue;
        }
        out.push(HidDeviceInfo {
            path,
            vendor_id: d.vendor_id(),
            product_id: d.product_id(),
            manufacturer: d.manufacturer_string().map(str::to_owned),
            product: d.product_string().map(str::to_owned),
            serial: d.serial_number().map(str::to_owned),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// An open FIDO HID device.
pub struct HidTransport {
    device: hidapi::HidDevice,
    path: String,
}

impl std::fmt::Debug for HidTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidTransport").field("path", &self.path).finish()
    }
}

impl HidTransport {
    /// Open the device at `path`.
    pub fn open(path: &str) -> Result<Self, TransportError> {
        let c = CString::new(path).map_err(|_| TransportError::Hid(format!("invalid device path {path:?}")))?;
        let api = hidapi::HidApi::new().map_err(hid_err)?;
        match api.open_path(&c) {
            Ok(device) => Ok(HidTransport { device, path: path.to_owned() }),
            Err(e) => {
                // hidapi's message does not say why; ask the OS directly.
                match std::fs::OpenOptions::new().read(true).write(true).open(path) {
                    Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                        Err(TransportError::PermissionDenied { path: path.to_owned() })
                    }
                    Err(io) => Err(TransportError::Io { what: path.to_owned(), source: io }),
                    Ok(_) => Err(hid_err(e)),
                }
            }
        }
    }

    /// The device path.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn io_error(&self, e: hidapi::HidError) -> TransportError {
        io_error(e, std::path::Path::new(&self.path).exists())
    }
}

impl ReportTransport for HidTransport {
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError> {
        // hidapi wants the report id first: 0 for devices without report ids.
        let mut buf = [0u8; REPORT_LEN + 1];
        buf[1..].copy_from_slice(report);
        self.device.write(&buf).map_err(|e| self.io_error(e))?;
        Ok(())
    }

    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError> {
        let mut buf = [0u8; REPORT_LEN];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let n = self.device.read_timeout(&mut buf, ms).map_err(|e| self.io_error(e))?;
            if n == REPORT_LEN {
                return Ok(Some(buf));
            }
            if n > 0 {
                // A short report: pad, as the kernel may strip trailing zeros on some platforms.
                let mut r = [0u8; REPORT_LEN];
                r[..n].copy_from_slice(&buf[..n]);
                return Ok(Some(r));
            }
        }
    }

    fn describe(&self) -> String {
        format!("hid:{}", self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_device_is_disconnected_not_a_hid_error() {
        let poll = || hidapi::HidError::HidApiError { message: "unexpected poll error (device disconnected)".into() };
        assert!(matches!(io_error(poll(), true), TransportError::Disconnected));
        let enodev = hidapi::HidError::IoError { error: std::io::Error::from_raw_os_error(19) };
        assert!(matches!(io_error(enodev, true), TransportError::Disconnected));
        let other = || hidapi::HidError::HidApiError { message: "ioctl failed".into() };
        assert!(matches!(io_error(other(), true), TransportError::Hid(_)));
        // Whatever the error, a node that vanished means the device is gone.
        assert!(matches!(io_error(other(), false), TransportError::Disconnected));
        assert_eq!(TransportError::Disconnected.code(), "disconnected");
    }
}

//! Software devices as Linux kernel HID devices through `/dev/uhid`
//! (feature `uhid`, Linux): CONTRACTS §3 "Virtual devices as Linux USB HID
//! devices".
//!
//! The uhid protocol is `read()`/`write()` of one `struct uhid_event` at a
//! time on `/dev/uhid` (linux/uhid.h): a 32-bit event type followed by a
//! packed union, 4376 bytes in all. This module encodes and decodes those
//! events itself, in safe Rust ([`encode`], [`decode`]); no `unsafe` and no
//! bindings are needed. (The `uhid-virt` crate was evaluated: version 0.0.x,
//! bindgen-generated layouts, blocking reads without a timeout and no way to
//! wait on several devices; the byte layout is small enough to own.)
//!
//! - [`UhidSet`] creates any number of devices, each on its own `/dev/uhid`
//!   file descriptor (one fd is one device), reads their events on one reader
//!   thread each and hands them out through one queue, so a single loop can
//!   serve a composite device (the software YubiKey's OTP and FIDO
//!   interfaces). It finds each device's `/dev/hidrawN` node by its unique
//!   `HID_UNIQ` string, and destroys every device when dropped (closing the
//!   fd destroys it too, so even a killed process leaves nothing behind).
//! - [`serve_fido`] bridges a FIDO device (report descriptor
//!   [`descriptor::FIDO`]) to a CTAPHID [`Handler`] through a
//!   [`DeviceChannel`]; [`serve_yubikey`] serves the software YubiKey: the
//!   OTP interface ([`descriptor::YUBIKEY_OTP`], 8-byte feature reports
//!   answered through GET_REPORT/SET_REPORT) plus a FIDO interface.
//!
//! What the kernel does with report ids (observed in a QEMU guest, Debian
//! 6.1): a hidraw `write()` of 65 bytes (report id 0 + 64) reaches uhid as a
//! 65-byte UHID_OUTPUT with the leading 0; a hidraw HIDIOCSFEATURE of 9 bytes
//! arrives as a 9-byte UHID_SET_REPORT with the report id first, and the
//! UHID_GET_REPORT_REPLY data is copied to the caller's buffer as it is, so
//! it must start with the report id too ([`strip_report_id`],
//! [`serve_yubikey`]).

use super::ctaphid::{DeviceChannel, DeviceConfig, Handler};
use super::{CancelToken, REPORT_LEN, Report};
use crate::yubikey::VirtualYubikey;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The uhid character device.
pub const UHID_PATH: &str = "/dev/uhid";
/// `sizeof(struct uhid_event)`: 4-byte type + the largest union member
/// (`uhid_create2_req`, 4372 bytes).
pub const EVENT_SIZE: usize = 4376;
/// `UHID_DATA_MAX`: the largest report or descriptor.
pub const DATA_MAX: usize = 4096;
/// `BUS_USB` from linux/input.h. libfido2 lists only devices on this bus.
pub const BUS_USB: u16 = 0x03;

/// uhid event types (enum uhid_event_type).
pub mod event_type {
    /// Destroy the device (host → kernel).
    pub const DESTROY: u32 = 1;
    /// The HID driver started the device (kernel → host).
    pub const START: u32 = 2;
    /// The HID driver stopped the device (kernel → host).
    pub const STOP: u32 = 3;
    /// Someone opened the device (kernel → host).
    pub const OPEN: u32 = 4;
    /// The last user closed the device (kernel → host).
    pub const CLOSE: u32 = 5;
    /// An output report (kernel → host).
    pub const OUTPUT: u32 = 6;
    /// A GET_REPORT request (kernel → host).
    pub const GET_REPORT: u32 = 9;
    /// The answer to GET_REPORT (host → kernel).
    pub const GET_REPORT_REPLY: u32 = 10;
    /// Create a device (host → kernel).
    pub const CREATE2: u32 = 11;
    /// An input report (host → kernel).
    pub const INPUT2: u32 = 12;
    /// A SET_REPORT request (kernel → host).
    pub const SET_REPORT: u32 = 13;
    /// The answer to SET_REPORT (host → kernel).
    pub const SET_REPORT_REPLY: u32 = 14;
}

/// Report descriptors.
pub mod descriptor {
    /// The FIDO HID report descriptor (CTAP 2.1 §11.2.8.1): usage page
    /// 0xF1D0, usage 0x01 (CTAPHID), one 64-byte input report (usage 0x20)
    /// and one 64-byte output report (usage 0x21), no report ids.
    pub const FIDO: &[u8] = &[
        0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance)
        0x09, 0x01, // Usage (CTAPHID)
        0xa1, 0x01, // Collection (Application)
        0x09, 0x20, //   Usage (Input Report Data)
        0x15, 0x00, //   Logical Minimum (0)
        0x26, 0xff, 0x00, //   Logical Maximum (255)
        0x75, 0x08, //   Report Size (8)
        0x95, 0x40, //   Report Count (64)
        0x81, 0x02, //   Input (Data, Variable, Absolute)
        0x09, 0x21, //   Usage (Output Report Data)
        0x15, 0x00, //   Logical Minimum (0)
        0x26, 0xff, 0x00, //   Logical Maximum (255)
        0x75, 0x08, //   Report Size (8)
        0x95, 0x40, //   Report Count (64)
        0x91, 0x02, //   Output (Data, Variable, Absolute)
        0xc0, // End Collection
    ];

    /// The YubiKey OTP interface: a boot keyboard (HID 1.11 appendix B.1,
    /// generic desktop page, usage 0x06) with one 8-byte feature report and
    /// no report ids, as a YubiKey presents it. It starts with the usage
    /// page and the usage, which is where ykman and hidapi look.
    pub const YUBIKEY_OTP: &[u8] = &[
        0x05, 0x01, // Usage Page (Generic Desktop)
        0x09, 0x06, // Usage (Keyboard)
        0xa1, 0x01, // Collection (Application)
        0x05, 0x07, //   Usage Page (Keyboard/Keypad)
        0x19, 0xe0, //   Usage Minimum (Left Control)
        0x29, 0xe7, //   Usage Maximum (Right GUI)
        0x15, 0x00, //   Logical Minimum (0)
        0x25, 0x01, //   Logical Maximum (1)
        0x75, 0x01, //   Report Size (1)
        0x95, 0x08, //   Report Count (8)
        0x81, 0x02, //   Input (Data, Variable, Absolute): modifiers
        0x95, 0x01, //   Report Count (1)
        0x75, 0x08, //   Report Size (8)
        0x81, 0x01, //   Input (Constant): reserved
        0x95, 0x05, //   Report Count (5)
        0x75, 0x01, //   Report Size (1)
        0x05, 0x08, //   Usage Page (LEDs)
        0x19, 0x01, //   Usage Minimum (Num Lock)
        0x29, 0x05, //   Usage Maximum (Kana)
        0x91, 0x02, //   Output (Data, Variable, Absolute): LEDs
        0x95, 0x01, //   Report Count (1)
        0x75, 0x03, //   Report Size (3)
        0x91, 0x01, //   Output (Constant): padding
        0x95, 0x06, //   Report Count (6)
        0x75, 0x08, //   Report Size (8)
        0x15, 0x00, //   Logical Minimum (0)
        0x25, 0xff, //   Logical Maximum (255)
        0x05, 0x07, //   Usage Page (Keyboard/Keypad)
        0x19, 0x00, //   Usage Minimum (0)
        0x29, 0xff, //   Usage Maximum (255)
        0x81, 0x00, //   Input (Data, Array): key codes
        0x09, 0x03, //   Usage (0x03)
        0x75, 0x08, //   Report Size (8)
        0x95, 0x08, //   Report Count (8)
        0xb1, 0x02, //   Feature (Data, Variable, Absolute): the OTP channel
        0xc0, // End Collection
    ];
}

/// A vendor id for the software FIDO authenticator: pid.codes' open-source
/// vendor id with a product id from its test range.
pub const SOFTWARE_VID: u16 = 0x1209;
/// The software FIDO authenticator's product id.
pub const SOFTWARE_PID: u16 = 0x0001;
/// Yubico's USB vendor id.
pub const YUBICO_VID: u16 = 0x1050;
/// YubiKey 5 with the OTP and FIDO interfaces enabled ("OTP+FIDO").
pub const YUBIKEY5_OTP_FIDO_PID: u16 = 0x0403;

/// Errors of the uhid layer.
#[derive(Debug, thiserror::Error)]
pub enum UhidError {
    /// `/dev/uhid` is missing or may not be opened.
    #[error("cannot open {path}: {source}: load the uhid module; needs root or access to /dev/uhid")]
    Unavailable {
        /// The path tried.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing `/dev/uhid` failed.
    #[error("uhid I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A parameter does not fit the uhid structures.
    #[error("invalid uhid parameter: {0}")]
    Invalid(String),
    /// The kernel sent an event this module cannot parse.
    #[error("malformed uhid event: {0}")]
    Malformed(String),
    /// The device's hidraw node did not appear in time.
    #[error("the hidraw node of {0:?} did not appear within 10 s")]
    NoHidraw(String),
    /// The device was destroyed (its uhid file closed).
    #[error("the uhid device is gone")]
    Gone,
}

impl UhidError {
    /// A stable snake_case identifier of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            UhidError::Unavailable { .. } => "uhid_unavailable",
            UhidError::Io(_) => "io_error",
            UhidError::Invalid(_) => "invalid_argument",
            UhidError::Malformed(_) => "malformed_event",
            UhidError::NoHidraw(_) => "no_hidraw",
            UhidError::Gone => "disconnected",
        }
    }
}

/// The kind of report a GET_REPORT/SET_REPORT/OUTPUT is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportType {
    /// A feature report (UHID_FEATURE_REPORT, 0).
    Feature,
    /// An output report (UHID_OUTPUT_REPORT, 1).
    Output,
    /// An input report (UHID_INPUT_REPORT, 2).
    Input,
    /// A value linux/uhid.h does not define.
    Unknown(u8),
}

impl ReportType {
    fn from_byte(b: u8) -> Self {
        match b {
            0 => ReportType::Feature,
            1 => ReportType::Output,
            2 => ReportType::Input,
            x => ReportType::Unknown(x),
        }
    }
}

/// What the kernel tells a uhid device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// UHID_START with its `dev_flags`.
    Start {
        /// UHID_DEV_NUMBERED_* flags.
        flags: u64,
    },
    /// UHID_STOP: the device is being destroyed.
    Stop,
    /// UHID_OPEN: a user opened the device.
    Open,
    /// UHID_CLOSE: the last user closed it.
    Close,
    /// UHID_OUTPUT: an output report (with the report id first on hidraw, see the module doc).
    Output {
        /// The report as the kernel passed it.
        data: Vec<u8>,
        /// Its type.
        rtype: ReportType,
    },
    /// UHID_GET_REPORT: answer with [`encode::get_report_reply`] and the same id.
    GetReport {
        /// Request id.
        id: u32,
        /// Report number.
        rnum: u8,
        /// Report type.
        rtype: ReportType,
    },
    /// UHID_SET_REPORT: answer with [`encode::set_report_reply`] and the same id.
    SetReport {
        /// Request id.
        id: u32,
        /// Report number.
        rnum: u8,
        /// Report type.
        rtype: ReportType,
        /// The report (with the report id first on hidraw).
        data: Vec<u8>,
    },
    /// An event type this module ignores (legacy events).
    Other(u32),
}

/// Parameters of UHID_CREATE2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateParams {
    /// Device name (HID_NAME; at most 127 bytes).
    pub name: String,
    /// Physical location (at most 63 bytes).
    pub phys: String,
    /// Unique id (HID_UNIQ, the serial string; at most 63 bytes). [`UhidSet`]
    /// finds the hidraw node by it, so make it unique.
    pub uniq: String,
    /// Bus type ([`BUS_USB`]).
    pub bus: u16,
    /// Vendor id.
    pub vendor: u32,
    /// Product id.
    pub product: u32,
    /// Device version.
    pub version: u32,
    /// Country code.
    pub country: u32,
    /// The report descriptor (at most [`DATA_MAX`] bytes).
    pub descriptor: Vec<u8>,
}

impl CreateParams {
    /// A USB device with `vendor`, `product`, `name` and `descriptor`, and a
    /// fresh unique id.
    pub fn usb(name: &str, vendor: u16, product: u16, descriptor: &[u8]) -> Self {
        CreateParams {
            name: name.to_owned(),
            phys: "hwkey-uhid".to_owned(),
            uniq: fresh_uniq(),
            bus: BUS_USB,
            vendor: u32::from(vendor),
            product: u32::from(product),
            version: 0x0100,
            country: 0,
            descriptor: descriptor.to_vec(),
        }
    }
}

fn fresh_uniq() -> String {
    let mut r = [0u8; 6];
    let _ = getrandom::getrandom(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("hwkey-{}-{hex}", std::process::id())
}

/// Encoding of the events a program writes to `/dev/uhid`.
pub mod encode {
    use super::{CreateParams, DATA_MAX, EVENT_SIZE, UhidError, event_type};

    fn event(kind: u32) -> Vec<u8> {
        let mut e = vec![0u8; EVENT_SIZE];
        e[..4].copy_from_slice(&kind.to_ne_bytes());
        e
    }

    fn put_str(e: &mut [u8], at: usize, cap: usize, s: &str, what: &str) -> Result<(), UhidError> {
        let b = s.as_bytes();
        if b.len() >= cap || b.contains(&0) {
            return Err(UhidError::Invalid(format!("{what} must be under {cap} bytes without NUL")));
        }
        e[at..at + b.len()].copy_from_slice(b);
        Ok(())
    }

    /// UHID_CREATE2: name 128, phys 64, uniq 64 bytes (NUL-terminated),
    /// rd_size u16, bus u16, vendor/product/version/country u32, rd_data.
    pub fn create2(p: &CreateParams) -> Result<Vec<u8>, UhidError> {
        if p.descriptor.is_empty() || p.descriptor.len() > DATA_MAX {
            return Err(UhidError::Invalid(format!(
                "a report descriptor of {} bytes (1 to {DATA_MAX})",
                p.descriptor.len()
            )));
        }
        let mut e = event(event_type::CREATE2);
        put_str(&mut e, 4, 128, &p.name, "name")?;
        put_str(&mut e, 132, 64, &p.phys, "phys")?;
        put_str(&mut e, 196, 64, &p.uniq, "uniq")?;
        e[260..262].copy_from_slice(&(p.descriptor.len() as u16).to_ne_bytes());
        e[262..264].copy_from_slice(&p.bus.to_ne_bytes());
        e[264..268].copy_from_slice(&p.vendor.to_ne_bytes());
        e[268..272].copy_from_slice(&p.product.to_ne_bytes());
        e[272..276].copy_from_slice(&p.version.to_ne_bytes());
        e[276..280].copy_from_slice(&p.country.to_ne_bytes());
        e[280..280 + p.descriptor.len()].copy_from_slice(&p.descriptor);
        Ok(e)
    }

    /// UHID_DESTROY.
    pub fn destroy() -> Vec<u8> {
        event(event_type::DESTROY)
    }

    /// UHID_INPUT2: size u16, data.
    pub fn input2(data: &[u8]) -> Result<Vec<u8>, UhidError> {
        if data.len() > DATA_MAX {
            return Err(UhidError::Invalid(format!("an input report of {} bytes", data.len())));
        }
        let mut e = event(event_type::INPUT2);
        e[4..6].copy_from_slice(&(data.len() as u16).to_ne_bytes());
        e[6..6 + data.len()].copy_from_slice(data);
        Ok(e)
    }

    /// UHID_GET_REPORT_REPLY: id u32, err u16, size u16, data.
    pub fn get_report_reply(id: u32, err: u16, data: &[u8]) -> Result<Vec<u8>, UhidError> {
        if data.len() > DATA_MAX {
            return Err(UhidError::Invalid(format!("a feature report of {} bytes", data.len())));
        }
        let mut e = event(event_type::GET_REPORT_REPLY);
        e[4..8].copy_from_slice(&id.to_ne_bytes());
        e[8..10].copy_from_slice(&err.to_ne_bytes());
        e[10..12].copy_from_slice(&(data.len() as u16).to_ne_bytes());
        e[12..12 + data.len()].copy_from_slice(data);
        Ok(e)
    }

    /// UHID_SET_REPORT_REPLY: id u32, err u16.
    pub fn set_report_reply(id: u32, err: u16) -> Vec<u8> {
        let mut e = event(event_type::SET_REPORT_REPLY);
        e[4..8].copy_from_slice(&id.to_ne_bytes());
        e[8..10].copy_from_slice(&err.to_ne_bytes());
        e
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parse one event the kernel wrote (any length; fields beyond it are missing,
/// which is an error, never a panic).
pub fn decode(b: &[u8]) -> Result<KernelEvent, UhidError> {
    let short = || UhidError::Malformed(format!("{} bytes is too short", b.len()));
    let kind = u32_at(b, 0).ok_or_else(short)?;
    Ok(match kind {
        event_type::START => KernelEvent::Start { flags: u64_at(b, 4).ok_or_else(short)? },
        event_type::STOP => KernelEvent::Stop,
        event_type::OPEN => KernelEvent::Open,
        event_type::CLOSE => KernelEvent::Close,
        event_type::OUTPUT => {
            // uhid_output_req: data[4096], size u16, rtype u8.
            let size = usize::from(u16_at(b, 4 + DATA_MAX).ok_or_else(short)?);
            let rtype = *b.get(4 + DATA_MAX + 2).ok_or_else(short)?;
            if size > DATA_MAX {
                return Err(UhidError::Malformed(format!("output size {size}")));
            }
            let data = b.get(4..4 + size).ok_or_else(short)?.to_vec();
            KernelEvent::Output { data, rtype: ReportType::from_byte(rtype) }
        }
        event_type::GET_REPORT => KernelEvent::GetReport {
            id: u32_at(b, 4).ok_or_else(short)?,
            rnum: *b.get(8).ok_or_else(short)?,
            rtype: ReportType::from_byte(*b.get(9).ok_or_else(short)?),
        },
        event_type::SET_REPORT => {
            let size = usize::from(u16_at(b, 10).ok_or_else(short)?);
            if size > DATA_MAX {
                return Err(UhidError::Malformed(format!("set-report size {size}")));
            }
            KernelEvent::SetReport {
                id: u32_at(b, 4).ok_or_else(short)?,
                rnum: *b.get(8).ok_or_else(short)?,
                rtype: ReportType::from_byte(*b.get(9).ok_or_else(short)?),
                data: b.get(12..12 + size).ok_or_else(short)?.to_vec(),
            }
        }
        other => KernelEvent::Other(other),
    })
}

/// A report as the kernel passed it, without the report-id byte the hidraw
/// layer puts first on devices that use no report ids: `len` + 1 bytes
/// starting with 0 become their last `len` bytes; exactly `len` bytes are
/// taken as they are; anything else is `None`.
pub fn strip_report_id(data: &[u8], len: usize) -> Option<&[u8]> {
    if data.len() == len + 1 && data.first() == Some(&0) {
        data.get(1..)
    } else if data.len() == len {
        Some(data)
    } else {
        None
    }
}

type EventQueue = Receiver<(usize, Result<KernelEvent, UhidError>)>;

struct Device {
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    uniq: String,
    destroyed: bool,
}

/// A set of uhid devices served from one thread (see the module doc).
pub struct UhidSet {
    devices: Vec<Device>,
    tx: Sender<(usize, Result<KernelEvent, UhidError>)>,
    rx: EventQueue,
    sysfs: PathBuf,
    dev: PathBuf,
}

impl std::fmt::Debug for UhidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UhidSet").field("devices", &self.devices.len()).finish_non_exhaustive()
    }
}

impl Default for UhidSet {
    fn default() -> Self {
        Self::new()
    }
}

impl UhidSet {
    /// An empty set.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        UhidSet { devices: Vec::new(), tx, rx, sysfs: PathBuf::from("/sys/class/hidraw"), dev: PathBuf::from("/dev") }
    }

    /// Look for hidraw nodes under `sysfs` (`…/hidrawN/device/uevent`) and
    /// `dev` instead of `/sys/class/hidraw` and `/dev` (for tests).
    pub fn with_roots(mut self, sysfs: &Path, dev: &Path) -> Self {
        self.sysfs = sysfs.to_owned();
        self.dev = dev.to_owned();
        self
    }

    /// Create a device on a fresh file descriptor of `path` (normally
    /// [`UHID_PATH`]); returns its index in the set.
    pub fn create(&mut self, path: &str, params: &CreateParams) -> Result<usize, UhidError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| UhidError::Unavailable { path: path.to_owned(), source })?;
        let reader = file.try_clone()?;
        self.create_with_io(Box::new(reader), Box::new(file), params)
    }

    /// Create a device on any byte stream pair that behaves as a `/dev/uhid`
    /// file: every event is [`EVENT_SIZE`] bytes in both directions.
    pub fn create_with_io(
        &mut self,
        mut reader: Box<dyn Read + Send>,
        mut writer: Box<dyn Write + Send>,
        params: &CreateParams,
    ) -> Result<usize, UhidError> {
        writer.write_all(&encode::create2(params)?)?;
        writer.flush()?;
        let index = self.devices.len();
        let tx = self.tx.clone();
        std::thread::Builder::new().name(format!("uhid-{index}")).spawn(move || {
            let mut buf = vec![0u8; EVENT_SIZE];
            loop {
                let ev = match reader.read_exact(&mut buf) {
                    Ok(()) => decode(&buf),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(UhidError::Gone),
                    Err(e) => Err(UhidError::Io(e)),
                };
                let end = matches!(ev, Err(_) | Ok(KernelEvent::Stop));
                if tx.send((index, ev)).is_err() || end {
                    return;
                }
            }
        })?;
        self.devices.push(Device { writer: Arc::new(Mutex::new(writer)), uniq: params.uniq.clone(), destroyed: false });
        Ok(index)
    }

    fn write(&self, index: usize, event: &[u8]) -> Result<(), UhidError> {
        let d = self.devices.get(index).ok_or_else(|| UhidError::Invalid(format!("no device {index}")))?;
        if d.destroyed {
            return Err(UhidError::Gone);
        }
        let mut w = d.writer.lock().map_err(|_| UhidError::Gone)?;
        w.write_all(event)?;
        w.flush()?;
        Ok(())
    }

    /// Send an input report.
    pub fn input(&self, index: usize, data: &[u8]) -> Result<(), UhidError> {
        self.write(index, &encode::input2(data)?)
    }

    /// Answer a GET_REPORT.
    pub fn get_report_reply(&self, index: usize, id: u32, err: u16, data: &[u8]) -> Result<(), UhidError> {
        self.write(index, &encode::get_report_reply(id, err, data)?)
    }

    /// Answer a SET_REPORT.
    pub fn set_report_reply(&self, index: usize, id: u32, err: u16) -> Result<(), UhidError> {
        self.write(index, &encode::set_report_reply(id, err))
    }

    /// The next event of any device, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<(usize, Result<KernelEvent, UhidError>)> {
        match self.rx.recv_timeout(timeout) {
            Ok(x) => Some(x),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The `/dev/hidrawN` node of device `index`, waiting up to 10 s for it
    /// to appear (the kernel creates it after UHID_START).
    pub fn hidraw_path(&self, index: usize) -> Result<PathBuf, UhidError> {
        let d = self.devices.get(index).ok_or_else(|| UhidError::Invalid(format!("no device {index}")))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = find_hidraw(&self.sysfs, &self.dev, &d.uniq) {
                return Ok(p);
            }
            if Instant::now() >= deadline {
                return Err(UhidError::NoHidraw(d.uniq.clone()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Destroy every device (also done on drop).
    pub fn destroy_all(&mut self) {
        for i in 0..self.devices.len() {
            if !self.devices.get(i).is_some_and(|d| d.destroyed) {
                let _ = self.write(i, &encode::destroy());
            }
            if let Some(d) = self.devices.get_mut(i) {
                d.destroyed = true;
            }
        }
    }
}

impl Drop for UhidSet {
    fn drop(&mut self) {
        self.destroy_all();
    }
}

/// The hidraw node whose HID parent has `HID_UNIQ=uniq`.
fn find_hidraw(sysfs: &Path, dev: &Path, uniq: &str) -> Option<PathBuf> {
    let want = format!("HID_UNIQ={uniq}");
    for entry in std::fs::read_dir(sysfs).ok()?.flatten() {
        let name = entry.file_name();
        let uevent = entry.path().join("device").join("uevent");
        let Ok(text) = std::fs::read_to_string(&uevent) else { continue };
        if text.lines().any(|l| l.trim() == want) {
            let node = dev.join(&name);
            if node.exists() {
                return Some(node);
            }
        }
    }
    None
}

/// EIO, for GET/SET_REPORT requests a device does not serve.
const EIO: u16 = 5;

/// Serve a FIDO device (index `fido` in `set`, created with
/// [`descriptor::FIDO`]) with `handler` until `stop` is cancelled or the
/// device goes away. Output reports feed a [`DeviceChannel`]; its reports go
/// back as input reports.
pub fn serve_fido<H: Handler + ?Sized>(
    set: &UhidSet,
    fido: usize,
    handler: &mut H,
    config: DeviceConfig,
    stop: &CancelToken,
) -> Result<(), UhidError> {
    serve(set, Some((fido, handler, config)), None, stop)
}

/// Serve the software YubiKey: its OTP interface (index `otp`, created with
/// [`descriptor::YUBIKEY_OTP`]) answers 8-byte feature reports from `key`;
/// the optional FIDO interface is served as in [`serve_fido`].
pub fn serve_yubikey<H: Handler + ?Sized>(
    set: &UhidSet,
    otp: usize,
    key: &mut VirtualYubikey,
    fido: Option<(usize, &mut H)>,
    stop: &CancelToken,
) -> Result<(), UhidError> {
    serve(set, fido.map(|(i, h)| (i, h, DeviceConfig::default())), Some((otp, key)), stop)
}

fn serve<H: Handler + ?Sized>(
    set: &UhidSet,
    mut fido: Option<(usize, &mut H, DeviceConfig)>,
    mut otp: Option<(usize, &mut VirtualYubikey)>,
    stop: &CancelToken,
) -> Result<(), UhidError> {
    let mut channel = fido.as_ref().map(|(_, _, c)| DeviceChannel::new(*c));
    while !stop.is_cancelled() {
        let now = Instant::now();
        let wait = channel
            .as_ref()
            .and_then(DeviceChannel::next_deadline)
            .map_or(Duration::from_millis(100), |d| d.saturating_duration_since(now))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        match set.next_event(wait) {
            None => {
                if let (Some(ch), Some((_, h, _))) = (channel.as_mut(), fido.as_mut()) {
                    ch.poll(Instant::now(), &mut **h);
                }
            }
            Some((_, Err(e))) => return Err(e),
            Some((_, Ok(KernelEvent::Stop))) => return Err(UhidError::Gone),
            Some((i, Ok(ev))) => {
                let is_fido = fido.as_ref().is_some_and(|(f, _, _)| *f == i);
                let is_otp = otp.as_ref().is_some_and(|(o, _)| *o == i);
                match ev {
                    KernelEvent::Output { data, rtype: ReportType::Output } if is_fido => {
                        if let (Some(ch), Some((_, h, _)), Some(r)) =
                            (channel.as_mut(), fido.as_mut(), strip_report_id(&data, REPORT_LEN))
                        {
                            let mut report: Report = [0; REPORT_LEN];
                            report.copy_from_slice(r);
                            ch.receive(&report, Instant::now(), &mut **h);
                        }
                    }
                    KernelEvent::GetReport { id, rnum, rtype: ReportType::Feature } if is_otp => {
                        if let Some((_, key)) = otp.as_mut() {
                            let r = key.handle_get();
                            let mut reply = [0u8; 9];
                            reply[0] = rnum;
                            reply[1..].copy_from_slice(&r);
                            set.get_report_reply(i, id, 0, &reply)?;
                        }
                    }
                    KernelEvent::SetReport { id, rtype: ReportType::Feature, data, .. } if is_otp => {
                        match (otp.as_mut(), strip_report_id(&data, 8)) {
                            (Some((_, key)), Some(r)) => {
                                let mut report = [0u8; 8];
                                report.copy_from_slice(r);
                                key.handle_set(&report);
                                zeroize::Zeroize::zeroize(&mut report); // may carry a key
                                set.set_report_reply(i, id, 0)?;
                            }
                            _ => set.set_report_reply(i, id, EIO)?,
                        }
                    }
                    KernelEvent::GetReport { id, .. } => set.get_report_reply(i, id, EIO, &[])?,
                    KernelEvent::SetReport { id, .. } => set.set_report_reply(i, id, EIO)?,
                    _ => {} // START, OPEN, CLOSE, LED output reports, legacy events
                }
            }
        }
        if let Some(ch) = channel.as_mut() {
            while let Some(out) = ch.poll_output() {
                if let Some((f, _, _)) = fido.as_ref() {
                    set.input(*f, &out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ctaphid::{BROADCAST_CID, MessageKind, Outcome, cmd, fragment};

    /// A fake kernel: the far ends of the two pipes of one device.
    struct Kernel {
        from_host: std::io::PipeReader,
        to_host: std::io::PipeWriter,
    }

    impl Kernel {
        fn read_event(&mut self) -> Vec<u8> {
            let mut b = vec![0u8; EVENT_SIZE];
            self.from_host.read_exact(&mut b).unwrap();
            b
        }
        fn send(&mut self, e: &[u8]) {
            let mut b = vec![0u8; EVENT_SIZE];
            b[..e.len()].copy_from_slice(e);
            self.to_host.write_all(&b).unwrap();
        }
        fn output(&mut self, data: &[u8]) {
            let mut e = vec![0u8; EVENT_SIZE];
            e[..4].copy_from_slice(&event_type::OUTPUT.to_ne_bytes());
            e[4..4 + data.len()].copy_from_slice(data);
            e[4 + DATA_MAX..4 + DATA_MAX + 2].copy_from_slice(&(data.len() as u16).to_ne_bytes());
            e[4 + DATA_MAX + 2] = 1;
            self.send(&e);
        }
        fn get_feature(&mut self, id: u32) {
            let mut e = vec![0u8; 12];
            e[..4].copy_from_slice(&event_type::GET_REPORT.to_ne_bytes());
            e[4..8].copy_from_slice(&id.to_ne_bytes());
            self.send(&e);
        }
        fn set_feature(&mut self, id: u32, data: &[u8]) {
            let mut e = vec![0u8; 12 + data.len()];
            e[..4].copy_from_slice(&event_type::SET_REPORT.to_ne_bytes());
            e[4..8].copy_from_slice(&id.to_ne_bytes());
            e[10..12].copy_from_slice(&(data.len() as u16).to_ne_bytes());
            e[12..].copy_from_slice(data);
            self.send(&e);
        }
    }

    fn device(set: &mut UhidSet, p: &CreateParams) -> (usize, Kernel) {
        let (from_host, host_w) = std::io::pipe().unwrap();
        let (host_r, to_host) = std::io::pipe().unwrap();
        let i = set.create_with_io(Box::new(host_r), Box::new(host_w), p).unwrap();
        (i, Kernel { from_host, to_host })
    }

    #[test]
    fn create2_layout() {
        let p = CreateParams::usb("n", 0x1050, 0x0403, descriptor::FIDO);
        let e = encode::create2(&p).unwrap();
        assert_eq!(e.len(), EVENT_SIZE);
        assert_eq!(u32_at(&e, 0), Some(event_type::CREATE2));
        assert_eq!(&e[4..6], b"n\0");
        assert_eq!(&e[132..143], b"hwkey-uhid\0");
        assert!(e[196..260].starts_with(p.uniq.as_bytes()));
        assert_eq!(u16_at(&e, 260), Some(descriptor::FIDO.len() as u16));
        assert_eq!(u16_at(&e, 262), Some(BUS_USB));
        assert_eq!(u32_at(&e, 264), Some(0x1050));
        assert_eq!(u32_at(&e, 268), Some(0x0403));
        assert_eq!(&e[280..280 + descriptor::FIDO.len()], descriptor::FIDO);
        let mut long = p.clone();
        long.name = "x".repeat(128);
        assert!(matches!(encode::create2(&long), Err(UhidError::Invalid(_))));
        let mut empty = p;
        empty.descriptor.clear();
        assert!(encode::create2(&empty).is_err());
    }

    #[test]
    fn reply_layouts() {
        let e = encode::input2(&[7; 64]).unwrap();
        assert_eq!((u32_at(&e, 0), u16_at(&e, 4)), (Some(event_type::INPUT2), Some(64)));
        assert_eq!(&e[6..70], &[7; 64]);
        assert_eq!(e[70], 0);
        let e = encode::get_report_reply(0xdead_beef, 0, &[0, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(u32_at(&e, 4), Some(0xdead_beef));
        assert_eq!((u16_at(&e, 8), u16_at(&e, 10)), (Some(0), Some(9)));
        assert_eq!(&e[12..21], &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let e = encode::set_report_reply(3, EIO);
        assert_eq!((u32_at(&e, 0), u32_at(&e, 4), u16_at(&e, 8)), (Some(14), Some(3), Some(5)));
        assert_eq!(u32_at(&encode::destroy(), 0), Some(event_type::DESTROY));
        assert!(encode::input2(&[0; DATA_MAX + 1]).is_err());
    }

    #[test]
    fn decode_events_and_garbage() {
        assert_eq!(decode(&[2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).unwrap(), KernelEvent::Start { flags: 1 });
        assert_eq!(decode(&3u32.to_ne_bytes()).unwrap(), KernelEvent::Stop);
        assert_eq!(decode(&99u32.to_ne_bytes()).unwrap(), KernelEvent::Other(99));
        let mut g = vec![0u8; 10];
        g[..4].copy_from_slice(&event_type::GET_REPORT.to_ne_bytes());
        g[4] = 9;
        g[8] = 0;
        assert_eq!(decode(&g).unwrap(), KernelEvent::GetReport { id: 9, rnum: 0, rtype: ReportType::Feature });
        // Truncated and oversized events are errors, never panics.
        for n in 0..12 {
            let mut b = vec![0xffu8; n];
            if n >= 4 {
                b[..4].copy_from_slice(&event_type::SET_REPORT.to_ne_bytes());
            }
            assert!(decode(&b).is_err(), "{n} bytes");
        }
        let mut o = vec![0u8; EVENT_SIZE];
        o[..4].copy_from_slice(&event_type::OUTPUT.to_ne_bytes());
        o[4 + DATA_MAX..4 + DATA_MAX + 2].copy_from_slice(&0xffffu16.to_ne_bytes());
        assert!(decode(&o).is_err());
        assert!(decode(&o[..100]).is_err());
    }

    #[test]
    fn report_id_stripping() {
        let mut with_id = vec![0u8; 65];
        with_id[1] = 9;
        assert_eq!(strip_report_id(&with_id, 64).map(|r| r[0]), Some(9));
        assert_eq!(strip_report_id(&[1; 64], 64), Some(&[1u8; 64][..]));
        assert_eq!(strip_report_id(&[1; 65], 64), None); // a report id this device does not have
        assert_eq!(strip_report_id(&[0; 9], 8), Some(&[0u8; 8][..]));
        assert_eq!(strip_report_id(&[], 8), None);
    }

    #[test]
    fn descriptors_declare_their_usage_first() {
        assert_eq!(&descriptor::FIDO[..5], &[0x06, 0xd0, 0xf1, 0x09, 0x01]);
        assert_eq!(&descriptor::YUBIKEY_OTP[..4], &[0x05, 0x01, 0x09, 0x06]);
        // The OTP descriptor ends with an 8 x 8-bit feature item.
        let n = descriptor::YUBIKEY_OTP.len();
        assert_eq!(&descriptor::YUBIKEY_OTP[n - 7..], &[0x75, 0x08, 0x95, 0x08, 0xb1, 0x02, 0xc0]);
    }

    struct Echo;
    impl Handler for Echo {
        fn start(&mut self, _: MessageKind, req: &[u8], _: Instant) -> Outcome {
            Outcome::Done(req.to_vec())
        }
    }

    #[test]
    fn fido_bridge_over_a_pipe() {
        let mut set = UhidSet::new();
        let (fido, mut k) = device(&mut set, &CreateParams::usb("t", 1, 2, descriptor::FIDO));
        let created = k.read_event();
        assert_eq!(u32_at(&created, 0), Some(event_type::CREATE2));
        let stop = CancelToken::new();
        let stop2 = stop.clone();
        let kernel = std::thread::spawn(move || {
            k.send(&event_type::START.to_ne_bytes());
            k.send(&event_type::OPEN.to_ne_bytes());
            // INIT as hidraw delivers it: report id 0, then 64 bytes.
            let init = fragment(BROADCAST_CID, cmd::INIT, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
            let mut with_id = vec![0u8];
            with_id.extend_from_slice(&init[0]);
            k.output(&with_id);
            let e = k.read_event();
            assert_eq!(u32_at(&e, 0), Some(event_type::INPUT2));
            assert_eq!(u16_at(&e, 4), Some(64));
            assert_eq!(&e[6..10], &[0xff; 4]);
            assert_eq!(e[10], 0x80 | cmd::INIT);
            assert_eq!(&e[13..21], &[1, 2, 3, 4, 5, 6, 7, 8]);
            // A feature request to the FIDO device is refused, not left hanging.
            k.get_feature(77);
            let e = k.read_event();
            assert_eq!((u32_at(&e, 0), u32_at(&e, 4), u16_at(&e, 8)), (Some(10), Some(77), Some(EIO)));
            stop2.cancel();
            k
        });
        serve_fido(&set, fido, &mut Echo, DeviceConfig::default(), &stop).unwrap();
        let mut k = kernel.join().unwrap();
        drop(set);
        assert_eq!(u32_at(&k.read_event(), 0), Some(event_type::DESTROY));
    }

    #[test]
    fn yubikey_feature_reports_over_a_pipe() {
        let mut set = UhidSet::new();
        let (otp, mut k) = device(&mut set, &CreateParams::usb("y", YUBICO_VID, 0x0403, descriptor::YUBIKEY_OTP));
        k.read_event();
        let mut key = VirtualYubikey::new(1234);
        let stop = CancelToken::new();
        let stop2 = stop.clone();
        let kernel = std::thread::spawn(move || {
            k.get_feature(1);
            let e = k.read_event();
            assert_eq!(
                (u32_at(&e, 0), u32_at(&e, 4), u16_at(&e, 8), u16_at(&e, 10)),
                (Some(10), Some(1), Some(0), Some(9))
            );
            // Report id 0 first, then the status report: version 5.4.3.
            assert_eq!(&e[12..16], &[0, 0, 5, 4]);
            // A 9-byte set with the report id, and a malformed one.
            k.set_feature(2, &[0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
            let e = k.read_event();
            assert_eq!((u32_at(&e, 0), u32_at(&e, 4), u16_at(&e, 8)), (Some(14), Some(2), Some(0)));
            k.set_feature(3, &[1, 2, 3]);
            let e = k.read_event();
            assert_eq!((u32_at(&e, 4), u16_at(&e, 8)), (Some(3), Some(EIO)));
            // The device disappears: serve returns an error instead of spinning.
            drop(k);
            stop2
        });
        let r = serve_yubikey::<Echo>(&set, otp, &mut key, None, &stop);
        assert!(matches!(r, Err(UhidError::Gone)), "{r:?}");
        kernel.join().unwrap();
    }

    #[test]
    fn hidraw_found_by_uniq() {
        let dir = std::env::temp_dir().join(format!("hwkey-uhid-test-{}", std::process::id()));
        let sys = dir.join("sys");
        let dev = dir.join("dev");
        std::fs::create_dir_all(sys.join("hidraw3/device")).unwrap();
        std::fs::create_dir_all(sys.join("hidraw4/device")).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(sys.join("hidraw3/device/uevent"), "HID_NAME=x\nHID_UNIQ=other\n").unwrap();
        std::fs::write(sys.join("hidraw4/device/uevent"), "HID_NAME=x\nHID_UNIQ=mine\n").unwrap();
        std::fs::write(dev.join("hidraw3"), "").unwrap();
        assert_eq!(find_hidraw(&sys, &dev, "mine"), None); // no node yet
        std::fs::write(dev.join("hidraw4"), "").unwrap();
        assert_eq!(find_hidraw(&sys, &dev, "mine"), Some(dev.join("hidraw4")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_uhid_says_what_to_do() {
        let mut set = UhidSet::new();
        let e = set.create("/nonexistent/uhid", &CreateParams::usb("x", 1, 2, descriptor::FIDO)).unwrap_err();
        assert_eq!(e.code(), "uhid_unavailable");
        assert!(e.to_string().contains("load the uhid module; needs root or access to /dev/uhid"), "{e}");
    }
}

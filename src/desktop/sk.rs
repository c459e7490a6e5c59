//! The OpenSSH security-key provider interface (sk-api), as typed Rust: the
//! requests `ssh-keygen`, `ssh` and `ssh-agent` make of a provider and their
//! answers, mapped onto CTAP2. The shim in `sk/` converts the C structures of
//! `sk-api.h` to and from these types; nothing here is `unsafe`.
//!
//! Facts of the interface (OpenSSH's `sk-api.h`, `ssh-sk.c`, and the
//! libfido2 provider `sk-usbhid.c`, API version `0x000a0000` as in OpenSSH
//! 9.0 to 9.x; Debian 12 ships 9.2p1):
//!
//! - enroll: the clientDataHash is SHA-256 of the challenge; the RP ID is the
//!   application (`ssh:` by default); the user ID is 32 bytes, the `user`
//!   option copied into zeros; name and display name `openssh`; resident keys
//!   and verify-required keys get credProtect (UV required for
//!   verify-required, else UV optional with credential ID list) and are
//!   refused on keys without credProtect; a resident enrollment first looks
//!   for an existing credential of the same application and user
//!   (`SSH_SK_ERR_CREDENTIAL_EXISTS`) unless `SSH_SK_FORCE_OPERATION`.
//!   The public key is the uncompressed SEC1 point (ECDSA P-256) or the 32
//!   Ed25519 bytes; the response flags are the request's flags.
//! - sign: the clientDataHash is SHA-256 of the data; up as the key's
//!   `SSH_SK_USER_PRESENCE_REQD` flag; `SSH_SK_USER_VERIFICATION_REQD`
//!   without a PIN needs built-in UV, else `SSH_SK_ERR_PIN_REQUIRED`; the
//!   answer carries the authenticator-data flags, the counter, and the
//!   signature (ECDSA as big-endian r and s without leading zeros, Ed25519 as
//!   64 bytes in `sig_r`).
//! - load resident keys: needs the PIN (credential management); only RP IDs
//!   starting with `ssh:`.
//! - PIN failures map to `SSH_SK_ERR_PIN_REQUIRED` (OpenSSH then asks for the
//!   PIN and retries), unsupported algorithms or options to
//!   `SSH_SK_ERR_UNSUPPORTED`, no device to `SSH_SK_ERR_DEVICE_NOT_FOUND`.
//!
//! The device is the `device` option, else `HWKEY_DEVICE`, else every FIDO
//! HID device (touch-to-select for enroll and resident keys; for sign the
//! key that holds the credential, found by a silent pre-flight).

use super::devices::{DeviceSource, Specs};
use crate::client::discovery::select_by_touch;
use crate::client::pin::{PinUvAuthToken, permissions};
use crate::client::{ClientError, Device, Op};
use crate::crypto::default_provider;
use crate::proto::cbor::Value;
use crate::proto::cose::{CoseKey, curve};
use crate::proto::ctap2::get_assertion::GetAssertionRequest;
use crate::proto::ctap2::make_credential::{CommandOptions, MakeCredentialRequest};
use crate::proto::ctap2::{
    CtapStatus, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};
use crate::proto::extensions::MakeCredentialExtensions;
use std::time::Duration;

/// `SSH_SK_VERSION_MAJOR` of the API implemented (OpenSSH 9.x).
pub const SK_API_VERSION: u32 = 0x000a_0000;
/// `SSH_SK_VERSION_MAJOR_MASK`.
pub const SK_API_VERSION_MASK: u32 = 0xffff_0000;

/// Whether a host built for API `version` can use this provider (OpenSSH
/// compares the major parts; this provider says so itself too).
pub fn api_compatible(version: u32) -> bool {
    version & SK_API_VERSION_MASK == SK_API_VERSION
}

/// The flags of `sk-api.h`.
pub mod flags {
    /// `SSH_SK_USER_PRESENCE_REQD`.
    pub const USER_PRESENCE_REQD: u8 = 0x01;
    /// `SSH_SK_USER_VERIFICATION_REQD`.
    pub const USER_VERIFICATION_REQD: u8 = 0x04;
    /// `SSH_SK_FORCE_OPERATION`.
    pub const FORCE_OPERATION: u8 = 0x10;
    /// `SSH_SK_RESIDENT_KEY`.
    pub const RESIDENT_KEY: u8 = 0x20;
}

/// The key algorithms of `sk-api.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkAlg {
    /// `SSH_SK_ECDSA` (0): ECDSA P-256, `ecdsa-sk`.
    Ecdsa,
    /// `SSH_SK_ED25519` (1): `ed25519-sk`.
    Ed25519,
}

impl SkAlg {
    /// From the API's number.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(SkAlg::Ecdsa),
            1 => Some(SkAlg::Ed25519),
            _ => None,
        }
    }
    /// The API's number.
    pub fn to_u32(self) -> u32 {
        match self {
            SkAlg::Ecdsa => 0,
            SkAlg::Ed25519 => 1,
        }
    }
    fn cose(self) -> i64 {
        match self {
            SkAlg::Ecdsa => -7,
            SkAlg::Ed25519 => -8,
        }
    }
}

/// The error codes of `sk-api.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    /// `SSH_SK_ERR_GENERAL` (-1).
    #[error("security key operation failed")]
    General,
    /// `SSH_SK_ERR_UNSUPPORTED` (-2).
    #[error("not supported by the security key")]
    Unsupported,
    /// `SSH_SK_ERR_PIN_REQUIRED` (-3).
    #[error("the security key needs its PIN")]
    PinRequired,
    /// `SSH_SK_ERR_DEVICE_NOT_FOUND` (-4).
    #[error("no security key found")]
    DeviceNotFound,
    /// `SSH_SK_ERR_CREDENTIAL_EXISTS` (-5).
    #[error("a resident key for this application and user exists")]
    CredentialExists,
}

impl SkError {
    /// The API's number.
    pub fn code(self) -> i32 {
        match self {
            SkError::General => -1,
            SkError::Unsupported => -2,
            SkError::PinRequired => -3,
            SkError::DeviceNotFound => -4,
            SkError::CredentialExists => -5,
        }
    }
    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            SkError::General => "general",
            SkError::Unsupported => "unsupported",
            SkError::PinRequired => "pin_required",
            SkError::DeviceNotFound => "device_not_found",
            SkError::CredentialExists => "credential_exists",
        }
    }

    /// The sk-api code for a client error (as the libfido2 provider maps
    /// libfido2's).
    pub fn from_client(e: &ClientError) -> Self {
        match e {
            ClientError::PinRequired
            | ClientError::PinInvalid { .. }
            | ClientError::PinAuthBlocked
            | ClientError::PinNotSet
            | ClientError::Status(
                CtapStatus::PuatRequired | CtapStatus::OperationDenied | CtapStatus::PinAuthInvalid,
            ) => SkError::PinRequired,
            ClientError::Status(CtapStatus::UnsupportedAlgorithm | CtapStatus::UnsupportedOption)
            | ClientError::Unsupported(_) => SkError::Unsupported,
            ClientError::NoDevice => SkError::DeviceNotFound,
            _ => SkError::General,
        }
    }
}

/// One `struct sk_option`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkOption {
    /// The name (`device`, `user`).
    pub name: String,
    /// The value.
    pub value: String,
    /// Whether the caller requires it to be understood.
    pub required: bool,
}

/// The options understood.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SkOptions {
    /// `device`: the `--device` forms, or a hidraw path.
    pub device: Option<Specs>,
    /// `user` (enroll only): the user ID, zero-padded to 32 bytes.
    pub user: Option<[u8; 32]>,
}

impl SkOptions {
    /// Parse; `user` only for enroll. An unknown option marked required is
    /// an error ([`SkError::General`], as the libfido2 provider answers).
    pub fn parse(options: &[SkOption], enroll: bool) -> Result<Self, SkError> {
        let mut o = SkOptions::default();
        for opt in options {
            match opt.name.as_str() {
                "device" => o.device = Some(Specs::parse(&opt.value).map_err(|_| SkError::General)?),
                "user" if enroll => {
                    let b = opt.value.as_bytes();
                    if b.len() >= 32 {
                        return Err(SkError::General);
                    }
                    let mut id = [0u8; 32];
                    id[..b.len()].copy_from_slice(b);
                    o.user = Some(id);
                }
                _ if opt.required => return Err(SkError::General),
                _ => {}
            }
        }
        Ok(o)
    }
}

/// `struct sk_enroll_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnrollResponse {
    /// The flags of the key.
    pub flags: u8,
    /// The public key (65-byte SEC1 point or 32 Ed25519 bytes).
    pub public_key: Vec<u8>,
    /// The credential ID.
    pub key_handle: Vec<u8>,
    /// The attestation signature (empty for `none`).
    pub signature: Vec<u8>,
    /// The attestation certificate, DER (empty when self-attested).
    pub attestation_cert: Vec<u8>,
    /// The authenticator data, CBOR-encoded as a byte string (as libfido2 gives it).
    pub authdata: Vec<u8>,
}

/// `struct sk_sign_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignResponse {
    /// The authenticator-data flags.
    pub flags: u8,
    /// The signature counter.
    pub counter: u32,
    /// ECDSA r (big-endian, no leading zeros) or the 64-byte Ed25519 signature.
    pub sig_r: Vec<u8>,
    /// ECDSA s (empty for Ed25519).
    pub sig_s: Vec<u8>,
}

/// `struct sk_resident_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentKey {
    /// The algorithm.
    pub alg: SkAlg,
    /// The position within its application.
    pub slot: usize,
    /// The application (RP ID, `ssh:...`).
    pub application: String,
    /// Public key and key handle.
    pub key: EnrollResponse,
    /// `SSH_SK_USER_VERIFICATION_REQD` when the key needs the PIN to sign.
    pub flags: u8,
    /// The user ID.
    pub user_id: Vec<u8>,
}

/// A provider over a device source (the shim builds one over [`device_source`]).
pub struct SkProvider<'a> {
    /// Where devices come from.
    pub devices: &'a dyn DeviceSource,
    /// Debug messages.
    pub log: &'a dyn Fn(&str),
    /// How long to wait for a touch or for the whole operation.
    pub timeout: Duration,
}

/// The touch timeout of the sk-api operations.
pub const SK_TIMEOUT: Duration = Duration::from_secs(60);

/// The device source for `options`: the `device` option, else `HWKEY_DEVICE`,
/// else every FIDO HID device.
pub fn device_source(options: &SkOptions) -> Result<Specs, SkError> {
    if let Some(d) = &options.device {
        return Ok(d.clone());
    }
    Ok(Specs::from_env().map_err(|_| SkError::General)?.unwrap_or_default())
}

/// ECDSA-Sig-Value (DER) to big-endian r and s without leading zeros.
pub fn ecdsa_der_to_rs(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    fn int(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let (&len, rest) = rest.split_first()?;
        if tag != 0x02 || len & 0x80 != 0 || rest.len() < len as usize || len == 0 {
            return None;
        }
        let (v, rest) = rest.split_at(len as usize);
        if v[0] & 0x80 != 0 {
            return None; // negative
        }
        Some((v, rest))
    }
    let (&tag, rest) = der.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x30 || len & 0x80 != 0 || body.len() != len as usize {
        return None;
    }
    let (r, rest) = int(body)?;
    let (s, rest) = int(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let strip = |v: &[u8]| -> Vec<u8> {
        let i = v.iter().position(|&b| b != 0).unwrap_or(v.len());
        v[i..].to_vec()
    };
    let (r, s) = (strip(r), strip(s));
    if r.len() > 32 || s.len() > 32 {
        return None;
    }
    Some((r, s))
}

fn pack_public_key(alg: SkAlg, key: &CoseKey) -> Result<Vec<u8>, SkError> {
    match (alg, key) {
        (SkAlg::Ecdsa, CoseKey::Ec2 { crv: curve::P256, x, y, .. }) if x.len() == 32 && y.len() == 32 => {
            Ok([&[0x04u8][..], x, y].concat())
        }
        (SkAlg::Ed25519, CoseKey::Okp { crv: curve::ED25519, x, .. }) if x.len() == 32 => Ok(x.clone()),
        _ => Err(SkError::General),
    }
}

fn alg_of(key: &CoseKey) -> Option<SkAlg> {
    match key {
        CoseKey::Ec2 { crv: curve::P256, .. } => Some(SkAlg::Ecdsa),
        CoseKey::Okp { crv: curve::ED25519, .. } => Some(SkAlg::Ed25519),
        _ => None,
    }
}

impl<'a> SkProvider<'a> {
    fn op(&self) -> Op {
        Op::timeout(self.timeout)
    }

    fn log(&self, m: &str) {
        (self.log)(m)
    }

    /// One device: the only one, or the one the user touches.
    fn one_device(&self, op: &Op) -> Result<Device, SkError> {
        let open_op = op.bounded(std::time::Instant::now() + Duration::from_secs(5));
        let mut devs = self.devices.open_all(&open_op, self.log);
        match devs.len() {
            0 => Err(SkError::DeviceNotFound),
            1 => Ok(devs.remove(0)),
            _ => select_by_touch(devs, op).map_err(|e| {
                self.log(&format!("touch-to-select: {e}"));
                SkError::DeviceNotFound
            }),
        }
    }

    fn token(
        &self,
        dev: &mut Device,
        pin: &str,
        perms: u8,
        rp: Option<&str>,
        op: &Op,
    ) -> Result<PinUvAuthToken, SkError> {
        dev.pin_token(pin, perms, rp, op).map_err(|e| {
            self.log(&format!("PIN: {e}"));
            SkError::from_client(&e)
        })
    }

    /// `sk_enroll`.
    pub fn enroll(
        &self,
        alg: SkAlg,
        challenge: &[u8],
        application: &str,
        key_flags: u8,
        pin: Option<&str>,
        options: &SkOptions,
    ) -> Result<EnrollResponse, SkError> {
        let op = self.op();
        let mut dev = self.one_device(&op)?;
        if !dev.is_ctap2() {
            self.log("U2F-only keys cannot make sk keys through hwkey");
            return Err(SkError::Unsupported);
        }
        let user_id = options.user.unwrap_or([0u8; 32]);
        let resident = key_flags & flags::RESIDENT_KEY != 0;
        let verify_required = key_flags & flags::USER_VERIFICATION_REQD != 0;
        if resident
            && key_flags & flags::FORCE_OPERATION == 0
            && self.exists(&mut dev, application, &user_id, pin, &op)?
        {
            return Err(SkError::CredentialExists);
        }
        let provider = default_provider();
        let cdh = provider.sha256(&[challenge]).to_vec();
        let mut extensions = None;
        if resident || verify_required {
            let has_cred_protect = dev.info().is_some_and(|i| i.supports_extension("credProtect"));
            if !has_cred_protect {
                self.log("the key has no credProtect: refusing a resident or verify-required key");
                return Err(SkError::Unsupported);
            }
            extensions = Some(MakeCredentialExtensions {
                cred_protect: Some(if verify_required { 3 } else { 2 }),
                ..Default::default()
            });
        }
        let mut req = MakeCredentialRequest {
            client_data_hash: cdh.clone(),
            rp: PublicKeyCredentialRpEntity { id: application.to_owned(), name: None },
            user: PublicKeyCredentialUserEntity {
                id: user_id.to_vec(),
                name: Some("openssh".into()),
                display_name: Some("openssh".into()),
            },
            pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(alg.cose())],
            extensions,
            options: resident.then_some(CommandOptions { rk: Some(true), ..Default::default() }),
            ..Default::default()
        };
        if let Some(pin) = pin {
            let t = self.token(&mut dev, pin, permissions::MAKE_CREDENTIAL, Some(application), &op)?;
            req.pin_uv_auth_param = Some(t.authenticate(&cdh));
            req.pin_uv_auth_protocol = Some(t.protocol().number() as u64);
        }
        let resp = dev.make_credential(&req, &op).map_err(|e| {
            self.log(&format!("makeCredential: {e}"));
            SkError::from_client(&e)
        })?;
        let ad = resp.parsed_auth_data().map_err(|_| SkError::General)?;
        let att = ad.attested_credential.ok_or(SkError::General)?;
        let public_key = pack_public_key(alg, &att.public_key)?;
        let sig = resp.att_stmt.get_text("sig").and_then(Value::as_bytes).map(<[u8]>::to_vec).unwrap_or_default();
        let cert = resp
            .att_stmt
            .get_text("x5c")
            .and_then(Value::as_array)
            .and_then(<[Value]>::first)
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        Ok(EnrollResponse {
            flags: key_flags,
            public_key,
            key_handle: att.credential_id,
            signature: sig,
            attestation_cert: cert,
            authdata: crate::proto::cbor::encode(&Value::Bytes(resp.auth_data.clone())),
        })
    }

    /// Whether a resident credential of `application` and `user_id` exists.
    fn exists(
        &self,
        dev: &mut Device,
        application: &str,
        user_id: &[u8],
        pin: Option<&str>,
        op: &Op,
    ) -> Result<bool, SkError> {
        let provider = default_provider();
        let cdh = provider.random_bytes(32).map_err(|_| SkError::General)?;
        let mut req = GetAssertionRequest {
            rp_id: application.to_owned(),
            client_data_hash: cdh.clone(),
            options: Some(CommandOptions { up: Some(false), ..Default::default() }),
            ..Default::default()
        };
        if let Some(pin) = pin {
            let t = self.token(dev, pin, permissions::GET_ASSERTION, Some(application), op)?;
            req.pin_uv_auth_param = Some(t.authenticate(&cdh));
            req.pin_uv_auth_protocol = Some(t.protocol().number() as u64);
        }
        let first = match dev.get_assertion(&req, op) {
            Ok(r) => r,
            Err(ClientError::NoCredentials) => return Ok(false),
            Err(e) => {
                self.log(&format!("looking for an existing resident key: {e}"));
                return Err(SkError::from_client(&e));
            }
        };
        let n = first.number_of_credentials.unwrap_or(1).clamp(1, 256);
        let mut r = first;
        for i in 0..n {
            if i > 0 {
                r = dev.get_next_assertion(op).map_err(|e| SkError::from_client(&e))?;
            }
            if r.user.as_ref().is_some_and(|u| u.id == user_id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The device holding `key_handle` under `application` (silent pre-flight).
    fn device_for(&self, application: &str, key_handle: &[u8], op: &Op) -> Result<Device, SkError> {
        let open_op = op.bounded(std::time::Instant::now() + Duration::from_secs(5));
        let devs = self.devices.open_all(&open_op, self.log);
        if devs.is_empty() {
            return Err(SkError::DeviceNotFound);
        }
        for mut dev in devs {
            if !dev.is_ctap2() {
                continue;
            }
            let req = GetAssertionRequest {
                rp_id: application.to_owned(),
                client_data_hash: vec![0; 32],
                allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(key_handle.to_vec())]),
                options: Some(CommandOptions { up: Some(false), ..Default::default() }),
                ..Default::default()
            };
            let pre = op.bounded(std::time::Instant::now() + Duration::from_secs(3));
            match dev.get_assertion(&req, &pre) {
                Ok(_) => return Ok(dev),
                Err(e) => self.log(&format!("{}: {e}", dev.describe())),
            }
        }
        Err(SkError::DeviceNotFound)
    }

    /// `sk_sign`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        &self,
        alg: SkAlg,
        data: &[u8],
        application: &str,
        key_handle: &[u8],
        key_flags: u8,
        pin: Option<&str>,
        _options: &SkOptions,
    ) -> Result<SignResponse, SkError> {
        let op = self.op();
        let uv_required = key_flags & flags::USER_VERIFICATION_REQD != 0;
        let mut dev = if pin.is_some() || uv_required {
            self.one_device(&op)?
        } else {
            self.device_for(application, key_handle, &op)?
        };
        let provider = default_provider();
        let cdh = provider.sha256(&[data]).to_vec();
        let mut opts = CommandOptions { up: Some(key_flags & flags::USER_PRESENCE_REQD != 0), ..Default::default() };
        let mut req = GetAssertionRequest {
            rp_id: application.to_owned(),
            client_data_hash: cdh.clone(),
            allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(key_handle.to_vec())]),
            ..Default::default()
        };
        match pin {
            Some(pin) => {
                let t = self.token(&mut dev, pin, permissions::GET_ASSERTION, Some(application), &op)?;
                req.pin_uv_auth_param = Some(t.authenticate(&cdh));
                req.pin_uv_auth_protocol = Some(t.protocol().number() as u64);
            }
            None if uv_required => {
                if dev.option("uv") != Some(true) {
                    return Err(SkError::PinRequired);
                }
                opts.uv = Some(true);
            }
            None => {}
        }
        req.options = Some(opts);
        let resp = dev.get_assertion(&req, &op).map_err(|e| {
            self.log(&format!("getAssertion: {e}"));
            SkError::from_client(&e)
        })?;
        let ad = resp.parsed_auth_data().map_err(|_| SkError::General)?;
        let (sig_r, sig_s) = match alg {
            SkAlg::Ecdsa => ecdsa_der_to_rs(&resp.signature).ok_or(SkError::General)?,
            SkAlg::Ed25519 if resp.signature.len() == 64 => (resp.signature.clone(), Vec::new()),
            SkAlg::Ed25519 => return Err(SkError::General),
        };
        Ok(SignResponse { flags: ad.flags.0, counter: ad.sign_count, sig_r, sig_s })
    }

    /// `sk_load_resident_keys`.
    pub fn load_resident_keys(&self, pin: Option<&str>, _options: &SkOptions) -> Result<Vec<ResidentKey>, SkError> {
        let pin = pin.ok_or(SkError::PinRequired)?;
        let op = self.op();
        let mut dev = self.one_device(&op)?;
        if dev.option("credMgmt") != Some(true) && dev.option("credentialMgmtPreview") != Some(true) {
            return Ok(Vec::new());
        }
        let t = self.token(&mut dev, pin, permissions::CREDENTIAL_MANAGEMENT, None, &op)?;
        let creds = dev.list_credentials(&t, &op).map_err(|e| {
            self.log(&format!("credential management: {e}"));
            SkError::from_client(&e)
        })?;
        let internal_uv = dev.option("uv").is_some();
        let mut out = Vec::new();
        let mut slot_of: Vec<(String, usize)> = Vec::new();
        for c in creds {
            let Some(rp) = c.rp_id.clone() else { continue };
            if !rp.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("ssh:")) {
                continue;
            }
            let Some(key) = &c.public_key else { continue };
            let Some(alg) = alg_of(key) else {
                self.log(&format!("{rp}: a key type OpenSSH does not use, skipped"));
                continue;
            };
            let slot = match slot_of.iter_mut().find(|(r, _)| *r == rp) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    slot_of.push((rp.clone(), 0));
                    0
                }
            };
            let flags = if c.cred_protect == Some(3) && !internal_uv { flags::USER_VERIFICATION_REQD } else { 0 };
            out.push(ResidentKey {
                alg,
                slot,
                application: rp,
                key: EnrollResponse {
                    public_key: pack_public_key(alg, key)?,
                    key_handle: c.credential_id.clone(),
                    ..Default::default()
                },
                flags,
                user_id: c.user.map(|u| u.id).unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_to_rs() {
        // r with a leading 0x00 (high bit), s short.
        let mut der = vec![0x30, 0x00, 0x02, 33, 0x00];
        der.extend([0x80u8; 32]);
        der.extend([0x02, 2, 0x00, 0x7f]);
        der[1] = (der.len() - 2) as u8;
        let (r, s) = ecdsa_der_to_rs(&der).unwrap();
        assert_eq!(r, vec![0x80; 32]);
        assert_eq!(s, vec![0x7f]);
        assert!(ecdsa_der_to_rs(&der[..der.len() - 1]).is_none());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(ecdsa_der_to_rs(&trailing).is_none());
        assert!(ecdsa_der_to_rs(&[]).is_none());
        assert!(ecdsa_der_to_rs(&[0x30, 0x02, 0x02, 0x00]).is_none());
    }

    #[test]
    fn options() {
        let o = |n: &str, v: &str, r| SkOption { name: n.into(), value: v.into(), required: r };
        let p = SkOptions::parse(&[o("device", "udp:127.0.0.1:9", true), o("user", "alice", true)], true).unwrap();
        assert_eq!(p.device.unwrap().0[0].to_string(), "udp:127.0.0.1:9");
        assert_eq!(&p.user.unwrap()[..6], b"alice\0");
        assert_eq!(SkOptions::parse(&[o("frob", "", true)], true), Err(SkError::General));
        assert!(SkOptions::parse(&[o("frob", "", false)], true).is_ok());
        // `user` is an enroll option.
        assert_eq!(SkOptions::parse(&[o("user", "a", true)], false), Err(SkError::General));
        assert_eq!(SkOptions::parse(&[o("user", &"x".repeat(32), true)], true), Err(SkError::General));
    }

    #[test]
    fn versions_and_codes() {
        assert!(api_compatible(0x000a_0000));
        assert!(api_compatible(0x000a_0001));
        assert!(!api_compatible(0x0009_0000));
        assert!(!api_compatible(0x000b_0000));
        assert_eq!(SkError::PinRequired.code(), -3);
        assert_eq!(SkError::CredentialExists.code(), -5);
        assert_eq!(SkError::from_client(&ClientError::Status(CtapStatus::PuatRequired)), SkError::PinRequired);
        assert_eq!(SkError::from_client(&ClientError::Status(CtapStatus::UnsupportedAlgorithm)), SkError::Unsupported);
    }
}

//! pam-u2f authfiles: parsing, writing and the file-permission rule.
//!
//! One line per user, fields separated by `:`, the user name first:
//!
//! ```text
//! alice:KeyHandle,UserKey,CoseType,Options:KeyHandle,UserKey,CoseType,Options
//! ```
//!
//! - **New format** (pamu2fcfg 1.1.0 and later): `KeyHandle` is standard
//!   base64 of the credential ID, or `*` for a resident (discoverable)
//!   credential; `UserKey` is standard base64 of the public key as libfido2
//!   exports it (ES256: the 64-byte `x || y`, a 65-byte uncompressed SEC1 point
//!   is accepted too; EdDSA: the 32-byte Ed25519 key; RS256: the 256-byte
//!   modulus followed by the 3-byte exponent); `CoseType` is `es256`, `eddsa`
//!   or `rs256` (any case); `Options` is a concatenation of `+presence`,
//!   `+verification` and `+pin` (possibly empty).
//! - **Old format** (pamu2fcfg 1.0.8 and earlier, U2F registrations): only
//!   `KeyHandle,UserKey`, the key handle in URL-safe base64 and the public key
//!   as hex of the 65-byte uncompressed P-256 point; ES256 and `+presence`
//!   are implied, and the RP ID used is the `appid`, not the `origin`.
//!
//! As in pam-u2f: empty fields are skipped (`::` and `,,` collapse), the last
//! line of a user wins, a user may have several keys (at most
//! `max_devices`, the rest are ignored), and a malformed credential on the
//! user's line makes the whole file unusable for that user. Lines of other
//! users are not looked at beyond their name.
//!
//! Limits: the file is read up to [`MAX_AUTHFILE_SIZE`] bytes, one credential
//! field up to [`MAX_FIELD_LEN`] bytes; parsing is linear in the input.

use crate::proto::cose::{CoseAlgorithm, CoseKey, curve};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use std::path::Path;

/// The largest authfile read (bytes); a larger file is refused.
pub const MAX_AUTHFILE_SIZE: u64 = 8 << 20;
/// The largest credential field (`KeyHandle,UserKey,CoseType,Options`).
pub const MAX_FIELD_LEN: usize = 16 * 1024;
/// pam-u2f's default for `max_devices`: keys per user beyond it are ignored.
pub const DEFAULT_MAX_DEVICES: usize = 24;

const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an authfile (or a line of it) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthfileError {
    /// The file does not exist.
    #[error("the authfile does not exist")]
    NotFound,
    /// The file could not be opened or read.
    #[error("the authfile cannot be read: {0}")]
    Io(String),
    /// Not a regular file (directory, FIFO, device).
    #[error("the authfile is not a regular file")]
    NotRegularFile,
    /// Owned by someone else than the user and root.
    #[error("the authfile is owned by uid {owner}, neither the user (uid {user}) nor root")]
    BadOwner {
        /// The file's owner.
        owner: u32,
        /// The user logging in.
        user: u32,
    },
    /// Writable by group or others.
    #[error("the authfile's mode {mode:04o} lets group or others write it (use 0644 or stricter)")]
    TooOpen {
        /// The permission bits.
        mode: u32,
    },
    /// Larger than [`MAX_AUTHFILE_SIZE`].
    #[error("the authfile is larger than {MAX_AUTHFILE_SIZE} bytes")]
    TooLarge,
    /// A credential of the user's line is malformed.
    #[error("credential {index} of the user's line: {reason}")]
    Malformed {
        /// 1-based position on the line.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

impl AuthfileError {
    /// A stable snake_case identifier of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            AuthfileError::NotFound => "authfile_not_found",
            AuthfileError::Io(_) => "authfile_io_error",
            AuthfileError::NotRegularFile => "authfile_not_regular",
            AuthfileError::BadOwner { .. } => "authfile_bad_owner",
            AuthfileError::TooOpen { .. } => "authfile_too_open",
            AuthfileError::TooLarge => "authfile_too_large",
            AuthfileError::Malformed { .. } => "authfile_malformed",
        }
    }
}

/// The public-key type of a credential, as pam-u2f names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoseType {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    Eddsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys).
    Rs256,
}

impl CoseType {
    /// From pam-u2f's name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("es256") {
            Some(CoseType::Es256)
        } else if s.eq_ignore_ascii_case("eddsa") {
            Some(CoseType::Eddsa)
        } else if s.eq_ignore_ascii_case("rs256") {
            Some(CoseType::Rs256)
        } else {
            None
        }
    }
    /// pam-u2f's name (lower case, as pamu2fcfg writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            CoseType::Es256 => "es256",
            CoseType::Eddsa => "eddsa",
            CoseType::Rs256 => "rs256",
        }
    }
    /// The COSE algorithm.
    pub fn algorithm(self) -> CoseAlgorithm {
        match self {
            CoseType::Es256 => CoseAlgorithm::ES256,
            CoseType::Eddsa => CoseAlgorithm::EDDSA,
            CoseType::Rs256 => CoseAlgorithm::RS256,
        }
    }
    /// From a COSE algorithm, when pam-u2f has a name for it.
    pub fn from_algorithm(alg: CoseAlgorithm) -> Option<Self> {
        match alg {
            CoseAlgorithm::ES256 => Some(CoseType::Es256),
            CoseAlgorithm::EDDSA => Some(CoseType::Eddsa),
            CoseAlgorithm::RS256 => Some(CoseType::Rs256),
            _ => None,
        }
    }
}

/// The per-credential options (`+presence`, `+verification`, `+pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CredentialOptions {
    /// `+presence`: user presence (a touch) is required.
    pub presence: bool,
    /// `+verification`: built-in user verification is required.
    pub verification: bool,
    /// `+pin`: PIN verification is required.
    pub pin: bool,
}

impl CredentialOptions {
    /// As pam-u2f reads them: each option counts where it appears in the field.
    pub fn parse(s: &str) -> Self {
        CredentialOptions {
            presence: s.contains("+presence"),
            verification: s.contains("+verification"),
            pin: s.contains("+pin"),
        }
    }
}

impl std::fmt::Display for CredentialOptions {
    /// In pamu2fcfg's order: `+presence`, `+verification`, `+pin`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.presence {
            f.write_str("+presence")?;
        }
        if self.verification {
            f.write_str("+verification")?;
        }
        if self.pin {
            f.write_str("+pin")?;
        }
        Ok(())
    }
}

/// Which credential a line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHandle {
    /// `*`: a resident credential, found by the RP ID alone.
    Resident,
    /// A credential ID.
    Id(Vec<u8>),
}

/// One credential of a user's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The credential ID, or resident.
    pub key_handle: KeyHandle,
    /// The public key bytes as stored (decoded from base64 or hex).
    pub public_key: Vec<u8>,
    /// The key type.
    pub cose_type: CoseType,
    /// The options of the line.
    pub options: CredentialOptions,
    /// An old-format (U2F) line: the RP ID is the `appid`.
    pub old_format: bool,
}

impl Credential {
    /// The public key as a COSE key, checked for its type's length.
    pub fn cose_key(&self) -> Result<CoseKey, &'static str> {
        let pk = &self.public_key;
        let alg = Some(self.cose_type.algorithm());
        match self.cose_type {
            CoseType::Es256 => {
                let xy = match pk.len() {
                    64 => &pk[..],
                    65 if pk.first() == Some(&0x04) => &pk[1..],
                    _ => return Err("ES256 public key is not 64 or 65 bytes"),
                };
                let (x, y) = xy.split_at(32);
                Ok(CoseKey::Ec2 { alg, crv: curve::P256, x: x.to_vec(), y: y.to_vec() })
            }
            CoseType::Eddsa => {
                if pk.len() != 32 {
                    return Err("EdDSA public key is not 32 bytes");
                }
                Ok(CoseKey::Okp { alg, crv: curve::ED25519, x: pk.clone() })
            }
            CoseType::Rs256 => {
                if pk.len() != 259 {
                    return Err("RS256 public key is not 256 + 3 bytes");
                }
                let (n, e) = pk.split_at(256);
                Ok(CoseKey::Rsa { alg, n: n.to_vec(), e: e.to_vec() })
            }
        }
    }

    /// A new-format credential from a COSE public key (as `hwkey pam enroll`
    /// writes it, and pamu2fcfg does).
    pub fn from_cose_key(
        key_handle: KeyHandle,
        key: &CoseKey,
        options: CredentialOptions,
    ) -> Result<Self, &'static str> {
        let (cose_type, public_key) = match key {
            CoseKey::Ec2 { crv: curve::P256, x, y, .. } if x.len() == 32 && y.len() == 32 => {
                (CoseType::Es256, [x.as_slice(), y.as_slice()].concat())
            }
            CoseKey::Okp { crv: curve::ED25519, x, .. } if x.len() == 32 => (CoseType::Eddsa, x.clone()),
            CoseKey::Rsa { n, e, .. } if n.len() == 256 && e.len() <= 3 && !e.is_empty() => {
                let mut pk = n.clone();
                pk.extend(std::iter::repeat_n(0u8, 3 - e.len()));
                pk.extend_from_slice(e);
                (CoseType::Rs256, pk)
            }
            _ => return Err("pam-u2f authfiles hold ES256, EdDSA or RS256 (2048-bit) keys only"),
        };
        Ok(Credential { key_handle, public_key, cose_type, options, old_format: false })
    }

    /// The field as written to the authfile: new format
    /// (`KeyHandle,UserKey,CoseType,Options`), or old format for an old
    /// credential (so that rewriting a line keeps its meaning).
    pub fn to_field(&self) -> String {
        if self.old_format
            && let KeyHandle::Id(id) = &self.key_handle
        {
            let hex: String = self.public_key.iter().map(|b| format!("{b:02x}")).collect();
            return format!("{},{}", general_purpose::URL_SAFE_NO_PAD.encode(id), hex);
        }
        let kh = match &self.key_handle {
            KeyHandle::Resident => "*".to_owned(),
            KeyHandle::Id(id) => general_purpose::STANDARD.encode(id),
        };
        format!(
            "{kh},{},{},{}",
            general_purpose::STANDARD.encode(&self.public_key),
            self.cose_type.as_str(),
            self.options
        )
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes().chunks_exact(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// Parse one credential field (`KeyHandle,UserKey[,CoseType[,Options]]`).
pub fn parse_credential(field: &str) -> Result<Credential, &'static str> {
    if field.len() > MAX_FIELD_LEN {
        return Err("credential field too long");
    }
    let mut parts = field.split(',').filter(|p| !p.is_empty());
    let kh = parts.next().ok_or("missing key handle")?;
    let pk = parts.next().ok_or("missing public key")?;
    let Some(type_) = parts.next() else {
        // Old format: URL-safe base64 key handle, hex public key, ES256, +presence.
        let id = URL_SAFE_LENIENT.decode(kh).map_err(|_| "key handle is not base64")?;
        let public_key = hex_decode(pk).ok_or("old-format public key is not hex")?;
        if public_key.len() != 65 || public_key.first() != Some(&0x04) {
            return Err("old-format public key is not an uncompressed P-256 point");
        }
        return Ok(Credential {
            key_handle: KeyHandle::Id(id),
            public_key,
            cose_type: CoseType::Es256,
            options: CredentialOptions { presence: true, ..Default::default() },
            old_format: true,
        });
    };
    let options = CredentialOptions::parse(parts.next().unwrap_or(""));
    let key_handle = if kh == "*" {
        KeyHandle::Resident
    } else {
        KeyHandle::Id(STANDARD_LENIENT.decode(kh).map_err(|_| "key handle is not base64")?)
    };
    let public_key = STANDARD_LENIENT.decode(pk).map_err(|_| "public key is not base64")?;
    let cose_type = CoseType::parse(type_).ok_or("unknown COSE type (es256, eddsa, rs256)")?;
    let c = Credential { key_handle, public_key, cose_type, options, old_format: false };
    c.cose_key()?;
    Ok(c)
}

/// The credentials of `user` in an authfile's contents: the last line whose
/// first field is `user`, at most `max_devices` credentials of it. An empty
/// list means the user has no line (or a line without credentials).
pub fn credentials_for(content: &[u8], user: &str, max_devices: usize) -> Result<Vec<Credential>, AuthfileError> {
    let mut found: Option<&[u8]> = None;
    for line in content.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut fields = line.split(|&b| b == b':').filter(|f| !f.is_empty());
        if fields.next() == Some(user.as_bytes()) {
            found = Some(line);
        }
    }
    let Some(line) = found else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, field) in line.split(|&b| b == b':').filter(|f| !f.is_empty()).skip(1).enumerate() {
        if out.len() >= max_devices {
            break;
        }
        let malformed = |reason| AuthfileError::Malformed { index: i + 1, reason };
        let field = std::str::from_utf8(field).map_err(|_| malformed("not UTF-8"))?;
        out.push(parse_credential(field).map_err(malformed)?);
    }
    Ok(out)
}

/// A whole line: `user:cred1:cred2...` (no newline).
pub fn format_line(user: &str, credentials: &[Credential]) -> String {
    let mut s = user.to_owned();
    for c in credentials {
        s.push(':');
        s.push_str(&c.to_field());
    }
    s
}

/// What is known about an opened file, for [`check_permissions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    /// A regular file.
    pub is_file: bool,
    /// `st_mode`.
    pub mode: u32,
    /// `st_uid`.
    pub uid: u32,
}

/// The permission rule: a regular file, owned by the user or root, and not
/// writable by group or others. (pam-u2f refuses other owners and only warns
/// about group/other write; hwkey refuses both: whoever can write the file
/// can add their own key.)
pub fn check_permissions(f: &FileFacts, user_uid: u32) -> Result<(), AuthfileError> {
    if !f.is_file {
        return Err(AuthfileError::NotRegularFile);
    }
    if f.uid != user_uid && f.uid != 0 {
        return Err(AuthfileError::BadOwner { owner: f.uid, user: user_uid });
    }
    if f.mode & 0o022 != 0 {
        return Err(AuthfileError::TooOpen { mode: f.mode & 0o7777 });
    }
    Ok(())
}

/// Open and read an authfile for the user with `user_uid`, applying
/// [`check_permissions`] to the opened file (no race between the check and
/// the read). The open never blocks (a FIFO is refused, not waited on).
pub fn read_authfile(path: &Path, user_uid: u32) -> Result<Vec<u8>, AuthfileError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AuthfileError::NotFound,
            _ => AuthfileError::Io(e.to_string()),
        })?;
    let meta = file.metadata().map_err(|e| AuthfileError::Io(e.to_string()))?;
    check_permissions(&FileFacts { is_file: meta.is_file(), mode: meta.mode(), uid: meta.uid() }, user_uid)?;
    if meta.len() > MAX_AUTHFILE_SIZE {
        return Err(AuthfileError::TooLarge);
    }
    let mut buf = Vec::new();
    file.take(MAX_AUTHFILE_SIZE + 1).read_to_end(&mut buf).map_err(|e| AuthfileError::Io(e.to_string()))?;
    if buf.len() as u64 > MAX_AUTHFILE_SIZE {
        return Err(AuthfileError::TooLarge);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // A line in the form pamu2fcfg prints (pamu2fcfg(1), pam_u2f(8)): a 64-byte
    // key handle and the 64-byte x||y public key in standard base64, then the options.
    const PAMU2FCFG_ES256: &str = "alice:7ubdY2S/oAZwNIqX+ON7HrbF6baL9PvD/tk7cYcsyZtbFA5hC0j/fhaSIfIirZ1/npfo3B3DBe2/seZHy2/cEg==,SychlEYD4FUAsE43vlKKAzLYPjbdQ4zQiIriRT6Y+pc2A3xF7LxmpBrDzz6hcwcdYtYSB+VJEkVmZtgC71OJlQ==,es256,+presence";

    #[test]
    fn pamu2fcfg_es256_line() {
        let c = credentials_for(PAMU2FCFG_ES256.as_bytes(), "alice", DEFAULT_MAX_DEVICES).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].cose_type, CoseType::Es256);
        assert_eq!(c[0].options, CredentialOptions { presence: true, ..Default::default() });
        assert!(!c[0].old_format);
        assert!(matches!(&c[0].key_handle, KeyHandle::Id(id) if !id.is_empty()));
        assert!(matches!(c[0].cose_key().unwrap(), CoseKey::Ec2 { ref x, .. } if x.len() == 32));
        // Writing it back gives the same line.
        assert_eq!(format_line("alice", &c), PAMU2FCFG_ES256);
    }

    #[test]
    fn several_keys_resident_and_options() {
        let ed = general_purpose::STANDARD.encode([7u8; 32]);
        let es = general_purpose::STANDARD.encode([9u8; 64]);
        let line = format!("bob:*,{ed},eddsa,+presence+pin:AAEC,{es},ES256,+verification:AwQ=,{es},es256,\n");
        let c = credentials_for(line.as_bytes(), "bob", DEFAULT_MAX_DEVICES).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].key_handle, KeyHandle::Resident);
        assert_eq!(c[0].options, CredentialOptions { presence: true, pin: true, verification: false });
        assert_eq!(c[1].key_handle, KeyHandle::Id(vec![0, 1, 2]));
        assert_eq!(c[1].options, CredentialOptions { verification: true, ..Default::default() });
        // Empty options: no +presence (pamu2fcfg -P).
        assert_eq!(c[2].options, CredentialOptions::default());
        assert_eq!(c[2].key_handle, KeyHandle::Id(vec![3, 4]));
    }

    #[test]
    fn old_format_u2f_line() {
        let mut point = vec![0x04];
        point.extend([0x11u8; 64]);
        let hex: String = point.iter().map(|b| format!("{b:02x}")).collect();
        // URL-safe alphabet, no padding, as pamu2fcfg 1.0.x wrote it.
        let kh = general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff, 0xfe, 0x01]);
        assert!(kh.contains('-') || kh.contains('_'));
        let file = format!("carol:{kh},{hex}\n");
        let c = credentials_for(file.as_bytes(), "carol", DEFAULT_MAX_DEVICES).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c[0].old_format);
        assert_eq!(c[0].key_handle, KeyHandle::Id(vec![0xfb, 0xff, 0xfe, 0x01]));
        assert_eq!(c[0].options, CredentialOptions { presence: true, ..Default::default() });
        assert!(c[0].cose_key().is_ok());
        assert_eq!(format!("carol:{}", c[0].to_field()), file.trim_end());
    }

    #[test]
    fn central_file_last_line_wins_and_other_users() {
        let a = general_purpose::STANDARD.encode([1u8; 64]);
        let file = format!(
            "root:AAAA,{a},es256,+presence\nalice:AQ==,{a},es256,+presence\nalicex:Ag==,{a},es256,\nalice:Aw==,{a},es256,+pin\n"
        );
        let c = credentials_for(file.as_bytes(), "alice", DEFAULT_MAX_DEVICES).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key_handle, KeyHandle::Id(vec![3]));
        assert!(c[0].options.pin && !c[0].options.presence);
        assert!(credentials_for(file.as_bytes(), "dave", DEFAULT_MAX_DEVICES).unwrap().is_empty());
        assert!(credentials_for(file.as_bytes(), "alic", DEFAULT_MAX_DEVICES).unwrap().is_empty());
    }

    #[test]
    fn max_devices_and_malformed() {
        let a = general_purpose::STANDARD.encode([1u8; 64]);
        let f = format!("u:AQ==,{a},es256,:Ag==,{a},es256,:Aw==,{a},es256,");
        assert_eq!(credentials_for(f.as_bytes(), "u", 2).unwrap().len(), 2);
        for bad in [
            format!("u:AQ==,{a},es512,"),
            "u:AQ==,AAAA,es256,".to_owned(),
            format!("u:@@@,{a},es256,"),
            "u:AQ==".to_owned(),
            "u:AQ==,zz".to_owned(),
        ] {
            let e = credentials_for(bad.as_bytes(), "u", 24).unwrap_err();
            assert_eq!(e.code(), "authfile_malformed", "{bad}");
        }
        // A malformed line of another user does not matter.
        assert!(credentials_for(b"v:garbage\nu:", "u", 24).unwrap().is_empty());
    }

    #[test]
    fn permission_rule() {
        let ok = FileFacts { is_file: true, mode: 0o100644, uid: 1000 };
        assert!(check_permissions(&ok, 1000).is_ok());
        assert!(check_permissions(&FileFacts { uid: 0, ..ok }, 1000).is_ok());
        assert_eq!(check_permissions(&FileFacts { uid: 1001, ..ok }, 1000).unwrap_err().code(), "authfile_bad_owner");
        assert_eq!(
            check_permissions(&FileFacts { mode: 0o100664, ..ok }, 1000).unwrap_err().code(),
            "authfile_too_open"
        );
        assert_eq!(
            check_permissions(&FileFacts { mode: 0o100646, ..ok }, 1000).unwrap_err().code(),
            "authfile_too_open"
        );
        assert_eq!(
            check_permissions(&FileFacts { is_file: false, ..ok }, 1000).unwrap_err().code(),
            "authfile_not_regular"
        );
    }

    #[test]
    fn read_authfile_checks_the_opened_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hwkey-authfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("u2f_keys");
        std::fs::write(&p, "u:\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let me = std::fs::metadata(&p).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap();
        assert_eq!(read_authfile(&p, me).unwrap(), b"u:\n");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(read_authfile(&p, me).unwrap_err().code(), "authfile_too_open");
        assert_eq!(read_authfile(&dir.join("missing"), me).unwrap_err(), AuthfileError::NotFound);
        assert_eq!(read_authfile(&dir, me).unwrap_err(), AuthfileError::NotRegularFile);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn from_cose_key_round_trip() {
        let k = CoseKey::Ec2 { alg: Some(CoseAlgorithm::ES256), crv: curve::P256, x: vec![1; 32], y: vec![2; 32] };
        let c = Credential::from_cose_key(KeyHandle::Id(vec![5; 16]), &k, CredentialOptions::parse("+presence+pin"))
            .unwrap();
        let back = parse_credential(&c.to_field()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.cose_key().unwrap(), k);
        let ed = CoseKey::Okp { alg: Some(CoseAlgorithm::EDDSA), crv: curve::ED25519, x: vec![3; 32] };
        let c = Credential::from_cose_key(KeyHandle::Resident, &ed, CredentialOptions::default()).unwrap();
        assert!(c.to_field().starts_with("*,"));
        assert_eq!(parse_credential(&c.to_field()).unwrap(), c);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), user in "[a-z:]{0,6}") {
            let _ = credentials_for(&bytes, &user, DEFAULT_MAX_DEVICES);
        }

        #[test]
        fn structured_noise_never_panics(s in "([a-z]{1,3}:)?([A-Za-z0-9+/=*_,:-]{0,90}[\n]?){0,8}") {
            for user in ["a", "ab", "abc"] {
                if let Ok(creds) = credentials_for(s.as_bytes(), user, 4) {
                    for c in creds {
                        let _ = c.cose_key();
                        prop_assert!(parse_credential(&c.to_field()).is_ok());
                    }
                }
            }
        }
    }
}

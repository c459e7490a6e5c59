//! Secrets at rest: TOTP secrets and the session-signing secret are stored
//! sealed with AES-256-GCM under a key-encryption key that the database
//! does not hold (CONTRACTS §2.1, `--secret-key-file`).
//!
//! A sealed value is
//!
//! ```text
//! "hwkS" | version (1, = 1) | key id (8) | nonce (12) | ciphertext | tag (16)
//! ```
//!
//! with the additional authenticated data `"hwkey-secret-v1" | purpose |
//! 0x00 | row key`, so a value copied to another row (another user's TOTP
//! secret) or to another purpose does not open. The key id is the first 8
//! bytes of SHA-256 over a label and the key: it names the key without
//! revealing it, and lets a [`SecretKeyring`] of several keys open values
//! sealed under an older one.
//!
//! **Key file** (`--secret-key-file`, mode 0600): one key per line, 64 hex
//! digits; blank lines and lines starting with `#` are ignored. The first
//! key seals; the others only open. **Rotation**: put a new key on the
//! first line, keep the old ones below it, restart: on start
//! [`migrate`] re-seals every value under the first key (and seals values
//! stored in the clear by older versions); then the old lines can go.
//! [`SecretKeyring::load_or_create`] makes a file with one fresh key when
//! there is none.

use crate::crypto::CryptoProvider;
use crate::store::StoreError;
use crate::store::account::{AccountStore, SecretTable};
use std::path::Path;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"hwkS";
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER: usize = 4 + 1 + KEY_ID_LEN + NONCE_LEN;
const AAD_LABEL: &[u8] = b"hwkey-secret-v1";

/// What a sealed value is for (part of its AAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A TOTP secret (pending or confirmed), row key: the user handle.
    Totp,
    /// A server secret, row key: its name.
    ServerSecret,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Totp => b"totp-secret",
            Purpose::ServerSecret => b"server-secret",
        }
    }
}

/// Why a secret could not be sealed or opened, or a key file not read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The value is sealed under a key that is not in the keyring.
    #[error("a stored secret is sealed under key {0}, which the secret key file does not hold")]
    UnknownKey(String),
    /// The value does not open (damaged, moved to another row, or a wrong key).
    #[error("a stored secret does not open with its key (damaged, or moved from another row)")]
    Corrupt,
    /// The key file is unreadable or malformed.
    #[error("secret key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The crypto provider failed.
    #[error("encryption failed")]
    Crypto,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Key {
    id: [u8; KEY_ID_LEN],
    key: Zeroizing<[u8; 32]>,
}

/// The key-encryption keys: the first seals, all open.
pub struct SecretKeyring {
    keys: Vec<Key>,
    provider: &'static dyn CryptoProvider,
}

impl std::fmt::Debug for SecretKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| hex(&k.id)).collect();
        f.debug_struct("SecretKeyring").field("key_ids", &ids).finish_non_exhaustive()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Zeroizing<[u8; 32]>> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *out.get_mut(i)? = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl SecretKeyring {
    fn from_keys(keys: Vec<Zeroizing<[u8; 32]>>) -> Self {
        let provider = crate::crypto::default_provider();
        let keys = keys
            .into_iter()
            .map(|key| {
                let d = provider.sha256(&[b"hwkey-secret-key-id-v1", &key[..]]);
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(&d[..KEY_ID_LEN]);
                Key { id, key }
            })
            .collect();
        SecretKeyring { keys, provider }
    }

    /// A keyring of the one key `key`.
    pub fn from_key(key: Zeroizing<[u8; 32]>) -> Self {
        Self::from_keys(vec![key])
    }

    /// A keyring of one fresh random key held only in memory (tests, or a
    /// server whose database is in memory too).
    pub fn ephemeral() -> Result<Self, SecretError> {
        let mut k = Zeroizing::new([0u8; 32]);
        crate::crypto::default_provider().fill_random(&mut k[..]).map_err(|_| SecretError::Crypto)?;
        Ok(Self::from_keys(vec![k]))
    }

    /// A keyring from key-file text (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(unhex(line).ok_or_else(|| format!("line {} is not 64 hex digits", n + 1))?);
        }
        if keys.is_empty() {
            return Err("holds no key".into());
        }
        Ok(Self::from_keys(keys))
    }

    /// Read the key file at `path`.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let err = |reason: String| SecretError::KeyFile { path: path.display().to_string(), reason };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        Self::parse(&text).map_err(err)
    }

    /// Read the key file at `path`, or create it (mode 0600, one fresh key)
    /// when it does not exist; true when it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let err = |reason: String| SecretError::KeyFile { path: path.display().to_string(), reason };
        let mut k = Zeroizing::new([0u8; 32]);
        crate::crypto::default_provider().fill_random(&mut k[..]).map_err(|_| SecretError::Crypto)?;
        let text = Zeroizing::new(format!(
            "# hwkey secret key (AES-256-GCM key-encryption key). Keep it secret and backed up:\n\
             # without it the stored TOTP secrets and sessions cannot be read.\n{}\n",
            hex(&k[..])
        ));
        write_private(path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
        Ok((Self::from_keys(vec![k]), true))
    }

    /// The id of the sealing key, in hex.
    pub fn current_key_id(&self) -> String {
        self.keys.first().map(|k| hex(&k.id)).unwrap_or_default()
    }

    fn aad(purpose: Purpose, row: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_LABEL.len() + 16 + row.len());
        aad.extend_from_slice(AAD_LABEL);
        aad.extend_from_slice(purpose.label());
        aad.push(0);
        aad.extend_from_slice(row);
        aad
    }

    /// Seal `plain` for `purpose` in row `row` under the first key.
    pub fn seal(&self, purpose: Purpose, row: &[u8], plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let key = self.keys.first().ok_or(SecretError::Crypto)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.provider.fill_random(&mut nonce).map_err(|_| SecretError::Crypto)?;
        let sealed = self
            .provider
            .aes256_gcm_seal(&key.key[..], &nonce, &Self::aad(purpose, row), plain)
            .map_err(|_| SecretError::Crypto)?;
        let mut out = Vec::with_capacity(HEADER + sealed.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Whether `stored` has the sealed layout (otherwise it is a value from
    /// before encryption, in the clear).
    pub fn is_sealed(stored: &[u8]) -> bool {
        stored.len() >= HEADER + TAG_LEN && stored.starts_with(MAGIC) && stored.get(4) == Some(&VERSION)
    }

    fn key_id(stored: &[u8]) -> Option<&[u8]> {
        stored.get(5..5 + KEY_ID_LEN)
    }

    /// Whether `stored` is sealed under the current key.
    pub fn is_current(&self, stored: &[u8]) -> bool {
        Self::is_sealed(stored) && Self::key_id(stored) == self.keys.first().map(|k| &k.id[..])
    }

    /// Open a value sealed by [`SecretKeyring::seal`] for `purpose` in `row`.
    pub fn open(&self, purpose: Purpose, row: &[u8], stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        if !Self::is_sealed(stored) {
            return Err(SecretError::Corrupt);
        }
        let id = Self::key_id(stored).ok_or(SecretError::Corrupt)?;
        let key = self.keys.iter().find(|k| k.id[..] == *id).ok_or_else(|| SecretError::UnknownKey(hex(id)))?;
        let nonce: [u8; NONCE_LEN] =
            stored.get(5 + KEY_ID_LEN..HEADER).and_then(|n| n.try_into().ok()).ok_or(SecretError::Corrupt)?;
        let body = stored.get(HEADER..).ok_or(SecretError::Corrupt)?;
        let plain = self
            .provider
            .aes256_gcm_open(&key.key[..], &nonce, &Self::aad(purpose, row), body)
            .map_err(|_| SecretError::Corrupt)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Values found in the clear and sealed.
    pub sealed_clear: u64,
    /// Values sealed under an older key and re-sealed under the current one.
    pub rotated: u64,
}

fn purpose_of(t: SecretTable) -> Purpose {
    match t {
        SecretTable::Totp | SecretTable::TotpPending => Purpose::Totp,
        SecretTable::ServerSecret => Purpose::ServerSecret,
    }
}

/// Seal every TOTP and server secret stored in the clear, and re-seal under
/// the current key every one sealed under an older key (the rotate path).
/// Each row changes by compare-and-set, so concurrent starts do no harm.
/// Fails on a value sealed under a key the keyring does not hold.
pub async fn migrate<S: AccountStore>(store: &S, keys: &SecretKeyring) -> Result<MigrationReport, SecretError> {
    let mut report = MigrationReport::default();
    for table in [SecretTable::ServerSecret, SecretTable::Totp, SecretTable::TotpPending] {
        let purpose = purpose_of(table);
        for (row, stored) in store.secret_rows(table).await? {
            let stored = Zeroizing::new(stored);
            if keys.is_current(&stored) {
                continue;
            }
            let (plain, clear) = if SecretKeyring::is_sealed(&stored) {
                (keys.open(purpose, &row, &stored)?, false)
            } else {
                (Zeroizing::new(stored.to_vec()), true)
            };
            let sealed = keys.seal(purpose, &row, &plain)?;
            if store.replace_secret(table, &row, &stored, &sealed).await? {
                if clear {
                    report.sealed_clear += 1;
                } else {
                    report.rotated += 1;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_row_and_purpose() {
        let k = SecretKeyring::ephemeral().expect("keyring");
        let s = k.seal(Purpose::Totp, b"user-1", b"secret bytes").expect("seal");
        assert!(SecretKeyring::is_sealed(&s) && k.is_current(&s));
        assert_eq!(&k.open(Purpose::Totp, b"user-1", &s).expect("open")[..], b"secret bytes");
        assert!(k.open(Purpose::Totp, b"user-2", &s).is_err(), "another row");
        assert!(k.open(Purpose::ServerSecret, b"user-1", &s).is_err(), "another purpose");
        let mut bad = s.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(k.open(Purpose::Totp, b"user-1", &bad).is_err(), "tampered");
        assert!(!s.windows(12).any(|w| w == b"secret bytes"));
    }

    #[test]
    fn an_older_key_still_opens_and_an_unknown_one_is_named() {
        let old = "1111111111111111111111111111111111111111111111111111111111111111";
        let new = "2222222222222222222222222222222222222222222222222222222222222222";
        let k_old = SecretKeyring::parse(old).expect("old");
        let s = k_old.seal(Purpose::ServerSecret, b"n", b"x").expect("seal");
        let both = SecretKeyring::parse(&format!("# rotated\n{new}\n\n{old}\n")).expect("both");
        assert!(!both.is_current(&s));
        assert_eq!(&both.open(Purpose::ServerSecret, b"n", &s).expect("open")[..], b"x");
        let only_new = SecretKeyring::parse(new).expect("new");
        assert!(matches!(only_new.open(Purpose::ServerSecret, b"n", &s), Err(SecretError::UnknownKey(_))));
        assert!(SecretKeyring::parse("abc").is_err());
        assert!(SecretKeyring::parse("# nothing\n").is_err());
    }

    #[test]
    fn a_created_key_file_is_private_and_loads_again() {
        let dir = std::env::temp_dir().join(format!("hwkey-secrets-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("key");
        let _ = std::fs::remove_file(&path);
        let (k, created) = SecretKeyring::load_or_create(&path).expect("create");
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = SecretKeyring::load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(k.current_key_id(), again.current_key_id());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

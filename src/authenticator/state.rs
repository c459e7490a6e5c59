//! Persistent state of the software authenticator and its crash-safe storage.
//!
//! The state is one serde JSON document ([`PersistentState`]). [`Store::save`]
//! writes it atomically: a temporary file in the same directory, `fsync`,
//! `rename` over the old file, `fsync` of the directory. A crash at any point
//! leaves either the old or the new document, never a mix, so a credential
//! the authenticator has reported as created is never lost or corrupted (the
//! authenticator saves before it answers).
//!
//! Secrets (the master key, private keys, the PIN hash, large-blob keys) are
//! held in [`Secret`], zeroized on drop.
//!
//! Non-resident credentials are not stored at all: their credential ID is
//! the sealed credential ([`seal_credential_id`]): AES-256-GCM under the
//! device master key, with the RP ID hash as associated data, so an ID
//! presented for another RP fails to open.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, CryptoProvider, HashAlg, SecretBytes};

/// Errors loading or saving state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid state document.
    #[error("state file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Generating keys failed.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

impl StateError {
    /// A stable snake_case identifier.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "state_io",
            Self::Invalid { .. } => "state_invalid",
            Self::Crypto(_) => "crypto_error",
        }
    }
}

mod hex_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        if !s.len().is_multiple_of(2) {
            return None;
        }
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
    }
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

/// Public bytes, hex in JSON.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(#[serde(with = "hex_serde")] pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", hex_serde::encode(&self.0))
    }
}

/// Secret bytes, hex in JSON, zeroized on drop, never printed.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(#[serde(with = "secret_serde")] pub SecretBytes);

mod secret_serde {
    use super::hex_serde;
    use serde::{Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(b: &Zeroizing<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let h = Zeroizing::new(hex_serde::encode(b));
        s.serialize_str(&h)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        use serde::Deserialize;
        let s = Zeroizing::new(String::deserialize(d)?);
        hex_serde::decode(&s).map(Zeroizing::new).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Secret {
    /// Wrap secret bytes.
    pub fn new(b: SecretBytes) -> Self {
        Secret(b)
    }
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The attestation CA and batch certificate with its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttestationMaterial {
    /// Self-signed attestation root (DER): the trust anchor for relying parties.
    pub root_cert: Bytes,
    /// Batch attestation certificate (DER), signed by the root.
    pub cert: Bytes,
    /// The batch certificate's P-256 private scalar.
    pub key: Secret,
}

/// The PIN as stored: LEFT(SHA-256(PIN), 16) and its length in code points.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPin {
    /// LEFT(SHA-256(PIN), 16).
    pub hash: Secret,
    /// Length in Unicode code points (checked against minPINLength).
    pub code_points: u32,
}

/// Credential key algorithms this authenticator creates. Every private key
/// is 32 bytes: a P-256 scalar, an Ed25519 seed, or an ML-DSA seed ξ
/// (FIPS 204; the key pair is expanded from it for each use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialAlg {
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
    /// Ed25519 (COSE -8).
    EdDsa,
    /// ECDSA P-256 with SHA-256 under its fully specified id ESP256 (COSE -9, RFC 9864).
    Esp256,
    /// Ed25519 under its fully specified id (COSE -19, RFC 9864).
    Ed25519,
    /// ML-DSA-44 (COSE -48, RFC 9964).
    MlDsa44,
    /// ML-DSA-65 (COSE -49, RFC 9964).
    MlDsa65,
    /// ML-DSA-87 (COSE -50, RFC 9964).
    MlDsa87,
}

impl CredentialAlg {
    /// Every algorithm, in the order getInfo lists them.
    pub const ALL: [CredentialAlg; 7] =
        [Self::Es256, Self::EdDsa, Self::Esp256, Self::Ed25519, Self::MlDsa44, Self::MlDsa65, Self::MlDsa87];

    /// The COSE algorithm identifier.
    pub fn cose(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::EdDsa => -8,
            Self::Esp256 => -9,
            Self::Ed25519 => -19,
            Self::MlDsa44 => -48,
            Self::MlDsa65 => -49,
            Self::MlDsa87 => -50,
        }
    }
    /// From a COSE algorithm identifier.
    pub fn from_cose(a: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.cose() == a)
    }
    fn byte(self) -> u8 {
        match self {
            Self::Es256 => 1,
            Self::EdDsa => 2,
            Self::Esp256 => 3,
            Self::Ed25519 => 4,
            Self::MlDsa44 => 5,
            Self::MlDsa65 => 6,
            Self::MlDsa87 => 7,
        }
    }
    fn from_byte(b: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.byte() == b)
    }
}

/// A credential: discoverable ones are stored, others are recovered from
/// their sealed ID with `resident = false` and no user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCredential {
    /// Credential ID.
    pub id: Bytes,
    /// RP ID.
    pub rp_id: String,
    /// RP name.
    #[serde(default)]
    pub rp_name: Option<String>,
    /// User handle.
    #[serde(default)]
    pub user_id: Bytes,
    /// User name.
    #[serde(default)]
    pub user_name: Option<String>,
    /// User display name.
    #[serde(default)]
    pub user_display_name: Option<String>,
    /// Key algorithm.
    pub alg: CredentialAlg,
    /// Private key (P-256 scalar or Ed25519 seed).
    pub private_key: Secret,
    /// credProtect level (1..=3).
    pub cred_protect: u8,
    /// Created with hmac-secret.
    #[serde(default)]
    pub hmac_secret: bool,
    /// credBlob.
    #[serde(default)]
    pub cred_blob: Option<Bytes>,
    /// largeBlobKey.
    #[serde(default)]
    pub large_blob_key: Option<Secret>,
    /// Creation order (larger is newer).
    #[serde(default)]
    pub created: u64,
    /// Discoverable (stored) credential.
    #[serde(default = "yes")]
    pub resident: bool,
    /// Enabled for third-party payments (thirdPartyPayment, CTAP 2.2).
    #[serde(default)]
    pub third_party_payment: bool,
}

fn yes() -> bool {
    true
}

/// Everything the authenticator keeps across power cycles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistentState {
    /// Format version (1).
    pub version: u32,
    /// The AAGUID.
    pub aaguid: Bytes,
    /// Master key sealing non-resident credential IDs; replaced by reset.
    pub master_key: Secret,
    /// Attestation certificates and key.
    pub attestation: AttestationMaterial,
    /// The PIN, when set.
    #[serde(default)]
    pub pin: Option<StoredPin>,
    /// PIN retries left (8 when fresh).
    pub pin_retries: u8,
    /// Minimum PIN length in code points.
    pub min_pin_length: u8,
    /// RP IDs allowed to read minPinLength.
    #[serde(default)]
    pub min_pin_length_rp_ids: Vec<String>,
    /// The PIN must be changed before a token is issued.
    #[serde(default)]
    pub force_pin_change: bool,
    /// alwaysUv.
    #[serde(default)]
    pub always_uv: bool,
    /// Global signature counter.
    pub sign_count: u32,
    /// Discoverable credentials.
    #[serde(default)]
    pub credentials: Vec<StoredCredential>,
    /// The serialized large-blob array.
    pub large_blob_array: Bytes,
    /// Next creation sequence number.
    #[serde(default)]
    pub next_created: u64,
    /// Enrolled fingerprints of the simulated sensor (built-in UV).
    #[serde(default)]
    pub enrollments: Vec<StoredEnrollment>,
    /// Built-in UV retries left ([`UV_RETRIES`] when fresh).
    #[serde(default = "fresh_uv_retries")]
    pub uv_retries: u8,
    /// The persistent pinUvAuthToken (CTAP 2.2, permission `pcmr`): survives
    /// power cycles; renewed by a PIN change and by reset.
    #[serde(default)]
    pub persistent_token: Option<Secret>,
    /// The device identifier encIdentifier encrypts (16 bytes); renewed by reset.
    #[serde(default)]
    pub device_identifier: Option<Bytes>,
    /// Enterprise attestation enabled (authenticatorConfig); reset disables it.
    #[serde(default)]
    pub enterprise_attestation: bool,
    /// Built-in UV matches since the PIN was last entered (uvCountSinceLastPinEntry).
    #[serde(default)]
    pub uv_count_since_pin: u64,
    /// The PIN complexity policy was turned on by setMinPINLength (CTAP 2.2);
    /// reset turns it off.
    #[serde(default)]
    pub pin_complexity_policy: bool,
}

/// An enrolled fingerprint: its template ID and friendly name (the simulated
/// sensor keeps no biometric data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEnrollment {
    /// templateId.
    pub template_id: Bytes,
    /// templateFriendlyName (empty when never named).
    #[serde(default)]
    pub friendly_name: String,
}

fn fresh_uv_retries() -> u8 {
    UV_RETRIES
}

/// Default PIN retries.
pub const PIN_RETRIES: u8 = 8;
fn random_secret(provider: &dyn CryptoProvider, n: usize) -> Result<SecretBytes, CryptoError> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    provider.fill_random(&mut b)?;
    Ok(b)
}

/// Built-in UV retries (maxUvRetries) of a fresh authenticator.
pub const UV_RETRIES: u8 = 5;
/// Default minimum PIN length.
pub const DEFAULT_MIN_PIN_LENGTH: u8 = 4;

impl PersistentState {
    /// A fresh state: new master key, new attestation CA and batch certificate.
    pub fn generate(provider: &dyn CryptoProvider, aaguid: [u8; 16]) -> Result<Self, StateError> {
        let mut master = Zeroizing::new(vec![0u8; 32]);
        provider.fill_random(&mut master)?;
        let attestation = super::cert::generate_attestation(provider, &aaguid)?;
        Ok(Self {
            version: 1,
            aaguid: Bytes(aaguid.to_vec()),
            master_key: Secret(master),
            attestation,
            pin: None,
            pin_retries: PIN_RETRIES,
            min_pin_length: DEFAULT_MIN_PIN_LENGTH,
            min_pin_length_rp_ids: Vec::new(),
            force_pin_change: false,
            always_uv: false,
            sign_count: 0,
            credentials: Vec::new(),
            large_blob_array: Bytes(crate::proto::ctap2::large_blobs::EMPTY_LARGE_BLOB_ARRAY.to_vec()),
            next_created: 1,
            enrollments: Vec::new(),
            uv_retries: UV_RETRIES,
            persistent_token: Some(Secret(random_secret(provider, 32)?)),
            device_identifier: Some(Bytes(random_secret(provider, 16)?.to_vec())),
            enterprise_attestation: false,
            uv_count_since_pin: 0,
            pin_complexity_policy: false,
        })
    }

    /// Factory reset: everything but the AAGUID and attestation is renewed.
    pub fn reset(&mut self, provider: &dyn CryptoProvider) -> Result<(), StateError> {
        let mut master = Zeroizing::new(vec![0u8; 32]);
        provider.fill_random(&mut master)?;
        self.master_key = Secret(master);
        self.pin = None;
        self.pin_retries = PIN_RETRIES;
        self.min_pin_length = DEFAULT_MIN_PIN_LENGTH;
        self.min_pin_length_rp_ids.clear();
        self.force_pin_change = false;
        self.always_uv = false;
        self.credentials.clear();
        self.enrollments.clear();
        self.uv_retries = UV_RETRIES;
        self.persistent_token = Some(Secret(random_secret(provider, 32)?));
        self.device_identifier = Some(Bytes(random_secret(provider, 16)?.to_vec()));
        self.enterprise_attestation = false;
        self.uv_count_since_pin = 0;
        self.pin_complexity_policy = false;
        self.large_blob_array = Bytes(crate::proto::ctap2::large_blobs::EMPTY_LARGE_BLOB_ARRAY.to_vec());
        Ok(())
    }

    /// Fill in what a state file written before CTAP 2.2 support lacks
    /// (the persistent token, the device identifier); true if anything changed.
    pub fn upgrade(&mut self, provider: &dyn CryptoProvider) -> Result<bool, StateError> {
        let mut changed = false;
        if self.persistent_token.is_none() {
            self.persistent_token = Some(Secret(random_secret(provider, 32)?));
            changed = true;
        }
        if self.device_identifier.is_none() {
            self.device_identifier = Some(Bytes(random_secret(provider, 16)?.to_vec()));
            changed = true;
        }
        Ok(changed)
    }

    fn validate(&self) -> Result<(), &'static str> {
        if self.version != 1 {
            return Err("unsupported version");
        }
        if self.aaguid.0.len() != 16 || self.master_key.0.len() != 32 || self.attestation.key.0.len() != 32 {
            return Err("key or AAGUID has the wrong length");
        }
        if self.pin.as_ref().is_some_and(|p| p.hash.0.len() != 16) {
            return Err("PIN hash has the wrong length");
        }
        if self.credentials.iter().any(|c| c.private_key.0.len() != 32 || c.id.0.is_empty()) {
            return Err("credential key has the wrong length");
        }
        if self.persistent_token.as_ref().is_some_and(|t| t.0.len() != 32)
            || self.device_identifier.as_ref().is_some_and(|d| d.0.len() != 16)
        {
            return Err("persistent token or device identifier has the wrong length");
        }
        if self.enrollments.iter().any(|e| e.template_id.0.is_empty() || e.template_id.0.len() > 32) {
            return Err("fingerprint template ID has the wrong length");
        }
        Ok(())
    }
}

/// Where state lives: a file, or nowhere (in memory only).
#[derive(Debug, Clone, Default)]
pub struct Store {
    path: Option<PathBuf>,
}

impl Store {
    /// State kept in memory only.
    pub fn memory() -> Self {
        Store { path: None }
    }
    /// State kept in `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Store { path: Some(path.into()) }
    }
    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Load the state, `None` if there is no file yet.
    pub fn load(&self) -> Result<Option<PersistentState>, StateError> {
        let Some(path) = &self.path else { return Ok(None) };
        let text = match fs::read(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path: path.clone(), source }),
        };
        let state: PersistentState = serde_json::from_slice(&text)
            .map_err(|e| StateError::Invalid { path: path.clone(), message: e.to_string() })?;
        state.validate().map_err(|m| StateError::Invalid { path: path.clone(), message: m.to_owned() })?;
        Ok(Some(state))
    }

    /// Save atomically (temp file, fsync, rename, fsync directory).
    pub fn save(&self, state: &PersistentState) -> Result<(), StateError> {
        let Some(path) = &self.path else { return Ok(()) };
        let io = |source| StateError::Io { path: path.clone(), source };
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(state)
                .map_err(|e| StateError::Invalid { path: path.clone(), message: e.to_string() })?,
        );
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{}.{seq}", std::process::id()));
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let result = (|| {
            let mut f = opts.open(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            #[cfg(unix)]
            File::open(&dir)?.sync_all()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io)
    }
}

const ID_VERSION: u8 = 1;
const ID_AAD_LABEL: &[u8] = b"hwkey credential id v1";

/// The fields sealed into a non-resident credential ID.
pub struct SealedFields<'a> {
    /// Key algorithm.
    pub alg: CredentialAlg,
    /// credProtect level.
    pub cred_protect: u8,
    /// hmac-secret enabled.
    pub hmac_secret: bool,
    /// Private key (32 bytes: scalar or seed).
    pub private_key: &'a [u8],
    /// credBlob (at most 255 bytes).
    pub cred_blob: Option<&'a [u8]>,
    /// A discoverable credential (its ID dies when it is deleted).
    pub resident: bool,
    /// Enabled for third-party payments.
    pub third_party_payment: bool,
}

/// Seal a credential into its ID: `0x01 || nonce(12) || AES-256-GCM(master,
/// nonce, aad = label || rpIdHash, alg | credProtect | flags | key | blobLen | blob)`.
pub fn seal_credential_id(
    provider: &dyn CryptoProvider,
    master_key: &[u8],
    rp_id_hash: &[u8; 32],
    f: &SealedFields<'_>,
) -> Result<Vec<u8>, CryptoError> {
    let blob = f.cred_blob.unwrap_or(&[]);
    if blob.len() > 255 || f.private_key.len() != 32 {
        return Err(CryptoError::InvalidInput("credential too large to seal"));
    }
    let mut pt = Zeroizing::new(Vec::with_capacity(40 + blob.len()));
    let flags = u8::from(f.hmac_secret)
        | if f.cred_blob.is_some() { 2 } else { 0 }
        | if f.resident { 4 } else { 0 }
        | if f.third_party_payment { 8 } else { 0 };
    pt.extend_from_slice(&[f.alg.byte(), f.cred_protect, flags]);
    pt.extend_from_slice(f.private_key);
    pt.push(blob.len() as u8);
    pt.extend_from_slice(blob);
    let mut nonce = [0u8; 12];
    provider.fill_random(&mut nonce)?;
    let aad = [ID_AAD_LABEL, rp_id_hash.as_slice()].concat();
    let sealed = provider.aes256_gcm_seal(master_key, &nonce, &aad, &pt)?;
    let mut id = vec![ID_VERSION];
    id.extend_from_slice(&nonce);
    id.extend_from_slice(&sealed);
    Ok(id)
}

/// Open a sealed credential ID for this RP; `None` if it is not one of ours
/// or belongs to another RP.
pub fn open_credential_id(
    provider: &dyn CryptoProvider,
    master_key: &[u8],
    rp_id_hash: &[u8; 32],
    rp_id: &str,
    id: &[u8],
) -> Option<StoredCredential> {
    let (&ver, rest) = id.split_first()?;
    if ver != ID_VERSION || rest.len() < 12 + 16 {
        return None;
    }
    let (nonce, sealed) = rest.split_at(12);
    let mut n = [0u8; 12];
    n.copy_from_slice(nonce);
    let aad = [ID_AAD_LABEL, rp_id_hash.as_slice()].concat();
    let pt = provider.aes256_gcm_open(master_key, &n, &aad, sealed).ok()?;
    let alg = CredentialAlg::from_byte(*pt.first()?)?;
    let cred_protect = *pt.get(1)?;
    let flags = *pt.get(2)?;
    let key = pt.get(3..35)?;
    let blob_len = *pt.get(35)? as usize;
    let blob = pt.get(36..36 + blob_len)?;
    Some(StoredCredential {
        id: Bytes(id.to_vec()),
        rp_id: rp_id.to_owned(),
        rp_name: None,
        user_id: Bytes::default(),
        user_name: None,
        user_display_name: None,
        alg,
        private_key: Secret(Zeroizing::new(key.to_vec())),
        cred_protect,
        hmac_secret: flags & 1 != 0,
        cred_blob: (flags & 2 != 0).then(|| Bytes(blob.to_vec())),
        large_blob_key: None,
        created: 0,
        resident: flags & 4 != 0,
        third_party_payment: flags & 8 != 0,
    })
}

/// CredRandom for hmac-secret, derived from the master key and the
/// credential's private key (one value with UV, another without).
pub fn cred_random(provider: &dyn CryptoProvider, master_key: &[u8], private_key: &[u8], uv: bool) -> SecretBytes {
    Zeroizing::new(provider.hmac(HashAlg::Sha256, master_key, &[b"hwkey CredRandom", &[u8::from(uv)], private_key]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    #[test]
    fn sealed_ids_are_bound_to_the_rp() {
        let p = default_provider();
        let master = [7u8; 32];
        let key = [9u8; 32];
        let f = SealedFields {
            alg: CredentialAlg::EdDsa,
            cred_protect: 2,
            hmac_secret: true,
            private_key: &key,
            cred_blob: Some(b"blob"),
            resident: false,
            third_party_payment: true,
        };
        let id = seal_credential_id(p, &master, &[1; 32], &f).unwrap();
        let c = open_credential_id(p, &master, &[1; 32], "a.example", &id).unwrap();
        assert_eq!(c.alg, CredentialAlg::EdDsa);
        assert_eq!(c.cred_protect, 2);
        assert!(c.hmac_secret);
        assert_eq!(c.private_key.bytes(), &key);
        assert_eq!(c.cred_blob.unwrap().0, b"blob");
        assert!(c.third_party_payment && !c.resident);
        assert!(open_credential_id(p, &master, &[2; 32], "b.example", &id).is_none());
        assert!(open_credential_id(p, &[8; 32], &[1; 32], "a.example", &id).is_none());
        assert!(open_credential_id(p, &master, &[1; 32], "a.example", &id[..20]).is_none());
    }

    #[test]
    fn save_and_load() {
        let p = default_provider();
        let dir = std::env::temp_dir().join(format!("hwkey-state-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let store = Store::file(dir.join("state.json"));
        assert!(store.load().unwrap().is_none());
        let s = PersistentState::generate(p, [3; 16]).unwrap();
        store.save(&s).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.master_key.bytes(), s.master_key.bytes());
        assert_eq!(back.attestation.cert, s.attestation.cert);
        // A crash between writing the temporary file and renaming it leaves
        // a stray temporary file: the state is the old one, intact.
        fs::write(dir.join(".state.json.tmp.1.0"), b"{half written").unwrap();
        assert_eq!(store.load().unwrap().unwrap().master_key.bytes(), s.master_key.bytes());
        fs::write(dir.join("state.json"), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(StateError::Invalid { .. })));
        let _ = fs::remove_dir_all(&dir);
    }
}

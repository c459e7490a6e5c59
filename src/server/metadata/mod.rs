//! Authenticator metadata: the FIDO Metadata Service (MDS3) BLOB, verified
//! and indexed, and the attestation policy decided from it.
//!
//! - [`jws`]: the BLOB's JWS envelope, its signature and its `x5c` chain to
//!   the metadata root ([`default_roots`]: GlobalSign Root CA - R3 and Root
//!   R46, bundled).
//! - [`statement`]: the payload, its entries and metadata statements.
//! - [`status`]: authenticator status values and what each one refuses.
//! - [`policy`]: `any`, `metadata`, `certified` and an AAGUID allow-list:
//!   what a registration's attestation must show, and the authenticator's
//!   name, icon and certification for the result.
//! - [`passkey_providers`]: a bundled list of passkey-provider AAGUIDs and
//!   names, so that "iCloud Keychain" is shown without any attestation.
//!
//! A statement's `attestationRootCertificates` are trust anchors for *that*
//! entry only: a chain from vendor A's root that claims vendor B's AAGUID
//! reaches none of B's roots and is refused. They are never added to the
//! relying party's global anchors.
//!
//! [`MetadataService`] holds the BLOB in force; [`MetadataService::reload`]
//! swaps in a newer one only when it verifies and its serial number `no` is
//! greater, and keeps the old one otherwise. Loading reads bytes the caller
//! supplies (a file): nothing here touches the network.
//!
//! ```no_run
//! use hwkey::server::metadata::{MetadataService, default_roots};
//! use std::time::SystemTime;
//! let blob = std::fs::read("blob.jwt")?;
//! let mds = MetadataService::load(hwkey::crypto::default_provider(), &blob, default_roots(), SystemTime::now())?;
//! println!("MDS BLOB #{} with {} entries", mds.current().serial(), mds.current().len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod jws;
pub mod passkey_providers;
pub mod policy;
pub mod statement;
pub mod status;

pub use policy::{AttestationRequirement, AuthenticatorInfo, MetadataRefusal, decide};
pub use status::AuthenticatorStatus;

use crate::crypto::{CryptoProvider, HashAlg};
use crate::proto::auth_data::aaguid_from_string;
use crate::server::cert::ParsedCert;
use base64::Engine;
use statement::{BlobPayload, MetadataEntry, StatusReport, parse_date_days};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The bundled metadata roots (PEM).
pub const DEFAULT_ROOTS_PEM: &str = include_str!("mds_roots.pem");

/// The bundled metadata roots, DER: GlobalSign Root CA - R3 and GlobalSign
/// Root R46 (the MDS3 BLOB's chain ends in either).
pub fn default_roots() -> Vec<Vec<u8>> {
    crate::server::trust::certificates_from_pem(DEFAULT_ROOTS_PEM).unwrap_or_default()
}

/// Why a BLOB was not loaded. Each variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The BLOB is over [`jws::MAX_BLOB_LEN`].
    #[error("the metadata BLOB is too large")]
    TooLarge,
    /// The JWS or its payload is not well formed.
    #[error("malformed metadata BLOB: {0}")]
    Malformed(String),
    /// The header's `alg` is not ES256, RS256 or PS256.
    #[error("unsupported JWS algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The `x5c` chain does not validate to the metadata root.
    #[error("the BLOB's certificate chain is not trusted: {0}")]
    Untrusted(String),
    /// The signature does not verify under the chain's leaf key.
    #[error("the BLOB's signature does not verify")]
    BadSignature,
    /// A reload offered a BLOB whose `no` is not greater than the one in force.
    #[error("BLOB number {offered} is not newer than {current}")]
    NotNewer {
        /// The serial number in force.
        current: u64,
        /// The serial number offered.
        offered: u64,
    },
}

impl MetadataError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "metadata_too_large",
            Self::Malformed(_) => "metadata_malformed",
            Self::UnsupportedAlgorithm(_) => "metadata_unsupported_algorithm",
            Self::Untrusted(_) => "metadata_untrusted",
            Self::BadSignature => "metadata_bad_signature",
            Self::NotNewer { .. } => "metadata_not_newer",
        }
    }
}

/// One authenticator model of the BLOB, ready for lookups.
#[derive(Debug, Clone)]
pub struct Entry {
    /// FIDO2: the AAGUID.
    pub aaguid: Option<[u8; 16]>,
    /// UAF: the AAID.
    pub aaid: Option<String>,
    /// U2F: lowercase hex SHA-1 of attestation certificate public keys.
    pub key_identifiers: Vec<String>,
    /// The statement's description.
    pub name: String,
    /// The statement's icon (`data:` URL).
    pub icon: Option<String>,
    /// The statement's attestation roots (DER): anchors for this entry only.
    pub roots: Vec<Vec<u8>>,
    /// Status reports.
    pub status_reports: Vec<StatusReport>,
}

impl Entry {
    fn from_json(e: MetadataEntry) -> Option<Entry> {
        let aaguid = match &e.aaguid {
            Some(s) => Some(aaguid_from_string(s)?),
            None => None,
        };
        let std_b64 = base64::engine::general_purpose::STANDARD;
        let (name, icon, roots) = match e.metadata_statement {
            Some(st) => {
                let roots = st
                    .attestation_root_certificates
                    .iter()
                    .filter_map(|c| std_b64.decode(c.trim()).ok())
                    .filter(|der| ParsedCert::parse(der).is_ok())
                    .collect();
                (st.description, st.icon, roots)
            }
            None => (String::new(), None, Vec::new()),
        };
        Some(Entry {
            aaguid,
            aaid: e.aaid,
            key_identifiers: e.attestation_certificate_key_identifiers.iter().map(|k| k.to_ascii_lowercase()).collect(),
            name,
            icon,
            roots,
            status_reports: e.status_reports,
        })
    }

    /// Reports in effect on `today` (days since the epoch), in date order
    /// (reports without a date count as in effect, in BLOB order).
    fn reports_in_effect(&self, today: i64) -> Vec<&StatusReport> {
        let mut v: Vec<(i64, usize, &StatusReport)> = self
            .status_reports
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let d = r.effective_date.as_deref().and_then(parse_date_days).unwrap_or(i64::MIN);
                (d <= today).then_some((d, i, r))
            })
            .collect();
        v.sort_by_key(|(d, i, _)| (*d, *i));
        v.into_iter().map(|(_, _, r)| r).collect()
    }

    /// The status that refuses a new credential of this model, if any: a
    /// REVOKED or compromise report in effect (an attestation-key compromise
    /// naming one certificate refuses only chains that hold it).
    pub fn refusal(&self, chain: &[Vec<u8>], today: i64) -> Option<AuthenticatorStatus> {
        let std_b64 = base64::engine::general_purpose::STANDARD;
        self.reports_in_effect(today).into_iter().find_map(|r| {
            if !r.status.refuses() {
                return None;
            }
            if r.status == AuthenticatorStatus::AttestationKeyCompromise
                && let Some(c) = r.certificate.as_deref().and_then(|c| std_b64.decode(c.trim()).ok())
                && !chain.contains(&c)
            {
                return None;
            }
            Some(r.status.clone())
        })
    }

    /// The certification in force: the latest FIDO_CERTIFIED* report, unless
    /// a later report says NOT_FIDO_CERTIFIED or refuses.
    pub fn certification(&self, today: i64) -> Option<AuthenticatorStatus> {
        let mut current = None;
        for r in self.reports_in_effect(today) {
            if r.status.is_certified() {
                current = Some(r.status.clone());
            } else if r.status == AuthenticatorStatus::NotFidoCertified
                || (r.status.refuses()
                    && !(r.status == AuthenticatorStatus::AttestationKeyCompromise && r.certificate.is_some()))
            {
                // A compromise of one named attestation certificate does not
                // decertify the model; the chains holding it are refused.
                current = None;
            }
        }
        current
    }
}

/// A verified, indexed MDS3 BLOB.
#[derive(Debug, Clone)]
pub struct Metadata {
    no: u64,
    next_update_days: Option<i64>,
    entries: Vec<Entry>,
    by_aaguid: HashMap<[u8; 16], usize>,
    by_key_id: HashMap<String, usize>,
    by_aaid: HashMap<String, usize>,
    skipped: usize,
}

/// Days since the Unix epoch at `t`.
pub(crate) fn days(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| (d.as_secs() / 86_400) as i64).unwrap_or(0)
}

impl Metadata {
    /// Verify `blob` (the JWS as downloaded) against `roots` at `now`, and
    /// index its entries.
    pub fn from_blob(
        provider: &dyn CryptoProvider,
        blob: &[u8],
        roots: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<Metadata, MetadataError> {
        let now_unix = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let jws = jws::verify_compact(provider, blob, roots, now_unix)?;
        let payload: BlobPayload =
            serde_json::from_slice(&jws.payload).map_err(|e| MetadataError::Malformed(format!("payload: {e}")))?;
        let mut md = Metadata {
            no: payload.no,
            next_update_days: parse_date_days(&payload.next_update),
            entries: Vec::with_capacity(payload.entries.len()),
            by_aaguid: HashMap::new(),
            by_key_id: HashMap::new(),
            by_aaid: HashMap::new(),
            skipped: 0,
        };
        for raw in payload.entries {
            let Some(entry) = serde_json::from_value::<MetadataEntry>(raw).ok().and_then(Entry::from_json) else {
                md.skipped += 1;
                continue;
            };
            let i = md.entries.len();
            if let Some(a) = entry.aaguid {
                md.by_aaguid.insert(a, i);
            }
            for k in &entry.key_identifiers {
                md.by_key_id.insert(k.clone(), i);
            }
            if let Some(a) = &entry.aaid {
                md.by_aaid.insert(a.clone(), i);
            }
            md.entries.push(entry);
        }
        Ok(md)
    }

    /// The BLOB's serial number.
    pub fn serial(&self) -> u64 {
        self.no
    }

    /// How many entries were indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries that did not parse and were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// `nextUpdate` as days since the epoch (None when unreadable).
    pub fn next_update_days(&self) -> Option<i64> {
        self.next_update_days
    }

    /// Past its `nextUpdate` (or the date is unreadable): a newer BLOB
    /// should be downloaded. The entries stay in use; this is reported, not
    /// refused.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        self.next_update_days.is_none_or(|d| days(now) > d)
    }

    /// The entry of a FIDO2 AAGUID.
    pub fn by_aaguid(&self, aaguid: &[u8; 16]) -> Option<&Entry> {
        self.by_aaguid.get(aaguid).and_then(|&i| self.entries.get(i))
    }

    /// The entry of a UAF AAID.
    pub fn by_aaid(&self, aaid: &str) -> Option<&Entry> {
        self.by_aaid.get(aaid).and_then(|&i| self.entries.get(i))
    }

    /// The entry of a U2F attestation certificate (by its key identifier).
    pub fn by_certificate(&self, provider: &dyn CryptoProvider, cert_der: &[u8]) -> Option<&Entry> {
        let id = attestation_key_identifier(provider, cert_der)?;
        self.by_key_id.get(&id).and_then(|&i| self.entries.get(i))
    }

    /// The entry an attestation speaks for: by AAGUID when it is not zero,
    /// else by the key identifier of the chain's leaf (U2F).
    pub fn for_attestation(
        &self,
        provider: &dyn CryptoProvider,
        aaguid: &[u8; 16],
        chain: &[Vec<u8>],
    ) -> Option<&Entry> {
        if *aaguid != [0u8; 16] {
            return self.by_aaguid(aaguid);
        }
        chain.first().and_then(|leaf| self.by_certificate(provider, leaf))
    }
}

/// The `attestationCertificateKeyIdentifier` of a certificate: lowercase hex
/// SHA-1 of its subjectPublicKey BIT STRING's bytes (MDS3 §3.1.6).
pub fn attestation_key_identifier(provider: &dyn CryptoProvider, cert_der: &[u8]) -> Option<String> {
    let cert = ParsedCert::parse(cert_der).ok()?;
    let bits = cert.cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let d = provider.digest(HashAlg::Sha1, &[bits]);
    Some(d.iter().map(|b| format!("{b:02x}")).collect())
}

/// The BLOB in force, replaceable at run time by a newer one.
#[derive(Debug)]
pub struct MetadataService {
    provider: &'static dyn CryptoProvider,
    roots: Vec<Vec<u8>>,
    current: RwLock<Arc<Metadata>>,
}

impl MetadataService {
    /// Verify and load the first BLOB.
    pub fn load(
        provider: &'static dyn CryptoProvider,
        blob: &[u8],
        roots: Vec<Vec<u8>>,
        now: SystemTime,
    ) -> Result<MetadataService, MetadataError> {
        let md = Metadata::from_blob(provider, blob, &roots, now)?;
        Ok(MetadataService { provider, roots, current: RwLock::new(Arc::new(md)) })
    }

    /// The BLOB in force.
    pub fn current(&self) -> Arc<Metadata> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Replace the BLOB in force with `blob` if it verifies and its `no` is
    /// greater; otherwise keep the old one and say why. Returns the new
    /// serial number.
    pub fn reload(&self, blob: &[u8], now: SystemTime) -> Result<u64, MetadataError> {
        let md = Metadata::from_blob(self.provider, blob, &self.roots, now)?;
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if md.no <= g.no {
            return Err(MetadataError::NotNewer { current: g.no, offered: md.no });
        }
        let no = md.no;
        *g = Arc::new(md);
        Ok(no)
    }
}

//! Authenticator data (WebAuthn L3 §6.1): rpIdHash, flags, signCount,
//! attested credential data and extension outputs.

use super::cbor::{self, CborError, Value};
use super::cose::{CoseError, CoseKey};

/// The flags byte of authenticator data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// User present (bit 0).
    pub const UP: u8 = 0x01;
    /// User verified (bit 2).
    pub const UV: u8 = 0x04;
    /// Backup eligible (bit 3).
    pub const BE: u8 = 0x08;
    /// Backup state (bit 4).
    pub const BS: u8 = 0x10;
    /// Attested credential data included (bit 6).
    pub const AT: u8 = 0x40;
    /// Extension data included (bit 7).
    pub const ED: u8 = 0x80;

    /// User present.
    pub fn up(self) -> bool {
        self.0 & Self::UP != 0
    }
    /// User verified.
    pub fn uv(self) -> bool {
        self.0 & Self::UV != 0
    }
    /// Backup eligible.
    pub fn be(self) -> bool {
        self.0 & Self::BE != 0
    }
    /// Backed up.
    pub fn bs(self) -> bool {
        self.0 & Self::BS != 0
    }
    /// Attested credential data present.
    pub fn at(self) -> bool {
        self.0 & Self::AT != 0
    }
    /// Extensions present.
    pub fn ed(self) -> bool {
        self.0 & Self::ED != 0
    }
}

/// Why authenticator data could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthDataError {
    /// Shorter than the fixed 37 bytes, or shorter than a length inside says.
    #[error("authenticator data truncated: {0}")]
    Truncated(&'static str),
    /// The credential public key is not a valid COSE key.
    #[error("credential public key: {0}")]
    PublicKey(#[from] CoseError),
    /// The extensions are not a CBOR map.
    #[error("extension data: {0}")]
    Extensions(CborError),
    /// The extensions item is not a map with text keys.
    #[error("extension data is not a map with text keys")]
    ExtensionsNotMap,
    /// Bytes remain that no flag accounts for.
    #[error("{0} trailing bytes in authenticator data")]
    TrailingBytes(usize),
}

/// Attested credential data (WebAuthn L3 §6.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredentialData {
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// The credential ID (up to 65535 bytes on the wire; relying parties limit it to 1023).
    pub credential_id: Vec<u8>,
    /// The credential public key.
    pub public_key: CoseKey,
    /// The exact CBOR bytes of the public key as the authenticator sent them.
    pub public_key_bytes: Vec<u8>,
}

/// Parsed authenticator data. The raw bytes are kept: signatures cover them.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// Flags.
    pub flags: Flags,
    /// Signature counter.
    pub sign_count: u32,
    /// Present when the AT flag is set.
    pub attested_credential: Option<AttestedCredentialData>,
    /// Authenticator extension outputs, present when the ED flag is set.
    pub extensions: Option<Value>,
}

impl AuthenticatorData {
    /// Parse strictly: lengths checked, no trailing bytes.
    pub fn parse(b: &[u8]) -> Result<Self, AuthDataError> {
        if b.len() < 37 {
            return Err(AuthDataError::Truncated("fewer than 37 bytes"));
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&b[..32]);
        let flags = Flags(b[32]);
        let sign_count = u32::from_be_bytes([b[33], b[34], b[35], b[36]]);
        let mut pos = 37;
        let attested_credential = if flags.at() {
            if b.len() < pos + 18 {
                return Err(AuthDataError::Truncated("attested credential data header"));
            }
            let mut aaguid = [0u8; 16];
            aaguid.copy_from_slice(&b[pos..pos + 16]);
            let id_len = u16::from_be_bytes([b[pos + 16], b[pos + 17]]) as usize;
            pos += 18;
            if b.len() < pos + id_len {
                return Err(AuthDataError::Truncated("credential ID"));
            }
            let credential_id = b[pos..pos + id_len].to_vec();
            pos += id_len;
            let (v, used) = cbor::decode_prefix(&b[pos..]).map_err(|e| AuthDataError::PublicKey(CoseError::Cbor(e)))?;
            let public_key = CoseKey::from_value(&v)?;
            let public_key_bytes = b[pos..pos + used].to_vec();
            pos += used;
            Some(AttestedCredentialData { aaguid, credential_id, public_key, public_key_bytes })
        } else {
            None
        };
        let extensions = if flags.ed() {
            let (v, used) = cbor::decode_prefix(&b[pos..]).map_err(AuthDataError::Extensions)?;
            match &v {
                Value::Map(m) if m.iter().all(|(k, _)| matches!(k, Value::Text(_))) => {}
                _ => return Err(AuthDataError::ExtensionsNotMap),
            }
            pos += used;
            Some(v)
        } else {
            None
        };
        if pos != b.len() {
            return Err(AuthDataError::TrailingBytes(b.len() - pos));
        }
        Ok(AuthenticatorData { rp_id_hash, flags, sign_count, attested_credential, extensions })
    }

    /// Encode; the AT and ED flags are set from the presence of the parts.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = self.flags.0 & !(Flags::AT | Flags::ED);
        if self.attested_credential.is_some() {
            flags |= Flags::AT;
        }
        if self.extensions.is_some() {
            flags |= Flags::ED;
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&self.rp_id_hash);
        out.push(flags);
        out.extend_from_slice(&self.sign_count.to_be_bytes());
        if let Some(acd) = &self.attested_credential {
            out.extend_from_slice(&acd.aaguid);
            out.extend_from_slice(&(acd.credential_id.len().min(u16::MAX as usize) as u16).to_be_bytes());
            out.extend_from_slice(&acd.credential_id[..acd.credential_id.len().min(u16::MAX as usize)]);
            out.extend_from_slice(&acd.public_key_bytes);
        }
        if let Some(ext) = &self.extensions {
            out.extend_from_slice(&ext.to_vec());
        }
        out
    }

    /// An extension output by its identifier.
    pub fn extension(&self, id: &str) -> Option<&Value> {
        self.extensions.as_ref()?.get_text(id)
    }
}

/// Format an AAGUID as a UUID string (8-4-4-4-12, lowercase).
pub fn aaguid_to_string(a: &[u8; 16]) -> String {
    let h: String = a.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Parse a UUID string into AAGUID bytes.
pub fn aaguid_from_string(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

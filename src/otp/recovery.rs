//! Recovery codes: the way back in when the key or phone is lost.
//!
//! [`RecoveryCodes::generate`] makes `n` codes of 16 base32 characters (80
//! bits each, shown as `XXXX-XXXX-XXXX-XXXX`) and returns them once, for the
//! user to write down, together with a [`RecoveryCodes`] set that holds only
//! their Argon2id hashes (PHC strings) and is what the server stores.
//! [`RecoveryCodes::redeem`] accepts each code once: the matched hash is
//! removed. The alphabet leaves out the look-alikes `O`, `I`, `L` and `U`;
//! input is normalized (case, spaces and hyphens ignored, `O` read as `0`,
//! `I` and `L` as `1`), so formatting slips do not matter.

use super::OtpError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use zeroize::Zeroizing;

/// Alphabet of recovery codes: 32 symbols without 0/O, 1/I/L, U.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKMNPQRSTVWXYZ0123456789";
/// Characters per code (5 bits each: 80 bits).
const CODE_LEN: usize = 16;

/// Errors of recovery code handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The code is not one of the unused codes.
    #[error("recovery code is not valid or was already used")]
    Invalid,
    /// The input does not look like a recovery code.
    #[error("recovery code must be {CODE_LEN} characters from the code alphabet (hyphens and spaces ignored)")]
    Malformed,
    /// Hashing failed or a stored hash is unreadable.
    #[error("recovery code hashing: {0}")]
    Hash(String),
    /// The random source failed.
    #[error("random source failed")]
    Rng,
}

impl From<OtpError> for RecoveryError {
    fn from(_: OtpError) -> Self {
        RecoveryError::Rng
    }
}

/// A stored set of recovery codes: Argon2id PHC hashes of the unused codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryCodes {
    /// PHC strings (`$argon2id$v=19$...`), one per unused code.
    pub hashes: Vec<String>,
}

/// A plaintext recovery code, zeroized on drop.
pub type RecoveryCode = Zeroizing<String>;

impl RecoveryCodes {
    /// Generate `n` codes (at least 1, at most 100). Returns the plaintext
    /// codes to show to the user once, and the set of hashes to store.
    pub fn generate(n: usize) -> Result<(Vec<RecoveryCode>, RecoveryCodes), RecoveryError> {
        let n = n.clamp(1, 100);
        let mut codes = Vec::with_capacity(n);
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            let mut raw = Zeroizing::new([0u8; CODE_LEN]);
            crate::crypto::default_provider().fill_random(&mut raw[..]).map_err(|_| RecoveryError::Rng)?;
            let norm: Zeroizing<String> =
                Zeroizing::new(raw.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect());
            hashes.push(hash(&norm)?);
            let mut shown = Zeroizing::new(String::with_capacity(CODE_LEN + 3));
            for (i, c) in norm.chars().enumerate() {
                if i > 0 && i % 4 == 0 {
                    shown.push('-');
                }
                shown.push(c);
            }
            codes.push(shown);
        }
        Ok((codes, RecoveryCodes { hashes }))
    }

    /// Number of unused codes.
    pub fn remaining(&self) -> usize {
        self.hashes.len()
    }

    /// Redeem `code`: if it matches an unused code, that code is removed
    /// (persist `self` afterwards) and `Ok` is returned; otherwise
    /// [`RecoveryError::Invalid`].
    pub fn redeem(&mut self, code: &str) -> Result<(), RecoveryError> {
        let norm = normalize(code)?;
        let mut found = None;
        for (i, h) in self.hashes.iter().enumerate() {
            let Ok(parsed) = PasswordHash::new(h) else { continue };
            if Argon2::default().verify_password(norm.as_bytes(), &parsed).is_ok() {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => {
                self.hashes.remove(i);
                Ok(())
            }
            None => Err(RecoveryError::Invalid),
        }
    }
}

fn hash(code: &str) -> Result<String, RecoveryError> {
    let mut salt = [0u8; 16];
    crate::crypto::default_provider().fill_random(&mut salt).map_err(|_| RecoveryError::Rng)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| RecoveryError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(code.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| RecoveryError::Hash(e.to_string()))
}

/// Upper-case, drop spaces and hyphens, map look-alikes (O→0, I/L→1 are not
/// in the alphabet, so O reads as 0 and I, L as 1), and check the shape.
fn normalize(code: &str) -> Result<Zeroizing<String>, RecoveryError> {
    let mut out = Zeroizing::new(String::with_capacity(CODE_LEN));
    for c in code.chars() {
        let c = c.to_ascii_uppercase();
        let c = match c {
            ' ' | '-' | '\t' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || out.len() >= CODE_LEN {
            return Err(RecoveryError::Malformed);
        }
        out.push(c);
    }
    if out.len() != CODE_LEN {
        return Err(RecoveryError::Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_works_once() {
        let (codes, mut set) = RecoveryCodes::generate(3).unwrap();
        assert_eq!(codes.len(), 3);
        assert!(set.hashes.iter().all(|h| h.starts_with("$argon2id$")));
        assert!(set.hashes.iter().all(|h| !h.contains(codes[0].as_str())));
        set.redeem(&codes[1].to_lowercase()).unwrap();
        assert_eq!(set.redeem(&codes[1]), Err(RecoveryError::Invalid));
        assert_eq!(set.remaining(), 2);
        assert_eq!(set.redeem("nope"), Err(RecoveryError::Malformed));
        set.redeem(&codes[0].replace('-', " ")).unwrap();
    }
}

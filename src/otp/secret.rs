//! OTP shared secrets: generation, base32 import and export.
//!
//! New secrets have [`OtpSecret::DEFAULT_LEN`] bytes (160 bits, RFC 4226's
//! recommendation) or more. Imported secrets are decoded leniently
//! (case-insensitive base32, spaces and `=` padding allowed) and a secret
//! under 128 bits (RFC 4226's minimum) is accepted but comes with a
//! [`SecretWarning`], so old enrollments keep working while the caller can
//! tell the user.

use super::OtpError;
use zeroize::Zeroizing;

/// A warning about an imported secret that was accepted anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWarning {
    /// The secret is shorter than the 128 bits RFC 4226 requires.
    Short {
        /// Its length in bits.
        bits: usize,
    },
}

impl std::fmt::Display for SecretWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretWarning::Short { bits } => {
                write!(f, "the secret is only {bits} bits long; RFC 4226 requires at least 128 (160 recommended)")
            }
        }
    }
}

/// An OTP shared secret. Zeroized on drop; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpSecret(Zeroizing<Vec<u8>>);

/// A secret decoded from user input, with a warning if it is weak.
#[derive(Debug, Clone)]
pub struct ImportedSecret {
    /// The secret.
    pub secret: OtpSecret,
    /// Set when the secret is accepted but weak.
    pub warning: Option<SecretWarning>,
}

impl std::fmt::Debug for OtpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OtpSecret({} bytes)", self.0.len())
    }
}

impl OtpSecret {
    /// Length of a generated secret: 20 bytes (160 bits).
    pub const DEFAULT_LEN: usize = 20;
    /// Shortest secret accepted without a warning: 16 bytes (128 bits).
    pub const MIN_RECOMMENDED_LEN: usize = 16;

    /// A fresh random secret of 160 bits.
    pub fn generate() -> Result<OtpSecret, OtpError> {
        Self::generate_len(Self::DEFAULT_LEN)
    }

    /// A fresh random secret of `len` bytes, raised to at least 20 bytes.
    pub fn generate_len(len: usize) -> Result<OtpSecret, OtpError> {
        let mut v = Zeroizing::new(vec![0u8; len.max(Self::DEFAULT_LEN)]);
        crate::crypto::default_provider().fill_random(&mut v).map_err(|_| OtpError::Rng)?;
        Ok(OtpSecret(v))
    }

    /// Wrap raw secret bytes (must not be empty).
    pub fn from_bytes(bytes: &[u8]) -> Result<OtpSecret, OtpError> {
        if bytes.is_empty() {
            return Err(OtpError::EmptySecret);
        }
        Ok(OtpSecret(Zeroizing::new(bytes.to_vec())))
    }

    /// Decode a base32 secret (RFC 4648 alphabet, case-insensitive, spaces,
    /// hyphens and `=` padding ignored). Short secrets are accepted with a
    /// warning.
    pub fn import_base32(text: &str) -> Result<ImportedSecret, OtpError> {
        let secret = Self::from_base32(text)?;
        let warning = secret.warning();
        Ok(ImportedSecret { secret, warning })
    }

    /// Decode a base32 secret without the warning (see [`Self::import_base32`]).
    pub fn from_base32(text: &str) -> Result<OtpSecret, OtpError> {
        let mut clean = Zeroizing::new(String::with_capacity(text.len()));
        for c in text.chars() {
            match c {
                ' ' | '\t' | '-' => {}
                'a'..='z' => clean.push(c.to_ascii_uppercase()),
                'A'..='Z' | '2'..='7' => clean.push(c),
                '=' => {}
                '0' | '1' | '8' | '9' => {
                    return Err(OtpError::InvalidBase32("digits 0, 1, 8 and 9 are not base32"));
                }
                _ => return Err(OtpError::InvalidBase32("invalid character")),
            }
        }
        // Padding may only come at the end.
        let trimmed = text.trim_end_matches(|c: char| c == '=' || c.is_whitespace());
        if trimmed.contains('=') {
            return Err(OtpError::InvalidBase32("'=' padding inside the secret"));
        }
        if clean.is_empty() {
            return Err(OtpError::EmptySecret);
        }
        let bytes = base32_decoder()
            .decode(clean.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| OtpError::InvalidBase32("invalid length"))?;
        if bytes.is_empty() {
            return Err(OtpError::EmptySecret);
        }
        Ok(OtpSecret(bytes))
    }

    /// Canonical base32: upper case, no padding (as otpauth URIs carry it).
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bits.
    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }

    /// A warning if the secret is under 128 bits.
    pub fn warning(&self) -> Option<SecretWarning> {
        (self.0.len() < Self::MIN_RECOMMENDED_LEN).then(|| SecretWarning::Short { bits: self.bits() })
    }
}

/// Base32 without padding and without the trailing-bits check: many
/// authenticator apps emit secrets whose last character has stray low bits.
fn base32_decoder() -> data_encoding::Encoding {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.check_trailing_bits = false;
    // The specification is a constant valid one; fall back to the strict
    // standard decoder rather than panic should that ever change.
    spec.encoding().unwrap_or(data_encoding::BASE32_NOPAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_base32() {
        let a = OtpSecret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        let b = OtpSecret::from_base32("jbsw y3dp ehpk 3pxp").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        let c = OtpSecret::from_base32("GEZDGNBVGY3TQOJQ======").unwrap();
        assert_eq!(c.as_bytes(), b"1234567890");
    }

    #[test]
    fn short_secret_warns() {
        let s = OtpSecret::import_base32("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(s.warning, Some(SecretWarning::Short { bits: 80 }));
        let g = OtpSecret::generate().unwrap();
        assert!(g.bits() >= 160);
        assert_eq!(g.warning(), None);
        let again = OtpSecret::import_base32(&g.to_base32()).unwrap();
        assert_eq!(again.secret, g);
        assert!(again.warning.is_none());
    }

    #[test]
    fn bad_base32() {
        assert!(matches!(OtpSecret::from_base32("JBSW1"), Err(OtpError::InvalidBase32(_))));
        assert!(matches!(OtpSecret::from_base32("A"), Err(OtpError::InvalidBase32(_))));
        assert!(matches!(OtpSecret::from_base32("JB=SWY3DP"), Err(OtpError::InvalidBase32(_))));
        assert!(matches!(OtpSecret::from_base32("é"), Err(OtpError::InvalidBase32(_))));
        assert_eq!(OtpSecret::from_base32(" = "), Err(OtpError::EmptySecret));
    }
}

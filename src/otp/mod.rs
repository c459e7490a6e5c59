//! One-time passwords and the fallback factors around them (feature `otp`).
//!
//! - [`hotp`]: RFC 4226 counter-based codes, with a look-ahead window.
//! - [`totp`]: RFC 6238 time-based codes (SHA-1/256/512, 6 to 8 digits, any
//!   period of at least one second), a validity window and replay protection:
//!   a time step is accepted at most once per account, through a
//!   `last_used_step` the caller persists.
//! - [`uri`]: the `otpauth://` Key URI Format, parsed and built.
//! - [`qr`]: QR codes for enrollment, rendered for terminals, as SVG and PNG.
//! - [`secret`]: shared secrets (generated with 160 bits or more; imported
//!   secrets under 128 bits are accepted with a warning).
//! - [`recovery`]: single-use recovery codes stored only as Argon2id hashes.
//!
//! Every comparison of a submitted code with an expected one is constant time,
//! and secrets are zeroized when dropped. All HMACs come from
//! [`crate::crypto::default_provider`].

pub mod hotp;
pub mod qr;
pub mod recovery;
pub mod secret;
pub mod totp;
pub mod uri;

pub use hotp::Hotp;
pub use secret::{ImportedSecret, OtpSecret, SecretWarning};
pub use totp::Totp;
pub use uri::{KeyUri, OtpKind};

use crate::crypto::HashAlg;

/// Errors of the OTP module. Messages never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// The digit count is outside 6..=8.
    #[error("invalid number of digits {0}: must be 6, 7 or 8")]
    InvalidDigits(i64),
    /// The TOTP period is under one second.
    #[error("invalid period {0}: must be at least 1 second")]
    InvalidPeriod(i64),
    /// A negative Unix time was given.
    #[error("invalid time {0}: must not be negative")]
    NegativeTime(i64),
    /// The time is before the TOTP epoch `t0`.
    #[error("time {time} is before the TOTP epoch T0 = {t0}")]
    BeforeEpoch {
        /// The time given.
        time: u64,
        /// The configured epoch.
        t0: u64,
    },
    /// The algorithm name is not SHA1, SHA256 or SHA512.
    #[error("unsupported algorithm {0:?}: use SHA1, SHA256 or SHA512")]
    InvalidAlgorithm(String),
    /// The secret is not valid base32.
    #[error("secret is not valid base32: {0}")]
    InvalidBase32(&'static str),
    /// The secret is empty.
    #[error("secret is empty")]
    EmptySecret,
    /// A submitted code is not a string of the expected number of decimal digits.
    #[error("code must be exactly {0} decimal digits")]
    MalformedCode(u8),
    /// The submitted code matches no counter or time step in the window.
    #[error("code is not valid")]
    InvalidCode,
    /// The submitted code matches a time step (or counter) already used.
    #[error("code was already used")]
    Replayed,
    /// The counter would overflow.
    #[error("counter overflow")]
    CounterOverflow,
    /// The otpauth URI is malformed.
    #[error("malformed otpauth URI: {0}")]
    MalformedUri(String),
    /// The random source failed.
    #[error("random source failed")]
    Rng,
    /// QR code generation or image encoding failed.
    #[error("QR code: {0}")]
    Qr(String),
}

/// The HMAC hash of an OTP generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA1, the RFC 4226 default and what most apps support.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The canonical otpauth spelling: `SHA1`, `SHA256`, `SHA512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// The crypto provider's hash identifier.
    pub fn hash_alg(self) -> HashAlg {
        match self {
            Algorithm::Sha1 => HashAlg::Sha1,
            Algorithm::Sha256 => HashAlg::Sha256,
            Algorithm::Sha512 => HashAlg::Sha512,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = OtpError;

    /// Case-insensitive; `SHA-1` style hyphens are accepted too.
    fn from_str(s: &str) -> Result<Self, OtpError> {
        let norm: String = s.chars().filter(|c| *c != '-').collect::<String>().to_ascii_uppercase();
        match norm.as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(OtpError::InvalidAlgorithm(s.chars().take(32).collect())),
        }
    }
}

/// A digit count, 6 to 8 inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the usual default.
    pub const SIX: Digits = Digits(6);

    /// A digit count; errors outside 6..=8.
    pub fn new(n: i64) -> Result<Digits, OtpError> {
        match n {
            6..=8 => Ok(Digits(n as u8)),
            _ => Err(OtpError::InvalidDigits(n)),
        }
    }

    /// The count.
    pub fn get(self) -> u8 {
        self.0
    }

    fn modulus(self) -> u32 {
        10u32.pow(u32::from(self.0))
    }
}

impl Default for Digits {
    fn default() -> Self {
        Digits::SIX
    }
}

impl TryFrom<u8> for Digits {
    type Error = OtpError;
    fn try_from(n: u8) -> Result<Self, OtpError> {
        Digits::new(i64::from(n))
    }
}

impl From<Digits> for u8 {
    fn from(d: Digits) -> u8 {
        d.0
    }
}

/// The RFC 4226 HOTP value for one counter: HMAC, dynamic truncation, modulo
/// 10^digits, zero-padded. Shared by HOTP and TOTP.
pub(crate) fn generate(secret: &[u8], alg: Algorithm, digits: Digits, counter: u64) -> String {
    let mac = crate::crypto::default_provider().hmac(alg.hash_alg(), secret, &[&counter.to_be_bytes()]);
    let code = truncate(&mac) % digits.modulus();
    format!("{:0width$}", code, width = usize::from(digits.get()))
}

/// RFC 4226 §5.3 dynamic truncation to a 31-bit integer.
fn truncate(mac: &[u8]) -> u32 {
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let b = |i: usize| u32::from(mac.get(offset + i).copied().unwrap_or(0));
    ((b(0) & 0x7f) << 24) | (b(1) << 16) | (b(2) << 8) | b(3)
}

/// Check that a submitted code has exactly `digits` ASCII digits.
pub(crate) fn check_code_shape(code: &str, digits: Digits) -> Result<(), OtpError> {
    if code.len() == usize::from(digits.get()) && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(OtpError::MalformedCode(digits.get()))
    }
}

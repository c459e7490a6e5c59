//! HOTP, RFC 4226: counter-based one-time passwords.
//!
//! The caller persists the account's counter. [`Hotp::verify`] accepts a code
//! for the stored counter or up to `look_ahead` counters beyond it and returns
//! the counter to store next, so every code is accepted at most once.

use super::{Algorithm, Digits, OtpError, OtpSecret, check_code_shape, generate};

/// An HOTP generator and verifier.
#[derive(Debug, Clone)]
pub struct Hotp {
    secret: OtpSecret,
    algorithm: Algorithm,
    digits: Digits,
}

impl Hotp {
    /// An HOTP generator for `secret`.
    pub fn new(secret: OtpSecret, algorithm: Algorithm, digits: Digits) -> Hotp {
        Hotp { secret, algorithm, digits }
    }

    /// The code for `counter`, zero-padded to the digit count.
    pub fn code(&self, counter: u64) -> String {
        generate(self.secret.as_bytes(), self.algorithm, self.digits, counter)
    }

    /// The digit count.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Verify `code` against counters `counter ..= counter + look_ahead`
    /// (`counter` is the next unused counter the caller stored). On success it
    /// returns the new counter to store (the matching counter plus one); a code
    /// for an earlier counter is therefore never accepted again. Every
    /// candidate is compared, in constant time.
    pub fn verify(&self, code: &str, counter: u64, look_ahead: u64) -> Result<u64, OtpError> {
        check_code_shape(code, self.digits)?;
        let mut found: Option<u64> = None;
        for i in 0..=look_ahead.min(1000) {
            let Some(c) = counter.checked_add(i) else { break };
            let ok = crate::crypto::ct_eq(self.code(c).as_bytes(), code.as_bytes());
            if ok && found.is_none() {
                found = Some(c);
            }
        }
        match found {
            Some(c) => c.checked_add(1).ok_or(OtpError::CounterOverflow),
            None => Err(OtpError::InvalidCode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc() -> Hotp {
        Hotp::new(OtpSecret::from_bytes(b"12345678901234567890").unwrap(), Algorithm::Sha1, Digits::SIX)
    }

    #[test]
    fn rfc4226_first_values() {
        assert_eq!(rfc().code(0), "755224");
        assert_eq!(rfc().code(9), "520489");
    }

    #[test]
    fn verify_advances_counter_and_refuses_reuse() {
        let h = rfc();
        assert_eq!(h.verify("359152", 0, 3), Ok(3));
        assert_eq!(h.verify("359152", 3, 3), Err(OtpError::InvalidCode));
        assert_eq!(h.verify("35915", 0, 3), Err(OtpError::MalformedCode(6)));
        assert_eq!(h.verify("35915a", 0, 3), Err(OtpError::MalformedCode(6)));
    }
}

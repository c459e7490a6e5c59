//! The `otpauth://` Key URI Format (as published for Google Authenticator and
//! followed by every authenticator app).
//!
//! ```text
//! otpauth://totp/ACME%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30
//! ```
//!
//! [`KeyUri::to_uri`] builds the canonical form: label `Issuer:account` with
//! both parts percent-encoded, then `secret`, `issuer` (equal to the label's
//! issuer), `algorithm`, `digits` and `period` (TOTP) or `counter` (HOTP), in
//! that order and spelling. [`KeyUri::parse`] is lenient where apps differ
//! (case of the scheme, type, parameter names and algorithm; base32 case,
//! spaces and padding; a percent-encoded colon in the label; unknown
//! parameters such as `image`) and strict where a mistake would produce wrong
//! codes (missing or non-base32 secret, digits outside 6..=8, period under 1,
//! HOTP without counter, duplicate parameters, issuer parameter differing
//! from the label's issuer).

use super::{Algorithm, Digits, Hotp, OtpError, OtpSecret, SecretWarning, Totp};

/// TOTP or HOTP, with the parameter only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    /// Time-based; `period` in seconds (1 to 2^63 - 1).
    Totp {
        /// The time step in seconds.
        period: u64,
    },
    /// Counter-based; `counter` is the initial counter.
    Hotp {
        /// The initial counter value.
        counter: u64,
    },
}

/// A parsed or to-be-built otpauth URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    /// TOTP or HOTP.
    pub kind: OtpKind,
    /// The issuer (service name), if any. Must not contain `:`.
    pub issuer: Option<String>,
    /// The account name (user name, e-mail address). Must not be empty.
    pub account: String,
    /// The shared secret.
    pub secret: OtpSecret,
    /// The HMAC algorithm.
    pub algorithm: Algorithm,
    /// The digit count.
    pub digits: Digits,
}

fn bad(msg: impl Into<String>) -> OtpError {
    OtpError::MalformedUri(msg.into())
}

impl KeyUri {
    /// A TOTP URI with the usual defaults (SHA1, 6 digits, 30 s).
    pub fn new_totp(issuer: Option<&str>, account: &str, secret: OtpSecret) -> KeyUri {
        KeyUri {
            kind: OtpKind::Totp { period: Totp::DEFAULT_PERIOD },
            issuer: issuer.map(str::to_owned),
            account: account.to_owned(),
            secret,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
        }
    }

    /// A warning if the secret is weak (under 128 bits).
    pub fn secret_warning(&self) -> Option<SecretWarning> {
        self.secret.warning()
    }

    /// Check that the URI can be built and parsed back unambiguously.
    pub fn validate(&self) -> Result<(), OtpError> {
        if let Some(issuer) = &self.issuer {
            if issuer.is_empty() {
                return Err(bad("the issuer is empty"));
            }
            if issuer.contains(':') {
                return Err(bad("the issuer must not contain ':'"));
            }
        } else if self.account.contains(':') {
            return Err(bad("an account name containing ':' needs an issuer"));
        }
        if self.account.trim_start().is_empty() {
            return Err(bad("the account name is empty"));
        }
        if self.account.starts_with(' ') {
            return Err(bad("the account name must not start with a space"));
        }
        if let OtpKind::Totp { period } = self.kind
            && (period == 0 || i64::try_from(period).is_err())
        {
            return Err(OtpError::InvalidPeriod(i64::try_from(period).unwrap_or(i64::MAX)));
        }
        Ok(())
    }

    /// The canonical URI text.
    pub fn to_uri(&self) -> Result<String, OtpError> {
        self.validate()?;
        let (kind, tail) = match self.kind {
            OtpKind::Totp { period } => ("totp", format!("period={period}")),
            OtpKind::Hotp { counter } => ("hotp", format!("counter={counter}")),
        };
        let mut s = format!("otpauth://{kind}/");
        if let Some(issuer) = &self.issuer {
            s.push_str(&encode(issuer));
            s.push(':');
        }
        s.push_str(&encode(&self.account));
        s.push_str("?secret=");
        s.push_str(&self.secret.to_base32());
        if let Some(issuer) = &self.issuer {
            s.push_str("&issuer=");
            s.push_str(&encode(issuer));
        }
        s.push_str(&format!("&algorithm={}&digits={}&{tail}", self.algorithm, self.digits.get()));
        Ok(s)
    }

    /// Parse an otpauth URI.
    pub fn parse(text: &str) -> Result<KeyUri, OtpError> {
        let text = text.trim();
        const SCHEME: &str = "otpauth://";
        let rest = match text.get(..SCHEME.len()) {
            Some(p) if p.eq_ignore_ascii_case(SCHEME) => &text[SCHEME.len()..],
            _ => return Err(bad("it does not start with otpauth://")),
        };
        let rest = rest.split_once('#').map_or(rest, |(a, _)| a);
        let (kind_str, rest) = rest.split_once('/').ok_or_else(|| bad("missing '/' after the type"))?;
        let is_totp = if kind_str.eq_ignore_ascii_case("totp") {
            true
        } else if kind_str.eq_ignore_ascii_case("hotp") {
            false
        } else {
            return Err(bad(format!("unknown type {:?}: expected totp or hotp", truncate(kind_str))));
        };
        let (label_raw, query) = rest.split_once('?').ok_or_else(|| bad("missing parameters (no secret)"))?;
        let label = decode(label_raw, false)?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((i, a)) => (Some(i.trim().to_owned()), a.trim_start().to_owned()),
            None => (None, label.trim_start().to_owned()),
        };
        if account.is_empty() {
            return Err(bad("the account name is empty"));
        }
        let label_issuer = label_issuer.filter(|i| !i.is_empty());

        let mut secret = None;
        let mut issuer = None;
        let mut algorithm = None;
        let mut digits = None;
        let mut period = None;
        let mut counter = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) =
                pair.split_once('=').ok_or_else(|| bad(format!("parameter {:?} has no value", truncate(pair))))?;
            let key = k.to_ascii_lowercase();
            let slot: Option<&mut Option<String>> = match key.as_str() {
                "secret" => Some(&mut secret),
                "issuer" => Some(&mut issuer),
                "algorithm" => Some(&mut algorithm),
                "digits" => Some(&mut digits),
                "period" => Some(&mut period),
                "counter" => Some(&mut counter),
                _ => None, // unknown parameters (image, color, ...) are ignored
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    return Err(bad(format!("parameter {key} appears twice")));
                }
                *slot = Some(decode(v, true)?);
            }
        }
        let secret = secret.ok_or_else(|| bad("the secret parameter is missing"))?;
        let secret = OtpSecret::from_base32(&secret)?;
        // The issuer parameter is trimmed like the label's issuer, so the
        // two compare alike and a parsed URI serializes to one that parses.
        let issuer = issuer.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty());
        let issuer = match (label_issuer, issuer) {
            (Some(l), Some(p)) if l != p => {
                return Err(bad(format!(
                    "the issuer parameter {:?} differs from the label's issuer {:?}",
                    truncate(&p),
                    truncate(&l)
                )));
            }
            (Some(l), _) => Some(l),
            (None, p) => p,
        };
        if issuer.as_deref().is_some_and(|i| i.contains(':')) {
            return Err(bad("the issuer must not contain ':'"));
        }
        let algorithm = match algorithm {
            Some(a) => a.parse()?,
            None => Algorithm::Sha1,
        };
        let digits = match digits {
            Some(d) => Digits::new(parse_int(&d, "digits")?)?,
            None => Digits::SIX,
        };
        let kind = if is_totp {
            let p = match period {
                Some(p) => parse_int(&p, "period")?,
                None => Totp::DEFAULT_PERIOD as i64,
            };
            if p < 1 {
                return Err(OtpError::InvalidPeriod(p));
            }
            OtpKind::Totp { period: p as u64 }
        } else {
            let c = counter.ok_or_else(|| bad("an hotp URI needs a counter parameter"))?;
            let c: u64 = c.trim().parse().map_err(|_| bad(format!("counter {:?} is not a number", truncate(&c))))?;
            OtpKind::Hotp { counter: c }
        };
        Ok(KeyUri { kind, issuer, account, secret, algorithm, digits })
    }

    /// A TOTP generator, if this is a TOTP URI.
    pub fn totp(&self) -> Option<Totp> {
        match self.kind {
            OtpKind::Totp { period } => {
                Totp::new(self.secret.clone(), self.algorithm, self.digits, i64::try_from(period).ok()?).ok()
            }
            OtpKind::Hotp { .. } => None,
        }
    }

    /// An HOTP generator, if this is an HOTP URI.
    pub fn hotp(&self) -> Option<Hotp> {
        match self.kind {
            OtpKind::Hotp { .. } => Some(Hotp::new(self.secret.clone(), self.algorithm, self.digits)),
            OtpKind::Totp { .. } => None,
        }
    }
}

impl std::str::FromStr for KeyUri {
    type Err = OtpError;
    fn from_str(s: &str) -> Result<Self, OtpError> {
        KeyUri::parse(s)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_int(s: &str, name: &str) -> Result<i64, OtpError> {
    s.trim().parse::<i64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            bad(format!("{name} {:?} is out of range", truncate(s)))
        }
        _ => bad(format!("{name} {:?} is not a number", truncate(s))),
    })
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decode; in query values `+` is a space (form encoding).
fn decode(s: &str, plus_is_space: bool) -> Result<String, OtpError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(|| bad("truncated percent escape"))?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad("invalid percent escape"))?;
                let v = u8::from_str_radix(hex, 16).map_err(|_| bad(format!("invalid percent escape %{hex}")))?;
                out.push(v);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad("percent-encoded text is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_example() {
        let u =
            KeyUri::parse("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example").unwrap();
        assert_eq!(u.issuer.as_deref(), Some("Example"));
        assert_eq!(u.account, "alice@google.com");
        assert_eq!(u.kind, OtpKind::Totp { period: 30 });
        assert!(u.secret_warning().is_some());
        assert_eq!(
            u.to_uri().unwrap(),
            "otpauth://totp/Example:alice%40google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn lenient_forms() {
        let u = KeyUri::parse("OTPAUTH://TOTP/ACME%20Co%3A%20john?SECRET=jbsw%20y3dp%20ehpk%203pxp%3D%3D&Algorithm=sha256&digits=8&period=60&image=x").unwrap();
        assert_eq!(u.issuer.as_deref(), Some("ACME Co"));
        assert_eq!(u.account, "john");
        assert_eq!(u.algorithm, Algorithm::Sha256);
        assert_eq!(u.digits.get(), 8);
        assert_eq!(u.kind, OtpKind::Totp { period: 60 });
        let h = KeyUri::parse("otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=7").unwrap();
        assert_eq!(h.kind, OtpKind::Hotp { counter: 7 });
    }

    #[test]
    fn malformed() {
        for bad_uri in [
            "",
            "http://totp/a?secret=JBSWY3DP",
            "otpauth://totp",
            "otpauth://xotp/a?secret=JBSWY3DP",
            "otpauth://totp/a",
            "otpauth://totp/a?issuer=x",
            "otpauth://totp/a?secret=JBSW1",
            "otpauth://totp/a?secret=JBSWY3DP&digits=9",
            "otpauth://totp/a?secret=JBSWY3DP&digits=x",
            "otpauth://totp/a?secret=JBSWY3DP&period=0",
            "otpauth://totp/a?secret=JBSWY3DP&period=-5",
            "otpauth://totp/a?secret=JBSWY3DP&algorithm=MD5",
            "otpauth://totp/A:a?secret=JBSWY3DP&issuer=B",
            "otpauth://totp/a?secret=JBSWY3DP&secret=JBSWY3DP",
            "otpauth://totp/a%ZZ?secret=JBSWY3DP",
            "otpauth://totp/a%?secret=JBSWY3DP",
            "otpauth://totp/%FF?secret=JBSWY3DP",
            "otpauth://totp/A:?secret=JBSWY3DP",
            "otpauth://hotp/a?secret=JBSWY3DP",
            "otpauth://totp/a?secret",
            "otpauth://totp/é?secret=JBSWY3DP&é",
        ] {
            assert!(KeyUri::parse(bad_uri).is_err(), "{bad_uri} should fail");
        }
    }
}

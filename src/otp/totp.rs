//! TOTP, RFC 6238: time-based one-time passwords.
//!
//! A [`Totp`] turns a Unix time into a time step `T = (time - T0) / period`
//! and the step into an HOTP code. [`Totp::verify`] accepts codes from a
//! [`Window`] of steps around the current one, and takes the account's
//! `last_used_step` (persisted by the caller, or kept in a [`ReplayGuard`]):
//! a step at or before it is refused as a replay, so each code is accepted at
//! most once (RFC 6238 §5.2).

use super::{Algorithm, Digits, OtpError, OtpSecret, check_code_shape, generate};

/// How many time steps before and after the current one are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Steps in the past (clock skew, slow typing).
    pub past: u64,
    /// Steps in the future (clock skew).
    pub future: u64,
}

impl Default for Window {
    /// One step either side, as RFC 6238 §5.2 recommends at most.
    fn default() -> Self {
        Window { past: 1, future: 1 }
    }
}

impl Window {
    /// Only the current step.
    pub const EXACT: Window = Window { past: 0, future: 0 };
}

/// A TOTP generator and verifier.
#[derive(Debug, Clone)]
pub struct Totp {
    secret: OtpSecret,
    algorithm: Algorithm,
    digits: Digits,
    period: u64,
    t0: u64,
}

impl Totp {
    /// The usual period: 30 seconds.
    pub const DEFAULT_PERIOD: u64 = 30;

    /// A TOTP generator; `period` in seconds must be at least 1.
    pub fn new(secret: OtpSecret, algorithm: Algorithm, digits: Digits, period: i64) -> Result<Totp, OtpError> {
        if period < 1 {
            return Err(OtpError::InvalidPeriod(period));
        }
        Ok(Totp { secret, algorithm, digits, period: period as u64, t0: 0 })
    }

    /// Set the epoch T0 (Unix seconds, default 0).
    pub fn with_t0(mut self, t0: u64) -> Totp {
        self.t0 = t0;
        self
    }

    /// The period in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The digit count.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The time step of `unix_time`. Errors for negative times or times
    /// before T0.
    pub fn step_at(&self, unix_time: i64) -> Result<u64, OtpError> {
        if unix_time < 0 {
            return Err(OtpError::NegativeTime(unix_time));
        }
        let t = unix_time as u64;
        let since = t.checked_sub(self.t0).ok_or(OtpError::BeforeEpoch { time: t, t0: self.t0 })?;
        Ok(since / self.period)
    }

    /// The code for a time step.
    pub fn code_at_step(&self, step: u64) -> String {
        generate(self.secret.as_bytes(), self.algorithm, self.digits, step)
    }

    /// The code valid at `unix_time`.
    pub fn code_at(&self, unix_time: i64) -> Result<String, OtpError> {
        Ok(self.code_at_step(self.step_at(unix_time)?))
    }

    /// The code valid now (system clock).
    pub fn code_now(&self) -> Result<String, OtpError> {
        self.code_at(now())
    }

    /// Verify `code` at `unix_time` within `window`. `last_used_step` is the
    /// step of the last code accepted for this account (persist the returned
    /// value): a code of that step or an earlier one is refused with
    /// [`OtpError::Replayed`]. Returns the matched step. Every candidate step
    /// is compared, in constant time.
    pub fn verify(
        &self,
        code: &str,
        unix_time: i64,
        window: Window,
        last_used_step: Option<u64>,
    ) -> Result<u64, OtpError> {
        check_code_shape(code, self.digits)?;
        let now = self.step_at(unix_time)?;
        let first = now.saturating_sub(window.past.min(1000));
        let last = now.saturating_add(window.future.min(1000));
        let mut fresh: Option<u64> = None;
        let mut replayed = false;
        let mut step = first;
        loop {
            let ok = crate::crypto::ct_eq(self.code_at_step(step).as_bytes(), code.as_bytes());
            let used = last_used_step.is_some_and(|l| step <= l);
            if ok && used {
                replayed = true;
            } else if ok {
                fresh = Some(step);
            }
            if step == last {
                break;
            }
            step += 1;
        }
        match (fresh, replayed) {
            (Some(s), _) => Ok(s),
            (None, true) => Err(OtpError::Replayed),
            (None, false) => Err(OtpError::InvalidCode),
        }
    }
}

/// Per-account replay state: the last accepted time step. Serializable, so
/// it can be stored next to the account's secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplayGuard {
    /// The step of the last accepted code, if any.
    pub last_used_step: Option<u64>,
}

impl ReplayGuard {
    /// Verify `code` and, on success, record its step so it is never accepted again.
    pub fn verify(&mut self, totp: &Totp, code: &str, unix_time: i64, window: Window) -> Result<u64, OtpError> {
        let step = totp.verify(code, unix_time, window, self.last_used_step)?;
        self.last_used_step = Some(step);
        Ok(step)
    }
}

/// The system clock as Unix seconds (0 if the clock is before 1970).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc() -> Totp {
        Totp::new(OtpSecret::from_bytes(b"12345678901234567890").unwrap(), Algorithm::Sha1, Digits::new(8).unwrap(), 30)
            .unwrap()
    }

    #[test]
    fn rfc6238_sha1() {
        assert_eq!(rfc().code_at(59).unwrap(), "94287082");
        assert_eq!(rfc().code_at(1111111109).unwrap(), "07081804");
    }

    #[test]
    fn replay_refused() {
        let t = rfc();
        let mut g = ReplayGuard::default();
        assert_eq!(g.verify(&t, "07081804", 1111111109, Window::default()), Ok(37037036));
        assert_eq!(g.verify(&t, "07081804", 1111111109, Window::default()), Err(OtpError::Replayed));
        // The next step's code is still fine.
        let next = t.code_at(1111111109 + 30).unwrap();
        assert!(g.verify(&t, &next, 1111111109 + 30, Window::default()).is_ok());
    }

    #[test]
    fn bad_inputs() {
        assert_eq!(rfc().code_at(-1), Err(OtpError::NegativeTime(-1)));
        let s = OtpSecret::from_bytes(b"x").unwrap();
        assert_eq!(Totp::new(s, Algorithm::Sha1, Digits::SIX, 0).unwrap_err(), OtpError::InvalidPeriod(0));
        assert_eq!(rfc().verify("1234", 59, Window::default(), None), Err(OtpError::MalformedCode(8)));
        assert_eq!(rfc().verify("00000000", 59, Window::default(), None), Err(OtpError::InvalidCode));
        // window at step 0 and at u64 extremes does not overflow
        let t = rfc().with_t0(0);
        assert!(t.verify("94287082", 0, Window { past: 5, future: 5 }, None).is_ok());
    }
}

//! authenticatorBioEnrollment and built-in user verification, over a
//! simulated fingerprint sensor ([`FingerprintMode`]).
//!
//! The sensor keeps no biometric data: an enrollment is a template ID and a
//! friendly name, persisted with the rest of the state. A "sample" is a user
//! action, collected through the user-presence policy (so KEEPALIVE,
//! CANCEL and `--touch-delay` work as for a touch); what the sample yields is
//! decided by the mode:
//!
//! - [`FingerprintMode::AlwaysMatch`]: every sample is good and matches.
//! - [`FingerprintMode::NeverMatch`]: enrollment works, verification never matches.
//! - [`FingerprintMode::MatchAfter`]`(n)`: the first `n` samples of each
//!   verification fail to match and the next one matches; during
//!   enrollment the first `n` samples are of poor quality
//!   ([`sample_status::POOR_QUALITY`]) and do not count.
//!
//! Built-in UV follows CTAP 2.1 §6.5.5.7.3: each attempt
//! costs one of [`UV_RETRIES`] (persisted before the match is known, as for
//! the PIN) and a match gives them back; at zero UV is blocked
//! (`CTAP2_ERR_UV_BLOCKED`) until the PIN is entered, which restores them.

use super::state::{Bytes, StoredEnrollment, UV_RETRIES};
use super::{Authenticator, Reply};
use crate::proto::cbor::Value;
use crate::proto::ctap2::bio_enrollment::{
    BioEnrollmentRequest, BioEnrollmentResponse, BioEnrollmentSubcommand as Sub, FINGERPRINT_KIND_TOUCH,
    MODALITY_FINGERPRINT, TemplateInfo, sample_status,
};
use crate::proto::ctap2::client_pin::permissions;
use crate::proto::ctap2::{CtapCodec, CtapStatus};

/// Good samples an enrollment needs (maxCaptureSamplesRequiredForEnroll).
pub const SAMPLES_PER_ENROLLMENT: u8 = 4;
/// Most fingerprints the sensor stores.
pub const MAX_ENROLLMENTS: usize = 5;
/// maxTemplateFriendlyName, in bytes.
pub const MAX_TEMPLATE_FRIENDLY_NAME: usize = 64;
/// preferredPlatformUvAttempts reported by getInfo.
pub const PREFERRED_PLATFORM_UV_ATTEMPTS: u64 = 3;
/// uvModality of a fingerprint sensor (USER_VERIFY_FINGERPRINT_INTERNAL).
pub const UV_MODALITY_FINGERPRINT: u64 = 0x02;

/// How the simulated fingerprint sensor behaves (`hwkey virtual serve
/// --fingerprint always|never|after:N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintMode {
    /// Every sample matches.
    AlwaysMatch,
    /// No sample ever matches (enrollment still works).
    NeverMatch,
    /// Each verification fails this many times, then matches.
    MatchAfter(u32),
}

/// A `--fingerprint` value that is not `always`, `never` or `after:N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fingerprint mode {0:?}: expected always, never or after:N")]
pub struct FingerprintModeError(pub String);

impl std::str::FromStr for FingerprintMode {
    type Err = FingerprintModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::AlwaysMatch),
            "never" => Ok(Self::NeverMatch),
            _ => s
                .strip_prefix("after:")
                .and_then(|n| n.parse::<u32>().ok())
                .map(Self::MatchAfter)
                .ok_or_else(|| FingerprintModeError(s.to_owned())),
        }
    }
}

/// An enrollment in progress (volatile: a power cycle or another command ends it).
pub(crate) struct PendingEnrollment {
    template_id: Vec<u8>,
    remaining: u8,
}

/// Sensor state lost at power-off.
#[derive(Default)]
pub(crate) struct SensorVolatile {
    pub enrollment: Option<PendingEnrollment>,
    /// Poor samples given in the current enrollment (MatchAfter).
    pub poor_samples: u32,
    /// Failed matches since the last match (MatchAfter).
    pub failed_matches: u32,
}

impl Authenticator {
    /// Whether built-in UV is configured: a sensor with at least one finger.
    pub(crate) fn uv_configured(&self) -> bool {
        self.config.fingerprint.is_some() && !self.state.enrollments.is_empty()
    }

    /// Number of enrolled fingerprints.
    pub fn enrollment_count(&self) -> usize {
        self.state.enrollments.len()
    }
}

/// Check, before the finger is asked for, that built-in UV can be tried.
/// `not_configured` is the status when no finger is enrolled.
pub(crate) fn uv_precheck(a: &Authenticator, not_configured: CtapStatus) -> Result<(), CtapStatus> {
    if !a.uv_configured() {
        return Err(not_configured);
    }
    if a.state.uv_retries == 0 {
        return Err(CtapStatus::UvBlocked);
    }
    Ok(())
}

/// Built-in user verification with the sample just taken: spends a retry,
/// then matches according to the sensor mode. A match restores the retries.
pub(crate) fn verify_user(a: &mut Authenticator) -> Result<(), CtapStatus> {
    uv_precheck(a, CtapStatus::NotAllowed)?;
    let backup = a.state.clone();
    a.state.uv_retries -= 1;
    a.persist_or_restore(backup)?;
    let matched = match a.config.fingerprint {
        Some(FingerprintMode::AlwaysMatch) => true,
        Some(FingerprintMode::NeverMatch) | None => false,
        Some(FingerprintMode::MatchAfter(n)) => {
            let s = &mut a.volatile.sensor;
            if s.failed_matches < n {
                s.failed_matches += 1;
                false
            } else {
                s.failed_matches = 0;
                true
            }
        }
    };
    if !matched {
        return Err(if a.state.uv_retries == 0 { CtapStatus::UvBlocked } else { CtapStatus::UvInvalid });
    }
    let backup = a.state.clone();
    a.state.uv_retries = UV_RETRIES;
    a.state.uv_count_since_pin = a.state.uv_count_since_pin.saturating_add(1);
    a.persist_or_restore(backup)
}

pub(crate) fn bio_enrollment(a: &mut Authenticator, v: &Value) -> Result<Reply, CtapStatus> {
    if a.config.fingerprint.is_none() {
        return Err(CtapStatus::InvalidCommand);
    }
    let req = BioEnrollmentRequest::from_value(v).map_err(|e| e.status())?;
    if req.get_modality == Some(true) {
        let r = BioEnrollmentResponse { modality: Some(MODALITY_FINGERPRINT.into()), ..Default::default() };
        return Ok(Reply::Done(Some(r.to_value())));
    }
    let modality = req.modality.ok_or(CtapStatus::MissingParameter)?;
    if modality != MODALITY_FINGERPRINT {
        return Err(CtapStatus::InvalidParameter);
    }
    let sub = req.sub_command.ok_or(CtapStatus::MissingParameter)?;
    if let Sub::Other(_) = sub {
        return Err(CtapStatus::InvalidSubcommand);
    }
    if sub.needs_auth() {
        let param = req.pin_uv_auth_param.as_deref().ok_or(CtapStatus::PuatRequired)?;
        a.check_token(req.pin_uv_auth_protocol, param, &req.auth_message(), permissions::BIO_ENROLLMENT, None)?;
    }
    let params = req.sub_command_params.clone().unwrap_or_default();
    let done = |r: BioEnrollmentResponse| Ok(Reply::Done((r != Default::default()).then(|| r.to_value())));
    match sub {
        Sub::GetFingerprintSensorInfo => done(BioEnrollmentResponse {
            modality: Some(MODALITY_FINGERPRINT.into()),
            fingerprint_kind: Some(FINGERPRINT_KIND_TOUCH.into()),
            max_capture_samples_required_for_enroll: Some(SAMPLES_PER_ENROLLMENT.into()),
            max_template_friendly_name: Some(MAX_TEMPLATE_FRIENDLY_NAME as u64),
            ..Default::default()
        }),
        Sub::CancelCurrentEnrollment => {
            a.volatile.sensor.enrollment = None;
            done(BioEnrollmentResponse::default())
        }
        Sub::EnrollBegin => {
            if a.state.enrollments.len() >= MAX_ENROLLMENTS {
                return Err(CtapStatus::FpDatabaseFull);
            }
            let mut template_id = a.provider.random_bytes(8).map_err(|_| CtapStatus::Other)?.to_vec();
            // Never reuse the ID of an enrolled finger.
            while a.state.enrollments.iter().any(|e| e.template_id.0 == template_id) {
                template_id = a.provider.random_bytes(8).map_err(|_| CtapStatus::Other)?.to_vec();
            }
            a.volatile.sensor.enrollment = None;
            a.volatile.sensor.poor_samples = 0;
            Ok(Reply::up("fingerprintEnroll", None, None, move |a, outcome| {
                outcome.require()?;
                a.volatile.sensor.enrollment =
                    Some(PendingEnrollment { template_id: template_id.clone(), remaining: SAMPLES_PER_ENROLLMENT });
                let mut r = take_sample(a)?;
                r.template_id = Some(template_id);
                Ok(Some(r.to_value()))
            }))
        }
        Sub::EnrollCaptureNextSample => {
            let id = params.template_id.ok_or(CtapStatus::MissingParameter)?;
            let pending = a.volatile.sensor.enrollment.as_ref().ok_or(CtapStatus::NotAllowed)?;
            if pending.template_id != id {
                return Err(CtapStatus::InvalidParameter);
            }
            Ok(Reply::up("fingerprintEnroll", None, None, move |a, outcome| {
                if let Err(e) = outcome.require() {
                    // An enrollment the user walked away from is over.
                    a.volatile.sensor.enrollment = None;
                    return Err(e);
                }
                take_sample(a).map(|r| Some(r.to_value()))
            }))
        }
        Sub::EnumerateEnrollments => {
            if a.state.enrollments.is_empty() {
                return Err(CtapStatus::InvalidOption);
            }
            let infos = a
                .state
                .enrollments
                .iter()
                .map(|e| TemplateInfo {
                    template_id: e.template_id.0.clone(),
                    template_friendly_name: Some(e.friendly_name.clone()),
                })
                .collect();
            done(BioEnrollmentResponse { template_infos: Some(infos), ..Default::default() })
        }
        Sub::SetFriendlyName => {
            let id = params.template_id.ok_or(CtapStatus::MissingParameter)?;
            let name = params.template_friendly_name.ok_or(CtapStatus::MissingParameter)?;
            if name.len() > MAX_TEMPLATE_FRIENDLY_NAME {
                return Err(CtapStatus::InvalidLength);
            }
            let backup = a.state.clone();
            let e = a.state.enrollments.iter_mut().find(|e| e.template_id.0 == id).ok_or(CtapStatus::InvalidOption)?;
            e.friendly_name = name;
            a.persist_or_restore(backup)?;
            done(BioEnrollmentResponse::default())
        }
        Sub::RemoveEnrollment => {
            let id = params.template_id.ok_or(CtapStatus::MissingParameter)?;
            if !a.state.enrollments.iter().any(|e| e.template_id.0 == id) {
                return Err(CtapStatus::InvalidOption);
            }
            let backup = a.state.clone();
            a.state.enrollments.retain(|e| e.template_id.0 != id);
            a.persist_or_restore(backup)?;
            done(BioEnrollmentResponse::default())
        }
        Sub::Other(_) => Err(CtapStatus::InvalidSubcommand),
    }
}

/// One enrollment sample (the user has touched the sensor): its status and
/// the samples still needed; the last good one stores the template.
fn take_sample(a: &mut Authenticator) -> Result<BioEnrollmentResponse, CtapStatus> {
    let poor = match a.config.fingerprint {
        Some(FingerprintMode::MatchAfter(n)) if a.volatile.sensor.poor_samples < n => {
            a.volatile.sensor.poor_samples += 1;
            true
        }
        _ => false,
    };
    let pending = a.volatile.sensor.enrollment.as_mut().ok_or(CtapStatus::NotAllowed)?;
    let status = if poor {
        sample_status::POOR_QUALITY
    } else {
        pending.remaining = pending.remaining.saturating_sub(1);
        sample_status::GOOD
    };
    let remaining = pending.remaining;
    if remaining == 0 {
        let id = pending.template_id.clone();
        a.volatile.sensor.enrollment = None;
        if a.state.enrollments.len() >= MAX_ENROLLMENTS {
            return Err(CtapStatus::FpDatabaseFull);
        }
        let backup = a.state.clone();
        a.state.enrollments.push(StoredEnrollment { template_id: Bytes(id), friendly_name: String::new() });
        a.persist_or_restore(backup)?;
    }
    Ok(BioEnrollmentResponse {
        last_enroll_sample_status: Some(status.into()),
        remaining_samples: Some(remaining.into()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("always".parse(), Ok(FingerprintMode::AlwaysMatch));
        assert_eq!("never".parse(), Ok(FingerprintMode::NeverMatch));
        assert_eq!("after:3".parse(), Ok(FingerprintMode::MatchAfter(3)));
        assert!("after:".parse::<FingerprintMode>().is_err());
        assert!("after:-1".parse::<FingerprintMode>().is_err());
        assert!("sometimes".parse::<FingerprintMode>().is_err());
    }
}

//! Fingerprint enrollment (authenticatorBioEnrollment, CTAP 2.1 §6.7, or its
//! FIDO_2_1_PRE prototype command): enroll sample by sample, list, rename,
//! delete, sensor information.
//!
//! Every call but [`Device::bio_sensor_info`] and [`Device::bio_cancel`]
//! takes a pinUvAuthToken with the `be` permission
//! ([`super::pin::permissions::BIO_ENROLLMENT`]): from the PIN for the
//! first finger, from built-in UV or the PIN afterwards.

use super::pin::PinUvAuthToken;
use super::{ClientError, Device, Op};
use crate::proto::ctap2::bio_enrollment::{
    BioEnrollmentParams, BioEnrollmentRequest, BioEnrollmentResponse, BioEnrollmentSubcommand as Sub,
    MODALITY_FINGERPRINT, sample_status,
};
use crate::proto::ctap2::{Command, CtapRequest, CtapStatus, decode_response};

pub use crate::proto::ctap2::bio_enrollment::sample_status as status;

/// What the fingerprint sensor reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorInfo {
    /// fingerprintKind: 1 touch, 2 swipe.
    pub fingerprint_kind: Option<u64>,
    /// maxCaptureSamplesRequiredForEnroll.
    pub max_samples: Option<u64>,
    /// maxTemplateFriendlyName (bytes).
    pub max_name_len: Option<u64>,
}

/// An enrolled fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// templateId.
    pub template_id: Vec<u8>,
    /// templateFriendlyName (absent or empty when never named).
    pub name: Option<String>,
}

/// Progress of an enrollment, reported to the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollEvent {
    /// The key waits for the finger: show "touch the sensor".
    /// `remaining` is the number of good samples still needed (`None` before the first).
    Touch {
        /// Good samples still needed, when known.
        remaining: Option<u64>,
    },
    /// A sample was taken.
    Sample {
        /// lastEnrollSampleStatus ([`status`]).
        status: u8,
        /// Good samples still needed.
        remaining: u64,
    },
}

/// How many captures an enrollment may take, per required sample, before
/// hwkey gives up on a sensor that keeps rejecting them.
const CAPTURES_PER_SAMPLE: u64 = 4;

impl Device {
    /// Whether the key supports fingerprint enrollment (`bioEnroll`, or the
    /// prototype's `userVerificationMgmtPreview` on a FIDO_2_1_PRE key).
    pub fn supports_bio_enrollment(&self) -> bool {
        self.option("bioEnroll").is_some() || self.bio_uses_prototype()
    }

    fn bio_uses_prototype(&self) -> bool {
        self.option("bioEnroll").is_none()
            && self.option("userVerificationMgmtPreview").is_some()
            && self.info().is_some_and(|i| i.supports_version("FIDO_2_1_PRE"))
    }

    /// authenticatorBioEnrollment (or the prototype command 0x40).
    pub fn bio_enrollment(
        &mut self,
        req: &BioEnrollmentRequest,
        op: &Op,
    ) -> Result<BioEnrollmentResponse, ClientError> {
        if !self.supports_bio_enrollment() {
            return Err(ClientError::Unsupported("fingerprint enrollment".into()));
        }
        if self.bio_uses_prototype() {
            let mut bytes = req.to_request_bytes();
            if let Some(b) = bytes.first_mut() {
                *b = Command::BioEnrollmentPreview.byte();
            }
            let resp = self.call_raw(&bytes, op)?;
            return Ok(decode_response(&resp)?);
        }
        self.call(req, op)
    }

    fn bio_call(
        &mut self,
        sub: Sub,
        params: Option<BioEnrollmentParams>,
        token: Option<&PinUvAuthToken>,
        op: &Op,
    ) -> Result<BioEnrollmentResponse, ClientError> {
        let mut req = BioEnrollmentRequest::fingerprint(sub, params);
        if let Some(t) = token {
            req.pin_uv_auth_param = Some(t.authenticate(&req.auth_message()));
            req.pin_uv_auth_protocol = Some(t.protocol().number().into());
        }
        self.bio_enrollment(&req, op)
    }

    /// The sensor's kind and enrollment needs (no token needed).
    pub fn bio_sensor_info(&mut self, op: &Op) -> Result<SensorInfo, ClientError> {
        let modality = self.bio_enrollment(&BioEnrollmentRequest::get_modality(), op)?;
        if modality.modality.is_some_and(|m| m != u64::from(MODALITY_FINGERPRINT)) {
            return Err(ClientError::Unsupported("a biometric modality other than fingerprints".into()));
        }
        let r = self.bio_call(Sub::GetFingerprintSensorInfo, None, None, op)?;
        Ok(SensorInfo {
            fingerprint_kind: r.fingerprint_kind,
            max_samples: r.max_capture_samples_required_for_enroll,
            max_name_len: r.max_template_friendly_name,
        })
    }

    /// Enroll a finger: one sample per touch until the key has enough,
    /// calling `progress` before each touch and after each sample. Names the
    /// new template `name` when given. Returns the template ID. On any
    /// failure the enrollment is cancelled on the key.
    pub fn bio_enroll(
        &mut self,
        token: &PinUvAuthToken,
        name: Option<&str>,
        timeout_ms: Option<u64>,
        progress: &mut dyn FnMut(EnrollEvent),
        op: &Op,
    ) -> Result<Vec<u8>, ClientError> {
        let r = self.bio_enroll_samples(token, timeout_ms, progress, op);
        let id = match r {
            Ok(id) => id,
            Err(e) => {
                // The key may still be in the enrollment: end it (best effort).
                let _ = self.bio_cancel(&Op::timeout(std::time::Duration::from_secs(2)));
                return Err(e);
            }
        };
        if let Some(n) = name {
            self.bio_rename(token, &id, n, op)?;
        }
        // bioEnroll and uv may have turned true.
        self.refresh_info(op)?;
        Ok(id)
    }

    fn bio_enroll_samples(
        &mut self,
        token: &PinUvAuthToken,
        timeout_ms: Option<u64>,
        progress: &mut dyn FnMut(EnrollEvent),
        op: &Op,
    ) -> Result<Vec<u8>, ClientError> {
        let timeout = |id: Option<Vec<u8>>| {
            Some(BioEnrollmentParams {
                template_id: id,
                template_friendly_name: None,
                timeout_milliseconds: timeout_ms,
            })
            .filter(|p| p.template_id.is_some() || p.timeout_milliseconds.is_some())
        };
        progress(EnrollEvent::Touch { remaining: None });
        let first = self.bio_call(Sub::EnrollBegin, timeout(None), Some(token), op)?;
        let (mut status, mut remaining) = sample(&first)?;
        let id = first.template_id.ok_or_else(|| ClientError::Malformed("enrollBegin without a templateId".into()))?;
        progress(EnrollEvent::Sample { status, remaining });
        // A sensor asking for more and more samples, or rejecting every one, is given up on.
        let max_captures = CAPTURES_PER_SAMPLE.saturating_mul(remaining.saturating_add(1)).min(256);
        let mut captures = 1;
        while remaining > 0 {
            if captures >= max_captures {
                return Err(ClientError::Malformed(format!(
                    "the sensor still wants {remaining} samples after {captures} ({})",
                    sample_status::describe(status)
                )));
            }
            progress(EnrollEvent::Touch { remaining: Some(remaining) });
            let r = self.bio_call(Sub::EnrollCaptureNextSample, timeout(Some(id.clone())), Some(token), op)?;
            (status, remaining) = sample(&r)?;
            captures += 1;
            progress(EnrollEvent::Sample { status, remaining });
        }
        Ok(id)
    }

    /// Cancel an enrollment in progress (no token needed).
    pub fn bio_cancel(&mut self, op: &Op) -> Result<(), ClientError> {
        self.bio_call(Sub::CancelCurrentEnrollment, None, None, op).map(|_| ())
    }

    /// The enrolled fingerprints (none: an empty list).
    pub fn bio_list(&mut self, token: &PinUvAuthToken, op: &Op) -> Result<Vec<Enrollment>, ClientError> {
        match self.bio_call(Sub::EnumerateEnrollments, None, Some(token), op) {
            // CTAP 2.1 §6.7.5: no enrollments is CTAP2_ERR_INVALID_OPTION.
            Err(ClientError::Status(CtapStatus::InvalidOption)) => Ok(Vec::new()),
            Err(e) => Err(e),
            Ok(r) => Ok(r
                .template_infos
                .unwrap_or_default()
                .into_iter()
                .map(|t| Enrollment { template_id: t.template_id, name: t.template_friendly_name })
                .collect()),
        }
    }

    /// Give an enrolled fingerprint a friendly name.
    pub fn bio_rename(
        &mut self,
        token: &PinUvAuthToken,
        template_id: &[u8],
        name: &str,
        op: &Op,
    ) -> Result<(), ClientError> {
        let params = BioEnrollmentParams {
            template_id: Some(template_id.to_vec()),
            template_friendly_name: Some(name.to_owned()),
            timeout_milliseconds: None,
        };
        match self.bio_call(Sub::SetFriendlyName, Some(params), Some(token), op) {
            Err(ClientError::Status(CtapStatus::InvalidOption)) => Err(ClientError::NoSuchFingerprint),
            r => r.map(|_| ()),
        }
    }

    /// Remove an enrolled fingerprint.
    pub fn bio_delete(&mut self, token: &PinUvAuthToken, template_id: &[u8], op: &Op) -> Result<(), ClientError> {
        let params = BioEnrollmentParams { template_id: Some(template_id.to_vec()), ..Default::default() };
        match self.bio_call(Sub::RemoveEnrollment, Some(params), Some(token), op) {
            Err(ClientError::Status(CtapStatus::InvalidOption)) => Err(ClientError::NoSuchFingerprint),
            r => r.map(|_| ()),
        }?;
        // bioEnroll and uv may have turned false.
        self.refresh_info(op)?;
        Ok(())
    }
}

fn sample(r: &BioEnrollmentResponse) -> Result<(u8, u64), ClientError> {
    let status = r
        .last_enroll_sample_status
        .and_then(|s| u8::try_from(s).ok())
        .ok_or_else(|| ClientError::Malformed("enrollment sample without a status".into()))?;
    let remaining = r
        .remaining_samples
        .ok_or_else(|| ClientError::Malformed("enrollment sample without remainingSamples".into()))?;
    Ok((status, remaining))
}

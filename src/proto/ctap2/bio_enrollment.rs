//! authenticatorBioEnrollment (0x09, CTAP 2.1 §6.7; the prototype command
//! 0x40 of FIDO_2_1_PRE has the same wire form): fingerprint enrollment,
//! enumeration, renaming, removal and sensor information.
//!
//! `pinUvAuthParam` authenticates `modality || subCommand || subCommandParams`
//! (the parameters as canonical CBOR), under a token with the `be` permission;
//! [`BioEnrollmentRequest::auth_message_for`] builds that message.

use super::util::{map, opt_map, opt_u8, opt_u64};
use super::{Command, Ctap2Error, CtapCodec, CtapRequest};
use crate::proto::cbor::{FieldError, MapExt, Value};

/// The fingerprint modality (the only one CTAP defines).
pub const MODALITY_FINGERPRINT: u8 = 0x01;

/// fingerprintKind: a touch sensor.
pub const FINGERPRINT_KIND_TOUCH: u8 = 0x01;
/// fingerprintKind: a swipe sensor.
pub const FINGERPRINT_KIND_SWIPE: u8 = 0x02;

/// lastEnrollSampleStatus values (CTAP 2.1 §6.7.3, "fingerprint sample status").
pub mod sample_status {
    /// Good fingerprint capture.
    pub const GOOD: u8 = 0x00;
    /// Fingerprint was too high.
    pub const TOO_HIGH: u8 = 0x01;
    /// Fingerprint was too low.
    pub const TOO_LOW: u8 = 0x02;
    /// Fingerprint was too left.
    pub const TOO_LEFT: u8 = 0x03;
    /// Fingerprint was too right.
    pub const TOO_RIGHT: u8 = 0x04;
    /// Fingerprint was too fast.
    pub const TOO_FAST: u8 = 0x05;
    /// Fingerprint was too slow.
    pub const TOO_SLOW: u8 = 0x06;
    /// Fingerprint was of poor quality.
    pub const POOR_QUALITY: u8 = 0x07;
    /// Fingerprint was too skewed.
    pub const TOO_SKEWED: u8 = 0x08;
    /// Fingerprint was too short.
    pub const TOO_SHORT: u8 = 0x09;
    /// Merge failure of the capture.
    pub const MERGE_FAILURE: u8 = 0x0A;
    /// Fingerprint already exists.
    pub const EXISTS: u8 = 0x0B;
    /// (Unused: the database-full case is the status code CTAP2_ERR_FP_DATABASE_FULL.)
    pub const DATABASE_FULL: u8 = 0x0C;
    /// User did not touch or swipe the authenticator.
    pub const NO_USER_ACTIVITY: u8 = 0x0D;
    /// User did not lift the finger off the sensor.
    pub const NO_USER_PRESENCE_TRANSITION: u8 = 0x0E;

    /// A short English description of a status, for prompts.
    pub fn describe(s: u8) -> &'static str {
        match s {
            GOOD => "good sample",
            TOO_HIGH => "finger too high",
            TOO_LOW => "finger too low",
            TOO_LEFT => "finger too far left",
            TOO_RIGHT => "finger too far right",
            TOO_FAST => "finger moved too fast",
            TOO_SLOW => "finger moved too slowly",
            POOR_QUALITY => "poor quality sample",
            TOO_SKEWED => "finger too skewed",
            TOO_SHORT => "touch too short",
            MERGE_FAILURE => "sample could not be merged",
            EXISTS => "this fingerprint is already enrolled",
            DATABASE_FULL => "no room for another fingerprint",
            NO_USER_ACTIVITY => "no finger on the sensor",
            NO_USER_PRESENCE_TRANSITION => "lift the finger between samples",
            _ => "unknown sample status",
        }
    }
}

/// bioEnrollment subcommands of the fingerprint modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BioEnrollmentSubcommand {
    /// 0x01 enrollBegin.
    EnrollBegin,
    /// 0x02 enrollCaptureNextSample.
    EnrollCaptureNextSample,
    /// 0x03 cancelCurrentEnrollment.
    CancelCurrentEnrollment,
    /// 0x04 enumerateEnrollments.
    EnumerateEnrollments,
    /// 0x05 setFriendlyName.
    SetFriendlyName,
    /// 0x06 removeEnrollment.
    RemoveEnrollment,
    /// 0x07 getFingerprintSensorInfo.
    GetFingerprintSensorInfo,
    /// Anything else.
    Other(u8),
}

impl BioEnrollmentSubcommand {
    /// The subcommand byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::EnrollBegin => 1,
            Self::EnrollCaptureNextSample => 2,
            Self::CancelCurrentEnrollment => 3,
            Self::EnumerateEnrollments => 4,
            Self::SetFriendlyName => 5,
            Self::RemoveEnrollment => 6,
            Self::GetFingerprintSensorInfo => 7,
            Self::Other(b) => b,
        }
    }
    /// From the byte (total).
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::EnrollBegin,
            2 => Self::EnrollCaptureNextSample,
            3 => Self::CancelCurrentEnrollment,
            4 => Self::EnumerateEnrollments,
            5 => Self::SetFriendlyName,
            6 => Self::RemoveEnrollment,
            7 => Self::GetFingerprintSensorInfo,
            b => Self::Other(b),
        }
    }
    /// Whether the subcommand needs a pinUvAuthParam (all but cancel and sensor info).
    pub fn needs_auth(self) -> bool {
        !matches!(self, Self::CancelCurrentEnrollment | Self::GetFingerprintSensorInfo)
    }
}

/// The subCommandParams map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BioEnrollmentParams {
    /// 0x01 templateId.
    pub template_id: Option<Vec<u8>>,
    /// 0x02 templateFriendlyName.
    pub template_friendly_name: Option<String>,
    /// 0x03 timeoutMilliseconds.
    pub timeout_milliseconds: Option<u64>,
}

impl BioEnrollmentParams {
    /// As a CBOR map.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(t) = &self.template_id {
            m.push((Value::from(1), Value::Bytes(t.clone())));
        }
        if let Some(n) = &self.template_friendly_name {
            m.push((Value::from(2), Value::from(n.as_str())));
        }
        if let Some(t) = self.timeout_milliseconds {
            m.push((Value::from(3), Value::from(t)));
        }
        Value::Map(m)
    }
    /// From a CBOR map (never panics).
    pub fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self {
            template_id: v.opt_bytes(1, "templateId")?.map(<[u8]>::to_vec),
            template_friendly_name: v.opt_text(2, "templateFriendlyName")?.map(str::to_owned),
            timeout_milliseconds: opt_u64(v, 3, "timeoutMilliseconds")?,
        })
    }
}

/// An authenticatorBioEnrollment request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BioEnrollmentRequest {
    /// 0x01 modality.
    pub modality: Option<u8>,
    /// 0x02 subCommand.
    pub sub_command: Option<BioEnrollmentSubcommand>,
    /// 0x03 subCommandParams.
    pub sub_command_params: Option<BioEnrollmentParams>,
    /// 0x04 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x05 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x06 getModality.
    pub get_modality: Option<bool>,
}

impl BioEnrollmentRequest {
    /// `getModality = true`.
    pub fn get_modality() -> Self {
        Self { get_modality: Some(true), ..Default::default() }
    }
    /// A fingerprint subcommand without authentication (pinUvAuthParam added by the caller).
    pub fn fingerprint(sub: BioEnrollmentSubcommand, params: Option<BioEnrollmentParams>) -> Self {
        Self {
            modality: Some(MODALITY_FINGERPRINT),
            sub_command: Some(sub),
            sub_command_params: params,
            ..Default::default()
        }
    }
    /// The message `pinUvAuthParam` authenticates:
    /// `modality || subCommand || subCommandParams` (canonical CBOR, when present).
    pub fn auth_message(&self) -> Vec<u8> {
        Self::auth_message_for(
            self.modality.unwrap_or(MODALITY_FINGERPRINT),
            self.sub_command.map_or(0, BioEnrollmentSubcommand::byte),
            self.sub_command_params.as_ref(),
        )
    }
    /// [`Self::auth_message`] before the request is built.
    pub fn auth_message_for(modality: u8, sub: u8, params: Option<&BioEnrollmentParams>) -> Vec<u8> {
        let mut m = vec![modality, sub];
        if let Some(p) = params {
            m.extend_from_slice(&p.to_value().to_vec());
        }
        m
    }
}

impl CtapCodec for BioEnrollmentRequest {
    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(x) = self.modality {
            m.push((Value::from(1), Value::from(x)));
        }
        if let Some(s) = self.sub_command {
            m.push((Value::from(2), Value::from(s.byte())));
        }
        if let Some(p) = &self.sub_command_params {
            m.push((Value::from(3), p.to_value()));
        }
        if let Some(p) = self.pin_uv_auth_protocol {
            m.push((Value::from(4), Value::from(p)));
        }
        if let Some(p) = &self.pin_uv_auth_param {
            m.push((Value::from(5), Value::Bytes(p.clone())));
        }
        if let Some(g) = self.get_modality {
            m.push((Value::from(6), Value::Bool(g)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let params = opt_map(v, 3, "subCommandParams")?.map(BioEnrollmentParams::from_value).transpose()?;
        Ok(Self {
            modality: opt_u8(v, 1, "modality")?,
            sub_command: opt_u8(v, 2, "subCommand")?.map(BioEnrollmentSubcommand::from_byte),
            sub_command_params: params,
            pin_uv_auth_protocol: opt_u64(v, 4, "pinUvAuthProtocol")?,
            pin_uv_auth_param: v.opt_bytes(5, "pinUvAuthParam")?.map(<[u8]>::to_vec),
            get_modality: v.opt_bool(6, "getModality")?,
        })
    }
}

impl CtapRequest for BioEnrollmentRequest {
    const COMMAND: Command = Command::BioEnrollment;
}

/// One enrolled fingerprint as enumerateEnrollments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    /// 0x01 templateId.
    pub template_id: Vec<u8>,
    /// 0x02 templateFriendlyName.
    pub template_friendly_name: Option<String>,
}

impl TemplateInfo {
    fn to_value(&self) -> Value {
        let mut m = vec![(Value::from(1), Value::Bytes(self.template_id.clone()))];
        if let Some(n) = &self.template_friendly_name {
            m.push((Value::from(2), Value::from(n.as_str())));
        }
        Value::Map(m)
    }
    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self {
            template_id: v.req_bytes(1, "templateId")?.to_vec(),
            template_friendly_name: v.opt_text(2, "templateFriendlyName")?.map(str::to_owned),
        })
    }
}

/// An authenticatorBioEnrollment response; which members are present
/// depends on the subcommand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BioEnrollmentResponse {
    /// 0x01 modality.
    pub modality: Option<u64>,
    /// 0x02 fingerprintKind (1 touch, 2 swipe).
    pub fingerprint_kind: Option<u64>,
    /// 0x03 maxCaptureSamplesRequiredForEnroll.
    pub max_capture_samples_required_for_enroll: Option<u64>,
    /// 0x04 templateId.
    pub template_id: Option<Vec<u8>>,
    /// 0x05 lastEnrollSampleStatus ([`sample_status`]).
    pub last_enroll_sample_status: Option<u64>,
    /// 0x06 remainingSamples.
    pub remaining_samples: Option<u64>,
    /// 0x07 templateInfos.
    pub template_infos: Option<Vec<TemplateInfo>>,
    /// 0x08 maxTemplateFriendlyName (bytes).
    pub max_template_friendly_name: Option<u64>,
}

/// Most template infos a response may carry (a bound on parsing).
const MAX_TEMPLATE_INFOS: usize = 256;

impl CtapCodec for BioEnrollmentResponse {
    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        let mut put = |k: i64, v: Option<Value>| {
            if let Some(v) = v {
                m.push((Value::from(k), v));
            }
        };
        put(1, self.modality.map(Value::from));
        put(2, self.fingerprint_kind.map(Value::from));
        put(3, self.max_capture_samples_required_for_enroll.map(Value::from));
        put(4, self.template_id.clone().map(Value::Bytes));
        put(5, self.last_enroll_sample_status.map(Value::from));
        put(6, self.remaining_samples.map(Value::from));
        put(7, self.template_infos.as_ref().map(|t| Value::Array(t.iter().map(TemplateInfo::to_value).collect())));
        put(8, self.max_template_friendly_name.map(Value::from));
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        let template_infos = match v.get_int(7) {
            None => None,
            Some(a) => {
                let a = a.as_array().ok_or(FieldError::Invalid("templateInfos"))?;
                if a.len() > MAX_TEMPLATE_INFOS {
                    return Err(Ctap2Error::Malformed("too many templateInfos"));
                }
                Some(a.iter().map(TemplateInfo::from_value).collect::<Result<Vec<_>, _>>()?)
            }
        };
        Ok(Self {
            modality: opt_u64(v, 1, "modality")?,
            fingerprint_kind: opt_u64(v, 2, "fingerprintKind")?,
            max_capture_samples_required_for_enroll: opt_u64(v, 3, "maxCaptureSamplesRequiredForEnroll")?,
            template_id: v.opt_bytes(4, "templateId")?.map(<[u8]>::to_vec),
            last_enroll_sample_status: opt_u64(v, 5, "lastEnrollSampleStatus")?,
            remaining_samples: opt_u64(v, 6, "remainingSamples")?,
            template_infos,
            max_template_friendly_name: opt_u64(v, 8, "maxTemplateFriendlyName")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    fn params() -> impl Strategy<Value = BioEnrollmentParams> {
        (proptest::option::of(bytes(16)), proptest::option::of(text()), proptest::option::of(any::<u64>())).prop_map(
            |(template_id, template_friendly_name, timeout_milliseconds)| BioEnrollmentParams {
                template_id,
                template_friendly_name,
                timeout_milliseconds,
            },
        )
    }

    proptest! {
        #[test]
        fn request_round_trip(m in proptest::option::of(any::<u8>()), s in proptest::option::of(any::<u8>()),
            p in proptest::option::of(params()), proto in proptest::option::of(1u64..3),
            a in proptest::option::of(bytes(33)), g in proptest::option::of(any::<bool>())) {
            let r = BioEnrollmentRequest { modality: m, sub_command: s.map(BioEnrollmentSubcommand::from_byte),
                sub_command_params: p, pin_uv_auth_protocol: proto, pin_uv_auth_param: a, get_modality: g };
            prop_assert_eq!(BioEnrollmentRequest::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn response_round_trip(n in proptest::option::of(any::<u64>()), t in proptest::option::of(bytes(16)),
            infos in proptest::option::of(proptest::collection::vec((bytes(16), proptest::option::of(text())), 0..4))) {
            let r = BioEnrollmentResponse { modality: n, fingerprint_kind: n, max_capture_samples_required_for_enroll: n,
                template_id: t, last_enroll_sample_status: n, remaining_samples: n,
                template_infos: infos.map(|v| v.into_iter().map(|(template_id, template_friendly_name)|
                    TemplateInfo { template_id, template_friendly_name }).collect()),
                max_template_friendly_name: n };
            prop_assert_eq!(BioEnrollmentResponse::from_cbor(&r.to_cbor()).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = BioEnrollmentRequest::from_cbor(&b);
            let _ = BioEnrollmentResponse::from_cbor(&b);
        }
    }

    #[test]
    fn subcommand_bytes_and_wire_form() {
        for b in 0..=255u8 {
            assert_eq!(BioEnrollmentSubcommand::from_byte(b).byte(), b);
        }
        // getModality: 0x09 {6: true}
        assert_eq!(BioEnrollmentRequest::get_modality().to_request_bytes(), vec![0x09, 0xa1, 0x06, 0xf5]);
        // getFingerprintSensorInfo: 0x09 {1: 1, 2: 7}
        let r = BioEnrollmentRequest::fingerprint(BioEnrollmentSubcommand::GetFingerprintSensorInfo, None);
        assert_eq!(r.to_request_bytes(), vec![0x09, 0xa2, 0x01, 0x01, 0x02, 0x07]);
        // The authenticated message of removeEnrollment: 01 06 {1: h'0102'}
        let p = BioEnrollmentParams { template_id: Some(vec![1, 2]), ..Default::default() };
        let r = BioEnrollmentRequest::fingerprint(BioEnrollmentSubcommand::RemoveEnrollment, Some(p));
        assert_eq!(r.auth_message(), vec![0x01, 0x06, 0xa1, 0x01, 0x42, 0x01, 0x02]);
    }
}

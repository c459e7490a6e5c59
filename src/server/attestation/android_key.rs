//! The "android-key" attestation statement format (WebAuthn L3 §8.4): a
//! signature over authData || clientDataHash by the credential key itself,
//! whose certificate (`x5c[0]`) carries the Android Keystore KeyDescription
//! extension (1.3.6.1.4.1.11129.2.1.17).
//!
//! KeyDescription (Android Keystore attestation schema):
//! `SEQUENCE { attestationVersion INTEGER, attestationSecurityLevel ENUMERATED,
//! keymasterVersion INTEGER, keymasterSecurityLevel ENUMERATED,
//! attestationChallenge OCTET STRING, uniqueId OCTET STRING,
//! softwareEnforced AuthorizationList, teeEnforced AuthorizationList }`;
//! AuthorizationList is a SEQUENCE of explicitly tagged optional fields, of
//! which this check reads `purpose [1]` (SET OF INTEGER), `allApplications [600]`
//! (NULL) and `origin [702]` (INTEGER).

use super::{AttestationError, AttestationType, FormatResult, Input, sig_err};
use crate::server::cert::{Tlv, oid};

/// KM_ORIGIN_GENERATED.
pub const KM_ORIGIN_GENERATED: u64 = 0;
/// KM_PURPOSE_SIGN.
pub const KM_PURPOSE_SIGN: u64 = 2;

/// The parts of an AuthorizationList this check reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationList {
    /// `purpose [1]`.
    pub purpose: Vec<u64>,
    /// `allApplications [600]` present.
    pub all_applications: bool,
    /// `origin [702]`.
    pub origin: Option<u64>,
}

/// The parts of a KeyDescription this check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    /// attestationChallenge.
    pub attestation_challenge: Vec<u8>,
    /// softwareEnforced.
    pub software_enforced: AuthorizationList,
    /// teeEnforced.
    pub tee_enforced: AuthorizationList,
}

fn malformed(what: &str) -> AttestationError {
    AttestationError::Certificate(format!("android-key KeyDescription is malformed: {what}"))
}

impl AuthorizationList {
    fn parse(seq: &Tlv<'_>) -> Result<Self, AttestationError> {
        if seq.tag != 0x30 {
            return Err(malformed("AuthorizationList is not a SEQUENCE"));
        }
        let mut out = AuthorizationList::default();
        for item in Tlv::sequence(seq.content).ok_or_else(|| malformed("AuthorizationList"))? {
            if item.is_context(1) {
                let set = Tlv::parse_all(item.content).filter(|s| s.tag == 0x31).ok_or_else(|| malformed("purpose"))?;
                for p in Tlv::sequence(set.content).ok_or_else(|| malformed("purpose"))? {
                    out.purpose.push(p.as_u64().filter(|_| p.tag == 0x02).ok_or_else(|| malformed("purpose"))?);
                }
            } else if item.is_context(600) {
                out.all_applications = true;
            } else if item.is_context(702) {
                let i = Tlv::parse_all(item.content).filter(|i| i.tag == 0x02).ok_or_else(|| malformed("origin"))?;
                out.origin = Some(i.as_u64().ok_or_else(|| malformed("origin"))?);
            }
        }
        Ok(out)
    }
}

impl KeyDescription {
    /// Parse the DER of the extension value.
    pub fn parse(der: &[u8]) -> Result<Self, AttestationError> {
        let seq = Tlv::parse_all(der).filter(|t| t.tag == 0x30).ok_or_else(|| malformed("not a SEQUENCE"))?;
        let items = Tlv::sequence(seq.content).ok_or_else(|| malformed("fields"))?;
        let field = |i: usize| items.get(i).ok_or_else(|| malformed("too few fields"));
        let challenge = field(4)?;
        if challenge.tag != 0x04 {
            return Err(malformed("attestationChallenge is not an OCTET STRING"));
        }
        Ok(KeyDescription {
            attestation_challenge: challenge.content.to_vec(),
            software_enforced: AuthorizationList::parse(field(6)?)?,
            tee_enforced: AuthorizationList::parse(field(7)?)?,
        })
    }
}

/// Verify an "android-key" statement.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    input.only_keys(&["alg", "sig", "x5c"])?;
    let alg = input.alg()?;
    let sig = input.bytes("sig")?;
    let (chain, leaf) = input.x5c_required()?;
    let cred = input.credential()?;
    let key = leaf.public_key().map_err(super::cert_err)?;
    key.verify_cose_alg(input.ctx.provider, alg, &input.signed_data(), sig, false)
        .map_err(|e| sig_err("android-key attestation signature", e))?;
    if !key.matches_cose(&cred.public_key) {
        return Err(AttestationError::Mismatch(
            "android-key leaf certificate key differs from the credential key".into(),
        ));
    }
    let ext = leaf.extension(oid::ANDROID_KEY_DESCRIPTION).ok_or_else(|| {
        AttestationError::Certificate("android-key KeyDescription extension 1.3.6.1.4.1.11129.2.1.17 missing".into())
    })?;
    let kd = KeyDescription::parse(ext.extn_value.as_bytes())?;
    if kd.attestation_challenge != input.client_data_hash {
        return Err(AttestationError::Mismatch("android-key attestationChallenge differs from clientDataHash".into()));
    }
    if kd.software_enforced.all_applications || kd.tee_enforced.all_applications {
        return Err(AttestationError::Mismatch("android-key authorization list contains allApplications".into()));
    }
    let (origin, sign) = if input.policy.android_key_require_tee {
        (kd.tee_enforced.origin, kd.tee_enforced.purpose.contains(&KM_PURPOSE_SIGN))
    } else {
        (
            kd.tee_enforced.origin.or(kd.software_enforced.origin),
            kd.tee_enforced.purpose.contains(&KM_PURPOSE_SIGN)
                || kd.software_enforced.purpose.contains(&KM_PURPOSE_SIGN),
        )
    };
    if origin != Some(KM_ORIGIN_GENERATED) {
        return Err(AttestationError::Mismatch("android-key origin is not KM_ORIGIN_GENERATED".into()));
    }
    if !sign {
        return Err(AttestationError::Mismatch("android-key purpose lacks KM_PURPOSE_SIGN".into()));
    }
    Ok((AttestationType::Basic, chain))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{AttestationPolicy, AttestationType};
    use super::*;

    #[test]
    fn verifies() {
        assert_eq!(fixture("real/android-key").verify().unwrap().attestation_type, AttestationType::Basic);
    }

    #[test]
    fn flipped_signature_is_bad_signature() {
        let mut f = fixture("real/android-key");
        f.flip_last("sig");
        assert_code(f.verify(), "attestation_bad_signature");
        let mut f = fixture("real/android-key");
        f.cdh[0] ^= 1;
        assert_code(f.verify(), "attestation_bad_signature");
    }

    #[test]
    fn leaf_must_certify_the_credential_key() {
        let mut f = fixture("real/android-key");
        f.x5c_mut()[0] = crate::proto::cbor::Value::Bytes(fixture("w3c/packed.ES256").leaf());
        // The packed leaf's key did not make this signature.
        assert_code(f.verify(), "attestation_bad_signature");
    }

    fn tlv(tag: &[u8], content: &[u8]) -> Vec<u8> {
        let mut v = tag.to_vec();
        assert!(content.len() < 128);
        v.push(content.len() as u8);
        v.extend_from_slice(content);
        v
    }

    fn key_description(challenge: &[u8], sw: &[u8], tee: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(tlv(&[0x02], &[3]));
        body.extend(tlv(&[0x0a], &[1]));
        body.extend(tlv(&[0x02], &[4]));
        body.extend(tlv(&[0x0a], &[1]));
        body.extend(tlv(&[0x04], challenge));
        body.extend(tlv(&[0x04], &[]));
        body.extend(tlv(&[0x30], sw));
        body.extend(tlv(&[0x30], tee));
        tlv(&[0x30], &body)
    }

    #[test]
    fn key_description_fields() {
        let purpose_sign = tlv(&[0xa1], &tlv(&[0x31], &tlv(&[0x02], &[2])));
        let origin_generated = tlv(&[0xbf, 0x85, 0x3e], &tlv(&[0x02], &[0]));
        let all_apps = tlv(&[0xbf, 0x84, 0x58], &[0x05, 0x00]);
        let tee = [purpose_sign.clone(), origin_generated.clone()].concat();
        let kd = KeyDescription::parse(&key_description(&[7; 32], &all_apps, &tee)).unwrap();
        assert_eq!(kd.attestation_challenge, vec![7; 32]);
        assert!(kd.software_enforced.all_applications);
        assert!(!kd.tee_enforced.all_applications);
        assert_eq!(kd.tee_enforced.purpose, vec![KM_PURPOSE_SIGN]);
        assert_eq!(kd.tee_enforced.origin, Some(KM_ORIGIN_GENERATED));
        assert!(KeyDescription::parse(&[0x30, 0x00]).is_err());
        assert!(KeyDescription::parse(&key_description(&[1], &[0xa1, 0x05], &[])).is_err());
    }

    #[test]
    fn tee_only_policy() {
        let f = fixture("real/android-key");
        let strict = AttestationPolicy { android_key_require_tee: true, ..AttestationPolicy::default() };
        // This device enforces origin and purpose in its TEE list or not; either
        // way the result must be a verdict, not a panic, and the default policy accepts.
        let _ = f.verify_with(true, true, &strict);
        f.verify().unwrap();
    }
}

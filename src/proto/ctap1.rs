//! CTAP1 / U2F raw messages (FIDO U2F Raw Message Formats v1.2) in ISO 7816-4
//! APDU framing, and the conversion of a U2F registration into a `fido-u2f`
//! attestation object (WebAuthn L3 §8.6).
//!
//! Commands use short or extended length encoding on input; [`Apdu::encode`]
//! writes extended length, as CTAPHID MSG expects.

use super::attestation::AttestationObject;
use super::auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
use super::cbor::{MapBuilder, Value};
use super::cose::{CoseAlgorithm, CoseKey};

/// U2F instruction bytes.
pub mod ins {
    /// U2F_REGISTER.
    pub const REGISTER: u8 = 0x01;
    /// U2F_AUTHENTICATE.
    pub const AUTHENTICATE: u8 = 0x02;
    /// U2F_VERSION.
    pub const VERSION: u8 = 0x03;
}

/// U2F_AUTHENTICATE control bytes (P1).
pub mod control {
    /// Check only: answer "conditions not satisfied" if the key handle is valid.
    pub const CHECK_ONLY: u8 = 0x07;
    /// Enforce user presence and sign.
    pub const ENFORCE_USER_PRESENCE_AND_SIGN: u8 = 0x03;
    /// Sign without user presence.
    pub const DONT_ENFORCE_USER_PRESENCE_AND_SIGN: u8 = 0x08;
}

/// ISO 7816 status words U2F uses.
pub mod sw {
    /// 0x9000: success.
    pub const NO_ERROR: u16 = 0x9000;
    /// 0x6985: user presence required (or key handle valid, for check-only).
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    /// 0x6986: command not allowed (U2F switched off by alwaysUv).
    pub const COMMAND_NOT_ALLOWED: u16 = 0x6986;
    /// 0x6A80: bad key handle.
    pub const WRONG_DATA: u16 = 0x6A80;
    /// 0x6700: wrong request length.
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// 0x6E00: class not supported.
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    /// 0x6D00: instruction not supported.
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
}

/// Why a U2F message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ctap1Error {
    /// The APDU framing is inconsistent.
    #[error("malformed APDU: {0}")]
    Apdu(&'static str),
    /// The message is shorter than its fields say.
    #[error("U2F message truncated: {0}")]
    Truncated(&'static str),
    /// A field has an invalid value.
    #[error("U2F message invalid: {0}")]
    Invalid(&'static str),
    /// The device answered with a status word other than 0x9000.
    #[error("U2F status word 0x{0:04x}")]
    Status(u16),
}

impl Ctap1Error {
    /// A stable snake_case identifier.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Apdu(_) => "malformed_apdu",
            Self::Truncated(_) => "truncated",
            Self::Invalid(_) => "invalid",
            Self::Status(_) => "u2f_status",
        }
    }
}

/// A command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu {
    /// Class byte (0 for U2F).
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data.
    pub data: Vec<u8>,
    /// Expected response length (Ne); 65536 means "as much as available".
    pub le: Option<u32>,
}

impl Apdu {
    /// Encode with extended length (CLA INS P1 P2 00 Lc1 Lc2 data Le1 Le2).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        let n = self.data.len().min(0xffff);
        if n > 0 {
            out.push(0);
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&self.data[..n]);
        }
        if let Some(le) = self.le {
            if n == 0 {
                out.push(0);
            }
            let v = if le >= 65536 { 0 } else { le as u16 };
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Parse a command APDU in short or extended form (ISO 7816-4 cases 1-4).
    pub fn parse(b: &[u8]) -> Result<Self, Ctap1Error> {
        let (header, body) = b.split_at_checked(4).ok_or(Ctap1Error::Apdu("shorter than the 4-byte header"))?;
        let (cla, ins, p1, p2) = (header[0], header[1], header[2], header[3]);
        let mk = |data: &[u8], le| Ok(Apdu { cla, ins, p1, p2, data: data.to_vec(), le });
        let ext = |hi: u8, lo: u8| -> u32 {
            let v = u16::from_be_bytes([hi, lo]) as u32;
            if v == 0 { 65536 } else { v }
        };
        match body {
            [] => mk(&[], None),
            // Short case 2: Le only.
            [le] => mk(&[], Some(if *le == 0 { 256 } else { *le as u32 })),
            // Extended case 2: 00 Le1 Le2.
            [0, hi, lo] => mk(&[], Some(ext(*hi, *lo))),
            [0, hi, lo, rest @ ..] => {
                // Extended case 3/4: 00 Lc1 Lc2 data [Le1 Le2].
                let lc = u16::from_be_bytes([*hi, *lo]) as usize;
                if lc == 0 {
                    return Err(Ctap1Error::Apdu("extended Lc of zero"));
                }
                match rest.len().checked_sub(lc) {
                    Some(0) => mk(rest, None),
                    Some(2) => {
                        let (data, le) = rest.split_at(lc);
                        mk(data, Some(ext(le[0], le[1])))
                    }
                    _ => Err(Ctap1Error::Apdu("extended Lc does not match the data")),
                }
            }
            [lc, rest @ ..] => {
                // Short case 3/4: Lc data [Le].
                let lc = *lc as usize;
                match rest.len().checked_sub(lc) {
                    Some(0) => mk(rest, None),
                    Some(1) => {
                        let le = rest[lc];
                        mk(&rest[..lc], Some(if le == 0 { 256 } else { le as u32 }))
                    }
                    _ => Err(Ctap1Error::Apdu("short Lc does not match the data")),
                }
            }
        }
    }
}

/// Split a response APDU into data and status word; error if not 0x9000.
pub fn parse_response(b: &[u8]) -> Result<&[u8], Ctap1Error> {
    let n = b.len().checked_sub(2).ok_or(Ctap1Error::Truncated("response shorter than a status word"))?;
    let sw = u16::from_be_bytes([b[n], b[n + 1]]);
    if sw != sw::NO_ERROR {
        return Err(Ctap1Error::Status(sw));
    }
    Ok(&b[..n])
}

/// Append a status word to response data.
pub fn with_status(mut data: Vec<u8>, status: u16) -> Vec<u8> {
    data.extend_from_slice(&status.to_be_bytes());
    data
}

/// U2F_REGISTER request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// Challenge parameter: SHA-256 of the client data.
    pub challenge: [u8; 32],
    /// Application parameter: SHA-256 of the app ID (the RP ID hash).
    pub application: [u8; 32],
}

impl RegisterRequest {
    /// As an APDU.
    pub fn to_apdu(&self) -> Apdu {
        let mut data = self.challenge.to_vec();
        data.extend_from_slice(&self.application);
        Apdu { cla: 0, ins: ins::REGISTER, p1: 0, p2: 0, data, le: Some(65536) }
    }
    /// From an APDU's data.
    pub fn from_data(d: &[u8]) -> Result<Self, Ctap1Error> {
        if d.len() != 64 {
            return Err(Ctap1Error::Invalid("register data must be 64 bytes"));
        }
        let mut challenge = [0u8; 32];
        let mut application = [0u8; 32];
        challenge.copy_from_slice(&d[..32]);
        application.copy_from_slice(&d[32..]);
        Ok(Self { challenge, application })
    }
}

/// U2F_AUTHENTICATE request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateRequest {
    /// Control byte (see [`control`]).
    pub control: u8,
    /// Challenge parameter.
    pub challenge: [u8; 32],
    /// Application parameter.
    pub application: [u8; 32],
    /// Key handle (at most 255 bytes).
    pub key_handle: Vec<u8>,
}

impl AuthenticateRequest {
    /// As an APDU.
    pub fn to_apdu(&self) -> Apdu {
        let kh = &self.key_handle[..self.key_handle.len().min(255)];
        let mut data = self.challenge.to_vec();
        data.extend_from_slice(&self.application);
        data.push(kh.len() as u8);
        data.extend_from_slice(kh);
        Apdu { cla: 0, ins: ins::AUTHENTICATE, p1: self.control, p2: 0, data, le: Some(65536) }
    }
    /// From an APDU.
    pub fn from_apdu(a: &Apdu) -> Result<Self, Ctap1Error> {
        let d = &a.data;
        if d.len() < 65 {
            return Err(Ctap1Error::Truncated("authenticate data"));
        }
        let l = d[64] as usize;
        if d.len() != 65 + l {
            return Err(Ctap1Error::Invalid("key handle length does not match"));
        }
        let mut challenge = [0u8; 32];
        let mut application = [0u8; 32];
        challenge.copy_from_slice(&d[..32]);
        application.copy_from_slice(&d[32..64]);
        Ok(Self { control: a.p1, challenge, application, key_handle: d[65..].to_vec() })
    }
}

/// Total length of the DER item at the start of `b` (tag, length, contents).
pub fn der_item_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return 2usize.checked_add(first as usize);
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(2 + i)? as usize;
    }
    (2 + n).checked_add(len)
}

/// U2F_REGISTER response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterResponse {
    /// The new public key (uncompressed P-256 point, 65 bytes).
    pub public_key: Vec<u8>,
    /// The key handle.
    pub key_handle: Vec<u8>,
    /// The attestation certificate (DER).
    pub certificate: Vec<u8>,
    /// ECDSA signature over 0x00 || application || challenge || key handle || public key.
    pub signature: Vec<u8>,
}

impl RegisterResponse {
    /// Parse the response data (status word already removed).
    pub fn parse(b: &[u8]) -> Result<Self, Ctap1Error> {
        if b.first() != Some(&0x05) {
            return Err(Ctap1Error::Invalid("reserved byte must be 0x05"));
        }
        let public_key = b.get(1..66).ok_or(Ctap1Error::Truncated("public key"))?.to_vec();
        if public_key[0] != 0x04 {
            return Err(Ctap1Error::Invalid("public key is not an uncompressed point"));
        }
        let l = *b.get(66).ok_or(Ctap1Error::Truncated("key handle length"))? as usize;
        let key_handle = b.get(67..67 + l).ok_or(Ctap1Error::Truncated("key handle"))?.to_vec();
        let rest = &b[67 + l..];
        if rest.first() != Some(&0x30) {
            return Err(Ctap1Error::Invalid("certificate is not a DER SEQUENCE"));
        }
        let cl = der_item_len(rest).ok_or(Ctap1Error::Truncated("certificate length"))?;
        let certificate = rest.get(..cl).ok_or(Ctap1Error::Truncated("certificate"))?.to_vec();
        let signature = rest[cl..].to_vec();
        if signature.is_empty() {
            return Err(Ctap1Error::Truncated("signature"));
        }
        Ok(Self { public_key, key_handle, certificate, signature })
    }

    /// Encode the response data (without the status word).
    pub fn encode(&self) -> Vec<u8> {
        let kh = &self.key_handle[..self.key_handle.len().min(255)];
        let mut out = vec![0x05];
        out.extend_from_slice(&self.public_key);
        out.push(kh.len() as u8);
        out.extend_from_slice(kh);
        out.extend_from_slice(&self.certificate);
        out.extend_from_slice(&self.signature);
        out
    }

    /// The bytes the registration signature covers.
    pub fn signed_data(&self, application: &[u8; 32], challenge: &[u8; 32]) -> Vec<u8> {
        let mut m = vec![0x00];
        m.extend_from_slice(application);
        m.extend_from_slice(challenge);
        m.extend_from_slice(&self.key_handle);
        m.extend_from_slice(&self.public_key);
        m
    }

    /// The `fido-u2f` attestation object for this registration (WebAuthn L3
    /// §8.6): rpIdHash = application parameter, flags UP|AT, counter 0, AAGUID
    /// zero, credential ID = key handle, ES256 COSE key; attStmt {sig, x5c}.
    pub fn to_attestation_object(&self, application: &[u8; 32]) -> Result<AttestationObject, Ctap1Error> {
        let public_key = CoseKey::p256_from_sec1(&self.public_key, CoseAlgorithm::ES256)
            .map_err(|_| Ctap1Error::Invalid("public key"))?;
        let auth_data = AuthenticatorData {
            rp_id_hash: *application,
            flags: Flags(Flags::UP | Flags::AT),
            sign_count: 0,
            attested_credential: Some(AttestedCredentialData {
                aaguid: [0; 16],
                credential_id: self.key_handle.clone(),
                public_key_bytes: public_key.to_bytes(),
                public_key,
            }),
            extensions: None,
        };
        let att_stmt = MapBuilder::new()
            .insert("sig", self.signature.clone())
            .insert("x5c", Value::Array(vec![Value::Bytes(self.certificate.clone())]))
            .build();
        let auth_data_raw = auth_data.to_bytes();
        Ok(AttestationObject { fmt: "fido-u2f".into(), att_stmt, auth_data, auth_data_raw })
    }
}

/// U2F_AUTHENTICATE response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateResponse {
    /// User presence byte (bit 0 set when the user was present).
    pub user_presence: u8,
    /// Signature counter.
    pub counter: u32,
    /// ECDSA signature over application || user presence || counter || challenge.
    pub signature: Vec<u8>,
}

impl AuthenticateResponse {
    /// Parse the response data (status word already removed).
    pub fn parse(b: &[u8]) -> Result<Self, Ctap1Error> {
        if b.len() < 6 {
            return Err(Ctap1Error::Truncated("authenticate response"));
        }
        Ok(Self {
            user_presence: b[0],
            counter: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            signature: b[5..].to_vec(),
        })
    }
    /// Encode the response data (without the status word).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.user_presence];
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.signature);
        out
    }
    /// The WebAuthn authenticator data this assertion corresponds to
    /// (application || user presence || counter): the signature covers it
    /// followed by the challenge parameter.
    pub fn auth_data(&self, application: &[u8; 32]) -> Vec<u8> {
        let mut m = application.to_vec();
        m.push(self.user_presence);
        m.extend_from_slice(&self.counter.to_be_bytes());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{EcCurve, HashAlg, default_provider};
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn python_fido2_u2f_to_fido_u2f() {
        let path = std::env::var("HWKEY_CTAP_VECTORS")
            .unwrap_or_else(|_| "/work/shared/vectors/ctap-examples.json".to_owned());
        let all: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let case = all["cases"].as_array().unwrap().iter().find(|c| c["expected"]["fmt"] == "fido-u2f").unwrap();
        let app: [u8; 32] = hex(case["app_param_hex"].as_str().unwrap()).try_into().unwrap();
        // The vectors file has the two labels swapped: the 32-byte value is the
        // challenge (client data hash), the long one is the registration data.
        let mut a = hex(case["u2f_registration_data_hex"].as_str().unwrap());
        let mut b = hex(case["client_data_hash_hex"].as_str().unwrap());
        if a.len() != 32 {
            std::mem::swap(&mut a, &mut b);
        }
        let challenge: [u8; 32] = a.try_into().unwrap();
        let reg = RegisterResponse::parse(&b).unwrap();
        assert_eq!(reg.encode(), b);
        let att = reg.to_attestation_object(&app).unwrap();
        assert_eq!(att.fmt, "fido-u2f");
        let parsed = AttestationObject::parse(&att.to_bytes()).unwrap();
        let acd = parsed.auth_data.attested_credential.as_ref().unwrap();
        assert_eq!(acd.credential_id, reg.key_handle);
        assert_eq!(parsed.auth_data.flags.0, 0x41);
        // fido-u2f verification: 0x00 || rpIdHash || clientDataHash || credId || pubKey,
        // under the certificate's key.
        let spki_prefix = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        let pos = reg.certificate.windows(spki_prefix.len()).position(|w| w == spki_prefix).unwrap();
        let cert_key = &reg.certificate[pos + spki_prefix.len()..pos + spki_prefix.len() + 65];
        let sig = parsed.att_stmt.get_text("sig").and_then(Value::as_bytes).unwrap();
        default_provider()
            .verify_ecdsa(EcCurve::P256, HashAlg::Sha256, cert_key, &reg.signed_data(&app, &challenge), sig)
            .unwrap();
    }

    #[test]
    fn apdu_forms() {
        let r = RegisterRequest { challenge: [1; 32], application: [2; 32] };
        let enc = r.to_apdu().encode();
        assert_eq!(&enc[..7], &[0, 1, 0, 0, 0, 0, 64]);
        let a = Apdu::parse(&enc).unwrap();
        assert_eq!(a.data.len(), 64);
        assert_eq!(a.le, Some(65536));
        assert_eq!(RegisterRequest::from_data(&a.data).unwrap(), r);
        // Short form with Le.
        let mut short = vec![0, 1, 0, 0, 64];
        short.extend_from_slice(&[1; 32]);
        short.extend_from_slice(&[2; 32]);
        short.push(0);
        assert_eq!(Apdu::parse(&short).unwrap().data.len(), 64);
        // Version: no data.
        assert_eq!(Apdu::parse(&[0, 3, 0, 0]).unwrap().data, Vec::<u8>::new());
        assert_eq!(Apdu::parse(&[0, 3, 0, 0, 0, 0, 0]).unwrap().le, Some(65536));
        assert!(Apdu::parse(&[0, 3, 0]).is_err());
        assert!(Apdu::parse(&[0, 3, 0, 0, 5, 1]).is_err());
        let auth =
            AuthenticateRequest { control: 3, challenge: [3; 32], application: [4; 32], key_handle: vec![9; 70] };
        assert_eq!(AuthenticateRequest::from_apdu(&Apdu::parse(&auth.to_apdu().encode()).unwrap()).unwrap(), auth);
        assert_eq!(parse_response(&[1, 2, 0x90, 0x00]).unwrap(), &[1, 2]);
        assert_eq!(parse_response(&[0x69, 0x85]), Err(Ctap1Error::Status(0x6985)));
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(a) = Apdu::parse(&b) {
                let _ = AuthenticateRequest::from_apdu(&a);
                prop_assert_eq!(Apdu::parse(&a.encode()).map(|x| x.data), Ok(a.data.clone()));
            }
            let _ = RegisterResponse::parse(&b);
            let _ = AuthenticateResponse::parse(&b);
            let _ = parse_response(&b);
        }

        #[test]
        fn authenticate_response_round_trip(up in any::<u8>(), c in any::<u32>(), sig in proptest::collection::vec(any::<u8>(), 1..80)) {
            let r = AuthenticateResponse { user_presence: up, counter: c, signature: sig };
            prop_assert_eq!(AuthenticateResponse::parse(&r.encode()).unwrap(), r);
        }
    }
}

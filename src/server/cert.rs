//! X.509 certificates for attestation: parsing (on `x509-cert`), the subject
//! public key mapped onto the crypto provider's primitives, signature checks by
//! signature-algorithm OID, validity at a given time, and extension lookup.
//!
//! Also a small strict DER TLV reader ([`Tlv`]) for the attestation-specific
//! extensions (Android KeyDescription, Apple nonce, FIDO AAGUID) whose ASN.1
//! `x509-cert` does not know.

use crate::crypto::{CryptoError, CryptoProvider, EcCurve, HashAlg, RsaPadding, ct_eq};
use crate::proto::cose::{CoseAlgorithm, CoseKey, curve};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::Extension;

/// Why a certificate could not be used. Each variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The bytes are not a DER X.509 certificate.
    #[error("certificate is not valid DER X.509: {0}")]
    Parse(String),
    /// The subject public key algorithm or curve is not supported.
    #[error("unsupported certificate key: {0}")]
    UnsupportedKey(&'static str),
    /// The signature algorithm is not supported.
    #[error("unsupported certificate signature algorithm {0}")]
    UnsupportedSignature(String),
    /// The signature does not verify.
    #[error("certificate signature does not verify")]
    BadSignature,
    /// The certificate is not valid at the verification time.
    #[error("certificate is not valid at the verification time")]
    Expired,
    /// An extension is malformed.
    #[error("malformed certificate extension {0}")]
    BadExtension(&'static str),
}

impl CertError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            CertError::Parse(_) => "certificate_malformed",
            CertError::UnsupportedKey(_) => "certificate_key_unsupported",
            CertError::UnsupportedSignature(_) => "certificate_signature_algorithm_unsupported",
            CertError::BadSignature => "certificate_bad_signature",
            CertError::Expired => "certificate_expired",
            CertError::BadExtension(_) => "certificate_extension_malformed",
        }
    }
}

/// Object identifiers used by the attestation formats.
pub mod oid {
    use const_oid::ObjectIdentifier;
    /// id-ecPublicKey.
    pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    /// prime256v1.
    pub const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    /// secp384r1.
    pub const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    /// secp521r1.
    pub const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
    /// rsaEncryption.
    pub const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    /// id-Ed25519.
    pub const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    /// ecdsa-with-SHA1.
    pub const ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
    /// ecdsa-with-SHA256.
    pub const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    /// ecdsa-with-SHA384.
    pub const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
    /// ecdsa-with-SHA512.
    pub const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
    /// sha1WithRSAEncryption.
    pub const RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
    /// sha256WithRSAEncryption.
    pub const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    /// sha384WithRSAEncryption.
    pub const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
    /// sha512WithRSAEncryption.
    pub const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
    /// id-RSASSA-PSS.
    pub const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
    /// id-sha1.
    pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
    /// id-sha256.
    pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// id-sha384.
    pub const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
    /// id-sha512.
    pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// basicConstraints.
    pub const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
    /// keyUsage.
    pub const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
    /// subjectAltName.
    pub const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
    /// extKeyUsage.
    pub const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
    /// id-fido-gen-ce-aaguid.
    pub const FIDO_AAGUID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4");
    /// tcg-kp-AIKCertificate.
    pub const TCG_KP_AIK_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.8.3");
    /// tcg-at-tpmManufacturer.
    pub const TCG_AT_TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
    /// tcg-at-tpmModel.
    pub const TCG_AT_TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
    /// tcg-at-tpmVersion.
    pub const TCG_AT_TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");
    /// Android key attestation KeyDescription.
    pub const ANDROID_KEY_DESCRIPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.1.17");
    /// Apple anonymous attestation nonce.
    pub const APPLE_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113635.100.8.2");
    /// countryName.
    pub const AT_C: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
    /// organizationName.
    pub const AT_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
    /// organizationalUnitName.
    pub const AT_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
    /// commonName.
    pub const AT_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
}

/// A public key taken from a certificate, in the provider's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA key: curve and uncompressed SEC1 point.
    Ec {
        /// The curve.
        curve: EcCurve,
        /// Uncompressed SEC1 point.
        point: Vec<u8>,
    },
    /// RSA key, big-endian modulus and exponent without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// Ed25519 key (32 bytes).
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// True when this key is the same key as the COSE key (algorithm labels ignored).
    pub fn matches_cose(&self, key: &CoseKey) -> bool {
        match (self, key) {
            (PublicKey::Ec { curve: c, point }, CoseKey::Ec2 { crv, .. }) => {
                let want = match c {
                    EcCurve::P256 => curve::P256,
                    EcCurve::P384 => curve::P384,
                    EcCurve::P521 => curve::P521,
                };
                want == *crv && key.sec1_uncompressed().is_some_and(|p| ct_eq(&p, point))
            }
            (PublicKey::Rsa { n, e }, CoseKey::Rsa { n: n2, e: e2, .. }) => {
                strip_zeros(n) == strip_zeros(n2) && strip_zeros(e) == strip_zeros(e2)
            }
            (PublicKey::Ed25519(a), CoseKey::Okp { crv: curve::ED25519, x, .. }) => ct_eq(a, x),
            _ => false,
        }
    }

    /// Verify `sig` over `msg` with this key under a COSE algorithm (for
    /// attestation statements signed by a certificate's key).
    pub fn verify_cose_alg(
        &self,
        provider: &dyn CryptoProvider,
        alg: CoseAlgorithm,
        msg: &[u8],
        sig: &[u8],
        allow_rs1: bool,
    ) -> Result<(), CryptoError> {
        let (padding, hash) = match alg {
            CoseAlgorithm::ES256 | CoseAlgorithm::ESP256 => (None, HashAlg::Sha256),
            CoseAlgorithm::ES384 | CoseAlgorithm::ESP384 => (None, HashAlg::Sha384),
            CoseAlgorithm::ES512 | CoseAlgorithm::ESP512 => (None, HashAlg::Sha512),
            CoseAlgorithm::RS256 => (Some(RsaPadding::Pkcs1v15), HashAlg::Sha256),
            CoseAlgorithm::RS384 => (Some(RsaPadding::Pkcs1v15), HashAlg::Sha384),
            CoseAlgorithm::RS512 => (Some(RsaPadding::Pkcs1v15), HashAlg::Sha512),
            CoseAlgorithm::PS256 => (Some(RsaPadding::Pss), HashAlg::Sha256),
            CoseAlgorithm::PS384 => (Some(RsaPadding::Pss), HashAlg::Sha384),
            CoseAlgorithm::PS512 => (Some(RsaPadding::Pss), HashAlg::Sha512),
            CoseAlgorithm::RS1 if allow_rs1 => (Some(RsaPadding::Pkcs1v15), HashAlg::Sha1),
            CoseAlgorithm::RS1 => return Err(CryptoError::Unsupported("RS1 (SHA-1) is disabled")),
            CoseAlgorithm::EDDSA | CoseAlgorithm::ED25519 => {
                return match self {
                    PublicKey::Ed25519(pk) => provider.verify_ed25519(pk, msg, sig),
                    _ => Err(CryptoError::InvalidKey("EdDSA needs an Ed25519 key")),
                };
            }
            CoseAlgorithm::ED448 => return Err(CryptoError::Unsupported("Ed448")),
            _ => return Err(CryptoError::Unsupported("COSE algorithm")),
        };
        match (self, padding) {
            (PublicKey::Ec { curve, point }, None) => {
                // The COSE algorithm fixes the curve too (ES256 = P-256, ...).
                let want = match alg {
                    CoseAlgorithm::ES256 | CoseAlgorithm::ESP256 => EcCurve::P256,
                    CoseAlgorithm::ES384 | CoseAlgorithm::ESP384 => EcCurve::P384,
                    _ => EcCurve::P521,
                };
                if *curve != want {
                    return Err(CryptoError::InvalidKey("certificate curve does not match the algorithm"));
                }
                provider.verify_ecdsa(*curve, hash, point, msg, sig)
            }
            (PublicKey::Rsa { n, e }, Some(p)) => provider.verify_rsa(p, hash, n, e, msg, sig),
            _ => Err(CryptoError::InvalidKey("certificate key type does not match the algorithm")),
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(i..).unwrap_or_default()
}

/// A parsed certificate with its original DER (signatures cover the exact bytes).
#[derive(Debug, Clone)]
pub struct ParsedCert {
    /// The decoded certificate.
    pub cert: Certificate,
    /// The DER bytes as received.
    pub der: Vec<u8>,
    /// The exact bytes of tbsCertificate within `der`.
    tbs_range: (usize, usize),
}

impl ParsedCert {
    /// Parse a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
        // Locate tbsCertificate: the first element inside the outer SEQUENCE.
        let outer = Tlv::parse_all(der).ok_or_else(|| CertError::Parse("outer SEQUENCE".into()))?;
        let header_len = der.len() - outer.content.len();
        let (tbs, _) = Tlv::parse(outer.content).ok_or_else(|| CertError::Parse("tbsCertificate".into()))?;
        let tbs_len = outer.content.len() - tbs.rest_len;
        Ok(ParsedCert { cert, der: der.to_vec(), tbs_range: (header_len, header_len + tbs_len) })
    }

    /// The exact tbsCertificate bytes.
    pub fn tbs_bytes(&self) -> &[u8] {
        self.der.get(self.tbs_range.0..self.tbs_range.1).unwrap_or_default()
    }

    /// The subject public key.
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        let bits = spki.subject_public_key.as_bytes().ok_or(CertError::UnsupportedKey("unaligned key bits"))?;
        let alg = spki.algorithm.oid;
        if alg == oid::EC_PUBLIC_KEY {
            let param = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or(CertError::UnsupportedKey("EC key without a named curve"))?;
            let (curve, len) = if param == oid::P256 {
                (EcCurve::P256, 65)
            } else if param == oid::P384 {
                (EcCurve::P384, 97)
            } else if param == oid::P521 {
                (EcCurve::P521, 133)
            } else {
                return Err(CertError::UnsupportedKey("EC curve"));
            };
            if bits.len() != len || bits.first() != Some(&4) {
                return Err(CertError::UnsupportedKey("EC point must be uncompressed"));
            }
            Ok(PublicKey::Ec { curve, point: bits.to_vec() })
        } else if alg == oid::RSA {
            let seq = Tlv::parse_all(bits).filter(|t| t.tag == 0x30).ok_or(CertError::UnsupportedKey("RSA key"))?;
            let (n, rest) =
                Tlv::parse(seq.content).filter(|(t, _)| t.tag == 0x02).ok_or(CertError::UnsupportedKey("RSA n"))?;
            let e = Tlv::parse_all(rest).filter(|t| t.tag == 0x02).ok_or(CertError::UnsupportedKey("RSA e"))?;
            Ok(PublicKey::Rsa { n: strip_zeros(n.content).to_vec(), e: strip_zeros(e.content).to_vec() })
        } else if alg == oid::ED25519 {
            if bits.len() != 32 {
                return Err(CertError::UnsupportedKey("Ed25519 key must be 32 bytes"));
            }
            Ok(PublicKey::Ed25519(bits.to_vec()))
        } else {
            Err(CertError::UnsupportedKey("public key algorithm"))
        }
    }

    /// Verify that this certificate was signed by `issuer_key`.
    pub fn verify_signed_by(&self, provider: &dyn CryptoProvider, issuer_key: &PublicKey) -> Result<(), CertError> {
        let alg = &self.cert.signature_algorithm;
        if alg != &self.cert.tbs_certificate.signature {
            return Err(CertError::Parse("signature algorithms inside and outside tbsCertificate differ".into()));
        }
        let sig = self.cert.signature.as_bytes().ok_or(CertError::BadSignature)?;
        let msg = self.tbs_bytes();
        let o = alg.oid;
        let ecdsa = |hash| match issuer_key {
            PublicKey::Ec { curve, point } => provider.verify_ecdsa(*curve, hash, point, msg, sig),
            _ => Err(CryptoError::InvalidKey("issuer key is not an EC key")),
        };
        let rsa = |padding, hash| match issuer_key {
            PublicKey::Rsa { n, e } => provider.verify_rsa(padding, hash, n, e, msg, sig),
            _ => Err(CryptoError::InvalidKey("issuer key is not an RSA key")),
        };
        let res = if o == oid::ECDSA_SHA256 {
            ecdsa(HashAlg::Sha256)
        } else if o == oid::ECDSA_SHA384 {
            ecdsa(HashAlg::Sha384)
        } else if o == oid::ECDSA_SHA512 {
            ecdsa(HashAlg::Sha512)
        } else if o == oid::ECDSA_SHA1 {
            ecdsa(HashAlg::Sha1)
        } else if o == oid::RSA_SHA256 {
            rsa(RsaPadding::Pkcs1v15, HashAlg::Sha256)
        } else if o == oid::RSA_SHA384 {
            rsa(RsaPadding::Pkcs1v15, HashAlg::Sha384)
        } else if o == oid::RSA_SHA512 {
            rsa(RsaPadding::Pkcs1v15, HashAlg::Sha512)
        } else if o == oid::RSA_SHA1 {
            rsa(RsaPadding::Pkcs1v15, HashAlg::Sha1)
        } else if o == oid::RSA_PSS {
            let params = alg.parameters.as_ref().map(|p| p.value()).unwrap_or_default();
            let hash =
                pss_hash(params).ok_or_else(|| CertError::UnsupportedSignature("RSASSA-PSS parameters".into()))?;
            rsa(RsaPadding::Pss, hash)
        } else if o == oid::ED25519 {
            match issuer_key {
                PublicKey::Ed25519(pk) => provider.verify_ed25519(pk, msg, sig),
                _ => Err(CryptoError::InvalidKey("issuer key is not an Ed25519 key")),
            }
        } else {
            return Err(CertError::UnsupportedSignature(o.to_string()));
        };
        res.map_err(|e| match e {
            CryptoError::Unsupported(_) => CertError::UnsupportedSignature(o.to_string()),
            _ => CertError::BadSignature,
        })
    }

    /// Check notBefore <= now <= notAfter.
    pub fn check_validity(&self, now_unix: i64) -> Result<(), CertError> {
        let v = &self.cert.tbs_certificate.validity;
        let nb = v.not_before.to_unix_duration().as_secs();
        let na = v.not_after.to_unix_duration().as_secs();
        let now = u64::try_from(now_unix).map_err(|_| CertError::Expired)?;
        if now < nb || now > na { Err(CertError::Expired) } else { Ok(()) }
    }

    /// The extension with this OID, if present (the first one).
    pub fn extension(&self, id: ObjectIdentifier) -> Option<&Extension> {
        self.cert.tbs_certificate.extensions.as_ref()?.iter().find(|e| e.extn_id == id)
    }

    /// basicConstraints: `Some(ca)` when present.
    pub fn basic_constraints_ca(&self) -> Result<Option<bool>, CertError> {
        match self.extension(oid::BASIC_CONSTRAINTS) {
            None => Ok(None),
            Some(ext) => {
                let bc = x509_cert::ext::pkix::BasicConstraints::from_der(ext.extn_value.as_bytes())
                    .map_err(|_| CertError::BadExtension("basicConstraints"))?;
                Ok(Some(bc.ca))
            }
        }
    }

    /// basicConstraints pathLenConstraint, when present.
    pub fn path_len_constraint(&self) -> Option<u8> {
        let ext = self.extension(oid::BASIC_CONSTRAINTS)?;
        x509_cert::ext::pkix::BasicConstraints::from_der(ext.extn_value.as_bytes()).ok()?.path_len_constraint
    }

    /// keyUsage: `None` when absent, else whether keyCertSign is set (an
    /// unreadable extension counts as not allowing certificate signing).
    pub fn key_cert_sign(&self) -> Option<bool> {
        let ext = self.extension(oid::KEY_USAGE)?;
        Some(x509_cert::ext::pkix::KeyUsage::from_der(ext.extn_value.as_bytes()).is_ok_and(|ku| ku.key_cert_sign()))
    }

    /// True when the certificate's version is 3.
    pub fn is_v3(&self) -> bool {
        self.cert.tbs_certificate.version == x509_cert::certificate::Version::V3
    }

    /// The string values of the subject attributes of type `id`.
    pub fn subject_attr(&self, id: ObjectIdentifier) -> Vec<String> {
        name_attrs(&self.cert.tbs_certificate.subject, id)
    }

    /// The DER of the subject name.
    pub fn subject_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.subject.to_der().unwrap_or_default()
    }

    /// The DER of the issuer name.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.issuer.to_der().unwrap_or_default()
    }

    /// Check the id-fido-gen-ce-aaguid extension, if present: not critical and
    /// equal to `aaguid`.
    pub fn check_aaguid_extension(&self, aaguid: &[u8; 16]) -> Result<(), AaguidExtError> {
        let Some(ext) = self.extension(oid::FIDO_AAGUID) else { return Ok(()) };
        if ext.critical {
            return Err(AaguidExtError::Critical);
        }
        let inner = Tlv::parse_all(ext.extn_value.as_bytes())
            .filter(|t| t.tag == 0x04 && t.content.len() == 16)
            .ok_or(AaguidExtError::Malformed)?;
        if inner.content != aaguid { Err(AaguidExtError::Mismatch) } else { Ok(()) }
    }
}

/// Why the id-fido-gen-ce-aaguid extension check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AaguidExtError {
    /// Marked critical.
    Critical,
    /// Not an OCTET STRING of 16 bytes.
    Malformed,
    /// Differs from the authenticator data's AAGUID.
    Mismatch,
}

/// The string values of the attributes of type `id` in a name.
pub fn name_attrs(name: &x509_cert::name::Name, id: ObjectIdentifier) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == id)
        .filter_map(|atv| any_string(&atv.value))
        .collect()
}

/// The text of a directory string (UTF8String, PrintableString, IA5String, ...).
pub fn any_string(v: &der::Any) -> Option<String> {
    use der::{Tag, Tagged};
    match v.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString | Tag::VisibleString => {
            std::str::from_utf8(v.value()).ok().map(str::to_owned)
        }
        _ => None,
    }
}

fn pss_hash(params: &[u8]) -> Option<HashAlg> {
    // RSASSA-PSS-params ::= SEQUENCE { [0] hashAlgorithm, [1] maskGenAlgorithm, [2] saltLength, [3] trailerField }
    let mut rest = params;
    let mut hash = None;
    let mut salt = None;
    while !rest.is_empty() {
        let (t, r) = Tlv::parse(rest)?;
        rest = r;
        match t.tag {
            0xa0 => {
                let alg = Tlv::parse_all(t.content).filter(|a| a.tag == 0x30)?;
                let (o, _) = Tlv::parse(alg.content).filter(|(o, _)| o.tag == 0x06)?;
                let o = ObjectIdentifier::from_bytes(o.content).ok()?;
                hash = Some(if o == oid::SHA256 {
                    HashAlg::Sha256
                } else if o == oid::SHA384 {
                    HashAlg::Sha384
                } else if o == oid::SHA512 {
                    HashAlg::Sha512
                } else {
                    return None;
                });
            }
            0xa2 => {
                let i = Tlv::parse_all(t.content).filter(|i| i.tag == 0x02)?;
                salt = Some(i.as_u64()?);
            }
            _ => {}
        }
    }
    let hash = hash?;
    // The provider verifies with a salt as long as the hash.
    match salt {
        Some(s) if s != hash.output_len() as u64 => None,
        _ => Some(hash),
    }
}

/// One DER TLV: identifier octet(s), length, content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The first identifier octet (class, constructed bit, low tag number or 0x1f).
    pub tag: u8,
    /// The tag number (decoded from high-tag-number form where used).
    pub number: u32,
    /// The content octets.
    pub content: &'a [u8],
    /// How many bytes followed this TLV in the input it was read from.
    pub rest_len: usize,
}

impl<'a> Tlv<'a> {
    /// Read one TLV from the front of `input`; returns it and the remaining bytes.
    /// Definite lengths only, minimal length encoding not enforced beyond sanity.
    pub fn parse(input: &'a [u8]) -> Option<(Tlv<'a>, &'a [u8])> {
        let tag = *input.first()?;
        let mut pos = 1usize;
        let number = if tag & 0x1f == 0x1f {
            let mut n: u32 = 0;
            loop {
                let b = *input.get(pos)?;
                pos += 1;
                n = n.checked_mul(128)?.checked_add(u32::from(b & 0x7f))?;
                if b & 0x80 == 0 {
                    break;
                }
                if pos > 6 {
                    return None;
                }
            }
            n
        } else {
            u32::from(tag & 0x1f)
        };
        let first = *input.get(pos)?;
        pos += 1;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let mut l = 0usize;
            for _ in 0..count {
                l = l.checked_mul(256)?.checked_add(usize::from(*input.get(pos)?))?;
                pos += 1;
            }
            l
        };
        let end = pos.checked_add(len)?;
        let content = input.get(pos..end)?;
        let rest = input.get(end..)?;
        Some((Tlv { tag, number, content, rest_len: rest.len() }, rest))
    }

    /// Read exactly one TLV spanning all of `input`.
    pub fn parse_all(input: &'a [u8]) -> Option<Tlv<'a>> {
        let (t, rest) = Tlv::parse(input)?;
        rest.is_empty().then_some(t)
    }

    /// Every TLV in `input`, in order (None if any is malformed).
    pub fn sequence(input: &'a [u8]) -> Option<Vec<Tlv<'a>>> {
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (t, r) = Tlv::parse(rest)?;
            out.push(t);
            rest = r;
        }
        Some(out)
    }

    /// The content as a non-negative integer of at most 8 bytes.
    pub fn as_u64(&self) -> Option<u64> {
        let c = strip_zeros(self.content);
        if c.len() > 8 || self.content.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        Some(c.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    /// True for a context-specific constructed tag of this number (`[n] EXPLICIT`).
    pub fn is_context(&self, n: u32) -> bool {
        self.tag & 0xe0 == 0xa0 && self.number == n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_high_tag_and_long_length() {
        // [600] EXPLICIT NULL
        let b = [0xbf, 0x84, 0x58, 0x02, 0x05, 0x00];
        let t = Tlv::parse_all(&b).unwrap();
        assert!(t.is_context(600));
        assert_eq!(t.content, &[0x05, 0x00]);
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 128]);
        assert_eq!(Tlv::parse_all(&long).unwrap().content.len(), 128);
        assert!(Tlv::parse(&[0x04, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(Tlv::parse(&[0x04, 0x05, 1]).is_none());
        assert!(Tlv::parse(&[]).is_none());
        assert!(Tlv::parse(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]).is_none());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(ParsedCert::parse(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(ParsedCert::parse(&[]).is_err());
    }
}

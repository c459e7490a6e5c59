//! The "tpm" attestation statement format (WebAuthn L3 §8.3): a TPM 2.0
//! TPMS_ATTEST structure (certInfo) of type TPM_ST_ATTEST_CERTIFY, signed by an
//! attestation identity key (AIK) whose certificate is `x5c[0]`, certifying the
//! TPMT_PUBLIC (pubArea) that holds the credential key.
//!
//! Structures follow TPM 2.0 Library Part 2; all integers are big-endian.

use super::{
    AttestationError, AttestationType, FormatResult, Input, alg_hash, check_aaguid_ext, check_not_ca, sig_err,
};
use crate::crypto::HashAlg;
use crate::proto::cose::{CoseKey, curve};
use crate::server::cert::{ParsedCert, name_attrs, oid};

/// TPM_GENERATED_VALUE.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_CERTIFY.
pub const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
/// TPM_ALG_RSA.
pub const TPM_ALG_RSA: u16 = 0x0001;
/// TPM_ALG_ECC.
pub const TPM_ALG_ECC: u16 = 0x0023;
/// TPM_ALG_NULL.
pub const TPM_ALG_NULL: u16 = 0x0010;

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], AttestationError> {
        if self.b.len() < n {
            return Err(AttestationError::Malformed(format!("TPM structure truncated at {what}")));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u16(&mut self, what: &str) -> Result<u16, AttestationError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s.first().copied().unwrap_or(0), s.get(1).copied().unwrap_or(0)]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, AttestationError> {
        let hi = self.u16(what)?;
        let lo = self.u16(what)?;
        Ok((u32::from(hi) << 16) | u32::from(lo))
    }
    /// A TPM2B: u16 size then that many bytes.
    fn tpm2b(&mut self, what: &str) -> Result<&'a [u8], AttestationError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
    fn finish(&self, what: &str) -> Result<(), AttestationError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(AttestationError::Malformed(format!("{} trailing bytes after {what}", self.b.len())))
        }
    }
}

/// The key in a TPMT_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmKey {
    /// RSA: modulus and exponent (0 in the structure means 65537).
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Exponent as a u32.
        exponent: u32,
    },
    /// ECC: TPM curve id and point.
    Ecc {
        /// TPM_ECC_CURVE (0x0003 P-256, 0x0004 P-384, 0x0005 P-521).
        curve_id: u16,
        /// x coordinate.
        x: Vec<u8>,
        /// y coordinate.
        y: Vec<u8>,
    },
}

/// A parsed TPMT_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmtPublic {
    /// The algorithm of the object (TPM_ALG_RSA or TPM_ALG_ECC).
    pub alg_type: u16,
    /// The name algorithm.
    pub name_alg: u16,
    /// TPMA_OBJECT bits.
    pub object_attributes: u32,
    /// The key.
    pub key: TpmKey,
}

/// Read a TPMT_SYM_DEF_OBJECT, TPMT_*_SCHEME or TPMT_KDF_SCHEME header: an
/// algorithm id followed by details unless it is TPM_ALG_NULL.
fn skip_alg_with_details(r: &mut Reader<'_>, details: usize, what: &str) -> Result<(), AttestationError> {
    if r.u16(what)? != TPM_ALG_NULL {
        r.take(details, what)?;
    }
    Ok(())
}

impl TpmtPublic {
    /// Parse a TPMT_PUBLIC exactly.
    pub fn parse(b: &[u8]) -> Result<Self, AttestationError> {
        let mut r = Reader { b };
        let alg_type = r.u16("pubArea.type")?;
        let name_alg = r.u16("pubArea.nameAlg")?;
        let object_attributes = r.u32("pubArea.objectAttributes")?;
        r.tpm2b("pubArea.authPolicy")?;
        let key = match alg_type {
            TPM_ALG_RSA => {
                skip_alg_with_details(&mut r, 4, "pubArea.parameters.symmetric")?;
                skip_alg_with_details(&mut r, 2, "pubArea.parameters.scheme")?;
                let _key_bits = r.u16("pubArea.parameters.keyBits")?;
                let exponent = r.u32("pubArea.parameters.exponent")?;
                let n = r.tpm2b("pubArea.unique")?.to_vec();
                TpmKey::Rsa { n, exponent }
            }
            TPM_ALG_ECC => {
                skip_alg_with_details(&mut r, 4, "pubArea.parameters.symmetric")?;
                skip_alg_with_details(&mut r, 2, "pubArea.parameters.scheme")?;
                let curve_id = r.u16("pubArea.parameters.curveID")?;
                skip_alg_with_details(&mut r, 2, "pubArea.parameters.kdf")?;
                let x = r.tpm2b("pubArea.unique.x")?.to_vec();
                let y = r.tpm2b("pubArea.unique.y")?.to_vec();
                TpmKey::Ecc { curve_id, x, y }
            }
            other => return Err(AttestationError::UnsupportedAlgorithm(format!("TPM pubArea type {other:#06x}"))),
        };
        r.finish("pubArea")?;
        Ok(TpmtPublic { alg_type, name_alg, object_attributes, key })
    }

    /// True when this is the same key as the COSE credential key.
    pub fn matches_cose(&self, key: &CoseKey) -> bool {
        fn strip(b: &[u8]) -> &[u8] {
            let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
            b.get(i..).unwrap_or_default()
        }
        match (&self.key, key) {
            (TpmKey::Rsa { n, exponent }, CoseKey::Rsa { n: n2, e, .. }) => {
                let exp = if *exponent == 0 { 65537 } else { *exponent };
                let e_bytes = exp.to_be_bytes();
                strip(n) == strip(n2) && strip(&e_bytes) == strip(e)
            }
            (TpmKey::Ecc { curve_id, x, y }, CoseKey::Ec2 { crv, x: x2, y: y2, .. }) => {
                let want = match *crv {
                    curve::P256 => 0x0003,
                    curve::P384 => 0x0004,
                    curve::P521 => 0x0005,
                    _ => return false,
                };
                *curve_id == want && x == x2 && y == y2
            }
            _ => false,
        }
    }
}

/// A parsed TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmsAttest {
    /// The magic value (must be TPM_GENERATED_VALUE).
    pub magic: u32,
    /// The structure tag (must be TPM_ST_ATTEST_CERTIFY).
    pub attest_type: u16,
    /// qualifiedSigner.
    pub qualified_signer: Vec<u8>,
    /// extraData: the hash of authData || clientDataHash.
    pub extra_data: Vec<u8>,
    /// TPMS_CERTIFY_INFO.name of the certified object.
    pub attested_name: Vec<u8>,
    /// TPMS_CERTIFY_INFO.qualifiedName.
    pub attested_qualified_name: Vec<u8>,
}

impl TpmsAttest {
    /// Parse a TPMS_ATTEST exactly.
    pub fn parse(b: &[u8]) -> Result<Self, AttestationError> {
        let mut r = Reader { b };
        let magic = r.u32("certInfo.magic")?;
        let attest_type = r.u16("certInfo.type")?;
        let qualified_signer = r.tpm2b("certInfo.qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b("certInfo.extraData")?.to_vec();
        r.take(17, "certInfo.clockInfo")?;
        r.take(8, "certInfo.firmwareVersion")?;
        let attested_name = r.tpm2b("certInfo.attested.name")?.to_vec();
        let attested_qualified_name = r.tpm2b("certInfo.attested.qualifiedName")?.to_vec();
        r.finish("certInfo")?;
        Ok(TpmsAttest { magic, attest_type, qualified_signer, extra_data, attested_name, attested_qualified_name })
    }
}

fn tpm_hash(alg: u16) -> Option<HashAlg> {
    match alg {
        0x0004 => Some(HashAlg::Sha1),
        0x000b => Some(HashAlg::Sha256),
        0x000c => Some(HashAlg::Sha384),
        0x000d => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// Verify a "tpm" statement.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    input.only_keys(&["ver", "alg", "x5c", "sig", "certInfo", "pubArea"])?;
    if input.text("ver")? != "2.0" {
        return Err(AttestationError::Malformed("tpm attStmt.ver must be \"2.0\"".into()));
    }
    let alg = input.alg()?;
    let sig = input.bytes("sig")?;
    let cert_info_raw = input.bytes("certInfo")?;
    let pub_area_raw = input.bytes("pubArea")?;
    let cred = input.credential()?;
    let provider = input.ctx.provider;

    let pub_area = TpmtPublic::parse(pub_area_raw)?;
    if !pub_area.matches_cose(&cred.public_key) {
        return Err(AttestationError::Mismatch("tpm pubArea key differs from the credential public key".into()));
    }
    let cert_info = TpmsAttest::parse(cert_info_raw)?;
    if cert_info.magic != TPM_GENERATED_VALUE {
        return Err(AttestationError::Mismatch("tpm certInfo.magic is not TPM_GENERATED_VALUE".into()));
    }
    if cert_info.attest_type != TPM_ST_ATTEST_CERTIFY {
        return Err(AttestationError::Mismatch("tpm certInfo.type is not TPM_ST_ATTEST_CERTIFY".into()));
    }
    if alg == crate::proto::cose::CoseAlgorithm::RS1 && !input.ctx.allow_rs1 {
        return Err(AttestationError::UnsupportedAlgorithm("RS1 (SHA-1) is disabled by policy".into()));
    }
    let hash = alg_hash(alg).ok_or_else(|| AttestationError::UnsupportedAlgorithm(format!("tpm alg {alg}")))?;
    let att_to_be_signed = provider.digest(hash, &[input.auth_data_raw, input.client_data_hash]);
    if cert_info.extra_data != att_to_be_signed {
        return Err(AttestationError::Mismatch(
            "tpm certInfo.extraData differs from hash(authData || clientDataHash)".into(),
        ));
    }
    // The attested name is nameAlg || H_nameAlg(pubArea).
    let name_hash = tpm_hash(pub_area.name_alg)
        .ok_or_else(|| AttestationError::UnsupportedAlgorithm(format!("tpm nameAlg {:#06x}", pub_area.name_alg)))?;
    let mut name = pub_area.name_alg.to_be_bytes().to_vec();
    name.extend_from_slice(&provider.digest(name_hash, &[pub_area_raw]));
    if cert_info.attested_name != name {
        return Err(AttestationError::Mismatch("tpm certInfo.attested.name is not the name of pubArea".into()));
    }

    let (chain, aik) = input.x5c_required()?;
    let key = aik.public_key().map_err(super::cert_err)?;
    key.verify_cose_alg(provider, alg, cert_info_raw, sig, input.ctx.allow_rs1)
        .map_err(|e| sig_err("tpm certInfo signature by the AIK certificate", e))?;
    check_aik_requirements(&aik)?;
    check_aaguid_ext(&aik, &cred.aaguid)?;
    Ok((AttestationType::AttCa, chain))
}

/// WebAuthn L3 §8.3.1: version 3; empty subject; SAN with the TPM
/// manufacturer, model and version; EKU tcg-kp-AIKCertificate; CA=false.
pub(crate) fn check_aik_requirements(aik: &ParsedCert) -> Result<(), AttestationError> {
    let bad = |m: &str| Err(AttestationError::Certificate(format!("tpm AIK certificate: {m}")));
    if !aik.is_v3() {
        return bad("version must be 3");
    }
    if !aik.cert.tbs_certificate.subject.0.is_empty() {
        return bad("subject must be empty");
    }
    let Some(san) = aik.extension(oid::SUBJECT_ALT_NAME) else {
        return bad("subjectAltName missing");
    };
    let names = <x509_cert::ext::pkix::SubjectAltName as der::Decode>::from_der(san.extn_value.as_bytes())
        .map_err(|_| AttestationError::Certificate("tpm AIK certificate: subjectAltName is malformed".into()))?;
    let (mut manufacturer, mut model, mut version) = (false, false, false);
    for gn in &names.0 {
        if let x509_cert::ext::pkix::name::GeneralName::DirectoryName(n) = gn {
            manufacturer |= !name_attrs(n, oid::TCG_AT_TPM_MANUFACTURER).is_empty();
            model |= !name_attrs(n, oid::TCG_AT_TPM_MODEL).is_empty();
            version |= !name_attrs(n, oid::TCG_AT_TPM_VERSION).is_empty();
        }
    }
    if !(manufacturer && model && version) {
        return bad("subjectAltName lacks tcg-at-tpmManufacturer, tpmModel or tpmVersion");
    }
    let Some(eku) = aik.extension(oid::EXT_KEY_USAGE) else {
        return bad("extKeyUsage missing");
    };
    let eku = <x509_cert::ext::pkix::ExtendedKeyUsage as der::Decode>::from_der(eku.extn_value.as_bytes())
        .map_err(|_| AttestationError::Certificate("tpm AIK certificate: extKeyUsage is malformed".into()))?;
    if !eku.0.contains(&oid::TCG_KP_AIK_CERTIFICATE) {
        return bad("extKeyUsage lacks tcg-kp-AIKCertificate (2.23.133.8.3)");
    }
    check_not_ca(aik, "tpm AIK")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{AttestationPolicy, AttestationType};
    use super::*;
    use crate::proto::cbor::Value;

    #[test]
    fn verifies_ecc_and_rsa() {
        assert_eq!(fixture("w3c/tpm.ES256").verify().unwrap().attestation_type, AttestationType::AttCa);
        assert_eq!(fixture("real/tpm-rs1").verify().unwrap().attestation_type, AttestationType::AttCa);
    }

    #[test]
    fn rs1_needs_the_opt_in() {
        let f = fixture("real/tpm-rs1");
        assert_code(f.verify_with(false, false, &AttestationPolicy::default()), "attestation_algorithm_unsupported");
    }

    #[test]
    fn flipped_signature_is_bad_signature() {
        let mut f = fixture("w3c/tpm.ES256");
        f.flip_last("sig");
        assert_code(f.verify(), "attestation_bad_signature");
    }

    #[test]
    fn cert_info_checks() {
        // Wrong magic.
        let mut f = fixture("w3c/tpm.ES256");
        f.bytes_mut("certInfo")[0] ^= 1;
        assert_code(f.verify(), "attestation_mismatch");
        // Wrong type.
        let mut f = fixture("w3c/tpm.ES256");
        f.bytes_mut("certInfo")[5] ^= 1;
        assert_code(f.verify(), "attestation_mismatch");
        // extraData no longer hash(authData || clientDataHash).
        let mut f = fixture("w3c/tpm.ES256");
        f.cdh[0] ^= 1;
        assert_code(f.verify(), "attestation_mismatch");
        // Truncated and extended structures are malformed.
        let mut f = fixture("w3c/tpm.ES256");
        f.bytes_mut("certInfo").pop();
        assert_code(f.verify(), "attestation_malformed");
        let mut f = fixture("w3c/tpm.ES256");
        f.bytes_mut("certInfo").push(0);
        assert_code(f.verify(), "attestation_malformed");
    }

    #[test]
    fn pub_area_must_hold_the_credential_key() {
        let mut f = fixture("w3c/tpm.ES256");
        if let Some(b) = f.bytes_mut("pubArea").last_mut() {
            *b ^= 1;
        }
        assert_code(f.verify(), "attestation_mismatch");
        let mut f = fixture("w3c/tpm.ES256");
        f.bytes_mut("pubArea").truncate(10);
        assert_code(f.verify(), "attestation_malformed");
    }

    #[test]
    fn version_and_fields() {
        let mut f = fixture("w3c/tpm.ES256");
        f.set("ver", Value::from("1.0"));
        assert_code(f.verify(), "attestation_malformed");
        let mut f = fixture("w3c/tpm.ES256");
        f.remove("x5c");
        assert_code(f.verify(), "attestation_malformed");
    }

    #[test]
    fn aik_requirements() {
        // A packed attestation certificate has a subject and no TPM SAN.
        let packed_leaf = ParsedCert::parse(&fixture("w3c/packed.ES256").leaf()).unwrap();
        assert_eq!(check_aik_requirements(&packed_leaf).unwrap_err().code(), "attestation_certificate_invalid");
        let aik = ParsedCert::parse(&fixture("w3c/tpm.ES256").leaf()).unwrap();
        check_aik_requirements(&aik).unwrap();
    }

    #[test]
    fn parsers_survive_garbage() {
        for len in 0..64 {
            let b: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = TpmtPublic::parse(&b);
            let _ = TpmsAttest::parse(&b);
        }
        let mut b = vec![0x00, 0x23, 0x00, 0x0b, 0, 0, 0, 0, 0xff, 0xff];
        b.extend([0u8; 4]);
        assert!(TpmtPublic::parse(&b).is_err());
    }
}

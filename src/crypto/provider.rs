//! The provider trait: the complete list of primitives hwkey needs.

use std::fmt::Debug;
use zeroize::Zeroizing;

/// Secret bytes (private keys, shared secrets, tokens): zeroized on drop.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// Errors from a crypto provider. They never carry secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
    /// A public or private key could not be parsed or is not on its curve.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// An input had the wrong length or form.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// The algorithm is not supported by this provider or not allowed.
    #[error("unsupported algorithm: {0}")]
    Unsupported(&'static str),
    /// Authenticated decryption failed.
    #[error("decryption failed")]
    DecryptFailed,
    /// The system random source failed.
    #[error("random source failed")]
    Rng,
}

/// Hash functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1: HMAC-SHA1 (OTP, YubiKey), legacy RS1 and certificate checks only.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

/// Elliptic curves for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

/// ML-DSA parameter sets (FIPS 204, Table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlDsaLevel {
    /// ML-DSA-44 (NIST security category 2).
    MlDsa44,
    /// ML-DSA-65 (category 3).
    MlDsa65,
    /// ML-DSA-87 (category 5).
    MlDsa87,
}

impl MlDsaLevel {
    /// All three parameter sets, smallest first.
    pub const ALL: [MlDsaLevel; 3] = [MlDsaLevel::MlDsa44, MlDsaLevel::MlDsa65, MlDsaLevel::MlDsa87];

    /// Length of the private seed (the key-generation input ξ): 32 bytes for every set.
    pub const SEED_LEN: usize = 32;

    /// Encoded public key length in bytes (FIPS 204, Table 2).
    pub fn public_key_len(self) -> usize {
        match self {
            MlDsaLevel::MlDsa44 => 1312,
            MlDsaLevel::MlDsa65 => 1952,
            MlDsaLevel::MlDsa87 => 2592,
        }
    }

    /// Encoded signature length in bytes (FIPS 204, Table 2).
    pub fn signature_len(self) -> usize {
        match self {
            MlDsaLevel::MlDsa44 => 2420,
            MlDsaLevel::MlDsa65 => 3309,
            MlDsaLevel::MlDsa87 => 4627,
        }
    }

    /// "ML-DSA-44", "ML-DSA-65" or "ML-DSA-87".
    pub fn name(self) -> &'static str {
        match self {
            MlDsaLevel::MlDsa44 => "ML-DSA-44",
            MlDsaLevel::MlDsa65 => "ML-DSA-65",
            MlDsaLevel::MlDsa87 => "ML-DSA-87",
        }
    }
}

/// RSA signature paddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaPadding {
    /// RSASSA-PKCS1-v1_5.
    Pkcs1v15,
    /// RSASSA-PSS with MGF1 using the same hash and a salt as long as the hash.
    Pss,
}

/// A big-endian integer without its leading zero bytes (RSA n and e arrive
/// both ways from COSE keys and certificates).
pub(crate) fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(i..).unwrap_or_default()
}

/// Is this 32-byte Ed25519 public key one no honest signer has: a point of
/// small order (whose signatures verify for many messages), or a
/// non-canonical encoding (y not reduced modulo 2^255 - 19)? Both providers
/// refuse such keys, for signatures and at registration.
pub fn ed25519_key_is_weak(pk: &[u8]) -> bool {
    let Ok(pk) = <[u8; 32]>::try_from(pk) else {
        return true;
    };
    // y (the sign bit of x cleared) >= p = 2^255 - 19: non-canonical.
    let top = pk[31] & 0x7f;
    if top == 0x7f && pk[1..31].iter().all(|&b| b == 0xff) && pk[0] >= 0xed {
        return true;
    }
    // The canonical encodings of the eight points of small order, with
    // either sign bit (a "negative zero" x is non-canonical too).
    const SMALL_ORDER_Y: [[u8; 32]; 5] = [
        // y = 1: the identity (order 1).
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        // y = -1 (order 2).
        [
            0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
        // y = 0 (order 4).
        [0; 32],
        // The two y of the points of order 8.
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
            0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
            0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
        ],
    ];
    let mut y = pk;
    y[31] &= 0x7f;
    SMALL_ORDER_Y.contains(&y)
}

/// Compare two byte strings in constant time (for equal lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Every cryptographic primitive hwkey uses, behind one object-safe trait (as
/// rustls does it), so a build can swap the backend without touching protocol
/// code. Private keys cross this interface as raw scalars/seeds in
/// [`SecretBytes`], which zeroize on drop.
pub trait CryptoProvider: Send + Sync + Debug {
    /// A short name for reports ("aws-lc-rs", "rust-crypto").
    fn name(&self) -> &'static str;

    /// Hash the concatenation of `parts`.
    fn digest(&self, alg: HashAlg, parts: &[&[u8]]) -> Vec<u8>;

    /// SHA-256 of the concatenation of `parts`.
    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let d = self.digest(HashAlg::Sha256, parts);
        let mut out = [0u8; 32];
        out.copy_from_slice(&d[..32]);
        out
    }

    /// HMAC of the concatenation of `parts` under `key`.
    fn hmac(&self, alg: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8>;

    /// HKDF-SHA-256 (RFC 5869) extract-then-expand into `out` (at most 255*32 bytes).
    fn hkdf_sha256(&self, salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), CryptoError>;

    /// Verify an ECDSA signature (ASN.1 DER `Ecdsa-Sig-Value`) over `msg`
    /// hashed with `hash`, by an uncompressed SEC1 public point.
    fn verify_ecdsa(
        &self,
        curve: EcCurve,
        hash: HashAlg,
        sec1_point: &[u8],
        msg: &[u8],
        der_sig: &[u8],
    ) -> Result<(), CryptoError>;

    /// Check that `sec1_point` is an uncompressed point on `curve` (not the
    /// point at infinity): what a credential public key must be before it is
    /// stored.
    fn validate_ec_point(&self, curve: EcCurve, sec1_point: &[u8]) -> Result<(), CryptoError>;

    /// Verify an Ed25519 signature. Keys for which [`ed25519_key_is_weak`]
    /// holds are refused.
    fn verify_ed25519(&self, public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;

    /// Verify an RSA signature given the modulus and exponent (big-endian).
    /// Moduli of 1024 bits are accepted only with SHA-1 (legacy TPM keys);
    /// otherwise at least 2048 bits.
    fn verify_rsa(
        &self,
        padding: RsaPadding,
        hash: HashAlg,
        n: &[u8],
        e: &[u8],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError>;

    /// Generate a P-256 private scalar (32 bytes).
    fn p256_generate(&self) -> Result<SecretBytes, CryptoError>;

    /// The uncompressed SEC1 public point (65 bytes) of a P-256 scalar.
    fn p256_public(&self, scalar: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// ECDSA P-256 with SHA-256 over `msg`; returns the DER signature.
    fn p256_sign(&self, scalar: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// P-256 ECDH: the x coordinate of scalar * peer (32 bytes). The same
    /// scalar may be reused for many agreements (the CTAP key-agreement key).
    fn p256_ecdh(&self, scalar: &[u8], peer_sec1_point: &[u8]) -> Result<SecretBytes, CryptoError>;

    /// Generate an Ed25519 seed (32 bytes).
    fn ed25519_generate(&self) -> Result<SecretBytes, CryptoError> {
        let mut seed = Zeroizing::new(vec![0u8; 32]);
        self.fill_random(&mut seed)?;
        Ok(seed)
    }

    /// The 32-byte public key of an Ed25519 seed.
    fn ed25519_public(&self, seed: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// Ed25519 signature (64 bytes) over `msg`.
    fn ed25519_sign(&self, seed: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// Generate an ML-DSA private key: its 32-byte seed ξ (FIPS 204
    /// Algorithm 1, the form RFC 9964 §4 stores), from which
    /// [`Self::ml_dsa_public`] and [`Self::ml_dsa_sign`] expand the key.
    fn ml_dsa_generate(&self, level: MlDsaLevel) -> Result<SecretBytes, CryptoError> {
        let _ = level;
        let mut seed = Zeroizing::new(vec![0u8; MlDsaLevel::SEED_LEN]);
        self.fill_random(&mut seed)?;
        Ok(seed)
    }

    /// The encoded public key (pkEncode, FIPS 204 Algorithm 22) of the key
    /// pair that `ML-DSA.KeyGen_internal` derives from a 32-byte seed.
    fn ml_dsa_public(&self, level: MlDsaLevel, seed: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// Pure ML-DSA signature (FIPS 204 Algorithm 2, hedged, with the empty
    /// context string as RFC 9964 §5 requires; no HashML-DSA pre-hash) of
    /// `msg` by the key derived from `seed`.
    fn ml_dsa_sign(&self, level: MlDsaLevel, seed: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError>;

    /// Verify a pure ML-DSA signature with the empty context (FIPS 204
    /// Algorithm 3). The public key and the signature must have exactly the
    /// parameter set's sizes.
    fn verify_ml_dsa(&self, level: MlDsaLevel, public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;

    /// AES-256-CBC encryption in place without padding (`data.len() % 16 == 0`).
    fn aes256_cbc_encrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError>;

    /// AES-256-CBC decryption in place without padding (`data.len() % 16 == 0`).
    fn aes256_cbc_decrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError>;

    /// AES-128-CBC encryption in place without padding (`data.len() % 16 == 0`;
    /// CTAP 2.2's encIdentifier and encCredStoreState).
    fn aes128_cbc_encrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError>;

    /// AES-128-CBC decryption in place without padding (`data.len() % 16 == 0`).
    fn aes128_cbc_decrypt(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError>;

    /// AES-256-GCM seal: returns ciphertext || 16-byte tag.
    fn aes256_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;

    /// AES-256-GCM open of ciphertext || tag.
    fn aes256_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError>;

    /// Fill `buf` from the system's cryptographically secure random source.
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), CryptoError>;

    /// `n` random bytes.
    fn random_bytes(&self, n: usize) -> Result<Vec<u8>, CryptoError> {
        let mut v = vec![0u8; n];
        self.fill_random(&mut v)?;
        Ok(v)
    }
}

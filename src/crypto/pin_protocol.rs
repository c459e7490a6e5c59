//! PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6, §6.5.7), both sides.
//!
//! * [`PinUvAuthProtocol`] names a protocol and carries its primitives:
//!   `kdf`, `encrypt`, `decrypt`, `authenticate`, `verify`.
//! * Platform side: [`PinUvAuthProtocol::encapsulate`] takes the
//!   authenticator's key-agreement key (from clientPIN getKeyAgreement) and
//!   returns the platform's COSE public key plus a [`SharedSecret`].
//! * Authenticator side: [`KeyAgreementKey`] holds the authenticator's
//!   key-agreement key pair (regenerated on power-up and on PIN mismatch) and
//!   [`KeyAgreementKey::decapsulate`] derives the same [`SharedSecret`];
//!   [`new_pin_uv_auth_token`] makes a fresh token.
//!
//! Shared secrets and tokens live in [`Zeroizing`] buffers; MAC checks use
//! [`ct_eq`].
//!
//! The platform's usual flow:
//! ```no_run
//! # use hwkey::crypto::{default_provider, pin_protocol::*};
//! # fn f(authenticator_key: &hwkey::proto::CoseKey) -> Result<(), PinProtocolError> {
//! let p = default_provider();
//! let proto = PinUvAuthProtocol::Two;
//! let (platform_key, shared) = proto.encapsulate(p, authenticator_key)?;
//! let pin_hash_enc = shared.encrypt(p, &pin_hash(p, "1234"))?;
//! // send clientPIN getPinUvAuthTokenUsingPinWithPermissions(platform_key, pin_hash_enc, ...)
//! # let encrypted_token = vec![0u8; 48];
//! let token = shared.decrypt(p, &encrypted_token)?;
//! let param = proto.authenticate(p, &token, b"clientDataHash...");
//! # Ok(()) }
//! ```

use zeroize::Zeroizing;

use super::{CryptoError, CryptoProvider, HashAlg, SecretBytes, ct_eq};
use crate::proto::cose::{CoseAlgorithm, CoseKey};

/// Errors of the PIN/UV auth protocols.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinProtocolError {
    /// A protocol number other than 1 or 2.
    #[error("unsupported PIN/UV auth protocol {0}")]
    UnsupportedProtocol(u64),
    /// The peer's key-agreement key is not a P-256 point.
    #[error("invalid key-agreement key")]
    InvalidKey,
    /// A ciphertext or plaintext has a length the protocol does not allow.
    #[error("invalid length for PIN/UV auth protocol data")]
    InvalidLength,
    /// The PIN is shorter than 4 code points or longer than 63 bytes.
    #[error("PIN must be 4 to 63 bytes long and at least 4 characters")]
    PinPolicy,
    /// The crypto provider failed.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

impl PinProtocolError {
    /// A stable snake_case identifier.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedProtocol(_) => "unsupported_pin_protocol",
            Self::InvalidKey => "invalid_key_agreement",
            Self::InvalidLength => "invalid_length",
            Self::PinPolicy => "pin_policy_violation",
            Self::Crypto(_) => "crypto_error",
        }
    }
}

/// A PIN/UV auth protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinUvAuthProtocol {
    /// Protocol one: SHA-256 KDF, AES-256-CBC with a zero IV, HMAC truncated to 16 bytes.
    One,
    /// Protocol two: HKDF into separate HMAC and AES keys, random IVs, full HMAC.
    Two,
}

const HKDF_SALT: [u8; 32] = [0u8; 32];

impl PinUvAuthProtocol {
    /// The protocol number (1 or 2).
    pub fn number(self) -> u8 {
        match self {
            Self::One => 1,
            Self::Two => 2,
        }
    }
    /// The protocol for a number.
    pub fn from_number(n: u64) -> Result<Self, PinProtocolError> {
        match n {
            1 => Ok(Self::One),
            2 => Ok(Self::Two),
            n => Err(PinProtocolError::UnsupportedProtocol(n)),
        }
    }
    /// Length of `authenticate` output (16 for protocol one, 32 for two).
    pub fn param_len(self) -> usize {
        match self {
            Self::One => 16,
            Self::Two => 32,
        }
    }

    /// kdf(Z): the shared secret from the ECDH x coordinate.
    pub fn kdf(self, provider: &dyn CryptoProvider, z: &[u8]) -> Result<SharedSecret, PinProtocolError> {
        let bytes = match self {
            Self::One => {
                let h = Zeroizing::new(provider.sha256(&[z]));
                Zeroizing::new(h.to_vec())
            }
            Self::Two => {
                let mut out = Zeroizing::new(vec![0u8; 64]);
                let (hmac_key, aes_key) = out.split_at_mut(32);
                provider.hkdf_sha256(&HKDF_SALT, z, b"CTAP2 HMAC key", hmac_key)?;
                provider.hkdf_sha256(&HKDF_SALT, z, b"CTAP2 AES key", aes_key)?;
                out
            }
        };
        Ok(SharedSecret { protocol: self, bytes })
    }

    /// Platform side: generate an ephemeral key, agree with the authenticator's
    /// key, return (platform public key as COSE_Key, shared secret).
    pub fn encapsulate(
        self,
        provider: &dyn CryptoProvider,
        peer: &CoseKey,
    ) -> Result<(CoseKey, SharedSecret), PinProtocolError> {
        let scalar = provider.p256_generate()?;
        self.encapsulate_with(provider, &scalar, peer)
    }

    /// [`Self::encapsulate`] with a given platform private scalar (test vectors).
    pub fn encapsulate_with(
        self,
        provider: &dyn CryptoProvider,
        scalar: &[u8],
        peer: &CoseKey,
    ) -> Result<(CoseKey, SharedSecret), PinProtocolError> {
        let point = peer_point(peer)?;
        let z = provider.p256_ecdh(scalar, &point).map_err(|_| PinProtocolError::InvalidKey)?;
        let public = provider.p256_public(scalar)?;
        let cose = CoseKey::p256_from_sec1(&public, CoseAlgorithm::ECDH_ES_HKDF_256)
            .map_err(|_| PinProtocolError::InvalidKey)?;
        Ok((cose, self.kdf(provider, &z)?))
    }

    /// authenticate(key, message): HMAC-SHA-256, truncated to 16 bytes for
    /// protocol one. `key` is a shared secret's bytes or a pinUvAuthToken;
    /// protocol two uses only the first 32 bytes (the HMAC key) of a longer key.
    pub fn authenticate(self, provider: &dyn CryptoProvider, key: &[u8], message: &[u8]) -> Vec<u8> {
        let key = match self {
            Self::Two if key.len() > 32 => &key[..32],
            _ => key,
        };
        let mut mac = provider.hmac(HashAlg::Sha256, key, &[message]);
        mac.truncate(self.param_len());
        mac
    }

    /// verify(key, message, signature), in constant time.
    pub fn verify(self, provider: &dyn CryptoProvider, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let expected = self.authenticate(provider, key, message);
        ct_eq(&expected, signature)
    }
}

fn peer_point(peer: &CoseKey) -> Result<Vec<u8>, PinProtocolError> {
    match peer {
        CoseKey::Ec2 { crv: 1, x, y, .. } if x.len() == 32 && y.len() == 32 => {
            peer.sec1_uncompressed().ok_or(PinProtocolError::InvalidKey)
        }
        _ => Err(PinProtocolError::InvalidKey),
    }
}

/// A shared secret from key agreement: 32 bytes (protocol one) or 64 bytes
/// (protocol two: HMAC key || AES key). Zeroized on drop.
#[derive(Clone)]
pub struct SharedSecret {
    protocol: PinUvAuthProtocol,
    bytes: SecretBytes,
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecret").field("protocol", &self.protocol).finish_non_exhaustive()
    }
}

impl SharedSecret {
    /// The protocol this secret belongs to.
    pub fn protocol(&self) -> PinUvAuthProtocol {
        self.protocol
    }
    /// The raw secret (for test vectors; handle with care).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn aes_key(&self) -> &[u8] {
        match self.protocol {
            PinUvAuthProtocol::One => &self.bytes,
            PinUvAuthProtocol::Two => self.bytes.get(32..).unwrap_or(&[]),
        }
    }

    /// encrypt(key, plaintext); the plaintext length must be a multiple of 16.
    /// Protocol two prepends a random IV.
    pub fn encrypt(&self, provider: &dyn CryptoProvider, plaintext: &[u8]) -> Result<Vec<u8>, PinProtocolError> {
        let mut iv = [0u8; 16];
        if self.protocol == PinUvAuthProtocol::Two {
            provider.fill_random(&mut iv)?;
        }
        self.encrypt_with_iv(provider, &iv, plaintext)
    }

    /// [`Self::encrypt`] with a given IV (protocol two; test vectors). Protocol one ignores `iv` (always zero).
    pub fn encrypt_with_iv(
        &self,
        provider: &dyn CryptoProvider,
        iv: &[u8; 16],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, PinProtocolError> {
        if !plaintext.len().is_multiple_of(16) {
            return Err(PinProtocolError::InvalidLength);
        }
        let mut data = plaintext.to_vec();
        match self.protocol {
            PinUvAuthProtocol::One => {
                provider.aes256_cbc_encrypt(self.aes_key(), &[0u8; 16], &mut data)?;
                Ok(data)
            }
            PinUvAuthProtocol::Two => {
                provider.aes256_cbc_encrypt(self.aes_key(), iv, &mut data)?;
                let mut out = iv.to_vec();
                out.extend_from_slice(&data);
                Ok(out)
            }
        }
    }

    /// decrypt(key, ciphertext). Protocol two reads the IV from the first 16 bytes.
    pub fn decrypt(&self, provider: &dyn CryptoProvider, ciphertext: &[u8]) -> Result<SecretBytes, PinProtocolError> {
        let (iv, body) = match self.protocol {
            PinUvAuthProtocol::One => ([0u8; 16], ciphertext),
            PinUvAuthProtocol::Two => {
                if ciphertext.len() < 16 {
                    return Err(PinProtocolError::InvalidLength);
                }
                let (iv, body) = ciphertext.split_at(16);
                let mut a = [0u8; 16];
                a.copy_from_slice(iv);
                (a, body)
            }
        };
        if body.len() % 16 != 0 {
            return Err(PinProtocolError::InvalidLength);
        }
        let mut data = Zeroizing::new(body.to_vec());
        provider.aes256_cbc_decrypt(self.aes_key(), &iv, &mut data)?;
        Ok(data)
    }

    /// authenticate(sharedSecret, message).
    pub fn authenticate(&self, provider: &dyn CryptoProvider, message: &[u8]) -> Vec<u8> {
        self.protocol.authenticate(provider, &self.bytes, message)
    }

    /// verify(sharedSecret, message, signature), in constant time.
    pub fn verify(&self, provider: &dyn CryptoProvider, message: &[u8], signature: &[u8]) -> bool {
        self.protocol.verify(provider, &self.bytes, message, signature)
    }
}

/// The authenticator's key-agreement key for one protocol (authenticator side).
pub struct KeyAgreementKey {
    protocol: PinUvAuthProtocol,
    scalar: SecretBytes,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyAgreementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAgreementKey").field("protocol", &self.protocol).finish_non_exhaustive()
    }
}

impl KeyAgreementKey {
    /// initialize(): a fresh key pair.
    pub fn new(provider: &dyn CryptoProvider, protocol: PinUvAuthProtocol) -> Result<Self, PinProtocolError> {
        let scalar = provider.p256_generate()?;
        let public = provider.p256_public(&scalar)?;
        Ok(Self { protocol, scalar, public })
    }
    /// From a given private scalar (test vectors).
    pub fn from_scalar(
        provider: &dyn CryptoProvider,
        protocol: PinUvAuthProtocol,
        scalar: &[u8],
    ) -> Result<Self, PinProtocolError> {
        let public = provider.p256_public(scalar).map_err(|_| PinProtocolError::InvalidKey)?;
        Ok(Self { protocol, scalar: Zeroizing::new(scalar.to_vec()), public })
    }
    /// regenerate(): replace the key pair (after a PIN mismatch, on power-up).
    pub fn regenerate(&mut self, provider: &dyn CryptoProvider) -> Result<(), PinProtocolError> {
        *self = Self::new(provider, self.protocol)?;
        Ok(())
    }
    /// The protocol.
    pub fn protocol(&self) -> PinUvAuthProtocol {
        self.protocol
    }
    /// getPublicKey(): the COSE_Key sent in getKeyAgreement (alg -25).
    pub fn public_key(&self) -> CoseKey {
        match CoseKey::p256_from_sec1(&self.public, CoseAlgorithm::ECDH_ES_HKDF_256) {
            Ok(k) => k,
            // p256_public always yields a 65-byte uncompressed point.
            Err(_) => CoseKey::Ec2 { alg: Some(CoseAlgorithm::ECDH_ES_HKDF_256), crv: 1, x: vec![], y: vec![] },
        }
    }
    /// decapsulate(peerCoseKey): the shared secret with the platform.
    pub fn decapsulate(&self, provider: &dyn CryptoProvider, peer: &CoseKey) -> Result<SharedSecret, PinProtocolError> {
        let point = peer_point(peer)?;
        let z = provider.p256_ecdh(&self.scalar, &point).map_err(|_| PinProtocolError::InvalidKey)?;
        self.protocol.kdf(provider, &z)
    }
}

/// A fresh 32-byte pinUvAuthToken (authenticator side).
pub fn new_pin_uv_auth_token(provider: &dyn CryptoProvider) -> Result<SecretBytes, PinProtocolError> {
    let mut t = Zeroizing::new(vec![0u8; 32]);
    provider.fill_random(&mut t)?;
    Ok(t)
}

/// LEFT(SHA-256(pin), 16): what pinHashEnc encrypts.
pub fn pin_hash(provider: &dyn CryptoProvider, pin: &str) -> SecretBytes {
    let h = Zeroizing::new(provider.sha256(&[pin.as_bytes()]));
    Zeroizing::new(h[..16].to_vec())
}

/// The PIN padded with zeros to 64 bytes, as newPinEnc encrypts it. The PIN
/// must have at least 4 Unicode code points and at most 63 bytes (the
/// authenticator may demand more through minPINLength).
pub fn pad_pin(pin: &str) -> Result<SecretBytes, PinProtocolError> {
    if pin.chars().count() < 4 || pin.len() > 63 {
        return Err(PinProtocolError::PinPolicy);
    }
    let mut out = Zeroizing::new(vec![0u8; 64]);
    out[..pin.len()].copy_from_slice(pin.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
    fn vectors() -> serde_json::Value {
        let path = std::env::var("HWKEY_CTAP_VECTORS")
            .unwrap_or_else(|_| "/work/shared/vectors/ctap-examples.json".to_owned());
        serde_json::from_str(&std::fs::read_to_string(path).expect("ctap-examples.json")).unwrap()
    }
    fn h(v: &serde_json::Value) -> Vec<u8> {
        hex(v.as_str().or_else(|| v["hex"].as_str()).unwrap())
    }

    #[test]
    fn protocol_one_python_fido2() {
        let p = default_provider();
        let all = vectors();
        let case = all["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with("pinUvAuthProtocol 1"))
            .unwrap();
        let ka = &case["authenticator_key_agreement_cose"];
        let peer = CoseKey::Ec2 { alg: Some(CoseAlgorithm(-25)), crv: 1, x: h(&ka["-2_hex"]), y: h(&ka["-3_hex"]) };
        let e = &case["expected"];
        let (platform, shared) =
            PinUvAuthProtocol::One.encapsulate_with(p, &h(&case["platform_private_key_hex"]), &peer).unwrap();
        let CoseKey::Ec2 { x, y, .. } = &platform else { panic!() };
        assert_eq!(x, &h(&e["platform_key_agreement_x_hex"]));
        assert_eq!(y, &h(&e["platform_key_agreement_y_hex"]));
        assert_eq!(shared.as_bytes(), &h(&e["shared_secret_hex"])[..]);
        let gpt = &e["get_pin_token"];
        let phe = shared.encrypt(p, &pin_hash(p, "1234")).unwrap();
        assert_eq!(phe, h(&gpt["pinHashEnc_hex"]));
        assert_eq!(
            &shared.decrypt(p, &h(&gpt["pinTokenEnc_hex_from_authenticator"])).unwrap()[..],
            &h(&gpt["pinToken_hex"])[..]
        );
        let sp = &e["set_pin"];
        let npe = shared.encrypt(p, &pad_pin("1234").unwrap()).unwrap();
        assert_eq!(npe, h(&sp["newPinEnc_hex"]));
        assert_eq!(shared.authenticate(p, &npe), h(&sp["pinUvAuthParam_hex"]));
        let cp = &e["change_pin"];
        let npe = shared.encrypt(p, &pad_pin("4321").unwrap()).unwrap();
        assert_eq!(npe, h(&cp["newPinEnc_hex"]));
        let mut msg = npe.clone();
        msg.extend_from_slice(&phe);
        assert_eq!(shared.authenticate(p, &msg), h(&cp["pinUvAuthParam_hex"]));
        assert!(shared.verify(p, &msg, &h(&cp["pinUvAuthParam_hex"])));
        assert!(!shared.verify(p, &msg, &h(&sp["pinUvAuthParam_hex"])));
        assert!(pad_pin("123").is_err());
        assert!(pad_pin(&"1".repeat(64)).is_err());
    }

    #[test]
    fn hmac_secret_vectors_protocols_one_and_two() {
        let p = default_provider();
        let all = vectors();
        let prf = &all["pin_uv_auth_protocol_vectors_from_webauthn_prf"];
        let shared_def = &prf["shared"]["fields"];
        let sk = h(&shared_def["platform_key_agreement_private_key"]);
        let ka = &shared_def["authenticator_key_agreement_public_key"]["cose_map_diagnostic"];
        let peer = CoseKey::Ec2 { alg: Some(CoseAlgorithm(-25)), crv: 1, x: h(&ka["-2"]), y: h(&ka["-3"]) };
        let cred_random = h(&shared_def["authenticator_cred_random"]);
        // The authenticator's key: sk = SHA-256(seed || 0x05).
        let seed = b"WebAuthn PRF test vectors";
        let auth_sk = p.sha256(&[seed, &[0x05]]);
        let cases = prf["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for case in cases {
            let proto = PinUvAuthProtocol::from_number(case["pin_uv_auth_protocol"].as_u64().unwrap()).unwrap();
            let f = &case["fields"];
            let (platform, shared) = proto.encapsulate_with(p, &sk, &peer).unwrap();
            assert_eq!(shared.as_bytes(), &h(&f["shared_secret"])[..]);
            // The authenticator side derives the same secret.
            let ak = KeyAgreementKey::from_scalar(p, proto, &auth_sk).unwrap();
            assert_eq!(ak.public_key(), peer);
            assert_eq!(ak.decapsulate(p, &platform).unwrap().as_bytes(), shared.as_bytes());
            let mut salts = h(&f["salt1"]);
            let mut outputs = h(&f["output1"]);
            if let Some(s2) = f.get("salt2") {
                salts.extend(h(s2));
                outputs.extend(h(&f["output2"]));
            }
            let salt_enc = h(&f["salt_enc"]);
            let output_enc = h(&f["output_enc"]);
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&salt_enc[..16]);
            assert_eq!(shared.encrypt_with_iv(p, &iv, &salts).unwrap(), salt_enc);
            assert_eq!(&shared.decrypt(p, &salt_enc).unwrap()[..], &salts[..]);
            assert_eq!(&shared.decrypt(p, &output_enc).unwrap()[..], &outputs[..]);
            iv.copy_from_slice(&output_enc[..16]);
            assert_eq!(shared.encrypt_with_iv(p, &iv, &outputs).unwrap(), output_enc);
            // output = HMAC-SHA-256(CredRandom, salt).
            assert_eq!(p.hmac(HashAlg::Sha256, &cred_random, &[&salts[..32]]), outputs[..32].to_vec());
            // salt1 = SHA-256("WebAuthn PRF" || 0x00 || eval).
            let eval = h(&f["prf_eval_first"]);
            assert_eq!(p.sha256(&[b"WebAuthn PRF", &[0], &eval]).to_vec(), h(&f["salt1"]));
        }
    }

    #[test]
    fn round_trips_and_errors() {
        let p = default_provider();
        for proto in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
            let ak = KeyAgreementKey::new(p, proto).unwrap();
            let (platform, shared) = proto.encapsulate(p, &ak.public_key()).unwrap();
            let a_shared = ak.decapsulate(p, &platform).unwrap();
            let ct = shared.encrypt(p, &[7u8; 32]).unwrap();
            assert_eq!(&a_shared.decrypt(p, &ct).unwrap()[..], &[7u8; 32]);
            let tag = shared.authenticate(p, b"msg");
            assert_eq!(tag.len(), proto.param_len());
            assert!(a_shared.verify(p, b"msg", &tag));
            assert!(!a_shared.verify(p, b"msh", &tag));
            assert!(!a_shared.verify(p, b"msg", &[]));
            assert!(shared.encrypt(p, &[1u8; 15]).is_err());
            assert!(shared.decrypt(p, &[1u8; 17]).is_err());
            assert!(shared.decrypt(p, &[1u8; 5]).is_err());
            let bad = CoseKey::Ec2 { alg: None, crv: 1, x: vec![0; 32], y: vec![0; 32] };
            assert_eq!(ak.decapsulate(p, &bad).unwrap_err(), PinProtocolError::InvalidKey);
        }
        assert!(PinUvAuthProtocol::from_number(3).is_err());
    }
}

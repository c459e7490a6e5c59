//! Build WebAuthn responses in-process, for testing a relying party without
//! an authenticator or a browser: a [`SoftCredential`] holds a P-256,
//! Ed25519 or ML-DSA key and produces `RegistrationResponseJSON` and
//! `AuthenticationResponseJSON` exactly as a client would, with every field
//! under the caller's control so tests can break one verification step at a
//! time. For a full CTAP2 authenticator, see the `authenticator` module.

use crate::crypto::{CryptoError, CryptoProvider, SecretBytes};
use crate::proto::auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
use crate::proto::cbor::{MapBuilder, Value};
use crate::proto::cose::{CoseAlgorithm, CoseKey, curve};
use crate::proto::webauthn::*;

/// A software credential that signs like an authenticator.
#[derive(Debug)]
pub struct SoftCredential {
    provider: &'static dyn CryptoProvider,
    /// COSE algorithm (ES256, ESP256, EdDSA, Ed25519, ML-DSA-44/65/87).
    pub alg: CoseAlgorithm,
    secret: SecretBytes,
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The COSE public key.
    pub public_key: CoseKey,
    /// The AAGUID reported at registration.
    pub aaguid: [u8; 16],
    /// The next signature counter.
    pub sign_count: u32,
    /// Packed basic attestation: the batch certificate chain (DER, leaf
    /// first) and the leaf's P-256 private scalar. `None`: self attestation.
    pub attestation: Option<(Vec<Vec<u8>>, SecretBytes)>,
}

/// Knobs for one ceremony response; defaults produce a valid response.
#[derive(Debug, Clone)]
pub struct ResponseParams {
    /// Origin written into client data.
    pub origin: String,
    /// RP ID hashed into authenticator data.
    pub rp_id: String,
    /// Client data `type`; `None` picks the ceremony's.
    pub type_: Option<String>,
    /// Client data `crossOrigin`.
    pub cross_origin: Option<bool>,
    /// Client data `topOrigin`.
    pub top_origin: Option<String>,
    /// Flags (UP|UV by default; AT/ED are set automatically).
    pub flags: u8,
    /// Attestation format: "none" or "packed" (self attestation).
    pub fmt: String,
    /// User handle for assertions.
    pub user_handle: Option<Vec<u8>>,
    /// Authenticator extension outputs.
    pub extensions: Option<Value>,
}

impl ResponseParams {
    /// Valid defaults for `rp_id` and `origin`.
    pub fn new(rp_id: &str, origin: &str) -> Self {
        ResponseParams {
            origin: origin.into(),
            rp_id: rp_id.into(),
            type_: None,
            cross_origin: None,
            top_origin: None,
            flags: Flags::UP | Flags::UV,
            fmt: "none".into(),
            user_handle: None,
            extensions: None,
        }
    }
}

impl SoftCredential {
    /// A new credential with a random key and a random 32-byte credential ID:
    /// ES256 or ESP256 (P-256), EdDSA or Ed25519, ML-DSA-44/65/87 (an AKP key).
    pub fn new(provider: &'static dyn CryptoProvider, alg: CoseAlgorithm) -> Result<Self, CryptoError> {
        let (secret, public_key) = if matches!(alg, CoseAlgorithm::EDDSA | CoseAlgorithm::ED25519) {
            let seed = provider.ed25519_generate()?;
            let x = provider.ed25519_public(&seed)?;
            (seed, CoseKey::Okp { alg: Some(alg), crv: curve::ED25519, x })
        } else if matches!(alg, CoseAlgorithm::ES256 | CoseAlgorithm::ESP256) {
            let s = provider.p256_generate()?;
            let p = provider.p256_public(&s)?;
            let key = CoseKey::p256_from_sec1(&p, alg).map_err(|_| CryptoError::InvalidKey("P-256 point"))?;
            (s, key)
        } else if let Some(level) = crate::crypto::cose_verify::ml_dsa_level(alg) {
            let seed = provider.ml_dsa_generate(level)?;
            let public = provider.ml_dsa_public(level, &seed)?;
            (seed, CoseKey::Akp { alg, public })
        } else {
            return Err(CryptoError::Unsupported("SoftCredential supports ES256, ESP256, EdDSA, Ed25519 and ML-DSA"));
        };
        Ok(SoftCredential {
            provider,
            alg,
            secret,
            credential_id: provider.random_bytes(32)?,
            public_key,
            aaguid: [0x11; 16],
            sign_count: 1,
            attestation: None,
        })
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if let Some(level) = crate::crypto::cose_verify::ml_dsa_level(self.alg) {
            self.provider.ml_dsa_sign(level, &self.secret, msg)
        } else if matches!(self.alg, CoseAlgorithm::EDDSA | CoseAlgorithm::ED25519) {
            self.provider.ed25519_sign(&self.secret, msg)
        } else {
            self.provider.p256_sign(&self.secret, msg)
        }
    }

    fn client_data(&self, p: &ResponseParams, default_type: &str, challenge: &[u8]) -> Vec<u8> {
        CollectedClientData {
            type_: p.type_.clone().unwrap_or_else(|| default_type.into()),
            challenge: b64url_encode(challenge),
            origin: p.origin.clone(),
            cross_origin: p.cross_origin,
            top_origin: p.top_origin.clone(),
        }
        .to_json_bytes()
    }

    /// Authenticator data bytes for these parameters.
    pub fn auth_data(&self, p: &ResponseParams, attested: bool) -> Vec<u8> {
        AuthenticatorData {
            rp_id_hash: self.provider.sha256(&[p.rp_id.as_bytes()]),
            flags: Flags(p.flags),
            sign_count: self.sign_count,
            attested_credential: attested.then(|| AttestedCredentialData {
                aaguid: self.aaguid,
                credential_id: self.credential_id.clone(),
                public_key: self.public_key.clone(),
                public_key_bytes: self.public_key.to_bytes(),
            }),
            extensions: p.extensions.clone(),
        }
        .to_bytes()
    }

    /// A registration response for `challenge`.
    pub fn register(&self, challenge: &[u8], p: &ResponseParams) -> Result<RegistrationResponseJson, CryptoError> {
        let cdj = self.client_data(p, "webauthn.create", challenge);
        let ad = self.auth_data(p, true);
        let att_stmt = match p.fmt.as_str() {
            "packed" => {
                let cdh = self.provider.sha256(&[&cdj]);
                let msg = [&ad[..], &cdh[..]].concat();
                match &self.attestation {
                    Some((chain, key)) => {
                        let sig = self.provider.p256_sign(key, &msg)?;
                        let x5c = Value::Array(chain.iter().map(|c| Value::Bytes(c.clone())).collect());
                        MapBuilder::new()
                            .insert("alg", CoseAlgorithm::ES256.0)
                            .insert("sig", sig)
                            .insert("x5c", x5c)
                            .build()
                    }
                    None => {
                        let sig = self.sign(&msg)?;
                        MapBuilder::new().insert("alg", self.alg.0).insert("sig", sig).build()
                    }
                }
            }
            _ => Value::Map(vec![]),
        };
        let ao = MapBuilder::new()
            .insert("fmt", p.fmt.as_str())
            .insert("attStmt", att_stmt)
            .insert("authData", ad.clone())
            .build()
            .to_vec();
        Ok(RegistrationResponseJson {
            id: b64url_encode(&self.credential_id),
            raw_id: Base64Url(self.credential_id.clone()),
            response: AttestationResponseJson {
                client_data_json: Base64Url(cdj),
                attestation_object: Base64Url(ao),
                authenticator_data: Some(Base64Url(ad)),
                transports: Some(vec!["usb".into()]),
                public_key: None,
                public_key_algorithm: Some(self.alg.0),
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: Default::default(),
            type_: "public-key".into(),
        })
    }

    /// An assertion for `challenge`; increments the counter.
    pub fn assert(&mut self, challenge: &[u8], p: &ResponseParams) -> Result<AuthenticationResponseJson, CryptoError> {
        self.sign_count = self.sign_count.wrapping_add(1);
        let cdj = self.client_data(p, "webauthn.get", challenge);
        let ad = self.auth_data(p, false);
        let cdh = self.provider.sha256(&[&cdj]);
        let sig = self.sign(&[&ad[..], &cdh[..]].concat())?;
        Ok(AuthenticationResponseJson {
            id: b64url_encode(&self.credential_id),
            raw_id: Base64Url(self.credential_id.clone()),
            response: AssertionResponseJson {
                client_data_json: Base64Url(cdj),
                authenticator_data: Base64Url(ad),
                signature: Base64Url(sig),
                user_handle: p.user_handle.clone().map(Base64Url),
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: Default::default(),
            type_: "public-key".into(),
        })
    }
}

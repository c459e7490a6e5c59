//! COSE keys and algorithm identifiers (RFC 9052/9053, IANA COSE registry),
//! as WebAuthn and CTAP2 carry them: `COSE_Key` maps with integer labels.

use super::cbor::{self, CborError, MapBuilder, Value};
use serde::{Deserialize, Serialize};

/// A COSE algorithm identifier (IANA "COSE Algorithms").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CoseAlgorithm(pub i64);

impl CoseAlgorithm {
    /// ECDSA w/ SHA-256 (P-256 in WebAuthn).
    pub const ES256: Self = Self(-7);
    /// EdDSA (Ed25519 in WebAuthn).
    pub const EDDSA: Self = Self(-8);
    /// ECDSA w/ SHA-384 (P-384).
    pub const ES384: Self = Self(-35);
    /// ECDSA w/ SHA-512 (P-521).
    pub const ES512: Self = Self(-36);
    /// RSASSA-PSS w/ SHA-256.
    pub const PS256: Self = Self(-37);
    /// RSASSA-PSS w/ SHA-384.
    pub const PS384: Self = Self(-38);
    /// RSASSA-PSS w/ SHA-512.
    pub const PS512: Self = Self(-39);
    /// RSASSA-PKCS1-v1_5 w/ SHA-256.
    pub const RS256: Self = Self(-257);
    /// RSASSA-PKCS1-v1_5 w/ SHA-384.
    pub const RS384: Self = Self(-258);
    /// RSASSA-PKCS1-v1_5 w/ SHA-512.
    pub const RS512: Self = Self(-259);
    /// RSASSA-PKCS1-v1_5 w/ SHA-1 (legacy TPMs; opt-in only).
    pub const RS1: Self = Self(-65535);
    /// ECDH-ES + HKDF-256 (CTAP2 key agreement).
    pub const ECDH_ES_HKDF_256: Self = Self(-25);
    /// Ed25519, fully specified (RFC 9864).
    pub const ED25519: Self = Self(-19);
    /// ECDSA P-256 with SHA-256, fully specified (RFC 9864).
    pub const ESP256: Self = Self(-9);

    /// The registry name, or "unknown".
    pub fn name(self) -> &'static str {
        match self.0 {
            -7 => "ES256",
            -8 => "EdDSA",
            -35 => "ES384",
            -36 => "ES512",
            -37 => "PS256",
            -38 => "PS384",
            -39 => "PS512",
            -257 => "RS256",
            -258 => "RS384",
            -259 => "RS512",
            -65535 => "RS1",
            -25 => "ECDH-ES+HKDF-256",
            -19 => "Ed25519",
            -9 => "ESP256",
            -48 => "ML-DSA-44",
            -49 => "ML-DSA-65",
            -50 => "ML-DSA-87",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for CoseAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// COSE elliptic curves (IANA "COSE Elliptic Curves").
pub mod curve {
    /// NIST P-256.
    pub const P256: i64 = 1;
    /// NIST P-384.
    pub const P384: i64 = 2;
    /// NIST P-521.
    pub const P521: i64 = 3;
    /// X25519 (ECDH).
    pub const X25519: i64 = 4;
    /// Ed25519.
    pub const ED25519: i64 = 6;
    /// Ed448.
    pub const ED448: i64 = 7;
}

/// COSE key types.
pub mod kty {
    /// Octet key pair (Ed25519, X25519).
    pub const OKP: i64 = 1;
    /// Elliptic curve with x and y.
    pub const EC2: i64 = 2;
    /// RSA.
    pub const RSA: i64 = 3;
}

/// Why a COSE key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoseError {
    /// The bytes are not one CBOR item.
    #[error("COSE key is not valid CBOR: {0}")]
    Cbor(#[from] CborError),
    /// The item is not a map or lacks a required label.
    #[error("COSE key is malformed: {0}")]
    Malformed(&'static str),
    /// The key type or curve is not one hwkey supports.
    #[error("unsupported COSE key type {kty} / curve {crv:?}")]
    Unsupported {
        /// COSE key type (label 1).
        kty: i64,
        /// COSE curve (label -1), when present.
        crv: Option<i64>,
    },
}

/// A public key in COSE_Key form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    /// kty 2: an elliptic-curve point (P-256, P-384, P-521).
    Ec2 {
        /// Label 3, if present.
        alg: Option<CoseAlgorithm>,
        /// Label -1: curve.
        crv: i64,
        /// Label -2: x coordinate, big-endian, exactly the curve's size.
        x: Vec<u8>,
        /// Label -3: y coordinate, big-endian, exactly the curve's size.
        y: Vec<u8>,
    },
    /// kty 1: an octet key pair (Ed25519, Ed448, X25519).
    Okp {
        /// Label 3, if present.
        alg: Option<CoseAlgorithm>,
        /// Label -1: curve.
        crv: i64,
        /// Label -2: the public key.
        x: Vec<u8>,
    },
    /// kty 3: RSA.
    Rsa {
        /// Label 3, if present.
        alg: Option<CoseAlgorithm>,
        /// Label -1: modulus, big-endian.
        n: Vec<u8>,
        /// Label -2: public exponent, big-endian.
        e: Vec<u8>,
    },
}

/// Coordinate size in bytes of an EC2 curve.
pub fn ec2_coordinate_len(crv: i64) -> Option<usize> {
    match crv {
        curve::P256 => Some(32),
        curve::P384 => Some(48),
        curve::P521 => Some(66),
        _ => None,
    }
}

impl CoseKey {
    /// The algorithm label (3), if present.
    pub fn alg(&self) -> Option<CoseAlgorithm> {
        match self {
            CoseKey::Ec2 { alg, .. } | CoseKey::Okp { alg, .. } | CoseKey::Rsa { alg, .. } => *alg,
        }
    }

    /// The key type (label 1).
    pub fn kty(&self) -> i64 {
        match self {
            CoseKey::Ec2 { .. } => kty::EC2,
            CoseKey::Okp { .. } => kty::OKP,
            CoseKey::Rsa { .. } => kty::RSA,
        }
    }

    /// An EC2 P-256 key from an uncompressed SEC1 point (0x04 || x || y).
    pub fn p256_from_sec1(point: &[u8], alg: CoseAlgorithm) -> Result<Self, CoseError> {
        if point.len() != 65 || point[0] != 0x04 {
            return Err(CoseError::Malformed("P-256 point must be 65 bytes, uncompressed"));
        }
        Ok(CoseKey::Ec2 { alg: Some(alg), crv: curve::P256, x: point[1..33].to_vec(), y: point[33..].to_vec() })
    }

    /// For EC2 keys: the uncompressed SEC1 point.
    pub fn sec1_uncompressed(&self) -> Option<Vec<u8>> {
        match self {
            CoseKey::Ec2 { x, y, .. } => {
                let mut p = Vec::with_capacity(1 + x.len() + y.len());
                p.push(0x04);
                p.extend_from_slice(x);
                p.extend_from_slice(y);
                Some(p)
            }
            _ => None,
        }
    }

    /// Read a COSE key from a CBOR value.
    pub fn from_value(v: &Value) -> Result<Self, CoseError> {
        if v.as_map().is_none() {
            return Err(CoseError::Malformed("not a map"));
        }
        let kty = v.get_int(1).and_then(Value::as_i64).ok_or(CoseError::Malformed("missing kty (1)"))?;
        let alg = match v.get_int(3) {
            None => None,
            Some(a) => Some(CoseAlgorithm(a.as_i64().ok_or(CoseError::Malformed("alg (3) is not an integer"))?)),
        };
        let bytes = |label: i64, what: &'static str| -> Result<Vec<u8>, CoseError> {
            v.get_int(label).and_then(Value::as_bytes).map(<[u8]>::to_vec).ok_or(CoseError::Malformed(what))
        };
        match kty {
            kty::EC2 => {
                let crv = v.get_int(-1).and_then(Value::as_i64).ok_or(CoseError::Malformed("missing crv (-1)"))?;
                let len = ec2_coordinate_len(crv).ok_or(CoseError::Unsupported { kty, crv: Some(crv) })?;
                let x = bytes(-2, "missing x (-2)")?;
                let y = match v.get_int(-3) {
                    Some(Value::Bytes(y)) => y.clone(),
                    Some(Value::Bool(_)) => {
                        return Err(CoseError::Malformed("compressed EC2 points are not supported"));
                    }
                    _ => return Err(CoseError::Malformed("missing y (-3)")),
                };
                if x.len() != len || y.len() != len {
                    return Err(CoseError::Malformed("EC2 coordinate has the wrong length for its curve"));
                }
                Ok(CoseKey::Ec2 { alg, crv, x, y })
            }
            kty::OKP => {
                let crv = v.get_int(-1).and_then(Value::as_i64).ok_or(CoseError::Malformed("missing crv (-1)"))?;
                let x = bytes(-2, "missing x (-2)")?;
                let want = match crv {
                    curve::ED25519 | curve::X25519 => 32,
                    curve::ED448 => 57,
                    _ => return Err(CoseError::Unsupported { kty, crv: Some(crv) }),
                };
                if x.len() != want {
                    return Err(CoseError::Malformed("OKP key has the wrong length for its curve"));
                }
                Ok(CoseKey::Okp { alg, crv, x })
            }
            kty::RSA => {
                let n = bytes(-1, "missing n (-1)")?;
                let e = bytes(-2, "missing e (-2)")?;
                if n.is_empty() || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return Err(CoseError::Malformed("RSA modulus or exponent size out of range"));
                }
                Ok(CoseKey::Rsa { alg, n, e })
            }
            _ => Err(CoseError::Unsupported { kty, crv: None }),
        }
    }

    /// Decode a COSE key from exactly these bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CoseError> {
        Self::from_value(&cbor::decode(b)?)
    }

    /// The COSE key as a CBOR value.
    pub fn to_value(&self) -> Value {
        match self {
            CoseKey::Ec2 { alg, crv, x, y } => MapBuilder::new()
                .insert(1, kty::EC2)
                .insert_opt(3, alg.map(|a| a.0))
                .insert(-1, *crv)
                .insert(-2, x.clone())
                .insert(-3, y.clone())
                .build(),
            CoseKey::Okp { alg, crv, x } => MapBuilder::new()
                .insert(1, kty::OKP)
                .insert_opt(3, alg.map(|a| a.0))
                .insert(-1, *crv)
                .insert(-2, x.clone())
                .build(),
            CoseKey::Rsa { alg, n, e } => MapBuilder::new()
                .insert(1, kty::RSA)
                .insert_opt(3, alg.map(|a| a.0))
                .insert(-1, n.clone())
                .insert(-2, e.clone())
                .build(),
        }
    }

    /// Canonical CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_vec()
    }
}

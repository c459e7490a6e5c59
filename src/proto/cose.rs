//! COSE keys and algorithm identifiers (RFC 9052/9053, IANA COSE registry),
//! as WebAuthn and CTAP2 carry them: `COSE_Key` maps with integer labels.
//!
//! Besides EC2, OKP and RSA keys this reads the Algorithm Key Pair type (AKP,
//! kty 7) of RFC 9964 (draft-ietf-cose-dilithium), which carries ML-DSA
//! public keys (`pub`, label -1; `alg`, label 3, required). The fully
//! specified algorithm identifiers of RFC 9864 (ESP256, ESP384, ESP512,
//! Ed25519, Ed448) have their polymorphic twins (ES256, ES384, ES512, EdDSA)
//! in [`CoseAlgorithm::polymorphic_twin`].

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
    /// ECDSA P-384 with SHA-384, fully specified (RFC 9864).
    pub const ESP384: Self = Self(-51);
    /// ECDSA P-521 with SHA-512, fully specified (RFC 9864).
    pub const ESP512: Self = Self(-52);
    /// Ed448, fully specified (RFC 9864).
    pub const ED448: Self = Self(-53);
    /// ML-DSA-44 (FIPS 204; RFC 9964), key type AKP.
    pub const ML_DSA_44: Self = Self(-48);
    /// ML-DSA-65 (FIPS 204; RFC 9964), key type AKP.
    pub const ML_DSA_65: Self = Self(-49);
    /// ML-DSA-87 (FIPS 204; RFC 9964), key type AKP.
    pub const ML_DSA_87: Self = Self(-50);

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
            -51 => "ESP384",
            -52 => "ESP512",
            -53 => "Ed448",
            -48 => "ML-DSA-44",
            -49 => "ML-DSA-65",
            -50 => "ML-DSA-87",
            _ => "unknown",
        }
    }

    /// For a fully specified identifier of RFC 9864, the deprecated
    /// polymorphic identifier that names the same operation once the key's
    /// curve is known (ESP256 -> ES256, ESP384 -> ES384, ESP512 -> ES512,
    /// Ed25519 and Ed448 -> EdDSA); `None` for every other identifier.
    pub fn polymorphic_twin(self) -> Option<Self> {
        match self {
            Self::ESP256 => Some(Self::ES256),
            Self::ESP384 => Some(Self::ES384),
            Self::ESP512 => Some(Self::ES512),
            Self::ED25519 | Self::ED448 => Some(Self::EDDSA),
            _ => None,
        }
    }

    /// Is this one of the ML-DSA identifiers (-48, -49, -50)?
    pub fn is_ml_dsa(self) -> bool {
        akp_public_key_len(self).is_some()
    }
}

/// The length of an AKP `pub` parameter for `alg`: the FIPS 204 public key
/// sizes of ML-DSA-44/65/87 (1312, 1952, 2592 bytes); `None` for algorithms
/// that do not use AKP keys.
pub fn akp_public_key_len(alg: CoseAlgorithm) -> Option<usize> {
    match alg {
        CoseAlgorithm::ML_DSA_44 => Some(1312),
        CoseAlgorithm::ML_DSA_65 => Some(1952),
        CoseAlgorithm::ML_DSA_87 => Some(2592),
        _ => None,
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
    /// Algorithm Key Pair (RFC 9964): ML-DSA; the `alg` label fixes the key's form.
    pub const AKP: i64 = 7;
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
    /// An AKP key (kty 7) whose `alg` is not an algorithm hwkey supports.
    #[error("unsupported algorithm {alg} for a COSE key of type {kty}")]
    UnsupportedAlgorithm {
        /// COSE key type (label 1).
        kty: i64,
        /// COSE algorithm (label 3).
        alg: i64,
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
    /// kty 7 (AKP, RFC 9964): an ML-DSA public key.
    Akp {
        /// Label 3: the algorithm, required for AKP keys (ML-DSA-44/65/87).
        alg: CoseAlgorithm,
        /// Label -1 (`pub`): the FIPS 204 public key encoding, exactly the
        /// size [`akp_public_key_len`] gives for `alg`.
        public: Vec<u8>,
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
            CoseKey::Akp { alg, .. } => Some(*alg),
        }
    }

    /// The key type (label 1).
    pub fn kty(&self) -> i64 {
        match self {
            CoseKey::Ec2 { .. } => kty::EC2,
            CoseKey::Okp { .. } => kty::OKP,
            CoseKey::Rsa { .. } => kty::RSA,
            CoseKey::Akp { .. } => kty::AKP,
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
            kty::AKP => {
                // RFC 9964 §3: alg and pub are required; priv must not be in a public key.
                let alg = alg.ok_or(CoseError::Malformed("AKP key without alg (3)"))?;
                if v.get_int(-2).is_some() {
                    return Err(CoseError::Malformed("AKP public key carries a private key (-2)"));
                }
                let want = akp_public_key_len(alg).ok_or(CoseError::UnsupportedAlgorithm { kty, alg: alg.0 })?;
                let public = bytes(-1, "missing pub (-1)")?;
                if public.len() != want {
                    return Err(CoseError::Malformed("AKP pub has the wrong length for its algorithm"));
                }
                Ok(CoseKey::Akp { alg, public })
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
            CoseKey::Akp { alg, public } => {
                MapBuilder::new().insert(1, kty::AKP).insert(3, alg.0).insert(-1, public.clone()).build()
            }
        }
    }

    /// Canonical CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AKP map with these entries (labels and values), canonical order.
    fn akp(entries: Vec<(i64, Value)>) -> Vec<u8> {
        let mut m = MapBuilder::new();
        for (k, v) in entries {
            m = m.insert(k, v);
        }
        m.build().to_vec()
    }

    #[test]
    fn akp_keys_round_trip_and_are_checked() {
        for (alg, len) in
            [(CoseAlgorithm::ML_DSA_44, 1312), (CoseAlgorithm::ML_DSA_65, 1952), (CoseAlgorithm::ML_DSA_87, 2592)]
        {
            let key = CoseKey::Akp { alg, public: vec![7; len] };
            let bytes = key.to_bytes();
            // {1: 7, 3: alg, -1: pub}, in CTAP2 canonical order.
            assert_eq!(&bytes[..3], &[0xa3, 0x01, 0x07]);
            assert_eq!(CoseKey::from_bytes(&bytes), Ok(key.clone()));
            assert_eq!((key.kty(), key.alg()), (kty::AKP, Some(alg)));
            assert!(alg.is_ml_dsa() && alg.polymorphic_twin().is_none());
            // pub one byte short or long.
            for bad_len in [len - 1, len + 1, 0] {
                let b =
                    akp(vec![(1, Value::from(7i64)), (3, Value::from(alg.0)), (-1, Value::Bytes(vec![7; bad_len]))]);
                assert!(matches!(CoseKey::from_bytes(&b), Err(CoseError::Malformed(_))), "{alg} {bad_len}");
            }
        }
        let pk = || Value::Bytes(vec![1; 1952]);
        // alg is required.
        let b = akp(vec![(1, Value::from(7i64)), (-1, pk())]);
        assert_eq!(CoseKey::from_bytes(&b), Err(CoseError::Malformed("AKP key without alg (3)")));
        // pub is required.
        let b = akp(vec![(1, Value::from(7i64)), (3, Value::from(-49i64))]);
        assert_eq!(CoseKey::from_bytes(&b), Err(CoseError::Malformed("missing pub (-1)")));
        // priv (-2) must not be in a public key.
        let b =
            akp(vec![(1, Value::from(7i64)), (3, Value::from(-49i64)), (-1, pk()), (-2, Value::Bytes(vec![0; 32]))]);
        assert_eq!(CoseKey::from_bytes(&b), Err(CoseError::Malformed("AKP public key carries a private key (-2)")));
        // An AKP key for an algorithm that is not ML-DSA.
        let b = akp(vec![(1, Value::from(7i64)), (3, Value::from(-7i64)), (-1, pk())]);
        assert_eq!(CoseKey::from_bytes(&b), Err(CoseError::UnsupportedAlgorithm { kty: 7, alg: -7 }));
        // pub of the wrong CBOR type.
        let b = akp(vec![(1, Value::from(7i64)), (3, Value::from(-49i64)), (-1, Value::from(5i64))]);
        assert_eq!(CoseKey::from_bytes(&b), Err(CoseError::Malformed("missing pub (-1)")));
    }

    #[test]
    fn fully_specified_identifiers_and_their_twins() {
        use CoseAlgorithm as A;
        for (full, poly, name) in [
            (A::ESP256, A::ES256, "ESP256"),
            (A::ESP384, A::ES384, "ESP384"),
            (A::ESP512, A::ES512, "ESP512"),
            (A::ED25519, A::EDDSA, "Ed25519"),
            (A::ED448, A::EDDSA, "Ed448"),
        ] {
            assert_eq!(full.polymorphic_twin(), Some(poly));
            assert_eq!(full.name(), name);
            assert_eq!(poly.polymorphic_twin(), None);
        }
        assert_eq!((A::ESP256.0, A::ESP384.0, A::ESP512.0, A::ED25519.0, A::ED448.0), (-9, -51, -52, -19, -53));
        assert_eq!((A::ML_DSA_44.0, A::ML_DSA_65.0, A::ML_DSA_87.0), (-48, -49, -50));
        assert_eq!(A::ML_DSA_65.to_string(), "ML-DSA-65 (-49)");
    }
}

//! Fixtures for the attestation format unit tests: real attestation objects
//! (W3C WebAuthn L3 test vectors and recorded devices, see
//! `testdata/fixtures.json`) and helpers that tamper with them.

use super::*;
use crate::proto::attestation::AttestationObject;

const FIXTURES: &str = include_str!("testdata/fixtures.json");

/// A fixture, decoded.
pub(crate) struct Fixture {
    pub obj: AttestationObject,
    pub cdh: [u8; 32],
    pub time: i64,
}

/// Load a fixture by name ("w3c/packed.ES256", "real/android-key", ...).
pub(crate) fn fixture(name: &str) -> Fixture {
    let all: serde_json::Value = serde_json::from_str(FIXTURES).expect("fixtures JSON");
    let f = &all["fixtures"][name];
    let att = hex::decode(f["attestation_object_hex"].as_str().expect("fixture exists")).expect("hex");
    let cdj = hex::decode(f["client_data_json_hex"].as_str().expect("cdj")).expect("hex");
    let obj = AttestationObject::parse(&att).expect("fixture parses");
    let cdh = crate::crypto::default_provider().sha256(&[&cdj]);
    // W3C fixtures carry no time; their certificates are valid around 2025.
    let time = f["time"].as_i64().unwrap_or(1_750_000_000);
    Fixture { obj, cdh, time }
}

impl Fixture {
    /// Verify on every provider under `policy`, with safetynet and RS1 as given;
    /// all providers must agree, and the common result is returned.
    pub(crate) fn verify_with(
        &self,
        allow_safetynet: bool,
        allow_rs1: bool,
        policy: &AttestationPolicy,
    ) -> Result<VerifiedAttestation, AttestationError> {
        let mut results = crate::crypto::all_providers().into_iter().map(|provider| {
            let ctx = AttestationContext { provider, now_unix: self.time, allow_safetynet, allow_rs1 };
            verify_attestation_with_policy(
                &self.obj.fmt,
                &self.obj.att_stmt,
                &self.obj.auth_data,
                &self.obj.auth_data_raw,
                &self.cdh,
                &ctx,
                policy,
            )
        });
        let first = results.next().expect("a provider");
        for r in results {
            assert_eq!(r, first, "providers disagree");
        }
        first
    }

    /// Verify with the default policy, safetynet and RS1 allowed.
    pub(crate) fn verify(&self) -> Result<VerifiedAttestation, AttestationError> {
        self.verify_with(true, true, &AttestationPolicy::default())
    }

    /// The attStmt map entries, mutable.
    pub(crate) fn stmt_mut(&mut self) -> &mut Vec<(Value, Value)> {
        match &mut self.obj.att_stmt {
            Value::Map(m) => m,
            _ => panic!("attStmt is a map"),
        }
    }

    /// Replace (or add) an attStmt field.
    pub(crate) fn set(&mut self, key: &str, v: Value) {
        let m = self.stmt_mut();
        m.retain(|(k, _)| k.as_text() != Some(key));
        m.push((Value::Text(key.into()), v));
    }

    /// Remove an attStmt field.
    pub(crate) fn remove(&mut self, key: &str) {
        self.stmt_mut().retain(|(k, _)| k.as_text() != Some(key));
    }

    /// A byte-string attStmt field, mutable.
    pub(crate) fn bytes_mut(&mut self, key: &str) -> &mut Vec<u8> {
        let m = self.stmt_mut();
        match m.iter_mut().find(|(k, _)| k.as_text() == Some(key)) {
            Some((_, Value::Bytes(b))) => b,
            _ => panic!("attStmt.{key} is a byte string"),
        }
    }

    /// The x5c certificates, mutable.
    pub(crate) fn x5c_mut(&mut self) -> &mut Vec<Value> {
        let m = self.stmt_mut();
        match m.iter_mut().find(|(k, _)| k.as_text() == Some("x5c")) {
            Some((_, Value::Array(a))) => a,
            _ => panic!("attStmt.x5c is an array"),
        }
    }

    /// The leaf certificate DER.
    pub(crate) fn leaf(&self) -> Vec<u8> {
        match self.obj.att_stmt.get_text("x5c") {
            Some(Value::Array(a)) => a.first().and_then(Value::as_bytes).expect("leaf").to_vec(),
            _ => panic!("x5c"),
        }
    }

    /// Flip the last byte of a byte-string attStmt field.
    pub(crate) fn flip_last(&mut self, key: &str) {
        if let Some(b) = self.bytes_mut(key).last_mut() {
            *b ^= 0x01;
        }
    }
}

/// Replace the first occurrence of `from` with `to` (same length) in `hay`.
pub(crate) fn replace_bytes(hay: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let pos = hay.windows(from.len()).position(|w| w == from).expect("pattern present");
    hay[pos..pos + to.len()].copy_from_slice(to);
}

/// Assert an error of the given variant code.
pub(crate) fn assert_code(r: Result<VerifiedAttestation, AttestationError>, code: &str) {
    match r {
        Err(e) => assert_eq!(e.code(), code, "{e}"),
        Ok(v) => panic!("expected {code}, verified as {v:?}"),
    }
}

/// Every fixture, with every byte-string field of attStmt (and every x5c
/// certificate) truncated and bit-flipped at many positions: verification
/// gives a verdict and never panics.
#[test]
fn mutations_never_panic() {
    let names = [
        "w3c/packed.ES256",
        "w3c/packed-self.ES256",
        "w3c/tpm.ES256",
        "w3c/apple.ES256",
        "w3c/fido-u2f.ES256",
        "w3c/packed.RS256",
        "real/android-key",
        "real/android-safetynet",
        "real/tpm-rs1",
    ];
    for name in names {
        let base = fixture(name);
        let keys: Vec<String> = base
            .obj
            .att_stmt
            .as_map()
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, _)| k.as_text().map(str::to_owned))
            .collect();
        for key in &keys {
            let field = base.obj.att_stmt.get_text(key).cloned();
            let blobs: Vec<Vec<u8>> = match &field {
                Some(Value::Bytes(b)) => vec![b.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|c| c.as_bytes().map(<[u8]>::to_vec)).collect(),
                _ => continue,
            };
            for (i, blob) in blobs.iter().enumerate() {
                let step = (blob.len() / 40).max(1);
                for pos in (0..blob.len()).step_by(step) {
                    for variant in 0..2 {
                        let mut m = blob.clone();
                        if variant == 0 {
                            m[pos] ^= 0x80;
                        } else {
                            m.truncate(pos);
                        }
                        let mut f = fixture(name);
                        let new = match &field {
                            Some(Value::Array(a)) => {
                                let mut a = a.clone();
                                a[i] = Value::Bytes(m);
                                Value::Array(a)
                            }
                            _ => Value::Bytes(m),
                        };
                        f.set(key, new);
                        let _ = f.verify_with(true, true, &AttestationPolicy::default());
                    }
                }
            }
        }
    }
}

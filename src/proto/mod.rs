//! Shared wire types: pure data and codecs, no I/O, no policy.
//!
//! The relying party, the client driver and the software authenticator all
//! encode and decode with these types, so each byte layout lives in one place:
//! [`cbor`] (CTAP2 canonical CBOR), [`cose`] (COSE keys and algorithms),
//! [`auth_data`] (authenticator data), [`attestation`] (attestation objects),
//! [`webauthn`] (WebAuthn L3 JSON) and [`extensions`] (extension identifiers
//! and authenticator-side extension values).

pub mod attestation;
pub mod auth_data;
pub mod cbor;
pub mod cose;
pub mod ctap1;
pub mod ctap2;
pub mod extensions;
pub mod webauthn;

pub use attestation::AttestationObject;
pub use auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
pub use cbor::Value;
pub use cose::{CoseAlgorithm, CoseKey};

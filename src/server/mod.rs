//! The WebAuthn relying party (feature `server`).
//!
//! Sans-I/O ceremonies ([`registration`], [`authentication`]) over the shared
//! wire types, one file per attestation format under [`attestation`], and
//! certificate-path trust decisions in [`trust`].

pub mod attestation;
pub mod cert;
pub mod trust;

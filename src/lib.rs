//! # hwkey
//!
//! Possession-factor hardware for authentication, in one crate:
//!
//! | module | feature | what it is |
//! |---|---|---|
//! | [`proto`] | always | shared wire types: CBOR, COSE, authenticator data, attestation objects, CTAP2 commands, WebAuthn JSON |
//! | [`crypto`] | `aws-lc` (default) / `rust-crypto` | the crypto provider, COSE signature checks, PIN/UV auth protocols |
//! | `authenticator` | `virtual` | a software CTAP 2.1 authenticator (sans-I/O): CBOR and U2F messages in, responses out |
//! | `server` | `server` | the WebAuthn relying party, verification only: ceremonies, every attestation format, trust paths |
//! | `store` | `store`, `sqlite`, `postgres` | users, credentials, ceremonies, sessions and audit on SQLite or PostgreSQL |
//! | `account` | `account` | the account service: users, factors (keys, password, TOTP, recovery codes), sign-in flows, sessions, policy, throttling, secrets at rest; no HTTP |
//! | `http` | `http` | the axum adapter of the HTTP contract and the demo page |
//! | `client` | `client` | the platform side: CTAP2/U2F driver, PIN/UV, discovery, WebAuthn client |
//! | [`derive`](mod@derive) | always (backends: `yubikey`, `client`) | one API for "a stable 32-byte secret from the user's key": YubiKey HMAC-SHA1 or FIDO2 hmac-secret |
//! | [`transport`] | always (`hid` for USB) | CTAPHID framing, both ends; in-memory, UDP and USB HID transports |
//! | `desktop` | `desktop` | desktop login: pam-u2f authfiles, the PAM authentication decision, the OpenSSH sk-api mapping (the `pam/` and `sk/` cdylibs are thin over it) |
//! | `otp` | `otp` | HOTP/TOTP, otpauth URIs, QR codes, recovery codes |
//! | `yubikey` | `yubikey` | the YubiKey OTP HID interface (challenge-response, programming) and a software YubiKey |
//!
//! Every protocol core is sans-I/O: the relying party maps (configuration,
//! stored state, response) to a verdict; I/O wraps it from outside.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "account")]
pub mod account;
#[cfg(feature = "virtual")]
pub mod authenticator;
#[cfg(feature = "client")]
pub mod client;
pub mod crypto;
pub mod derive;
#[cfg(feature = "desktop")]
pub mod desktop;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "otp")]
pub mod otp;
pub mod proto;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "store")]
pub mod store;
pub mod transport;
#[cfg(feature = "yubikey")]
pub mod yubikey;

//! Cryptography: the one place in hwkey that touches a crypto backend.
//!
//! Everything above this layer asks a [`CryptoProvider`] for hashes, MACs,
//! key derivation, signatures, ECDH, AES and randomness. Two providers exist:
//! [`aws_lc`] (feature `aws-lc`, the default; the fastest signature checks on
//! x86-64 and arm64) and [`rust_crypto`] (feature `rust-crypto`, pure Rust, for
//! targets without a C toolchain). [`default_provider`] picks one by features.
//!
//! On top of the provider sit [`cose_verify`] (signature verification per COSE
//! algorithm) and [`pin_protocol`] (CTAP2 PIN/UV auth protocols one and two).

pub mod cose_verify;
pub mod pin_protocol;
mod provider;

#[cfg(feature = "aws-lc")]
pub mod aws_lc;
#[cfg(feature = "rust-crypto")]
pub mod rust_crypto;

pub use provider::{
    CryptoError, CryptoProvider, EcCurve, HashAlg, MlDsaLevel, RsaPadding, SecretBytes, ct_eq, ed25519_key_is_weak,
};

#[cfg(not(any(feature = "aws-lc", feature = "rust-crypto")))]
compile_error!("hwkey needs a crypto provider: enable feature `aws-lc` (default) or `rust-crypto`");

/// The provider chosen by cargo features: aws-lc-rs when feature `aws-lc` is
/// on (the default), else the pure-Rust provider.
pub fn default_provider() -> &'static dyn CryptoProvider {
    #[cfg(feature = "aws-lc")]
    {
        &aws_lc::AwsLcProvider
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc")))]
    {
        &rust_crypto::RustCryptoProvider
    }
}

/// Every provider compiled into this build, for tests that must run on each.
#[allow(clippy::vec_init_then_push)]
pub fn all_providers() -> Vec<&'static dyn CryptoProvider> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static dyn CryptoProvider> = Vec::new();
    #[cfg(feature = "aws-lc")]
    v.push(&aws_lc::AwsLcProvider);
    #[cfg(feature = "rust-crypto")]
    v.push(&rust_crypto::RustCryptoProvider);
    v
}

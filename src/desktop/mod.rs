//! Desktop login with a key (feature `desktop`, CONTRACTS §4): everything
//! the PAM module `pam_hwkey.so` and the OpenSSH security-key provider
//! `libhwkey_sk.so` do that can be safe Rust. The cdylibs in the workspace
//! members `pam/` and `sk/` only convert C arguments and call in here.
//!
//! - [`authfile`]: pam-u2f authfiles (old and new formats, resident `*`
//!   credentials, options, several keys per user, central files), writing
//!   lines, and the permission rule.
//! - [`pam`]: the PAM authentication decision: options, pre-flight,
//!   assertion, verification, PAM codes.
//! - [`enroll`]: `hwkey pam enroll`, as pamu2fcfg.
//! - [`sk`]: the OpenSSH sk-api (enroll, sign, resident keys) mapped onto CTAP2.
//! - [`devices`]: which authenticators to talk to (`device=`, `HWKEY_DEVICE`,
//!   every FIDO HID device).

pub mod authfile;
pub mod devices;
pub mod enroll;
pub mod pam;
pub mod sk;

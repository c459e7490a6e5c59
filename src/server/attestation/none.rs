//! The "none" attestation statement format (WebAuthn L3 §8.7): an empty
//! attStmt and no attestation.

use super::{AttestationError, AttestationType, FormatResult, Input};

/// Verify a "none" statement: attStmt must be the empty map.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    match input.att_stmt.as_map() {
        Some([]) => Ok((AttestationType::None, Vec::new())),
        Some(_) => Err(AttestationError::Malformed("attStmt of format none must be empty".into())),
        None => Err(AttestationError::Malformed("attStmt is not a map".into())),
    }
}

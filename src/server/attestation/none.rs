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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::proto::cbor::Value;

    #[test]
    fn none_needs_an_empty_statement() {
        let mut f = fixture("w3c/packed-self.ES256");
        f.obj.fmt = "none".into();
        assert_code(f.verify(), "attestation_malformed");
        f.obj.att_stmt = Value::Map(vec![]);
        assert_eq!(f.verify().unwrap().attestation_type, super::AttestationType::None);
        f.obj.att_stmt = Value::Array(vec![]);
        assert_code(f.verify(), "attestation_malformed");
    }

    #[test]
    fn unknown_format_is_unsupported() {
        let mut f = fixture("w3c/packed-self.ES256");
        f.obj.fmt = "not_real_fmt".into();
        assert_code(f.verify(), "attestation_format_unsupported");
    }
}

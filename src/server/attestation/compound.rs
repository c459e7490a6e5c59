//! The "compound" attestation statement format (WebAuthn L3 §8.9): attStmt
//! is an array of at least two `{fmt, attStmt}` statements of other formats;
//! each is verified and all must pass.

use super::{AttestationError, FormatResult, Input, VerifiedAttestation, verify_attestation_with_policy};

/// Verify every component of a compound statement; returns each result in order.
pub fn verify_components(
    att_stmt: &crate::proto::cbor::Value,
    auth_data: &crate::proto::auth_data::AuthenticatorData,
    auth_data_raw: &[u8],
    client_data_hash: &[u8; 32],
    ctx: &super::AttestationContext<'_>,
    policy: &super::AttestationPolicy,
) -> Result<Vec<VerifiedAttestation>, AttestationError> {
    let items =
        att_stmt.as_array().ok_or_else(|| AttestationError::Malformed("compound attStmt is not an array".into()))?;
    if items.len() < 2 {
        return Err(AttestationError::Malformed("compound attStmt needs at least two statements".into()));
    }
    items
        .iter()
        .map(|item| {
            let fmt = item
                .get_text("fmt")
                .and_then(|f| f.as_text())
                .ok_or_else(|| AttestationError::Malformed("compound entry lacks fmt".into()))?;
            if fmt == "compound" {
                return Err(AttestationError::Malformed("compound statements must not nest".into()));
            }
            let stmt = item
                .get_text("attStmt")
                .filter(|s| s.as_map().is_some())
                .ok_or_else(|| AttestationError::Malformed("compound entry lacks an attStmt map".into()))?;
            verify_attestation_with_policy(fmt, stmt, auth_data, auth_data_raw, client_data_hash, ctx, policy)
        })
        .collect()
}

/// Verify a "compound" statement. The reported type and chain are those of
/// the first component; [`verify_components`] gives all of them.
pub(crate) fn verify(input: &Input<'_>) -> FormatResult {
    let all = verify_components(
        input.att_stmt,
        input.auth_data,
        input.auth_data_raw,
        input.client_data_hash,
        input.ctx,
        input.policy,
    )?;
    let first =
        all.into_iter().next().ok_or_else(|| AttestationError::Malformed("compound attStmt is empty".into()))?;
    Ok((first.attestation_type, first.chain))
}

#[cfg(test)]
mod tests {
    use super::super::AttestationType;
    use super::super::test_support::*;
    use crate::proto::cbor::{MapBuilder, Value};

    fn entry(fmt: &str, stmt: Value) -> Value {
        MapBuilder::new().insert("fmt", fmt).insert("attStmt", stmt).build()
    }

    #[test]
    fn all_components_must_verify() {
        let mut f = fixture("w3c/packed.ES256");
        let good = f.obj.att_stmt.clone();
        f.obj.fmt = "compound".into();
        f.obj.att_stmt = Value::Array(vec![entry("packed", good.clone()), entry("packed", good.clone())]);
        assert_eq!(f.verify().unwrap().attestation_type, AttestationType::Basic);

        let mut bad = fixture("w3c/packed.ES256");
        bad.flip_last("sig");
        f.obj.att_stmt = Value::Array(vec![entry("packed", good.clone()), entry("packed", bad.obj.att_stmt.clone())]);
        assert_code(f.verify(), "attestation_bad_signature");

        f.obj.att_stmt = Value::Array(vec![entry("packed", good.clone())]);
        assert_code(f.verify(), "attestation_malformed");

        f.obj.att_stmt = Value::Array(vec![entry("packed", good.clone()), entry("compound", Value::Map(vec![]))]);
        assert_code(f.verify(), "attestation_malformed");

        f.obj.att_stmt = Value::Map(vec![]);
        assert_code(f.verify(), "attestation_malformed");
    }

    #[test]
    fn compound_attestation_object_round_trips_through_the_parser() {
        let f = fixture("w3c/packed.ES256");
        let mut obj = f.obj.clone();
        obj.fmt = "compound".into();
        obj.att_stmt =
            Value::Array(vec![entry("packed", f.obj.att_stmt.clone()), entry("packed", f.obj.att_stmt.clone())]);
        let parsed = crate::proto::attestation::AttestationObject::parse(&obj.to_bytes()).unwrap();
        assert_eq!(parsed.fmt, "compound");
    }
}

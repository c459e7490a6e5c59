//! authenticatorCredentialManagement: metadata, enumerate RPs, enumerate
//! credentials, delete, update user information.
//!
//! The read-only subcommands (metadata and the two enumerations) also accept
//! the persistent pinUvAuthToken of CTAP 2.2 (permission `pcmr`, which
//! survives power cycles); delete and update need a token with `cm`.

use super::Authenticator;
use crate::proto::cbor::Value;
use crate::proto::ctap2::client_pin::permissions;
use crate::proto::ctap2::credential_management::{
    CredentialManagementRequest, CredentialManagementResponse, CredentialManagementSubcommand as Sub,
};
use crate::proto::ctap2::{
    CtapCodec, CtapStatus, PublicKeyCredentialDescriptor, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};

/// RPs left to enumerate.
pub(crate) struct RpEnumeration {
    rps: Vec<(String, Option<String>)>,
    next: usize,
}

/// Credential IDs left to enumerate.
pub(crate) struct CredEnumeration {
    ids: Vec<Vec<u8>>,
    next: usize,
}

pub(crate) fn credential_management(a: &mut Authenticator, v: &Value) -> Result<Option<Value>, CtapStatus> {
    let req = CredentialManagementRequest::from_value(v).map_err(|e| e.status())?;
    let needs_auth =
        !matches!(req.sub_command, Sub::EnumerateRpsGetNextRp | Sub::EnumerateCredentialsGetNextCredential);
    let read_only =
        matches!(req.sub_command, Sub::GetCredsMetadata | Sub::EnumerateRpsBegin | Sub::EnumerateCredentialsBegin);
    let mut persistent = false;
    if needs_auth {
        let param = req.pin_uv_auth_param.as_deref().ok_or(CtapStatus::PuatRequired)?;
        let message = req.auth_message();
        match a.check_token(req.pin_uv_auth_protocol, param, &message, permissions::CREDENTIAL_MANAGEMENT, None) {
            Ok(()) => {}
            Err(CtapStatus::PinAuthInvalid)
                if read_only && a.check_persistent_token(req.pin_uv_auth_protocol, param, &message) =>
            {
                persistent = true;
            }
            Err(e) => return Err(e),
        }
    }
    // CTAP 2.1 §6.8: a token with a permissions RP ID reaches only that RP's
    // credentials; metadata and RP enumeration need a token without one.
    let bound_rp =
        if needs_auth && !persistent { a.volatile.token.as_ref().and_then(|t| t.rp_id.clone()) } else { None };
    let may_reach = |rp_id: &str| bound_rp.as_deref().is_none_or(|b| b == rp_id);
    let params = req.sub_command_params.clone().unwrap_or_default();
    if matches!(req.sub_command, Sub::GetCredsMetadata | Sub::EnumerateRpsBegin) && bound_rp.is_some() {
        return Err(CtapStatus::PinAuthInvalid);
    }
    let resp = match req.sub_command {
        Sub::GetCredsMetadata => CredentialManagementResponse {
            existing_resident_credentials_count: Some(a.state.credentials.len() as u64),
            max_possible_remaining_resident_credentials_count: Some(
                a.config.max_resident_credentials.saturating_sub(a.state.credentials.len()) as u64,
            ),
            ..Default::default()
        },
        Sub::EnumerateRpsBegin => {
            let mut rps: Vec<(String, Option<String>)> = Vec::new();
            for c in &a.state.credentials {
                if !rps.iter().any(|(id, _)| *id == c.rp_id) {
                    rps.push((c.rp_id.clone(), c.rp_name.clone()));
                }
            }
            if rps.is_empty() {
                return Err(CtapStatus::NoCredentials);
            }
            let mut r = rp_response(a, &rps[0]);
            r.total_rps = Some(rps.len() as u64);
            if rps.len() > 1 {
                a.volatile.rp_enumeration = Some(RpEnumeration { rps, next: 1 });
            }
            r
        }
        Sub::EnumerateRpsGetNextRp => {
            let mut e = a.volatile.rp_enumeration.take().ok_or(CtapStatus::NotAllowed)?;
            let rp = e.rps.get(e.next).cloned().ok_or(CtapStatus::NotAllowed)?;
            e.next += 1;
            if e.next < e.rps.len() {
                a.volatile.rp_enumeration = Some(e);
            }
            rp_response(a, &rp)
        }
        Sub::EnumerateCredentialsBegin => {
            let hash = params.rp_id_hash.as_deref().ok_or(CtapStatus::MissingParameter)?;
            if let Some(b) = &bound_rp
                && a.rp_id_hash(b).as_slice() != hash
            {
                return Err(CtapStatus::PinAuthInvalid);
            }
            let mut creds: Vec<_> =
                a.state.credentials.iter().filter(|c| a.rp_id_hash(&c.rp_id).as_slice() == hash).collect();
            creds.sort_by_key(|c| std::cmp::Reverse(c.created));
            let ids: Vec<Vec<u8>> = creds.iter().map(|c| c.id.0.clone()).collect();
            let first = ids.first().ok_or(CtapStatus::NoCredentials)?.clone();
            let mut r = cred_response(a, &first)?;
            r.total_credentials = Some(ids.len() as u64);
            if ids.len() > 1 {
                a.volatile.cred_enumeration = Some(CredEnumeration { ids, next: 1 });
            }
            r
        }
        Sub::EnumerateCredentialsGetNextCredential => {
            let mut e = a.volatile.cred_enumeration.take().ok_or(CtapStatus::NotAllowed)?;
            let id = e.ids.get(e.next).cloned().ok_or(CtapStatus::NotAllowed)?;
            e.next += 1;
            if e.next < e.ids.len() {
                a.volatile.cred_enumeration = Some(e);
            }
            cred_response(a, &id)?
        }
        Sub::DeleteCredential => {
            let d = params.credential_id.as_ref().ok_or(CtapStatus::MissingParameter)?;
            let c = a.state.credentials.iter().find(|c| c.id.0 == d.id).ok_or(CtapStatus::NoCredentials)?;
            if !may_reach(&c.rp_id) {
                return Err(CtapStatus::PinAuthInvalid);
            }
            let backup = a.state.clone();
            a.state.credentials.retain(|c| c.id.0 != d.id);
            a.persist_or_restore(backup)?;
            CredentialManagementResponse::default()
        }
        Sub::UpdateUserInformation => {
            let d = params.credential_id.as_ref().ok_or(CtapStatus::MissingParameter)?;
            let user = params.user.as_ref().ok_or(CtapStatus::MissingParameter)?;
            let backup = a.state.clone();
            let c = a.state.credentials.iter_mut().find(|c| c.id.0 == d.id).ok_or(CtapStatus::NoCredentials)?;
            if !may_reach(&c.rp_id) {
                return Err(CtapStatus::PinAuthInvalid);
            }
            if c.user_id.0 != user.id {
                return Err(CtapStatus::InvalidParameter);
            }
            c.user_name = user.name.clone();
            c.user_display_name = user.display_name.clone();
            a.persist_or_restore(backup)?;
            CredentialManagementResponse::default()
        }
        Sub::Other(_) => return Err(CtapStatus::InvalidSubcommand),
    };
    // Commands without output answer the status byte alone.
    Ok((resp != Default::default()).then(|| resp.to_value()))
}

fn rp_response(a: &Authenticator, rp: &(String, Option<String>)) -> CredentialManagementResponse {
    CredentialManagementResponse {
        rp: Some(PublicKeyCredentialRpEntity { id: rp.0.clone(), name: rp.1.clone() }),
        rp_id_hash: Some(a.rp_id_hash(&rp.0).to_vec()),
        ..Default::default()
    }
}

fn cred_response(a: &Authenticator, id: &[u8]) -> Result<CredentialManagementResponse, CtapStatus> {
    let c = a.state.credentials.iter().find(|c| c.id.0 == id).ok_or(CtapStatus::NoCredentials)?;
    Ok(CredentialManagementResponse {
        user: Some(PublicKeyCredentialUserEntity {
            id: c.user_id.0.clone(),
            name: c.user_name.clone(),
            display_name: c.user_display_name.clone(),
        }),
        credential_id: Some(PublicKeyCredentialDescriptor::public_key(c.id.0.clone())),
        public_key: Some(super::public_cose(a.provider, c.alg, c.private_key.bytes())?),
        cred_protect: Some(c.cred_protect.into()),
        large_blob_key: c.large_blob_key.as_ref().map(|k| k.bytes().to_vec()),
        third_party_payment: Some(c.third_party_payment),
        ..Default::default()
    })
}

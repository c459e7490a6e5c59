//! authenticatorGetAssertion and authenticatorGetNextAssertion: allowList
//! and discoverable credentials (newest first), credProtect enforcement,
//! hmac-secret, credBlob, largeBlobKey, thirdPartyPayment, silent pre-flight
//! (`up = false`), built-in UV (the `uv` option).

use std::time::{Duration, Instant};

use super::state::StoredCredential;
use super::{Authenticator, Reply, sign};
use crate::crypto::SecretBytes;
use crate::crypto::pin_protocol::SharedSecret;
use crate::proto::auth_data::{AuthenticatorData, Flags};
use crate::proto::cbor::Value;
use crate::proto::ctap2::client_pin::permissions;
use crate::proto::ctap2::get_assertion::{GetAssertionRequest, GetAssertionResponse};
use crate::proto::ctap2::{CtapCodec, CtapStatus, PublicKeyCredentialDescriptor, PublicKeyCredentialUserEntity};
use crate::proto::extensions::GetAssertionExtensionOutputs;

/// How long getNextAssertion may follow getAssertion.
const NEXT_ASSERTION_WINDOW: Duration = Duration::from_secs(30);

/// Per-request context shared by getAssertion and getNextAssertion.
#[derive(Clone)]
pub(crate) struct AssertionContext {
    rp_id_hash: [u8; 32],
    client_data_hash: Vec<u8>,
    up: bool,
    uv: bool,
    hmac: Option<(SharedSecret, SecretBytes)>,
    cred_blob: bool,
    large_blob_key: bool,
    third_party_payment: bool,
}

/// Credentials left for getNextAssertion.
pub(crate) struct NextAssertions {
    ctx: AssertionContext,
    remaining: Vec<StoredCredential>,
    started: Instant,
}

pub(crate) fn get_assertion(a: &mut Authenticator, v: &Value) -> Result<Reply, CtapStatus> {
    let req = GetAssertionRequest::from_value(v).map_err(|e| e.status())?;
    if req.client_data_hash.len() != 32 {
        return Err(CtapStatus::InvalidLength);
    }
    if req.pin_uv_auth_param.as_ref().is_some_and(|p| p.is_empty()) {
        return Ok(super::make_credential::pin_probe(a, "getAssertion", req.rp_id.clone()));
    }
    if req.pin_uv_auth_param.is_some() {
        let p = req.pin_uv_auth_protocol.ok_or(CtapStatus::MissingParameter)?;
        if p != 1 && p != 2 {
            return Err(CtapStatus::InvalidParameter);
        }
    }
    let opts = req.options.unwrap_or_default();
    if opts.rk.is_some() {
        return Err(CtapStatus::UnsupportedOption);
    }
    if opts.uv == Some(true) && a.config.fingerprint.is_none() {
        return Err(CtapStatus::InvalidOption);
    }
    // Built-in UV (the uv option, without a token): a fingerprint at the touch.
    let builtin_uv = opts.uv == Some(true) && req.pin_uv_auth_param.is_none();
    if builtin_uv {
        super::bio_enrollment::uv_precheck(a, CtapStatus::InvalidOption)?;
    }
    let up = opts.up.unwrap_or(true);
    let uv = match &req.pin_uv_auth_param {
        Some(param) => {
            a.check_token(
                req.pin_uv_auth_protocol,
                param,
                &req.client_data_hash,
                permissions::GET_ASSERTION,
                Some(&req.rp_id),
            )?;
            true
        }
        None => {
            if a.state.always_uv && up && !builtin_uv {
                return Err(CtapStatus::PuatRequired);
            }
            builtin_uv
        }
    };
    let ext = req.extensions.clone().unwrap_or_default();
    let hmac = match &ext.hmac_secret {
        None => None,
        Some(h) => Some(super::hmac_secret::open_salts(a, h)?),
    };
    let rp_id_hash = a.rp_id_hash(&req.rp_id);
    let allow: Vec<&PublicKeyCredentialDescriptor> = req.allow_list.iter().flatten().collect();
    let with_allow_list = !allow.is_empty();
    let mut creds: Vec<StoredCredential> = if with_allow_list {
        allow
            .iter()
            .filter(|d| d.type_ == "public-key")
            .filter_map(|d| a.find_credential(&req.rp_id, &rp_id_hash, &d.id))
            .filter(|c| c.cred_protect < 3 || uv)
            .take(1)
            .collect()
    } else {
        let mut v: Vec<StoredCredential> = a
            .state
            .credentials
            .iter()
            .filter(|c| c.rp_id == req.rp_id && (c.cred_protect < 2 || uv))
            .cloned()
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.created));
        v
    };
    if creds.is_empty() {
        return Err(CtapStatus::NoCredentials);
    }
    let ctx = AssertionContext {
        rp_id_hash,
        client_data_hash: req.client_data_hash.clone(),
        up,
        uv,
        hmac,
        cred_blob: ext.cred_blob == Some(true),
        large_blob_key: ext.large_blob_key == Some(true),
        third_party_payment: ext.third_party_payment == Some(true),
    };
    let first = creds.remove(0);
    let total = creds.len() + 1;
    let finish = move |a: &mut Authenticator| -> Result<Option<Value>, CtapStatus> {
        let mut resp = assertion(a, &ctx, &first)?;
        if !with_allow_list {
            resp.number_of_credentials = Some(total as u64);
            if !creds.is_empty() {
                a.volatile.next_assertion = Some(NextAssertions { ctx, remaining: creds, started: Instant::now() });
            }
        }
        Ok(Some(resp.to_value()))
    };
    if up || builtin_uv {
        Ok(Reply::up("getAssertion", Some(req.rp_id.clone()), None, move |a, outcome| {
            outcome.require()?;
            if builtin_uv {
                super::bio_enrollment::verify_user(a)?;
            } else {
                a.spend_token_permissions();
            }
            finish(a)
        }))
    } else {
        finish(a).map(Reply::Done)
    }
}

pub(crate) fn get_next_assertion(a: &mut Authenticator) -> Result<Option<Value>, CtapStatus> {
    let mut next = a.volatile.next_assertion.take().ok_or(CtapStatus::NotAllowed)?;
    if next.started.elapsed() > NEXT_ASSERTION_WINDOW || next.remaining.is_empty() {
        return Err(CtapStatus::NotAllowed);
    }
    let cred = next.remaining.remove(0);
    let resp = assertion(a, &next.ctx, &cred)?;
    if !next.remaining.is_empty() {
        next.started = Instant::now();
        a.volatile.next_assertion = Some(next);
    }
    Ok(Some(resp.to_value()))
}

fn assertion(
    a: &mut Authenticator,
    ctx: &AssertionContext,
    cred: &StoredCredential,
) -> Result<GetAssertionResponse, CtapStatus> {
    let provider = a.provider;
    let mut outputs = GetAssertionExtensionOutputs::default();
    if let Some((shared, salts)) = &ctx.hmac
        && cred.hmac_secret
    {
        outputs.hmac_secret = Some(super::hmac_secret::outputs(a, shared, salts, cred.private_key.bytes(), ctx.uv)?);
    }
    if ctx.cred_blob {
        outputs.cred_blob = Some(cred.cred_blob.as_ref().map(|b| b.0.clone()).unwrap_or_default());
    }
    if ctx.third_party_payment {
        outputs.third_party_payment = Some(cred.third_party_payment);
    }
    let mut flags = 0u8;
    if ctx.up {
        flags |= Flags::UP;
    }
    if ctx.uv {
        flags |= Flags::UV;
    }
    let sign_count = a.next_sign_count()?;
    let auth_data = AuthenticatorData {
        rp_id_hash: ctx.rp_id_hash,
        flags: Flags(flags),
        sign_count,
        attested_credential: None,
        extensions: (!outputs.is_empty()).then(|| outputs.to_value()),
    }
    .to_bytes();
    let mut msg = auth_data.clone();
    msg.extend_from_slice(&ctx.client_data_hash);
    let signature = sign(provider, cred.alg, cred.private_key.bytes(), &msg)?;
    let user = cred.resident.then(|| {
        if ctx.uv {
            PublicKeyCredentialUserEntity {
                id: cred.user_id.0.clone(),
                name: cred.user_name.clone(),
                display_name: cred.user_display_name.clone(),
            }
        } else {
            PublicKeyCredentialUserEntity { id: cred.user_id.0.clone(), name: None, display_name: None }
        }
    });
    let large_blob_key =
        if ctx.large_blob_key { cred.large_blob_key.as_ref().map(|k| k.bytes().to_vec()) } else { None };
    Ok(GetAssertionResponse {
        credential: Some(PublicKeyCredentialDescriptor::public_key(cred.id.0.clone())),
        auth_data,
        signature,
        user,
        number_of_credentials: None,
        user_selected: None,
        large_blob_key,
    })
}

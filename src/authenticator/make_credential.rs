//! authenticatorMakeCredential: new credentials (ES256, EdDSA, ESP256,
//! Ed25519, ML-DSA-44/65/87: the first the RP lists), packed or
//! self attestation, excludeList, resident keys, credProtect, hmac-secret,
//! credBlob, largeBlobKey, minPinLength, thirdPartyPayment, hmac-secret-mc.

use super::state::{self, Bytes, CredentialAlg, SealedFields, Secret, StoredCredential};
use super::{AttestationMode, Authenticator, MAX_CRED_BLOB_LENGTH, Reply, public_cose, secret, sign};
use crate::proto::auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
use crate::proto::cbor::{MapBuilder, Value};
use crate::proto::ctap2::client_pin::permissions;
use crate::proto::ctap2::make_credential::{MakeCredentialRequest, MakeCredentialResponse};
use crate::proto::ctap2::{CtapCodec, CtapStatus};
use crate::proto::extensions::MakeCredentialExtensionOutputs;

/// The answer to a zero-length pinUvAuthParam (the "is a PIN set?" probe), after user presence.
pub(crate) fn pin_probe(a: &Authenticator, operation: &'static str, rp_id: String) -> Reply {
    let pin_set = a.pin_is_set();
    Reply::up(operation, Some(rp_id), None, move |_, outcome| {
        outcome.require()?;
        Err(if pin_set { CtapStatus::PinInvalid } else { CtapStatus::PinNotSet })
    })
}

/// Whether this request gets enterprise attestation (CTAP 2.1 §7.1):
/// vendor-facilitated (1) for the RP IDs the authenticator was provisioned
/// with, platform-managed (2) whenever the platform asks; an error when
/// enterprise attestation is not enabled.
fn enterprise(a: &Authenticator, req: &MakeCredentialRequest) -> Result<bool, CtapStatus> {
    match req.enterprise_attestation {
        None => Ok(false),
        Some(_) if !a.state.enterprise_attestation => Err(CtapStatus::InvalidParameter),
        Some(1) => Ok(a.config.enterprise_rp_ids.contains(&req.rp.id)),
        Some(2) => Ok(true),
        Some(_) => Err(CtapStatus::InvalidOption),
    }
}

/// The attestation to produce: enterprise attestation is packed with the
/// certificate (which is this software authenticator's own, so it
/// identifies the device); otherwise the first format of the platform's
/// attestationFormatsPreference (CTAP 2.2) this authenticator can make
/// ("packed" unless configured for none, "none"), else the configured mode.
fn attestation_mode(a: &Authenticator, req: &MakeCredentialRequest, enterprise: bool) -> AttestationMode {
    let configured = a.config.attestation;
    if enterprise {
        return AttestationMode::Packed;
    }
    for f in req.attestation_formats_preference.iter().flatten() {
        match f.as_str() {
            "none" => return AttestationMode::None,
            "packed" if configured != AttestationMode::None => return configured,
            _ => {}
        }
    }
    configured
}

pub(crate) fn make_credential(a: &mut Authenticator, v: &Value) -> Result<Reply, CtapStatus> {
    let req = MakeCredentialRequest::from_value(v).map_err(|e| e.status())?;
    if req.client_data_hash.len() != 32 {
        return Err(CtapStatus::InvalidLength);
    }
    if req.user.id.len() > 64 {
        return Err(CtapStatus::InvalidLength);
    }
    if req.pin_uv_auth_param.as_ref().is_some_and(|p| p.is_empty()) {
        return Ok(pin_probe(a, "makeCredential", req.rp.id.clone()));
    }
    if req.pin_uv_auth_param.is_some() {
        let p = req.pin_uv_auth_protocol.ok_or(CtapStatus::MissingParameter)?;
        if p != 1 && p != 2 {
            return Err(CtapStatus::InvalidParameter);
        }
    }
    enterprise(a, &req)?;
    // Algorithm: the first supported entry in the RP's order.
    let mut alg = None;
    for p in &req.pub_key_cred_params {
        if p.type_ == "public-key"
            && let Some(x) = CredentialAlg::from_cose(p.alg)
        {
            alg = Some(x);
            break;
        }
    }
    let alg = alg.ok_or(CtapStatus::UnsupportedAlgorithm)?;
    let opts = req.options.unwrap_or_default();
    if opts.up == Some(false) || (opts.uv == Some(true) && a.config.fingerprint.is_none()) {
        return Err(CtapStatus::InvalidOption);
    }
    // Built-in UV (the uv option, without a token): a fingerprint at the touch.
    let builtin_uv = opts.uv == Some(true) && req.pin_uv_auth_param.is_none();
    if builtin_uv {
        super::bio_enrollment::uv_precheck(a, CtapStatus::InvalidOption)?;
    }
    let rk = opts.rk.unwrap_or(false);
    // makeCredUvNotRqd is false: with a PIN set (or alwaysUv), a token is required.
    let uv = match &req.pin_uv_auth_param {
        Some(param) => {
            a.check_token(
                req.pin_uv_auth_protocol,
                param,
                &req.client_data_hash,
                permissions::MAKE_CREDENTIAL,
                Some(&req.rp.id),
            )?;
            true
        }
        None => {
            if (a.pin_is_set() || a.state.always_uv) && !builtin_uv {
                return Err(CtapStatus::PuatRequired);
            }
            builtin_uv
        }
    };
    let rp_id_hash = a.rp_id_hash(&req.rp.id);
    // excludeList: a match (visible at this UV level) ends in CREDENTIAL_EXCLUDED after user presence.
    for d in req.exclude_list.iter().flatten() {
        if let Some(c) = a.find_credential(&req.rp.id, &rp_id_hash, &d.id)
            && (c.cred_protect < 3 || uv)
        {
            return Ok(Reply::up("makeCredential", Some(req.rp.id.clone()), None, move |a, outcome| {
                outcome.require()?;
                if builtin_uv {
                    super::bio_enrollment::verify_user(a)?;
                }
                Err(CtapStatus::CredentialExcluded)
            }));
        }
    }
    let ext = req.extensions.clone().unwrap_or_default();
    let cred_protect = match ext.cred_protect {
        None => 1,
        Some(c @ 1..=3) => c,
        Some(_) => return Err(CtapStatus::InvalidParameter),
    };
    if ext.large_blob_key == Some(false) {
        return Err(CtapStatus::InvalidOption);
    }
    // hmac-secret-mc: the salts are checked before the touch (evaluated in `finish`).
    if let (Some(true), Some(h)) = (ext.hmac_secret, &ext.hmac_secret_mc) {
        super::hmac_secret::open_salts(a, h)?;
    }
    if ext.large_blob_key == Some(true) && !rk {
        return Err(CtapStatus::InvalidOption);
    }
    if rk
        && !a.state.credentials.iter().any(|c| c.rp_id == req.rp.id && c.user_id.0 == req.user.id)
        && a.state.credentials.len() >= a.config.max_resident_credentials
    {
        return Err(CtapStatus::KeyStoreFull);
    }
    let user_name = req.user.name.clone();
    let rp_id = req.rp.id.clone();
    Ok(Reply::up("makeCredential", Some(rp_id), user_name, move |a, outcome| {
        outcome.require()?;
        if builtin_uv {
            super::bio_enrollment::verify_user(a)?;
        } else {
            a.spend_token_permissions();
        }
        finish(a, req, alg, rk, uv, cred_protect, rp_id_hash)
    }))
}

fn finish(
    a: &mut Authenticator,
    req: MakeCredentialRequest,
    alg: CredentialAlg,
    rk: bool,
    uv: bool,
    cred_protect: u8,
    rp_id_hash: [u8; 32],
) -> Result<Option<Value>, CtapStatus> {
    let provider = a.provider;
    let ext = req.extensions.clone().unwrap_or_default();
    let key = super::generate_key(provider, alg)?;
    let cred_blob = ext.cred_blob.as_ref().filter(|b| b.len() <= MAX_CRED_BLOB_LENGTH).cloned();
    let hmac_secret = ext.hmac_secret == Some(true);
    let third_party_payment = ext.third_party_payment == Some(true);
    let id = state::seal_credential_id(
        provider,
        a.master_key(),
        &rp_id_hash,
        &SealedFields {
            alg,
            cred_protect,
            hmac_secret,
            private_key: &key,
            cred_blob: cred_blob.as_deref(),
            resident: rk,
            third_party_payment,
        },
    )
    .map_err(|_| CtapStatus::Other)?;
    let public_key = public_cose(provider, alg, &key)?;

    let mut outputs = MakeCredentialExtensionOutputs::default();
    if ext.cred_protect.is_some() {
        outputs.cred_protect = Some(cred_protect);
    }
    if ext.hmac_secret.is_some() {
        outputs.hmac_secret = Some(hmac_secret);
    }
    // hmac-secret-mc (CTAP 2.2): the outputs at creation, from the CredRandom
    // getAssertion will use at this UV level.
    if let (true, Some(h)) = (hmac_secret, &ext.hmac_secret_mc) {
        let (shared, salts) = super::hmac_secret::open_salts(a, h)?;
        outputs.hmac_secret_mc = Some(super::hmac_secret::outputs(a, &shared, &salts, &key, uv)?);
    }
    if ext.cred_blob.is_some() {
        outputs.cred_blob = Some(cred_blob.is_some());
    }
    if ext.min_pin_length == Some(true) && a.state.min_pin_length_rp_ids.contains(&req.rp.id) {
        outputs.min_pin_length = Some(a.state.min_pin_length.into());
    }
    let large_blob_key = if ext.large_blob_key == Some(true) {
        Some(provider.random_bytes(32).map_err(|_| CtapStatus::Other)?)
    } else {
        None
    };

    let backup = a.state.clone();
    if rk {
        // A new credential for the same RP and user replaces the old one.
        a.state.credentials.retain(|c| !(c.rp_id == req.rp.id && c.user_id.0 == req.user.id));
        let created = a.state.next_created;
        a.state.next_created = a.state.next_created.wrapping_add(1);
        a.state.credentials.push(StoredCredential {
            id: Bytes(id.clone()),
            rp_id: req.rp.id.clone(),
            rp_name: req.rp.name.clone(),
            user_id: Bytes(req.user.id.clone()),
            user_name: req.user.name.clone(),
            user_display_name: req.user.display_name.clone(),
            alg,
            private_key: Secret::new(secret(&key)),
            cred_protect,
            hmac_secret,
            cred_blob: cred_blob.clone().map(Bytes),
            large_blob_key: large_blob_key.as_deref().map(|k| Secret::new(secret(k))),
            created,
            resident: true,
            third_party_payment,
        });
    }
    a.state.sign_count = a.state.sign_count.wrapping_add(1);
    // The credential is on disk before the platform hears of it.
    a.persist_or_restore(backup)?;

    let mut flags = Flags::UP | Flags::AT;
    if uv {
        flags |= Flags::UV;
    }
    let auth_data = AuthenticatorData {
        rp_id_hash,
        flags: Flags(flags),
        sign_count: a.state.sign_count,
        attested_credential: Some(AttestedCredentialData {
            aaguid: a.aaguid(),
            credential_id: id,
            public_key_bytes: public_key.to_bytes(),
            public_key,
        }),
        extensions: (!outputs.is_empty()).then(|| outputs.to_value()),
    };
    let auth_data_raw = auth_data.to_bytes();
    let mut signed = auth_data_raw.clone();
    signed.extend_from_slice(&req.client_data_hash);
    let ep = enterprise(a, &req)?;
    let (fmt, att_stmt) = match attestation_mode(a, &req, ep) {
        AttestationMode::Packed => {
            let sig = provider.p256_sign(a.state.attestation.key.bytes(), &signed).map_err(|_| CtapStatus::Other)?;
            let x5c = Value::Array(vec![Value::Bytes(a.state.attestation.cert.0.clone())]);
            ("packed", MapBuilder::new().insert("alg", -7).insert("sig", sig).insert("x5c", x5c).build())
        }
        AttestationMode::SelfAttestation => {
            let sig = sign(provider, alg, &key, &signed)?;
            ("packed", MapBuilder::new().insert("alg", alg.cose()).insert("sig", sig).build())
        }
        AttestationMode::None => ("none", Value::Map(Vec::new())),
    };
    let resp = MakeCredentialResponse {
        fmt: fmt.into(),
        auth_data: auth_data_raw,
        att_stmt,
        ep_att: ep.then_some(true),
        large_blob_key,
    };
    Ok(Some(resp.to_value()))
}

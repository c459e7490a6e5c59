//! `hwkey pam enroll` (CONTRACTS §4): make a credential for PAM login and
//! turn it into a pam-u2f authfile credential, as pamu2fcfg does: RP ID the
//! origin (default `pam://` + host name), RP name the appid, a random 32-byte
//! user ID, the user name as name and display name, resident on request,
//! built-in UV asked when wanted or when the key would require it anyway, the
//! PIN when the key asks for it or `--pin-verification` is given.

use super::authfile::{CoseType, Credential, CredentialOptions, KeyHandle};
use crate::client::pin::permissions;
use crate::client::{ClientError, Device, Op};
use crate::crypto::default_provider;
use crate::proto::ctap2::make_credential::{CommandOptions, MakeCredentialRequest};
use crate::proto::ctap2::{
    CtapStatus, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use zeroize::Zeroizing;

/// What to enroll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollOptions {
    /// The user name of the line.
    pub user: String,
    /// The origin (RP ID), e.g. `pam://myhost`.
    pub origin: String,
    /// The appid (RP name); pamu2fcfg's default is the origin.
    pub appid: String,
    /// A resident (discoverable) credential; the line's key handle is `*`.
    pub resident: bool,
    /// `+pin`: the PIN is required at login.
    pub pin_verification: bool,
    /// `+verification`: built-in user verification is required at login.
    pub user_verification: bool,
    /// No `+presence`: login without a touch.
    pub no_user_presence: bool,
    /// The key type (ES256 by default, as pamu2fcfg).
    pub cose_type: CoseType,
}

/// Make the credential on `dev` and return its authfile credential. `pin`
/// is asked only when the key needs it (or `pin_verification`).
pub fn enroll(
    dev: &mut Device,
    o: &EnrollOptions,
    pin: &dyn Fn() -> Option<Zeroizing<String>>,
    op: &Op,
) -> Result<Credential, ClientError> {
    if !dev.is_ctap2() {
        return Err(ClientError::Unsupported("PAM enrollment needs a FIDO2 key (this one is U2F only)".into()));
    }
    if o.user.is_empty() || o.user.contains(':') || o.user.contains('\n') {
        return Err(ClientError::InvalidRequest("user name empty or with ':' or a newline".into()));
    }
    let provider = default_provider();
    let random = |n| provider.random_bytes(n).map_err(|e| ClientError::Malformed(e.to_string()));
    let cdh = random(32)?;
    let builtin_uv = dev.option("uv") == Some(true) && dev.option("makeCredUvNotRqd") != Some(true);
    let mut req = MakeCredentialRequest {
        client_data_hash: cdh.clone(),
        rp: PublicKeyCredentialRpEntity { id: o.origin.clone(), name: Some(o.appid.clone()) },
        user: PublicKeyCredentialUserEntity {
            id: random(32)?,
            name: Some(o.user.clone()),
            display_name: Some(o.user.clone()),
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(o.cose_type.algorithm().0)],
        options: Some(CommandOptions {
            rk: o.resident.then_some(true),
            uv: (o.user_verification || builtin_uv).then_some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let with_pin = |dev: &mut Device, req: &mut MakeCredentialRequest| -> Result<(), ClientError> {
        let p = pin().ok_or(ClientError::PinRequired)?;
        let token = dev.pin_token(&p, permissions::MAKE_CREDENTIAL, Some(&o.origin), op)?;
        req.pin_uv_auth_param = Some(token.authenticate(&cdh));
        req.pin_uv_auth_protocol = Some(token.protocol().number() as u64);
        if let Some(opts) = req.options.as_mut() {
            opts.uv = None;
        }
        Ok(())
    };
    let pin_first = o.pin_verification && !o.user_verification;
    if pin_first {
        with_pin(dev, &mut req)?;
    }
    let resp = match dev.make_credential(&req, op) {
        Err(ClientError::PinRequired | ClientError::Status(CtapStatus::PuatRequired) | ClientError::UvBlocked)
        | Err(ClientError::PinBlocked)
            if !pin_first && dev.option("clientPin") == Some(true) =>
        {
            with_pin(dev, &mut req)?;
            dev.make_credential(&req, op)?
        }
        r => r?,
    };
    let ad = resp.parsed_auth_data().map_err(|e| ClientError::Malformed(format!("authenticator data: {e}")))?;
    let att = ad.attested_credential.ok_or_else(|| ClientError::Malformed("no attested credential data".into()))?;
    let kh = if o.resident { KeyHandle::Resident } else { KeyHandle::Id(att.credential_id) };
    let options =
        CredentialOptions { presence: !o.no_user_presence, verification: o.user_verification, pin: o.pin_verification };
    Credential::from_cose_key(kh, &att.public_key, options).map_err(|e| ClientError::Unsupported(e.into()))
}

//! U2F (CTAP1) over APDUs: VERSION, REGISTER, AUTHENTICATE.
//!
//! With alwaysUv on, REGISTER and AUTHENTICATE answer
//! SW_COMMAND_NOT_ALLOWED (U2F cannot verify the user) and getInfo stops
//! listing U2F_V2.
//!
//! U2F has no KEEPALIVE: without user presence the answer is
//! SW_CONDITIONS_NOT_SATISFIED and the platform retries. `Delay(d)` grants
//! presence to the first retry at least `d` after the first attempt.

use std::time::Instant;

use super::state::{self, CredentialAlg, SealedFields};
use super::{Authenticator, UpRequest, UserPresence};
use crate::proto::ctap1::{
    Apdu, AuthenticateRequest, AuthenticateResponse, RegisterRequest, RegisterResponse, control, ins, sw, with_status,
};

fn status(s: u16) -> Vec<u8> {
    with_status(Vec::new(), s)
}

fn user_present(a: &mut Authenticator, operation: &'static str) -> bool {
    match &a.config.user_presence {
        UserPresence::Approve => true,
        UserPresence::Deny => false,
        UserPresence::Callback(f) => f(&UpRequest { operation, rp_id: None, user_name: None, cancel: a.cancel_flag() }),
        UserPresence::Delay(d) => {
            let since = *a.volatile.u2f_up_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= *d {
                a.volatile.u2f_up_since = None;
                true
            } else {
                false
            }
        }
    }
}

pub(crate) fn handle(a: &mut Authenticator, apdu: &[u8]) -> Vec<u8> {
    let Ok(cmd) = Apdu::parse(apdu) else { return status(sw::WRONG_LENGTH) };
    if cmd.cla != 0 {
        return status(sw::CLA_NOT_SUPPORTED);
    }
    if a.state.always_uv && matches!(cmd.ins, ins::REGISTER | ins::AUTHENTICATE) {
        return status(sw::COMMAND_NOT_ALLOWED);
    }
    match cmd.ins {
        ins::VERSION => {
            if !cmd.data.is_empty() {
                return status(sw::WRONG_LENGTH);
            }
            with_status(b"U2F_V2".to_vec(), sw::NO_ERROR)
        }
        ins::REGISTER => register(a, &cmd),
        ins::AUTHENTICATE => authenticate(a, &cmd),
        _ => status(sw::INS_NOT_SUPPORTED),
    }
}

fn register(a: &mut Authenticator, cmd: &Apdu) -> Vec<u8> {
    let Ok(req) = RegisterRequest::from_data(&cmd.data) else { return status(sw::WRONG_LENGTH) };
    if !user_present(a, "u2fRegister") {
        return status(sw::CONDITIONS_NOT_SATISFIED);
    }
    let p = a.provider;
    let result = (|| {
        let key = p.p256_generate().ok()?;
        let public_key = p.p256_public(&key).ok()?;
        let key_handle = state::seal_credential_id(
            p,
            a.master_key(),
            &req.application,
            &SealedFields {
                alg: CredentialAlg::Es256,
                cred_protect: 1,
                hmac_secret: false,
                private_key: &key,
                cred_blob: None,
                resident: false,
                third_party_payment: false,
            },
        )
        .ok()?;
        let mut r = RegisterResponse {
            public_key,
            key_handle,
            certificate: a.state.attestation.cert.0.clone(),
            signature: Vec::new(),
        };
        r.signature =
            p.p256_sign(a.state.attestation.key.bytes(), &r.signed_data(&req.application, &req.challenge)).ok()?;
        Some(r.encode())
    })();
    match result {
        Some(data) => with_status(data, sw::NO_ERROR),
        None => status(sw::WRONG_DATA),
    }
}

fn authenticate(a: &mut Authenticator, cmd: &Apdu) -> Vec<u8> {
    let Ok(req) = AuthenticateRequest::from_apdu(cmd) else { return status(sw::WRONG_LENGTH) };
    let cred = a
        .find_credential("", &req.application, &req.key_handle)
        .or_else(|| {
            a.state
                .credentials
                .iter()
                .find(|c| c.id.0 == req.key_handle && a.rp_id_hash(&c.rp_id) == req.application)
                .cloned()
        })
        .filter(|c| c.alg == CredentialAlg::Es256 && c.cred_protect < 3);
    let Some(cred) = cred else { return status(sw::WRONG_DATA) };
    let presence = match req.control {
        control::CHECK_ONLY => return status(sw::CONDITIONS_NOT_SATISFIED),
        control::ENFORCE_USER_PRESENCE_AND_SIGN => {
            if !user_present(a, "u2fAuthenticate") {
                return status(sw::CONDITIONS_NOT_SATISFIED);
            }
            0x01
        }
        control::DONT_ENFORCE_USER_PRESENCE_AND_SIGN => 0x00,
        _ => return status(sw::WRONG_DATA),
    };
    let Ok(counter) = a.next_sign_count() else { return status(sw::WRONG_DATA) };
    let mut r = AuthenticateResponse { user_presence: presence, counter, signature: Vec::new() };
    let mut msg = r.auth_data(&req.application);
    msg.extend_from_slice(&req.challenge);
    match a.provider.p256_sign(cred.private_key.bytes(), &msg) {
        Ok(sig) => {
            r.signature = sig;
            with_status(r.encode(), sw::NO_ERROR)
        }
        Err(_) => status(sw::WRONG_DATA),
    }
}

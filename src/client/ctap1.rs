//! U2F (CTAP1) over CTAPHID MSG, for keys that do not speak CTAP2, and the
//! FIDO AppID path: register, authenticate, and the check-only probe. A U2F
//! key answers "conditions not satisfied" (0x6985) until it is touched; the
//! request is repeated until the touch, the deadline or a cancel.

use super::{ClientError, Device, Op, Progress};
use crate::proto::ctap1::{AuthenticateRequest, AuthenticateResponse, RegisterRequest, RegisterResponse, control, sw};
use std::time::{Duration, Instant};

/// How often a U2F request is repeated while the key waits for a touch.
const U2F_RETRY: Duration = Duration::from_millis(100);

impl Device {
    /// Send one APDU, return the response data (status word checked).
    pub fn u2f_apdu(&mut self, apdu: &[u8], op: &Op) -> Result<Vec<u8>, ClientError> {
        let resp = self.hid.msg(apdu, op)?;
        let data = crate::proto::ctap1::parse_response(&resp)?;
        Ok(data.to_vec())
    }

    /// Repeat `apdu` while the key says it waits for a touch.
    fn u2f_until_touched(&mut self, apdu: &[u8], op: &Op) -> Result<Vec<u8>, ClientError> {
        let mut reported = false;
        loop {
            match self.u2f_apdu(apdu, op) {
                Err(ClientError::U2f(crate::proto::ctap1::Ctap1Error::Status(sw::CONDITIONS_NOT_SATISFIED))) => {
                    if !reported {
                        op.report(Progress::WaitingForTouch);
                        reported = true;
                    }
                    if op.is_cancelled() {
                        return Err(ClientError::Cancelled);
                    }
                    let next = Instant::now() + U2F_RETRY;
                    if next >= op.deadline {
                        return Err(ClientError::Timeout);
                    }
                    std::thread::sleep(U2F_RETRY);
                }
                other => return other,
            }
        }
    }

    /// U2F register: waits for a touch.
    pub fn u2f_register(
        &mut self,
        challenge: &[u8; 32],
        application: &[u8; 32],
        op: &Op,
    ) -> Result<RegisterResponse, ClientError> {
        let apdu = RegisterRequest { challenge: *challenge, application: *application }.to_apdu().encode();
        let data = self.u2f_until_touched(&apdu, op)?;
        Ok(RegisterResponse::parse(&data)?)
    }

    /// U2F check-only: whether `key_handle` belongs to this key under `application`.
    pub fn u2f_check(&mut self, application: &[u8; 32], key_handle: &[u8], op: &Op) -> Result<bool, ClientError> {
        if key_handle.len() > 255 {
            return Ok(false);
        }
        let req = AuthenticateRequest {
            control: control::CHECK_ONLY,
            challenge: [0; 32],
            application: *application,
            key_handle: key_handle.to_vec(),
        };
        match self.u2f_apdu(&req.to_apdu().encode(), op) {
            Err(ClientError::U2f(crate::proto::ctap1::Ctap1Error::Status(sw::CONDITIONS_NOT_SATISFIED))) => Ok(true),
            Err(ClientError::U2f(crate::proto::ctap1::Ctap1Error::Status(_))) => Ok(false),
            Err(e) => Err(e),
            Ok(_) => Ok(true),
        }
    }

    /// U2F authenticate with user presence: waits for a touch.
    pub fn u2f_authenticate(
        &mut self,
        challenge: &[u8; 32],
        application: &[u8; 32],
        key_handle: &[u8],
        op: &Op,
    ) -> Result<AuthenticateResponse, ClientError> {
        if key_handle.len() > 255 {
            return Err(ClientError::InvalidRequest("U2F key handles are at most 255 bytes".into()));
        }
        let req = AuthenticateRequest {
            control: control::ENFORCE_USER_PRESENCE_AND_SIGN,
            challenge: *challenge,
            application: *application,
            key_handle: key_handle.to_vec(),
        };
        let data = self.u2f_until_touched(&req.to_apdu().encode(), op)?;
        let r = AuthenticateResponse::parse(&data)?;
        if r.user_presence & 1 == 0 {
            return Err(ClientError::Malformed("U2F signature without user presence".into()));
        }
        Ok(r)
    }
}

//! Typed CTAP2 calls on a [`Device`]: one method per authenticator command.
//! Requests are encoded by the shared [`crate::proto::ctap2`] types and
//! responses decoded strictly by them; a non-zero status becomes a typed
//! [`ClientError`].

use super::{ClientError, Device, Op};
use crate::proto::ctap2::client_pin::{ClientPinRequest, ClientPinResponse};
use crate::proto::ctap2::config::ConfigRequest;
use crate::proto::ctap2::credential_management::{CredentialManagementRequest, CredentialManagementResponse};
use crate::proto::ctap2::get_assertion::{GetAssertionRequest, GetAssertionResponse, GetNextAssertionRequest};
use crate::proto::ctap2::get_info::{GetInfoRequest, GetInfoResponse};
use crate::proto::ctap2::large_blobs::{LargeBlobsRequest, LargeBlobsResponse};
use crate::proto::ctap2::make_credential::{MakeCredentialRequest, MakeCredentialResponse};
use crate::proto::ctap2::reset::ResetRequest;
use crate::proto::ctap2::selection::SelectionRequest;
use crate::proto::ctap2::{Command, CtapCodec, CtapRequest, decode_response};

/// The message size every CTAP2 authenticator accepts when getInfo names none.
pub const DEFAULT_MAX_MSG_SIZE: u64 = 1024;

impl Device {
    /// Send one CTAP2 request and decode its response.
    pub fn call<R: CtapRequest, S: CtapCodec>(&mut self, req: &R, op: &Op) -> Result<S, ClientError> {
        let bytes = req.to_request_bytes();
        self.call_raw(&bytes, op).and_then(|resp| Ok(decode_response::<S>(&resp)?))
    }

    /// Send raw request bytes (command byte + CBOR); returns status + CBOR.
    pub fn call_raw(&mut self, request: &[u8], op: &Op) -> Result<Vec<u8>, ClientError> {
        if let Some(info) = &self.info {
            let max = info.max_msg_size.unwrap_or(DEFAULT_MAX_MSG_SIZE).max(DEFAULT_MAX_MSG_SIZE);
            if request.len() as u64 > max {
                return Err(ClientError::InvalidRequest(format!(
                    "request of {} bytes exceeds the key's maximum message size {max}",
                    request.len()
                )));
            }
        }
        let resp = self.hid.cbor(request, op)?;
        if resp.is_empty() {
            return Err(ClientError::Malformed("empty CTAP2 response".into()));
        }
        Ok(resp)
    }

    /// authenticatorGetInfo, read from the key (the cached copy is [`Device::info`]).
    pub fn get_info(&mut self, op: &Op) -> Result<GetInfoResponse, ClientError> {
        let info: GetInfoResponse = self.call(&GetInfoRequest, op)?;
        if info.versions.is_empty() {
            return Err(ClientError::Malformed("getInfo lists no versions".into()));
        }
        if info.aaguid.len() != 16 {
            return Err(ClientError::Malformed("getInfo AAGUID is not 16 bytes".into()));
        }
        Ok(info)
    }

    /// Read getInfo again and replace the cached copy (after reset or PIN changes).
    pub fn refresh_info(&mut self, op: &Op) -> Result<&GetInfoResponse, ClientError> {
        let info = self.get_info(op)?;
        Ok(self.info.insert(info))
    }

    /// authenticatorMakeCredential.
    pub fn make_credential(
        &mut self,
        req: &MakeCredentialRequest,
        op: &Op,
    ) -> Result<MakeCredentialResponse, ClientError> {
        let resp: MakeCredentialResponse = self.call(req, op)?;
        resp.parsed_auth_data().map_err(|e| ClientError::Malformed(format!("authenticator data: {e}")))?;
        Ok(resp)
    }

    /// authenticatorGetAssertion.
    pub fn get_assertion(&mut self, req: &GetAssertionRequest, op: &Op) -> Result<GetAssertionResponse, ClientError> {
        let resp: GetAssertionResponse = self.call(req, op)?;
        resp.parsed_auth_data().map_err(|e| ClientError::Malformed(format!("authenticator data: {e}")))?;
        Ok(resp)
    }

    /// authenticatorGetNextAssertion.
    pub fn get_next_assertion(&mut self, op: &Op) -> Result<GetAssertionResponse, ClientError> {
        let resp: GetAssertionResponse = self.call(&GetNextAssertionRequest, op)?;
        resp.parsed_auth_data().map_err(|e| ClientError::Malformed(format!("authenticator data: {e}")))?;
        Ok(resp)
    }

    /// authenticatorClientPIN (see [`super::pin`] for the typed PIN operations).
    pub fn client_pin(&mut self, req: &ClientPinRequest, op: &Op) -> Result<ClientPinResponse, ClientError> {
        self.call(req, op)
    }

    /// authenticatorReset: erases every credential and the PIN. The key
    /// accepts it only within seconds of being plugged in, with a touch.
    pub fn reset(&mut self, op: &Op) -> Result<(), ClientError> {
        let _: EmptyResponse = self.call(&ResetRequest, op)?;
        self.key_agreement = None;
        self.refresh_info(op)?;
        Ok(())
    }

    /// authenticatorSelection (CTAP 2.1): waits for a touch.
    pub fn selection(&mut self, op: &Op) -> Result<(), ClientError> {
        let _: EmptyResponse = self.call(&SelectionRequest, op)?;
        Ok(())
    }

    /// authenticatorCredentialManagement (or its 2.1-pre prototype command).
    pub fn credential_management(
        &mut self,
        req: &CredentialManagementRequest,
        op: &Op,
    ) -> Result<CredentialManagementResponse, ClientError> {
        if self.option("credMgmt") == Some(true) {
            return self.call(req, op);
        }
        if self.option("credentialMgmtPreview") == Some(true) {
            let mut bytes = req.to_request_bytes();
            bytes[0] = Command::CredentialManagementPreview.byte();
            let resp = self.call_raw(&bytes, op)?;
            return Ok(decode_response(&resp)?);
        }
        Err(ClientError::Unsupported("credential management".into()))
    }

    /// authenticatorConfig.
    pub fn config(&mut self, req: &ConfigRequest, op: &Op) -> Result<(), ClientError> {
        if self.option("authnrCfg") != Some(true) {
            return Err(ClientError::Unsupported("authenticatorConfig".into()));
        }
        let _: EmptyResponse = self.call(req, op)?;
        Ok(())
    }

    /// authenticatorLargeBlobs.
    pub fn large_blobs(&mut self, req: &LargeBlobsRequest, op: &Op) -> Result<LargeBlobsResponse, ClientError> {
        if self.option("largeBlobs") != Some(true) {
            return Err(ClientError::Unsupported("large blobs".into()));
        }
        self.call(req, op)
    }
}

/// A response that must be empty (or an empty map).
struct EmptyResponse;

impl CtapCodec for EmptyResponse {
    fn to_value(&self) -> crate::proto::cbor::Value {
        crate::proto::cbor::Value::Map(Vec::new())
    }
    fn from_value(v: &crate::proto::cbor::Value) -> Result<Self, crate::proto::ctap2::Ctap2Error> {
        match v.as_map() {
            Some(_) => Ok(EmptyResponse),
            None => Err(crate::proto::ctap2::Ctap2Error::Malformed("expected an empty response")),
        }
    }
}

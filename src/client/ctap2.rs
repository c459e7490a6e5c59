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

/// A discoverable credential as credential management lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentCredential {
    /// The relying party ID (when the key reported it).
    pub rp_id: Option<String>,
    /// The user.
    pub user: Option<crate::proto::ctap2::PublicKeyCredentialUserEntity>,
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// credProtect level.
    pub cred_protect: Option<u64>,
    /// The credential's public key (when the key reported it).
    pub public_key: Option<crate::proto::cose::CoseKey>,
    /// Enabled for third-party payments (CTAP 2.2; when the key reported it).
    pub third_party_payment: Option<bool>,
}

impl Device {
    fn cred_mgmt_call(
        &mut self,
        sub: crate::proto::ctap2::credential_management::CredentialManagementSubcommand,
        params: Option<crate::proto::ctap2::credential_management::CredentialManagementParams>,
        token: Option<&super::pin::PinUvAuthToken>,
        op: &Op,
    ) -> Result<CredentialManagementResponse, ClientError> {
        let (param, proto) = match token {
            Some(t) => (
                Some(t.authenticate(&CredentialManagementRequest::auth_message_for(sub, params.as_ref()))),
                Some(t.protocol().number() as u64),
            ),
            None => (None, None),
        };
        let req = CredentialManagementRequest {
            sub_command: sub,
            sub_command_params: params,
            pin_uv_auth_protocol: proto,
            pin_uv_auth_param: param,
        };
        self.credential_management(&req, op)
    }

    /// Every discoverable credential, by relying party. `token` needs the
    /// credential-management permission, or is the persistent token (`pcmr`,
    /// [`Device::persistent_token`]), which may list but not delete.
    pub fn list_credentials(
        &mut self,
        token: &super::pin::PinUvAuthToken,
        op: &Op,
    ) -> Result<Vec<ResidentCredential>, ClientError> {
        use crate::proto::ctap2::credential_management::{
            CredentialManagementParams, CredentialManagementSubcommand as S,
        };
        let meta = self.cred_mgmt_call(S::GetCredsMetadata, None, Some(token), op)?;
        let mut out = Vec::new();
        if meta.existing_resident_credentials_count == Some(0) {
            return Ok(out);
        }
        let first = match self.cred_mgmt_call(S::EnumerateRpsBegin, None, Some(token), op) {
            Err(ClientError::NoCredentials) => return Ok(out),
            r => r?,
        };
        let total = first.total_rps.unwrap_or(1).min(1000);
        let mut rps = vec![first];
        for _ in 1..total {
            rps.push(self.cred_mgmt_call(S::EnumerateRpsGetNextRp, None, None, op)?);
        }
        for rp in rps {
            let hash = rp.rp_id_hash.clone().ok_or_else(|| ClientError::Malformed("RP without rpIDHash".into()))?;
            let rp_id = rp.rp.as_ref().map(|r| r.id.clone());
            let params = CredentialManagementParams { rp_id_hash: Some(hash), credential_id: None, user: None };
            let first = match self.cred_mgmt_call(S::EnumerateCredentialsBegin, Some(params), Some(token), op) {
                Err(ClientError::NoCredentials) => continue,
                r => r?,
            };
            let n = first.total_credentials.unwrap_or(1).min(1000);
            let mut creds = vec![first];
            for _ in 1..n {
                creds.push(self.cred_mgmt_call(S::EnumerateCredentialsGetNextCredential, None, None, op)?);
            }
            for c in creds {
                let id = c.credential_id.ok_or_else(|| ClientError::Malformed("credential without an ID".into()))?;
                out.push(ResidentCredential {
                    rp_id: rp_id.clone(),
                    user: c.user,
                    credential_id: id.id,
                    cred_protect: c.cred_protect,
                    public_key: c.public_key,
                    third_party_payment: c.third_party_payment,
                });
            }
        }
        Ok(out)
    }

    /// updateUserInformation: replace the name and display name stored with a
    /// discoverable credential (the user ID must be the stored one). `token`
    /// needs the credential-management permission.
    pub fn update_user_information(
        &mut self,
        token: &super::pin::PinUvAuthToken,
        credential_id: &[u8],
        user: crate::proto::ctap2::PublicKeyCredentialUserEntity,
        op: &Op,
    ) -> Result<(), ClientError> {
        use crate::proto::ctap2::credential_management::{
            CredentialManagementParams, CredentialManagementSubcommand as S,
        };
        if self.option("credMgmt") != Some(true) {
            // The prototype command has no updateUserInformation.
            return Err(ClientError::Unsupported("updateUserInformation".into()));
        }
        let params = CredentialManagementParams {
            rp_id_hash: None,
            credential_id: Some(crate::proto::ctap2::PublicKeyCredentialDescriptor::public_key(credential_id.to_vec())),
            user: Some(user),
        };
        self.cred_mgmt_call(S::UpdateUserInformation, Some(params), Some(token), op).map(|_| ())
    }

    /// Delete a discoverable credential. `token` needs the credential-management permission.
    pub fn delete_credential(
        &mut self,
        token: &super::pin::PinUvAuthToken,
        credential_id: &[u8],
        op: &Op,
    ) -> Result<(), ClientError> {
        use crate::proto::ctap2::credential_management::{
            CredentialManagementParams, CredentialManagementSubcommand as S,
        };
        let params = CredentialManagementParams {
            rp_id_hash: None,
            credential_id: Some(crate::proto::ctap2::PublicKeyCredentialDescriptor::public_key(credential_id.to_vec())),
            user: None,
        };
        self.cred_mgmt_call(S::DeleteCredential, Some(params), Some(token), op).map(|_| ())
    }
}

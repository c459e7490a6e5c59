//! PIN and built-in user verification (CTAP 2.1 §6.5): retries, setting and
//! changing the PIN, and pinUvAuthTokens, over PIN/UV auth protocol one or
//! two ([`crate::crypto::pin_protocol`]).
//!
//! The key agreement with the authenticator is done once per opened device
//! and reused (for tokens and hmac-secret) until the authenticator discards
//! its key: after a wrong PIN, a reset, or a PIN change.

use super::{ClientError, Device, KeyAgreement, Op};
use crate::crypto::SecretBytes;
use crate::crypto::pin_protocol::{PinUvAuthProtocol, SharedSecret, pad_pin, pin_hash};
use crate::proto::cose::CoseKey;
use crate::proto::ctap2::CtapStatus;
use crate::proto::ctap2::client_pin::ClientPinRequest;

pub use crate::proto::ctap2::client_pin::permissions;

/// A pinUvAuthToken: authenticates requests. Zeroized on drop.
pub struct PinUvAuthToken {
    protocol: PinUvAuthProtocol,
    token: SecretBytes,
    provider: &'static dyn crate::crypto::CryptoProvider,
    /// Whether the token came from built-in UV (not a PIN).
    pub via_uv: bool,
}

impl std::fmt::Debug for PinUvAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinUvAuthToken").field("protocol", &self.protocol).field("via_uv", &self.via_uv).finish()
    }
}

impl PinUvAuthToken {
    /// The protocol the token belongs to.
    pub fn protocol(&self) -> PinUvAuthProtocol {
        self.protocol
    }
    /// pinUvAuthParam over `message`.
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol.authenticate(self.provider, &self.token, message)
    }
    /// Decrypt an encrypted getInfo member (encIdentifier, encCredStoreState)
    /// with this token, which must be the persistent one (permission `pcmr`).
    /// `None` if it does not decrypt (another token, or no AES-128 in this build).
    pub fn decrypt_info_member(&self, label: &[u8], enc: &[u8]) -> Option<[u8; 16]> {
        crate::proto::ctap2::enc_info::decrypt(self.provider, &self.token, label, enc)
    }
}

impl Device {
    /// The shared secret of the key agreement, established once.
    pub(crate) fn key_agreement(&mut self, op: &Op) -> Result<(CoseKey, SharedSecret), ClientError> {
        if let Some(k) = &self.key_agreement {
            return Ok((k.platform_key.clone(), k.shared.clone()));
        }
        let protocol = self.pin_protocol();
        let resp = self.client_pin(&ClientPinRequest::get_key_agreement(protocol.number()), op)?;
        let peer = resp.key_agreement.ok_or_else(|| ClientError::Malformed("getKeyAgreement without a key".into()))?;
        let (platform_key, shared) = protocol.encapsulate(self.provider, &peer)?;
        self.key_agreement = Some(KeyAgreement { platform_key: platform_key.clone(), shared: shared.clone() });
        Ok((platform_key, shared))
    }

    /// PIN retries left, and whether a power cycle is needed first.
    pub fn pin_retries(&mut self, op: &Op) -> Result<(u64, Option<bool>), ClientError> {
        let r = self.client_pin(&ClientPinRequest::get_pin_retries(), op)?;
        let n = r.pin_retries.ok_or_else(|| ClientError::Malformed("getPinRetries without a count".into()))?;
        Ok((n, r.power_cycle_state))
    }

    /// Built-in UV retries left.
    pub fn uv_retries(&mut self, op: &Op) -> Result<u64, ClientError> {
        let r = self.client_pin(&ClientPinRequest::get_uv_retries(), op)?;
        r.uv_retries.ok_or_else(|| ClientError::Malformed("getUVRetries without a count".into()))
    }

    fn require_client_pin(&self) -> Result<(), ClientError> {
        if self.option("clientPin").is_none() {
            return Err(ClientError::Unsupported("PIN".into()));
        }
        Ok(())
    }

    fn check_min_len(&self, pin: &str) -> Result<(), ClientError> {
        let min = self.info.as_ref().and_then(|i| i.min_pin_length).unwrap_or(4);
        if (pin.chars().count() as u64) < min || pin.len() > 63 {
            return Err(ClientError::PinPolicy);
        }
        Ok(())
    }

    /// Set the first PIN.
    pub fn set_pin(&mut self, new_pin: &str, op: &Op) -> Result<(), ClientError> {
        self.require_client_pin()?;
        self.check_min_len(new_pin)?;
        let protocol = self.pin_protocol();
        let (key, shared) = self.key_agreement(op)?;
        let padded = pad_pin(new_pin).map_err(|_| ClientError::PinPolicy)?;
        let new_pin_enc = shared.encrypt(self.provider, &padded)?;
        let param = shared.authenticate(self.provider, &new_pin_enc);
        let r = self.client_pin(&ClientPinRequest::set_pin(protocol.number(), key, new_pin_enc, param), op);
        self.after_pin_command(r, op)
    }

    /// Change the PIN.
    pub fn change_pin(&mut self, old_pin: &str, new_pin: &str, op: &Op) -> Result<(), ClientError> {
        self.require_client_pin()?;
        self.check_min_len(new_pin)?;
        let protocol = self.pin_protocol();
        let (key, shared) = self.key_agreement(op)?;
        let padded = pad_pin(new_pin).map_err(|_| ClientError::PinPolicy)?;
        let new_pin_enc = shared.encrypt(self.provider, &padded)?;
        let pin_hash_enc = shared.encrypt(self.provider, &pin_hash(self.provider, old_pin))?;
        let mut msg = new_pin_enc.clone();
        msg.extend_from_slice(&pin_hash_enc);
        let param = shared.authenticate(self.provider, &msg);
        let req = ClientPinRequest::change_pin(protocol.number(), key, new_pin_enc, pin_hash_enc, param);
        let r = self.client_pin(&req, op);
        self.after_pin_command(r, op)
    }

    fn after_pin_command<T>(&mut self, r: Result<T, ClientError>, op: &Op) -> Result<(), ClientError> {
        match r {
            Ok(_) => {
                // A key may make a new key agreement after setting or
                // changing the PIN: forget ours (a stale one garbles the next
                // PIN and burns a retry). Then re-read getInfo (clientPin,
                // forcePINChange).
                self.key_agreement = None;
                self.refresh_info(op)?;
                Ok(())
            }
            Err(e) => Err(self.pin_failure(e, op)),
        }
    }

    /// Turn a PIN failure into its typed error; a wrong PIN also makes the
    /// key discard its key agreement, and the retries are fetched for the message.
    fn pin_failure(&mut self, e: ClientError, op: &Op) -> ClientError {
        match e {
            ClientError::PinInvalid { .. } => {
                self.key_agreement = None;
                let retries = self.pin_retries(op).ok().map(|r| r.0);
                ClientError::PinInvalid { retries }
            }
            ClientError::PinAuthBlocked | ClientError::PinBlocked => {
                self.key_agreement = None;
                e
            }
            ClientError::Status(CtapStatus::PinAuthInvalid) => {
                self.key_agreement = None;
                e
            }
            e => e,
        }
    }

    /// A pinUvAuthToken from the PIN with `permissions` (bits of
    /// [`permissions`]), bound to `rp_id` when given. CTAP 2.0 keys get the
    /// legacy getPinToken (all permissions).
    pub fn pin_token(
        &mut self,
        pin: &str,
        permissions: u8,
        rp_id: Option<&str>,
        op: &Op,
    ) -> Result<PinUvAuthToken, ClientError> {
        self.require_client_pin()?;
        if self.option("clientPin") == Some(false) {
            return Err(ClientError::PinNotSet);
        }
        if self.info.as_ref().and_then(|i| i.force_pin_change) == Some(true) {
            return Err(ClientError::PinChangeRequired);
        }
        let protocol = self.pin_protocol();
        let (key, shared) = self.key_agreement(op)?;
        let pin_hash_enc = shared.encrypt(self.provider, &pin_hash(self.provider, pin))?;
        let req = if self.option("pinUvAuthToken") == Some(true) {
            ClientPinRequest::get_token_with_permissions(
                protocol.number(),
                key,
                pin_hash_enc,
                permissions,
                rp_id.map(str::to_owned),
            )
        } else {
            ClientPinRequest::get_pin_token(protocol.number(), key, pin_hash_enc)
        };
        let resp = match self.client_pin(&req, op) {
            Ok(r) => r,
            Err(e) => return Err(self.pin_failure(e, op)),
        };
        self.decrypt_token(&shared, resp.pin_uv_auth_token, false)
    }

    /// The persistent pinUvAuthToken (CTAP 2.2 `perCredMgmtRO`, permission
    /// `pcmr`): it survives power cycles until the PIN changes or the key is
    /// reset, and only reads credential management (metadata, RPs,
    /// credentials) and the encrypted getInfo members.
    pub fn persistent_token(&mut self, pin: &str, op: &Op) -> Result<PinUvAuthToken, ClientError> {
        if self.option("perCredMgmtRO") != Some(true) {
            return Err(ClientError::Unsupported("persistent read-only credential management (pcmr)".into()));
        }
        self.pin_token(pin, permissions::PERSISTENT_CREDENTIAL_MANAGEMENT_READ_ONLY, None, op)
    }

    /// The authenticator's identifier (encIdentifier, read afresh), with the persistent token.
    pub fn identifier(&mut self, persistent: &PinUvAuthToken, op: &Op) -> Result<Option<[u8; 16]>, ClientError> {
        let info = self.get_info(op)?;
        Ok(info
            .enc_identifier
            .and_then(|e| persistent.decrypt_info_member(crate::proto::ctap2::enc_info::IDENTIFIER_LABEL, &e)))
    }

    /// The credential store state (encCredStoreState, read afresh): it
    /// changes whenever a discoverable credential is created, deleted or updated.
    pub fn cred_store_state(&mut self, persistent: &PinUvAuthToken, op: &Op) -> Result<Option<[u8; 16]>, ClientError> {
        let info = self.get_info(op)?;
        Ok(info
            .enc_cred_store_state
            .and_then(|e| persistent.decrypt_info_member(crate::proto::ctap2::enc_info::CRED_STORE_STATE_LABEL, &e)))
    }

    /// A pinUvAuthToken from built-in user verification (fingerprint, ...).
    pub fn uv_token(&mut self, permissions: u8, rp_id: Option<&str>, op: &Op) -> Result<PinUvAuthToken, ClientError> {
        if self.option("pinUvAuthToken") != Some(true) || self.option("uv") != Some(true) {
            return Err(ClientError::Unsupported("built-in user verification tokens".into()));
        }
        let protocol = self.pin_protocol();
        let (key, shared) = self.key_agreement(op)?;
        let req = ClientPinRequest::get_token_using_uv(protocol.number(), key, permissions, rp_id.map(str::to_owned));
        let resp = match self.client_pin(&req, op) {
            Ok(r) => r,
            Err(ClientError::UvInvalid { .. }) => {
                let retries = self.uv_retries(op).ok();
                return Err(ClientError::UvInvalid { retries });
            }
            Err(e) => return Err(e),
        };
        self.decrypt_token(&shared, resp.pin_uv_auth_token, true)
    }

    /// [`Device::uv_token`], tried up to the key's preferredPlatformUvAttempts
    /// (1 when it names none, at most 10) while the finger does not match.
    /// Ends with [`ClientError::UvInvalid`] after the last failed attempt, or
    /// [`ClientError::UvBlocked`] once the key blocks built-in UV: the caller
    /// falls back to the PIN then.
    pub fn uv_token_with_retries(
        &mut self,
        permissions: u8,
        rp_id: Option<&str>,
        op: &Op,
    ) -> Result<PinUvAuthToken, ClientError> {
        let attempts = self.info.as_ref().and_then(|i| i.preferred_platform_uv_attempts).unwrap_or(1).clamp(1, 10);
        let mut last = ClientError::UvInvalid { retries: None };
        for _ in 0..attempts {
            match self.uv_token(permissions, rp_id, op) {
                Err(e @ ClientError::UvInvalid { .. }) => last = e,
                r => return r,
            }
        }
        Err(last)
    }

    fn decrypt_token(
        &self,
        shared: &SharedSecret,
        enc: Option<Vec<u8>>,
        via_uv: bool,
    ) -> Result<PinUvAuthToken, ClientError> {
        let enc = enc.ok_or_else(|| ClientError::Malformed("no pinUvAuthToken in the answer".into()))?;
        let token = shared.decrypt(self.provider, &enc)?;
        let ok_len = match shared.protocol() {
            PinUvAuthProtocol::One => token.len() == 16 || token.len() == 32,
            PinUvAuthProtocol::Two => token.len() == 32,
        };
        if !ok_len {
            return Err(ClientError::Malformed(format!("pinUvAuthToken of {} bytes", token.len())));
        }
        Ok(PinUvAuthToken { protocol: shared.protocol(), token, provider: self.provider, via_uv })
    }
}

//! The WebAuthn client (WebAuthn L3 §5.1.3 and §5.1.4 as a browser runs
//! them, CTAP 2.1 §10 for the mapping onto the authenticator): JSON options
//! and an origin in, `RegistrationResponseJSON` /
//! `AuthenticationResponseJSON` out.
//!
//! - The RP ID must equal the origin's host or be a registrable suffix of it
//!   (checked against the public suffix list); the origin must be https, or
//!   http on localhost.
//! - The client data is serialized exactly as the spec's limited serializer.
//! - User verification: built-in UV when the key has it configured (tried
//!   preferredPlatformUvAttempts times; a finger that does not match or a UV
//!   lockout falls back to the PIN), else the PIN; a key with neither when UV
//!   is required gets [`ClientError::PinNotSet`] ("set a PIN first").
//! - excludeList / allowList are filtered by maxCredentialIdLength and split
//!   into chunks of maxCredentialCountInList; with more than one chunk a
//!   silent pre-flight (up=false) finds the matching chunk, so the user
//!   touches the key once.
//! - Extensions: credProps, credProtect (with enforcement), prf on top of
//!   hmac-secret (salts hashed as SHA-256("WebAuthn PRF" || 0x00 || salt);
//!   evaluated at registration too on keys with hmac-secret-mc, CTAP 2.2),
//!   `payment.isPayment` as thirdPartyPayment (CTAP 2.2), the legacy hmacCreateSecret/hmacGetSecret, credBlob, minPinLength,
//!   largeBlob (support at registration; read and write at authentication,
//!   through [`super::large_blob`]), appid / appidExclude.
//! - U2F-only keys are driven through CTAP1, appid included.

use super::pin::{PinUvAuthToken, permissions};
use super::{ClientError, Device, Op};
use crate::crypto::CryptoProvider;
use crate::crypto::pin_protocol::SharedSecret;
use crate::proto::attestation::AttestationObject;
use crate::proto::auth_data::AuthenticatorData;
use crate::proto::cbor::Value;
use crate::proto::cose::CoseKey;
use crate::proto::ctap2::get_assertion::{GetAssertionRequest, GetAssertionResponse};
use crate::proto::ctap2::make_credential::{CommandOptions, MakeCredentialRequest};
use crate::proto::ctap2::{
    CtapStatus, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};
use crate::proto::extensions::{
    CredProtect, GetAssertionExtensionOutputs, GetAssertionExtensions, HmacSecretInput, MakeCredentialExtensionOutputs,
    MakeCredentialExtensions, id as ext_id,
};
use crate::proto::webauthn::*;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Asks the user for what the client cannot decide alone.
pub trait UserInteraction: Send + Sync {
    /// The PIN, or `None` to give up. `retries` is what the key said is left
    /// (after a wrong PIN).
    fn request_pin(&self, retries: Option<u64>) -> Option<Zeroizing<String>>;
    /// Several discoverable credentials matched: pick one (index into `users`).
    fn choose_account(&self, users: &[Option<PublicKeyCredentialUserEntity>]) -> Option<usize> {
        let _ = users;
        Some(0)
    }
}

/// A [`UserInteraction`] for scripts: a PIN given up front, used once (a wrong
/// PIN is not retried, so a script cannot burn the key's retries).
#[derive(Default)]
pub struct FixedPin(Mutex<Option<Zeroizing<String>>>);

impl FixedPin {
    /// Use `pin` (or none).
    pub fn new(pin: Option<String>) -> Self {
        FixedPin(Mutex::new(pin.map(Zeroizing::new)))
    }
}

impl UserInteraction for FixedPin {
    fn request_pin(&self, _: Option<u64>) -> Option<Zeroizing<String>> {
        self.0.lock().ok()?.take()
    }
}

/// The user-verification requirement of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvRequirement {
    /// "required".
    Required,
    /// "preferred" (the default).
    Preferred,
    /// "discouraged".
    Discouraged,
}

impl UvRequirement {
    /// From the JSON value; unknown values mean the default, "preferred".
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("required") => Self::Required,
            Some("discouraged") => Self::Discouraged,
            _ => Self::Preferred,
        }
    }
}

/// A parsed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// "https" or "http".
    pub scheme: String,
    /// The host, lowercase (IPv6 without brackets).
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
}

impl Origin {
    /// Parse `scheme://host[:port]` (a trailing `/` is tolerated). Only https
    /// origins, and http on localhost, are secure contexts.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::InvalidRequest(format!("origin {s:?}: {why}"));
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("expected scheme://host"))?;
        let scheme = scheme.to_ascii_lowercase();
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("an origin has no path, query, fragment or user info"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed IPv6 bracket"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("bad port"))?),
            };
            (h.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        let port = port.map(|p| p.parse::<u16>().map_err(|_| bad("bad port"))).transpose()?;
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let local = host == "localhost" || host.ends_with(".localhost") || host == "127.0.0.1" || host == "::1";
        match scheme.as_str() {
            "https" => {}
            "http" if local => {}
            "http" => return Err(ClientError::Security(format!("{s} is not a secure context (use https)"))),
            _ => return Err(bad("scheme must be https")),
        }
        Ok(Origin { scheme, host, port })
    }

    /// Whether the host is an IP address.
    pub fn host_is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }
}

/// Check that `rp_id` is the origin's host or a registrable suffix of it
/// (never a public suffix such as `com` or `github.io`).
///
/// ```
/// use hwkey::client::webauthn::{Origin, check_rp_id};
/// let o = Origin::parse("https://login.example.com").unwrap();
/// assert!(check_rp_id("example.com", &o).is_ok());
/// assert!(check_rp_id("com", &o).is_err());
/// assert!(check_rp_id("other.com", &o).is_err());
/// ```
pub fn check_rp_id(rp_id: &str, origin: &Origin) -> Result<(), ClientError> {
    let rp = rp_id.to_ascii_lowercase();
    let err = |why: &str| {
        ClientError::Security(format!("RP ID {rp_id:?} is not valid for origin host {}: {why}", origin.host))
    };
    if rp.is_empty() {
        return Err(err("empty"));
    }
    if rp == origin.host {
        return Ok(());
    }
    if origin.host_is_ip() {
        return Err(err("an IP-address origin only allows the address itself"));
    }
    if !origin.host.ends_with(&format!(".{rp}")) {
        return Err(err("not a suffix of the host"));
    }
    if psl::suffix_str(&rp) == Some(rp.as_str()) {
        return Err(err("it is a public suffix"));
    }
    Ok(())
}

/// What a request will prove to the authenticator.
enum UvAuth {
    /// Nothing (user presence only).
    None,
    /// A pinUvAuthToken.
    Token(PinUvAuthToken),
    /// The `uv` option (built-in UV on keys without token support).
    UvOption,
}

impl UvAuth {
    fn param(&self, client_data_hash: &[u8]) -> (Option<Vec<u8>>, Option<u64>) {
        match self {
            UvAuth::Token(t) => (Some(t.authenticate(client_data_hash)), Some(t.protocol().number() as u64)),
            _ => (None, None),
        }
    }
    fn uv_option(&self) -> Option<bool> {
        matches!(self, UvAuth::UvOption).then_some(true)
    }
    fn verifies(&self) -> bool {
        !matches!(self, UvAuth::None)
    }
}

/// The WebAuthn client.
pub struct WebAuthnClient<'a> {
    ui: &'a dyn UserInteraction,
    provider: &'static dyn CryptoProvider,
    enterprise_rp_ids: Vec<String>,
}

impl std::fmt::Debug for WebAuthnClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebAuthnClient").finish_non_exhaustive()
    }
}

fn client_data(type_: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
    CollectedClientData {
        type_: type_.into(),
        challenge: b64url_encode(challenge),
        origin: origin.trim_end_matches('/').to_owned(),
        cross_origin: Some(false),
        top_origin: None,
    }
    .to_json_bytes()
}

/// Whether the client extension inputs hold `payment: {isPayment: true}`.
fn is_payment(ext: &ClientExtensionInputs) -> bool {
    ext.other.get("payment").and_then(|p| p.get("isPayment")).and_then(serde_json::Value::as_bool) == Some(true)
}

/// The PRF salt: SHA-256("WebAuthn PRF" || 0x00 || input).
pub fn prf_salt(provider: &dyn CryptoProvider, input: &[u8]) -> [u8; 32] {
    provider.sha256(&[b"WebAuthn PRF", &[0u8], input])
}

/// DER SubjectPublicKeyInfo of a credential key, for the ES256 and EdDSA keys
/// security keys make (others: `None`).
pub fn spki_der(key: &CoseKey) -> Option<Vec<u8>> {
    const P256: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const ED25519: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    match key {
        CoseKey::Ec2 { crv: 1, x, y, .. } if x.len() == 32 && y.len() == 32 => {
            let mut v = P256.to_vec();
            v.push(4);
            v.extend_from_slice(x);
            v.extend_from_slice(y);
            Some(v)
        }
        CoseKey::Okp { crv: 6, x, .. } if x.len() == 32 => {
            let mut v = ED25519.to_vec();
            v.extend_from_slice(x);
            Some(v)
        }
        _ => None,
    }
}

impl<'a> WebAuthnClient<'a> {
    /// A client that asks `ui` for PINs.
    pub fn new(ui: &'a dyn UserInteraction) -> Self {
        WebAuthnClient { ui, provider: crate::crypto::default_provider(), enterprise_rp_ids: Vec::new() }
    }

    /// RP IDs this platform manages enterprise attestation for: with
    /// `attestation: "enterprise"` they get platform-managed enterprise
    /// attestation (CTAP enterpriseAttestation 2); other RPs ask for the
    /// vendor-facilitated kind (1), which the key grants only to the RP IDs
    /// it was provisioned with.
    pub fn with_enterprise_rp_ids(mut self, rp_ids: Vec<String>) -> Self {
        self.enterprise_rp_ids = rp_ids;
        self
    }

    fn usable(dev: &Device, list: &[CredentialDescriptor]) -> Vec<PublicKeyCredentialDescriptor> {
        let max_len = dev.info().and_then(|i| i.max_credential_id_length).unwrap_or(u64::MAX);
        list.iter()
            .filter(|d| d.type_ == "public-key" && !d.id.is_empty() && (d.id.len() as u64) <= max_len)
            .map(|d| PublicKeyCredentialDescriptor::public_key(d.id.0.clone()))
            .collect()
    }

    fn chunk_size(dev: &Device) -> usize {
        dev.info().and_then(|i| i.max_credential_count_in_list).unwrap_or(1).clamp(1, 1024) as usize
    }

    /// Silent pre-flight: which credential of `list` (if any) the key holds for `rp_id`.
    ///
    /// With a token (`auth`, bound to `rp_id`) the pre-flight is made with
    /// user verification, so credProtect=3 credentials are visible to it; a
    /// silent (up=false) request does not spend the token's permissions.
    fn preflight(
        dev: &mut Device,
        rp_id: &str,
        list: &[PublicKeyCredentialDescriptor],
        auth: &UvAuth,
        op: &Op,
    ) -> Result<Option<PublicKeyCredentialDescriptor>, ClientError> {
        const PREFLIGHT_CDH: [u8; 32] = [0; 32];
        let (pin_uv_auth_param, pin_uv_auth_protocol) = auth.param(&PREFLIGHT_CDH);
        for chunk in list.chunks(Self::chunk_size(dev)) {
            let req = GetAssertionRequest {
                rp_id: rp_id.to_owned(),
                client_data_hash: PREFLIGHT_CDH.to_vec(),
                allow_list: Some(chunk.to_vec()),
                options: Some(CommandOptions { rk: None, up: Some(false), uv: None }),
                pin_uv_auth_param: pin_uv_auth_param.clone(),
                pin_uv_auth_protocol,
                ..Default::default()
            };
            match dev.get_assertion(&req, op) {
                Ok(r) => {
                    let found = match r.credential {
                        Some(c) => c,
                        None if chunk.len() == 1 => chunk[0].clone(),
                        None => return Err(ClientError::Malformed("assertion without a credential ID".into())),
                    };
                    if !chunk.iter().any(|c| c.id == found.id) {
                        return Err(ClientError::Malformed("pre-flight returned a credential not asked for".into()));
                    }
                    return Ok(Some(PublicKeyCredentialDescriptor::public_key(found.id)));
                }
                Err(ClientError::NoCredentials) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Decide and obtain user verification for one request.
    fn acquire_uv(
        &self,
        dev: &mut Device,
        req: UvRequirement,
        perms: u8,
        rp_id: &str,
        op: &Op,
    ) -> Result<UvAuth, ClientError> {
        let uv_configured = dev.option("uv") == Some(true);
        let pin_set = dev.option("clientPin") == Some(true);
        let want = match req {
            UvRequirement::Required => true,
            UvRequirement::Preferred => uv_configured || pin_set,
            UvRequirement::Discouraged => false,
        };
        if !want {
            return Ok(UvAuth::None);
        }
        if uv_configured {
            if dev.option("pinUvAuthToken") == Some(true) {
                match dev.uv_token_with_retries(perms, Some(rp_id), op) {
                    Ok(t) => return Ok(UvAuth::Token(t)),
                    // UV locked out, or no match in the preferred number of
                    // attempts: fall back to the PIN.
                    Err(ClientError::UvBlocked | ClientError::UvInvalid { .. }) if pin_set => {}
                    Err(e) => return Err(e),
                }
            } else {
                return Ok(UvAuth::UvOption);
            }
        }
        if pin_set {
            return self.pin_token(dev, perms, rp_id, op).map(UvAuth::Token);
        }
        if req == UvRequirement::Required {
            if dev.option("clientPin") == Some(false) || dev.option("uv") == Some(false) {
                return Err(ClientError::PinNotSet);
            }
            return Err(ClientError::Unsupported("user verification (the key has no PIN support)".into()));
        }
        Ok(UvAuth::None)
    }

    fn pin_token(&self, dev: &mut Device, perms: u8, rp_id: &str, op: &Op) -> Result<PinUvAuthToken, ClientError> {
        let mut retries = None;
        for attempt in 0..3 {
            let Some(pin) = self.ui.request_pin(retries) else {
                return Err(if attempt == 0 { ClientError::PinRequired } else { ClientError::PinInvalid { retries } });
            };
            match dev.pin_token(&pin, perms, Some(rp_id), op) {
                Ok(t) => return Ok(t),
                Err(ClientError::PinInvalid { retries: Some(0) }) => return Err(ClientError::PinBlocked),
                Err(ClientError::PinInvalid { retries: r }) => retries = r,
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::PinInvalid { retries })
    }

    /// Run a registration ceremony on `dev`.
    pub fn register(
        &self,
        dev: &mut Device,
        options: &CreationOptionsJson,
        origin: &str,
        op: &Op,
    ) -> Result<RegistrationResponseJson, ClientError> {
        let o = Origin::parse(origin)?;
        let rp_id = options.rp.id.clone().unwrap_or_else(|| o.host.clone());
        check_rp_id(&rp_id, &o)?;
        if options.user.id.is_empty() || options.user.id.len() > 64 {
            return Err(ClientError::InvalidRequest("user.id must be 1 to 64 bytes".into()));
        }
        if options.challenge.is_empty() {
            return Err(ClientError::InvalidRequest("empty challenge".into()));
        }
        let mut algs: Vec<i64> =
            options.pub_key_cred_params.iter().filter(|p| p.type_ == "public-key").map(|p| p.alg.0).collect();
        if options.pub_key_cred_params.is_empty() {
            algs = vec![-7, -257];
        }
        if algs.is_empty() {
            return Err(ClientError::InvalidRequest("no public-key credential parameters".into()));
        }
        let cdj = client_data("webauthn.create", &options.challenge, origin);
        let cdh = self.provider.sha256(&[&cdj]).to_vec();
        let sel = options.authenticator_selection.clone().unwrap_or_default();
        let uv_req = UvRequirement::parse(sel.user_verification.as_deref());
        let rk_pref =
            sel.resident_key.as_deref().unwrap_or(if sel.require_resident_key { "required" } else { "discouraged" });
        let ext = options.extensions.clone().unwrap_or_default();
        let attestation = options.attestation.as_deref().unwrap_or("none");

        if !dev.is_ctap2() {
            return self.u2f_register(dev, options, &rp_id, &algs, cdj, &cdh, uv_req, rk_pref, &ext, op);
        }
        let rk = match rk_pref {
            "required" => {
                if dev.option("rk") != Some(true) {
                    return Err(ClientError::Unsupported("discoverable credentials".into()));
                }
                true
            }
            "preferred" => dev.option("rk") == Some(true),
            _ => false,
        };

        // Extensions.
        let supports = |e: &str| dev.info().is_some_and(|i| i.supports_extension(e));
        let mut mc_ext = MakeCredentialExtensions::default();
        if let Some(p) = &ext.credential_protection_policy {
            let level = CredProtect::from_policy_name(p)
                .ok_or_else(|| ClientError::InvalidRequest(format!("unknown credentialProtectionPolicy {p:?}")))?;
            if supports(ext_id::CRED_PROTECT) {
                mc_ext.cred_protect = Some(level as u8);
            } else if ext.enforce_credential_protection_policy == Some(true)
                && level != CredProtect::UserVerificationOptional
            {
                return Err(ClientError::Unsupported("credProtect".into()));
            }
        }
        let want_hmac = ext.hmac_create_secret == Some(true) || ext.prf.is_some();
        if want_hmac && supports(ext_id::HMAC_SECRET) {
            mc_ext.hmac_secret = Some(true);
        }
        if let Some(b) = &ext.cred_blob
            && supports(ext_id::CRED_BLOB)
        {
            mc_ext.cred_blob = Some(b.0.clone());
        }
        if ext.min_pin_length == Some(true) && supports(ext_id::MIN_PIN_LENGTH) {
            mc_ext.min_pin_length = Some(true);
        }
        // Secure Payment Confirmation's `payment: {isPayment: true}` maps to
        // CTAP 2.2 thirdPartyPayment.
        if is_payment(&ext) && supports(ext_id::THIRD_PARTY_PAYMENT) {
            mc_ext.third_party_payment = Some(true);
        }
        let mut want_large_blob = false;
        if let Some(lb) = &ext.large_blob {
            let ok = supports(ext_id::LARGE_BLOB_KEY) && dev.option("largeBlobs") == Some(true);
            if lb.support.as_deref() == Some("required") && !ok {
                return Err(ClientError::Unsupported("largeBlob".into()));
            }
            if ok && lb.support.is_some() {
                mc_ext.large_blob_key = Some(true);
                want_large_blob = true;
            }
        }

        // Exclude list: silent pre-flight when it does not fit one request,
        // with the token (so it also sees credProtect=3 credentials), which
        // then needs the getAssertion permission too.
        let mut exclude = Self::usable(dev, &options.exclude_credentials);
        let needs_preflight = exclude.len() > Self::chunk_size(dev);
        let perms = if needs_preflight {
            permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION
        } else {
            permissions::MAKE_CREDENTIAL
        };
        let mut auth = self.acquire_uv(dev, uv_req, perms, &rp_id, op)?;
        if needs_preflight {
            exclude = Self::preflight(dev, &rp_id, &exclude, &auth, op)?.into_iter().collect();
        }
        // PRF at creation (CTAP 2.2 hmac-secret-mc): the salts go encrypted
        // under the key agreement in force now, after the token request.
        let mut mc_prf: Option<(SharedSecret, bool)> = None;
        if let Some(eval) = ext.prf.as_ref().and_then(|p| p.eval.as_ref())
            && mc_ext.hmac_secret == Some(true)
            && dev.info().is_some_and(|i| i.supports_extension(ext_id::HMAC_SECRET_MC))
        {
            let (key, ss) = dev.key_agreement(op)?;
            let mut plain = Zeroizing::new(prf_salt(self.provider, &eval.first).to_vec());
            if let Some(s2) = &eval.second {
                plain.extend_from_slice(&prf_salt(self.provider, s2));
            }
            let salt_enc = ss.encrypt(self.provider, &plain)?;
            let salt_auth = ss.authenticate(self.provider, &salt_enc);
            let proto = ss.protocol().number();
            mc_ext.hmac_secret_mc = Some(HmacSecretInput {
                key_agreement: key,
                salt_enc,
                salt_auth,
                pin_uv_auth_protocol: (proto != 1).then_some(proto),
            });
            mc_prf = Some((ss, eval.second.is_some()));
        }
        if let Some(appid) = &ext.appid_exclude
            && !options.exclude_credentials.is_empty()
        {
            // U2F credentials have no credProtect; the token is bound to rp_id.
            let list = Self::usable(dev, &options.exclude_credentials);
            if Self::preflight(dev, appid, &list, &UvAuth::None, op)?.is_some() {
                self.wait_touch_then(dev, op)?;
                return Err(ClientError::CredentialExcluded);
            }
        }

        // Enterprise attestation (CTAP 2.1 §7.1): asked for only with
        // attestation "enterprise", on a key with it enabled.
        let enterprise_attestation = (attestation == "enterprise" && dev.option("ep") == Some(true))
            .then(|| if self.enterprise_rp_ids.contains(&rp_id) { 2 } else { 1 });
        // attestationFormats (WebAuthn L3) to a CTAP 2.2 key.
        let attestation_formats = (attestation != "none"
            && !options.attestation_formats.is_empty()
            && dev.info().is_some_and(|i| i.supports_version("FIDO_2_2")))
        .then(|| options.attestation_formats.clone());
        let build = |auth: &UvAuth| {
            let (param, proto) = auth.param(&cdh);
            MakeCredentialRequest {
                client_data_hash: cdh.clone(),
                rp: PublicKeyCredentialRpEntity { id: rp_id.clone(), name: Some(options.rp.name.clone()) },
                user: PublicKeyCredentialUserEntity {
                    id: options.user.id.0.clone(),
                    name: Some(options.user.name.clone()),
                    display_name: Some(options.user.display_name.clone()),
                },
                pub_key_cred_params: algs.iter().map(|a| PublicKeyCredentialParameters::public_key(*a)).collect(),
                exclude_list: (!exclude.is_empty()).then(|| exclude.clone()),
                extensions: (!mc_ext.is_empty()).then(|| mc_ext.clone()),
                options: Some(CommandOptions { rk: rk.then_some(true), up: None, uv: auth.uv_option() })
                    .filter(|o| !o.is_empty()),
                pin_uv_auth_param: param,
                pin_uv_auth_protocol: proto,
                enterprise_attestation,
                attestation_formats_preference: attestation_formats.clone(),
            }
        };
        let resp = match dev.make_credential(&build(&auth), op) {
            // CTAP 2.1 keys with a PIN may insist on one even when UV is discouraged.
            Err(ClientError::Status(CtapStatus::PuatRequired)) if !auth.verifies() => {
                auth = self.acquire_uv(dev, UvRequirement::Required, permissions::MAKE_CREDENTIAL, &rp_id, op)?;
                dev.make_credential(&build(&auth), op)?
            }
            r => r?,
        };
        let mut att = resp.to_attestation_object().map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.check_auth_data(&att.auth_data, &rp_id, uv_req == UvRequirement::Required && auth.verifies())?;
        let acd = att
            .auth_data
            .attested_credential
            .clone()
            .ok_or_else(|| ClientError::Malformed("no attested credential data".into()))?;
        if !algs.contains(&acd.public_key.alg().map(|a| a.0).unwrap_or(i64::MIN)) {
            return Err(ClientError::Malformed("credential key of an algorithm not asked for".into()));
        }
        let outputs = match att.auth_data.extensions.as_ref() {
            Some(v) => {
                MakeCredentialExtensionOutputs::from_value(v).map_err(|e| ClientError::Malformed(e.to_string()))?
            }
            None => MakeCredentialExtensionOutputs::default(),
        };
        if attestation == "none" && att.fmt != "none" {
            att = AttestationObject {
                fmt: "none".into(),
                att_stmt: Value::Map(Vec::new()),
                auth_data: att.auth_data.clone(),
                auth_data_raw: att.auth_data_raw.clone(),
            };
        }
        let mut results = ClientExtensionOutputs::default();
        if ext.cred_props == Some(true) {
            results.cred_props = Some(CredPropsOutput { rk: Some(rk) });
        }
        if ext.hmac_create_secret == Some(true) {
            results.hmac_create_secret = Some(outputs.hmac_secret == Some(true));
        }
        if ext.prf.is_some() {
            let mut prf = PrfOutputs { enabled: Some(outputs.hmac_secret == Some(true)), results: None };
            if let (Some((ss, two)), Some(enc)) = (&mc_prf, &outputs.hmac_secret_mc) {
                let plain = ss.decrypt(self.provider, enc)?;
                if plain.len() != if *two { 64 } else { 32 } {
                    return Err(ClientError::Malformed("hmac-secret-mc output of the wrong length".into()));
                }
                prf.results = Some(PrfValues {
                    first: Base64Url(plain[..32].to_vec()),
                    second: two.then(|| Base64Url(plain[32..64].to_vec())),
                });
            }
            results.prf = Some(prf);
        }
        if ext.cred_blob.is_some() {
            results.cred_blob = Some(outputs.cred_blob == Some(true));
        }
        if ext.large_blob.is_some() {
            results.large_blob = Some(LargeBlobOutputs {
                supported: Some(want_large_blob && resp.large_blob_key.is_some()),
                ..Default::default()
            });
        }
        if ext.appid_exclude.is_some() {
            results.appid_exclude = Some(true);
        }
        Ok(RegistrationResponseJson {
            id: b64url_encode(&acd.credential_id),
            raw_id: Base64Url(acd.credential_id.clone()),
            response: AttestationResponseJson {
                client_data_json: Base64Url(cdj),
                attestation_object: Base64Url(att.to_bytes()),
                authenticator_data: Some(Base64Url(att.auth_data_raw.clone())),
                transports: Some(dev.info().and_then(|i| i.transports.clone()).unwrap_or_else(|| vec!["usb".into()])),
                public_key: spki_der(&acd.public_key).map(Base64Url),
                public_key_algorithm: acd.public_key.alg().map(|a| a.0),
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: results,
            type_: "public-key".into(),
        })
    }

    fn wait_touch_then(&self, dev: &mut Device, op: &Op) -> Result<(), ClientError> {
        // Let the user touch the key so "already registered" is tied to a deliberate act.
        match super::discovery::wait_for_touch(dev, op) {
            Ok(()) => Ok(()),
            Err(ClientError::Cancelled) => Err(ClientError::Cancelled),
            Err(ClientError::Timeout) => Err(ClientError::Timeout),
            Err(_) => Ok(()),
        }
    }

    fn check_auth_data(&self, ad: &AuthenticatorData, rp_id: &str, need_uv: bool) -> Result<(), ClientError> {
        let h = self.provider.sha256(&[rp_id.as_bytes()]);
        if !crate::crypto::ct_eq(&h, &ad.rp_id_hash) {
            return Err(ClientError::Malformed("authenticator data for another RP ID".into()));
        }
        if need_uv && !ad.flags.uv() {
            return Err(ClientError::Malformed("user verification was required but the UV flag is not set".into()));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn u2f_register(
        &self,
        dev: &mut Device,
        options: &CreationOptionsJson,
        rp_id: &str,
        algs: &[i64],
        cdj: Vec<u8>,
        cdh: &[u8],
        uv_req: UvRequirement,
        rk_pref: &str,
        ext: &ClientExtensionInputs,
        op: &Op,
    ) -> Result<RegistrationResponseJson, ClientError> {
        if uv_req == UvRequirement::Required {
            return Err(ClientError::Unsupported("user verification (U2F key)".into()));
        }
        if rk_pref == "required" {
            return Err(ClientError::Unsupported("discoverable credentials (U2F key)".into()));
        }
        if !algs.contains(&-7) {
            return Err(ClientError::Unsupported("the requested algorithms (U2F keys only do ES256)".into()));
        }
        let app: [u8; 32] = self.provider.sha256(&[rp_id.as_bytes()]);
        let mut apps = vec![app];
        if let Some(a) = &ext.appid_exclude {
            apps.push(self.provider.sha256(&[a.as_bytes()]));
        }
        for d in &options.exclude_credentials {
            for a in &apps {
                if dev.u2f_check(a, &d.id, op)? {
                    self.wait_touch_then(dev, op)?;
                    return Err(ClientError::CredentialExcluded);
                }
            }
        }
        let mut challenge = [0u8; 32];
        challenge.copy_from_slice(cdh);
        let reg = dev.u2f_register(&challenge, &app, op)?;
        let mut att = reg.to_attestation_object(&app)?;
        let acd = att.auth_data.attested_credential.clone().ok_or_else(|| ClientError::Malformed("U2F".into()))?;
        if options.attestation.as_deref().unwrap_or("none") == "none" {
            att.fmt = "none".into();
            att.att_stmt = Value::Map(Vec::new());
        }
        let mut results = ClientExtensionOutputs::default();
        if ext.cred_props == Some(true) {
            results.cred_props = Some(CredPropsOutput { rk: Some(false) });
        }
        if ext.appid_exclude.is_some() {
            results.appid_exclude = Some(true);
        }
        Ok(RegistrationResponseJson {
            id: b64url_encode(&acd.credential_id),
            raw_id: Base64Url(acd.credential_id.clone()),
            response: AttestationResponseJson {
                client_data_json: Base64Url(cdj),
                attestation_object: Base64Url(att.to_bytes()),
                authenticator_data: Some(Base64Url(att.auth_data_raw.clone())),
                transports: Some(vec!["usb".into()]),
                public_key: spki_der(&acd.public_key).map(Base64Url),
                public_key_algorithm: Some(-7),
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: results,
            type_: "public-key".into(),
        })
    }

    /// Run an authentication ceremony on `dev`.
    pub fn authenticate(
        &self,
        dev: &mut Device,
        options: &RequestOptionsJson,
        origin: &str,
        op: &Op,
    ) -> Result<AuthenticationResponseJson, ClientError> {
        let o = Origin::parse(origin)?;
        let rp_id = options.rp_id.clone().unwrap_or_else(|| o.host.clone());
        check_rp_id(&rp_id, &o)?;
        if options.challenge.is_empty() {
            return Err(ClientError::InvalidRequest("empty challenge".into()));
        }
        let cdj = client_data("webauthn.get", &options.challenge, origin);
        let cdh = self.provider.sha256(&[&cdj]).to_vec();
        let uv_req = UvRequirement::parse(options.user_verification.as_deref());
        let ext = options.extensions.clone().unwrap_or_default();
        if let Some(a) = &ext.appid
            && !a.starts_with("https://")
        {
            return Err(ClientError::Security(format!("appid {a:?} is not an https URL")));
        }
        let (lb_read, lb_write) = match &ext.large_blob {
            None => (false, None),
            Some(lb) => {
                if lb.support.is_some() {
                    return Err(ClientError::InvalidRequest("largeBlob.support is for registration".into()));
                }
                if lb.read == Some(true) && lb.write.is_some() {
                    return Err(ClientError::InvalidRequest("largeBlob: read and write together".into()));
                }
                if lb.write.is_some() && options.allow_credentials.len() != 1 {
                    return Err(ClientError::InvalidRequest(
                        "largeBlob.write needs exactly one allowed credential".into(),
                    ));
                }
                (lb.read == Some(true), lb.write.clone())
            }
        };
        if !dev.is_ctap2() {
            return self.u2f_authenticate(dev, options, &rp_id, cdj, &cdh, uv_req, &ext, op);
        }
        let large_blobs = dev.option("largeBlobs") == Some(true)
            && dev.info().is_some_and(|i| i.supports_extension(ext_id::LARGE_BLOB_KEY));
        let allow = Self::usable(dev, &options.allow_credentials);
        if !options.allow_credentials.is_empty() && allow.is_empty() {
            return Err(ClientError::NoCredentials);
        }
        // Writing a large blob to a PIN-protected key needs a token with largeBlobWrite.
        let write_blob = lb_write.is_some() && large_blobs;
        let (uv_req, perms) = if write_blob {
            let protected = dev.option("clientPin") == Some(true) || dev.option("uv") == Some(true);
            let req = if protected { UvRequirement::Required } else { uv_req };
            (req, permissions::GET_ASSERTION | permissions::LARGE_BLOB_WRITE)
        } else {
            (uv_req, permissions::GET_ASSERTION)
        };
        // User verification before the pre-flight, which needs the token to
        // see credProtect=3 credentials.
        let mut auth = self.acquire_uv(dev, uv_req, perms, &rp_id, op)?;
        let mut target_rp = rp_id.clone();
        let mut used_appid = false;
        let allow_list = if allow.is_empty() {
            None
        } else if allow.len() > Self::chunk_size(dev) || ext.appid.is_some() {
            let mut found = Self::preflight(dev, &rp_id, &allow, &auth, op)?;
            if found.is_none()
                && let Some(a) = &ext.appid
            {
                // U2F credentials have no credProtect; the token is bound to rp_id.
                found = Self::preflight(dev, a, &allow, &UvAuth::None, op)?;
                if found.is_some() {
                    target_rp = a.clone();
                    used_appid = true;
                    if auth.verifies() {
                        auth = self.acquire_uv(dev, uv_req, perms, &target_rp, op)?;
                    }
                }
            }
            match found {
                Some(f) => Some(vec![f]),
                None => {
                    self.wait_touch_then(dev, op)?;
                    return Err(ClientError::NoCredentials);
                }
            }
        } else {
            Some(allow.clone())
        };

        // hmac-secret for prf / hmacGetSecret.
        let single_id = allow_list.as_ref().filter(|l| l.len() == 1).map(|l| l[0].id.clone());
        let salts: Option<(Vec<u8>, Option<Vec<u8>>, bool)> = if let Some(prf) = &ext.prf {
            let by_cred =
                single_id.as_ref().and_then(|id| prf.eval_by_credential.as_ref()?.get(&b64url_encode(id)).cloned());
            if prf.eval_by_credential.as_ref().is_some_and(|m| !m.is_empty()) && allow.is_empty() {
                return Err(ClientError::InvalidRequest("prf evalByCredential needs allowCredentials".into()));
            }
            by_cred.or_else(|| prf.eval.clone()).map(|v| {
                (
                    prf_salt(self.provider, &v.first).to_vec(),
                    v.second.as_ref().map(|s| prf_salt(self.provider, s).to_vec()),
                    true,
                )
            })
        } else {
            ext.hmac_get_secret.as_ref().map(|h| (h.salt1.0.clone(), h.salt2.as_ref().map(|s| s.0.clone()), false))
        };
        let supports = |e: &str| dev.info().is_some_and(|i| i.supports_extension(e));
        let (has_hmac, has_cred_blob) = (supports(ext_id::HMAC_SECRET), supports(ext_id::CRED_BLOB));
        let mut ga_ext = GetAssertionExtensions::default();
        if is_payment(&ext) && supports(ext_id::THIRD_PARTY_PAYMENT) {
            ga_ext.third_party_payment = Some(true);
        }
        if let Some((s1, s2, _)) = &salts
            && has_hmac
            && (s1.len() != 32 || s2.as_ref().is_some_and(|s| s.len() != 32))
        {
            return Err(ClientError::InvalidRequest("hmac-secret salts must be 32 bytes".into()));
        }
        // The salts are encrypted under the key agreement in force when the
        // request goes out: a wrong PIN makes the key discard its key, so
        // this is redone after every token request.
        let provider = self.provider;
        let encrypt_salts =
            |dev: &mut Device, ga_ext: &mut GetAssertionExtensions| -> Result<Option<SharedSecret>, ClientError> {
                let Some((s1, s2, _)) = salts.as_ref().filter(|_| has_hmac) else {
                    return Ok(None);
                };
                let (key, ss) = dev.key_agreement(op)?;
                let mut plain = Zeroizing::new(s1.clone());
                if let Some(s2) = s2 {
                    plain.extend_from_slice(s2);
                }
                let salt_enc = ss.encrypt(provider, &plain)?;
                let salt_auth = ss.authenticate(provider, &salt_enc);
                let proto = ss.protocol().number();
                ga_ext.hmac_secret = Some(HmacSecretInput {
                    key_agreement: key,
                    salt_enc,
                    salt_auth,
                    pin_uv_auth_protocol: (proto != 1).then_some(proto),
                });
                Ok(Some(ss))
            };
        let mut shared = encrypt_salts(dev, &mut ga_ext)?;
        if ext.get_cred_blob == Some(true) && has_cred_blob {
            ga_ext.cred_blob = Some(true);
        }
        if (lb_read || write_blob) && large_blobs {
            ga_ext.large_blob_key = Some(true);
        }

        let build = |auth: &UvAuth, ga_ext: &GetAssertionExtensions| {
            let (param, proto) = auth.param(&cdh);
            GetAssertionRequest {
                rp_id: target_rp.clone(),
                client_data_hash: cdh.clone(),
                allow_list: allow_list.clone(),
                extensions: (!ga_ext.is_empty()).then(|| ga_ext.clone()),
                options: Some(CommandOptions { rk: None, up: None, uv: auth.uv_option() }).filter(|o| !o.is_empty()),
                pin_uv_auth_param: param,
                pin_uv_auth_protocol: proto,
            }
        };
        let first = match dev.get_assertion(&build(&auth, &ga_ext), op) {
            Err(ClientError::Status(CtapStatus::PuatRequired)) if !auth.verifies() => {
                auth = self.acquire_uv(dev, UvRequirement::Required, permissions::GET_ASSERTION, &target_rp, op)?;
                shared = encrypt_salts(dev, &mut ga_ext)?;
                dev.get_assertion(&build(&auth, &ga_ext), op)?
            }
            r => r?,
        };
        let resp = self.pick_account(dev, first, allow_list.is_none(), op)?;
        let ad = resp.parsed_auth_data().map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.check_auth_data(&ad, &target_rp, uv_req == UvRequirement::Required && auth.verifies())?;
        if !ad.flags.up() {
            return Err(ClientError::Malformed("assertion without user presence".into()));
        }
        let cred_id = match (&resp.credential, &allow_list) {
            (Some(c), _) => c.id.clone(),
            (None, Some(l)) if l.len() == 1 => l[0].id.clone(),
            _ => return Err(ClientError::Malformed("assertion without a credential ID".into())),
        };
        if let Some(l) = &allow_list
            && !l.iter().any(|c| c.id == cred_id)
        {
            return Err(ClientError::Malformed("assertion for a credential not in the allow list".into()));
        }
        let outputs = match ad.extensions.as_ref() {
            Some(v) => {
                GetAssertionExtensionOutputs::from_value(v).map_err(|e| ClientError::Malformed(e.to_string()))?
            }
            None => GetAssertionExtensionOutputs::default(),
        };
        let mut results = ClientExtensionOutputs::default();
        if ext.appid.is_some() {
            results.appid = Some(used_appid);
        }
        if let (Some((_, s2, is_prf)), Some(ss)) = (&salts, &shared) {
            if let Some(enc) = &outputs.hmac_secret {
                let plain = ss.decrypt(self.provider, enc)?;
                let want = if s2.is_some() { 64 } else { 32 };
                if plain.len() != want {
                    return Err(ClientError::Malformed("hmac-secret output of the wrong length".into()));
                }
                let first = Base64Url(plain[..32].to_vec());
                let second = s2.as_ref().map(|_| Base64Url(plain[32..64].to_vec()));
                if *is_prf {
                    results.prf = Some(PrfOutputs { enabled: None, results: Some(PrfValues { first, second }) });
                } else {
                    results.hmac_get_secret = Some(HmacGetSecretOutput { output1: first, output2: second });
                }
            } else if *is_prf {
                results.prf = Some(PrfOutputs::default());
            }
        }
        if ext.get_cred_blob == Some(true) {
            results.get_cred_blob = Some(Base64Url(outputs.cred_blob.clone().unwrap_or_default()));
        }
        if ext.large_blob.is_some() {
            let mut out = LargeBlobOutputs::default();
            let key = resp.large_blob_key.clone().filter(|k| k.len() == 32);
            if let Some(key) = key.filter(|_| large_blobs) {
                if lb_read {
                    out.blob = dev.read_large_blob(&key, op)?.map(Base64Url);
                } else if let Some(data) = &lb_write {
                    let token = match &auth {
                        UvAuth::Token(t) => Some(t),
                        _ => None,
                    };
                    out.written = Some(dev.write_large_blob(&key, data, token, op).is_ok());
                }
            } else if lb_write.is_some() {
                out.written = Some(false);
            }
            results.large_blob = Some(out);
        }
        let user_handle = resp.user.as_ref().filter(|u| !u.id.is_empty()).map(|u| Base64Url(u.id.clone()));
        if allow_list.is_none() && user_handle.is_none() {
            return Err(ClientError::Malformed("discoverable credential without a user handle".into()));
        }
        Ok(AuthenticationResponseJson {
            id: b64url_encode(&cred_id),
            raw_id: Base64Url(cred_id),
            response: AssertionResponseJson {
                client_data_json: Base64Url(cdj),
                authenticator_data: Base64Url(resp.auth_data.clone()),
                signature: Base64Url(resp.signature.clone()),
                user_handle,
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: results,
            type_: "public-key".into(),
        })
    }

    /// Several discoverable credentials: read them all and let the user choose.
    fn pick_account(
        &self,
        dev: &mut Device,
        first: GetAssertionResponse,
        discoverable: bool,
        op: &Op,
    ) -> Result<GetAssertionResponse, ClientError> {
        let n = first.number_of_credentials.unwrap_or(1);
        if !discoverable || n <= 1 || first.user_selected == Some(true) {
            return Ok(first);
        }
        let mut all = vec![first];
        for _ in 1..n.min(64) {
            all.push(dev.get_next_assertion(op)?);
        }
        let users: Vec<_> = all.iter().map(|r| r.user.clone()).collect();
        let i = self.ui.choose_account(&users).ok_or(ClientError::Cancelled)?;
        if i >= all.len() {
            return Err(ClientError::Cancelled);
        }
        Ok(all.swap_remove(i))
    }

    #[allow(clippy::too_many_arguments)]
    fn u2f_authenticate(
        &self,
        dev: &mut Device,
        options: &RequestOptionsJson,
        rp_id: &str,
        cdj: Vec<u8>,
        cdh: &[u8],
        uv_req: UvRequirement,
        ext: &ClientExtensionInputs,
        op: &Op,
    ) -> Result<AuthenticationResponseJson, ClientError> {
        if options.allow_credentials.is_empty() {
            return Err(ClientError::Unsupported("discoverable credentials (U2F key)".into()));
        }
        if uv_req == UvRequirement::Required {
            return Err(ClientError::Unsupported("user verification (U2F key)".into()));
        }
        let mut apps: Vec<([u8; 32], bool)> = vec![(self.provider.sha256(&[rp_id.as_bytes()]), false)];
        if let Some(a) = &ext.appid {
            apps.push((self.provider.sha256(&[a.as_bytes()]), true));
        }
        let mut found = None;
        'outer: for (app, is_appid) in &apps {
            for d in options.allow_credentials.iter().filter(|d| d.type_ == "public-key") {
                if dev.u2f_check(app, &d.id, op)? {
                    found = Some((*app, *is_appid, d.id.0.clone()));
                    break 'outer;
                }
            }
        }
        let Some((app, used_appid, id)) = found else {
            self.wait_touch_then(dev, op)?;
            return Err(ClientError::NoCredentials);
        };
        let mut challenge = [0u8; 32];
        challenge.copy_from_slice(cdh);
        let r = dev.u2f_authenticate(&challenge, &app, &id, op)?;
        let mut results = ClientExtensionOutputs::default();
        if ext.appid.is_some() {
            results.appid = Some(used_appid);
        }
        Ok(AuthenticationResponseJson {
            id: b64url_encode(&id),
            raw_id: Base64Url(id),
            response: AssertionResponseJson {
                client_data_json: Base64Url(cdj),
                authenticator_data: Base64Url(r.auth_data(&app)),
                signature: Base64Url(r.signature.clone()),
                user_handle: None,
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: results,
            type_: "public-key".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(Origin::parse("https://Example.com:8443/").unwrap().host, "example.com");
        assert!(Origin::parse("http://localhost:8080").is_ok());
        assert!(Origin::parse("http://example.com").is_err());
        assert!(Origin::parse("https://example.com/path").is_err());
        assert!(Origin::parse("ftp://example.com").is_err());
        assert_eq!(Origin::parse("https://[::1]:9").unwrap().host, "::1");
    }

    #[test]
    fn rp_ids() {
        let o = Origin::parse("https://a.b.example.co.uk").unwrap();
        assert!(check_rp_id("example.co.uk", &o).is_ok());
        assert!(check_rp_id("b.example.co.uk", &o).is_ok());
        assert!(check_rp_id("co.uk", &o).is_err());
        assert!(check_rp_id("xample.co.uk", &o).is_err());
        let gh = Origin::parse("https://me.github.io").unwrap();
        assert!(check_rp_id("github.io", &gh).is_err());
        let ip = Origin::parse("https://10.0.0.1").unwrap();
        assert!(check_rp_id("0.0.1", &ip).is_err());
        assert!(check_rp_id("10.0.0.1", &ip).is_ok());
    }

    #[test]
    fn prf_salt_is_domain_separated() {
        let p = crate::crypto::default_provider();
        let mut input = b"WebAuthn PRF".to_vec();
        input.push(0);
        input.extend_from_slice(b"salt");
        assert_eq!(prf_salt(p, b"salt"), p.sha256(&[&input]));
    }
}

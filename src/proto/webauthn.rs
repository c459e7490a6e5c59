//! WebAuthn Level 3 JSON: the options a relying party sends
//! (`PublicKeyCredentialCreationOptionsJSON`, `PublicKeyCredentialRequestOptionsJSON`),
//! the responses a client returns (`RegistrationResponseJSON`,
//! `AuthenticationResponseJSON`), `CollectedClientData`, and the client
//! extension inputs and outputs. Binary values are unpadded base64url
//! ([`Base64Url`]); decoding also accepts padding and the standard alphabet,
//! as some browsers and libraries emit them.

use super::cose::CoseAlgorithm;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Bytes that travel as unpadded base64url in JSON.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Base64Url(pub Vec<u8>);

impl std::fmt::Debug for Base64Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b64u\"{}\"", self.encode())
    }
}

impl Base64Url {
    /// Unpadded base64url text.
    pub fn encode(&self) -> String {
        b64url_encode(&self.0)
    }
    /// Decode leniently (padding, standard alphabet accepted).
    pub fn decode(s: &str) -> Result<Self, base64::DecodeError> {
        b64url_decode(s).map(Base64Url)
    }
}

impl From<Vec<u8>> for Base64Url {
    fn from(v: Vec<u8>) -> Self {
        Base64Url(v)
    }
}
impl From<&[u8]> for Base64Url {
    fn from(v: &[u8]) -> Self {
        Base64Url(v.to_vec())
    }
}
impl AsRef<[u8]> for Base64Url {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
impl std::ops::Deref for Base64Url {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Unpadded base64url encoding.
pub fn b64url_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Lenient base64url decoding: padding optional, `+`/`/` accepted, non-zero
/// trailing bits tolerated (some libraries emit them).
pub fn b64url_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let trimmed = s.trim_end_matches('=');
    if trimmed.contains(['+', '/']) {
        let t: String = trimmed
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        LENIENT.decode(t)
    } else {
        LENIENT.decode(trimmed)
    }
}

impl Serialize for Base64Url {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Base64Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        Base64Url::decode(&s).map_err(|e| serde::de::Error::custom(format!("invalid base64url: {e}")))
    }
}

/// `PublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpEntity {
    /// The RP ID; the client defaults it to the origin's effective domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human-palatable name.
    pub name: String,
}

/// `PublicKeyCredentialUserEntityJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEntity {
    /// The user handle: at most 64 opaque bytes, no personal information.
    pub id: Base64Url,
    /// The account name (e.g. username).
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
}

/// `PublicKeyCredentialParameters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubKeyCredParam {
    /// Always "public-key".
    #[serde(rename = "type")]
    pub type_: String,
    /// COSE algorithm.
    pub alg: CoseAlgorithm,
}

impl PubKeyCredParam {
    /// A "public-key" parameter for `alg`.
    pub fn public_key(alg: CoseAlgorithm) -> Self {
        PubKeyCredParam { type_: "public-key".into(), alg }
    }
}

/// The transports WebAuthn L3 names (`AuthenticatorTransport`, §5.8.4).
pub const KNOWN_TRANSPORTS: [&str; 6] = ["ble", "hybrid", "internal", "nfc", "smart-card", "usb"];

/// Most transports kept for one credential.
pub const MAX_TRANSPORTS: usize = 8;

/// `transports` as a relying party keeps them: the values of
/// [`KNOWN_TRANSPORTS`] only (clients ignore others, §5.8.4), each once, in
/// the order given, at most [`MAX_TRANSPORTS`]. A client-supplied list of
/// any length is reduced to a few bytes.
pub fn known_transports<S: AsRef<str>>(transports: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in transports {
        let t = t.as_ref();
        if KNOWN_TRANSPORTS.contains(&t) && !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
            if out.len() == MAX_TRANSPORTS {
                break;
            }
        }
    }
    out
}

/// `PublicKeyCredentialDescriptorJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDescriptor {
    /// Always "public-key".
    #[serde(rename = "type")]
    pub type_: String,
    /// The credential ID.
    pub id: Base64Url,
    /// Transport hints ("usb", "nfc", "ble", "hybrid", "internal", "smart-card").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transports: Option<Vec<String>>,
}

impl CredentialDescriptor {
    /// A "public-key" descriptor.
    pub fn public_key(id: Vec<u8>, transports: Option<Vec<String>>) -> Self {
        CredentialDescriptor { type_: "public-key".into(), id: Base64Url(id), transports }
    }
}

/// `AuthenticatorSelectionCriteria`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// "platform" or "cross-platform".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// "discouraged", "preferred" or "required".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_key: Option<String>,
    /// Level 1 form of residentKey = "required".
    #[serde(default)]
    pub require_resident_key: bool,
    /// "discouraged", "preferred" (default) or "required".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verification: Option<String>,
}

/// hmac-secret / prf salts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrfValues {
    /// First salt input.
    pub first: Base64Url,
    /// Optional second salt input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<Base64Url>,
}

/// `AuthenticationExtensionsPRFInputs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrfInputs {
    /// Salts for any credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<PrfValues>,
    /// Salts per credential ID (base64url keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_by_credential: Option<BTreeMap<String, PrfValues>>,
}

/// Legacy `hmacGetSecret` input (Chrome/Firefox non-standard form of hmac-secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HmacGetSecretInput {
    /// 32-byte salt.
    pub salt1: Base64Url,
    /// Optional second 32-byte salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt2: Option<Base64Url>,
}

/// `AuthenticationExtensionsLargeBlobInputs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LargeBlobInputs {
    /// At registration: "required" or "preferred".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<String>,
    /// At authentication: read the blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<bool>,
    /// At authentication: write this blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Base64Url>,
}

/// `AuthenticationExtensionsClientInputsJSON`: the extensions hwkey knows,
/// plus any others preserved as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClientExtensionInputs {
    /// FIDO AppID (authentication): a U2F AppID the credential may be scoped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// FIDO AppID exclusion (registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid_exclude: Option<String>,
    /// Ask the client to report whether the credential is discoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred_props: Option<bool>,
    /// credProtect: "userVerificationOptional", "userVerificationOptionalWithCredentialIDList", "userVerificationRequired".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_protection_policy: Option<String>,
    /// Fail rather than register with a weaker protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_credential_protection_policy: Option<bool>,
    /// Create an hmac-secret credential (registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_create_secret: Option<bool>,
    /// Evaluate hmac-secret (authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_get_secret: Option<HmacGetSecretInput>,
    /// Pseudo-random function (WebAuthn L3), mapped onto hmac-secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<PrfInputs>,
    /// Large blob storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_blob: Option<LargeBlobInputs>,
    /// credBlob to store with the credential (registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred_blob: Option<Base64Url>,
    /// Return the credBlob (authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_cred_blob: Option<bool>,
    /// Ask for the current minimum PIN length (registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pin_length: Option<bool>,
    /// Extensions hwkey does not interpret.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// credProps output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CredPropsOutput {
    /// Whether the credential is discoverable (client-side discoverable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rk: Option<bool>,
}

/// prf output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PrfOutputs {
    /// Whether the credential supports prf (registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The evaluated outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<PrfValues>,
}

/// Legacy hmacGetSecret output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HmacGetSecretOutput {
    /// HMAC output for salt1.
    pub output1: Base64Url,
    /// HMAC output for salt2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output2: Option<Base64Url>,
}

/// largeBlob output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LargeBlobOutputs {
    /// Registration: whether large blobs are supported for the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<bool>,
    /// Authentication: the blob read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Base64Url>,
    /// Authentication: whether the write succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<bool>,
}

/// `AuthenticationExtensionsClientOutputsJSON`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClientExtensionOutputs {
    /// Whether the AppID was used for the assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<bool>,
    /// Whether appidExclude was processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid_exclude: Option<bool>,
    /// credProps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred_props: Option<CredPropsOutput>,
    /// The credProtect policy applied (non-standard but common).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_protection_policy: Option<String>,
    /// hmac-secret was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_create_secret: Option<bool>,
    /// hmac-secret outputs (legacy form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_get_secret: Option<HmacGetSecretOutput>,
    /// prf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<PrfOutputs>,
    /// largeBlob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_blob: Option<LargeBlobOutputs>,
    /// credBlob stored (registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred_blob: Option<bool>,
    /// credBlob returned (authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_cred_blob: Option<Base64Url>,
    /// Other outputs, preserved.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `PublicKeyCredentialCreationOptionsJSON`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationOptionsJson {
    /// The relying party.
    pub rp: RpEntity,
    /// The user account.
    pub user: UserEntity,
    /// The challenge (at least 16 random bytes).
    pub challenge: Base64Url,
    /// Acceptable algorithms, most preferred first.
    pub pub_key_cred_params: Vec<PubKeyCredParam>,
    /// Timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Credentials the authenticator must not already hold.
    #[serde(default)]
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// Authenticator requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_selection: Option<AuthenticatorSelection>,
    /// Hints ("security-key", "client-device", "hybrid").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// "none" (default), "indirect", "direct", "enterprise".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    /// Preferred attestation formats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestation_formats: Vec<String>,
    /// Extension inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<ClientExtensionInputs>,
}

/// `PublicKeyCredentialRequestOptionsJSON`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOptionsJson {
    /// The challenge.
    pub challenge: Base64Url,
    /// Timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// The RP ID; the client defaults it to the origin's effective domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rp_id: Option<String>,
    /// Acceptable credentials; empty for discoverable credentials.
    #[serde(default)]
    pub allow_credentials: Vec<CredentialDescriptor>,
    /// "discouraged", "preferred" (default), "required".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verification: Option<String>,
    /// Hints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// Extension inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<ClientExtensionInputs>,
}

/// `AuthenticatorAttestationResponseJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponseJson {
    /// The JSON-serialized client data.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: Base64Url,
    /// The attestation object.
    pub attestation_object: Base64Url,
    /// Authenticator data (convenience copy; the attestation object is authoritative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_data: Option<Base64Url>,
    /// Transports the authenticator supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transports: Option<Vec<String>>,
    /// DER SubjectPublicKeyInfo of the credential key (convenience copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<Base64Url>,
    /// COSE algorithm of the credential key (convenience copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_algorithm: Option<i64>,
}

/// `RegistrationResponseJSON`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponseJson {
    /// base64url credential ID.
    pub id: String,
    /// The credential ID.
    pub raw_id: Base64Url,
    /// The authenticator's response.
    pub response: AttestationResponseJson,
    /// "platform" or "cross-platform".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// Client extension outputs.
    #[serde(default)]
    pub client_extension_results: ClientExtensionOutputs,
    /// "public-key".
    #[serde(rename = "type")]
    pub type_: String,
}

/// `AuthenticatorAssertionResponseJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponseJson {
    /// The JSON-serialized client data.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: Base64Url,
    /// Authenticator data.
    pub authenticator_data: Base64Url,
    /// Signature over authenticatorData || SHA-256(clientDataJSON).
    pub signature: Base64Url,
    /// The user handle, for discoverable credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<Base64Url>,
}

/// `AuthenticationResponseJSON`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponseJson {
    /// base64url credential ID.
    pub id: String,
    /// The credential ID.
    pub raw_id: Base64Url,
    /// The authenticator's response.
    pub response: AssertionResponseJson,
    /// "platform" or "cross-platform".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// Client extension outputs.
    #[serde(default)]
    pub client_extension_results: ClientExtensionOutputs,
    /// "public-key".
    #[serde(rename = "type")]
    pub type_: String,
}

/// `CollectedClientData` (WebAuthn L3 §5.8.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectedClientData {
    /// "webauthn.create" or "webauthn.get".
    #[serde(rename = "type")]
    pub type_: String,
    /// base64url of the challenge.
    pub challenge: String,
    /// The caller's origin.
    pub origin: String,
    /// Whether the call came from a cross-origin iframe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_origin: Option<bool>,
    /// The top-level origin, for cross-origin calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_origin: Option<String>,
}

impl CollectedClientData {
    /// Parse client data JSON.
    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The spec's serialization (§5.8.1.1): `type`, `challenge`, `origin`,
    /// `crossOrigin` in that order, then `topOrigin` when cross-origin, with
    /// JSON string escaping as CCDToString does.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(160);
        s.push_str("{\"type\":");
        ccd_string(&mut s, &self.type_);
        s.push_str(",\"challenge\":");
        ccd_string(&mut s, &self.challenge);
        s.push_str(",\"origin\":");
        ccd_string(&mut s, &self.origin);
        let cross = self.cross_origin.unwrap_or(false);
        s.push_str(if cross { ",\"crossOrigin\":true" } else { ",\"crossOrigin\":false" });
        if let (true, Some(top)) = (cross, &self.top_origin) {
            s.push_str(",\"topOrigin\":");
            ccd_string(&mut s, top);
        }
        s.push('}');
        s.into_bytes()
    }
}

/// CCDToString: JSON-quote a string as the spec's limited serializer does.
fn ccd_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

//! CTAP 2.1 commands: command bytes, status codes, and one module per
//! command with its request and response types.
//!
//! Every request and response type implements [`CtapCodec`]: `to_value` /
//! `from_value` on [`Value`] and, derived from them, `to_cbor` / `from_cbor`
//! on bytes. Decoding never panics; encode-then-decode is the identity.
//! Request types also implement [`CtapRequest`], which adds the command byte
//! ([`CtapRequest::to_request_bytes`]). [`parse_response`] splits a raw
//! response into its status and CBOR body.

pub mod bio_enrollment;
pub mod client_pin;
pub mod config;
pub mod credential_management;
pub mod enc_info;
pub mod entities;
pub mod get_assertion;
pub mod get_info;
pub mod large_blobs;
pub mod make_credential;
pub mod reset;
pub mod selection;

pub use entities::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};

use super::cbor::{self, CborError, FieldError, Value};

/// CTAP2 command bytes (CTAP 2.1 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// 0x01 authenticatorMakeCredential.
    MakeCredential,
    /// 0x02 authenticatorGetAssertion.
    GetAssertion,
    /// 0x04 authenticatorGetInfo.
    GetInfo,
    /// 0x06 authenticatorClientPIN.
    ClientPin,
    /// 0x07 authenticatorReset.
    Reset,
    /// 0x08 authenticatorGetNextAssertion.
    GetNextAssertion,
    /// 0x09 authenticatorBioEnrollment.
    BioEnrollment,
    /// 0x0A authenticatorCredentialManagement.
    CredentialManagement,
    /// 0x0B authenticatorSelection.
    Selection,
    /// 0x0C authenticatorLargeBlobs.
    LargeBlobs,
    /// 0x0D authenticatorConfig.
    Config,
    /// 0x40 authenticatorBioEnrollment (prototype, FIDO_2_1_PRE).
    BioEnrollmentPreview,
    /// 0x41 authenticatorCredentialManagement (prototype, FIDO_2_1_PRE).
    CredentialManagementPreview,
}

impl Command {
    /// The command byte.
    pub fn byte(self) -> u8 {
        match self {
            Command::MakeCredential => 0x01,
            Command::GetAssertion => 0x02,
            Command::GetInfo => 0x04,
            Command::ClientPin => 0x06,
            Command::Reset => 0x07,
            Command::GetNextAssertion => 0x08,
            Command::BioEnrollment => 0x09,
            Command::CredentialManagement => 0x0A,
            Command::Selection => 0x0B,
            Command::LargeBlobs => 0x0C,
            Command::Config => 0x0D,
            Command::BioEnrollmentPreview => 0x40,
            Command::CredentialManagementPreview => 0x41,
        }
    }

    /// The command for a byte, if it is one.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Command::MakeCredential,
            0x02 => Command::GetAssertion,
            0x04 => Command::GetInfo,
            0x06 => Command::ClientPin,
            0x07 => Command::Reset,
            0x08 => Command::GetNextAssertion,
            0x09 => Command::BioEnrollment,
            0x0A => Command::CredentialManagement,
            0x0B => Command::Selection,
            0x0C => Command::LargeBlobs,
            0x0D => Command::Config,
            0x40 => Command::BioEnrollmentPreview,
            0x41 => Command::CredentialManagementPreview,
            _ => return None,
        })
    }
}

macro_rules! statuses {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $spec:literal; )*) => {
        /// Every CTAP status code (CTAP 2.1 §8.2), with the specification's name.
        /// Codes without a name here decode as [`CtapStatus::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CtapStatus {
            $( $(#[$doc])* $name, )*
            /// A code this crate has no name for (extension, vendor or reserved).
            Unknown(u8),
        }

        impl CtapStatus {
            /// The status byte.
            pub fn code(self) -> u8 {
                match self { $( CtapStatus::$name => $code, )* CtapStatus::Unknown(c) => c }
            }
            /// The status for a byte (total: unknown bytes map to [`CtapStatus::Unknown`]).
            pub fn from_code(c: u8) -> Self {
                match c { $( $code => CtapStatus::$name, )* other => CtapStatus::Unknown(other) }
            }
            /// The specification's name, e.g. `CTAP2_ERR_PIN_INVALID`.
            pub fn name(self) -> &'static str {
                match self { $( CtapStatus::$name => $spec, )* CtapStatus::Unknown(_) => "CTAP_ERR_UNKNOWN" }
            }
        }
    };
}

statuses! {
    /// 0x00: success.
    Ok = 0x00, "CTAP2_OK";
    /// 0x01: the command is not a valid CTAP command.
    InvalidCommand = 0x01, "CTAP1_ERR_INVALID_COMMAND";
    /// 0x02: the command included an invalid parameter.
    InvalidParameter = 0x02, "CTAP1_ERR_INVALID_PARAMETER";
    /// 0x03: invalid message or item length.
    InvalidLength = 0x03, "CTAP1_ERR_INVALID_LENGTH";
    /// 0x04: invalid message sequencing.
    InvalidSeq = 0x04, "CTAP1_ERR_INVALID_SEQ";
    /// 0x05: message timed out.
    Timeout = 0x05, "CTAP1_ERR_TIMEOUT";
    /// 0x06: channel busy.
    ChannelBusy = 0x06, "CTAP1_ERR_CHANNEL_BUSY";
    /// 0x0A: command requires channel lock.
    LockRequired = 0x0A, "CTAP1_ERR_LOCK_REQUIRED";
    /// 0x0B: command not allowed on this cid.
    InvalidChannel = 0x0B, "CTAP1_ERR_INVALID_CHANNEL";
    /// 0x11: invalid or unexpected CBOR type.
    CborUnexpectedType = 0x11, "CTAP2_ERR_CBOR_UNEXPECTED_TYPE";
    /// 0x12: error when parsing CBOR.
    InvalidCbor = 0x12, "CTAP2_ERR_INVALID_CBOR";
    /// 0x14: missing non-optional parameter.
    MissingParameter = 0x14, "CTAP2_ERR_MISSING_PARAMETER";
    /// 0x15: limit for number of items exceeded.
    LimitExceeded = 0x15, "CTAP2_ERR_LIMIT_EXCEEDED";
    /// 0x16: unsupported extension (CTAP 2.0; reserved in 2.1).
    UnsupportedExtension = 0x16, "CTAP2_ERR_UNSUPPORTED_EXTENSION";
    /// 0x17: fingerprint database full.
    FpDatabaseFull = 0x17, "CTAP2_ERR_FP_DATABASE_FULL";
    /// 0x18: large blob storage full.
    LargeBlobStorageFull = 0x18, "CTAP2_ERR_LARGE_BLOB_STORAGE_FULL";
    /// 0x19: valid credential found in the exclude list.
    CredentialExcluded = 0x19, "CTAP2_ERR_CREDENTIAL_EXCLUDED";
    /// 0x21: processing (lengthy operation in progress).
    Processing = 0x21, "CTAP2_ERR_PROCESSING";
    /// 0x22: credential not valid for the authenticator.
    InvalidCredential = 0x22, "CTAP2_ERR_INVALID_CREDENTIAL";
    /// 0x23: authentication is waiting for user interaction.
    UserActionPending = 0x23, "CTAP2_ERR_USER_ACTION_PENDING";
    /// 0x24: processing, lengthy operation in progress.
    OperationPending = 0x24, "CTAP2_ERR_OPERATION_PENDING";
    /// 0x25: no request is pending.
    NoOperations = 0x25, "CTAP2_ERR_NO_OPERATIONS";
    /// 0x26: authenticator does not support the requested algorithm.
    UnsupportedAlgorithm = 0x26, "CTAP2_ERR_UNSUPPORTED_ALGORITHM";
    /// 0x27: not authorized for the requested operation.
    OperationDenied = 0x27, "CTAP2_ERR_OPERATION_DENIED";
    /// 0x28: internal key storage is full.
    KeyStoreFull = 0x28, "CTAP2_ERR_KEY_STORE_FULL";
    /// 0x29: authenticator cannot cancel as it is not busy (CTAP 2.0).
    NotBusy = 0x29, "CTAP2_ERR_NOT_BUSY";
    /// 0x2A: no outstanding operations.
    NoOperationPending = 0x2A, "CTAP2_ERR_NO_OPERATION_PENDING";
    /// 0x2B: unsupported option.
    UnsupportedOption = 0x2B, "CTAP2_ERR_UNSUPPORTED_OPTION";
    /// 0x2C: not a valid option for the current operation.
    InvalidOption = 0x2C, "CTAP2_ERR_INVALID_OPTION";
    /// 0x2D: pending keep-alive was cancelled.
    KeepaliveCancel = 0x2D, "CTAP2_ERR_KEEPALIVE_CANCEL";
    /// 0x2E: no valid credentials provided.
    NoCredentials = 0x2E, "CTAP2_ERR_NO_CREDENTIALS";
    /// 0x2F: a user action timeout occurred.
    UserActionTimeout = 0x2F, "CTAP2_ERR_USER_ACTION_TIMEOUT";
    /// 0x30: continuation command not allowed.
    NotAllowed = 0x30, "CTAP2_ERR_NOT_ALLOWED";
    /// 0x31: PIN invalid.
    PinInvalid = 0x31, "CTAP2_ERR_PIN_INVALID";
    /// 0x32: PIN blocked.
    PinBlocked = 0x32, "CTAP2_ERR_PIN_BLOCKED";
    /// 0x33: pinUvAuthParam verification failed.
    PinAuthInvalid = 0x33, "CTAP2_ERR_PIN_AUTH_INVALID";
    /// 0x34: PIN auth blocked until power cycle.
    PinAuthBlocked = 0x34, "CTAP2_ERR_PIN_AUTH_BLOCKED";
    /// 0x35: no PIN has been set.
    PinNotSet = 0x35, "CTAP2_ERR_PIN_NOT_SET";
    /// 0x36: a pinUvAuthToken is required (PIN_REQUIRED in CTAP 2.0).
    PuatRequired = 0x36, "CTAP2_ERR_PUAT_REQUIRED";
    /// 0x37: PIN policy violation.
    PinPolicyViolation = 0x37, "CTAP2_ERR_PIN_POLICY_VIOLATION";
    /// 0x38: reserved (PIN_TOKEN_EXPIRED in CTAP 2.0).
    PinTokenExpired = 0x38, "CTAP2_ERR_PIN_TOKEN_EXPIRED";
    /// 0x39: request too large.
    RequestTooLarge = 0x39, "CTAP2_ERR_REQUEST_TOO_LARGE";
    /// 0x3A: the current operation has timed out.
    ActionTimeout = 0x3A, "CTAP2_ERR_ACTION_TIMEOUT";
    /// 0x3B: user presence is required.
    UpRequired = 0x3B, "CTAP2_ERR_UP_REQUIRED";
    /// 0x3C: built-in user verification disabled.
    UvBlocked = 0x3C, "CTAP2_ERR_UV_BLOCKED";
    /// 0x3D: a checksum did not match.
    IntegrityFailure = 0x3D, "CTAP2_ERR_INTEGRITY_FAILURE";
    /// 0x3E: the requested subcommand is invalid or unsupported.
    InvalidSubcommand = 0x3E, "CTAP2_ERR_INVALID_SUBCOMMAND";
    /// 0x3F: built-in user verification unsuccessful.
    UvInvalid = 0x3F, "CTAP2_ERR_UV_INVALID";
    /// 0x40: the permissions parameter contains an unauthorized permission.
    UnauthorizedPermission = 0x40, "CTAP2_ERR_UNAUTHORIZED_PERMISSION";
    /// 0x7F: other unspecified error.
    Other = 0x7F, "CTAP1_ERR_OTHER";
    /// 0xDF: CTAP 2 spec last error.
    SpecLast = 0xDF, "CTAP2_ERR_SPEC_LAST";
    /// 0xE0: extension-specific error, first.
    ExtensionFirst = 0xE0, "CTAP2_ERR_EXTENSION_FIRST";
    /// 0xEF: extension-specific error, last.
    ExtensionLast = 0xEF, "CTAP2_ERR_EXTENSION_LAST";
    /// 0xF0: vendor-specific error, first.
    VendorFirst = 0xF0, "CTAP2_ERR_VENDOR_FIRST";
    /// 0xFF: vendor-specific error, last.
    VendorLast = 0xFF, "CTAP2_ERR_VENDOR_LAST";
}

impl std::fmt::Display for CtapStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.code())
    }
}

/// Errors of the CTAP2 wire layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ctap2Error {
    /// The authenticator answered with a non-zero status.
    #[error("authenticator returned {0}")]
    Status(CtapStatus),
    /// The bytes are not valid CBOR.
    #[error("invalid CBOR: {0}")]
    Cbor(#[from] CborError),
    /// A field is missing or has the wrong type.
    #[error("{0}")]
    Field(#[from] FieldError),
    /// The structure is wrong in a way a field error does not describe.
    #[error("malformed CTAP2 message: {0}")]
    Malformed(&'static str),
    /// A response had no status byte.
    #[error("empty CTAP2 response")]
    EmptyResponse,
}

impl Ctap2Error {
    /// A stable snake_case identifier of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Ctap2Error::Status(_) => "ctap_status",
            Ctap2Error::Cbor(_) => "invalid_cbor",
            Ctap2Error::Field(FieldError::Missing(_)) => "missing_parameter",
            Ctap2Error::Field(FieldError::Invalid(_)) => "unexpected_type",
            Ctap2Error::Malformed(_) => "malformed",
            Ctap2Error::EmptyResponse => "empty_response",
        }
    }

    /// The CTAP status an authenticator answers for this decoding error.
    pub fn status(&self) -> CtapStatus {
        match self {
            Ctap2Error::Status(s) => *s,
            Ctap2Error::Cbor(_) => CtapStatus::InvalidCbor,
            Ctap2Error::Field(FieldError::Missing(_)) => CtapStatus::MissingParameter,
            Ctap2Error::Field(FieldError::Invalid(_)) => CtapStatus::CborUnexpectedType,
            Ctap2Error::Malformed(_) => CtapStatus::InvalidParameter,
            Ctap2Error::EmptyResponse => CtapStatus::InvalidLength,
        }
    }
}

/// A CTAP2 message body: a CBOR map with a typed view.
pub trait CtapCodec: Sized {
    /// The message as a CBOR value.
    fn to_value(&self) -> Value;
    /// Read the message from a CBOR value (never panics).
    fn from_value(v: &Value) -> Result<Self, Ctap2Error>;
    /// Canonical CBOR bytes.
    fn to_cbor(&self) -> Vec<u8> {
        self.to_value().to_vec()
    }
    /// Decode from CBOR bytes (never panics).
    fn from_cbor(b: &[u8]) -> Result<Self, Ctap2Error> {
        Self::from_value(&cbor::decode(b)?)
    }
}

/// A CTAP2 request: a body with a command byte.
pub trait CtapRequest: CtapCodec {
    /// The command this request is sent with.
    const COMMAND: Command;
    /// Command byte followed by the CBOR body (no body if the map is empty).
    fn to_request_bytes(&self) -> Vec<u8> {
        let v = self.to_value();
        let mut out = vec![Self::COMMAND.byte()];
        if !matches!(&v, Value::Map(m) if m.is_empty()) {
            out.extend_from_slice(&v.to_vec());
        }
        out
    }
}

/// Split a raw CTAP2 response (status byte + optional CBOR) into its body.
/// A non-zero status is [`Ctap2Error::Status`]; an empty body is `None`.
pub fn parse_response(resp: &[u8]) -> Result<Option<Value>, Ctap2Error> {
    let (&status, body) = resp.split_first().ok_or(Ctap2Error::EmptyResponse)?;
    if status != 0 {
        return Err(Ctap2Error::Status(CtapStatus::from_code(status)));
    }
    if body.is_empty() { Ok(None) } else { Ok(Some(cbor::decode(body)?)) }
}

/// Decode a typed response from a raw CTAP2 response (status + CBOR).
/// An empty success body decodes as an empty map.
pub fn decode_response<T: CtapCodec>(resp: &[u8]) -> Result<T, Ctap2Error> {
    let v = parse_response(resp)?.unwrap_or(Value::Map(Vec::new()));
    T::from_value(&v)
}

/// Encode a successful response: status 0x00 followed by the body, if any.
pub fn encode_response(body: Option<&Value>) -> Vec<u8> {
    let mut out = vec![0u8];
    if let Some(v) = body {
        out.extend_from_slice(&v.to_vec());
    }
    out
}

/// Helpers shared by the command modules.
pub(crate) mod util {
    use super::Ctap2Error;
    use crate::proto::cbor::{FieldError, Value};

    /// The map entries of a message, or an error.
    pub fn map(v: &Value) -> Result<&[(Value, Value)], Ctap2Error> {
        v.as_map().ok_or(Ctap2Error::Field(FieldError::Invalid("message is not a map")))
    }
    /// Optional unsigned integer fitting in `u64`.
    pub fn opt_u64(v: &Value, key: i64, name: &'static str) -> Result<Option<u64>, Ctap2Error> {
        match v.get_int(key) {
            None => Ok(None),
            Some(x) => x.as_u64().map(Some).ok_or(Ctap2Error::Field(FieldError::Invalid(name))),
        }
    }
    /// Optional unsigned integer fitting in `u8`.
    pub fn opt_u8(v: &Value, key: i64, name: &'static str) -> Result<Option<u8>, Ctap2Error> {
        match opt_u64(v, key, name)? {
            None => Ok(None),
            Some(x) => u8::try_from(x).map(Some).map_err(|_| Ctap2Error::Field(FieldError::Invalid(name))),
        }
    }
    /// Optional array of text strings.
    pub fn opt_text_array(v: &Value, key: i64, name: &'static str) -> Result<Option<Vec<String>>, Ctap2Error> {
        match v.get_int(key) {
            None => Ok(None),
            Some(x) => {
                let a = x.as_array().ok_or(Ctap2Error::Field(FieldError::Invalid(name)))?;
                a.iter()
                    .map(|e| e.as_text().map(str::to_owned).ok_or(Ctap2Error::Field(FieldError::Invalid(name))))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
        }
    }
    /// Optional array of items decoded by `f`.
    pub fn opt_array<T>(
        v: &Value,
        key: i64,
        name: &'static str,
        f: impl Fn(&Value) -> Result<T, Ctap2Error>,
    ) -> Result<Option<Vec<T>>, Ctap2Error> {
        match v.get_int(key) {
            None => Ok(None),
            Some(x) => {
                let a = x.as_array().ok_or(Ctap2Error::Field(FieldError::Invalid(name)))?;
                a.iter().map(f).collect::<Result<Vec<_>, _>>().map(Some)
            }
        }
    }
    /// Optional map at integer key (must be a map).
    pub fn opt_map<'a>(v: &'a Value, key: i64, name: &'static str) -> Result<Option<&'a Value>, Ctap2Error> {
        match v.get_int(key) {
            None => Ok(None),
            Some(x) if x.as_map().is_some() => Ok(Some(x)),
            Some(_) => Err(Ctap2Error::Field(FieldError::Invalid(name))),
        }
    }
    /// Text strings in an array value.
    pub fn text_array(a: &[String]) -> Value {
        Value::Array(a.iter().map(|s| Value::Text(s.clone())).collect())
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Proptest strategies shared by the command modules' tests.
    use super::entities::*;
    use proptest::prelude::*;

    /// Hex to bytes (test input only).
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The shared CTAP vectors file.
    pub fn vectors() -> serde_json::Value {
        let path = std::env::var("HWKEY_CTAP_VECTORS")
            .unwrap_or_else(|_| "/work/shared/vectors/ctap-examples.json".to_owned());
        serde_json::from_str(&std::fs::read_to_string(path).expect("ctap-examples.json")).unwrap()
    }

    /// The first case of ctap-examples.json matching `f`.
    pub fn vector_case(f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        vectors()["cases"].as_array().unwrap().iter().find(|c| f(c)).expect("vector case").clone()
    }

    pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }
    pub fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 .é-]{0,12}"
    }
    pub fn descriptor() -> impl Strategy<Value = PublicKeyCredentialDescriptor> {
        (bytes(40), proptest::option::of(proptest::collection::vec(text(), 0..3)))
            .prop_map(|(id, transports)| PublicKeyCredentialDescriptor { type_: "public-key".into(), id, transports })
    }
    pub fn user() -> impl Strategy<Value = PublicKeyCredentialUserEntity> {
        (bytes(64), proptest::option::of(text()), proptest::option::of(text()))
            .prop_map(|(id, name, display_name)| PublicKeyCredentialUserEntity { id, name, display_name })
    }
    pub fn rp() -> impl Strategy<Value = PublicKeyCredentialRpEntity> {
        (text(), proptest::option::of(text())).prop_map(|(id, name)| PublicKeyCredentialRpEntity { id, name })
    }
    pub fn cose_key() -> impl Strategy<Value = crate::proto::cose::CoseKey> {
        (proptest::array::uniform32(any::<u8>()), proptest::array::uniform32(any::<u8>())).prop_map(|(x, y)| {
            crate::proto::cose::CoseKey::Ec2 {
                alg: Some(crate::proto::cose::CoseAlgorithm::ECDH_ES_HKDF_256),
                crv: 1,
                x: x.to_vec(),
                y: y.to_vec(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip() {
        for c in 0..=255u8 {
            assert_eq!(CtapStatus::from_code(c).code(), c);
        }
        assert_eq!(CtapStatus::from_code(0x31), CtapStatus::PinInvalid);
        assert_eq!(CtapStatus::PinInvalid.name(), "CTAP2_ERR_PIN_INVALID");
        assert!(matches!(CtapStatus::from_code(0x13), CtapStatus::Unknown(0x13)));
    }

    #[test]
    fn commands_round_trip() {
        for b in 0..=255u8 {
            if let Some(c) = Command::from_byte(b) {
                assert_eq!(c.byte(), b);
            }
        }
    }

    #[test]
    fn response_parsing() {
        assert_eq!(parse_response(&[]), Err(Ctap2Error::EmptyResponse));
        assert_eq!(parse_response(&[0x31]), Err(Ctap2Error::Status(CtapStatus::PinInvalid)));
        assert_eq!(parse_response(&[0x00]), Ok(None));
        assert!(parse_response(&[0x00, 0xa1]).is_err());
    }
}

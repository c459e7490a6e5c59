//! Every CTAP2 message type's codec (src/proto/ctap2/): the client's parsing
//! of every response (`decode_response`, status byte + CBOR, exactly as
//! `client::Device::call` decodes), and the request decoders the software
//! authenticator uses. Input: byte 0 picks the type, the rest is the message.
//! Checked: no panic; a decoded message re-encodes to CBOR that decodes to
//! the same message (decode -> encode -> decode stable).
#![no_main]
use hwkey::proto::ctap2::client_pin::{ClientPinRequest, ClientPinResponse};
use hwkey::proto::ctap2::config::ConfigRequest;
use hwkey::proto::ctap2::credential_management::{CredentialManagementRequest, CredentialManagementResponse};
use hwkey::proto::ctap2::get_assertion::{GetAssertionRequest, GetAssertionResponse};
use hwkey::proto::ctap2::get_info::GetInfoResponse;
use hwkey::proto::ctap2::large_blobs::{LargeBlobsRequest, LargeBlobsResponse};
use hwkey::proto::ctap2::make_credential::{MakeCredentialRequest, MakeCredentialResponse};
use hwkey::proto::ctap2::{CtapCodec, decode_response};
use libfuzzer_sys::fuzz_target;
use std::fmt::Debug;

/// A response as the client decodes it (status byte first).
fn response<T: CtapCodec + PartialEq + Debug>(resp: &[u8]) {
    if let Ok(m) = decode_response::<T>(resp) {
        roundtrip(&m);
    }
}

/// A request body as the authenticator decodes it (CBOR only).
fn request<T: CtapCodec + PartialEq + Debug>(body: &[u8]) {
    if let Ok(m) = T::from_cbor(body) {
        roundtrip(&m);
    }
}

/// Opaque CBOR inside a message (extension maps) keeps its map order while
/// encoding is canonical, so the encodings are compared, not the values.
fn roundtrip<T: CtapCodec + PartialEq + Debug>(m: &T) {
    let b = m.to_cbor();
    match T::from_cbor(&b) {
        Ok(m2) => assert_eq!(m2.to_cbor(), b, "decode -> encode -> decode -> encode is not stable: {m:?}"),
        Err(e) => panic!("re-encoded message does not decode: {e}: {m:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else { return };
    hwkey_fuzz::timed(|| match sel % 14 {
        0 => response::<GetInfoResponse>(msg),
        1 => response::<MakeCredentialResponse>(msg),
        2 => response::<GetAssertionResponse>(msg),
        3 => response::<ClientPinResponse>(msg),
        4 => response::<CredentialManagementResponse>(msg),
        5 => response::<LargeBlobsResponse>(msg),
        6 => request::<MakeCredentialRequest>(msg),
        7 => request::<GetAssertionRequest>(msg),
        8 => request::<ClientPinRequest>(msg),
        9 => request::<CredentialManagementRequest>(msg),
        10 => request::<ConfigRequest>(msg),
        11 => request::<LargeBlobsRequest>(msg),
        // Any response type from the same bytes, as a confused client might.
        _ => {
            response::<GetInfoResponse>(msg);
            response::<MakeCredentialResponse>(msg);
            response::<GetAssertionResponse>(msg);
            response::<ClientPinResponse>(msg);
            response::<CredentialManagementResponse>(msg);
            response::<LargeBlobsResponse>(msg);
        }
    });
});

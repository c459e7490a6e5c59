//! authenticatorLargeBlobs (0x0C, CTAP 2.1 §6.10).

use super::util::{map, opt_u64};
use super::{Command, Ctap2Error, CtapCodec, CtapRequest};
use crate::proto::cbor::{MapExt, Value};

/// An authenticatorLargeBlobs request: either `get` or `set`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LargeBlobsRequest {
    /// 0x01 get: number of bytes to read.
    pub get: Option<u64>,
    /// 0x02 set: a fragment to write.
    pub set: Option<Vec<u8>>,
    /// 0x03 offset.
    pub offset: u64,
    /// 0x04 length: total length of the serialized array (first `set` only).
    pub length: Option<u64>,
    /// 0x05 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x06 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
}

impl LargeBlobsRequest {
    /// The message `pinUvAuthParam` authenticates for a `set`:
    /// 32 × 0xff || 0x0c 0x00 || uint32LE(offset) || SHA-256(set) (the hash is given).
    pub fn auth_message(offset: u64, set_sha256: &[u8; 32]) -> Vec<u8> {
        let mut m = vec![0xffu8; 32];
        m.extend_from_slice(&[0x0c, 0x00]);
        m.extend_from_slice(&(offset.min(u32::MAX as u64) as u32).to_le_bytes());
        m.extend_from_slice(set_sha256);
        m
    }
}

impl CtapCodec for LargeBlobsRequest {
    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(g) = self.get {
            m.push((Value::from(1), Value::from(g)));
        }
        if let Some(s) = &self.set {
            m.push((Value::from(2), Value::Bytes(s.clone())));
        }
        m.push((Value::from(3), Value::from(self.offset)));
        if let Some(l) = self.length {
            m.push((Value::from(4), Value::from(l)));
        }
        if let Some(p) = &self.pin_uv_auth_param {
            m.push((Value::from(5), Value::Bytes(p.clone())));
        }
        if let Some(p) = self.pin_uv_auth_protocol {
            m.push((Value::from(6), Value::from(p)));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self {
            get: opt_u64(v, 1, "get")?,
            set: v.opt_bytes(2, "set")?.map(<[u8]>::to_vec),
            offset: opt_u64(v, 3, "offset")?.ok_or(crate::proto::cbor::FieldError::Missing("offset"))?,
            length: opt_u64(v, 4, "length")?,
            pin_uv_auth_param: v.opt_bytes(5, "pinUvAuthParam")?.map(<[u8]>::to_vec),
            pin_uv_auth_protocol: opt_u64(v, 6, "pinUvAuthProtocol")?,
        })
    }
}

impl CtapRequest for LargeBlobsRequest {
    const COMMAND: Command = Command::LargeBlobs;
}

/// An authenticatorLargeBlobs response: the fragment read (`get` only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LargeBlobsResponse {
    /// 0x01 config: the bytes read.
    pub config: Option<Vec<u8>>,
}

impl CtapCodec for LargeBlobsResponse {
    fn to_value(&self) -> Value {
        match &self.config {
            Some(c) => Value::Map(vec![(Value::from(1), Value::Bytes(c.clone()))]),
            None => Value::Map(Vec::new()),
        }
    }
    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self { config: v.opt_bytes(1, "config")?.map(<[u8]>::to_vec) })
    }
}

/// The serialized large-blob array of a fresh authenticator: an empty CBOR
/// array followed by the first 16 bytes of its SHA-256.
pub const EMPTY_LARGE_BLOB_ARRAY: [u8; 17] =
    [0x80, 0x76, 0xbe, 0x8b, 0x52, 0x8d, 0x00, 0x75, 0xf7, 0xaa, 0xe9, 0x8d, 0x6f, 0xa5, 0x7a, 0x6d, 0x3c];

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(get in proptest::option::of(any::<u64>()), set in proptest::option::of(bytes(100)), offset in any::<u64>(),
            length in proptest::option::of(any::<u64>()), p in proptest::option::of(bytes(33)), proto in proptest::option::of(1u64..3)) {
            let r = LargeBlobsRequest { get, set: set.clone(), offset, length, pin_uv_auth_param: p, pin_uv_auth_protocol: proto };
            prop_assert_eq!(LargeBlobsRequest::from_cbor(&r.to_cbor()).unwrap(), r);
            let resp = LargeBlobsResponse { config: set };
            prop_assert_eq!(LargeBlobsResponse::from_cbor(&resp.to_cbor()).unwrap(), resp);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes(300)) {
            let _ = LargeBlobsRequest::from_cbor(&b);
            let _ = LargeBlobsResponse::from_cbor(&b);
        }
    }

    #[test]
    fn empty_array_hash() {
        let h = crate::crypto::default_provider().sha256(&[&[0x80]]);
        assert_eq!(&EMPTY_LARGE_BLOB_ARRAY[1..], &h[..16]);
    }
}

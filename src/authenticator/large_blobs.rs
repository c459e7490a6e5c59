//! authenticatorLargeBlobs: the serialized large-blob array, read and
//! written in fragments; a write commits only when complete and its
//! trailing hash matches.

use super::state::Bytes;
use super::{Authenticator, MAX_MSG_SIZE, MAX_SERIALIZED_LARGE_BLOB_ARRAY};
use crate::crypto::ct_eq;
use crate::proto::cbor::Value;
use crate::proto::ctap2::client_pin::permissions;
use crate::proto::ctap2::large_blobs::{LargeBlobsRequest, LargeBlobsResponse};
use crate::proto::ctap2::{CtapCodec, CtapStatus};

/// Largest fragment: maxMsgSize - 64.
const MAX_FRAGMENT: usize = MAX_MSG_SIZE - 64;

/// A write in progress.
pub(crate) struct PendingWrite {
    expected_length: usize,
    buffer: Vec<u8>,
}

pub(crate) fn large_blobs(a: &mut Authenticator, v: &Value) -> Result<Option<Value>, CtapStatus> {
    let req = LargeBlobsRequest::from_value(v).map_err(|e| e.status())?;
    let offset = usize::try_from(req.offset).map_err(|_| CtapStatus::InvalidParameter)?;
    match (req.get, &req.set) {
        (Some(get), None) => {
            if req.length.is_some() {
                return Err(CtapStatus::InvalidParameter);
            }
            let get = usize::try_from(get).map_err(|_| CtapStatus::InvalidLength)?;
            if get > MAX_FRAGMENT {
                return Err(CtapStatus::InvalidLength);
            }
            let array = &a.state.large_blob_array.0;
            if offset > array.len() {
                return Err(CtapStatus::InvalidParameter);
            }
            let end = offset.saturating_add(get).min(array.len());
            let resp = LargeBlobsResponse { config: Some(array[offset..end].to_vec()) };
            Ok(Some(resp.to_value()))
        }
        (None, Some(set)) => {
            if set.len() > MAX_FRAGMENT {
                return Err(CtapStatus::InvalidLength);
            }
            if offset == 0 {
                let length = req.length.ok_or(CtapStatus::InvalidParameter)?;
                let length = usize::try_from(length).map_err(|_| CtapStatus::LargeBlobStorageFull)?;
                if length > MAX_SERIALIZED_LARGE_BLOB_ARRAY {
                    return Err(CtapStatus::LargeBlobStorageFull);
                }
                if length < 17 {
                    return Err(CtapStatus::InvalidParameter);
                }
                a.volatile.large_blob_write = Some(PendingWrite { expected_length: length, buffer: Vec::new() });
            } else if req.length.is_some() {
                return Err(CtapStatus::InvalidParameter);
            }
            let next_offset =
                a.volatile.large_blob_write.as_ref().map(|w| w.buffer.len()).ok_or(CtapStatus::InvalidSeq)?;
            if offset != next_offset {
                a.volatile.large_blob_write = None;
                return Err(CtapStatus::InvalidSeq);
            }
            if a.pin_is_set() || a.state.always_uv {
                let param = req.pin_uv_auth_param.as_deref().ok_or(CtapStatus::PuatRequired)?;
                let hash = a.provider.sha256(&[set]);
                let msg = LargeBlobsRequest::auth_message(req.offset, &hash);
                a.check_token(req.pin_uv_auth_protocol, param, &msg, permissions::LARGE_BLOB_WRITE, None)?;
            }
            let w = a.volatile.large_blob_write.as_mut().ok_or(CtapStatus::InvalidSeq)?;
            if offset.saturating_add(set.len()) > w.expected_length {
                a.volatile.large_blob_write = None;
                return Err(CtapStatus::InvalidParameter);
            }
            w.buffer.extend_from_slice(set);
            if w.buffer.len() == w.expected_length {
                let w = a.volatile.large_blob_write.take().ok_or(CtapStatus::Other)?;
                let (data, tag) = w.buffer.split_at(w.buffer.len() - 16);
                let hash = a.provider.sha256(&[data]);
                if !ct_eq(&hash[..16], tag) {
                    return Err(CtapStatus::IntegrityFailure);
                }
                let backup = a.state.clone();
                a.state.large_blob_array = Bytes(w.buffer);
                a.persist_or_restore(backup)?;
            }
            Ok(None)
        }
        _ => Err(CtapStatus::InvalidParameter),
    }
}

//! largeBlob (WebAuthn L3 §10.1.5 on CTAP 2.1 §6.10): the authenticator
//! keeps one serialized large-blob array (a CBOR array followed by the first
//! 16 bytes of its SHA-256); each entry is DEFLATE-compressed data sealed
//! with AES-256-GCM under a credential's largeBlobKey, with associated data
//! "blob" || origSize (64-bit little-endian). The array is read and written
//! in fragments of maxMsgSize − 64 bytes; a corrupt array reads as empty.

use super::pin::PinUvAuthToken;
use super::{ClientError, Device, Op};
use crate::crypto::{CryptoProvider, ct_eq};
use crate::proto::cbor::{self, Value};
use crate::proto::ctap2::large_blobs::LargeBlobsRequest;

/// The largest decompressed blob hwkey accepts (the spec has no limit; the
/// array itself is bounded by the key's maxSerializedLargeBlobArray).
pub const MAX_BLOB: usize = 1 << 20;

fn aad(orig_size: u64) -> Vec<u8> {
    let mut a = b"blob".to_vec();
    a.extend_from_slice(&orig_size.to_le_bytes());
    a
}

/// Decrypt one array entry with `key`; `None` when it is not this key's entry or malformed.
pub fn open_entry(provider: &dyn CryptoProvider, key: &[u8], entry: &Value) -> Option<Vec<u8>> {
    let ct = entry.get_int(1)?.as_bytes()?;
    let nonce: [u8; 12] = entry.get_int(2)?.as_bytes()?.try_into().ok()?;
    let orig = entry.get_int(3)?.as_u64()?;
    if orig as usize > MAX_BLOB {
        return None;
    }
    let compressed = provider.aes256_gcm_open(key, &nonce, &aad(orig), ct).ok()?;
    let data = miniz_oxide::inflate::decompress_to_vec_with_limit(&compressed, orig as usize).ok()?;
    (data.len() as u64 == orig).then_some(data)
}

/// Seal `data` into an array entry under `key`.
pub fn seal_entry(provider: &dyn CryptoProvider, key: &[u8], data: &[u8]) -> Result<Value, ClientError> {
    let compressed = miniz_oxide::deflate::compress_to_vec(data, 6);
    let mut nonce = [0u8; 12];
    provider.fill_random(&mut nonce).map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
    let ct = provider
        .aes256_gcm_seal(key, &nonce, &aad(data.len() as u64), &compressed)
        .map_err(|e| ClientError::InvalidRequest(format!("largeBlob key: {e}")))?;
    Ok(Value::Map(vec![
        (Value::from(1), Value::Bytes(ct)),
        (Value::from(2), Value::Bytes(nonce.to_vec())),
        (Value::from(3), Value::from(data.len() as u64)),
    ]))
}

impl Device {
    fn large_blob_fragment(&self) -> usize {
        let max = self.info().and_then(|i| i.max_msg_size).unwrap_or(super::ctap2::DEFAULT_MAX_MSG_SIZE);
        (max.clamp(1024, 7609) - 64) as usize
    }

    /// The entries of the large-blob array (empty when the stored array fails its check).
    pub fn read_large_blob_array(&mut self, op: &Op) -> Result<Vec<Value>, ClientError> {
        let frag = self.large_blob_fragment();
        let limit = self.info().and_then(|i| i.max_serialized_large_blob_array).unwrap_or(1024).min(1 << 24) as usize;
        let mut data = Vec::new();
        loop {
            let req = LargeBlobsRequest { get: Some(frag as u64), offset: data.len() as u64, ..Default::default() };
            let chunk = self.large_blobs(&req, op)?.config.unwrap_or_default();
            if chunk.len() > frag {
                return Err(ClientError::Malformed("large-blob fragment longer than asked".into()));
            }
            data.extend_from_slice(&chunk);
            if data.len() > limit {
                return Err(ClientError::Malformed("large-blob array longer than the key's maximum".into()));
            }
            if chunk.len() < frag {
                break;
            }
        }
        if data.len() < 17 {
            return Ok(Vec::new());
        }
        let (array, check) = data.split_at(data.len() - 16);
        let h = self.provider().sha256(&[array]);
        if !ct_eq(&h[..16], check) {
            return Ok(Vec::new());
        }
        match cbor::decode(array) {
            Ok(Value::Array(items)) => Ok(items.into_iter().filter(|v| v.as_map().is_some()).collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// Replace the large-blob array. `token` needs the largeBlobWrite
    /// permission when the key is protected by a PIN or UV.
    pub fn write_large_blob_array(
        &mut self,
        entries: Vec<Value>,
        token: Option<&PinUvAuthToken>,
        op: &Op,
    ) -> Result<(), ClientError> {
        let mut data = Value::Array(entries).to_vec();
        let h = self.provider().sha256(&[&data]);
        data.extend_from_slice(&h[..16]);
        if let Some(max) = self.info().and_then(|i| i.max_serialized_large_blob_array)
            && data.len() as u64 > max
        {
            return Err(ClientError::Status(crate::proto::ctap2::CtapStatus::LargeBlobStorageFull));
        }
        let frag = self.large_blob_fragment();
        let total = data.len() as u64;
        for (i, chunk) in data.chunks(frag).enumerate() {
            let offset = (i * frag) as u64;
            let (param, proto) = match token {
                Some(t) => {
                    let digest = self.provider().sha256(&[chunk]);
                    (
                        Some(t.authenticate(&LargeBlobsRequest::auth_message(offset, &digest))),
                        Some(t.protocol().number() as u64),
                    )
                }
                None => (None, None),
            };
            let req = LargeBlobsRequest {
                get: None,
                set: Some(chunk.to_vec()),
                offset,
                length: (offset == 0).then_some(total),
                pin_uv_auth_param: param,
                pin_uv_auth_protocol: proto,
            };
            self.large_blobs(&req, op)?;
        }
        Ok(())
    }

    /// Read the blob stored under `key` (a credential's largeBlobKey).
    pub fn read_large_blob(&mut self, key: &[u8], op: &Op) -> Result<Option<Vec<u8>>, ClientError> {
        let provider = self.provider();
        Ok(self.read_large_blob_array(op)?.iter().find_map(|e| open_entry(provider, key, e)))
    }

    /// Store `blob` under `key`, replacing what `key` stored before.
    pub fn write_large_blob(
        &mut self,
        key: &[u8],
        blob: &[u8],
        token: Option<&PinUvAuthToken>,
        op: &Op,
    ) -> Result<(), ClientError> {
        let provider = self.provider();
        let mut entries: Vec<Value> =
            self.read_large_blob_array(op)?.into_iter().filter(|e| open_entry(provider, key, e).is_none()).collect();
        entries.push(seal_entry(provider, key, blob)?);
        self.write_large_blob_array(entries, token, op)
    }
}

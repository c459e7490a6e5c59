//! authenticatorSelection (0x0B, CTAP 2.1 §6.9): "touch this one".

use super::util::map;
use super::{Command, Ctap2Error, CtapCodec, CtapRequest};
use crate::proto::cbor::Value;

/// The authenticatorSelection request (no parameters; success has no body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelectionRequest;

impl CtapCodec for SelectionRequest {
    fn to_value(&self) -> Value {
        Value::Map(Vec::new())
    }
    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self)
    }
}

impl CtapRequest for SelectionRequest {
    const COMMAND: Command = Command::Selection;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(SelectionRequest.to_request_bytes(), vec![0x0b]);
        assert_eq!(SelectionRequest::from_cbor(&SelectionRequest.to_cbor()), Ok(SelectionRequest));
        assert!(SelectionRequest::from_cbor(&[0x01]).is_err());
    }
}

//! authenticatorReset (0x07, CTAP 2.1 §6.6): erase every credential and the
//! PIN. Authenticators accept it only shortly after power-up, with user presence.

use super::util::map;
use super::{Command, Ctap2Error, CtapCodec, CtapRequest};
use crate::proto::cbor::Value;

/// The authenticatorReset request (no parameters; success has no body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResetRequest;

impl CtapCodec for ResetRequest {
    fn to_value(&self) -> Value {
        Value::Map(Vec::new())
    }
    fn from_value(v: &Value) -> Result<Self, Ctap2Error> {
        map(v)?;
        Ok(Self)
    }
}

impl CtapRequest for ResetRequest {
    const COMMAND: Command = Command::Reset;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(ResetRequest.to_request_bytes(), vec![0x07]);
        assert_eq!(ResetRequest::from_cbor(&[0xa0]), Ok(ResetRequest));
    }
}

//! The software authenticator behind CTAPHID (feature `virtual`): the
//! [`Handler`] implementation that lets a [`crate::authenticator::Authenticator`]
//! sit behind a [`super::ctaphid::DeviceChannel`] (in memory, over UDP).
//! Pending user-presence waits become KEEPALIVE(UPNEEDED); CTAPHID CANCEL
//! cancels the wait.

use super::ctaphid::{Handler, KeepaliveStatus, MessageKind, Outcome};
use crate::authenticator::{Authenticator, Poll};
use std::time::Instant;

fn outcome(p: Poll) -> Outcome {
    match p {
        Poll::Ready(r) => Outcome::Done(r),
        Poll::Pending => Outcome::Pending(KeepaliveStatus::UpNeeded),
    }
}

impl Handler for Authenticator {
    fn start(&mut self, kind: MessageKind, request: &[u8], _: Instant) -> Outcome {
        match kind {
            MessageKind::Cbor => outcome(self.start_cbor(request)),
            MessageKind::Msg => Outcome::Done(self.handle_u2f(request)),
        }
    }

    fn poll(&mut self, _: Instant) -> Outcome {
        outcome(Authenticator::poll(self))
    }

    fn cancel(&mut self) {
        let _ = Authenticator::cancel(self);
    }
}

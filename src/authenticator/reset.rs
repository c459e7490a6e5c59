//! authenticatorReset (within the reset window after power-up, with user
//! presence) and authenticatorSelection (user presence only).

use super::{Authenticator, Reply, Volatile};
use crate::proto::ctap2::CtapStatus;

pub(crate) fn reset(a: &mut Authenticator) -> Result<Reply, CtapStatus> {
    if a.volatile.power_up.elapsed() > a.config.reset_window {
        return Err(CtapStatus::NotAllowed);
    }
    let operation = if a.config.long_touch_for_reset { "resetLongTouch" } else { "reset" };
    Ok(Reply::up(operation, None, None, |a, outcome| {
        outcome.require()?;
        let backup = a.state.clone();
        a.state.reset(a.provider).map_err(|_| CtapStatus::Other)?;
        a.persist_or_restore(backup)?;
        let power_up = a.volatile.power_up;
        a.volatile = Volatile::new(a.provider).map_err(|_| CtapStatus::Other)?;
        a.volatile.power_up = power_up;
        Ok(None)
    }))
}

pub(crate) fn selection() -> Reply {
    Reply::up("selection", None, None, |_, outcome| {
        outcome.require()?;
        Ok(None)
    })
}

//! CTAPHID reassembly on the host side (src/transport/ctaphid.rs
//! `CtapHidDevice`) and the client's CTAP2 calls on top of it
//! (src/client/). The fuzzer plays a hostile device. The broadcast INIT is
//! answered correctly (nonce echoed, channel 0x01020304, capabilities from
//! byte 1), so the fuzzer gets past channel allocation; everything after
//! that comes from the input. Byte 0 chooses how: even, the rest is raw
//! 64-byte reports; odd, the rest is two-byte-length-prefixed response
//! messages, fragmented correctly on the channel as CBOR responses (so the
//! fuzzer reaches the client's CTAP2 response parsing). The host then
//! pings, sends CBOR and MSG, and opens a client `Device` (getInfo) and
//! makes the client's typed calls.
//! Checked: no panic, no hang (an exhausted script is a disconnected
//! device, so every call returns), a ping reply is only accepted when it
//! echoes the data, and a reassembled message has the announced length.
#![no_main]
use hwkey::client::{Device, Op};
use hwkey::transport::ctaphid::{BROADCAST_CID, CtapHidDevice, Packet, cmd, fragment};
use hwkey::transport::{REPORT_LEN, Report, ReportTransport, TransportError};
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const CID: u32 = 0x0102_0304;

struct Hostile {
    caps: u8,
    inbox: VecDeque<Report>,
    init_reply: Option<Report>,
}

impl ReportTransport for Hostile {
    fn send_report(&mut self, report: &Report) -> Result<(), TransportError> {
        if let Packet::Init { cid: BROADCAST_CID, cmd: cmd::INIT, data, .. } = Packet::parse(report) {
            let mut payload = data[..8].to_vec();
            payload.extend_from_slice(&CID.to_be_bytes());
            payload.extend_from_slice(&[2, 1, 0, 0, self.caps]);
            self.init_reply = fragment(BROADCAST_CID, cmd::INIT, &payload).map(|r| r[0]);
        }
        Ok(())
    }
    fn recv_report(&mut self, _deadline: Instant) -> Result<Option<Report>, TransportError> {
        if let Some(r) = self.init_reply.take() {
            return Ok(Some(r));
        }
        self.inbox.pop_front().map(Some).ok_or(TransportError::Disconnected)
    }
}

fn op() -> Op {
    Op::timeout(Duration::from_secs(5))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Some((&caps, mut rest)) = rest.split_first() else { return };
    let mut inbox = VecDeque::new();
    if mode & 1 == 0 {
        for chunk in rest.chunks(REPORT_LEN) {
            let mut r = [0u8; REPORT_LEN];
            r[..chunk.len()].copy_from_slice(chunk);
            inbox.push_back(r);
        }
    } else {
        while let Some(msg) = hwkey_fuzz::take_u16_chunk(&mut rest) {
            inbox.extend(fragment(CID, cmd::CBOR, msg).unwrap_or_default());
        }
    }
    hwkey_fuzz::timed(|| {
        let t = Hostile { caps, inbox: inbox.clone(), init_reply: None };
        if mode & 2 == 0 {
            let Ok(mut dev) = CtapHidDevice::open(t, Instant::now() + Duration::from_secs(5)) else { return };
            assert_eq!(dev.info().cid, CID);
            let ping = [0x5a; 100];
            if let Ok(echo) = dev.ping(&ping, &op()) {
                assert_eq!(echo, ping, "ping accepted a reply that is not the echo");
            }
            if let Ok(r) = dev.cbor(&[0x04], &op()) {
                assert!(r.len() <= hwkey::transport::ctaphid::MAX_MESSAGE_LEN);
            }
            let _ = dev.msg(&[0, 3, 0, 0, 0, 0, 0], &op());
            let _ = dev.wink(&op());
            let _ = dev.lock(1, &op());
        } else {
            let Ok(mut dev) = Device::open(t, &op()) else { return };
            let _ = dev.describe();
            let _ = dev.is_ctap21();
            let _ = dev.get_info(&op());
            let _ = dev.pin_retries(&op());
            let _ = dev.selection(&op());
            let _ = dev.get_next_assertion(&op());
            let _ = dev.read_large_blob_array(&op());
            // A PIN token (key agreement, ECDH, decryption of the token the
            // device sends), then the calls that use it.
            if let Ok(token) = dev.pin_token("123456", 0x04 | 0x10, Some("example.com"), &op()) {
                let _ = dev.list_credentials(&token, &op());
            }
            let _ = dev.wink(&op());
        }
    });
});

//! CTAPHID reassembly on the device side (src/transport/ctaphid.rs
//! `DeviceChannel`). Input: a script of steps; each step's first byte is an
//! opcode: `0x00..=0x7f` a 64-byte report follows, `0x80..=0xbf` advance the
//! clock by (low 6 bits x 10) ms and poll, `0xc0..` poll now. The handler
//! echoes CBOR requests after a few keepalive polls and answers MSG at once.
//! Checked: no panic; every report the device sends is well formed: an
//! initialization packet whose announced length fits, followed by
//! continuation packets of the same channel in sequence order, and never a
//! continuation without its initialization packet.
#![no_main]
use hwkey::transport::REPORT_LEN;
use hwkey::transport::ctaphid::{
    DeviceChannel, DeviceConfig, Handler, KeepaliveStatus, MAX_MESSAGE_LEN, MessageKind, Outcome, Packet,
};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::time::{Duration, Instant};

struct Echo {
    pending: Option<(Vec<u8>, u8)>,
}

impl Handler for Echo {
    fn start(&mut self, kind: MessageKind, request: &[u8], _now: Instant) -> Outcome {
        match kind {
            MessageKind::Msg => Outcome::Done(request.to_vec()),
            MessageKind::Cbor => {
                let polls = request.first().copied().unwrap_or(0) % 4;
                if polls == 0 {
                    return Outcome::Done(request.to_vec());
                }
                self.pending = Some((request.to_vec(), polls));
                Outcome::Pending(KeepaliveStatus::UpNeeded)
            }
        }
    }
    fn poll(&mut self, _now: Instant) -> Outcome {
        match self.pending.take() {
            Some((r, 1)) => Outcome::Done(r),
            Some((r, n)) => {
                self.pending = Some((r, n - 1));
                Outcome::Pending(KeepaliveStatus::Processing)
            }
            None => Outcome::Done(vec![0x7f]),
        }
    }
    fn cancel(&mut self) {
        self.pending = None;
    }
}

/// The host's view of the device's output: message reassembly per channel.
#[derive(Default)]
struct Checker {
    // cid -> (announced length, received, next sequence number)
    open: HashMap<u32, (usize, usize, u8)>,
}

impl Checker {
    fn check(&mut self, r: &[u8; REPORT_LEN]) {
        match Packet::parse(r) {
            Packet::Init { cid, len, .. } => {
                assert!(len <= MAX_MESSAGE_LEN, "device announced {len} bytes");
                assert!(!self.open.contains_key(&cid), "channel {cid:08x}: new message before the last one ended");
                let first = len.min(REPORT_LEN - 7);
                if first < len {
                    self.open.insert(cid, (len, first, 0));
                }
            }
            Packet::Cont { cid, seq, .. } => {
                let Some((len, got, next)) = self.open.get_mut(&cid) else {
                    panic!("channel {cid:08x}: continuation packet without an initialization packet");
                };
                assert_eq!(seq, *next, "channel {cid:08x}: sequence");
                *next += 1;
                *got = (*got + REPORT_LEN - 5).min(*len);
                if *got == *len {
                    self.open.remove(&cid);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    hwkey_fuzz::timed(|| {
        let mut dev = DeviceChannel::new(DeviceConfig::default());
        let mut h = Echo { pending: None };
        let mut checker = Checker::default();
        let start = Instant::now();
        let mut now = start;
        let mut rest = data;
        while let Some((&op, tail)) = rest.split_first() {
            rest = tail;
            match op {
                0x00..=0x7f => {
                    let mut r = [0u8; REPORT_LEN];
                    let n = rest.len().min(REPORT_LEN);
                    r[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    dev.receive(&r, now, &mut h);
                }
                0x80..=0xbf => {
                    now += Duration::from_millis(u64::from(op & 0x3f) * 10);
                    dev.poll(now, &mut h);
                }
                _ => dev.poll(now, &mut h),
            }
            while let Some(out) = dev.poll_output() {
                checker.check(&out);
            }
            if let Some(d) = dev.next_deadline() {
                assert!(d >= start, "a deadline in the past of the device's life");
            }
        }
    });
});

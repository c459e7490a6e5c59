//! CTAPHID conformance (CTAP 2.1 §11.2) of hwkey's device side, driven with
//! raw 64-byte reports, and of the host side against it.

use hwkey::transport::ctaphid::*;
use hwkey::transport::memory::{MemoryDevice, MemoryTransport};
use hwkey::transport::{CancelToken, Op, Progress, Report, ReportTransport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// CBOR requests whose first byte is 0x42 wait for a touch (until `touched`);
/// everything else is answered at once with status 0 and the request echoed.
struct TouchHandler {
    touched: Arc<AtomicBool>,
    cancelled: Arc<AtomicBool>,
    pending: bool,
}

impl TouchHandler {
    fn new() -> (Self, Arc<AtomicBool>, Arc<AtomicBool>) {
        let t = Arc::new(AtomicBool::new(false));
        let c = Arc::new(AtomicBool::new(false));
        (TouchHandler { touched: t.clone(), cancelled: c.clone(), pending: false }, t, c)
    }
}

impl Handler for TouchHandler {
    fn start(&mut self, _: MessageKind, req: &[u8], now: Instant) -> Outcome {
        if req.first() == Some(&0x42) {
            self.pending = true;
            return self.poll(now);
        }
        let mut r = vec![0u8];
        r.extend_from_slice(req);
        Outcome::Done(r)
    }
    fn poll(&mut self, _: Instant) -> Outcome {
        if self.touched.load(Ordering::SeqCst) {
            self.pending = false;
            Outcome::Done(vec![0x00])
        } else {
            Outcome::Pending(KeepaliveStatus::UpNeeded)
        }
    }
    fn cancel(&mut self) {
        self.pending = false;
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// A host speaking raw reports.
struct Raw(MemoryTransport);

impl Raw {
    fn send(&mut self, cid: u32, command: u8, payload: &[u8]) {
        for r in fragment(cid, command, payload).unwrap() {
            self.0.send_report(&r).unwrap();
        }
    }
    fn send_report(&mut self, r: &Report) {
        self.0.send_report(r).unwrap();
    }
    /// The next complete message on `cid` (keepalives included), reassembled.
    fn recv(&mut self, cid: u32) -> (u8, Vec<u8>) {
        let dl = deadline();
        loop {
            let r = self.0.recv_report(dl).unwrap().expect("device answered");
            if let Packet::Init { cid: c, cmd, len, data } = Packet::parse(&r) {
                if c != cid {
                    continue;
                }
                let mut msg = data[..len.min(INIT_DATA_LEN)].to_vec();
                let mut seq = 0;
                while msg.len() < len {
                    let r = self.0.recv_report(dl).unwrap().expect("continuation");
                    if let Packet::Cont { cid: c, seq: s, data } = Packet::parse(&r)
                        && c == cid
                    {
                        assert_eq!(s, seq);
                        seq += 1;
                        let n = (len - msg.len()).min(CONT_DATA_LEN);
                        msg.extend_from_slice(&data[..n]);
                    }
                }
                return (cmd, msg);
            }
        }
    }
    fn recv_silence(&mut self, cid: u32, wait: Duration) -> bool {
        let dl = Instant::now() + wait;
        while let Some(r) = self.0.recv_report(dl).unwrap() {
            if Packet::parse(&r).cid() == cid {
                return false;
            }
        }
        true
    }
    fn init(&mut self) -> u32 {
        let nonce = [9, 8, 7, 6, 5, 4, 3, 2];
        self.send(BROADCAST_CID, cmd::INIT, &nonce);
        loop {
            let (c, p) = self.recv(BROADCAST_CID);
            if c == cmd::INIT && p[..8] == nonce {
                return u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
            }
        }
    }
}

fn device() -> (MemoryDevice, Arc<AtomicBool>, Arc<AtomicBool>) {
    let (h, t, c) = TouchHandler::new();
    (MemoryDevice::spawn(h, DeviceConfig::default()), t, c)
}

#[test]
fn init_allocates_distinct_channels_and_echoes_nonce() {
    let (dev, _, _) = device();
    let mut raw = Raw(dev.connect());
    for nonce in [[1u8; 8], [0xa5; 8]] {
        raw.send(BROADCAST_CID, cmd::INIT, &nonce);
        let (c, p) = raw.recv(BROADCAST_CID);
        assert_eq!(c, cmd::INIT);
        assert_eq!(p.len(), 17);
        assert_eq!(p[..8], nonce);
        assert_eq!(p[12], PROTOCOL_VERSION);
        assert!(p[16] & capability::CBOR != 0);
    }
    let a = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    let b = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    let c = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    let ids = [a.info().cid, b.info().cid, c.info().cid];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert!(ids.iter().all(|&i| i != 0 && i != BROADCAST_CID));
}

#[test]
fn init_on_own_channel_resynchronizes() {
    let (dev, _, _) = device();
    let mut raw = Raw(dev.connect());
    let cid = raw.init();
    // Half a message, then INIT on the same channel: the message is abandoned.
    let rs = fragment(cid, cmd::PING, &[1; 100]).unwrap();
    raw.send_report(&rs[0]);
    raw.send(cid, cmd::INIT, &[3; 8]);
    let (c, p) = raw.recv(cid);
    assert_eq!(c, cmd::INIT);
    assert_eq!(p[..8], [3; 8]);
    assert_eq!(u32::from_be_bytes([p[8], p[9], p[10], p[11]]), cid);
    raw.send(cid, cmd::PING, &[5; 3]);
    assert_eq!(raw.recv(cid), (cmd::PING, vec![5; 3]));
}

#[test]
fn ping_echoes_boundary_sizes() {
    let (dev, _, _) = device();
    let mut host = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    for n in [0usize, 1, 57, 58, 59 + 57, 59 + 58, 1000, 7609] {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
        let echo = host.ping(&data, &Op::timeout(Duration::from_secs(5))).unwrap();
        assert_eq!(echo, data, "PING of {n} bytes");
    }
}

#[test]
fn message_of_7610_bytes_is_invalid_length() {
    let (dev, _, _) = device();
    let mut raw = Raw(dev.connect());
    let cid = raw.init();
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = 0x80 | cmd::PING;
    r[5..7].copy_from_slice(&7610u16.to_be_bytes());
    raw.send_report(&r);
    assert_eq!(raw.recv(cid), (cmd::ERROR, vec![HidErrorCode::InvalidLen.byte()]));
    // The host side refuses to build such a message at all.
    let mut host = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    assert!(matches!(host.ping(&[0; 7610], &Op::timeout(Duration::from_secs(1))), Err(HidError::RequestTooLong(7610))));
}

#[test]
fn continuation_out_of_order_is_invalid_seq() {
    let (dev, _, _) = device();
    let mut raw = Raw(dev.connect());
    let cid = raw.init();
    let rs = fragment(cid, cmd::PING, &[1; 200]).unwrap();
    assert_eq!(rs.len(), 4);
    raw.send_report(&rs[0]);
    raw.send_report(&rs[2]); // seq 1 before seq 0
    assert_eq!(raw.recv(cid), (cmd::ERROR, vec![HidErrorCode::InvalidSeq.byte()]));
    // The channel works again afterwards.
    raw.send(cid, cmd::PING, &[2; 10]);
    assert_eq!(raw.recv(cid), (cmd::PING, vec![2; 10]));
}

#[test]
fn second_channel_mid_transaction_is_channel_busy() {
    let (dev, _, _) = device();
    let mut raw = Raw(dev.connect());
    let a = raw.init();
    let b = raw.init();
    assert_ne!(a, b);
    let rs = fragment(a, cmd::PING, &[1; 100]).unwrap();
    raw.send_report(&rs[0]);
    raw.send(b, cmd::PING, &[2; 4]);
    assert_eq!(raw.recv(b), (cmd::ERROR, vec![HidErrorCode::ChannelBusy.byte()]));
    raw.send_report(&rs[1]);
    assert_eq!(raw.recv(a), (cmd::PING, vec![1; 100]));
    // And while a request waits for a touch.
    raw.send(a, cmd::CBOR, &[0x42]);
    assert_eq!(raw.recv(a), (cmd::KEEPALIVE, vec![2]));
    raw.send(b, cmd::PING, &[2; 4]);
    assert_eq!(raw.recv(b), (cmd::ERROR, vec![HidErrorCode::ChannelBusy.byte()]));
    raw.send(a, cmd::CANCEL, &[]);
}

#[test]
fn unfinished_message_times_out() {
    // Real time, through the memory device.
    let (dev, _, _) = device();
    let mut raw = Raw(dev.connect());
    let cid = raw.init();
    let rs = fragment(cid, cmd::PING, &[1; 100]).unwrap();
    let t0 = Instant::now();
    raw.send_report(&rs[0]);
    assert_eq!(raw.recv(cid), (cmd::ERROR, vec![HidErrorCode::MsgTimeout.byte()]));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(450), "timed out after {waited:?}");

    // Synthetic time, on the state machine itself.
    let (mut h, _, _) = TouchHandler::new();
    let mut d = DeviceChannel::new(DeviceConfig::default());
    let t = Instant::now();
    d.receive(&fragment(BROADCAST_CID, cmd::INIT, &[0; 8]).unwrap()[0], t, &mut h);
    let init = d.poll_output().unwrap();
    let cid = u32::from_be_bytes([init[15], init[16], init[17], init[18]]);
    d.receive(&fragment(cid, cmd::PING, &[1; 100]).unwrap()[0], t, &mut h);
    d.poll(t + Duration::from_millis(100), &mut h);
    assert!(d.poll_output().is_none());
    let when = d.next_deadline().unwrap();
    d.poll(when, &mut h);
    let err = d.poll_output().unwrap();
    assert_eq!((err[4], err[7]), (0x80 | cmd::ERROR, HidErrorCode::MsgTimeout.byte()));
}

#[test]
fn cancel_during_touch_wait_is_keepalive_cancel() {
    let (dev, _, cancelled) = device();
    let mut raw = Raw(dev.connect());
    let cid = raw.init();
    raw.send(cid, cmd::CBOR, &[0x42]);
    assert_eq!(raw.recv(cid), (cmd::KEEPALIVE, vec![KeepaliveStatus::UpNeeded.byte()]));
    raw.send(cid, cmd::CANCEL, &[]);
    loop {
        let (c, p) = raw.recv(cid);
        if c == cmd::KEEPALIVE {
            continue;
        }
        assert_eq!((c, p), (cmd::CBOR, vec![CTAP2_ERR_KEEPALIVE_CANCEL]));
        break;
    }
    assert!(cancelled.load(Ordering::SeqCst));
    // No stray keepalives afterwards.
    assert!(raw.recv_silence(cid, Duration::from_millis(250)));

    // Host side: cancelling an operation sends CANCEL and reports Cancelled.
    let mut host = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    let token = CancelToken::new();
    let t2 = token.clone();
    let op = Op::timeout(Duration::from_secs(5)).with_cancel(token).on_progress(move |p| {
        if p == Progress::WaitingForTouch {
            t2.cancel();
        }
    });
    let t0 = Instant::now();
    assert!(matches!(host.cbor(&[0x42], &op), Err(HidError::Cancelled)));
    assert!(t0.elapsed() < Duration::from_secs(2));
    // The channel is usable at once.
    assert_eq!(host.cbor(&[0x04], &Op::timeout(Duration::from_secs(5))).unwrap(), vec![0, 4]);
}

#[test]
fn cancel_from_other_channel_is_ignored() {
    let (dev, touched, cancelled) = device();
    let mut raw = Raw(dev.connect());
    let a = raw.init();
    let b = raw.init();
    raw.send(a, cmd::CBOR, &[0x42]);
    assert_eq!(raw.recv(a).0, cmd::KEEPALIVE);
    raw.send(b, cmd::CANCEL, &[]);
    assert_eq!(raw.recv(a).0, cmd::KEEPALIVE);
    assert!(!cancelled.load(Ordering::SeqCst));
    touched.store(true, Ordering::SeqCst);
    loop {
        let (c, p) = raw.recv(a);
        if c != cmd::KEEPALIVE {
            assert_eq!((c, p), (cmd::CBOR, vec![0]));
            break;
        }
    }
}

#[test]
fn keepalive_at_least_every_100ms_while_waiting() {
    // Real time: timestamps of keepalives over ~1 s of waiting.
    let (dev, touched, _) = device();
    let mut host = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    let stamps: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let s2 = stamps.clone();
    let t2 = touched.clone();
    let toucher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        t2.store(true, Ordering::SeqCst);
    });
    let t0 = Instant::now();
    let op = Op::timeout(Duration::from_secs(5)).on_progress(move |p| {
        assert_eq!(p, Progress::WaitingForTouch);
        s2.lock().unwrap().push(Instant::now());
    });
    assert_eq!(host.cbor(&[0x42], &op).unwrap(), vec![0]);
    toucher.join().unwrap();
    let stamps = stamps.lock().unwrap();
    let elapsed = t0.elapsed();
    assert!(stamps.len() as u128 >= elapsed.as_millis() / 100, "{} keepalives in {elapsed:?}", stamps.len());

    // Synthetic time: the state machine schedules every keepalive within 100 ms.
    let (mut h, _, _) = TouchHandler::new();
    let mut d = DeviceChannel::new(DeviceConfig::default());
    let t = Instant::now();
    d.receive(&fragment(BROADCAST_CID, cmd::INIT, &[0; 8]).unwrap()[0], t, &mut h);
    let init = d.poll_output().unwrap();
    let cid = u32::from_be_bytes([init[15], init[16], init[17], init[18]]);
    d.receive(&fragment(cid, cmd::CBOR, &[0x42]).unwrap()[0], t, &mut h);
    let mut last = t;
    let first = d.poll_output().unwrap();
    assert_eq!(first[4], 0x80 | cmd::KEEPALIVE);
    for _ in 0..50 {
        let next = d.next_deadline().unwrap();
        assert!(next - last <= Duration::from_millis(100));
        d.poll(next, &mut h);
        let k = d.poll_output().unwrap();
        assert_eq!((k[4], k[7]), (0x80 | cmd::KEEPALIVE, 2));
        last = next;
    }
}

#[test]
fn lock_wink_and_unknown_commands() {
    let (dev, _, _) = device();
    let mut raw = Raw(dev.connect());
    let a = raw.init();
    let b = raw.init();
    raw.send(a, cmd::WINK, &[]);
    assert_eq!(raw.recv(a), (cmd::WINK, vec![]));
    raw.send(a, 0x55, &[1]);
    assert_eq!(raw.recv(a), (cmd::ERROR, vec![HidErrorCode::InvalidCmd.byte()]));
    raw.send(a, cmd::LOCK, &[11]);
    assert_eq!(raw.recv(a), (cmd::ERROR, vec![HidErrorCode::InvalidPar.byte()]));
    raw.send(a, cmd::LOCK, &[2]);
    assert_eq!(raw.recv(a), (cmd::LOCK, vec![]));
    raw.send(b, cmd::PING, &[1]);
    assert_eq!(raw.recv(b), (cmd::ERROR, vec![HidErrorCode::ChannelBusy.byte()]));
    raw.send(a, cmd::PING, &[1]);
    assert_eq!(raw.recv(a), (cmd::PING, vec![1]));
    raw.send(a, cmd::LOCK, &[0]);
    assert_eq!(raw.recv(a), (cmd::LOCK, vec![]));
    raw.send(b, cmd::PING, &[1]);
    assert_eq!(raw.recv(b), (cmd::PING, vec![1]));
    // Unallocated and reserved channels.
    raw.send(0x1234_5678, cmd::PING, &[1]);
    assert_eq!(raw.recv(0x1234_5678), (cmd::ERROR, vec![HidErrorCode::InvalidChannel.byte()]));
    raw.send(BROADCAST_CID, cmd::PING, &[1]);
    assert_eq!(raw.recv(BROADCAST_CID), (cmd::ERROR, vec![HidErrorCode::InvalidChannel.byte()]));
    raw.send(BROADCAST_CID, cmd::INIT, &[1; 7]);
    assert_eq!(raw.recv(BROADCAST_CID), (cmd::ERROR, vec![HidErrorCode::InvalidLen.byte()]));
}

#[test]
fn ctaphid_over_udp() {
    use hwkey::transport::udp::{UdpServer, UdpTransport};
    let server = UdpServer::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let stop = CancelToken::new();
    let s2 = stop.clone();
    let th = std::thread::spawn(move || {
        let (mut h, _, _) = TouchHandler::new();
        server.serve(&mut h, &s2).unwrap();
    });
    let mut a = CtapHidDevice::open(UdpTransport::connect(&addr.to_string()).unwrap(), deadline()).unwrap();
    let mut b = CtapHidDevice::open(UdpTransport::connect(&addr.to_string()).unwrap(), deadline()).unwrap();
    assert_ne!(a.info().cid, b.info().cid);
    let data: Vec<u8> = (0..7609u32).map(|i| i as u8).collect();
    assert_eq!(a.ping(&data, &Op::timeout(Duration::from_secs(5))).unwrap(), data);
    assert_eq!(b.ping(b"hello", &Op::timeout(Duration::from_secs(5))).unwrap(), b"hello");
    stop.cancel();
    th.join().unwrap();
}

#[test]
fn timeout_drains_the_cancel_answer_so_the_next_request_is_in_step() {
    // D1: a request that times out is cancelled; the device answers the
    // CANCEL with KEEPALIVE_CANCEL, and that answer must not be taken for
    // the reply to the next request.
    let (dev, _, cancelled) = device();
    let mut host = CtapHidDevice::open(dev.connect(), deadline()).unwrap();
    let t0 = Instant::now();
    let r = host.cbor(&[0x42], &Op::timeout(Duration::from_millis(200)));
    assert!(matches!(r, Err(HidError::Timeout)), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    for i in 0..3u8 {
        let got = host.cbor(&[0x04, i], &Op::timeout(Duration::from_secs(5))).unwrap();
        assert_eq!(got, vec![0, 4, i], "request {i} got a stale reply");
    }
    assert!(cancelled.load(Ordering::SeqCst), "the device saw the CANCEL");
}

/// Wraps a transport and answers the next CBOR requests with CTAPHID ERRORs
/// of its own (as a device does that lost its channels or is busy elsewhere).
struct Injecting {
    inner: MemoryTransport,
    errors: Arc<Mutex<std::collections::VecDeque<HidErrorCode>>>,
    queued: std::collections::VecDeque<Report>,
    cbor_requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl ReportTransport for Injecting {
    fn send_report(&mut self, report: &Report) -> Result<(), hwkey::transport::TransportError> {
        if let Packet::Init { cid, cmd: cmd::CBOR, .. } = Packet::parse(report) {
            self.cbor_requests.fetch_add(1, Ordering::SeqCst);
            if let Some(code) = self.errors.lock().unwrap().pop_front() {
                self.queued.extend(fragment(cid, cmd::ERROR, &[code.byte()]).unwrap());
                return Ok(());
            }
        }
        self.inner.send_report(report)
    }
    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, hwkey::transport::TransportError> {
        if let Some(r) = self.queued.pop_front() {
            return Ok(Some(r));
        }
        self.inner.recv_report(deadline)
    }
}

fn injecting(
    dev: &MemoryDevice,
    codes: &[HidErrorCode],
) -> (Injecting, Arc<Mutex<std::collections::VecDeque<HidErrorCode>>>, Arc<std::sync::atomic::AtomicUsize>) {
    let errors = Arc::new(Mutex::new(codes.iter().copied().collect()));
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Injecting {
        inner: dev.connect(),
        errors: errors.clone(),
        queued: Default::default(),
        cbor_requests: n.clone(),
    };
    (t, errors, n)
}

#[test]
fn invalid_channel_reopens_the_channel_and_retries_once() {
    let (dev, _, _) = device();
    let (t, _, n) = injecting(&dev, &[HidErrorCode::InvalidChannel]);
    let mut host = CtapHidDevice::open(t, deadline()).unwrap();
    let old = host.info().cid;
    let got = host.cbor(&[0x04], &Op::timeout(Duration::from_secs(5))).unwrap();
    assert_eq!(got, vec![0, 4]);
    assert_eq!(n.load(Ordering::SeqCst), 2, "one retry");
    assert_ne!(host.info().cid, old, "a new channel was allocated");
    // A device that keeps refusing the channel is reported, not looped on.
    let (t, _, n) = injecting(&dev, &[HidErrorCode::InvalidChannel; 5]);
    let mut host = CtapHidDevice::open(t, deadline()).unwrap();
    let r = host.cbor(&[0x04], &Op::timeout(Duration::from_secs(5)));
    assert!(matches!(r, Err(HidError::Device(HidErrorCode::InvalidChannel))), "{r:?}");
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[test]
fn channel_busy_is_retried_a_bounded_number_of_times() {
    let (dev, _, _) = device();
    let (t, _, n) = injecting(&dev, &[HidErrorCode::ChannelBusy; 3]);
    let mut host = CtapHidDevice::open(t, deadline()).unwrap();
    let got = host.cbor(&[0x04], &Op::timeout(Duration::from_secs(5))).unwrap();
    assert_eq!(got, vec![0, 4]);
    assert_eq!(n.load(Ordering::SeqCst), 4);
    // Always busy: gives up with ChannelBusy, after a bounded number of tries
    // and well before the deadline.
    let (t, _, n) = injecting(&dev, &[HidErrorCode::ChannelBusy; 100]);
    let mut host = CtapHidDevice::open(t, deadline()).unwrap();
    let t0 = Instant::now();
    let r = host.cbor(&[0x04], &Op::timeout(Duration::from_secs(30)));
    assert!(matches!(r, Err(HidError::Device(HidErrorCode::ChannelBusy))), "{r:?}");
    let tries = n.load(Ordering::SeqCst);
    assert!((2..=10).contains(&tries), "{tries} tries");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

//! A hostile device: whatever it sends, the host side ends in a typed error
//! within the deadline, never a hang or a panic.
#![cfg(feature = "client")]

use hwkey::transport::ctaphid::*;
use hwkey::transport::{Op, Report, ReportTransport, TransportError};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

type Script = Box<dyn FnMut(&Report, &mut VecDeque<Report>) + Send>;

/// A transport whose device is a script: each report the host sends may
/// queue any reports in answer.
struct Scripted {
    script: Script,
    queue: VecDeque<Report>,
    /// Answer with this report forever whenever the queue is empty.
    endless: Option<Report>,
    sent: Vec<Report>,
}

impl Scripted {
    fn new(script: impl FnMut(&Report, &mut VecDeque<Report>) + Send + 'static) -> Self {
        Scripted { script: Box::new(script), queue: VecDeque::new(), endless: None, sent: Vec::new() }
    }
}

impl ReportTransport for Scripted {
    fn send_report(&mut self, r: &Report) -> Result<(), TransportError> {
        self.sent.push(*r);
        (self.script)(r, &mut self.queue);
        Ok(())
    }
    fn recv_report(&mut self, deadline: Instant) -> Result<Option<Report>, TransportError> {
        if let Some(r) = self.queue.pop_front() {
            return Ok(Some(r));
        }
        if let Some(r) = self.endless {
            std::thread::sleep(Duration::from_millis(1));
            return Ok(Some(r));
        }
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        Ok(None)
    }
}

const CID: u32 = 0x0102_0304;

/// A well-behaved INIT answer; everything after it comes from `then`.
fn with_init(
    mut then: impl FnMut(&Report, &mut VecDeque<Report>) + Send + 'static,
) -> impl FnMut(&Report, &mut VecDeque<Report>) + Send + 'static {
    move |r, q| {
        if let Packet::Init { cid: BROADCAST_CID, cmd: cmd::INIT, data, .. } = Packet::parse(r) {
            let mut p = data[..8].to_vec();
            p.extend_from_slice(&CID.to_be_bytes());
            p.extend_from_slice(&[2, 1, 0, 0, capability::CBOR | capability::WINK]);
            q.extend(fragment(BROADCAST_CID, cmd::INIT, &p).unwrap());
        } else {
            then(r, q)
        }
    }
}

fn open(script: impl FnMut(&Report, &mut VecDeque<Report>) + Send + 'static) -> CtapHidDevice<Scripted> {
    CtapHidDevice::open(Scripted::new(with_init(script)), Instant::now() + Duration::from_secs(2)).unwrap()
}

fn quick() -> Op {
    Op::timeout(Duration::from_millis(300))
}

fn within<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let v = f();
    assert!(t0.elapsed() < limit, "took {:?}", t0.elapsed());
    v
}

#[test]
fn init_with_wrong_nonce() {
    let t = Scripted::new(|r, q| {
        let mut p = [0u8; 17];
        p[..8].copy_from_slice(&[0xee; 8]);
        p[8..12].copy_from_slice(&CID.to_be_bytes());
        let _ = r;
        q.extend(fragment(BROADCAST_CID, cmd::INIT, &p).unwrap());
    });
    let e = within(Duration::from_secs(2), || CtapHidDevice::open(t, Instant::now() + Duration::from_millis(300)));
    assert!(matches!(e, Err(HidError::NonceMismatch)));
}

#[test]
fn init_with_reserved_or_short_answers() {
    for (cid, len) in [(0u32, 17usize), (BROADCAST_CID, 17), (CID, 12)] {
        let t = Scripted::new(move |r, q| {
            if let Packet::Init { data, .. } = Packet::parse(r) {
                let mut p = data[..8].to_vec();
                p.extend_from_slice(&cid.to_be_bytes());
                p.extend_from_slice(&[2, 0, 0, 0, 4]);
                p.truncate(len);
                q.extend(fragment(BROADCAST_CID, cmd::INIT, &p).unwrap());
            }
        });
        let e = CtapHidDevice::open(t, Instant::now() + Duration::from_millis(300));
        assert!(matches!(e, Err(HidError::InvalidInitResponse(_))), "{cid:x} {len}");
    }
}

#[test]
fn silent_device_times_out() {
    let e = within(Duration::from_secs(2), || {
        CtapHidDevice::open(Scripted::new(|_, _| {}), Instant::now() + Duration::from_millis(200))
    });
    assert!(matches!(e, Err(HidError::Timeout)));
    let mut d = open(|_, _| {});
    assert!(matches!(within(Duration::from_secs(2), || d.ping(b"x", &quick())), Err(HidError::Timeout)));
}

#[test]
fn answers_on_wrong_channels_only() {
    let mut d = open(|r, q| {
        if let Packet::Init { cmd, data, len, .. } = Packet::parse(r) {
            q.extend(fragment(CID ^ 1, cmd, &data[..len.min(57)]).unwrap());
            q.extend(fragment(BROADCAST_CID, cmd, &data[..len.min(57)]).unwrap());
        }
    });
    assert!(matches!(within(Duration::from_secs(2), || d.ping(b"abc", &quick())), Err(HidError::Timeout)));
}

#[test]
fn wrong_command_in_answer() {
    let mut d = open(|_, q| q.extend(fragment(CID, cmd::WINK, &[]).unwrap()));
    assert!(matches!(d.cbor(&[4], &quick()), Err(HidError::UnexpectedCommand { expected: cmd::CBOR, got: cmd::WINK })));
}

#[test]
fn oversized_announced_length() {
    let mut d = open(|_, q| {
        let mut r = [0u8; 64];
        r[..4].copy_from_slice(&CID.to_be_bytes());
        r[4] = 0x80 | cmd::CBOR;
        r[5..7].copy_from_slice(&0xffffu16.to_be_bytes());
        q.push_back(r);
    });
    assert!(matches!(d.cbor(&[4], &quick()), Err(HidError::InvalidLength(0xffff))));
}

#[test]
fn announced_length_never_delivered() {
    let mut d = open(|_, q| {
        let mut r = [0u8; 64];
        r[..4].copy_from_slice(&CID.to_be_bytes());
        r[4] = 0x80 | cmd::CBOR;
        r[5..7].copy_from_slice(&7609u16.to_be_bytes());
        q.push_back(r);
    });
    assert!(matches!(within(Duration::from_secs(2), || d.cbor(&[4], &quick())), Err(HidError::Timeout)));
}

#[test]
fn continuation_out_of_sequence() {
    let mut d = open(|_, q| {
        let mut rs = fragment(CID, cmd::CBOR, &[0u8; 200]).unwrap();
        rs.swap(1, 2);
        q.extend(rs);
    });
    assert!(matches!(d.cbor(&[4], &quick()), Err(HidError::InvalidSequence { expected: 0, got: 1 })));
}

#[test]
fn init_packet_in_the_middle_of_a_message() {
    let mut d = open(|_, q| {
        let rs = fragment(CID, cmd::CBOR, &[0u8; 200]).unwrap();
        q.push_back(rs[0]);
        q.extend(fragment(CID, cmd::KEEPALIVE, &[1]).unwrap());
    });
    assert!(matches!(d.cbor(&[4], &quick()), Err(HidError::UnexpectedCommand { .. })));
}

#[test]
fn endless_keepalives_end_at_the_deadline_with_cancel() {
    let mut t = Scripted::new(with_init(|_, _| {}));
    t.endless = Some(fragment(CID, cmd::KEEPALIVE, &[2]).unwrap()[0]);
    let mut d = CtapHidDevice::open(t, Instant::now() + Duration::from_secs(2)).unwrap();
    let e = within(Duration::from_secs(2), || d.cbor(&[2], &quick()));
    assert!(matches!(e, Err(HidError::Timeout)));
    let last = d.transport().sent.last().unwrap();
    assert_eq!(last[4], 0x80 | cmd::CANCEL, "a CANCEL is sent when giving up");
}

#[test]
fn keepalives_with_unknown_status_and_empty_keepalive() {
    let mut t = Scripted::new(with_init(|_, _| {}));
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(&CID.to_be_bytes());
    r[4] = 0x80 | cmd::KEEPALIVE;
    r[6] = 0; // zero length
    t.endless = Some(r);
    let mut d = CtapHidDevice::open(t, Instant::now() + Duration::from_secs(2)).unwrap();
    assert!(matches!(within(Duration::from_secs(2), || d.cbor(&[2], &quick())), Err(HidError::Timeout)));
    let mut d = open(|_, q| {
        q.extend(fragment(CID, cmd::KEEPALIVE, &[0x77]).unwrap());
        q.extend(fragment(CID, cmd::CBOR, &[0]).unwrap());
    });
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let op = quick().on_progress(move |p| s2.lock().unwrap().push(p));
    assert_eq!(d.cbor(&[4], &op).unwrap(), vec![0]);
    assert_eq!(*seen.lock().unwrap(), vec![hwkey::transport::Progress::OtherStatus(0x77)]);
}

#[test]
fn ctaphid_errors_are_typed() {
    for code in [0x01u8, 0x03, 0x04, 0x05, 0x06, 0x0b, 0x7f, 0x99] {
        let mut d = open(move |_, q| q.extend(fragment(CID, cmd::ERROR, &[code]).unwrap()));
        match d.ping(b"x", &quick()) {
            Err(HidError::Device(c)) => assert_eq!(c.byte(), code),
            other => panic!("{other:?}"),
        }
    }
    let mut d = open(|_, q| q.extend(fragment(CID, cmd::ERROR, &[]).unwrap()));
    assert!(matches!(d.ping(b"x", &quick()), Err(HidError::InvalidLength(0))));
}

#[test]
fn stray_continuations_and_garbage_are_skipped() {
    let mut d = open(|r, q| {
        let mut junk = [0xffu8; 64];
        junk[..4].copy_from_slice(&CID.to_be_bytes());
        junk[4] = 5; // a continuation with no message
        q.push_back(junk);
        q.push_back([0u8; 64]);
        if let Packet::Init { data, len, .. } = Packet::parse(r) {
            q.extend(fragment(CID, cmd::PING, &data[..len]).unwrap());
        }
    });
    assert_eq!(d.ping(b"ok", &quick()).unwrap(), b"ok");
}

#[test]
fn disconnect_is_a_transport_error() {
    use hwkey::transport::memory::MemoryDevice;
    struct Echo;
    impl Handler for Echo {
        fn start(&mut self, _: MessageKind, r: &[u8], _: Instant) -> Outcome {
            Outcome::Done(r.to_vec())
        }
    }
    let dev = MemoryDevice::spawn(Echo, DeviceConfig::default());
    let mut d = CtapHidDevice::open(dev.connect(), Instant::now() + Duration::from_secs(2)).unwrap();
    drop(dev);
    assert!(matches!(d.ping(b"x", &quick()), Err(HidError::Transport(_))));
}

#[test]
fn random_reports_never_panic() {
    use proptest::prelude::*;
    let mut runner =
        proptest::test_runner::TestRunner::new(proptest::test_runner::Config { cases: 200, ..Default::default() });
    runner
        .run(&proptest::collection::vec(proptest::array::uniform32(any::<u8>()), 1..6), |chunks| {
            let reports: Vec<Report> = chunks
                .iter()
                .map(|c| {
                    let mut r = [0u8; 64];
                    r[..32].copy_from_slice(c);
                    r[32..].copy_from_slice(c);
                    r[..4].copy_from_slice(&CID.to_be_bytes());
                    r
                })
                .collect();
            let mut d = open(move |_, q| q.extend(reports.iter().copied()));
            let _ = d.cbor(&[4], &Op::timeout(Duration::from_millis(30)));
            Ok(())
        })
        .unwrap();
    // And the device side: random reports into the state machine.
    struct Echo;
    impl Handler for Echo {
        fn start(&mut self, _: MessageKind, r: &[u8], _: Instant) -> Outcome {
            Outcome::Done(r.to_vec())
        }
    }
    runner
        .run(&proptest::collection::vec(proptest::collection::vec(any::<u8>(), 64), 1..20), |rs| {
            let mut d = DeviceChannel::new(DeviceConfig::default());
            let t = Instant::now();
            d.receive(&fragment(BROADCAST_CID, cmd::INIT, &[0; 8]).unwrap()[0], t, &mut Echo);
            for (i, r) in rs.iter().enumerate() {
                let mut a = [0u8; 64];
                a.copy_from_slice(r);
                d.receive(&a, t + Duration::from_millis(i as u64 * 50), &mut Echo);
                while d.poll_output().is_some() {}
            }
            Ok(())
        })
        .unwrap();
}

// ---- The CTAP2 layer above: malformed CBOR and unknown statuses. ----

mod ctap2_layer {
    use super::*;
    use hwkey::client::{ClientError, Device};
    use hwkey::proto::ctap2::CtapCodec;
    use hwkey::proto::ctap2::get_info::GetInfoResponse;
    use hwkey::proto::webauthn::RequestOptionsJson;

    fn info_bytes() -> Vec<u8> {
        let info = GetInfoResponse {
            versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
            aaguid: vec![7; 16],
            pin_uv_auth_protocols: Some(vec![2, 1]),
            max_credential_count_in_list: Some(8),
            ..Default::default()
        };
        let mut b = vec![0u8];
        b.extend_from_slice(&info.to_cbor());
        b
    }

    /// A CTAP2 device: getInfo is answered properly, every other CBOR request with `answer`.
    fn device(answer: Vec<u8>) -> Result<Device, ClientError> {
        let info = info_bytes();
        let t = Scripted::new(with_init(move |r, q| {
            if let Packet::Init { cmd: cmd::CBOR, data, .. } = Packet::parse(r) {
                let resp = if data[0] == 0x04 { info.clone() } else { answer.clone() };
                q.extend(fragment(CID, cmd::CBOR, &resp).unwrap());
            }
        }));
        Device::open(t, &Op::timeout(Duration::from_secs(2)))
    }

    fn login(dev: &mut Device) -> Result<hwkey::proto::webauthn::AuthenticationResponseJson, ClientError> {
        let opts: RequestOptionsJson = serde_json::from_value(serde_json::json!({
            "challenge": "AAAAAAAAAAAAAAAAAAAAAA", "rpId": "example.com",
            "allowCredentials": [{"type": "public-key", "id": "AQID"}], "userVerification": "discouraged"
        }))
        .unwrap();
        let ui = hwkey::client::webauthn::FixedPin::new(None);
        hwkey::client::webauthn::WebAuthnClient::new(&ui).authenticate(
            dev,
            &opts,
            "https://example.com",
            &Op::timeout(Duration::from_millis(500)),
        )
    }

    #[test]
    fn truncated_and_malformed_cbor() {
        for bad in [
            vec![0x00, 0xa1],                         // truncated map
            vec![0x00, 0xa1, 0x01],                   // map missing its value
            vec![0x00, 0x5a, 0xff, 0xff, 0xff],       // byte string longer than the message
            vec![0x00, 0xa1, 0x01, 0x01, 0x00],       // trailing byte
            vec![0x00, 0x01],                         // not a map
            vec![0x00, 0xa2, 0x01, 0x01, 0x01, 0x02], // duplicate key
            vec![0x00, 0xa1, 0x02, 0x41, 0x00],       // authData too short
            vec![],                                   // no status byte
        ] {
            let mut dev = device(bad.clone()).unwrap();
            let e = within(Duration::from_secs(2), || login(&mut dev)).unwrap_err();
            assert!(matches!(e, ClientError::Malformed(_) | ClientError::Hid(_)), "{bad:02x?} gave {e:?}");
        }
    }

    #[test]
    fn unknown_and_error_statuses_are_typed() {
        for (status, code) in
            [(0x13u8, "ctap_status"), (0xf5, "ctap_status"), (0x2e, "no_credentials"), (0x7f, "ctap_status")]
        {
            let mut dev = device(vec![status]).unwrap();
            let e = login(&mut dev).unwrap_err();
            assert_eq!(e.code(), code, "status 0x{status:02x}: {e}");
        }
    }

    #[test]
    fn malformed_get_info_is_refused() {
        for bad in [vec![0x00, 0xa0], vec![0x00, 0xa1, 0x01, 0x80], vec![0x00, 0xa1, 0x01, 0x81, 0x01]] {
            let b2 = bad.clone();
            let t = Scripted::new(with_init(move |r, q| {
                if let Packet::Init { cmd: cmd::CBOR, .. } = Packet::parse(r) {
                    q.extend(fragment(CID, cmd::CBOR, &b2).unwrap());
                }
            }));
            let e = Device::open(t, &Op::timeout(Duration::from_secs(1))).unwrap_err();
            assert_eq!(e.code(), "malformed_response", "{bad:02x?}");
        }
    }

    #[test]
    fn mistyped_optional_get_info_fields_do_not_abort_open() {
        use hwkey::proto::cbor::{Value, encode};
        let mut v = hwkey::proto::cbor::decode(&info_bytes()[1..]).unwrap();
        if let Value::Map(m) = &mut v {
            m.push((Value::from(5), Value::from("1200"))); // maxMsgSize as text
            m.push((
                Value::from(4),
                Value::Map(vec![(Value::from("rk"), Value::from(1)), (Value::from("up"), Value::Bool(true))]),
            ));
            m.push((Value::from(9), Value::from(7))); // transports not an array
            m.push((Value::from(0x20), Value::from("a future member")));
        }
        let mut info = vec![0u8];
        info.extend_from_slice(&encode(&v));
        let t = Scripted::new(with_init(move |r, q| {
            if let Packet::Init { cmd: cmd::CBOR, .. } = Packet::parse(r) {
                q.extend(fragment(CID, cmd::CBOR, &info).unwrap());
            }
        }));
        let dev = Device::open(t, &Op::timeout(Duration::from_secs(2))).unwrap();
        let i = dev.info().unwrap();
        assert_eq!(i.versions, vec!["FIDO_2_0", "FIDO_2_1"]);
        assert_eq!(i.max_credential_count_in_list, Some(8));
        assert_eq!(i.max_msg_size, None);
        assert_eq!(i.transports, None);
        // The well-typed option survives; the mistyped one is dropped.
        assert_eq!((i.option("up"), i.option("rk")), (Some(true), None));
        let mut noted = i.ignored_fields.clone();
        noted.sort();
        assert_eq!(noted, vec!["maxMsgSize", "options", "transports"]);
    }

    #[test]
    fn device_endlessly_busy_ends_in_timeout() {
        let info = info_bytes();
        let mut t = Scripted::new(with_init(move |r, q| {
            if let Packet::Init { cmd: cmd::CBOR, data, .. } = Packet::parse(r)
                && data[0] == 0x04
            {
                q.extend(fragment(CID, cmd::CBOR, &info).unwrap());
            }
        }));
        t.endless = Some(fragment(CID, cmd::KEEPALIVE, &[1]).unwrap()[0]);
        let mut dev = Device::open(t, &Op::timeout(Duration::from_secs(1))).unwrap();
        let e = within(Duration::from_secs(2), || login(&mut dev)).unwrap_err();
        assert_eq!(e.code(), "timeout");
    }
}

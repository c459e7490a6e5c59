//! µs per getAssertion round trip over the in-memory CTAPHID path: the
//! client builds the request, CTAPHID cuts it into 64-byte reports, the
//! software authenticator answers, the client reassembles and decodes.
//!
//! `Loopback` runs the device inline (no thread hand-off), so the number is
//! the protocol cost, not scheduler latency; `MemoryDevice` (a device
//! thread) is measured too.

use criterion::{Criterion, criterion_group, criterion_main};
use hwkey::authenticator::Authenticator;
use hwkey::client::{Device, Op};
use hwkey::proto::ctap2::get_assertion::GetAssertionRequest;
use hwkey::proto::ctap2::make_credential::{CommandOptions, MakeCredentialRequest};
use hwkey::proto::ctap2::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};
use hwkey::transport::ReportTransport;
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::{Loopback, MemoryDevice};
use std::time::Duration;

fn op() -> Op {
    Op::timeout(Duration::from_secs(10))
}

fn setup(transport: impl ReportTransport + 'static) -> (Device, GetAssertionRequest) {
    let mut dev = Device::open(transport, &op()).unwrap();
    let mc = MakeCredentialRequest {
        client_data_hash: vec![1; 32],
        rp: PublicKeyCredentialRpEntity { id: "example.com".into(), name: Some("Example".into()) },
        user: PublicKeyCredentialUserEntity { id: vec![1; 16], name: Some("alice".into()), display_name: None },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(-7)],
        options: Some(CommandOptions { rk: None, up: None, uv: None }),
        ..Default::default()
    };
    let r = dev.make_credential(&mc, &op()).unwrap();
    let id = r.parsed_auth_data().unwrap().attested_credential.unwrap().credential_id;
    let ga = GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: vec![2; 32],
        allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(id)]),
        ..Default::default()
    };
    (dev, ga)
}

fn bench(c: &mut Criterion) {
    let (mut dev, ga) = setup(Loopback::new(Authenticator::in_memory().unwrap(), DeviceConfig::default()));
    c.bench_function("getAssertion round trip, in-memory CTAPHID (inline device)", |b| {
        b.iter(|| dev.get_assertion(&ga, &op()).unwrap())
    });
    let md = MemoryDevice::spawn(Authenticator::in_memory().unwrap(), DeviceConfig::default());
    let (mut dev, ga) = setup(md.connect());
    c.bench_function("getAssertion round trip, in-memory CTAPHID (device thread)", |b| {
        b.iter(|| dev.get_assertion(&ga, &op()).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);

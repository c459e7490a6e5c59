//! The PAM decision of `pam_hwkey` (hwkey::desktop::pam) against software
//! authenticators in memory: enrollment as `hwkey pam enroll` does it, then
//! authentication with the right key, another key, another origin, an
//! unenrolled user, `nouserok`, the PIN, resident credentials, the
//! permission rule, a refused touch, and the silent pre-flight (a key
//! without the credential is never asked for a touch).
#![cfg(all(feature = "desktop", feature = "virtual"))]

use hwkey::authenticator::{Authenticator, AuthenticatorConfig, UserPresence};
use hwkey::client::{Device, Op};
use hwkey::desktop::authfile::{self, CoseType, Credential, KeyHandle};
use hwkey::desktop::enroll::{EnrollOptions, enroll};
use hwkey::desktop::pam::{Conversation, LogLevel, PamCode, PamOptions, Request, UserInfo, authenticate};
use hwkey::transport::ctaphid::DeviceConfig;
use hwkey::transport::memory::MemoryDevice;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use zeroize::Zeroizing;

const HOST: &str = "testhost";

fn op() -> Op {
    Op::timeout(Duration::from_secs(10))
}

/// A software key; `ups` counts the user-presence requests it gets.
struct Key {
    dev: MemoryDevice,
    ups: Arc<AtomicUsize>,
    grant: Arc<AtomicBool>,
}

fn key_with(pin: Option<&str>, grant: bool) -> Key {
    let ups = Arc::new(AtomicUsize::new(0));
    let grant = Arc::new(AtomicBool::new(grant));
    let (u, g) = (ups.clone(), grant.clone());
    let mut a = Authenticator::new(AuthenticatorConfig {
        user_presence: UserPresence::Callback(Box::new(move |_| {
            u.fetch_add(1, Ordering::SeqCst);
            g.load(Ordering::SeqCst)
        })),
        ..Default::default()
    })
    .unwrap();
    if let Some(p) = pin {
        a.set_pin(p).unwrap();
    }
    Key { dev: MemoryDevice::spawn(a, DeviceConfig::default()), ups, grant }
}

fn key() -> Key {
    key_with(None, true)
}

impl Key {
    fn open(&self) -> Device {
        Device::open(self.dev.connect(), &op()).unwrap()
    }
    fn ups(&self) -> usize {
        self.ups.load(Ordering::SeqCst)
    }
}

fn enroll_opts(user: &str) -> EnrollOptions {
    EnrollOptions {
        user: user.into(),
        origin: format!("pam://{HOST}"),
        appid: format!("pam://{HOST}"),
        resident: false,
        pin_verification: false,
        user_verification: false,
        no_user_presence: false,
        cose_type: CoseType::Es256,
    }
}

fn enroll_on(k: &Key, o: &EnrollOptions, pin: Option<&str>) -> Credential {
    let pin = pin.map(str::to_owned);
    enroll(&mut k.open(), o, &|| pin.clone().map(Zeroizing::new), &op()).unwrap()
}

#[derive(Default)]
struct Conv {
    pin: Option<String>,
    prompts: Vec<String>,
    infos: Vec<String>,
}

impl Conversation for Conv {
    fn prompt_secret(&mut self, prompt: &str) -> Option<Zeroizing<String>> {
        self.prompts.push(prompt.to_owned());
        self.pin.clone().map(Zeroizing::new)
    }
    fn info(&mut self, message: &str) {
        self.infos.push(message.to_owned());
    }
}

struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hwkey-desktop-pam-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".config/Yubico")).unwrap();
        Home { dir }
    }
    fn uid(&self) -> u32 {
        std::fs::metadata(&self.dir).unwrap().uid()
    }
    fn user(&self, name: &str) -> UserInfo {
        UserInfo { name: name.into(), uid: self.uid(), home: self.dir.clone() }
    }
    /// Write the default authfile (~/.config/Yubico/u2f_keys), mode 0600.
    fn write(&self, content: &str) -> PathBuf {
        let p = self.dir.join(".config/Yubico/u2f_keys");
        write_file(&p, content, 0o600);
        p
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_file(p: &Path, content: &str, mode: u32) {
    std::fs::write(p, content).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn run(options: &PamOptions, user: &UserInfo, conv: &mut Conv, keys: &[&Key]) -> PamCode {
    let source = |op: &Op| keys.iter().map(|k| Device::open(k.dev.connect(), op).unwrap()).collect::<Vec<_>>();
    let log = |_: LogLevel, m: &str| eprintln!("pam: {m}");
    let mut req = Request { options, user, hostname: HOST, conv, devices: &source, log: &log };
    authenticate(&mut req)
}

fn opts(args: &[&str]) -> PamOptions {
    let mut a = vec!["debug"];
    a.extend_from_slice(args);
    PamOptions::parse(&a).unwrap().0
}

#[test]
fn the_enrolled_key_authenticates_with_a_cue() {
    let home = Home::new("ok");
    let k = key();
    let c = enroll_on(&k, &enroll_opts("alice"), None);
    home.write(&format!("{}\n", authfile::format_line("alice", &[c])));
    let before = k.ups();
    let mut conv = Conv::default();
    assert_eq!(run(&opts(&["cue"]), &home.user("alice"), &mut conv, &[&k]), PamCode::Success);
    assert_eq!(conv.infos, vec!["Please touch the device.".to_owned()]);
    assert!(conv.prompts.is_empty());
    assert_eq!(k.ups() - before, 1, "one touch for the assertion, none for the pre-flight");
}

#[test]
fn another_key_is_refused_without_asking_for_a_touch() {
    let home = Home::new("other");
    let (a, b) = (key(), key());
    let c = enroll_on(&a, &enroll_opts("alice"), None);
    home.write(&authfile::format_line("alice", &[c]));
    let before = b.ups();
    let mut conv = Conv::default();
    assert_eq!(run(&opts(&["cue"]), &home.user("alice"), &mut conv, &[&b]), PamCode::AuthErr);
    assert_eq!(b.ups(), before, "the key without the credential was never asked for presence");
    assert!(conv.infos.is_empty(), "no touch cue when no key holds a credential");
}

#[test]
fn with_two_keys_only_the_one_holding_the_credential_is_touched() {
    let home = Home::new("two");
    let (a, b) = (key(), key());
    let c = enroll_on(&a, &enroll_opts("alice"), None);
    home.write(&authfile::format_line("alice", &[c]));
    let (ba, bb) = (a.ups(), b.ups());
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&b, &a]), PamCode::Success);
    assert_eq!(b.ups(), bb);
    assert_eq!(a.ups() - ba, 1);
}

#[test]
fn several_keys_per_user_any_of_them_works() {
    let home = Home::new("several");
    let (a, b) = (key(), key());
    let ca = enroll_on(&a, &enroll_opts("alice"), None);
    let mut eo = enroll_opts("alice");
    eo.cose_type = CoseType::Eddsa;
    let cb = enroll_on(&b, &eo, None);
    assert_eq!(cb.cose_type, CoseType::Eddsa);
    home.write(&authfile::format_line("alice", &[ca, cb]));
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&b]), PamCode::Success);
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&a]), PamCode::Success);
}

#[test]
fn another_origin_is_refused() {
    let home = Home::new("origin");
    let k = key();
    let c = enroll_on(&k, &enroll_opts("alice"), None);
    home.write(&authfile::format_line("alice", &[c]));
    assert_eq!(
        run(&opts(&["origin=pam://elsewhere"]), &home.user("alice"), &mut Conv::default(), &[&k]),
        PamCode::AuthErr
    );
    // And the right one named explicitly works.
    let o = format!("origin=pam://{HOST}");
    assert_eq!(run(&opts(&[&o]), &home.user("alice"), &mut Conv::default(), &[&k]), PamCode::Success);
}

#[test]
fn a_wrong_public_key_in_the_authfile_fails_the_signature_check() {
    let home = Home::new("wrongpk");
    let k = key();
    let mut c = enroll_on(&k, &enroll_opts("alice"), None);
    let other = enroll_on(&k, &enroll_opts("bob"), None);
    c.public_key = other.public_key;
    home.write(&authfile::format_line("alice", &[c]));
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&k]), PamCode::AuthErr);
}

#[test]
fn unenrolled_user_and_nouserok() {
    let home = Home::new("nouser");
    let k = key();
    let c = enroll_on(&k, &enroll_opts("alice"), None);
    home.write(&authfile::format_line("alice", &[c]));
    assert_eq!(run(&opts(&[]), &home.user("mallory"), &mut Conv::default(), &[&k]), PamCode::UserUnknown);
    assert_eq!(run(&opts(&["nouserok"]), &home.user("mallory"), &mut Conv::default(), &[&k]), PamCode::Ignore);
    // nouserok never lets an enrolled user through without the key.
    let other = key();
    assert_eq!(run(&opts(&["nouserok"]), &home.user("alice"), &mut Conv::default(), &[&other]), PamCode::AuthErr);
    // No authfile at all.
    let empty = Home::new("nofile");
    assert_eq!(run(&opts(&[]), &empty.user("alice"), &mut Conv::default(), &[&k]), PamCode::AuthInfoUnavail);
    assert_eq!(run(&opts(&["nouserok"]), &empty.user("alice"), &mut Conv::default(), &[&k]), PamCode::Ignore);
}

#[test]
fn an_unsafe_authfile_is_refused_even_with_nouserok() {
    let home = Home::new("perm");
    let k = key();
    let c = enroll_on(&k, &enroll_opts("alice"), None);
    let p = home.write(&authfile::format_line("alice", &[c]));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
    let mut warned = Vec::new();
    let source = |op: &Op| vec![Device::open(k.dev.connect(), op).unwrap()];
    let log = |l: LogLevel, m: &str| {
        if l == LogLevel::Warning {
            eprintln!("warning: {m}");
        }
    };
    for args in [&[][..], &["nouserok"][..]] {
        let o = PamOptions::parse(args).unwrap().0;
        let mut conv = Conv::default();
        let user = home.user("alice");
        let mut req =
            Request { options: &o, user: &user, hostname: HOST, conv: &mut conv, devices: &source, log: &log };
        warned.push(authenticate(&mut req));
    }
    assert_eq!(warned, vec![PamCode::AuthInfoUnavail, PamCode::AuthInfoUnavail]);
    // A malformed line for the user: refused too, nouserok or not.
    home.write("alice:AQ==,notbase64!,es256,+presence\n");
    assert_eq!(run(&opts(&["nouserok"]), &home.user("alice"), &mut Conv::default(), &[&k]), PamCode::AuthInfoUnavail);
}

#[test]
fn central_authfile_and_relative_authfile() {
    let home = Home::new("central");
    let k = key();
    let ca = enroll_on(&k, &enroll_opts("alice"), None);
    let cb = enroll_on(&k, &enroll_opts("bob"), None);
    let central = home.dir.join("u2f_mappings");
    write_file(
        &central,
        &format!("{}\n{}\n", authfile::format_line("alice", &[ca]), authfile::format_line("bob", &[cb])),
        0o644,
    );
    let arg = format!("authfile={}", central.display());
    assert_eq!(run(&opts(&[&arg]), &home.user("bob"), &mut Conv::default(), &[&k]), PamCode::Success);
    assert_eq!(run(&opts(&[&arg]), &home.user("alice"), &mut Conv::default(), &[&k]), PamCode::Success);
    assert_eq!(
        run(&opts(&["authfile=u2f_mappings"]), &home.user("bob"), &mut Conv::default(), &[&k]),
        PamCode::Success
    );
    let expanded = format!("authfile={}/%u_keys", home.dir.display());
    write_file(&home.dir.join("bob_keys"), &std::fs::read_to_string(&central).unwrap(), 0o600);
    assert_eq!(run(&opts(&["expand", &expanded]), &home.user("bob"), &mut Conv::default(), &[&k]), PamCode::Success);
}

#[test]
fn no_device_is_authinfo_unavail() {
    let home = Home::new("nodev");
    let k = key();
    let c = enroll_on(&k, &enroll_opts("alice"), None);
    home.write(&authfile::format_line("alice", &[c]));
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[]), PamCode::AuthInfoUnavail);
    // A device= that nobody answers on: bounded, and unavailable.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let arg = format!("device=udp:{}", sock.local_addr().unwrap());
    let o = opts(&[&arg, "timeout=2"]);
    let user = home.user("alice");
    let mut conv = Conv::default();
    let log = |_: LogLevel, m: &str| eprintln!("pam: {m}");
    let t = std::time::Instant::now();
    let mut req = Request { options: &o, user: &user, hostname: HOST, conv: &mut conv, devices: &o.devices, log: &log };
    assert_eq!(authenticate(&mut req), PamCode::AuthInfoUnavail);
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
}

#[test]
fn pinverification_asks_for_the_pin() {
    let home = Home::new("pin");
    let k = key_with(Some("1234"), true);
    let c = enroll_on(&k, &enroll_opts("alice"), Some("1234"));
    home.write(&authfile::format_line("alice", std::slice::from_ref(&c)));
    let mut conv = Conv { pin: Some("1234".into()), ..Default::default() };
    assert_eq!(run(&opts(&["pinverification=1"]), &home.user("alice"), &mut conv, &[&k]), PamCode::Success);
    assert_eq!(conv.prompts, vec!["Please enter the PIN: ".to_owned()]);
    let mut wrong = Conv { pin: Some("9999".into()), ..Default::default() };
    assert_eq!(run(&opts(&["pinverification=1"]), &home.user("alice"), &mut wrong, &[&k]), PamCode::AuthErr);
    let mut none = Conv::default();
    assert_eq!(run(&opts(&["pinverification=1"]), &home.user("alice"), &mut none, &[&k]), PamCode::AuthErr);
    // Without the option the PIN is not asked.
    let mut plain = Conv::default();
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut plain, &[&k]), PamCode::Success);
    assert!(plain.prompts.is_empty());
    // +pin on the line (hwkey pam enroll --pin-verification) asks too.
    let mut eo = enroll_opts("alice");
    eo.pin_verification = true;
    let cp = enroll_on(&k, &eo, Some("1234"));
    assert!(cp.to_field().ends_with(",es256,+presence+pin"));
    home.write(&authfile::format_line("alice", &[cp]));
    let mut conv = Conv { pin: Some("1234".into()), ..Default::default() };
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut conv, &[&k]), PamCode::Success);
    assert_eq!(conv.prompts.len(), 1);
    // A key without a PIN cannot satisfy +pin.
    let nopin = key();
    let mut conv = Conv { pin: Some("1234".into()), ..Default::default() };
    assert_eq!(run(&opts(&["pinverification=1"]), &home.user("alice"), &mut conv, &[&nopin]), PamCode::AuthErr);
}

#[test]
fn resident_credential() {
    let home = Home::new("rk");
    let k = key_with(Some("1234"), true);
    let mut eo = enroll_opts("alice");
    eo.resident = true;
    let c = enroll_on(&k, &eo, Some("1234"));
    assert_eq!(c.key_handle, KeyHandle::Resident);
    home.write(&authfile::format_line("alice", &[c]));
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&k]), PamCode::Success);
    // A key without a resident credential for the origin is not asked for a touch.
    let other = key();
    let before = other.ups();
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&other, &k]), PamCode::Success);
    assert_eq!(run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&other]), PamCode::AuthErr);
    assert_eq!(other.ups(), before);
}

#[test]
fn a_refused_touch_fails_in_bounded_time() {
    let home = Home::new("deny");
    let k = key();
    let c = enroll_on(&k, &enroll_opts("alice"), None);
    home.write(&authfile::format_line("alice", &[c]));
    k.grant.store(false, Ordering::SeqCst);
    let t = std::time::Instant::now();
    assert_eq!(run(&opts(&["timeout=5"]), &home.user("alice"), &mut Conv::default(), &[&k]), PamCode::AuthErr);
    assert!(t.elapsed() < Duration::from_secs(8));
}

#[test]
fn userpresence_0_needs_no_touch() {
    let home = Home::new("noup");
    let k = key();
    let mut eo = enroll_opts("alice");
    eo.no_user_presence = true;
    let c = enroll_on(&k, &eo, None);
    assert!(c.to_field().ends_with(",es256,"));
    home.write(&authfile::format_line("alice", &[c]));
    let before = k.ups();
    assert_eq!(run(&opts(&["userpresence=0"]), &home.user("alice"), &mut Conv::default(), &[&k]), PamCode::Success);
    assert_eq!(k.ups(), before);
}

/// A key that answers U2F only (no CBOR capability in CTAPHID INIT).
struct U2fOnly(Authenticator);

impl hwkey::transport::ctaphid::Handler for U2fOnly {
    fn start(
        &mut self,
        kind: hwkey::transport::ctaphid::MessageKind,
        request: &[u8],
        now: std::time::Instant,
    ) -> hwkey::transport::ctaphid::Outcome {
        <Authenticator as hwkey::transport::ctaphid::Handler>::start(&mut self.0, kind, request, now)
    }
    fn poll(&mut self, now: std::time::Instant) -> hwkey::transport::ctaphid::Outcome {
        <Authenticator as hwkey::transport::ctaphid::Handler>::poll(&mut self.0, now)
    }
    fn cancel(&mut self) {
        <Authenticator as hwkey::transport::ctaphid::Handler>::cancel(&mut self.0)
    }
    fn supports_cbor(&self) -> bool {
        false
    }
}

#[test]
fn old_format_u2f_line_uses_the_appid_on_ctap2_and_u2f_only_keys() {
    let appid = "pam://legacyhost";
    let p = hwkey::crypto::default_provider();
    for u2f_only in [false, true] {
        let home = Home::new(if u2f_only { "old-u2f" } else { "old-ctap2" });
        let a = Authenticator::in_memory().unwrap();
        let dev = if u2f_only {
            MemoryDevice::spawn(U2fOnly(a), DeviceConfig::default())
        } else {
            MemoryDevice::spawn(a, DeviceConfig::default())
        };
        let k = Key { dev, ups: Arc::default(), grant: Arc::new(AtomicBool::new(true)) };
        let reg = k.open().u2f_register(&[7; 32], &p.sha256(&[appid.as_bytes()]), &op()).unwrap();
        // pamu2fcfg 1.0.x: URL-safe base64 key handle, hex public key, nothing else.
        use base64::Engine;
        let kh = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&reg.key_handle);
        let hex: String = reg.public_key.iter().map(|b| format!("{b:02x}")).collect();
        home.write(&format!("alice:{kh},{hex}\n"));
        let with_appid = format!("appid={appid}");
        assert_eq!(
            run(&opts(&[&with_appid]), &home.user("alice"), &mut Conv::default(), &[&k]),
            PamCode::Success,
            "u2f_only={u2f_only}"
        );
        // The default appid (the origin pam://testhost) is another application.
        assert_eq!(
            run(&opts(&[]), &home.user("alice"), &mut Conv::default(), &[&k]),
            PamCode::AuthErr,
            "u2f_only={u2f_only}"
        );
    }
}

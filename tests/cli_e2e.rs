//! End to end through processes: `hwkey virtual serve --udp 127.0.0.1:0`,
//! then `hwkey webauthn register` and `hwkey webauthn login` against it.
#![cfg(all(feature = "cli", feature = "server"))]

use hwkey::crypto::{cose_verify, default_provider};
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::auth_data::AuthenticatorData;
use hwkey::proto::webauthn::{AuthenticationResponseJson, RegistrationResponseJson};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The built binary, copied so that builds in other worktrees sharing the
/// target directory cannot swap it under the test.
fn hwkey() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dst = std::env::temp_dir().join(format!("hwkey-cli-e2e-{}", std::process::id()));
        std::fs::copy(env!("CARGO_BIN_EXE_hwkey"), &dst).unwrap();
        dst
    })
    .clone()
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str]) -> Server {
    let mut child = Command::new(hwkey())
        .args(["virtual", "serve", "--udp", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on udp://").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    assert!(!addr.ends_with(":0"), "the bound port is printed");
    Server(child, addr)
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(hwkey())
        .args(args)
        .env_remove("HWKEY_PIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit before reading its input (bad arguments): ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let o = child.wait_with_output().unwrap();
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

fn creation(uv: &str) -> String {
    json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": "dXNlci0x", "name": "alice", "displayName": "Alice"},
        "challenge": "Y2hhbGxlbmdlLWNoYWxsZW5nZQ",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": uv},
        "attestation": "direct",
        "extensions": {"credProps": true, "prf": {}}
    })
    .to_string()
}

#[test]
fn register_and_login_through_processes() {
    let s = serve(&[]);
    let dev = format!("udp:{}", s.1);
    let info = run(&["info", "--json", "--device", &dev], "");
    assert!(info.ok, "{}", info.stderr);
    let v: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert!(v["versions"].as_array().unwrap().iter().any(|x| x == "FIDO_2_1"));
    // The CTAP 2.2 members are shown too.
    assert_eq!(v["maxPINLength"], 63);
    assert_eq!(v["attestationFormats"], json!(["packed"]));
    assert_eq!(v["authenticatorConfigCommands"], json!([1, 2, 3]));
    assert_eq!(v["pinComplexityPolicy"], false);
    let text = run(&["info", "--device", &dev], "");
    assert!(text.ok, "{}", text.stderr);
    for line in
        ["max PIN length: 63", "attestation formats: packed", "PIN complexity policy: off", "config commands: 1, 2, 3"]
    {
        assert!(text.stdout.contains(line), "{line:?} not in:\n{}", text.stdout);
    }

    let r = run(
        &["webauthn", "register", "--origin", "https://example.com", "--options", "-", "--device", &dev],
        &creation("discouraged"),
    );
    assert!(r.ok, "{}", r.stderr);
    let reg: RegistrationResponseJson = serde_json::from_str(&r.stdout).unwrap();
    let att = AttestationObject::parse(&reg.response.attestation_object).unwrap();
    let key = att.auth_data.attested_credential.unwrap().public_key;
    assert_eq!(att.auth_data.rp_id_hash, default_provider().sha256(&[b"example.com"]));

    // Options from a file this time; discoverable login.
    let file = std::env::temp_dir().join(format!("hwkey-login-{}.json", std::process::id()));
    std::fs::write(&file, json!({"challenge": "bG9naW4tY2hhbGxlbmdl", "rpId": "example.com"}).to_string()).unwrap();
    let l = run(
        &[
            "webauthn",
            "login",
            "--origin",
            "https://example.com",
            "--options",
            file.to_str().unwrap(),
            "--device",
            &dev,
        ],
        "",
    );
    let _ = std::fs::remove_file(&file);
    assert!(l.ok, "{}", l.stderr);
    let a: AuthenticationResponseJson = serde_json::from_str(&l.stdout).unwrap();
    assert_eq!(a.raw_id, reg.raw_id);
    assert_eq!(a.response.user_handle.as_ref().map(|h| h.0.as_slice()), Some(&b"user-1"[..]));
    let mut msg = a.response.authenticator_data.0.clone();
    msg.extend_from_slice(&default_provider().sha256(&[&a.response.client_data_json]));
    cose_verify::verify(default_provider(), &key, &msg, &a.response.signature).unwrap();
}

#[test]
fn with_a_pin_and_hmac_secret() {
    let s = serve(&["--pin", "123456"]);
    let dev = format!("udp:{}", s.1);
    let base = ["webauthn", "register", "--origin", "https://example.com", "--options", "-", "--device", &dev];

    // UV required, no PIN given, no terminal: a one-line error, nothing on stdout.
    let r = run(&base, &creation("required"));
    assert!(!r.ok);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.starts_with("error: ") && r.stderr.lines().count() == 1, "{:?}", r.stderr);

    let mut args = base.to_vec();
    args.extend(["--pin", "123456"]);
    let r = run(&args, &creation("required"));
    assert!(r.ok, "{}", r.stderr);
    let reg: RegistrationResponseJson = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(reg.client_extension_results.prf.as_ref().and_then(|p| p.enabled), Some(true));
    let att = AttestationObject::parse(&reg.response.attestation_object).unwrap();
    assert!(att.auth_data.flags.uv());
    let key = att.auth_data.attested_credential.unwrap().public_key;

    let login = json!({"challenge": "bG9naW4tY2hhbGxlbmdl", "rpId": "example.com", "userVerification": "required",
        "allowCredentials": [{"type": "public-key", "id": reg.id}],
        "extensions": {"prf": {"eval": {"first": "c2FsdA"}}}})
    .to_string();
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let l = run(
            &[
                "webauthn",
                "login",
                "--origin",
                "https://example.com",
                "--options",
                "-",
                "--device",
                &dev,
                "--pin",
                "123456",
            ],
            &login,
        );
        assert!(l.ok, "{}", l.stderr);
        let a: AuthenticationResponseJson = serde_json::from_str(&l.stdout).unwrap();
        let ad = AuthenticatorData::parse(&a.response.authenticator_data).unwrap();
        assert!(ad.flags.uv());
        let mut msg = a.response.authenticator_data.0.clone();
        msg.extend_from_slice(&default_provider().sha256(&[&a.response.client_data_json]));
        cose_verify::verify(default_provider(), &key, &msg, &a.response.signature).unwrap();
        outputs.push(a.client_extension_results.prf.unwrap().results.unwrap().first);
    }
    assert_eq!(outputs[0], outputs[1], "the PRF is stable across logins");

    // A wrong PIN: non-zero, nothing on stdout, the attempts left on stderr.
    let l = run(
        &[
            "webauthn",
            "login",
            "--origin",
            "https://example.com",
            "--options",
            "-",
            "--device",
            &dev,
            "--pin",
            "000000",
        ],
        &login,
    );
    assert!(!l.ok && l.stdout.is_empty());
    assert!(l.stderr.starts_with("error: wrong PIN"), "{}", l.stderr);

    let p = run(&["pin", "retries", "--device", &dev], "");
    assert!(p.ok);
    assert_eq!(p.stdout.trim(), "7");
}

#[test]
fn bad_input_is_one_line_on_stderr() {
    for args in [
        vec!["webauthn", "login", "--origin", "https://example.com", "--options", "-", "--device", "bogus"],
        vec!["webauthn", "login", "--origin", "not an origin", "--options", "-", "--device", "udp:127.0.0.1:9"],
        vec!["info", "--device", "udp:127.0.0.1:1"],
    ] {
        let o = run(&args, "{\"challenge\": \"AAAA\"}");
        assert!(!o.ok, "{args:?}");
        assert!(o.stdout.is_empty());
        assert!(o.stderr.starts_with("error: "), "{args:?}: {}", o.stderr);
        assert!(!o.stderr.contains("panicked"));
    }
}

#[test]
fn list_says_so_plainly_without_keys() {
    let o = run(&["list"], "");
    assert!(o.ok, "{}", o.stderr);
    if o.stdout.is_empty() {
        assert_eq!(o.stderr.trim(), "No FIDO security key found.");
    } else {
        assert!(o.stdout.lines().all(|l| l.starts_with("hid:")), "{}", o.stdout);
    }
}

#[test]
fn ctrl_c_cancels_the_touch_wait() {
    let s = serve(&["--touch-delay", "60000"]);
    let dev = format!("udp:{}", s.1);
    let mut child = Command::new(hwkey())
        .args(["webauthn", "register", "--origin", "https://example.com", "--options", "-", "--device", &dev])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(creation("discouraged").as_bytes());
    std::thread::sleep(std::time::Duration::from_millis(800));
    let t0 = std::time::Instant::now();
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(3));
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("Touch your security key"), "{err}");
    assert!(err.lines().last().unwrap_or("").starts_with("error: cancelled"), "{err}");
    // The key is free again at once: the next request is answered (after its own touch delay is cut short by cancel).
    let info = run(&["info", "--device", &dev], "");
    assert!(info.ok, "{}", info.stderr);
}

#[test]
fn hwkeys_relying_party_verifies_the_cli_output() {
    use hwkey::server::{
        AuthenticationRequest, RegistrationRequest, RelyingParty, ResidentKeyRequirement, RpConfig, UserVerification,
    };
    use std::time::SystemTime;
    let origin = "https://example.com";
    let rp = RelyingParty::new(RpConfig::new("example.com", "Example", origin)).unwrap();
    let s = serve(&["--pin", "246810"]);
    let dev = format!("udp:{}", s.1);
    let (opts, state) = rp
        .start_registration(
            RegistrationRequest {
                user_id: b"user-42".to_vec(),
                user_name: "bob".into(),
                resident_key: Some(ResidentKeyRequirement::Required),
                user_verification: Some(UserVerification::Required),
                ..Default::default()
            },
            SystemTime::now(),
        )
        .unwrap();
    let r = run(
        &["webauthn", "register", "--origin", origin, "--options", "-", "--device", &dev, "--pin", "246810"],
        &serde_json::to_string(&opts).unwrap(),
    );
    assert!(r.ok, "{}", r.stderr);
    let record = rp.finish_registration_json(state, r.stdout.as_bytes(), SystemTime::now()).unwrap().credential;

    let (opts, state) = rp
        .start_authentication(
            AuthenticationRequest { user_verification: Some(UserVerification::Required), ..Default::default() },
            SystemTime::now(),
        )
        .unwrap();
    let l = run(
        &["webauthn", "login", "--origin", origin, "--options", "-", "--device", &dev, "--pin", "246810"],
        &serde_json::to_string(&opts).unwrap(),
    );
    assert!(l.ok, "{}", l.stderr);
    let res = rp
        .finish_authentication_json(
            state,
            l.stdout.as_bytes(),
            |id, _| (id == record.credential_id.0.as_slice()).then_some(&record),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(res.user_id, b"user-42");
}

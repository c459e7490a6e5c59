//! `hwkey bio enroll|list|rename|delete|info` through processes, against
//! `hwkey virtual serve --udp 127.0.0.1:0 --fingerprint ...`; then a
//! WebAuthn registration verified by the finger alone (no `--pin`).
#![cfg(all(feature = "cli", feature = "server"))]

use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::webauthn::RegistrationResponseJson;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The built binary, copied so that builds in other worktrees cannot swap it under the test.
fn hwkey() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dst = std::env::temp_dir().join(format!("hwkey-cli-bio-{}", std::process::id()));
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
    Server(child, format!("udp:{addr}"))
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
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let o = child.wait_with_output().unwrap();
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

#[test]
fn enroll_list_rename_delete_through_the_cli() {
    let s = serve(&["--pin", "4321", "--fingerprint", "always"]);
    let dev = s.1.as_str();
    let info = run(&["bio", "info", "--device", dev], "");
    assert!(info.ok, "{}", info.stderr);
    assert!(
        info.stdout.contains("sensor: touch") && info.stdout.contains("samples per enrollment: 4"),
        "{}",
        info.stdout
    );
    assert!(info.stdout.contains("fingerprints enrolled: no"));

    let empty = run(&["bio", "list", "--device", dev, "--pin", "4321"], "");
    assert!(empty.ok && empty.stdout.is_empty(), "{}", empty.stderr);
    assert!(empty.stderr.contains("No fingerprints enrolled."));

    // Without a finger, enrollment needs the PIN.
    let no_pin = run(&["bio", "enroll", "--device", dev], "");
    assert!(!no_pin.ok && no_pin.stdout.is_empty());
    assert!(no_pin.stderr.starts_with("error: "), "{}", no_pin.stderr);

    let e = run(&["bio", "enroll", "--name", "right index", "--device", dev, "--pin", "4321"], "");
    assert!(e.ok, "{}", e.stderr);
    // A prompt per sample, with what is left; the template ID alone on stdout.
    assert!(e.stderr.contains("Touch the fingerprint sensor..."), "{}", e.stderr);
    for n in ["3 samples left", "2 samples left", "1 sample left"] {
        assert!(e.stderr.contains(n), "{n}: {}", e.stderr);
    }
    let id = e.stdout.trim().to_owned();
    assert_eq!(e.stdout.lines().count(), 1);
    assert!(!id.is_empty());

    // Now the finger itself grants the token: no PIN needed.
    let l = run(&["bio", "list", "--device", dev], "");
    assert!(l.ok, "{}", l.stderr);
    assert_eq!(l.stdout, format!("{id}\tright index\n"));
    let r = run(&["bio", "rename", &id, "left thumb", "--device", dev], "");
    assert!(r.ok, "{}", r.stderr);
    let l = run(&["bio", "list", "--device", dev], "");
    assert_eq!(l.stdout, format!("{id}\tleft thumb\n"));

    // UV required, no --pin: the fingerprint verifies the user.
    let options = json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": "dXNlci0x", "name": "alice", "displayName": "Alice"},
        "challenge": "Y2hhbGxlbmdlLWNoYWxsZW5nZQ",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"}
    })
    .to_string();
    let reg =
        run(&["webauthn", "register", "--origin", "https://example.com", "--options", "-", "--device", dev], &options);
    assert!(reg.ok, "{}", reg.stderr);
    let resp: RegistrationResponseJson = serde_json::from_str(&reg.stdout).unwrap();
    let att = AttestationObject::parse(&resp.response.attestation_object).unwrap();
    assert!(att.auth_data.flags.uv());

    let bad = run(&["bio", "delete", "AAAA", "--device", dev], "");
    assert!(!bad.ok && bad.stderr.contains("no such fingerprint"), "{}", bad.stderr);
    let d = run(&["bio", "delete", &id, "--device", dev], "");
    assert!(d.ok, "{}", d.stderr);
    // The last finger gone, the PIN is needed again.
    let l = run(&["bio", "list", "--device", dev, "--pin", "4321"], "");
    assert!(l.ok && l.stdout.is_empty(), "{}", l.stderr);
}

#[test]
fn fingerprint_option_and_keys_without_a_sensor() {
    let bad = run(&["virtual", "serve", "--udp", "127.0.0.1:0", "--fingerprint", "sometimes"], "");
    assert!(!bad.ok && bad.stderr.contains("always, never or after:N"), "{}", bad.stderr);
    let s = serve(&["--pin", "4321"]);
    let e = run(&["bio", "enroll", "--device", &s.1, "--pin", "4321"], "");
    assert!(!e.ok && e.stdout.is_empty());
    assert!(e.stderr.starts_with("error: this security key has no fingerprint sensor"), "{}", e.stderr);
}

#[test]
fn a_finger_that_never_matches_falls_back_to_the_pin() {
    let s = serve(&["--pin", "4321", "--fingerprint", "never"]);
    let dev = s.1.as_str();
    let e = run(&["bio", "enroll", "--device", dev, "--pin", "4321"], "");
    assert!(e.ok, "{}", e.stderr);
    // UV fails three times (preferredPlatformUvAttempts), then the PIN is used.
    let l = run(&["bio", "list", "--device", dev, "--pin", "4321"], "");
    assert!(l.ok, "{}", l.stderr);
    assert!(
        l.stderr.contains("fingerprint not recognized") && l.stderr.contains("using the PIN instead"),
        "{}",
        l.stderr
    );
    assert_eq!(l.stdout.lines().count(), 1);
}

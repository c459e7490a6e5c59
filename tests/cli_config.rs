//! `hwkey config ...` (typed authenticatorConfig) and `hwkey creds update`
//! (updateUserInformation) through processes, against
//! `hwkey virtual serve --udp 127.0.0.1:0`.
#![cfg(all(feature = "cli", feature = "server"))]

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The built binary, copied so that builds in other worktrees cannot swap it under the test.
fn hwkey() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dst = std::env::temp_dir().join(format!("hwkey-cli-config-{}", std::process::id()));
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
fn config_and_creds_update_through_the_cli() {
    let s = serve(&["--pin", "4321", "--enterprise-rp-id", "example.com"]);
    let dev = s.1.as_str();
    let on = run(&["config", "always-uv", "--device", dev, "--pin", "4321"], "");
    assert!(on.ok, "{}", on.stderr);
    assert_eq!(on.stdout, "alwaysUv: on\n");
    let off = run(&["config", "always-uv", "--device", dev, "--pin", "4321"], "");
    assert_eq!(off.stdout, "alwaysUv: off\n", "{}", off.stderr);
    let ep = run(&["config", "enterprise-attestation", "--device", dev, "--pin", "4321"], "");
    assert!(ep.ok && ep.stderr.contains("Enterprise attestation enabled."), "{}", ep.stderr);

    // A discoverable credential, then its user renamed.
    let options = json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": "dXNlci0x", "name": "alice", "displayName": "Alice"},
        "challenge": "Y2hhbGxlbmdlLWNoYWxsZW5nZQ",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"}
    })
    .to_string();
    let reg = run(
        &[
            "webauthn",
            "register",
            "--origin",
            "https://example.com",
            "--options",
            "-",
            "--device",
            dev,
            "--pin",
            "4321",
        ],
        &options,
    );
    assert!(reg.ok, "{}", reg.stderr);
    let list = run(&["creds", "list", "--device", dev, "--pin", "4321"], "");
    let id = list.stdout.trim().split('\t').nth(3).unwrap().to_owned();
    assert!(list.stdout.starts_with("example.com\talice\t"), "{}", list.stdout);
    let up = run(&["creds", "update", &id, "--name", "alice@example.com", "--device", dev, "--pin", "4321"], "");
    assert!(up.ok, "{}", up.stderr);
    let list = run(&["creds", "list", "--device", dev, "--pin", "4321"], "");
    assert!(list.stdout.starts_with("example.com\talice@example.com\t"), "{}", list.stdout);

    // A longer minimum PIN makes the 4-digit PIN change; then the policy bites.
    let m = run(&["config", "min-pin-length", "6", "--pin-complexity", "--device", dev, "--pin", "4321"], "");
    assert!(m.ok, "{}", m.stderr);
    assert_eq!(m.stdout, "minimum PIN length: 6\n");
    assert!(m.stderr.contains("requires a new PIN"), "{}", m.stderr);
    let weak = run(&["pin", "change", "--device", dev, "--pin", "4321", "--new-pin", "123456"], "");
    assert!(!weak.ok && weak.stderr.contains("policy"), "{}", weak.stderr);
    let good = run(&["pin", "change", "--device", dev, "--pin", "4321", "--new-pin", "802461"], "");
    assert!(good.ok, "{}", good.stderr);
}

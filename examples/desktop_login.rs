//! A desktop program that uses the user's key for two things:
//!
//! 1. **Unlock local data**: `seal` encrypts a note with AES-256-GCM under a
//!    32-byte secret derived from the key (`hwkey::derive`, one API for a
//!    FIDO2 key's hmac-secret or a YubiKey HMAC-SHA1 slot) and writes the
//!    enrollment record next to the ciphertext; `open` derives the same
//!    secret from the same key and decrypts. Another key is refused.
//! 2. **Sign in to the demo relying party** (`examples/rp_server.rs`, the
//!    HTTP API of CONTRACTS §2): `register` and `login` run the WebAuthn
//!    ceremonies with hwkey's WebAuthn client, the origin being the server's,
//!    over a small std-only HTTP/1.1 client that keeps the session cookie.
//!
//! ```text
//! # A software security key (state kept in key.json, PIN 123456):
//! hwkey virtual serve --udp 127.0.0.1:8111 --state key.json --pin 123456 &
//! D="--device udp:127.0.0.1:8111 --pin 123456"
//!
//! # Local data, FIDO2 hmac-secret backend (the default):
//! cargo run --example desktop_login -- $D seal vault.json "my secret notes"
//! cargo run --example desktop_login -- $D open vault.json
//!
//! # The demo relying party (defaults: RP id localhost, origin http://localhost:8080):
//! cargo run --release --example rp_server -- --bind 127.0.0.1:8080 --database sqlite::memory: &
//! cargo run --example desktop_login -- $D --server http://localhost:8080 register alice
//! cargo run --example desktop_login -- $D --server http://localhost:8080 login alice
//! cargo run --example desktop_login -- $D --server http://localhost:8080 login   # discoverable
//!
//! # Local data with a YubiKey slot instead (real key: slot 2 programmed with
//! # `hwkey yubikey program --slot 2 --hmac-key HEX`; or the software YubiKey):
//! hwkey virtual yubikey --udp 127.0.0.1:7000 --slot2-hmac 000102030405060708090a0b0c0d0e0f10111213 &
//! cargo run --example desktop_login -- --backend yubikey --device udp:127.0.0.1:7000 seal vault2.json "notes"
//! cargo run --example desktop_login -- --device udp:127.0.0.1:7000 open vault2.json
//! ```
//!
//! Flags (before the command):
//!
//! | flag | default | meaning |
//! |---|---|---|
//! | `--device udp:HOST:PORT\|hid:PATH` | the one connected key | the security key (or YubiKey, for that backend) |
//! | `--pin PIN` | `$HWKEY_PIN`, else asked on the terminal when needed | the key's PIN |
//! | `--backend fido2\|yubikey` | `fido2` | the backend `seal` enrolls (`open` follows the record) |
//! | `--slot 1\|2` | `2` | the YubiKey slot for `seal --backend yubikey` |
//! | `--rp-id ID` | `hwkey-desktop-login` | the RP id of the FIDO2 credential made for local data |
//! | `--server URL` | `http://localhost:8080` | the demo relying party (http only: no TLS client here) |
//! | `--origin URL` | the server's origin | the WebAuthn origin presented (must be one the server allows) |
//!
//! The vault file is JSON: `{"enrollment": ..., "nonce": b64url, "ciphertext": b64url}`;
//! the enrollment record says which backend and parameters to use again
//! (for FIDO2: RP id, credential id, whether the user is verified) and holds
//! no secret. Files written by the former `desktop_unlock` example open here.

#[cfg(all(feature = "client", feature = "yubikey"))]
fn main() {
    if let Err(e) = app::run(std::env::args().skip(1).collect()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(all(feature = "client", feature = "yubikey")))]
fn main() {
    eprintln!("error: this example needs features `client` and `yubikey`");
    std::process::exit(1);
}

#[cfg(all(feature = "client", feature = "yubikey"))]
mod app {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use hwkey::client::discovery::{self, DeviceSpec};
    use hwkey::client::webauthn::{UserInteraction, WebAuthnClient};
    use hwkey::client::{Device, Op, Progress};
    use hwkey::crypto::default_provider;
    use hwkey::derive::{
        Backend, DerivedSecret, Enrollment, Fido2HmacSecretSource, Fido2Options, YubikeyHmacSource, derive, enroll,
        random_salt,
    };
    use hwkey::proto::webauthn::{CreationOptionsJson, RequestOptionsJson};
    use hwkey::yubikey::{OtpConnection, Slot};
    use std::io::{BufRead, Read, Write};
    use std::sync::Mutex;
    use std::time::Duration;
    use zeroize::Zeroizing;

    const USAGE: &str = "usage: desktop_login [--device D] [--pin PIN] [--backend fido2|yubikey] [--slot 1|2] \
[--rp-id ID] [--server URL] [--origin URL] (seal FILE TEXT | open FILE | register USER | login [USER])";
    /// Additional data bound to every vault ciphertext.
    const AAD: &[u8] = b"hwkey vault";

    struct Flags {
        device: Option<String>,
        pin: Option<String>,
        yubikey: bool,
        slot: Slot,
        rp_id: String,
        server: String,
        origin: Option<String>,
    }

    pub fn run(mut args: Vec<String>) -> Result<(), String> {
        let mut f = Flags {
            device: None,
            pin: std::env::var("HWKEY_PIN").ok().filter(|p| !p.is_empty()),
            yubikey: false,
            slot: Slot::Two,
            rp_id: "hwkey-desktop-login".into(),
            server: "http://localhost:8080".into(),
            origin: None,
        };
        while args.first().is_some_and(|a| a.starts_with("--")) {
            let flag = args.remove(0);
            if args.is_empty() {
                return Err(format!("{flag} needs a value\n{USAGE}"));
            }
            let value = args.remove(0);
            match flag.as_str() {
                "--device" => f.device = Some(value),
                "--pin" => f.pin = Some(value),
                "--backend" => {
                    f.yubikey = match value.as_str() {
                        "fido2" => false,
                        "yubikey" => true,
                        _ => return Err(format!("--backend {value:?}: fido2 or yubikey")),
                    }
                }
                "--slot" => {
                    let n = value.parse().map_err(|_| format!("--slot {value:?}: 1 or 2"))?;
                    f.slot = Slot::from_number(n).map_err(|e| e.to_string())?;
                }
                "--rp-id" => f.rp_id = value,
                "--server" => f.server = value,
                "--origin" => f.origin = Some(value),
                _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["seal", path, text] => seal(&f, path, text),
            ["open", path] => open(&f, path),
            ["register", user] => register(&f, user),
            ["login", user] => login(&f, Some(user)),
            ["login"] => login(&f, None),
            _ => Err(USAGE.into()),
        }
    }

    // ---------------------------------------------------------------- keys

    /// PINs: the one given, else asked on the terminal (once per ceremony
    /// attempt; a wrong given PIN is not retried, so retries are not burnt).
    struct Pin(Mutex<Option<Zeroizing<String>>>, bool);

    impl Pin {
        fn new(given: Option<String>) -> Self {
            let fixed = given.is_some();
            Pin(Mutex::new(given.map(Zeroizing::new)), fixed)
        }
    }

    impl UserInteraction for Pin {
        fn request_pin(&self, retries: Option<u64>) -> Option<Zeroizing<String>> {
            let mut given = self.0.lock().ok()?;
            if self.1 {
                // A wrong --pin (retries known) is not tried again.
                return if retries.is_some() { None } else { given.clone() };
            }
            match retries {
                Some(r) => eprint!("Wrong PIN ({r} attempts left). PIN (echoed): "),
                None => eprint!("PIN of the security key (echoed): "),
            }
            let _ = std::io::stderr().flush();
            let mut line = Zeroizing::new(String::new());
            std::io::stdin().lock().read_line(&mut line).ok()?;
            let pin = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
            *given = Some(pin.clone());
            (!pin.is_empty()).then_some(pin)
        }
    }

    fn op() -> Op {
        let prompted = std::sync::atomic::AtomicBool::new(false);
        Op::timeout(Duration::from_secs(60)).on_progress(move |p| {
            if p == Progress::WaitingForTouch && !prompted.swap(true, std::sync::atomic::Ordering::SeqCst) {
                eprintln!("Touch your security key...");
            }
        })
    }

    fn open_fido(f: &Flags) -> Result<Device, String> {
        let spec = f.device.as_deref().map(str::parse::<DeviceSpec>).transpose().map_err(|e| e.to_string())?;
        discovery::open(spec.as_ref(), &op()).map_err(|e| e.to_string())
    }

    fn open_yubikey(f: &Flags) -> Result<OtpConnection<Box<dyn hwkey::yubikey::FeatureReportTransport>>, String> {
        let t = hwkey::yubikey::open_device(f.device.as_deref()).map_err(|e| e.to_string())?;
        Ok(OtpConnection::new(t))
    }

    fn touch_prompt() -> impl FnMut(hwkey::yubikey::Progress) {
        let mut prompted = false;
        move |p| {
            if matches!(p, hwkey::yubikey::Progress::TouchNeeded { .. }) && !prompted {
                eprintln!("Touch your YubiKey...");
                prompted = true;
            }
        }
    }

    /// Enroll a new secret (random salt) with the chosen backend.
    fn enroll_new(f: &Flags) -> Result<(Enrollment, DerivedSecret), String> {
        let salt = random_salt().map_err(|e| e.to_string())?;
        if f.yubikey {
            let mut conn = open_yubikey(f)?;
            let mut progress = touch_prompt();
            let mut source = YubikeyHmacSource::new(&mut conn, f.slot, &mut progress);
            return enroll(&mut source, &salt).map_err(|e| e.to_string());
        }
        let mut dev = open_fido(f)?;
        let ui = Pin::new(f.pin.clone());
        let mut source = Fido2HmacSecretSource::create(&mut dev, &ui, &Fido2Options::new(&f.rp_id), op())
            .map_err(|e| e.to_string())?;
        eprintln!("Created a credential for {:?}; touch the key once more to derive the secret.", f.rp_id);
        enroll(&mut source, &salt).map_err(|e| e.to_string())
    }

    /// Derive the secret of `enrollment` again, with whichever backend it names.
    fn derive_again(f: &Flags, enrollment: &Enrollment) -> Result<DerivedSecret, String> {
        match &enrollment.backend {
            Backend::YubikeyHmac { .. } => {
                let mut conn = open_yubikey(f)?;
                let mut progress = touch_prompt();
                let mut source = YubikeyHmacSource::for_enrollment(&mut conn, enrollment, &mut progress)
                    .map_err(|e| e.to_string())?;
                derive(enrollment, &mut source).map_err(|e| e.to_string())
            }
            Backend::Fido2HmacSecret { .. } => {
                let mut dev = open_fido(f)?;
                let ui = Pin::new(f.pin.clone());
                let mut source = Fido2HmacSecretSource::for_enrollment(&mut dev, &ui, enrollment, op())
                    .map_err(|e| e.to_string())?;
                derive(enrollment, &mut source).map_err(|e| e.to_string())
            }
        }
    }

    // ---------------------------------------------------------- local data

    fn seal(f: &Flags, path: &str, text: &str) -> Result<(), String> {
        let (enrollment, key) = enroll_new(f)?;
        let p = default_provider();
        let mut nonce = [0u8; 12];
        p.fill_random(&mut nonce).map_err(|e| e.to_string())?;
        let sealed = p.aes256_gcm_seal(&key[..], &nonce, AAD, text.as_bytes()).map_err(|e| e.to_string())?;
        let file = serde_json::json!({
            "enrollment": enrollment,
            "nonce": B64.encode(nonce),
            "ciphertext": B64.encode(sealed),
        });
        let json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {path}: {e}"))?;
        eprintln!("sealed {path} under a {} secret", enrollment.backend.kind());
        Ok(())
    }

    fn open(f: &Flags, path: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        let enrollment: Enrollment =
            serde_json::from_value(v["enrollment"].clone()).map_err(|e| format!("{path}: enrollment: {e}"))?;
        let field = |k: &str| B64.decode(v[k].as_str().unwrap_or_default()).map_err(|_| format!("{path}: bad {k}"));
        let nonce: [u8; 12] = field("nonce")?.try_into().map_err(|_| format!("{path}: bad nonce"))?;
        let ciphertext = field("ciphertext")?;
        let key = derive_again(f, &enrollment)?;
        let plain = default_provider()
            .aes256_gcm_open(&key[..], &nonce, AAD, &ciphertext)
            .map_err(|_| format!("{path}: the ciphertext does not open under the derived key (file altered?)"))?;
        let plain = Zeroizing::new(plain);
        println!("{}", String::from_utf8_lossy(&plain));
        Ok(())
    }

    // ------------------------------------------------------ relying party

    fn origin_of(f: &Flags) -> Result<String, String> {
        if let Some(o) = &f.origin {
            return Ok(o.trim_end_matches('/').to_owned());
        }
        let u = Url::parse(&f.server)?;
        Ok(u.origin())
    }

    /// The options body, with or without a `publicKey` wrapper.
    fn unwrap_options(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(mut m) if m.contains_key("publicKey") => {
                m.remove("publicKey").unwrap_or_default()
            }
            v => v,
        }
    }

    fn register(f: &Flags, user: &str) -> Result<(), String> {
        let origin = origin_of(f)?;
        let mut http = Http::new(&f.server, &origin)?;
        let options = http
            .post_ok("/api/register/options", &serde_json::json!({ "username": user, "residentKey": "preferred" }))?;
        let options: CreationOptionsJson = serde_json::from_value(unwrap_options(options))
            .map_err(|e| format!("the server's creation options are not understood: {e}"))?;
        let mut dev = open_fido(f)?;
        let ui = Pin::new(f.pin.clone());
        let response =
            WebAuthnClient::new(&ui).register(&mut dev, &options, &origin, &op()).map_err(|e| e.to_string())?;
        let body = serde_json::to_value(&response).map_err(|e| e.to_string())?;
        let verdict = http.post_ok("/api/register/verify", &body)?;
        println!("{verdict}");
        eprintln!("registered {user:?} with the key at {}", dev.describe());
        Ok(())
    }

    fn login(f: &Flags, user: Option<&str>) -> Result<(), String> {
        let origin = origin_of(f)?;
        let mut http = Http::new(&f.server, &origin)?;
        let body = match user {
            Some(u) => serde_json::json!({ "username": u }),
            None => serde_json::json!({}),
        };
        let options = http.post_ok("/api/login/options", &body)?;
        let options: RequestOptionsJson = serde_json::from_value(unwrap_options(options))
            .map_err(|e| format!("the server's request options are not understood: {e}"))?;
        let mut dev = open_fido(f)?;
        let ui = Pin::new(f.pin.clone());
        let response =
            WebAuthnClient::new(&ui).authenticate(&mut dev, &options, &origin, &op()).map_err(|e| e.to_string())?;
        let body = serde_json::to_value(&response).map_err(|e| e.to_string())?;
        let verdict = http.post_ok("/api/login/verify", &body)?;
        println!("{verdict}");
        let who = verdict.get("username").and_then(|u| u.as_str()).unwrap_or("?");
        let session = if http.cookies.is_empty() { "no session cookie" } else { "session cookie received" };
        eprintln!("signed in as {who:?} ({session})");
        Ok(())
    }

    // ----------------------------------------------- a tiny HTTP/1.1 client

    /// `http://host[:port][/...]`.
    struct Url {
        host: String,
        port: u16,
    }

    impl Url {
        fn parse(s: &str) -> Result<Url, String> {
            let rest = match s.split_once("://") {
                Some(("http", r)) => r,
                Some(("https", _)) => return Err(format!("{s}: https needs a TLS client; use the demo over http")),
                _ => return Err(format!("{s}: expected http://HOST[:PORT]")),
            };
            let authority = rest.split('/').next().unwrap_or_default();
            let bad_port = |_| format!("{s}: bad port");
            let (host, port) = if let Some(r) = authority.strip_prefix('[') {
                let (h, after) = r.split_once(']').ok_or_else(|| format!("{s}: unclosed ["))?;
                match after.strip_prefix(':') {
                    Some(p) => (format!("[{h}]"), p.parse().map_err(bad_port)?),
                    None => (format!("[{h}]"), 80),
                }
            } else {
                match authority.rsplit_once(':') {
                    Some((h, p)) => (h.to_owned(), p.parse().map_err(bad_port)?),
                    None => (authority.to_owned(), 80),
                }
            };
            if host.is_empty() {
                return Err(format!("{s}: no host"));
            }
            Ok(Url { host, port })
        }

        fn origin(&self) -> String {
            if self.port == 80 {
                format!("http://{}", self.host)
            } else {
                format!("http://{}:{}", self.host, self.port)
            }
        }
    }

    struct Http {
        url: Url,
        origin: String,
        cookies: Vec<(String, String)>,
    }

    const MAX_RESPONSE: u64 = 1 << 20;

    impl Http {
        fn new(server: &str, origin: &str) -> Result<Http, String> {
            Ok(Http { url: Url::parse(server)?, origin: origin.to_owned(), cookies: Vec::new() })
        }

        /// POST JSON; the JSON answer of a 2xx, or the server's error as text.
        fn post_ok(&mut self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
            let (status, v) = self.post(path, body)?;
            if (200..300).contains(&status) {
                return Ok(v);
            }
            let code = v.get("error").and_then(|c| c.as_str()).unwrap_or("http_error");
            let msg = v.get("message").and_then(|c| c.as_str()).unwrap_or("");
            Err(format!("{path}: the server answered {status}: {code}: {msg}"))
        }

        fn post(&mut self, path: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value), String> {
            let payload = serde_json::to_vec(body).map_err(|e| e.to_string())?;
            let addr = format!("{}:{}", self.url.host.trim_start_matches('[').trim_end_matches(']'), self.url.port);
            let io = |e: std::io::Error| format!("{}: {e}", self.url.origin());
            let mut stream = std::net::TcpStream::connect(&addr).map_err(io)?;
            stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(io)?;
            stream.set_write_timeout(Some(Duration::from_secs(30))).map_err(io)?;
            let host = if self.url.port == 80 {
                self.url.host.clone()
            } else {
                format!("{}:{}", self.url.host, self.url.port)
            };
            let mut head = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {}\r\nContent-Type: application/json\r\n\
                 Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                self.origin,
                payload.len()
            );
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
                head.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).map_err(io)?;
            stream.write_all(&payload).map_err(io)?;
            let mut raw = Vec::new();
            stream.take(MAX_RESPONSE).read_to_end(&mut raw).map_err(io)?;
            let (status, headers, body) = parse_response(&raw)?;
            for (name, value) in &headers {
                if name.eq_ignore_ascii_case("set-cookie") {
                    self.store_cookie(value);
                }
            }
            let v = if body.iter().all(u8::is_ascii_whitespace) {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| format!("{path}: the answer ({status}) is not JSON: {e}"))?
            };
            Ok((status, v))
        }

        fn store_cookie(&mut self, set_cookie: &str) {
            let mut parts = set_cookie.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else { return };
            let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.cookies.retain(|(k, _)| k != name.trim());
            if !expired && !value.is_empty() {
                self.cookies.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }

    type Headers = Vec<(String, String)>;

    /// Status, headers and (de-chunked) body of a whole HTTP/1.1 response.
    fn parse_response(raw: &[u8]) -> Result<(u16, Headers, Vec<u8>), String> {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("truncated HTTP response")?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|_| "HTTP response head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("bad HTTP status line {status_line:?}"))?;
        let headers: Headers =
            lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
        let mut body = raw[end + 4..].to_vec();
        let header = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str());
        if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            body = dechunk(&body)?;
        } else if let Some(n) = header("content-length").and_then(|n| n.parse::<usize>().ok()) {
            body.truncate(n);
        }
        Ok((status, headers, body))
    }

    fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            let nl = b.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunked body")?;
            let size_text = std::str::from_utf8(&b[..nl]).map_err(|_| "bad chunk size")?;
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
            b = &b[nl + 2..];
            if size == 0 {
                return Ok(out);
            }
            let chunk = b.get(..size).ok_or("truncated chunk")?;
            out.extend_from_slice(chunk);
            b = b.get(size + 2..).ok_or("truncated chunk")?;
        }
    }
}

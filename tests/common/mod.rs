//! Test helpers: a minimal software signer that answers WebAuthn options the
//! way an authenticator plus browser would (authenticator data, a "none"
//! attestation object, clientDataJSON, an ES256 assertion signature), and a
//! cookie-keeping client for an in-process axum router.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hwkey::crypto::default_provider;
use hwkey::proto::attestation::AttestationObject;
use hwkey::proto::auth_data::{AttestedCredentialData, AuthenticatorData, Flags};
use hwkey::proto::cbor::MapBuilder;
use hwkey::proto::cose::{CoseAlgorithm, CoseKey};
use hwkey::proto::webauthn::{CollectedClientData, b64url_decode, b64url_encode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tower::ServiceExt;

/// The origin and RP ID the tests use.
pub const ORIGIN: &str = "http://localhost:8080";
/// The RP ID.
pub const RP_ID: &str = "localhost";

/// A software credential: one P-256 key, its ID, its counter.
#[derive(Clone)]
pub struct SoftKey {
    scalar: Vec<u8>,
    /// COSE_Key bytes of the public key.
    pub cose: Vec<u8>,
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The signature counter (incremented before each assertion).
    pub counter: u32,
    /// The user handle, once registered (returned in assertions as userHandle).
    pub user_handle: Option<Vec<u8>>,
    /// Whether assertions report user verification.
    pub uv: bool,
    /// Whether the key is discoverable (resident).
    pub resident: bool,
    /// The RP ID it signs for.
    pub rp_id: String,
}

impl Default for SoftKey {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftKey {
    /// A fresh key for [`RP_ID`].
    pub fn new() -> Self {
        let p = default_provider();
        let scalar = p.p256_generate().expect("keygen").to_vec();
        let point = p.p256_public(&scalar).expect("public");
        let cose = CoseKey::p256_from_sec1(&point, CoseAlgorithm::ES256).expect("cose").to_bytes();
        let credential_id = p.random_bytes(32).expect("rng");
        SoftKey {
            scalar,
            cose,
            credential_id,
            counter: 0,
            user_handle: None,
            uv: true,
            resident: false,
            rp_id: RP_ID.into(),
        }
    }

    /// The credential ID as base64url.
    pub fn id_b64(&self) -> String {
        b64url_encode(&self.credential_id)
    }

    fn client_data(&self, typ: &str, challenge: &str, origin: &str) -> Vec<u8> {
        CollectedClientData {
            type_: typ.into(),
            challenge: challenge.into(),
            origin: origin.into(),
            cross_origin: Some(false),
            top_origin: None,
        }
        .to_json_bytes()
    }

    fn flags(&self) -> u8 {
        Flags::UP | if self.uv { Flags::UV } else { 0 }
    }

    /// A RegistrationResponseJSON for creation options (as JSON).
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        let challenge = options["challenge"].as_str().expect("challenge").to_owned();
        self.register_with(&challenge, origin, &self.rp_id.clone(), options)
    }

    /// A RegistrationResponseJSON with explicit challenge, origin and RP ID.
    pub fn register_with(&mut self, challenge: &str, origin: &str, rp_id: &str, options: &Value) -> Value {
        if let Some(uid) = options["user"]["id"].as_str() {
            self.user_handle = b64url_decode(uid).ok();
        }
        if options["authenticatorSelection"]["residentKey"] == "required" {
            self.resident = true;
        }
        let cdj = self.client_data("webauthn.create", challenge, origin);
        let ad = AuthenticatorData {
            rp_id_hash: default_provider().sha256(&[rp_id.as_bytes()]),
            flags: Flags(self.flags()),
            sign_count: self.counter,
            attested_credential: Some(AttestedCredentialData {
                aaguid: [0x11; 16],
                credential_id: self.credential_id.clone(),
                public_key: CoseKey::from_bytes(&self.cose).expect("cose"),
                public_key_bytes: self.cose.clone(),
            }),
            extensions: None,
        };
        let raw = ad.to_bytes();
        let att = AttestationObject {
            fmt: "none".into(),
            att_stmt: MapBuilder::new().build(),
            auth_data: ad,
            auth_data_raw: raw,
        };
        json!({
            "id": self.id_b64(),
            "rawId": self.id_b64(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(&cdj),
                "attestationObject": b64url_encode(&att.to_bytes()),
                "transports": ["usb"],
            },
            "clientExtensionResults": { "credProps": { "rk": self.resident } },
            "authenticatorAttachment": "cross-platform",
        })
    }

    /// An AuthenticationResponseJSON for request options; the counter goes up by one.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        self.counter += 1;
        let challenge = options["challenge"].as_str().expect("challenge").to_owned();
        self.assert_with(&challenge, origin, &self.rp_id.clone(), self.counter)
    }

    /// An AuthenticationResponseJSON with explicit challenge, origin, RP ID and counter.
    pub fn assert_with(&self, challenge: &str, origin: &str, rp_id: &str, counter: u32) -> Value {
        let cdj = self.client_data("webauthn.get", challenge, origin);
        let ad = AuthenticatorData {
            rp_id_hash: default_provider().sha256(&[rp_id.as_bytes()]),
            flags: Flags(self.flags()),
            sign_count: counter,
            attested_credential: None,
            extensions: None,
        }
        .to_bytes();
        let hash = default_provider().sha256(&[&cdj]);
        let mut msg = ad.clone();
        msg.extend_from_slice(&hash);
        let sig = default_provider().p256_sign(&self.scalar, &msg).expect("sign");
        let mut resp = json!({
            "id": self.id_b64(),
            "rawId": self.id_b64(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(&cdj),
                "authenticatorData": b64url_encode(&ad),
                "signature": b64url_encode(&sig),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        });
        if let Some(h) = &self.user_handle {
            resp["response"]["userHandle"] = json!(b64url_encode(h));
        }
        resp
    }
}

/// A response as the tests see it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body as JSON (Null when it is not JSON).
    pub json: Value,
    /// Raw body.
    pub body: Vec<u8>,
    /// Set-Cookie headers.
    pub set_cookies: Vec<String>,
}

impl Reply {
    /// Assert the contract's error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body {}", self.json);
        assert_eq!(self.json["verified"], json!(false), "body {}", self.json);
        assert_eq!(self.json["error"], json!(code), "body {}", self.json);
        assert!(self.json["message"].is_string(), "body {}", self.json);
    }

    /// Assert the contract's error shape with any 4xx status.
    #[track_caller]
    pub fn assert_client_error(&self) {
        assert!(self.status.is_client_error(), "status {}; body {}", self.status, String::from_utf8_lossy(&self.body));
        assert_eq!(self.json["verified"], json!(false), "body {}", self.json);
        assert!(self.json["error"].is_string(), "body {}", self.json);
        assert!(self.json["message"].is_string(), "body {}", self.json);
    }

    /// Assert 200 and return the JSON.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body {}", String::from_utf8_lossy(&self.body));
        &self.json
    }
}

/// A browser stand-in: a router (or a server over TCP) and a cookie jar.
#[derive(Clone)]
pub struct Client {
    /// The router under test.
    pub app: Router,
    /// Cookies by name.
    pub jar: BTreeMap<String, String>,
    /// Send this Origin header.
    pub origin_header: Option<String>,
    /// Send requests to the server listening here over HTTP/1.1 instead of
    /// to `app`.
    pub remote: Option<std::net::SocketAddr>,
}

impl Client {
    /// A client with an empty jar.
    pub fn new(app: Router) -> Self {
        Client { app, jar: BTreeMap::new(), origin_header: None, remote: None }
    }

    /// A client of the server listening at `addr`, with an empty jar.
    #[allow(dead_code)]
    pub fn remote(addr: std::net::SocketAddr) -> Self {
        Client { remote: Some(addr), ..Client::new(Router::new()) }
    }

    /// One request over a fresh HTTP/1.1 connection (closed after it):
    /// status, Set-Cookie values, body.
    async fn send_remote(
        addr: std::net::SocketAddr,
        method: &Method,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> (StatusCode, Vec<String>, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the server");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.expect("send the request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read the response");
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 =
            lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("status line");
        let mut set_cookies = Vec::new();
        let mut length = None;
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("set-cookie") {
                    set_cookies.push(v.trim().to_owned());
                } else if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let mut body = raw[split + 4..].to_vec();
        if let Some(n) = length {
            body.truncate(n);
        }
        (StatusCode::from_u16(status).expect("status"), set_cookies, body)
    }

    /// Send a request with raw body bytes.
    pub async fn send(&mut self, method: Method, path: &str, body: impl Into<Body>) -> Reply {
        let body: Body = body.into();
        let mut headers = vec![(header::CONTENT_TYPE.to_string(), "application/json".to_owned())];
        if !self.jar.is_empty() {
            let c: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            headers.push((header::COOKIE.to_string(), c.join("; ")));
        }
        if let Some(o) = &self.origin_header {
            headers.push((header::ORIGIN.to_string(), o.clone()));
        }
        let (status, set_cookies, body) = match self.remote {
            Some(addr) => {
                let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
                Self::send_remote(addr, &method, path, &headers, &bytes).await
            }
            None => {
                let mut b = Request::builder().method(method).uri(path);
                if let Some(n) = axum::body::HttpBody::size_hint(&body).exact() {
                    b = b.header(header::CONTENT_LENGTH, n);
                }
                for (k, v) in &headers {
                    b = b.header(k.as_str(), v.as_str());
                }
                let req = b.body(body).expect("request");
                let resp = self.app.clone().oneshot(req).await.expect("infallible");
                let status = resp.status();
                let set_cookies: Vec<String> = resp
                    .headers()
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_owned))
                    .collect();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body").to_vec();
                (status, set_cookies, body)
            }
        };
        for c in &set_cookies {
            let first = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = first.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.jar.remove(k);
                } else {
                    self.jar.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Reply { status, json, body, set_cookies }
    }

    /// POST JSON.
    pub async fn post(&mut self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, serde_json::to_vec(body).expect("json")).await
    }

    /// GET.
    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, Body::empty()).await
    }

    /// Register `username` with `key` (options, sign, verify); returns the verify reply.
    pub async fn register(&mut self, username: &str, key: &mut SoftKey, extra: Value) -> Reply {
        let mut req = json!({ "username": username });
        if let (Some(m), Some(e)) = (req.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        let opts = self.post("/api/register/options", &req).await;
        let opts = opts.ok().clone();
        let resp = key.register(&opts, ORIGIN);
        self.post("/api/register/verify", &resp).await
    }

    /// Sign in (with `username`, or discoverable when None) with `key`; returns the verify reply.
    pub async fn login(&mut self, username: Option<&str>, key: &mut SoftKey) -> Reply {
        let req = match username {
            Some(u) => json!({ "username": u }),
            None => json!({}),
        };
        let opts = self.post("/api/login/options", &req).await;
        let opts = opts.ok().clone();
        let resp = key.assert(&opts, ORIGIN);
        self.post("/api/login/verify", &resp).await
    }
}

//! Helpers for the HTTP and JWT tests: a raw HTTP/1.1 client (hyper), MCP JSON-RPC over it,
//! in-test signing keys (aws-lc-rs) and a JWKS server on 127.0.0.1 whose keys can be rotated.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use axum::http::{self, HeaderMap};
use http_body_util::BodyExt;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The JSON-RPC message: the body, or the last `data:` line of an SSE body.
    pub fn json(&self) -> Value {
        if let Ok(v) = serde_json::from_str(&self.body) {
            return v;
        }
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .next_back()
            .unwrap_or(Value::Null)
    }

    /// The stable error code of a tool result, or `ok`.
    pub fn tool_code(&self) -> String {
        let r = &self.json()["result"];
        if r["isError"] == true {
            r["structuredContent"]["error"]["code"]
                .as_str()
                .unwrap_or("<no code>")
                .to_owned()
        } else if r.is_object() {
            "ok".into()
        } else {
            format!("<no result: {}>", self.body)
        }
    }
}

/// Sends one request on a fresh connection.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Reply {
    let uri: http::Uri = url.parse().unwrap();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap_or(80));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().unwrap().as_str());
    let mut has_host = false;
    for (k, v) in headers {
        has_host |= k.eq_ignore_ascii_case("host");
        builder = builder.header(*k, *v);
    }
    if !has_host {
        builder = builder.header("host", uri.authority().unwrap().as_str());
    }
    let req = builder
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.unwrap_or_default(),
        )))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        res.into_body().collect(),
    )
    .await
    .expect("the body must end")
    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
    .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// POSTs a JSON-RPC message to `/mcp` with a bearer token (if any) and extra headers.
pub async fn post_mcp(
    url: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    message: &Value,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    headers.extend_from_slice(extra);
    request("POST", url, &headers, Some(message.to_string())).await
}

/// A `tools/call` request.
pub fn tool_call(name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}})
}

/// An `initialize` request.
pub fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "1"}}})
}

/// A signing key made in the test, with its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// The public key's DER bytes (what an attacker may hold).
    pub public_der: Vec<u8>,
}

impl SigningKey {
    pub fn rsa(kid: &str) -> SigningKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let pkcs1 = pkcs8_inner(pkcs8.as_ref());
        let public_der = {
            use aws_lc_rs::signature::KeyPair;
            AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key())
                .unwrap()
                .as_ref()
                .to_vec()
        };
        Self::finish(
            kid,
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&pkcs1),
            public_der,
        )
    }

    pub fn es256(kid: &str) -> SigningKey {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        Self::finish(
            kid,
            Algorithm::ES256,
            EncodingKey::from_ec_der(doc.as_ref()),
            Vec::new(),
        )
    }

    pub fn ed25519(kid: &str) -> SigningKey {
        let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
        Self::finish(
            kid,
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(doc.as_ref()),
            Vec::new(),
        )
    }

    fn finish(kid: &str, alg: Algorithm, encoding: EncodingKey, public_der: Vec<u8>) -> SigningKey {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        let jwk = serde_json::to_value(&jwk).unwrap();
        SigningKey {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
            public_der,
        }
    }

    /// Signs claims with this key, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo.
fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
    fn read(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, skip) = if der[1] < 0x80 {
            (der[1] as usize, 2)
        } else {
            let n = (der[1] & 0x7f) as usize;
            (
                der[2..2 + n]
                    .iter()
                    .fold(0usize, |a, b| (a << 8) | *b as usize),
                2 + n,
            )
        };
        (tag, &der[skip..skip + len], &der[skip + len..])
    }
    let (_, seq, _) = read(der);
    let (_, _version, rest) = read(seq);
    let (_, _alg, rest) = read(rest);
    let (tag, key, _) = read(rest);
    assert_eq!(tag, 0x04, "PKCS#8 private key must be an OCTET STRING");
    key.to_vec()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWKS server on 127.0.0.1 whose key set can be replaced, counting fetches.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> JwksServer {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (keys.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"keys": *k.lock().unwrap()}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            keys,
            fetches,
        }
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

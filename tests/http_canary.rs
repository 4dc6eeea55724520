//! Canary: a known API key, JWT and secret parameter value never appear (raw, base64, hex or
//! URL-encoded) in audit lines, traces, error messages or responses, across a run over HTTP
//! that includes successes, refusals, invalid input and a panicking tool.
//!
//! Traces are captured at `trace` for everything except rmcp, which logs whole requests
//! (arguments included) at `debug`: run rmcp at `info` or above in production (the example
//! uses `rmcp=warn`).

mod http_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_support::{JwksServer, Reply, SigningKey, now, post_mcp, tool_call};
use mcp_secure::audit::JsonLinesSink;
use mcp_secure::auth::jwt::HttpJwks;
use mcp_secure::auth::{
    ApiKeyStore, BearerAuthenticator, Environment, JwtAuthenticator, JwtConfig,
};
use mcp_secure::server::HttpConfig;
use mcp_secure::{Ctx, Secret, SecureServer, ToolError, roles, tool, tools};
use serde_json::json;

roles! { "read-only", "admin": * }

const SECRET: &str = "canary-S3cr3t-value-9f8e7d";

/// Checks a password.
#[tool(kind = "read", role = "read-only")]
async fn login(
    _ctx: Ctx<()>,
    /// The user.
    #[validate(length(min = 1, max = 32))]
    user: String,
    /// The password.
    #[validate(length(min = 1, max = 40))]
    password: Secret<String>,
) -> Result<String, ToolError> {
    if password.expose() == SECRET {
        Ok(format!("welcome {user}"))
    } else {
        Err(ToolError::failed("wrong password"))
    }
}

/// Panics while holding a secret (printing it the only way a `Secret` prints).
#[tool(kind = "read", role = "read-only")]
async fn explode(
    _ctx: Ctx<()>,
    /// The password.
    #[validate(length(min = 1, max = 40))]
    password: Secret<String>,
) -> Result<String, ToolError> {
    panic!("could not use {password:?} / {password}");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn forms(value: &str) -> Vec<(String, String)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let url: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![
        ("raw".into(), value.to_owned()),
        ("base64".into(), STANDARD.encode(value)),
        ("base64 (no pad)".into(), STANDARD_NO_PAD.encode(value)),
        ("base64url".into(), URL_SAFE.encode(value)),
        ("base64url (no pad)".into(), URL_SAFE_NO_PAD.encode(value)),
        ("hex".into(), hex_lower(value.as_bytes())),
        ("HEX".into(), hex_lower(value.as_bytes()).to_uppercase()),
        ("url-encoded".into(), url),
    ]
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn canaries_never_leak_over_http() {
    let traces = Captured::default();
    let writer = traces.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,rmcp=info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let keys = ApiKeyStore::new(Environment::Test);
    let api_key = keys
        .generate("kay", &["read-only".to_owned()], Environment::Test, None)
        .unwrap()
        .token;
    let key = SigningKey::rsa("k1");
    let jwks = JwksServer::start(vec![key.jwk.clone()]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let audience = format!("http://127.0.0.1:{port}/mcp");
    let claims = json!({"iss": "http://127.0.0.1/iss", "aud": audience, "sub": "jo", "exp": now() + 300, "roles": ["read-only"]});
    let jwt = key.sign(&claims);
    let expired_jwt = key.sign(&json!({"iss": "http://127.0.0.1/iss", "aud": audience, "sub": "jo", "exp": now() - 300, "roles": ["read-only"]}));
    let forged_key = format!(
        "{}{}",
        &api_key[..api_key.len() - 1],
        if api_key.ends_with('0') { '1' } else { '0' }
    );

    let server = SecureServer::builder(())
        .roles(ROLES)
        .tools(tools![login, explode])
        .authenticator(
            BearerAuthenticator::new()
                .api_keys(keys)
                .jwt(JwtAuthenticator::new(JwtConfig::new(
                    "http://127.0.0.1/iss",
                    audience.clone(),
                    HttpJwks::new(&jwks.url).unwrap(),
                ))),
        )
        .audit(JsonLinesSink::open(&audit_path).unwrap())
        .build()
        .unwrap();
    let config = HttpConfig::new(format!("127.0.0.1:{port}").parse().unwrap())
        .stateful(false)
        .json_response(true)
        .max_body_bytes(4096);
    let http = server.serve_http(config).await.unwrap();
    let url = http.url();

    let mut replies: Vec<Reply> = Vec::new();
    let login_args = |pw: serde_json::Value| json!({"user": "u", "password": pw});
    for token in [api_key.as_str(), jwt.as_str()] {
        let t = Some(token);
        replies.push(post_mcp(&url, t, &[], &tool_call("login", login_args(json!(SECRET)))).await);
        replies.push(
            post_mcp(
                &url,
                t,
                &[],
                &tool_call("login", login_args(json!("wrong"))),
            )
            .await,
        );
        replies.push(
            post_mcp(
                &url,
                t,
                &[],
                &tool_call("explode", json!({"password": SECRET})),
            )
            .await,
        );
        // Invalid input: too long, wrong type, unknown field next to the secret.
        replies.push(
            post_mcp(
                &url,
                t,
                &[],
                &tool_call(
                    "login",
                    login_args(json!(format!("{SECRET}{}", "x".repeat(30)))),
                ),
            )
            .await,
        );
        replies.push(
            post_mcp(
                &url,
                t,
                &[],
                &tool_call("login", json!({"user": "u", "password": [SECRET]})),
            )
            .await,
        );
        replies.push(
            post_mcp(
                &url,
                t,
                &[],
                &tool_call(
                    "login",
                    json!({"user": "u", "password": SECRET, "extra": 1}),
                ),
            )
            .await,
        );
        // Refused at the HTTP layer with the token present: bad Host, oversized body.
        replies.push(
            post_mcp(
                &url,
                t,
                &[("host", "evil.example")],
                &tool_call("login", login_args(json!(SECRET))),
            )
            .await,
        );
        replies.push(
            post_mcp(
                &url,
                t,
                &[],
                &tool_call(
                    "login",
                    json!({"user": "x".repeat(5000), "password": SECRET}),
                ),
            )
            .await,
        );
    }
    // Bad credentials carrying (most of) the canaries.
    for bad in [forged_key.as_str(), expired_jwt.as_str()] {
        replies.push(
            post_mcp(
                &url,
                Some(bad),
                &[],
                &tool_call("login", login_args(json!(SECRET))),
            )
            .await,
        );
    }
    // A token in `_meta.authToken`, over a bearer-authenticated request.
    let mut meta_call = tool_call("login", login_args(json!(SECRET)));
    meta_call["params"]["_meta"] = json!({"authToken": api_key});
    replies.push(post_mcp(&url, Some(&jwt), &[], &meta_call).await);

    let codes: Vec<String> = replies
        .iter()
        .map(|r| format!("{} {}", r.status, r.tool_code()))
        .collect();
    assert!(codes.iter().any(|c| c == "200 ok"), "{codes:?}");
    assert!(
        codes.iter().any(|c| c == "200 internal"),
        "the panic became internal: {codes:?}"
    );
    assert!(codes.iter().any(|c| c == "200 invalid_input"), "{codes:?}");
    assert!(codes.iter().any(|c| c == "200 failed"), "{codes:?}");
    assert!(codes.iter().any(|c| c.starts_with("401")), "{codes:?}");
    assert!(codes.iter().any(|c| c.starts_with("403")), "{codes:?}");
    assert!(codes.iter().any(|c| c.starts_with("413")), "{codes:?}");

    http.shutdown();
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    assert!(audit.lines().count() >= 12, "the run was audited: {audit}");
    assert!(audit.contains("[REDACTED]"));
    let traces = String::from_utf8_lossy(&traces.0.lock().unwrap()).into_owned();
    assert!(
        traces.contains("tool body panicked"),
        "traces were captured"
    );
    let responses: String = replies
        .iter()
        .map(|r| format!("{:?}\n{}\n", r.headers, r.body))
        .collect();

    let api_secret_part = api_key.rsplit('_').next().unwrap().to_owned();
    let jwt_signature = jwt.rsplit('.').next().unwrap().to_owned();
    let canaries = [
        ("api key", api_key.clone()),
        ("api key secret part", api_secret_part),
        ("forged api key", forged_key.clone()),
        ("jwt", jwt.clone()),
        ("jwt signature", jwt_signature),
        ("expired jwt", expired_jwt.clone()),
        ("secret parameter", SECRET.to_owned()),
    ];
    for (where_, text) in [
        ("audit", &audit),
        ("traces", &traces),
        ("responses", &responses),
    ] {
        for (name, canary) in &canaries {
            for (form, encoded) in forms(canary) {
                assert!(
                    !text.contains(&encoded),
                    "{name} ({form}) leaked into {where_}"
                );
            }
        }
    }
}

//! Streamable HTTP: the same pipeline as stdio behind the HTTP guards. Host/Origin allow-lists
//! (DNS rebinding), bearer API keys, the body limit, the per-IP flood guard, Protected Resource
//! Metadata, and that refusals at the HTTP layer never reach a tool.

mod http_support;

use std::sync::atomic::{AtomicUsize, Ordering};

use http_support::{Reply, initialize, post_mcp, request, tool_call};
use mcp_secure::audit::{MemorySink, Phase};
use mcp_secure::auth::{ApiKeyStore, BearerAuthenticator, Environment};
use mcp_secure::server::{HttpConfig, HttpServer};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use serde_json::json;

roles! { "read-only", "editor": "read-only", "admin": * }

#[derive(Default)]
struct State {
    ran: AtomicUsize,
}

/// Echo text back.
#[tool(kind = "read", role = "read-only")]
async fn echo(
    ctx: Ctx<State>,
    /// What to echo.
    #[validate(length(max = 100))]
    text: String,
) -> Result<String, ToolError> {
    ctx.ran.fetch_add(1, Ordering::SeqCst);
    Ok(text)
}

/// Who am I.
#[tool(kind = "read", role = "editor")]
async fn whoami(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran.fetch_add(1, Ordering::SeqCst);
    Ok(ctx.principal().user.clone())
}

struct Fixture {
    http: HttpServer,
    audit: MemorySink,
    server: SecureServer<State>,
    reader: String,
    editor: String,
    live: String,
    /// A valid key whose only role this server does not declare.
    stranger: String,
}

async fn start(config: HttpConfig) -> Fixture {
    let keys = ApiKeyStore::new(Environment::Test);
    let key = |u: &str, r: &str, env| keys.generate(u, &[r.to_owned()], env, None).unwrap().token;
    let (reader, editor, live, stranger) = (
        key("rita", "read-only", Environment::Test),
        key("ed", "editor", Environment::Test),
        key("lee", "admin", Environment::Live),
        key("sam", "superuser", Environment::Test),
    );
    let audit = MemorySink::new();
    let server = SecureServer::builder(State::default())
        .name("http-test", "1.0.0")
        .roles(ROLES)
        .tools(tools![echo, whoami])
        .authenticator(BearerAuthenticator::new().api_keys(keys))
        .audit(audit.clone())
        .build()
        .unwrap();
    let http = server.clone().serve_http(config).await.unwrap();
    Fixture {
        http,
        audit,
        server,
        reader,
        editor,
        live,
        stranger,
    }
}

fn stateless() -> HttpConfig {
    HttpConfig::new("127.0.0.1:0".parse().unwrap())
        .stateful(false)
        .json_response(true)
}

impl Fixture {
    fn ran(&self) -> usize {
        self.server.state().ran.load(Ordering::SeqCst)
    }
    async fn call(
        &self,
        token: Option<&str>,
        extra: &[(&str, &str)],
        tool: &str,
        text: &str,
    ) -> Reply {
        post_mcp(
            &self.http.url(),
            token,
            extra,
            &tool_call(tool, json!({"text": text})),
        )
        .await
    }
}

#[tokio::test]
async fn api_keys_over_http_go_through_the_same_pipeline() {
    let f = start(stateless()).await;
    let r = f.call(Some(&f.reader), &[], "echo", "hello").await;
    assert_eq!(
        (r.status, r.tool_code()),
        (200, "ok".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(r.json()["result"]["content"][0]["text"], "hello");
    let events = f.audit.events();
    let last = events
        .iter()
        .rev()
        .find(|e| e.phase == Phase::Outcome)
        .unwrap();
    assert_eq!(
        (last.transport.as_str(), last.user.as_deref()),
        ("http", Some("rita"))
    );
    // Per-tool RBAC stays a tool result, not an HTTP error.
    let r = f.call(Some(&f.reader), &[], "whoami", "").await;
    assert_eq!((r.status, r.tool_code()), (200, "forbidden".to_owned()));
    let r = post_mcp(
        &f.http.url(),
        Some(&f.editor),
        &[],
        &tool_call("whoami", json!({})),
    )
    .await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "ed");
    assert_eq!(f.ran(), 2);
}

#[tokio::test]
async fn missing_bad_and_other_environment_keys_get_401_with_a_challenge() {
    let f = start(stateless()).await;
    let prm = format!(
        "resource_metadata=\"http://{}/.well-known/oauth-protected-resource\"",
        f.http.local_addr()
    );

    let r = f.call(None, &[], "echo", "x").await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(&prm),
        "{challenge}"
    );
    assert!(
        !challenge.contains("error="),
        "no error code when no credential was sent: {challenge}"
    );

    let r = f.call(Some("mcs_test_abc_0000"), &[], "echo", "x").await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );

    let r = f.call(Some(&f.live), &[], "echo", "x").await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate").contains("`live` key"),
        "{}",
        r.header("www-authenticate")
    );
    assert_eq!(f.ran(), 0, "no refused request reached a tool");
    // Refused at the HTTP layer, before the pipeline, and still on record: one each.
    let outcomes: Vec<(String, String)> = f
        .audit
        .events()
        .into_iter()
        .map(|e| (e.tool, e.outcome))
        .collect();
    let http = mcp_secure::server::http::HTTP_REFUSAL_TOOL.to_owned();
    assert_eq!(outcomes, vec![(http, "unauthorized".to_owned()); 3]);
}

#[tokio::test]
async fn host_and_origin_outside_the_allow_list_get_403_even_with_a_valid_key() {
    let f = start(stateless()).await;
    let r = f
        .call(Some(&f.reader), &[("host", "evil.example")], "echo", "x")
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = f
        .call(None, &[("host", "evil.example:80")], "echo", "x")
        .await;
    assert_eq!(r.status, 403, "the Host check comes before authentication");
    let r = f
        .call(
            Some(&f.reader),
            &[("origin", "http://evil.example")],
            "echo",
            "x",
        )
        .await;
    assert_eq!(r.status, 403);
    let r = f
        .call(Some(&f.reader), &[("origin", "null")], "echo", "x")
        .await;
    assert_eq!(r.status, 403);
    // Loopback names and a loopback origin pass.
    let port = f.http.local_addr().port();
    let host = format!("localhost:{port}");
    let r = f
        .call(
            Some(&f.reader),
            &[("host", &host), ("origin", "http://localhost:6274")],
            "echo",
            "x",
        )
        .await;
    assert_eq!(
        (r.status, r.tool_code()),
        (200, "ok".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(f.ran(), 1);
    // Each refusal is on record, with the request's method, path and peer, then the call.
    let events = f.audit.events();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["forbidden", "forbidden", "forbidden", "forbidden", "ok"]
    );
    for e in &events[..4] {
        assert_eq!(e.tool, mcp_secure::server::http::HTTP_REFUSAL_TOOL);
        assert_eq!(
            (e.input["method"].as_str(), e.input["path"].as_str()),
            (Some("POST"), Some("/mcp"))
        );
        assert_eq!(e.input["peer"], "127.0.0.1");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_before_parsing() {
    let f = start(stateless().max_body_bytes(2048)).await;
    let r = f
        .call(Some(&f.reader), &[], "echo", &"x".repeat(4000))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    // Not even authentication is needed to be refused for size; and nothing ran.
    let r = f.call(None, &[], "echo", &"x".repeat(4000)).await;
    assert!(r.status == 413 || r.status == 401);
    assert_eq!(f.ran(), 0);
    let r = f.call(Some(&f.reader), &[], "echo", "small").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = start(stateless().max_body_bytes(2048)).await;
    let addr = f.http.local_addr();
    let body = tool_call("echo", json!({"text": "x".repeat(8000)})).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        f.reader
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // No Content-Length: the limit must count the bytes as they stream in.
    for chunk in body.as_bytes().chunks(1000) {
        let sent = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .and(stream.write_all(chunk).await)
            .and(stream.write_all(b"\r\n").await);
        if sent.is_err() {
            break; // the server may close the connection as soon as it has refused
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 413"),
        "{}",
        reply.lines().next().unwrap_or_default()
    );
    assert_eq!(f.ran(), 0);
}

#[tokio::test]
async fn the_flood_guard_answers_429_per_ip_before_auth() {
    let f = start(stateless().per_ip_rate(Some("5/min")).unwrap()).await;
    for _ in 0..5 {
        let r = f.call(None, &[], "echo", "x").await;
        assert_eq!(r.status, 401);
    }
    let r = f.call(Some(&f.reader), &[], "echo", "x").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(f.ran(), 0);
}

#[tokio::test]
async fn protected_resource_metadata_is_served() {
    let config = stateless()
        .resource("http://127.0.0.1/mcp")
        .authorization_servers(["http://127.0.0.1:9/issuer"])
        .scopes_supported(["mcp.read"]);
    let f = start(config).await;
    let url = format!(
        "http://{}/.well-known/oauth-protected-resource",
        f.http.local_addr()
    );
    let r = request("GET", &url, &[], None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["resource"], "http://127.0.0.1/mcp");
    assert_eq!(
        doc["authorization_servers"],
        json!(["http://127.0.0.1:9/issuer"])
    );
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert_eq!(doc["scopes_supported"], json!(["mcp.read"]));
    let r = request("GET", &format!("{url}/mcp"), &[], None).await;
    assert_eq!(r.json()["resource"], "http://127.0.0.1/mcp");
    let r = f.call(None, &[], "echo", "x").await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.contains(
            "resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource\""
        ),
        "{challenge}"
    );
    // The challenges name the scopes to ask for (RFC 6750 §3): at the first request, and
    // when a valid token grants no role here (step-up).
    assert!(challenge.contains("scope=\"mcp.read\""), "{challenge}");
    let r = f.call(Some(&f.stranger), &[], "echo", "x").await;
    assert_eq!(r.status, 403, "{}", r.body);
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp.read\""),
        "{challenge}"
    );
    assert_eq!(f.ran(), 0);
    // Without scopes_supported there is nothing to name.
    let f = start(stateless()).await;
    let r = f.call(None, &[], "echo", "x").await;
    assert!(!r.header("www-authenticate").contains("scope="));
}

#[tokio::test]
async fn stateful_sessions_work_and_a_non_loopback_bind_needs_a_host_list() {
    let f = start(HttpConfig::new("127.0.0.1:0".parse().unwrap())).await;
    let r = post_mcp(&f.http.url(), Some(&f.reader), &[], &initialize()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let session = r.header("mcp-session-id");
    assert!(!session.is_empty());
    assert_eq!(r.json()["result"]["serverInfo"]["name"], "http-test");
    // A session does not carry a principal: every request needs its own token.
    let r = f
        .call(None, &[("mcp-session-id", &session)], "echo", "x")
        .await;
    assert_eq!(r.status, 401);

    let server = f.server.clone();
    let err = server
        .serve_http(HttpConfig::new("0.0.0.0:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("allowed_hosts"), "{err}");
}

/// A session belongs to the principal that opened it: another caller with a valid token of
/// its own cannot post into it, read its stream or end it (it is told what it would be told
/// of a session that does not exist), and the owner's session goes on working.
#[tokio::test]
async fn a_session_belongs_to_the_principal_that_opened_it() {
    let f = start(HttpConfig::new("127.0.0.1:0".parse().unwrap())).await;
    let url = f.http.url();
    let version = ("mcp-protocol-version", "2025-06-18");
    let r = post_mcp(&url, Some(&f.reader), &[], &initialize()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let session = r.header("mcp-session-id");
    let owned = [("mcp-session-id", session.as_str()), version];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post_mcp(&url, Some(&f.reader), &owned, &initialized).await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Another principal, with a valid key of its own.
    let r = f.call(Some(&f.editor), &owned, "echo", "x").await;
    assert_eq!(r.status, 404, "posted into another's session: {}", r.body);
    let other = format!("Bearer {}", f.editor);
    let mut headers = vec![("authorization", other.as_str())];
    headers.extend_from_slice(&owned);
    let r = request("DELETE", &url, &headers, None).await;
    assert_eq!(r.status, 404, "ended another's session: {}", r.body);
    assert_eq!(f.ran(), 0);

    // The owner's session is intact.
    let r = f.call(Some(&f.reader), &owned, "echo", "mine").await;
    assert_eq!(
        (r.status, r.tool_code()),
        (200, "ok".to_owned()),
        "{}",
        r.body
    );
    let mine = format!("Bearer {}", f.reader);
    let mut headers = vec![("authorization", mine.as_str())];
    headers.extend_from_slice(&owned);
    let r = request("DELETE", &url, &headers, None).await;
    assert!(r.status < 300, "{} {}", r.status, r.body);
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_closed_at_accept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = start(stateless().max_connections_per_ip(Some(2))).await;
    let addr = f.http.local_addr();
    let held = [
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    // Let the server accept and count both.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = third
        .write_all(b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed, not hung");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the third connection got an answer: {read:?}"
    );
    // Closing one frees a slot.
    drop(held);
    let started = std::time::Instant::now();
    loop {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").await;
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
        if out.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "slot never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A body sent too slowly is answered `408` once its time is up: bodies are read before
/// authentication, so a stranger must not hold a connection and its buffer open at will.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = start(stateless().body_read_timeout(std::time::Duration::from_millis(300))).await;
    let addr = f.http.local_addr();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: 100\r\n\r\n{{\"jsonrpc\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The rest never comes; the connection stays open.
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(f.ran(), 0);
    // A body sent in time is served as before.
    let r = f.call(Some(&f.reader), &[], "echo", "x").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn shutdown_completes_with_an_open_session() {
    let f = start(HttpConfig::new("127.0.0.1:0".parse().unwrap())).await;
    let r = post_mcp(&f.http.url(), Some(&f.reader), &[], &initialize()).await;
    assert_eq!(r.status, 200);
    f.http.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(10), f.http.wait())
        .await
        .expect("graceful shutdown finishes")
        .unwrap();
}

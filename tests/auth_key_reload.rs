//! Key lifecycle on a running HTTP server: a key revoked in the key file is refused within one
//! second, a new key works without a restart, and a call already in flight when its key is
//! revoked finishes with the principal it resolved.

mod http_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_support::{post_mcp, tool_call};
use mcp_secure::auth::{ApiKeyStore, EnvKeySource, Environment, KeyFileSource};
use mcp_secure::server::HttpConfig;
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use serde_json::json;
use tokio::sync::Notify;

roles! { "read-only", "admin": * }

#[derive(Default)]
struct State {
    started: AtomicUsize,
    release: Notify,
}

/// Says who called, after the test lets it finish.
#[tool(kind = "read", role = "read-only", timeout = "10s")]
async fn slow_whoami(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.started.fetch_add(1, Ordering::SeqCst);
    ctx.release.notified().await;
    Ok(ctx.principal().user.clone())
}

/// Says who called.
#[tool(kind = "read", role = "read-only")]
async fn whoami(ctx: Ctx<State>) -> Result<String, ToolError> {
    Ok(ctx.principal().user.clone())
}

#[tokio::test]
async fn a_key_revoked_in_the_file_is_refused_within_one_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    let role = ["read-only".to_owned()];
    let alice =
        ApiKeyStore::append_to_file(&path, "alice", &role, Environment::Test, None).unwrap();
    let keys = ApiKeyStore::load(&path, Environment::Test).unwrap();
    let _watcher = keys.watch_file(&path, Duration::from_millis(250));
    let server = SecureServer::builder(State::default())
        .roles(ROLES)
        .tools(tools![whoami, slow_whoami])
        .authenticator(keys)
        .build()
        .unwrap();
    let http = server
        .clone()
        .serve_http(
            HttpConfig::new("127.0.0.1:0".parse().unwrap())
                .stateful(false)
                .json_response(true),
        )
        .await
        .unwrap();
    let url = http.url();
    let call = |token: String, tool: &'static str| {
        let url = url.clone();
        async move { post_mcp(&url, Some(&token), &[], &tool_call(tool, json!({}))).await }
    };
    assert_eq!(call(alice.token.clone(), "whoami").await.tool_code(), "ok");

    // A call in flight keeps the principal it resolved.
    let in_flight = tokio::spawn(call(alice.token.clone(), "slow_whoami"));
    while server.state().started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Revoke in the file; the running server must refuse within one second.
    let revoked_at = Instant::now();
    assert!(ApiKeyStore::revoke_in_file(&path, &alice.entry.id).unwrap());
    loop {
        let r = call(alice.token.clone(), "whoami").await;
        if r.status == 401 {
            assert!(
                r.header("www-authenticate").contains("revoked"),
                "{}",
                r.header("www-authenticate")
            );
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still accepted after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = revoked_at.elapsed();
    assert!(took < Duration::from_secs(1), "refused only after {took:?}");

    server.state().release.notify_one();
    let r = in_flight.await.unwrap();
    assert_eq!(
        (
            r.tool_code(),
            r.json()["result"]["content"][0]["text"].clone()
        ),
        ("ok".to_owned(), json!("alice"))
    );

    // A key added to the file works without a restart.
    let bob = ApiKeyStore::append_to_file(&path, "bob", &role, Environment::Test, None).unwrap();
    let started = Instant::now();
    loop {
        let r = call(bob.token.clone(), "whoami").await;
        if r.status == 200 {
            assert_eq!(r.json()["result"]["content"][0]["text"], "bob");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "new key not picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A broken file keeps the old keys.
    std::fs::write(&path, "this is not toml [").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(call(bob.token.clone(), "whoami").await.status, 200);
}

#[tokio::test]
async fn keys_load_from_an_environment_variable_and_a_key_file_named_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    let k = ApiKeyStore::append_to_file(
        &path,
        "erin",
        &["read-only".to_owned()],
        Environment::Live,
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&k.token), "the file holds digests only");
    // SAFETY: this test binary's other test does not read these variables.
    unsafe {
        std::env::set_var("MCS_TEST_KEYS_ENTRIES", &text);
        std::env::set_var("MCS_TEST_KEY_FILE", &path);
    }
    let store = ApiKeyStore::load_from(
        &EnvKeySource::new("MCS_TEST_KEYS_ENTRIES"),
        Environment::Live,
    )
    .await
    .unwrap();
    assert_eq!(store.check(&k.token).unwrap().user, "erin");
    let store = ApiKeyStore::load_from(
        &KeyFileSource::from_env("MCS_TEST_KEY_FILE").unwrap(),
        Environment::Live,
    )
    .await
    .unwrap();
    assert_eq!(store.check(&k.token).unwrap().user, "erin");
    // A server in `test` refuses the `live` key with a clear message.
    let test_store = ApiKeyStore::load_from(
        &EnvKeySource::new("MCS_TEST_KEYS_ENTRIES"),
        Environment::Test,
    )
    .await
    .unwrap();
    let e = test_store.check(&k.token).unwrap_err();
    assert!(
        e.to_string()
            .contains("this is a `live` key and this server runs in `test`"),
        "{e}"
    );
    assert!(KeyFileSource::from_env("MCS_TEST_UNSET_VARIABLE").is_err());
}

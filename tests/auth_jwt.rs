//! OAuth 2.1 resource server over HTTP: JWTs checked against a JWKS served on 127.0.0.1, the
//! negative suite (every vector refused with the right status and code, and no tool body ran),
//! key rotation at the issuer, and the bounded refetch on unknown `kid`s.

mod http_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_support::{JwksServer, SigningKey, b64, now, post_mcp, tool_call};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_secure::audit::{MemorySink, Phase};
use mcp_secure::auth::jwt::HttpJwks;
use mcp_secure::auth::{
    ApiKeyStore, BearerAuthenticator, Environment, JwtAuthenticator, JwtConfig,
};
use mcp_secure::server::{HttpConfig, HttpServer};
use mcp_secure::{Clock, Ctx, SecureServer, ToolError, roles, tool, tools};
use serde_json::{Value, json};

roles! { "read-only", "editor": "read-only", "admin": * }

const ISSUER: &str = "http://127.0.0.1/issuer";

#[derive(Default)]
struct State {
    ran: AtomicUsize,
}

/// Says who called.
#[tool(kind = "read", role = "read-only")]
async fn whoami(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran.fetch_add(1, Ordering::SeqCst);
    Ok(ctx.principal().user.clone())
}

struct Fixture {
    http: HttpServer,
    server: SecureServer<State>,
    audit: MemorySink,
    jwks: JwksServer,
    rsa: SigningKey,
    ec: SigningKey,
    ed: SigningKey,
    audience: String,
    api_ok: String,
    api_revoked: String,
    api_live: String,
    api_expired: String,
}

async fn start(min_refetch: Duration) -> Fixture {
    let (rsa, ec, ed) = (
        SigningKey::rsa("rsa-1"),
        SigningKey::es256("ec-1"),
        SigningKey::ed25519("ed-1"),
    );
    let jwks = JwksServer::start(vec![rsa.jwk.clone(), ec.jwk.clone(), ed.jwk.clone()]).await;
    // The canonical resource URI must be known before binding: pick a port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let audience = format!("http://127.0.0.1:{port}/mcp");
    let jwt = JwtAuthenticator::new(
        JwtConfig::new(ISSUER, audience.clone(), HttpJwks::new(&jwks.url).unwrap())
            .min_refetch_interval(min_refetch),
    );
    let clock = Clock::manual();
    let keys = ApiKeyStore::new(Environment::Test).with_clock(clock.clone());
    let gen_key = |u: &str, env, exp| {
        keys.generate(u, &["read-only".to_owned()], env, exp)
            .unwrap()
    };
    let api_ok = gen_key("kay", Environment::Test, None).token;
    let revoked = gen_key("rev", Environment::Test, None);
    keys.revoke(&revoked.entry.id);
    let api_live = gen_key("lee", Environment::Live, None).token;
    let api_expired = gen_key(
        "old",
        Environment::Test,
        Some(clock.now_utc() + time::Duration::hours(1)),
    )
    .token;
    clock.advance(Duration::from_secs(7200));
    let audit = MemorySink::new();
    let server = SecureServer::builder(State::default())
        .name("jwt-test", "1.0.0")
        .roles(ROLES)
        .tools(tools![whoami])
        .authenticator(BearerAuthenticator::new().api_keys(keys).jwt(jwt))
        .audit(audit.clone())
        .build()
        .unwrap();
    let config = HttpConfig::new(format!("127.0.0.1:{port}").parse().unwrap())
        .stateful(false)
        .json_response(true)
        .resource(audience.clone())
        .authorization_servers([ISSUER]);
    let http = server.clone().serve_http(config).await.unwrap();
    Fixture {
        http,
        server,
        audit,
        jwks,
        rsa,
        ec,
        ed,
        audience,
        api_ok,
        api_revoked: revoked.token,
        api_live,
        api_expired,
    }
}

impl Fixture {
    fn claims(&self) -> Value {
        json!({"iss": ISSUER, "aud": self.audience, "sub": "jo", "exp": now() + 300, "iat": now(), "roles": ["read-only"], "jti": "tok-1"})
    }

    fn with(&self, changes: Value) -> Value {
        let mut c = self.claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn ran(&self) -> usize {
        self.server.state().ran.load(Ordering::SeqCst)
    }

    async fn call_with_headers(&self, headers: &[(&str, &str)]) -> http_support::Reply {
        post_mcp(
            &self.http.url(),
            None,
            headers,
            &tool_call("whoami", json!({})),
        )
        .await
    }
}

/// (name, `Authorization` value or none, HTTP status, bearer error code, description fragment)
type Vector<'a> = (&'a str, Option<String>, u16, Option<&'a str>, &'a str);

fn unsigned(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        signature
    )
}

#[tokio::test]
async fn valid_tokens_of_every_key_type_are_accepted_and_mapped() {
    let f = start(Duration::from_secs(30)).await;
    for key in [&f.rsa, &f.ec, &f.ed] {
        let token = key.sign(&f.claims());
        let r = post_mcp(
            &f.http.url(),
            Some(&token),
            &[],
            &tool_call("whoami", json!({})),
        )
        .await;
        assert_eq!(
            (r.status, r.tool_code()),
            (200, "ok".to_owned()),
            "{:?}: {}",
            key.alg,
            r.body
        );
        assert_eq!(r.json()["result"]["content"][0]["text"], "jo");
    }
    let last = f
        .audit
        .events()
        .into_iter()
        .rfind(|e| e.phase == Phase::Outcome)
        .unwrap();
    assert_eq!(
        (
            last.user.as_deref(),
            last.key_id.as_deref(),
            last.transport.as_str()
        ),
        (Some("jo"), Some("tok-1"), "http")
    );
    assert_eq!(last.roles, ["read-only"]);
    // An API key works beside JWTs.
    let r = post_mcp(
        &f.http.url(),
        Some(&f.api_ok),
        &[],
        &tool_call("whoami", json!({})),
    )
    .await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "kay");
    assert_eq!(f.ran(), 4);
    assert_eq!(f.jwks.fetches(), 1, "the key set is cached");
}

#[tokio::test]
async fn negative_token_suite() {
    let f = start(Duration::from_secs(30)).await;
    let rsa = &f.rsa;
    let other_rsa = SigningKey::rsa("rsa-1"); // same kid, another key: a forged signature
    let stranger = SigningKey::es256("who-knows");
    let mut tampered = rsa.sign(&f.claims());
    {
        let parts: Vec<&str> = tampered.split('.').collect();
        let evil = f.with(json!({"sub": "admin", "roles": ["admin"]}));
        tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(evil.to_string().as_bytes()),
            parts[2]
        );
    }
    let hs_with_public_key = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&h, &f.claims(), &EncodingKey::from_secret(&rsa.public_der)).unwrap()
    };
    let hs_with_jwk_modulus = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rsa-1".into());
        let n = rsa.jwk["n"].as_str().unwrap().as_bytes().to_vec();
        jsonwebtoken::encode(&h, &f.claims(), &EncodingKey::from_secret(&n)).unwrap()
    };
    let ec_signed_with_rsa_kid = {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&h, &f.claims(), &f.ec.encoding).unwrap()
    };
    let none = unsigned(json!({"alg": "none", "kid": "rsa-1"}), &f.claims(), "");
    let none_upper = unsigned(
        json!({"alg": "NONE", "kid": "rsa-1", "typ": "JWT"}),
        &f.claims(),
        "",
    );
    let wrong_typ = {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa-1".into());
        h.typ = Some("secevent+jwt".into());
        jsonwebtoken::encode(&h, &f.claims(), &rsa.encoding).unwrap()
    };
    let huge = rsa.sign(&f.with(json!({"pad": "x".repeat(9000)})));
    let bearer = |t: &str| format!("Bearer {t}");
    // The same id, one secret digit changed.
    let last = if f.api_ok.ends_with('0') { '1' } else { '0' };
    let forged_api_key = format!("{}{last}", &f.api_ok[..f.api_ok.len() - 1]);

    let vectors: Vec<Vector> = vec![
        ("no token", None, 401, None, "no credential"),
        (
            "basic auth",
            Some("Basic YWxpY2U6cGFzcw==".into()),
            401,
            Some("invalid_token"),
            "Bearer",
        ),
        (
            "empty bearer",
            Some("Bearer ".into()),
            401,
            Some("invalid_token"),
            "Bearer",
        ),
        (
            "not a token",
            Some(bearer("hello")),
            401,
            Some("invalid_token"),
            "not valid",
        ),
        (
            "malformed jwt",
            Some(bearer("a.b.c")),
            401,
            Some("invalid_token"),
            "malformed",
        ),
        (
            "oversized jwt",
            Some(bearer(&huge)),
            401,
            Some("invalid_token"),
            "malformed",
        ),
        (
            "wrong typ",
            Some(bearer(&wrong_typ)),
            401,
            Some("invalid_token"),
            "malformed",
        ),
        (
            "expired",
            Some(bearer(&rsa.sign(&f.with(json!({"exp": now() - 120}))))),
            401,
            Some("invalid_token"),
            "expired",
        ),
        (
            "not yet valid",
            Some(bearer(&rsa.sign(&f.with(json!({"nbf": now() + 600}))))),
            401,
            Some("invalid_token"),
            "not valid yet",
        ),
        (
            "wrong issuer",
            Some(bearer(
                &rsa.sign(&f.with(json!({"iss": "http://evil.example"}))),
            )),
            401,
            Some("invalid_token"),
            "another issuer",
        ),
        (
            "wrong audience",
            Some(bearer(
                &rsa.sign(&f.with(json!({"aud": "http://127.0.0.1:1/mcp"}))),
            )),
            401,
            Some("invalid_token"),
            "another resource",
        ),
        (
            "no audience",
            Some(bearer(&rsa.sign(&f.with(json!({"aud": null}))))),
            401,
            Some("invalid_token"),
            "required claim",
        ),
        (
            "no expiry",
            Some(bearer(&rsa.sign(&f.with(json!({"exp": null}))))),
            401,
            Some("invalid_token"),
            "required claim",
        ),
        (
            "no subject",
            Some(bearer(&rsa.sign(&f.with(json!({"sub": null}))))),
            401,
            Some("invalid_token"),
            "required claim",
        ),
        (
            "bad signature",
            Some(bearer(&other_rsa.sign(&f.claims()))),
            401,
            Some("invalid_token"),
            "signature",
        ),
        (
            "tampered claims",
            Some(bearer(&tampered)),
            401,
            Some("invalid_token"),
            "signature",
        ),
        (
            "alg none",
            Some(bearer(&none)),
            401,
            Some("invalid_token"),
            "algorithm is not accepted",
        ),
        (
            "alg NONE",
            Some(bearer(&none_upper)),
            401,
            Some("invalid_token"),
            "algorithm is not accepted",
        ),
        (
            "HS256 keyed with the RSA public key",
            Some(bearer(&hs_with_public_key)),
            401,
            Some("invalid_token"),
            "algorithm is not accepted",
        ),
        (
            "HS256 keyed with the JWK modulus",
            Some(bearer(&hs_with_jwk_modulus)),
            401,
            Some("invalid_token"),
            "algorithm is not accepted",
        ),
        (
            "ES256 header on an RSA kid",
            Some(bearer(&ec_signed_with_rsa_kid)),
            401,
            Some("invalid_token"),
            "does not match its key",
        ),
        (
            "unknown kid",
            Some(bearer(&stranger.sign(&f.claims()))),
            401,
            Some("invalid_token"),
            "unknown key",
        ),
        (
            "unknown roles only",
            Some(bearer(&rsa.sign(&f.with(json!({"roles": ["superuser"]}))))),
            403,
            Some("insufficient_scope"),
            "no role",
        ),
        (
            "no roles claim",
            Some(bearer(&rsa.sign(&f.with(json!({"roles": null}))))),
            403,
            Some("insufficient_scope"),
            "no role",
        ),
        (
            "revoked api key",
            Some(bearer(&f.api_revoked)),
            401,
            Some("invalid_token"),
            "revoked",
        ),
        (
            "wrong environment api key",
            Some(bearer(&f.api_live)),
            401,
            Some("invalid_token"),
            "`live` key",
        ),
        (
            "expired api key",
            Some(bearer(&f.api_expired)),
            401,
            Some("invalid_token"),
            "expired",
        ),
        (
            "forged api key",
            Some(bearer(&forged_api_key)),
            401,
            Some("invalid_token"),
            "not valid",
        ),
    ];
    assert!(vectors.len() >= 20);
    let prm = format!(
        "resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource\"",
        f.http.local_addr().port()
    );
    for (name, auth, status, code, fragment) in &vectors {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = f.call_with_headers(&headers).await;
        assert_eq!(r.status, *status, "{name}: {}", r.body);
        let challenge = r.header("www-authenticate");
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(&prm),
            "{name}: {challenge}"
        );
        match code {
            Some(c) => assert!(
                challenge.contains(&format!("error=\"{c}\"")),
                "{name}: {challenge}"
            ),
            None => assert!(!challenge.contains("error="), "{name}: {challenge}"),
        }
        assert!(
            r.body.contains(fragment),
            "{name}: body {} lacks {fragment:?}",
            r.body
        );
    }
    // Two more refusals outside the header's value: two headers, and a token in the URL.
    let ok = bearer(&rsa.sign(&f.claims()));
    let r = f
        .call_with_headers(&[
            ("authorization", ok.as_str()),
            ("authorization", ok.as_str()),
        ])
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.header("www-authenticate")
            .contains("error=\"invalid_request\"")
    );
    let url = format!("{}?access_token={}", f.http.url(), rsa.sign(&f.claims()));
    let r = post_mcp(&url, None, &[], &tool_call("whoami", json!({}))).await;
    assert_eq!(r.status, 400);

    assert_eq!(f.ran(), 0, "no refused token reached the tool body");
    // Refused in front of MCP, yet each refusal left exactly one audit record, and none of them
    // holds a token.
    let events = f.audit.events();
    assert_eq!(
        events.len(),
        vectors.len() + 2,
        "one audit record per refused request"
    );
    for e in &events {
        assert_eq!(e.tool, mcp_secure::server::http::HTTP_REFUSAL_TOOL);
        assert_eq!(e.transport, "http");
        assert!(
            matches!(e.outcome.as_str(), "unauthorized" | "forbidden"),
            "{}",
            e.outcome
        );
        assert!(!e.success && e.user.is_none());
        assert_eq!(e.input["path"], "/mcp");
        let line = serde_json::to_string(e).unwrap();
        assert!(
            !line.contains(&ok[7..]),
            "a token reached the audit: {line}"
        );
    }
    // The same server still accepts a good token.
    let r = f.call_with_headers(&[("authorization", ok.as_str())]).await;
    assert_eq!(r.tool_code(), "ok");
}

#[tokio::test]
async fn key_rotation_at_the_issuer_is_followed_and_refetches_are_bounded() {
    let f = start(Duration::from_millis(300)).await;
    let call = |t: String| {
        let url = f.http.url();
        async move { post_mcp(&url, Some(&t), &[], &tool_call("whoami", json!({}))).await }
    };
    assert_eq!(call(f.rsa.sign(&f.claims())).await.status, 200);
    assert_eq!(f.jwks.fetches(), 1);

    // A flood of unknown kids costs at most one fetch per interval (300 ms here).
    let flood = std::time::Instant::now();
    for i in 0..20 {
        let r = call(SigningKey::ed25519(&format!("junk-{i}")).sign(&f.claims())).await;
        assert_eq!(r.status, 401);
    }
    let allowed = 2 + flood.elapsed().as_millis() as usize / 300;
    assert!(
        f.jwks.fetches() <= allowed,
        "{} fetches for 20 unknown kids in {:?}",
        f.jwks.fetches(),
        flood.elapsed()
    );
    assert!(f.jwks.fetches() < 20);

    // The issuer rotates: a new key appears and the old one is withdrawn.
    let rotated = SigningKey::rsa("rsa-2");
    f.jwks.set_keys(vec![rotated.jwk.clone()]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = call(rotated.sign(&f.claims())).await;
    assert_eq!(
        (r.status, r.tool_code()),
        (200, "ok".to_owned()),
        "{}",
        r.body
    );
    // The refetch replaced the set: the withdrawn keys no longer verify anything.
    let r = call(f.ed.sign(&f.claims())).await;
    assert_eq!(r.status, 401, "withdrawn key: {}", r.body);
    assert!(r.header("www-authenticate").contains("unknown key"));
    let r = call(f.rsa.sign(&f.claims())).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn an_unreachable_issuer_gives_401_not_a_crash() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let jwt = JwtAuthenticator::new(JwtConfig::new(
        ISSUER,
        "aud",
        HttpJwks::new(&format!("http://127.0.0.1:{port}/jwks")).unwrap(),
    ));
    let key = SigningKey::rsa("k");
    let token = key.sign(&json!({"iss": ISSUER, "aud": "aud", "sub": "x", "exp": now() + 60, "roles": ["read-only"]}));
    assert_eq!(
        jwt.check(&token).await.unwrap_err(),
        mcp_secure::auth::TokenError::KeysUnavailable
    );
}

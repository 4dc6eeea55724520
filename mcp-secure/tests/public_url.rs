//! `PublicUrl` and `UrlPolicy` against the attack and allowed corpora (with a fixed-map
//! resolver: nothing is looked up for real), and the `Fetcher` against servers on 127.0.0.1
//! that this test starts: redirects to loopback, DNS rebinding, size and time caps, TLS, a
//! `PublicUrl` tool parameter through the whole pipeline, and property tests.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::types::url::{
    FetchError, FetchPolicy, Fetcher, FixedResolver, PublicUrl, Resolver, Scheme, UrlPolicy,
    UrlRule,
};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// Corpus

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The names the corpora use. Nothing else resolves.
fn resolver() -> FixedResolver {
    FixedResolver::new()
        .with("api.example", [ip("93.184.216.34")])
        .with(
            "dual.example",
            [
                ip("93.184.216.34"),
                ip("2606:2800:220:1:248:1893:25c8:1946"),
            ],
        )
        .with("www.xn--mnchen-3ya.example", [ip("93.184.216.34")])
        .with("evil.example", [ip("127.0.0.1")])
        .with("127.0.0.1.nip.io", [ip("127.0.0.1")])
        .with("aaaa.example", [ip("::1")])
        .with("sixtofour.example", [ip("2002:7f00:1::1")])
        .with("rebind.example", [ip("93.184.216.34"), ip("10.0.0.1")])
        .with("internal.example", [ip("192.168.1.10")])
        .with("cgnat.example", [ip("100.64.1.1")])
        .with("ula.example", [ip("fd00::1")])
        .with("mapped.example", [ip("::ffff:169.254.169.254")])
        .with("nat64.example", [ip("64:ff9b::a9fe:a9fe")])
        .with("metadata-alias.example", [ip("169.254.169.254")])
        .with("empty.example", [])
}

fn corpus(name: &str) -> Vec<(usize, Option<String>, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/url_corpus")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let (rule, json) = match raw.split_once('\t') {
            Some((rule, json)) => (Some(rule.to_owned()), json),
            None => (None, raw),
        };
        let value: String = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{name}:{}: not a JSON string: {e}", i + 1));
        lines.push((i + 1, rule, value));
    }
    lines
}

/// Parses, then resolves and checks every address.
async fn check(policy: &UrlPolicy, text: &str) -> Result<Vec<SocketAddr>, (UrlRule, String)> {
    let url = policy.parse(text).map_err(|e| (e.rule(), e.to_string()))?;
    let checked = policy
        .resolve(&url)
        .await
        .map_err(|e| (e.rule(), e.to_string()))?;
    Ok(checked.addrs().to_vec())
}

#[tokio::test]
async fn every_attack_is_refused_by_its_rule() {
    let policy = UrlPolicy::new().resolver(resolver());
    let attacks = corpus("attacks.txt");
    assert!(attacks.len() >= 30, "only {} attacks", attacks.len());
    let mut failures = Vec::new();
    for (line, rule, url) in &attacks {
        let rule = rule.as_deref().expect("attack lines name a rule");
        assert!(
            UrlRule::from_name(rule).is_some(),
            "line {line}: unknown rule `{rule}`"
        );
        match check(&policy, url).await {
            Ok(addrs) => failures.push(format!(
                "line {line}: accepted ({addrs:?}), expected `{rule}`: {url:?}"
            )),
            Err((got, message)) => {
                if got.as_str() != rule {
                    failures.push(format!(
                        "line {line}: refused by `{got}` ({message}), expected `{rule}`: {url:?}"
                    ));
                }
                if message.contains(":pass") || message.contains("meta-data") {
                    failures.push(format!(
                        "line {line}: message repeats credentials or the path: {message}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_allowed_url_is_accepted_by_the_checker() {
    let policy = UrlPolicy::new().resolver(resolver());
    let allowed = corpus("allowed.txt");
    assert!(allowed.len() >= 15);
    for (line, _, url) in &allowed {
        let addrs = check(&policy, url)
            .await
            .unwrap_or_else(|e| panic!("line {line}: {e:?}: {url:?}"));
        assert!(!addrs.is_empty());
    }
}

#[tokio::test]
async fn the_ipv4_spellings_are_normalized_then_refused() {
    // What the `url` crate makes of them: the same address, so the address rules apply.
    for spelling in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://017700000001/",
        "http://127.0.0.1./",
    ] {
        let url = ::url::Url::parse(spelling).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"), "{spelling}");
        let e = PublicUrl::parse(spelling).unwrap_err();
        assert_eq!(e.rule(), UrlRule::Loopback, "{spelling}");
        assert_eq!(
            e.to_string(),
            "URL refused by rule `loopback`: the host is 127.0.0.1, a loopback address"
        );
    }
    let e = PublicUrl::parse("http://[::ffff:169.254.169.254]/").unwrap_err();
    assert_eq!(
        e.detail(),
        "the host is ::ffff:169.254.169.254 (the IPv4-mapped form of 169.254.169.254, a cloud \
         metadata address)"
    );
}

#[tokio::test]
async fn every_address_is_checked() {
    let policy = UrlPolicy::new().resolver(resolver());
    let (rule, message) = check(&policy, "https://rebind.example/").await.unwrap_err();
    assert_eq!(rule, UrlRule::Private);
    assert_eq!(
        message,
        "URL refused by rule `private`: `rebind.example` resolves to 10.0.0.1, a private address"
    );
    // A mapped public address is connected to as IPv4; both addresses of a dual-stack name
    // are kept.
    assert_eq!(
        check(&policy, "http://[::ffff:93.184.216.34]/")
            .await
            .unwrap(),
        ["93.184.216.34:80".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        check(&policy, "https://dual.example/").await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn policy_options() {
    let https_only = UrlPolicy::new()
        .schemes(&[Scheme::Https])
        .resolver(resolver());
    assert_eq!(
        https_only.parse("http://api.example/").unwrap_err().rule(),
        UrlRule::SchemeNotAllowed
    );
    assert!(https_only.parse("https://api.example/").is_ok());

    let ports = UrlPolicy::new().ports(&[443]).resolver(resolver());
    assert!(ports.parse("https://api.example/").is_ok());
    assert_eq!(
        ports.parse("https://api.example:8443/").unwrap_err().rule(),
        UrlRule::PortNotAllowed
    );
    assert_eq!(
        ports.parse("http://api.example/").unwrap_err().rule(),
        UrlRule::PortNotAllowed
    );

    // An exemption is exactly one address and port.
    let exempt = UrlPolicy::new()
        .resolver(resolver())
        .allow_socket_addr("127.0.0.1:8080".parse().unwrap());
    assert!(check(&exempt, "http://evil.example:8080/").await.is_ok());
    assert!(check(&exempt, "http://127.0.0.1:8080/").await.is_ok());
    assert!(
        check(&exempt, "http://[::ffff:127.0.0.1]:8080/")
            .await
            .is_ok()
    );
    assert_eq!(
        check(&exempt, "http://evil.example:8081/")
            .await
            .unwrap_err()
            .0,
        UrlRule::Loopback
    );
    assert_eq!(
        check(&exempt, "http://127.0.0.2:8080/")
            .await
            .unwrap_err()
            .0,
        UrlRule::Loopback
    );
    // Names are still refused by name.
    assert_eq!(
        check(&exempt, "http://localhost:8080/")
            .await
            .unwrap_err()
            .0,
        UrlRule::LocalName
    );
    // The default type refuses the exempt address: exemptions are the policy's, not the type's.
    assert_eq!(
        PublicUrl::parse("http://127.0.0.1:8080/")
            .unwrap_err()
            .rule(),
        UrlRule::Loopback
    );
    // A long URL.
    let long = format!("https://api.example/{}", "a".repeat(PublicUrl::MAX_LEN));
    assert_eq!(
        PublicUrl::parse(&long).unwrap_err().rule(),
        UrlRule::TooLong
    );
}

// ---------------------------------------------------------------------------------------------
// A server on 127.0.0.1

#[derive(Clone)]
enum Reply {
    Ok(&'static str),
    Redirect(String),
    /// A declared length over any cap; the body is never sent.
    Declared(u64),
    /// Exactly this many bytes, no `Content-Length`, then close.
    Bytes(usize),
    /// Chunks forever.
    Endless,
    /// Reads the request, never answers.
    Stall,
    /// Headers, then one byte a second.
    Drip,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Hit {
    path: String,
    host: String,
}

struct TestServer {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl TestServer {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.hits().iter().filter(|h| h.path == path).count()
    }
}

type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

async fn serve(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> TestServer {
    serve_with(Arc::new(handler), None).await
}

async fn serve_with(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = Arc::clone(&handler);
            let hits = Arc::clone(&recorded);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer(stream, handler, hits).await;
                        }
                    }
                    None => answer(stream, handler, hits).await,
                }
            });
        }
    });
    TestServer { addr, hits }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    handler: Handler,
    hits: Arc<Mutex<Vec<Hit>>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    let host = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("host: ")
                .or_else(|| l.strip_prefix("Host: "))
        })
        .unwrap_or("")
        .to_owned();
    hits.lock().unwrap().push(Hit {
        path: path.clone(),
        host,
    });
    let reply = handler(&path);
    let write = |s: String| s.into_bytes();
    let _ = match reply {
        Reply::Ok(body) => {
            stream
                .write_all(&write(format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )))
                .await
        }
        Reply::Redirect(location) => {
            stream
                .write_all(&write(format!(
                    "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"
                )))
                .await
        }
        Reply::Declared(n) => {
            stream
                .write_all(&write(format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n"
                )))
                .await
        }
        Reply::Bytes(n) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                .await;
            let r = stream.write_all(&vec![b'x'; n]).await;
            let _ = stream.shutdown().await;
            r
        }
        Reply::Endless => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
            loop {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    break Ok(());
                }
            }
        }
        Reply::Stall => {
            std::future::pending::<()>().await;
            Ok(())
        }
        Reply::Drip => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                .await;
            loop {
                if stream.write_all(b"x").await.is_err() {
                    break Ok(());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
}

/// A fetcher whose `public.example` is the test server, exempt by its exact address.
fn fetcher_for(server: &TestServer, policy: FetchPolicy) -> Fetcher {
    let url = UrlPolicy::new()
        .resolver(resolver().with("public.example", [server.addr.ip()]))
        .allow_socket_addr(server.addr);
    Fetcher::new(policy.url_policy(url)).unwrap()
}

fn url_on(server: &TestServer, path: &str) -> PublicUrl {
    // Parsed by the default policy: a name, not the loopback address.
    PublicUrl::parse(&format!(
        "http://public.example:{}{path}",
        server.addr.port()
    ))
    .unwrap()
}

#[tokio::test]
async fn fetches_through_the_checked_address_with_the_original_host() {
    let server = serve(|path| match path {
        "/hello" => Reply::Ok("hello"),
        "/hop" => Reply::Redirect("/final?x=1".into()),
        "/final?x=1" => Reply::Ok("done"),
        _ => Reply::Ok("?"),
    })
    .await;
    let fetcher = fetcher_for(&server, FetchPolicy::new());
    let page = fetcher.get(&url_on(&server, "/hello")).await.unwrap();
    assert_eq!((page.status.as_u16(), page.text().unwrap()), (200, "hello"));
    assert_eq!(page.redirects, 0);
    assert_eq!(
        server.hits()[0],
        Hit {
            path: "/hello".into(),
            host: format!("public.example:{}", server.addr.port()),
        }
    );

    let page = fetcher.get(&url_on(&server, "/hop")).await.unwrap();
    assert_eq!(page.text().unwrap(), "done");
    assert_eq!(page.redirects, 1);
    assert!(page.url.as_str().ends_with("/final?x=1"), "{}", page.url);

    // The default fetcher refuses the same URL: `public.example` does not resolve, and
    // the test server's address is loopback.
    let default = Fetcher::new(FetchPolicy::new().url_policy(
        UrlPolicy::new().resolver(resolver().with("public.example", [server.addr.ip()])),
    ))
    .unwrap();
    let e = default.get(&url_on(&server, "/hello")).await.unwrap_err();
    assert_eq!(e.rule(), Some(UrlRule::Loopback));
    assert_eq!(server.count("/hello"), 1, "the refused fetch sent nothing");
}

#[tokio::test]
async fn redirects_to_loopback_are_refused_and_never_reach_the_secret() {
    let secret = serve(|_| Reply::Ok("the secret")).await;
    let port = secret.addr.port();
    let targets: Vec<(String, UrlRule)> = vec![
        (format!("http://127.0.0.1:{port}/secret"), UrlRule::Loopback),
        (
            format!("http://localhost:{port}/secret"),
            UrlRule::LocalName,
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/secret"),
            UrlRule::Loopback,
        ),
        (format!("http://[::1]:{port}/secret"), UrlRule::Loopback),
        (
            format!("http://2130706433:{port}/secret"),
            UrlRule::Loopback,
        ),
        (format!("http://0x7f.1:{port}/secret"), UrlRule::Loopback),
        (
            format!("http://evil.example:{port}/secret"),
            UrlRule::Loopback,
        ),
        // The front server's own name, on the secret server's port: not exempt.
        (
            format!("http://public.example:{port}/secret"),
            UrlRule::Loopback,
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            UrlRule::MetadataEndpoint,
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/".into(),
            UrlRule::MetadataEndpoint,
        ),
        ("http://10.0.0.1/".into(), UrlRule::Private),
        ("http://rebind.example/".into(), UrlRule::Private),
        ("file:///etc/passwd".into(), UrlRule::SchemeNotAllowed),
        (
            "gopher://127.0.0.1:6379/_x".into(),
            UrlRule::SchemeNotAllowed,
        ),
        (
            format!("http://user:pw@127.0.0.1:{port}/"),
            UrlRule::Userinfo,
        ),
    ];
    let locations: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
    let front = serve(move |path| {
        let i: usize = path.trim_start_matches("/r/").parse().unwrap_or(0);
        Reply::Redirect(locations[i].clone())
    })
    .await;
    let fetcher = fetcher_for(&front, FetchPolicy::new());
    for (i, (target, rule)) in targets.iter().enumerate() {
        let e = fetcher
            .get(&url_on(&front, &format!("/r/{i}")))
            .await
            .unwrap_err();
        match &e {
            FetchError::Refused {
                redirect,
                rejection,
            } => {
                assert_eq!((*redirect, rejection.rule()), (1, *rule), "{target}: {e}");
            }
            other => panic!("{target}: {other}"),
        }
        assert!(
            e.to_string().starts_with("redirect 1: URL refused by rule"),
            "{e}"
        );
        let tool_error = ToolError::from(e);
        assert_eq!(tool_error.code().as_str(), "invalid_input");
    }
    assert_eq!(
        front.hits().len(),
        targets.len(),
        "every first hop was made"
    );
    assert!(
        secret.hits().is_empty(),
        "the secret server was never contacted"
    );
}

#[tokio::test]
async fn redirects_are_capped() {
    let server = serve(|_| Reply::Redirect("/again".into())).await;
    let fetcher = fetcher_for(&server, FetchPolicy::new().max_redirects(3));
    let e = fetcher.get(&url_on(&server, "/start")).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Refused { redirect: 4, rejection } if rejection.rule() == UrlRule::TooManyRedirects),
        "{e}"
    );
    assert_eq!(server.hits().len(), 4);

    let fetcher = fetcher_for(&server, FetchPolicy::new().max_redirects(0));
    let e = fetcher.get(&url_on(&server, "/start")).await.unwrap_err();
    assert_eq!(e.rule(), Some(UrlRule::TooManyRedirects));
}

/// Answers `first` to the first lookup and `then` to every later one, counting lookups.
struct Rebinding {
    first: IpAddr,
    then: IpAddr,
    lookups: AtomicUsize,
}

impl Resolver for Rebinding {
    fn resolve<'a>(&'a self, _: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
        let n = self.lookups.fetch_add(1, Ordering::SeqCst);
        let ip = if n == 0 { self.first } else { self.then };
        Box::pin(async move { Ok(vec![ip]) })
    }
}

#[tokio::test]
async fn the_name_is_resolved_once_per_hop() {
    let server = serve(|path| match path {
        "/hop" => Reply::Redirect("/end".into()),
        _ => Reply::Ok("fine"),
    })
    .await;
    let resolver = Arc::new(Rebinding {
        first: server.addr.ip(),
        then: ip("10.0.0.1"),
        lookups: AtomicUsize::new(0),
    });
    struct Shared(Arc<Rebinding>);
    impl Resolver for Shared {
        fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
            self.0.resolve(host)
        }
    }
    let policy = UrlPolicy::new()
        .resolver(Shared(Arc::clone(&resolver)))
        .allow_socket_addr(server.addr);
    let fetcher = Fetcher::new(FetchPolicy::new().url_policy(policy)).unwrap();
    // One lookup, checked, and the connection goes to that address.
    let page = fetcher.get(&url_on(&server, "/page")).await.unwrap();
    assert_eq!(page.text().unwrap(), "fine");
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
    // The redirect is a new hop: resolved again, and this time the name has rebound to a
    // private address, which is refused before connecting.
    let e = fetcher.get(&url_on(&server, "/hop")).await.unwrap_err();
    assert_eq!(e.rule(), Some(UrlRule::Private), "{e}");
    assert_eq!(server.count("/end"), 0);
}

#[tokio::test]
async fn the_body_is_capped() {
    let server = serve(|path| match path {
        "/declared" => Reply::Declared(10 * 1024 * 1024),
        "/exact" => Reply::Bytes(1000),
        "/over" => Reply::Bytes(1001),
        "/endless" => Reply::Endless,
        _ => Reply::Ok("?"),
    })
    .await;
    let fetcher = fetcher_for(&server, FetchPolicy::new().max_bytes(1000));
    assert_eq!(
        fetcher
            .get(&url_on(&server, "/exact"))
            .await
            .unwrap()
            .body
            .len(),
        1000
    );
    for path in ["/declared", "/over", "/endless"] {
        let start = Instant::now();
        let e = fetcher.get(&url_on(&server, path)).await.unwrap_err();
        assert!(
            matches!(e, FetchError::TooLarge { max_bytes: 1000 }),
            "{path}: {e}"
        );
        assert!(start.elapsed() < Duration::from_secs(5), "{path}");
        let tool_error = ToolError::from(e);
        assert_eq!(tool_error.code().as_str(), "too_large");
    }
    // The default cap is 1 MiB.
    let fetcher = fetcher_for(&server, FetchPolicy::new());
    let e = fetcher.get(&url_on(&server, "/endless")).await.unwrap_err();
    assert!(
        matches!(
            e,
            FetchError::TooLarge {
                max_bytes: 1_048_576
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn the_fetch_is_capped_in_time() {
    let server = serve(|path| match path {
        "/stall" => Reply::Stall,
        _ => Reply::Drip,
    })
    .await;
    let fetcher = fetcher_for(
        &server,
        FetchPolicy::new().timeout(Duration::from_millis(300)),
    );
    for path in ["/stall", "/drip"] {
        let start = Instant::now();
        let e = fetcher.get(&url_on(&server, path)).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Timeout { after } if after == Duration::from_millis(300)),
            "{path}: {e}"
        );
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
            "{path}: {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn https_uses_the_original_name_for_the_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["public.example".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let server = serve_with(Arc::new(|_: &str| Reply::Ok("over tls")), Some(acceptor)).await;
    let port = server.addr.port();
    let url_policy = || {
        UrlPolicy::new()
            .resolver(
                resolver()
                    .with("public.example", [server.addr.ip()])
                    .with("other.example", [server.addr.ip()]),
            )
            .allow_socket_addr(server.addr)
    };

    let trusting = Fetcher::new(
        FetchPolicy::new()
            .url_policy(url_policy())
            .without_default_roots()
            .add_root_certificate(ca.der().to_vec()),
    )
    .unwrap();
    let url = PublicUrl::parse(&format!("https://public.example:{port}/tls")).unwrap();
    let page = trusting.get(&url).await.unwrap();
    assert_eq!(page.text().unwrap(), "over tls");

    // The certificate is for `public.example`: another name on the same address fails.
    let other = PublicUrl::parse(&format!("https://other.example:{port}/tls")).unwrap();
    let e = trusting.get(&other).await.unwrap_err();
    assert!(matches!(e, FetchError::Tls(_)), "{e}");

    // The Mozilla roots do not include the test CA.
    let default_roots = Fetcher::new(FetchPolicy::new().url_policy(url_policy())).unwrap();
    let e = default_roots.get(&url).await.unwrap_err();
    assert!(matches!(e, FetchError::Tls(_)), "{e}");
    assert_eq!(server.count("/tls"), 1);

    // A garbage root certificate is a configuration error.
    let e = Fetcher::new(FetchPolicy::new().add_root_certificate(b"nope".to_vec())).unwrap_err();
    assert!(matches!(e, FetchError::Config(_)), "{e}");
}

// ---------------------------------------------------------------------------------------------
// As a tool parameter, through the whole pipeline

roles! { "reader" }

struct Web {
    fetcher: Fetcher,
}

/// Fetches a page as text.
#[tool(kind = "read", role = "reader", timeout = "15s")]
async fn fetch_page(
    ctx: Ctx<Web>,
    /// The page's URL.
    url: PublicUrl,
) -> Result<String, ToolError> {
    let page = ctx.fetcher.get(&url).await?;
    Ok(String::from_utf8_lossy(&page.body).into_owned())
}

#[tokio::test]
async fn a_public_url_parameter_is_checked_before_the_tool_runs() {
    let secret = serve(|_| Reply::Ok("the secret")).await;
    let secret_url = format!("http://127.0.0.1:{}/secret", secret.addr.port());
    let front = serve(move |path| match path {
        "/to-secret" => Reply::Redirect(secret_url.clone()),
        _ => Reply::Ok("public page"),
    })
    .await;
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("rita", &["reader".to_owned()], Environment::Test, None)
        .unwrap()
        .token;
    let server = SecureServer::builder(Web {
        fetcher: fetcher_for(&front, FetchPolicy::new()),
    })
    .name("public-url-test", "1.0.0")
    .roles(ROLES)
    .tools(tools![fetch_page])
    .authenticator(keys)
    .build()
    .unwrap();
    let who = Credential::new(token, CredentialSource::RequestMeta);
    let call = |args: Value| {
        let server = &server;
        let who = who.clone();
        async move {
            server
                .call("fetch_page", args.as_object().cloned(), Some(who), None)
                .await
        }
    };
    let error = |r: &rmcp::model::CallToolResult| -> (String, String) {
        let e = &r.structured_content.as_ref().expect("structured error")["error"];
        (
            e["code"].as_str().unwrap().to_owned(),
            e["message"].as_str().unwrap().to_owned(),
        )
    };

    let port = front.addr.port();
    let ok = call(json!({"url": format!("http://public.example:{port}/page")})).await;
    assert_ne!(ok.is_error, Some(true), "{ok:?}");
    assert_eq!(
        ok.content[0].as_text().map(|t| t.text.as_str()),
        Some("public page")
    );

    // Refused while deserializing: the tool never runs.
    for (url, rule) in [
        (
            "http://169.254.169.254/latest/meta-data/",
            "metadata_endpoint",
        ),
        ("http://0x7f.1/", "loopback"),
        ("http://admin:hunter2@example.com/", "userinfo"),
        ("file:///etc/passwd", "scheme_not_allowed"),
    ] {
        let (code, message) = error(&call(json!({ "url": url })).await);
        assert_eq!(code, "invalid_input", "{url}");
        assert!(message.contains(rule), "{url}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
    // Refused by the fetcher, in the tool: the redirect.
    let (code, message) =
        error(&call(json!({"url": format!("http://public.example:{port}/to-secret")})).await);
    assert_eq!(code, "invalid_input");
    assert!(
        message.contains("redirect 1") && message.contains("loopback"),
        "{message}"
    );
    assert!(secret.hits().is_empty());

    let schema = mcp_secure::ToolHandler::<Web>::input_schema(&__mcs_tool_fetch_page);
    let url = &schema["properties"]["url"];
    assert_eq!(url["type"], "string");
    assert_eq!(url["maxLength"], PublicUrl::MAX_LEN);
}

// ---------------------------------------------------------------------------------------------
// Properties

const PIECES: &[&str] = &[
    "http://",
    "https://",
    "file://",
    "http:",
    "//",
    "/",
    "\\",
    "[",
    "]",
    "::",
    "ffff:",
    "::1",
    "127",
    "0",
    "1",
    "255",
    "256",
    "0x",
    "7f",
    "0177",
    ".",
    "。",
    "①",
    "@",
    ":",
    "80",
    "%2e",
    "%31",
    "localhost",
    "ⓛocalhost",
    "evil.example",
    "api.example",
    "rebind.example",
    "xn--",
    "metadata.google.internal",
    "169.254.169.254",
    "64:ff9b::",
    "2002:",
    "fe80::",
    "%25eth0",
    "?",
    "#",
    "user",
    "\t",
    "\0",
    " ",
    "a",
    "-",
    "é",
];

fn url_like() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..14).prop_map(|v| v.concat())
}

/// An independent oracle: std's classification of the addresses a public URL may use.
fn std_says_public(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(s in any::<String>()) {
        if let Ok(url) = PublicUrl::parse(&s) {
            // Whatever is accepted is accepted again from its normalized text.
            prop_assert_eq!(PublicUrl::parse(url.as_str()).unwrap(), url);
        }
    }

    #[test]
    fn random_url_like_strings_never_panic_and_only_public_addresses_pass(s in url_like()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let policy = UrlPolicy::new().resolver(resolver());
        if let Ok(url) = policy.parse(&s) {
            prop_assert_eq!(policy.parse(url.as_str()).unwrap(), url.clone());
            if let Ok(checked) = runtime.block_on(policy.resolve(&url)) {
                for addr in checked.addrs() {
                    prop_assert!(std_says_public(addr), "{} -> {}", url, addr);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing differentials, then a raw server that misbehaves

#[tokio::test]
async fn parsing_differentials() {
    let fixed = UrlPolicy::new().resolver(resolver());
    for (url, rule) in [
        ("http://127.1/", "loopback"),
        ("http://0/", "unspecified"),
        ("http://0x7f000001/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://[::127.0.0.1]/", "loopback"),
        ("http://[::7f00:1]/", "loopback"),
        ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:0:127.0.0.1]/", "loopback"),
        ("http://[64:ff9b::7f00:1]/", "loopback"),
        ("http://[64:ff9b::a9fe:a9fe]/", "metadata_endpoint"),
        ("http://[2002:7f00:1::]/", "loopback"),
        ("http://[2002:a00:1::1]/", "private"),
        ("http://[2001:0:7f00:1::]/", "loopback"),
        // Teredo, server 8.8.8.8, client 127.0.0.1 (inverted in the last 32 bits).
        ("http://[2001:0:808:808::80ff:fffe]/", "loopback"),
        ("http://[2001:0:808:808::f7f7:f7f7]/", "reserved"),
        ("http://localhost./", "local_name"),
        ("http://LOCALHOST/", "local_name"),
        ("http://foo.localhost/", "local_name"),
        ("http://localhost%2e/", "local_name"),
        ("http://localhost\u{3002}/", "local_name"),
        ("http://\u{FF4C}ocalhost/", "local_name"),
        ("http://localhost.localdomain/", "local_name"),
        ("http://ip6-localhost/", "single_label_host"),
        ("http://127.0.0.1.nip.io/", "loopback"),
        ("http://127\u{3002}0\u{3002}0\u{3002}1/", "loopback"),
        ("http://127\u{FF0E}0\u{FF0E}0\u{FF0E}1/", "loopback"),
        ("http://%31%32%37%2e0.0.1/", "loopback"),
        ("http://127%2e0%2e0%2e1/", "loopback"),
        ("http://a@evil@127.0.0.1/", "userinfo"),
        ("http://:@127.0.0.1/", "loopback"),
        ("http://@127.0.0.1/", "loopback"),
        ("http:\\\\127.0.0.1", "loopback"),
        ("http:/127.0.0.1/", "loopback"),
        ("http:127.0.0.1/", "loopback"),
        (" http://127.0.0.1/ ", "loopback"),
        ("http://127.0.0.1\t/", "control_char"),
        ("http://127.0.\n0.1/", "control_char"),
        ("http://example.com:65536/", "parse_error"),
        ("http://[fe80::1%25eth0]/", "parse_error"),
        ("http://[fe80::1%eth0]/", "parse_error"),
        ("gopher://example.com/", "scheme_not_allowed"),
        ("HTTP+UNIX://x/", "scheme_not_allowed"),
        ("ws://example.com/", "scheme_not_allowed"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://100.64.0.1/", "shared_address"),
        ("http://100.127.255.254/", "shared_address"),
        ("http://198.18.0.1/", "benchmarking"),
        ("http://198.19.255.255/", "benchmarking"),
        ("http://192.0.0.1/", "reserved"),
        ("http://192.0.0.170/", "reserved"),
        ("http://240.0.0.1/", "reserved"),
        ("http://239.255.255.250/", "multicast"),
        ("http://[ff05::1]/", "multicast"),
        ("http://[::]/", "unspecified"),
        ("http://[::0.0.0.0]/", "unspecified"),
        ("http://192.0.2.1/", "documentation"),
        ("http://203.0.113.1/", "documentation"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://[3fff::1]/", "documentation"),
        ("http://[fec0::1]/", "reserved"),
        ("http://[100::1]/", "reserved"),
        ("http://[5f00::1]/", "reserved"),
        ("http://[fd00:ec2::254]/", "metadata_endpoint"),
    ] {
        match check(&fixed, url).await {
            Ok(addrs) => panic!("{url:?} accepted: {addrs:?}"),
            Err((got, message)) => assert_eq!(got.as_str(), rule, "{url:?}: {message}"),
        }
    }
    // A port of 0 is a URL; it cannot reach anything, and nothing panics.
    let _ = check(&fixed, "http://api.example:0/").await;
}

/// What the type accepted is accepted again, and as JSON it round-trips: the bound holds on
/// the normalized text, not only on what was given.
#[test]
fn an_accepted_url_round_trips() {
    for text in [
        format!("https://api.example/{}", "\u{e9}".repeat(1000)),
        format!("https://api.example/{}", "%".repeat(2000)),
        format!("https://api.example/{}", " x".repeat(1000)),
        format!("https://api.example/?{}", "<".repeat(2000)),
    ] {
        let Ok(url) = PublicUrl::parse(&text) else {
            continue;
        };
        let json = serde_json::to_string(&url).unwrap();
        let back: PublicUrl = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{} bytes do not round-trip: {e}", json.len()));
        assert_eq!(back, url);
        assert!(url.as_str().len() <= PublicUrl::MAX_LEN);
    }
    // IDNA mapping can grow a host tenfold (U+FDFA maps to 18 letters).
    let host = format!("https://{}.example/", "\u{FDFA}".repeat(600));
    if let Ok(url) = PublicUrl::parse(&host) {
        assert!(
            url.as_str().len() <= PublicUrl::MAX_LEN,
            "{} bytes",
            url.as_str().len()
        );
    }
}

/// Reads the request head, records it, then hands the stream to `reply`.
async fn serve_raw<F, Fut>(reply: F) -> (SocketAddr, Arc<Mutex<Vec<String>>>)
where
    F: Fn(String, tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&heads);
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let reply = Arc::clone(&reply);
            let heads = Arc::clone(&recorded);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                heads.lock().unwrap().push(head);
                reply(path, stream).await;
            });
        }
    });
    (addr, heads)
}

fn raw_fetcher(addr: SocketAddr, policy: FetchPolicy) -> Fetcher {
    let url = UrlPolicy::new()
        .resolver(resolver().with("public.example", [addr.ip()]))
        .allow_socket_addr(addr);
    Fetcher::new(policy.url_policy(url)).unwrap()
}

fn raw_url(addr: SocketAddr, path: &str) -> PublicUrl {
    PublicUrl::parse(&format!("http://public.example:{}{path}", addr.port())).unwrap()
}

#[tokio::test]
async fn every_redirect_status_is_rechecked() {
    let secret = serve(|_| Reply::Ok("the secret")).await;
    let sp = secret.addr.port();
    let (front, _) = serve_raw(move |path, mut s| async move {
        let (status, location) = match path.as_str() {
            "/301" => (301, format!("http://127.0.0.1:{sp}/")),
            "/303" => (303, format!("http://0:{sp}/")),
            "/307" => (307, format!("http://[::ffff:7f00:1]:{sp}/")),
            "/308" => (308, format!("http://0.0.0.0:{sp}/")),
            "/proto" => (302, format!("//127.0.0.1:{sp}/")),
            "/userinfo" => (302, format!("http://public.example:{sp}@127.0.0.1:{sp}/")),
            "/https" => (302, format!("https://127.0.0.1:{sp}/")),
            "/dict" => (302, format!("dict://127.0.0.1:{sp}/")),
            "/file" => (302, "file:///etc/passwd".to_owned()),
            "/data" => (302, "data:text/plain,hi".to_owned()),
            _ => (302, "http://[fe80::1%25lo]/".to_owned()),
        };
        let _ = s
            .write_all(
                format!("HTTP/1.1 {status} X\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
                    .as_bytes(),
            )
            .await;
    })
    .await;
    let fetcher = raw_fetcher(front, FetchPolicy::new());
    for path in [
        "/301",
        "/303",
        "/307",
        "/308",
        "/proto",
        "/userinfo",
        "/https",
        "/dict",
        "/file",
        "/data",
        "/zone",
    ] {
        let e = fetcher.get(&raw_url(front, path)).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Refused { redirect: 1, .. }),
            "{path}: {e}"
        );
    }
    assert!(secret.hits().is_empty());
}

#[tokio::test]
async fn one_private_address_among_several_refuses_the_fetch() {
    let server = serve(|_| Reply::Ok("reached")).await;
    let policy = UrlPolicy::new()
        .resolver(FixedResolver::new().with(
            "multi.example",
            [server.addr.ip(), ip("93.184.216.34"), ip("10.0.0.1")],
        ))
        .allow_socket_addr(server.addr);
    let fetcher = Fetcher::new(FetchPolicy::new().url_policy(policy)).unwrap();
    let url = PublicUrl::parse(&format!("http://multi.example:{}/", server.addr.port())).unwrap();
    let e = fetcher.get(&url).await.unwrap_err();
    assert_eq!(e.rule(), Some(UrlRule::Private), "{e}");
    assert!(server.hits().is_empty());
}

#[tokio::test]
async fn hostile_responses_are_capped() {
    let (addr, heads) = serve_raw(|path, mut s| async move {
        let _ = match path.as_str() {
            // A chunk that claims to be huge, then data forever.
            "/huge-chunk" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nfffffffffff\r\n")
                    .await;
                let block = vec![b'x'; 64 * 1024];
                loop {
                    if s.write_all(&block).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
            "/overflow-chunk" => {
                s.write_all(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nxx",
                )
                .await
            }
            "/lying-length" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
                    .await;
                s.write_all(&vec![b'y'; 5 * 1024 * 1024]).await
            }
            "/many-headers" => {
                let mut head = String::from("HTTP/1.1 200 OK\r\n");
                for i in 0..5000 {
                    head.push_str(&format!("x-h{i}: v\r\n"));
                }
                head.push_str("content-length: 2\r\n\r\nok");
                s.write_all(head.as_bytes()).await
            }
            "/huge-header" => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nx-big: ").await;
                let block = vec![b'a'; 64 * 1024];
                for _ in 0..256 {
                    if s.write_all(&block).await.is_err() {
                        break;
                    }
                }
                s.write_all(b"\r\ncontent-length: 0\r\n\r\n").await
            }
            "/gzip" => {
                // A body that claims gzip: returned as sent, never inflated.
                let mut r = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 6\r\n\r\n"
                    .to_vec();
                r.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0]);
                s.write_all(&r).await
            }
            "/continue-flood" => {
                let mut r = Vec::new();
                for _ in 0..10_000 {
                    r.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                r.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                s.write_all(&r).await
            }
            // The status line, one byte at a time.
            "/slow-head" => {
                for b in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n" {
                    if s.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(())
            }
            // A chunked body, one byte each 100 ms: each read is quick, the total is not.
            "/trickle" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                loop {
                    if s.write_all(b"1\r\nx\r\n").await.is_err() {
                        break Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            _ => Ok(()),
        };
    })
    .await;
    let fetcher = raw_fetcher(
        addr,
        FetchPolicy::new()
            .max_bytes(1000)
            .timeout(Duration::from_millis(1500)),
    );
    for (path, want) in [
        ("/huge-chunk", "too_large"),
        ("/overflow-chunk", "http"),
        ("/many-headers", "http"),
        ("/huge-header", "http"),
        ("/slow-head", "timeout"),
        ("/trickle", "timeout"),
    ] {
        let start = Instant::now();
        let e = fetcher.get(&raw_url(addr, path)).await.unwrap_err();
        let got = match e {
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Http(_) => "http",
            FetchError::Timeout { .. } => "timeout",
            ref other => panic!("{path}: {other}"),
        };
        assert_eq!(got, want, "{path}: {e}");
        // Bounded by the total timeout (1.5 s), not per read; generous for a loaded machine.
        assert!(start.elapsed() < Duration::from_secs(10), "{path}");
    }
    let page = fetcher.get(&raw_url(addr, "/lying-length")).await.unwrap();
    assert_eq!(page.body, b"yyyyyyyyyy");
    let page = fetcher.get(&raw_url(addr, "/gzip")).await.unwrap();
    assert_eq!(page.body, [0x1f, 0x8b, 8, 0, 0, 0]);
    let start = Instant::now();
    let r = fetcher.get(&raw_url(addr, "/continue-flood")).await;
    assert!(start.elapsed() < Duration::from_secs(10), "{r:?}");
    let heads = heads.lock().unwrap().clone();
    assert!(
        heads.iter().all(|h| h
            .to_ascii_lowercase()
            .contains("accept-encoding: identity\r\n")),
        "{heads:?}"
    );
}

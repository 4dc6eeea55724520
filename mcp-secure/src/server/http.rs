//! Streamable HTTP transport: rmcp's `StreamableHttpService` at `/mcp`, behind layers that run
//! before any JSON is parsed, outermost first:
//!
//! 1. **flood guard** – per peer IP: open connections capped (more are closed at accept), and a
//!    request rate (429 with `Retry-After`), before anything else;
//! 2. **Host / Origin allow-lists** – DNS-rebinding protection (403);
//! 3. **body limit** – a request body over the cap is refused (413) before it is read whole,
//!    and one not read whole within its time (30 s) gets 408;
//! 4. **bearer authentication** – `Authorization: Bearer` with an API key or a JWT access token,
//!    checked by the server's [`Authenticator`]: missing or bad gives
//!    401 with `WWW-Authenticate: Bearer resource_metadata="..."` (and `error="invalid_token"`),
//!    a valid token with no role this server knows gives 403 `error="insufficient_scope"`; both
//!    challenges carry `scope="..."` (the configured `scopes_supported`) when there are any. The
//!    resolved principal travels to the pipeline in the request's extensions and the
//!    `Authorization` header is removed, so no tool can read or forward the client's token. A
//!    session (`Mcp-Session-Id`) is used only by the user who opened it (404 for anyone else).
//!
//! Protected Resource Metadata (RFC 9728) is served at `/.well-known/oauth-protected-resource`.
//! Then every call goes through the same pipeline as on stdio (per-tool RBAC refusals remain
//! tool results with `forbidden`). Audit records say `"transport": "http"`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::SecureServer;
use super::record::{AuditGuard, CallRecord};
use crate::auth::{AuthError, Authenticator, Credential, CredentialSource, Principal};
use crate::clock::Clock;
use crate::error::{ErrorCode, ToolError};
use crate::guard::authn;
use crate::guard::rate::KeyedLimit;
use crate::policy::Rate;

/// The path of the MCP endpoint.
pub const MCP_PATH: &str = "/mcp";
/// The path of the Protected Resource Metadata document (RFC 9728).
pub const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

/// How the HTTP transport is served. Secure defaults: loopback only, Host and Origin checked,
/// 1 MiB bodies read within 30 s, 600 requests per minute per IP.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    bind: SocketAddr,
    allowed_hosts: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    max_body_bytes: usize,
    body_read_timeout: std::time::Duration,
    per_ip_rate: Option<Rate>,
    max_connections_per_ip: Option<usize>,
    resource: Option<String>,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    stateful: bool,
    json_response: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allowed_hosts: None,
            allowed_origins: None,
            max_body_bytes: 1024 * 1024,
            body_read_timeout: std::time::Duration::from_secs(30),
            per_ip_rate: Rate::parse("600/min").ok(),
            max_connections_per_ip: Some(64),
            resource: None,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            stateful: true,
            json_response: false,
        }
    }
}

impl HttpConfig {
    /// The defaults, bound to `addr` (loopback unless you say otherwise; port 0 picks one).
    pub fn new(addr: SocketAddr) -> Self {
        HttpConfig {
            bind: addr,
            ..Self::default()
        }
    }

    /// The `Host` values accepted (`name` or `name:port`). Default: `localhost`, `127.0.0.1`
    /// and `[::1]` on any port, plus the resource URI's host. Required when binding to a
    /// non-loopback address.
    pub fn allowed_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// The `Origin` values accepted (`scheme://host[:port|:*]`, or `null`). A request with an
    /// `Origin` not listed gets 403; requests without `Origin` (non-browser clients) pass.
    /// Default: `http` and `https` on every allowed host, any port.
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// The largest request body, in bytes (default 1 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How long a client may take to send a request's body (default 30 s); a body still
    /// arriving then gets `408`. Bodies are read before authentication, so without a limit a
    /// stranger could hold connections and buffers open by sending slowly.
    pub fn body_read_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// The request rate allowed per peer IP, e.g. `"600/min"`; `None` turns the guard off.
    pub fn per_ip_rate(mut self, rate: Option<&str>) -> Result<Self, String> {
        self.per_ip_rate = rate.map(Rate::parse).transpose()?;
        Ok(self)
    }

    /// The open connections allowed per peer IP (default 64); more are closed as soon as they
    /// are accepted. `None` turns the cap off. Applies to [`SecureServer::serve_http`].
    pub fn max_connections_per_ip(mut self, max: Option<usize>) -> Self {
        self.max_connections_per_ip = max;
        self
    }

    /// This server's canonical resource URI (e.g. `https://mcp.example.com/mcp`): the `aud` JWTs
    /// must carry and the `resource` of the metadata. Default: `http://<bound address>/mcp`.
    pub fn resource(mut self, uri: impl Into<String>) -> Self {
        self.resource = Some(uri.into());
        self
    }

    /// Authorization servers listed in the Protected Resource Metadata.
    pub fn authorization_servers(
        mut self,
        issuers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.authorization_servers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes listed in the Protected Resource Metadata, and named (`scope="..."`) in the
    /// `401` and `403` challenges, so a client knows which to ask for.
    pub fn scopes_supported(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sessions (`Mcp-Session-Id`, default) or one stateless exchange per POST.
    pub fn stateful(mut self, stateful: bool) -> Self {
        self.stateful = stateful;
        self
    }

    /// In stateless mode, answer plain JSON instead of an SSE stream where possible.
    pub fn json_response(mut self, json: bool) -> Self {
        self.json_response = json;
        self
    }

    /// The address to bind.
    pub fn bind(&self) -> SocketAddr {
        self.bind
    }
}

/// The principal the HTTP layer resolved, carried in the request's extensions. Private: only
/// this module can put one there, so a client cannot forge it.
#[derive(Clone)]
struct Authenticated(Arc<Principal>);

/// The principal the HTTP layer stored in a request's extensions, if any.
pub(crate) fn authenticated(extensions: &http::Extensions) -> Option<Arc<Principal>> {
    extensions.get::<Authenticated>().map(|a| Arc::clone(&a.0))
}

/// A running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    resource: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The MCP endpoint's URL on the bound address (`http://ADDR/mcp`).
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.local_addr)
    }

    /// The canonical resource URI the server announces.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Stops accepting connections; in-flight requests finish.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

struct Guards {
    hosts: Vec<(String, Option<u16>)>,
    origins: Vec<String>,
    flood: Option<KeyedLimit>,
    audit: Arc<AuditGuard>,
}

#[derive(Clone)]
struct AuthState {
    authenticator: Arc<dyn Authenticator>,
    known_roles: Arc<HashSet<&'static str>>,
    resource_metadata: Arc<str>,
    /// The `scope` of `401` and `403` challenges: `scopes_supported`, space-separated (RFC 6750
    /// §3), so a client can ask for them, or for more of them (step-up); none when empty.
    scope: Option<Arc<str>>,
    audit: Arc<AuditGuard>,
    sessions: Arc<SessionOwners>,
}

/// The header naming a request's MCP session.
const SESSION_HEADER: &str = "mcp-session-id";

/// Which user opened each MCP session: a session is bound to the principal that opened it, so a
/// caller holding a valid token of its own cannot post into, read the stream of, or end a
/// session it learned the id of (it is answered as for a session that does not exist).
struct SessionOwners {
    owners: std::sync::Mutex<SessionMap>,
    manager: Arc<LocalSessionManager>,
}

struct SessionMap {
    by_id: std::collections::HashMap<String, String>,
    /// The size at which ended sessions (gone from rmcp's manager) are next pruned.
    prune_at: usize,
}

impl SessionOwners {
    const FIRST_PRUNE: usize = 1024;

    fn new(manager: Arc<LocalSessionManager>) -> Self {
        SessionOwners {
            owners: std::sync::Mutex::new(SessionMap {
                by_id: std::collections::HashMap::new(),
                prune_at: Self::FIRST_PRUNE,
            }),
            manager,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user` may use session `id`: a session this layer saw opened by someone else is
    /// refused; an id it never saw is left to rmcp (which answers 404 for an unknown one).
    fn may_use(&self, id: &str, user: &str) -> bool {
        self.lock().by_id.get(id).is_none_or(|owner| owner == user)
    }

    /// Records that `user` opened session `id`, and now and then forgets sessions that ended.
    async fn opened(&self, id: String, user: &str) {
        let prune = {
            let mut map = self.lock();
            map.by_id.entry(id).or_insert_with(|| user.to_owned());
            map.by_id.len() >= map.prune_at
        };
        if prune {
            let live: HashSet<String> = self
                .manager
                .sessions
                .read()
                .await
                .keys()
                .map(|k| k.to_string())
                .collect();
            let mut map = self.lock();
            map.by_id.retain(|id, _| live.contains(id));
            map.prune_at = (map.by_id.len() * 2).max(Self::FIRST_PRUNE);
        }
    }

    fn ended(&self, id: &str) {
        self.lock().by_id.remove(id);
    }
}

impl<S: Send + Sync + 'static> SecureServer<S> {
    /// Binds `config`'s address and serves MCP over streamable HTTP at `/mcp` until
    /// [`HttpServer::shutdown`]. Refuses to bind a non-loopback address without an explicit
    /// Host allow-list.
    pub async fn serve_http(self, config: HttpConfig) -> std::io::Result<HttpServer> {
        if config.allowed_hosts.is_none() && !config.bind.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "binding {} (not loopback) needs an explicit Host allow-list: `HttpConfig::allowed_hosts`",
                    config.bind
                ),
            ));
        }
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let local_addr = listener.local_addr()?;
        let resource = config
            .resource
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}{MCP_PATH}"));
        let config = HttpConfig {
            resource: Some(resource.clone()),
            ..config
        };
        let shutdown = CancellationToken::new();
        // Stopping also ends rmcp's sessions and SSE streams, so the graceful shutdown completes.
        let router = self.http_router_for(&config, local_addr.ip(), shutdown.child_token())?;
        let stop = shutdown.clone();
        let listener = CappedListener {
            inner: listener,
            open: Arc::default(),
            max: config.max_connections_per_ip.unwrap_or(usize::MAX),
        };
        let task = tokio::spawn(async move {
            use axum::serve::ListenerExt;
            axum::serve(
                listener.tap_io(|_| {}),
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        });
        tracing::info!(addr = %local_addr, %resource, "serving MCP over streamable HTTP");
        Ok(HttpServer {
            local_addr,
            resource,
            shutdown,
            task,
        })
    }

    /// The axum router (`/mcp` and the metadata routes) with every guard layer, to mount in an
    /// application of your own. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so the flood guard sees peer IPs.
    /// `config` must name its resource URI or bind a concrete address.
    pub fn http_router(&self, config: &HttpConfig) -> std::io::Result<Router> {
        self.http_router_for(config, config.bind.ip(), CancellationToken::new())
    }

    fn http_router_for(
        &self,
        config: &HttpConfig,
        bound: IpAddr,
        cancel: CancellationToken,
    ) -> std::io::Result<Router> {
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        let resource = config
            .resource
            .clone()
            .unwrap_or_else(|| format!("http://{}{MCP_PATH}", config.bind));
        let resource_uri: http::Uri = resource
            .parse()
            .map_err(|e| invalid(format!("resource URI `{resource}`: {e}")))?;
        let (Some(scheme), Some(authority)) = (resource_uri.scheme_str(), resource_uri.authority())
        else {
            return Err(invalid(format!(
                "resource URI `{resource}` must be absolute (http or https)"
            )));
        };
        if !matches!(scheme, "http" | "https") {
            return Err(invalid(format!(
                "resource URI `{resource}` must be http or https"
            )));
        }
        let hosts: Vec<String> = match &config.allowed_hosts {
            Some(h) => h.clone(),
            None if bound.is_loopback() => {
                let mut h = vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "[::1]".to_owned(),
                ];
                h.push(authority.host().to_owned());
                h
            }
            None => {
                return Err(invalid(format!(
                    "binding {bound} (not loopback) needs an explicit Host allow-list: `HttpConfig::allowed_hosts`"
                )));
            }
        };
        let parsed_hosts: Vec<(String, Option<u16>)> =
            hosts.iter().filter_map(|h| parse_authority(h)).collect();
        let origins = match &config.allowed_origins {
            Some(o) => o.clone(),
            None => parsed_hosts
                .iter()
                .flat_map(|(h, _)| {
                    let h = if h.contains(':') {
                        format!("[{h}]")
                    } else {
                        h.clone()
                    };
                    [format!("http://{h}:*"), format!("https://{h}:*")]
                })
                .collect(),
        };
        let resource_metadata: Arc<str> = format!("{scheme}://{authority}{PRM_PATH}").into();
        let prm = Arc::new(json!({
            "resource": resource,
            "authorization_servers": config.authorization_servers,
            "bearer_methods_supported": ["header"],
            "scopes_supported": config.scopes_supported,
            "resource_name": self.inner.name,
        }));

        let guards = Arc::new(Guards {
            hosts: parsed_hosts,
            origins,
            flood: config
                .per_ip_rate
                .map(|r| KeyedLimit::new(r, Clock::system(), 100_000)),
            audit: Arc::clone(&self.inner.audit),
        });
        let server = self.clone().with_transport("http");
        let session_manager = Arc::new(LocalSessionManager::default());
        let auth = AuthState {
            authenticator: Arc::clone(&self.inner.authenticator),
            known_roles: Arc::new(self.inner.roles.names().collect()),
            resource_metadata,
            scope: challenge_scope(&config.scopes_supported),
            audit: Arc::clone(&self.inner.audit),
            sessions: Arc::new(SessionOwners::new(Arc::clone(&session_manager))),
        };

        let mut rmcp_config = StreamableHttpServerConfig::default()
            .with_cancellation_token(cancel)
            .with_max_request_body_bytes(config.max_body_bytes)
            .with_legacy_session_mode(config.stateful)
            .with_json_response(config.json_response)
            // Host and Origin are checked in front of authentication (below); rmcp's own check
            // would only repeat it with a smaller default list.
            .disable_allowed_hosts();
        rmcp_config.sse_keep_alive = Some(std::time::Duration::from_secs(15));
        let service =
            StreamableHttpService::new(move || Ok(server.clone()), session_manager, rmcp_config);

        let mcp = Router::new()
            .route_service(MCP_PATH, service)
            .layer(middleware::from_fn_with_state(auth, bearer_layer))
            .layer(middleware::from_fn_with_state(
                BodyLimits {
                    max_bytes: config.max_body_bytes,
                    read_timeout: config.body_read_timeout,
                },
                body_limit_layer,
            ));
        let metadata = Router::new()
            .route(
                PRM_PATH,
                axum::routing::get({
                    let prm = Arc::clone(&prm);
                    move || std::future::ready(axum::Json((*prm).clone()))
                }),
            )
            .route(
                &format!("{PRM_PATH}{MCP_PATH}"),
                axum::routing::get(move || std::future::ready(axum::Json((*prm).clone()))),
            );
        Ok(Router::new()
            .merge(mcp)
            .merge(metadata)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&guards),
                host_layer,
            ))
            .layer(middleware::from_fn_with_state(guards, flood_layer)))
    }
}

/// A TCP listener that closes connections from a peer IP that already holds `max` open ones:
/// the connection half of the flood guard (the request rate is the other half).
struct CappedListener {
    inner: tokio::net::TcpListener,
    open: Arc<dashmap::DashMap<IpAddr, usize>>,
    max: usize,
}

/// A connection counted against its peer IP until it is dropped.
struct CountedStream {
    inner: tokio::net::TcpStream,
    ip: IpAddr,
    open: Arc<dashmap::DashMap<IpAddr, usize>>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        if let dashmap::Entry::Occupied(mut e) = self.open.entry(self.ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ip = addr.ip();
            let admitted = {
                let mut count = self.open.entry(ip).or_insert(0);
                if *count >= self.max {
                    false
                } else {
                    *count += 1;
                    true
                }
            };
            if !admitted {
                tracing::warn!(peer = %ip, max = self.max, "too many connections from one address: closed");
                drop(stream);
                continue;
            }
            return (
                CountedStream {
                    inner: stream,
                    ip,
                    open: Arc::clone(&self.open),
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl tokio::io::AsyncRead for CountedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

async fn flood_layer(State(guards): State<Arc<Guards>>, request: Request, next: Next) -> Response {
    if let Some(limit) = &guards.flood {
        let ip = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        if let Err(e) = limit.check(&ip, "this address") {
            let ms = e
                .details()
                .get("retry_after_ms")
                .and_then(|v| v.as_u64())
                .unwrap_or(1000);
            tracing::warn!(peer = %ip, "request rate per IP exceeded: 429");
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"error": "rate_limited", "retry_after_ms": ms})),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
    }
    next.run(request).await
}

/// What [`body_limit_layer`] allows a request's body.
#[derive(Clone, Copy)]
struct BodyLimits {
    max_bytes: usize,
    read_timeout: std::time::Duration,
}

/// Reads the whole body under the cap before anything parses it: a `Content-Length` over the
/// cap is refused at once, and a chunked body is cut off (413) as soon as the bytes read pass
/// the cap, so no body is ever buffered past it and no client learns more than "too large". A
/// body not read whole within the time allowed gets 408.
async fn body_limit_layer(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let limit = limits.max_bytes;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(json!({"error": "too_large", "max_bytes": limit})),
        )
            .into_response()
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let read = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit));
    let Ok(read) = tokio::time::timeout(limits.read_timeout, read).await else {
        tracing::info!(
            timeout_ms = limits.read_timeout.as_millis(),
            "request body not read in time: 408"
        );
        return plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        );
    };
    match read {
        Ok(collected) => {
            next.run(Request::from_parts(parts, Body::from(collected.to_bytes())))
                .await
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => too_large(),
        Err(e) => {
            tracing::info!(error = %e, "request body could not be read");
            plain(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        }
    }
}

async fn host_layer(State(guards): State<Arc<Guards>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let Some((host, port)) = host.as_deref().and_then(parse_authority) else {
        let message = "missing or malformed Host header";
        audit_refusal(
            &guards.audit,
            refusal_input(&request),
            ErrorCode::InvalidInput,
            message,
        )
        .await;
        return plain(StatusCode::BAD_REQUEST, message);
    };
    let allowed = guards
        .hosts
        .iter()
        .any(|(h, p)| *h == host && p.is_none_or(|p| Some(p) == port));
    if !allowed {
        tracing::warn!(%host, "Host not in the allow-list (possible DNS rebinding): 403");
        let message = "Host not allowed";
        audit_refusal(
            &guards.audit,
            refusal_input(&request),
            ErrorCode::Forbidden,
            message,
        )
        .await;
        return plain(StatusCode::FORBIDDEN, message);
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .ok()
            .is_some_and(|o| origin_allowed(o, &guards.origins));
        if !ok {
            tracing::warn!(origin = ?origin, "Origin not in the allow-list: 403");
            let message = "Origin not allowed";
            audit_refusal(
                &guards.audit,
                refusal_input(&request),
                ErrorCode::Forbidden,
                message,
            )
            .await;
            return plain(StatusCode::FORBIDDEN, message);
        }
    }
    next.run(request).await
}

async fn bearer_layer(State(auth): State<AuthState>, mut request: Request, next: Next) -> Response {
    // Tokens in the URL end up in logs and histories: the MCP spec forbids them.
    if request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token=")))
    {
        return challenge(
            &auth,
            refusal_input(&request),
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "send the token in the Authorization header, not the URL",
        )
        .await;
    }
    let headers = request.headers();
    let count = headers.get_all(header::AUTHORIZATION).iter().count();
    let token = authn::bearer_token(headers);
    let token = match (count, token) {
        (0, _) => {
            return challenge(
                &auth,
                refusal_input(&request),
                StatusCode::UNAUTHORIZED,
                None,
                &AuthError::Missing.to_string(),
            )
            .await;
        }
        (1, Some(t)) => t,
        (1, None) => {
            // Another scheme (`Basic`) or `Bearer` without a token.
            return challenge(
                &auth,
                refusal_input(&request),
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "use `Authorization: Bearer <token>`",
            )
            .await;
        }
        _ => {
            return challenge(
                &auth,
                refusal_input(&request),
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "send one Authorization header",
            )
            .await;
        }
    };
    let credential = Credential::new(token, CredentialSource::HttpBearer);
    let principal = match crate::guard::authn::check(&*auth.authenticator, &credential).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(reason = %e, "bearer token refused");
            let status = if e == AuthError::InsufficientScope {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            return challenge(
                &auth,
                refusal_input(&request),
                status,
                e.bearer_error(),
                &e.to_string(),
            )
            .await;
        }
    };
    if !principal
        .roles
        .iter()
        .any(|r| auth.known_roles.contains(r.as_str()))
    {
        let e = AuthError::InsufficientScope;
        return challenge(
            &auth,
            refusal_input(&request),
            StatusCode::FORBIDDEN,
            e.bearer_error(),
            &e.to_string(),
        )
        .await;
    }
    // A session is used only by the user who opened it.
    // Read as rmcp reads it (the first header, if it is visible ASCII).
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && !auth.sessions.may_use(id, &principal.user)
    {
        tracing::warn!(user = %principal.user, "a session opened by another user: 404");
        audit_refusal(
            &auth.audit,
            refusal_input(&request),
            ErrorCode::Forbidden,
            "the session belongs to another user",
        )
        .await;
        return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
    }
    let deleting = request.method() == http::Method::DELETE;
    // The token stops here: nothing downstream (rmcp, tools) can read or forward it.
    request.headers_mut().remove(header::AUTHORIZATION);
    let user = principal.user.clone();
    request.extensions_mut().insert(Authenticated(principal));
    let response = next.run(request).await;
    match session {
        None => {
            if let Some(id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                auth.sessions.opened(id.to_owned(), &user).await;
            }
        }
        Some(id) if deleting && response.status().is_success() => auth.sessions.ended(&id),
        Some(_) => {}
    }
    response
}

/// A refusal of the bearer layer: recorded in the audit log (and counted for alerts) like any
/// refused call, then answered with the `WWW-Authenticate` challenge.
async fn challenge(
    auth: &AuthState,
    input: rmcp::model::JsonObject,
    status: StatusCode,
    error: Option<&str>,
    description: &str,
) -> Response {
    let code = if status == StatusCode::FORBIDDEN {
        ErrorCode::Forbidden
    } else {
        ErrorCode::Unauthorized
    };
    audit_refusal(&auth.audit, input, code, description).await;
    let mut value = format!("Bearer resource_metadata=\"{}\"", auth.resource_metadata);
    if let Some(scope) = auth.scope.as_deref()
        && status != StatusCode::BAD_REQUEST
    {
        value.push_str(&format!(", scope=\"{scope}\""));
    }
    if let Some(e) = error {
        let description: String = description
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .collect();
        value.push_str(&format!(
            ", error=\"{e}\", error_description=\"{description}\""
        ));
    }
    let body = json!({"error": error.unwrap_or("unauthorized"), "error_description": description});
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// `scopes`, space-separated, for a challenge's `scope`: each one a scope token (RFC 6749 §3.3:
/// printable ASCII but `"` and `\`, no space), others left out; `None` when none is left.
fn challenge_scope(scopes: &[String]) -> Option<Arc<str>> {
    let token = |s: &&String| {
        !s.is_empty()
            && s.bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    };
    let valid: Vec<&str> = scopes.iter().filter(token).map(String::as_str).collect();
    (!valid.is_empty()).then(|| valid.join(" ").into())
}

/// The tool name of audit records written for requests the HTTP layer refused before any MCP
/// message was read.
pub const HTTP_REFUSAL_TOOL: &str = "(http)";

/// One audit record for a request refused in front of MCP (Host, Origin, bearer token), with
/// what was asked as its input ([`refusal_input`]) and why it was refused.
async fn audit_refusal(
    audit: &Arc<AuditGuard>,
    input: rmcp::model::JsonObject,
    code: ErrorCode,
    message: &str,
) {
    let mut record = CallRecord::new(audit, HTTP_REFUSAL_TOOL, "http", input);
    record
        .finish(Err(&ToolError::new(code, message.to_owned())))
        .await;
}

/// What a refused request asked: method, path and peer address, never a header value.
fn refusal_input(request: &Request) -> rmcp::model::JsonObject {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let mut input = rmcp::model::JsonObject::new();
    input.insert("method".into(), request.method().as_str().into());
    input.insert("path".into(), request.uri().path().into());
    input.insert("peer".into(), peer.into());
    input
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text))
        .unwrap_or_else(|_| status.into_response())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` -> (lowercase host without brackets, port).
fn parse_authority(text: &str) -> Option<(String, Option<u16>)> {
    let a: http::uri::Authority = text.trim().parse().ok()?;
    if a.as_str().contains('@') {
        return None;
    }
    Some((
        a.host().trim_matches(['[', ']']).to_ascii_lowercase(),
        a.port_u16(),
    ))
}

fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if origin.trim().eq_ignore_ascii_case("null") {
        return allowed.iter().any(|a| a == "null");
    }
    let Some((scheme, host, port)) = parse_origin(origin) else {
        return false;
    };
    allowed.iter().any(|entry| {
        let (base, any_port) = match entry.strip_suffix(":*") {
            Some(b) => (b, true),
            None => (entry.as_str(), false),
        };
        let Some((s, h, p)) = parse_origin(base) else {
            return false;
        };
        s == scheme && h == host && (any_port || p == port)
    })
}

fn parse_origin(text: &str) -> Option<(String, String, u16)> {
    let uri: http::Uri = text.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    Some((
        scheme,
        authority
            .host()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase(),
        authority.port_u16().unwrap_or(default),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only scope tokens reach a challenge: a value with a quote, a backslash, a space or a
    /// control character could break the header (which would then not be sent at all).
    #[test]
    fn challenge_scopes_are_scope_tokens() {
        let scopes = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            challenge_scope(&scopes(&["mcp.read", "files:write"])).as_deref(),
            Some("mcp.read files:write")
        );
        assert_eq!(
            challenge_scope(&scopes(&["a\"b", "c d", "e\\f", "", "ok", "é", "x\n"])).as_deref(),
            Some("ok")
        );
        assert_eq!(challenge_scope(&[]), None);
        assert_eq!(challenge_scope(&scopes(&["bad one"])), None);
    }

    #[test]
    fn authorities_and_origins_parse_and_match() {
        assert_eq!(
            parse_authority("LocalHost:8080"),
            Some(("localhost".into(), Some(8080)))
        );
        assert_eq!(parse_authority("[::1]:1"), Some(("::1".into(), Some(1))));
        assert_eq!(
            parse_authority("evil.example"),
            Some(("evil.example".into(), None))
        );
        assert_eq!(parse_authority("user@evil.example"), None);
        assert_eq!(parse_authority(""), None);
        let allowed = vec![
            "http://localhost:*".to_owned(),
            "https://app.example".to_owned(),
        ];
        assert!(origin_allowed("http://localhost:6274", &allowed));
        assert!(origin_allowed("https://app.example", &allowed));
        assert!(origin_allowed("https://app.example:443", &allowed));
        assert!(!origin_allowed("https://app.example:8443", &allowed));
        assert!(!origin_allowed("http://evil.example", &allowed));
        assert!(!origin_allowed("null", &allowed));
        assert!(!origin_allowed("not a url", &allowed));
    }
}

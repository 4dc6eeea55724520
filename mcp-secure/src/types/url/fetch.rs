//! Fetching a [`PublicUrl`]: connect only to checked addresses, re-check every redirect, cap
//! size and time.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use ::url::Host;
use http::header::{ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::policy::{CheckedUrl, UrlPolicy};
use super::public_url::PublicUrl;
use super::rejection::{UrlRejection, UrlRule};
use crate::error::{ErrorCode, ToolError};

/// The limits and checks of a [`Fetcher`].
///
/// Defaults: the default [`UrlPolicy`], at most 5 redirects, 1 MiB of body, 10 s in total
/// (resolution, connection, TLS, every redirect and the body), the Mozilla root certificates
/// (`webpki-roots`).
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    url: UrlPolicy,
    max_redirects: usize,
    max_bytes: u64,
    timeout: Duration,
    user_agent: String,
    default_roots: bool,
    extra_roots: Vec<Vec<u8>>,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            url: UrlPolicy::default(),
            max_redirects: 5,
            max_bytes: 1024 * 1024,
            timeout: Duration::from_secs(10),
            user_agent: concat!("mcp-secure/", env!("CARGO_PKG_VERSION")).to_owned(),
            default_roots: true,
            extra_roots: Vec::new(),
        }
    }
}

impl FetchPolicy {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The URL policy for the first URL and every redirect (schemes, ports, resolver,
    /// exemptions).
    pub fn url_policy(mut self, policy: UrlPolicy) -> Self {
        self.url = policy;
        self
    }

    /// The most redirects followed (default 5); `0` follows none.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// The largest body accepted, in bytes (default 1 MiB). A larger body fails with
    /// [`FetchError::TooLarge`] as soon as it is seen to be larger (a `Content-Length` over the
    /// cap, or the first byte past it), without reading the rest.
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// The time the whole fetch may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `User-Agent` header (default `mcp-secure/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Also trusts this root certificate (DER) for `https`.
    pub fn add_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(der.into());
        self
    }

    /// Does not trust the Mozilla root certificates; only those added with
    /// [`FetchPolicy::add_root_certificate`].
    pub fn without_default_roots(mut self) -> Self {
        self.default_roots = false;
        self
    }

    /// The URL policy.
    pub fn url(&self) -> &UrlPolicy {
        &self.url
    }
}

/// Fetches [`PublicUrl`]s with `GET`, safely.
///
/// For each URL (the first, then each redirect target):
///
/// 1. the URL is checked against the [`UrlPolicy`] again, its host resolved **once**, and
///    every address checked ([`UrlPolicy::resolve`]);
/// 2. the connection goes to one of *those* addresses, never to the name (so the name cannot
///    resolve to something else in between: DNS rebinding), with the original `Host` header
///    and, for `https`, the original name for SNI and certificate verification;
/// 3. a redirect (`301`, `302`, `303`, `307`, `308`) is resolved against the URL, parsed and
///    checked like the first URL, up to [`FetchPolicy::max_redirects`];
/// 4. the body is read up to [`FetchPolicy::max_bytes`], all within [`FetchPolicy::timeout`].
///
/// It never reads proxy settings from the environment (`HTTP_PROXY`, `ALL_PROXY`, ...), never
/// sends cookies or credentials, asks for no compression (`Accept-Encoding: identity`) and
/// uses one HTTP/1.1 connection per request.
///
/// ```no_run
/// use mcp_secure::types::url::{FetchPolicy, Fetcher, PublicUrl};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let fetcher = Fetcher::new(FetchPolicy::new().max_bytes(256 * 1024))?;
/// let page = fetcher.get(&PublicUrl::parse("https://example.com/")?).await?;
/// println!("{} {} bytes from {}", page.status, page.body.len(), page.url);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fetcher {
    policy: FetchPolicy,
    tls: Arc<ClientConfig>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What a fetch returned (the final response, after redirects).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FetchResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most [`FetchPolicy::max_bytes`].
    pub body: Vec<u8>,
    /// The URL the response came from (the last redirect target).
    pub url: PublicUrl,
    /// The number of redirects followed.
    pub redirects: usize,
}

impl FetchResponse {
    /// The body as UTF-8.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL, or a redirect target, was refused; `redirect` is `0` for the URL given, `n`
    /// for the target of the `n`th redirect. Nothing was sent to a refused target.
    #[error("{}{rejection}", redirect_prefix(*redirect))]
    Refused {
        /// Which URL: `0` the URL given, `n` the target of the `n`th redirect.
        redirect: usize,
        /// The rule and the explanation.
        rejection: UrlRejection,
    },
    /// The body is larger than the cap.
    #[error("the response is larger than {max_bytes} bytes")]
    TooLarge {
        /// The cap.
        max_bytes: u64,
    },
    /// The fetch took longer than the policy allows.
    #[error("the fetch took longer than {} ms", after.as_millis())]
    Timeout {
        /// The time allowed.
        after: Duration,
    },
    /// No checked address accepted a connection.
    #[error("could not connect to the host: {0}")]
    Connect(#[source] io::Error),
    /// The TLS handshake failed (an untrusted or wrong certificate, ...).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// The server broke HTTP (or closed the connection).
    #[error("HTTP error: {0}")]
    Http(#[source] hyper::Error),
    /// The policy cannot be used (a bad root certificate).
    #[error("invalid fetch policy: {0}")]
    Config(String),
}

fn redirect_prefix(redirect: usize) -> String {
    if redirect == 0 {
        String::new()
    } else {
        format!("redirect {redirect}: ")
    }
}

impl FetchError {
    /// The rule, for a refusal.
    pub fn rule(&self) -> Option<UrlRule> {
        match self {
            FetchError::Refused { rejection, .. } => Some(rejection.rule),
            _ => None,
        }
    }
}

/// A refusal becomes `invalid_input` (with `rule` and `redirect`), too large `too_large` (with
/// `max_bytes`), anything else `failed` with a short reason.
impl From<FetchError> for ToolError {
    fn from(e: FetchError) -> ToolError {
        match &e {
            FetchError::Refused {
                redirect,
                rejection,
            } => ToolError::invalid_input(e.to_string())
                .with_detail("rule", rejection.rule.as_str())
                .with_detail("redirect", *redirect),
            FetchError::TooLarge { max_bytes } => {
                ToolError::new(ErrorCode::TooLarge, e.to_string())
                    .with_detail("max_bytes", *max_bytes)
            }
            FetchError::Config(_) => ToolError::internal(e),
            _ => ToolError::failed(e.to_string()),
        }
    }
}

impl Fetcher {
    /// A fetcher with this policy. Fails only on a root certificate that cannot be parsed.
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, FetchError> {
        let mut roots = RootCertStore::empty();
        if policy.default_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for der in &policy.extra_roots {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| FetchError::Config(format!("root certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            policy,
            tls: Arc::new(tls),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// `GET`s `url`, following redirects; see [`Fetcher`].
    pub async fn get(&self, url: &PublicUrl) -> Result<FetchResponse, FetchError> {
        let after = self.policy.timeout;
        tokio::time::timeout(after, self.get_within(url))
            .await
            .unwrap_or(Err(FetchError::Timeout { after }))
    }

    async fn get_within(&self, url: &PublicUrl) -> Result<FetchResponse, FetchError> {
        let policy = &self.policy.url;
        let mut current = url.clone();
        let mut redirects = 0;
        loop {
            let refused = |rejection| FetchError::Refused {
                redirect: redirects,
                rejection,
            };
            let checked = policy.resolve(&current).await.map_err(refused)?;
            let (response, _connection) = self.send(&checked, redirects).await?;
            let status = response.status();
            let location = response.headers().get(LOCATION);
            if is_redirect(status)
                && let Some(location) = location
            {
                let next = redirects + 1;
                let refused = |rejection| FetchError::Refused {
                    redirect: next,
                    rejection,
                };
                if redirects == self.policy.max_redirects {
                    return Err(refused(UrlRejection::new(
                        UrlRule::TooManyRedirects,
                        format!("more than {} redirects", self.policy.max_redirects),
                    )));
                }
                let location = location.to_str().map_err(|_| {
                    refused(UrlRejection::new(
                        UrlRule::ParseError,
                        "the Location header is not visible ASCII",
                    ))
                })?;
                let target = current.as_url().join(location).map_err(|e| {
                    refused(UrlRejection::new(
                        UrlRule::ParseError,
                        format!("the Location header is not a URL: {e}"),
                    ))
                })?;
                current = policy.parse(target.as_str()).map_err(refused)?;
                redirects = next;
                continue;
            }
            let max_bytes = self.policy.max_bytes;
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max_bytes) {
                return Err(FetchError::TooLarge { max_bytes });
            }
            let (parts, mut body) = response.into_parts();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(FetchError::Http)?;
                if let Ok(data) = frame.into_data() {
                    if (buf.len() + data.len()) as u64 > max_bytes {
                        return Err(FetchError::TooLarge { max_bytes });
                    }
                    buf.extend_from_slice(&data);
                }
            }
            return Ok(FetchResponse {
                status: parts.status,
                headers: parts.headers,
                body: buf,
                url: current,
                redirects,
            });
        }
    }

    /// Connects to the first checked address that answers and sends the request.
    async fn send(
        &self,
        checked: &CheckedUrl,
        redirect: usize,
    ) -> Result<(Response<Incoming>, AbortOnDrop), FetchError> {
        let url = checked.url().as_url();
        let mut last = None;
        let mut stream = None;
        for addr in checked.addrs() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            return Err(FetchError::Connect(last.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "no address")
            })));
        };
        let _ = stream.set_nodelay(true);

        let host = url.host_str().unwrap_or_default();
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let target = &url[::url::Position::BeforePath..::url::Position::AfterQuery];
        let request = Request::get(target)
            .header(HOST, host_header)
            .header(USER_AGENT, &self.policy.user_agent)
            .header(ACCEPT_ENCODING, "identity")
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Refused {
                redirect,
                rejection: UrlRejection::new(
                    UrlRule::ParseError,
                    format!("not a valid HTTP request target: {e}"),
                ),
            })?;

        if url.scheme() == "https" {
            let name = match url.host() {
                Some(Host::Domain(d)) => ServerName::try_from(d.trim_end_matches('.').to_owned())
                    .map_err(|e| {
                    FetchError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e))
                })?,
                Some(Host::Ipv4(ip)) => ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
                Some(Host::Ipv6(ip)) => ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
                None => return Err(FetchError::Tls(io::Error::other("no host"))),
            };
            let tls = TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, stream)
                .await
                .map_err(FetchError::Tls)?;
            exchange(tls, request).await
        } else {
            exchange(stream, request).await
        }
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Stops the connection task when the response is dropped (a body over the cap, a timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<T>(
    io: T,
    request: Request<Empty<Bytes>>,
) -> Result<(Response<Incoming>, AbortOnDrop), FetchError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .handshake(TokioIo::new(io))
        .await
        .map_err(FetchError::Http)?;
    let task = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(FetchError::Http)?;
    Ok((response, task))
}

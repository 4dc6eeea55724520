//! What a [`PublicUrl`] may point at: schemes, ports, host names and addresses.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ::url::{Host, Url};

use super::ip::classify;
use super::public_url::PublicUrl;
use super::rejection::{UrlRejection, UrlRule, quote_host};
use super::resolve::{Resolver, SystemResolver};

/// A URL scheme a [`UrlPolicy`] may allow: only those the [`Fetcher`](super::Fetcher) can
/// fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `http`.
    Http,
    /// `https` (TLS with the Mozilla root certificates, or roots of your choice).
    Https,
}

impl Scheme {
    /// The scheme's name (`"https"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn from_name(name: &str) -> Option<Scheme> {
        match name {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// Cloud metadata services, by name.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Names (and their subdomains) that only resolve on a local network.
const LOCAL_SUFFIXES: &[&str] = &[
    "localhost",
    "local",
    "localdomain",
    "internal",
    "home.arpa",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
];

/// What a [`PublicUrl`] may point at, and how its host is resolved.
///
/// The default allows `http` and `https` on any port, refuses every non-public address (see
/// [`UrlRule`]) and resolves names with the [`SystemResolver`].
///
/// ```
/// use mcp_secure::types::url::{FixedResolver, Scheme, UrlPolicy};
///
/// let policy = UrlPolicy::new()
///     .schemes(&[Scheme::Https])
///     .resolver(FixedResolver::new().with("evil.example", ["127.0.0.1".parse().unwrap()]));
///
/// let refused = policy.parse("http://api.example/").unwrap_err();
/// assert_eq!(refused.rule().as_str(), "scheme_not_allowed");
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let url = policy.parse("https://evil.example/").unwrap(); // the text is fine...
/// let refused = policy.resolve(&url).await.unwrap_err();      // ...the address is not
/// assert_eq!(refused.rule().as_str(), "loopback");
/// # });
/// ```
#[derive(Clone)]
pub struct UrlPolicy {
    schemes: Vec<Scheme>,
    ports: Option<Vec<u16>>,
    exempt: HashSet<SocketAddr>,
    resolver: Arc<dyn Resolver>,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy {
            schemes: vec![Scheme::Https, Scheme::Http],
            ports: None,
            exempt: HashSet::new(),
            resolver: Arc::new(SystemResolver),
        }
    }
}

pub(super) static DEFAULT_POLICY: LazyLock<UrlPolicy> = LazyLock::new(UrlPolicy::default);

impl fmt::Debug for UrlPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlPolicy")
            .field("schemes", &self.schemes)
            .field("ports", &self.ports)
            .field("exempt", &self.exempt)
            .finish_non_exhaustive()
    }
}

impl UrlPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schemes allowed (default: `https` and `http`).
    pub fn schemes(mut self, schemes: &[Scheme]) -> Self {
        self.schemes = schemes.to_vec();
        self
    }

    /// The ports allowed, explicit or implied by the scheme (default: any).
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.ports = Some(ports.to_vec());
        self
    }

    /// The resolver for host names (default: [`SystemResolver`]).
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Treats exactly this address *and port* as public, whatever its address rules say: for
    /// a test server on `127.0.0.1:<port>`, or one known internal service. Only the address
    /// rules are lifted; names such as `localhost` are still refused by name, so reach the
    /// address through an IP literal or a name your resolver maps to it. Every other port on
    /// the same address is still refused.
    pub fn allow_socket_addr(mut self, addr: SocketAddr) -> Self {
        self.exempt.insert(canonical(addr));
        self
    }

    /// Checks `text` without resolving it: length, control characters, syntax, scheme, user
    /// name and password, host, port, host names that are local or cloud metadata by name,
    /// and an IP literal host against the address rules. Decimal, hex, octal and short IPv4
    /// spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) are read as the URL
    /// standard reads them (all `127.0.0.1`) and refused as that address.
    pub fn parse(&self, text: &str) -> Result<PublicUrl, UrlRejection> {
        if text.len() > PublicUrl::MAX_LEN {
            return Err(UrlRejection::new(
                UrlRule::TooLong,
                format!(
                    "the URL is {} bytes long; the limit is {}",
                    text.len(),
                    PublicUrl::MAX_LEN
                ),
            ));
        }
        if text.trim().is_empty() {
            return Err(UrlRejection::new(UrlRule::Empty, "the URL is empty"));
        }
        if let Some((at, c)) = text.char_indices().find(|&(_, c)| c.is_control()) {
            return Err(UrlRejection::new(
                UrlRule::ControlChar,
                format!("control character U+{:04X} at byte {at}", u32::from(c)),
            ));
        }
        let url = Url::parse(text).map_err(|e| {
            UrlRejection::new(UrlRule::ParseError, format!("not an absolute URL: {e}"))
        })?;
        // Percent-encoding and IDNA mapping can make the URL several times longer: the bound
        // holds on what is kept (and serialized), so that it parses again.
        if url.as_str().len() > PublicUrl::MAX_LEN {
            return Err(UrlRejection::new(
                UrlRule::TooLong,
                format!(
                    "the URL is {} bytes long once normalized; the limit is {}",
                    url.as_str().len(),
                    PublicUrl::MAX_LEN
                ),
            ));
        }
        self.check_url(&url)?;
        Ok(PublicUrl::from_checked(url))
    }

    /// Everything [`UrlPolicy::parse`] checks after parsing.
    pub(super) fn check_url(&self, url: &Url) -> Result<(), UrlRejection> {
        let scheme = url.scheme();
        if !Scheme::from_name(scheme).is_some_and(|s| self.schemes.contains(&s)) {
            let allowed: Vec<String> = self
                .schemes
                .iter()
                .map(|s| format!("`{}`", s.as_str()))
                .collect();
            return Err(UrlRejection::new(
                UrlRule::SchemeNotAllowed,
                format!(
                    "scheme {} is not allowed; allowed: {}",
                    quote_host(scheme),
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRejection::new(
                UrlRule::Userinfo,
                "URLs with a user name or password are refused",
            ));
        }
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Err(UrlRejection::new(
                UrlRule::MissingHost,
                "the URL has no host",
            ));
        };
        if let Some(ports) = &self.ports
            && !ports.contains(&port)
        {
            return Err(UrlRejection::new(
                UrlRule::PortNotAllowed,
                format!("port {port} is not allowed"),
            ));
        }
        match host {
            Host::Domain(name) => check_name(name),
            Host::Ipv4(ip) => self.check_addr(None, SocketAddr::new(IpAddr::V4(ip), port)),
            Host::Ipv6(ip) => self.check_addr(None, SocketAddr::new(IpAddr::V6(ip), port)),
        }
    }

    /// Checks one address (and port) against the address rules and the exemptions.
    pub fn check_addr(&self, name: Option<&str>, addr: SocketAddr) -> Result<(), UrlRejection> {
        if self.exempt.contains(&canonical(addr)) {
            return Ok(());
        }
        // Classified as given, so an IPv4-mapped address is described as such.
        let ip = addr.ip();
        match classify(ip) {
            None => Ok(()),
            Some(not_public) => {
                let what = not_public.describe(ip);
                let detail = match name {
                    Some(name) => format!("{} resolves to {what}", quote_host(name)),
                    None => format!("the host is {what}"),
                };
                Err(UrlRejection::new(not_public.rule, detail))
            }
        }
    }

    /// Checks `url` again against this policy, resolves its host (an IP literal is its own
    /// address) and checks **every** address: one non-public address refuses the URL, so a
    /// name that resolves to a public and a private address cannot be used to reach either.
    ///
    /// Connect only to the returned addresses, and do not resolve the name again (that is
    /// where DNS rebinding happens): [`Fetcher`](super::Fetcher) does this.
    pub async fn resolve(&self, url: &PublicUrl) -> Result<CheckedUrl, UrlRejection> {
        let parsed = url.as_url();
        self.check_url(parsed)?;
        let port = parsed.port_or_known_default().unwrap_or(0);
        let addrs = match parsed.host() {
            Some(Host::Ipv4(ip)) => vec![canonical(SocketAddr::new(IpAddr::V4(ip), port))],
            Some(Host::Ipv6(ip)) => vec![canonical(SocketAddr::new(IpAddr::V6(ip), port))],
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                let ips = self.resolver.resolve(name).await.map_err(|e| {
                    UrlRejection::new(
                        UrlRule::Unresolvable,
                        format!("{} could not be resolved: {}", quote_host(name), e.kind()),
                    )
                })?;
                if ips.is_empty() {
                    return Err(UrlRejection::new(
                        UrlRule::Unresolvable,
                        format!("{} has no address", quote_host(name)),
                    ));
                }
                let mut addrs = Vec::with_capacity(ips.len());
                for ip in ips {
                    let addr = SocketAddr::new(ip, port);
                    self.check_addr(Some(name), addr)?;
                    let addr = canonical(addr);
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                addrs
            }
            None => {
                return Err(UrlRejection::new(
                    UrlRule::MissingHost,
                    "the URL has no host",
                ));
            }
        };
        Ok(CheckedUrl {
            url: url.clone(),
            addrs,
        })
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn check_name(name: &str) -> Result<(), UrlRejection> {
    // `url` lowercases and IDNA-maps names (`ⓛocalhost` is `localhost`); a trailing dot
    // (`localhost.`) names the same host.
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return Err(UrlRejection::new(
            UrlRule::MissingHost,
            "the URL has no host",
        ));
    }
    if METADATA_NAMES.contains(&name) {
        return Err(UrlRejection::new(
            UrlRule::MetadataEndpoint,
            format!("{} is a cloud metadata service", quote_host(name)),
        ));
    }
    if let Some(suffix) = LOCAL_SUFFIXES.iter().find(|s| {
        name == **s
            || name
                .strip_suffix(**s)
                .is_some_and(|rest| rest.ends_with('.'))
    }) {
        return Err(UrlRejection::new(
            UrlRule::LocalName,
            format!("{} is a local name (`{suffix}`)", quote_host(name)),
        ));
    }
    if !name.contains('.') {
        return Err(UrlRejection::new(
            UrlRule::SingleLabelHost,
            format!(
                "{} has no dot; single-label names resolve to internal hosts",
                quote_host(name)
            ),
        ));
    }
    Ok(())
}

/// A [`PublicUrl`] whose host resolved to these addresses, all of them public (or exempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedUrl {
    url: PublicUrl,
    addrs: Vec<SocketAddr>,
}

impl CheckedUrl {
    /// The URL.
    pub fn url(&self) -> &PublicUrl {
        &self.url
    }

    /// The addresses to connect to (with the port), at least one, deduplicated, in the
    /// resolver's order. IPv4-mapped IPv6 addresses are given as IPv4.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

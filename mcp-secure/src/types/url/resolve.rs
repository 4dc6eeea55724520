//! Name resolution, injectable.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;

use futures::future::BoxFuture;

/// Resolves host names to addresses for [`UrlPolicy::resolve`](super::UrlPolicy::resolve).
///
/// The policy checks every address a resolver returns; a resolver decides only *which*
/// addresses a name has. [`SystemResolver`] (the default) asks the operating system;
/// [`FixedResolver`] answers from a map and never touches the network (for tests, or to pin
/// the hosts a tool may reach).
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host`, a lowercase domain name without a trailing dot (never an IP
    /// literal: those are not resolved).
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, on a blocking thread).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
        // What `tokio::net::lookup_host` does, without tokio's network driver.
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::task::spawn_blocking(move || {
                std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 0u16))
            })
            .await
            .map_err(|e| io::Error::other(format!("name resolution did not finish: {e}")))??;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A resolver that answers from a fixed map; any other name fails with
/// [`io::ErrorKind::NotFound`]. It never touches the network.
///
/// ```
/// use mcp_secure::types::url::FixedResolver;
///
/// let resolver = FixedResolver::new()
///     .with("api.example", ["93.184.216.34".parse().unwrap()])
///     .with("rebind.example", ["93.184.216.34".parse().unwrap(), "10.0.0.1".parse().unwrap()]);
/// ```
#[derive(Clone, Default)]
pub struct FixedResolver {
    map: HashMap<String, Vec<IpAddr>>,
}

impl FixedResolver {
    /// An empty map: every name fails.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the addresses of `host` (compared case-insensitively, without a
    /// trailing dot).
    pub fn with(mut self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.map
            .insert(normalize(host), addrs.into_iter().collect());
        self
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl fmt::Debug for FixedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.map.keys().collect();
        names.sort();
        f.debug_struct("FixedResolver")
            .field("names", &names)
            .finish()
    }
}

impl Resolver for FixedResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
        let found = self.map.get(&normalize(host)).cloned();
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown host"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `localhost` resolves from the hosts file, with no network: to loopback addresses only.
    #[tokio::test]
    async fn the_system_resolver_asks_the_operating_system() {
        let addrs = SystemResolver
            .resolve("localhost")
            .await
            .expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(IpAddr::is_loopback), "{addrs:?}");
    }
}

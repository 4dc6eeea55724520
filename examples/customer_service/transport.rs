//! How `serve` talks to clients: stdio (default) or streamable HTTP (`--http ADDR`), with API
//! keys reloaded from `keys.toml` while running (on change, polled every 250 ms, and on SIGHUP)
//! and, with `--jwt-issuer` and `--jwks-url`, OAuth access tokens (JWTs) beside API keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_secure::SecureServer;
use mcp_secure::auth::jwt::HttpJwks;
use mcp_secure::auth::{ApiKeyStore, BearerAuthenticator, JwtAuthenticator, JwtConfig};
use mcp_secure::server::HttpConfig;

/// The HTTP options of `serve`.
#[derive(clap::Args, Debug)]
pub struct HttpArgs {
    /// Serve streamable HTTP at `http://ADDR/mcp` instead of stdio, e.g. `127.0.0.1:8080`
    /// (port 0 picks a free one; the URL is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A `Host` the HTTP server accepts (repeat); required when ADDR is not loopback.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// This server's canonical resource URI: the `aud` JWTs must carry (default `http://ADDR/mcp`).
    #[arg(long, value_name = "URI")]
    pub resource: Option<String>,
    /// Accept JWT access tokens issued by this issuer (`iss`); needs `--jwks-url`.
    #[arg(long, value_name = "URL", requires = "jwks_url")]
    pub jwt_issuer: Option<String>,
    /// The issuer's JWKS document (`http://` only; see the README for https).
    #[arg(long, value_name = "URL", requires = "jwt_issuer")]
    pub jwks_url: Option<String>,
    /// The largest HTTP request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body: usize,
}

impl HttpArgs {
    fn resource(&self) -> Option<String> {
        self.resource.clone().or_else(|| {
            self.http
                .filter(|a| a.port() != 0)
                .map(|a| format!("http://{a}/mcp"))
        })
    }
}

/// API keys, plus JWTs when an issuer is configured.
pub fn authenticator(keys: ApiKeyStore, args: &HttpArgs) -> Result<BearerAuthenticator, String> {
    let auth = BearerAuthenticator::new().api_keys(keys);
    let (Some(issuer), Some(jwks)) = (&args.jwt_issuer, &args.jwks_url) else {
        return Ok(auth);
    };
    let audience = args.resource().ok_or(
        "JWTs need this server's resource URI: give `--resource` (or a fixed `--http` port)",
    )?;
    let source = HttpJwks::new(jwks)?;
    Ok(auth.jwt(JwtAuthenticator::new(JwtConfig::new(
        issuer.clone(),
        audience,
        source,
    ))))
}

/// Serves until the client disconnects (stdio) or Ctrl-C (HTTP).
pub fn run<S: Send + Sync + 'static>(
    server: SecureServer<S>,
    keys: ApiKeyStore,
    keys_path: &Path,
    args: &HttpArgs,
) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let _watcher = keys.watch_file(keys_path, Duration::from_millis(250));
        reload_on_sighup(keys, keys_path.to_owned());
        let Some(addr) = args.http else {
            return server.serve_stdio().await.map_err(|e| e.to_string());
        };
        let mut config = HttpConfig::new(addr).max_body_bytes(args.max_body);
        if !args.allowed_hosts.is_empty() {
            config = config.allowed_hosts(args.allowed_hosts.clone());
        }
        if let Some(r) = args.resource() {
            config = config.resource(r);
        }
        if let Some(issuer) = &args.jwt_issuer {
            config = config.authorization_servers([issuer.clone()]);
        }
        let http = server
            .serve_http(config)
            .await
            .map_err(|e| format!("--http {addr}: {e}"))?;
        // A line for people and scripts (tests read it to find the port).
        eprintln!("listening on {}", http.url());
        let _ = tokio::signal::ctrl_c().await;
        http.shutdown();
        http.wait().await.map_err(|e| e.to_string())
    })
}

#[cfg(unix)]
fn reload_on_sighup(keys: ApiKeyStore, path: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match keys.reload(&path) {
                Ok(()) => tracing::info!("SIGHUP: key file reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: key file not reloaded; the old keys stay")
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_keys: ApiKeyStore, _path: PathBuf) {}

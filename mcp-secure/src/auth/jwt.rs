//! OAuth 2.1 resource server: checks JWT access tokens as the MCP authorization spec asks.
//!
//! A token is accepted only when
//! - its header names an asymmetric algorithm this server allows (`none` and every `HS*` are
//!   refused before any key is looked at),
//! - its `kid` names a key of the issuer's JWKS (fetched, cached, and refetched on an unknown
//!   `kid` at most once per [`JwtConfig::min_refetch_interval`]), and the algorithm fits that
//!   key's type (an RSA key never verifies an `ES256` or `HS256` token: no algorithm confusion),
//! - the signature verifies, `iss` is the configured issuer, `aud` contains this server's
//!   canonical resource URI, `exp` is in the future and `nbf` (if any) in the past,
//! - and its roles or scopes map to at least one role ([`RolesClaim`]).
//!
//! The principal is `sub` with the mapped roles; its key id is the token's `jti` (else `kid`).
//! The token itself is never stored, logged or passed on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{AuthError, Authenticator, Credential, Principal};
use crate::clock::Clock;

/// Why an access token was refused. The text is safe to show the caller (it never holds the
/// token) and goes into `WWW-Authenticate: ... error_description`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts, bad JSON, wrong `typ`, or over the size cap.
    #[error("the access token is malformed")]
    Malformed,
    /// `alg` is `none`, symmetric (`HS*`), or not allowed here.
    #[error("the access token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// `alg` does not fit the type of the key `kid` names (algorithm confusion).
    #[error("the access token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// `kid` names no key of the issuer, even after a refetch.
    #[error("the access token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the access token's signature is not valid")]
    BadSignature,
    /// `exp` has passed.
    #[error("the access token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the access token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain this server's resource URI.
    #[error("the access token is meant for another resource")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is missing or has the wrong type.
    #[error("the access token lacks a required claim")]
    MissingClaim,
    /// The issuer's keys could not be fetched.
    #[error("the issuer's keys are unavailable; try again later")]
    KeysUnavailable,
}

/// Where the issuer's keys come from. Implement it to fetch a JWKS over https with the HTTP
/// client of your choice (this crate ships [`HttpJwks`] for plain `http://`, and [`StaticJwks`]).
pub trait JwksSource: Send + Sync + 'static {
    /// Fetches the current key set: the JSON text of a JWKS document (RFC 7517 §5).
    fn fetch(&self) -> BoxFuture<'_, Result<String, String>>;
}

/// A fixed key set (tests, or keys distributed with the configuration).
#[derive(Clone, Debug)]
pub struct StaticJwks(pub String);

impl JwksSource for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// Fetches a JWKS document with an HTTP/1.1 `GET` over plain TCP.
///
/// Only `http://` URLs: fine for an issuer on loopback or inside a trusted network. For an
/// `https://` issuer implement [`JwksSource`] with a TLS-capable client (e.g. `reqwest` with
/// `rustls`); [`HttpJwks::new`] refuses `https://` rather than fetch keys insecurely.
#[derive(Clone, Debug)]
pub struct HttpJwks {
    uri: http::Uri,
    timeout: Duration,
    max_bytes: usize,
}

impl HttpJwks {
    /// A source for an `http://host[:port]/path` URL.
    pub fn new(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("JWKS URL `{url}`: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "JWKS URL `{url}` is https: implement `JwksSource` with a TLS client; the built-in fetcher speaks plain http only"
                ));
            }
            _ => return Err(format!("JWKS URL `{url}` must start with `http://`")),
        }
        if uri.host().is_none() {
            return Err(format!("JWKS URL `{url}` has no host"));
        }
        Ok(HttpJwks {
            uri,
            timeout: Duration::from_secs(5),
            max_bytes: 1024 * 1024,
        })
    }

    async fn get(&self) -> Result<String, String> {
        use http_body_util::BodyExt;
        let host = self
            .uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = self.uri.port_u16().unwrap_or(80);
        let authority = self
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = self
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        let conn = tokio::spawn(conn);
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != http::StatusCode::OK {
            conn.abort();
            return Err(format!("JWKS answered {}", response.status()));
        }
        let body = http_body_util::Limited::new(response.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        conn.abort();
        String::from_utf8(body.to_vec()).map_err(|_| "JWKS is not UTF-8".to_owned())
    }
}

impl JwksSource for HttpJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.get())
                .await
                .unwrap_or_else(|_| Err("JWKS fetch timed out".into()))
        })
    }
}

/// How token claims become roles.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RolesClaim {
    /// A claim holding an array of role names (or one string), used as is, e.g. `roles`.
    Roles(String),
    /// A claim holding space-separated OAuth scopes (e.g. `scope`), each mapped to roles through
    /// the table; unknown scopes grant nothing.
    Scopes {
        /// The claim name.
        claim: String,
        /// scope -> roles.
        map: HashMap<String, Vec<String>>,
    },
}

impl Default for RolesClaim {
    fn default() -> Self {
        RolesClaim::Roles("roles".into())
    }
}

/// What a [`JwtAuthenticator`] checks.
#[derive(Clone)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The expected `iss`, exactly.
    pub issuer: String,
    /// This server's canonical resource URI (e.g. `https://mcp.example.com/mcp`): `aud` must
    /// contain it.
    pub audience: String,
    /// Where the issuer's keys come from.
    pub jwks: Arc<dyn JwksSource>,
    /// How claims map to roles.
    pub roles: RolesClaim,
    /// The algorithms accepted (asymmetric only; `HS*` are refused whatever this says).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`/`nbf` (default 30 s).
    pub leeway: Duration,
    /// How long a fetched key set is used before it is fetched again (default 10 min).
    pub cache_ttl: Duration,
    /// The least time between two fetches (default 30 s), whether an unknown `kid`, a stale set
    /// or an issuer that did not answer prompts them, so a flood of made-up `kid`s, or of any
    /// tokens while the issuer is down, cannot turn the server into a JWKS hammer.
    pub min_refetch_interval: Duration,
    /// Tokens longer than this are refused unread (default 8 KiB).
    pub max_token_bytes: usize,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("roles", &self.roles)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtConfig {
    /// A configuration with the defaults above.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: impl JwksSource,
    ) -> Self {
        JwtConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks: Arc::new(jwks),
            roles: RolesClaim::default(),
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
            ],
            leeway: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(600),
            min_refetch_interval: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
        }
    }

    /// Sets how claims map to roles.
    pub fn roles(mut self, roles: RolesClaim) -> Self {
        self.roles = roles;
        self
    }

    /// Sets the clock skew allowed.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets the least time between refetches on unknown `kid`s.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Sets how long a key set is cached.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }
}

struct CachedKey {
    key: DecodingKey,
    family: KeyFamily,
    alg: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyFamily {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyFamily::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyFamily::EcP256 => alg == ES256,
            KeyFamily::EcP384 => alg == ES384,
            KeyFamily::Ed25519 => alg == EdDSA,
        }
    }
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<CachedKey>>,
    fetched_at: Option<Duration>,
    last_attempt: Option<Duration>,
}

/// The [`Authenticator`] for JWT access tokens. Cheap to clone; clones share the key cache.
#[derive(Clone)]
pub struct JwtAuthenticator {
    config: Arc<JwtConfig>,
    cache: Arc<RwLock<Cache>>,
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
    clock: Clock,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<String>,
    typ: Option<String>,
}

impl JwtAuthenticator {
    /// An authenticator; keys are fetched on first use.
    pub fn new(config: JwtConfig) -> Self {
        JwtAuthenticator {
            config: Arc::new(config),
            cache: Arc::default(),
            fetch_lock: Arc::default(),
            clock: Clock::system(),
        }
    }

    /// Uses a clock for the cache's timing (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Checks a token.
    pub async fn check(&self, token: &str) -> Result<Principal, TokenError> {
        if token.len() > self.config.max_token_bytes {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: RawHeader = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        // The algorithm first: `none`, `HS*` and anything not allowed never reach a key.
        let alg = match header.alg {
            Some(Value::String(a)) => a,
            _ => return Err(TokenError::UnsupportedAlgorithm),
        };
        let alg: Algorithm = alg.parse().map_err(|_| TokenError::UnsupportedAlgorithm)?;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
            || !self.config.algorithms.contains(&alg)
        {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        if let Some(typ) = &header.typ
            && !typ.eq_ignore_ascii_case("jwt")
            && !typ.eq_ignore_ascii_case("at+jwt")
            && !typ.eq_ignore_ascii_case("application/at+jwt")
        {
            return Err(TokenError::Malformed);
        }
        let key = self.key(header.kid.as_deref()).await?;
        if !key.family.fits(alg)
            || key
                .alg
                .as_deref()
                .is_some_and(|a| a != alg_name(alg).as_str())
        {
            return Err(TokenError::AlgorithmMismatch);
        }

        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &validation)
                .map_err(|e| map_error(e.kind()))?;
        let claims = data.claims;
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::MissingClaim),
        };
        let roles = self.roles(&claims);
        let mut principal = Principal::new(sub, roles);
        let key_id = match claims.get("jti") {
            Some(Value::String(j)) if !j.is_empty() => Some(j.clone()),
            _ => header.kid.clone(),
        };
        if let Some(id) = key_id {
            principal = principal.with_key_id(id);
        }
        Ok(principal)
    }

    fn roles(&self, claims: &serde_json::Map<String, Value>) -> Vec<String> {
        let mut roles: Vec<String> = match &self.config.roles {
            RolesClaim::Roles(claim) => match claims.get(claim) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                _ => Vec::new(),
            },
            RolesClaim::Scopes { claim, map } => {
                let scopes: Vec<&str> = match claims.get(claim) {
                    Some(Value::String(s)) => s.split_whitespace().collect(),
                    Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                scopes
                    .iter()
                    .filter_map(|s| map.get(*s))
                    .flatten()
                    .cloned()
                    .collect()
            }
        };
        roles.sort();
        roles.dedup();
        roles
    }

    async fn key(&self, kid: Option<&str>) -> Result<Arc<CachedKey>, TokenError> {
        let now = self.clock.elapsed();
        let (found, stale) = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            let stale = cache
                .fetched_at
                .is_none_or(|t| now.saturating_sub(t) >= self.config.cache_ttl);
            (lookup(&cache, kid), stale)
        };
        if let Some(k) = found
            && !stale
        {
            return Ok(k);
        }
        // Unknown kid or stale set: refetch, at a bounded rate.
        let _guard = self.fetch_lock.lock().await;
        let may_fetch = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = lookup(&cache, kid)
                && cache
                    .fetched_at
                    .is_some_and(|t| now.saturating_sub(t) < self.config.cache_ttl)
            {
                return Ok(k);
            }
            // At most one fetch per `min_refetch_interval`, whatever prompts it (an unknown
            // `kid`, a stale set, no set yet): while the issuer is down, a stale or missing
            // set must not turn every token into a fetch, each caller queued behind the last.
            cache
                .last_attempt
                .is_none_or(|t| now.saturating_sub(t) >= self.config.min_refetch_interval)
        };
        if may_fetch {
            self.cache
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .last_attempt = Some(now);
            match self.config.jwks.fetch().await {
                Ok(text) => {
                    let keys = parse_jwks(&text);
                    tracing::debug!(keys = keys.len(), "fetched the issuer's JWKS");
                    let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                    cache.keys = keys;
                    cache.fetched_at = Some(now);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not fetch the issuer's JWKS");
                    let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
                    // Keep using the old keys if there are any.
                    return lookup(&cache, kid).ok_or(if cache.keys.is_empty() {
                        TokenError::KeysUnavailable
                    } else {
                        TokenError::UnknownKey
                    });
                }
            }
        }
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        lookup(&cache, kid).ok_or(if cache.fetched_at.is_none() {
            TokenError::KeysUnavailable
        } else {
            TokenError::UnknownKey
        })
    }
}

fn lookup(cache: &Cache, kid: Option<&str>) -> Option<Arc<CachedKey>> {
    match kid {
        Some(kid) => cache.keys.get(kid).cloned(),
        // Without a `kid` only a set of exactly one key is unambiguous.
        None if cache.keys.len() == 1 => cache.keys.values().next().cloned(),
        None => None,
    }
}

/// Parses a JWKS, keeping only asymmetric signing keys with a `kid`. Symmetric (`oct`) keys are
/// dropped: a JWKS never legitimately carries one, and accepting it is algorithm confusion.
fn parse_jwks(text: &str) -> HashMap<String, Arc<CachedKey>> {
    let mut out = HashMap::new();
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(text) else {
        return out;
    };
    let Some(Value::Array(keys)) = doc.get("keys") else {
        return out;
    };
    for raw in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        if raw
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyFamily::EcP256,
                EllipticCurve::P384 => KeyFamily::EcP384,
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyFamily::Ed25519
            }
            _ => continue,
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let alg = raw.get("alg").and_then(Value::as_str).map(str::to_owned);
        out.insert(kid, Arc::new(CachedKey { key, family, alg }));
    }
    out
}

fn alg_name(alg: Algorithm) -> String {
    // `Debug` is the JOSE name (`RS256`, `EdDSA`, ...).
    format!("{alg:?}")
}

fn map_error(kind: &jsonwebtoken::errors::ErrorKind) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidIssuer => TokenError::WrongIssuer,
        K::InvalidAudience => TokenError::WrongAudience,
        K::InvalidSignature => TokenError::BadSignature,
        K::MissingRequiredClaim(_) => TokenError::MissingClaim,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            TokenError::AlgorithmMismatch
        }
        _ => TokenError::Malformed,
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>> {
        Box::pin(async move {
            let principal = self
                .check(credential.expose())
                .await
                .map_err(AuthError::Token)?;
            if principal.roles.is_empty() {
                return Err(AuthError::InsufficientScope);
            }
            Ok(Arc::new(principal))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_jwks_urls_need_a_source_of_ones_own() {
        assert!(
            HttpJwks::new("https://issuer.example/jwks")
                .unwrap_err()
                .contains("implement `JwksSource`")
        );
        assert!(HttpJwks::new("ftp://x/y").is_err());
        assert!(HttpJwks::new("http://127.0.0.1:9/jwks").is_ok());
    }

    #[test]
    fn symmetric_and_keyless_entries_are_dropped_from_a_jwks() {
        let text = r#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let keys = parse_jwks(text);
        assert_eq!(keys.keys().collect::<Vec<_>>(), [&"ed".to_string()]);
        assert_eq!(keys["ed"].family, KeyFamily::Ed25519);
        assert!(parse_jwks("not json").is_empty());
    }

    #[test]
    fn roles_come_from_a_roles_claim_or_from_mapped_scopes() {
        let jwks = || StaticJwks(r#"{"keys":[]}"#.into());
        let claims = |v: Value| v.as_object().unwrap().clone();
        let by_roles = JwtAuthenticator::new(JwtConfig::new("i", "a", jwks()));
        assert_eq!(
            by_roles.roles(&claims(serde_json::json!({"roles": ["b", "a", "a", 3]}))),
            ["a", "b"]
        );
        assert!(
            by_roles
                .roles(&claims(serde_json::json!({"scope": "a"})))
                .is_empty()
        );
        let map = HashMap::from([
            ("mcp.read".to_owned(), vec!["read-only".to_owned()]),
            (
                "mcp.write".to_owned(),
                vec!["editor".to_owned(), "read-only".to_owned()],
            ),
        ]);
        let by_scope =
            JwtAuthenticator::new(JwtConfig::new("i", "a", jwks()).roles(RolesClaim::Scopes {
                claim: "scope".into(),
                map,
            }));
        let roles = by_scope.roles(&claims(
            serde_json::json!({"scope": "openid mcp.write mcp.read other"}),
        ));
        assert_eq!(roles, ["editor", "read-only"]);
        assert!(
            by_scope
                .roles(&claims(serde_json::json!({"scope": "openid"})))
                .is_empty()
        );
    }

    /// A JWKS source that counts its fetches and answers only while `up`.
    struct Flaky {
        fetches: Arc<std::sync::atomic::AtomicUsize>,
        up: Arc<std::sync::atomic::AtomicBool>,
    }

    impl JwksSource for Flaky {
        fn fetch(&self) -> BoxFuture<'_, Result<String, String>> {
            use std::sync::atomic::Ordering::SeqCst;
            self.fetches.fetch_add(1, SeqCst);
            Box::pin(std::future::ready(if self.up.load(SeqCst) {
                Ok(r#"{"keys":[]}"#.to_owned())
            } else {
                Err("the issuer is down".to_owned())
            }))
        }
    }

    /// While the issuer's JWKS cannot be fetched (never fetched yet, or the cached set is
    /// stale), a flood of tokens costs at most one fetch per `min_refetch_interval`, as it
    /// does for unknown `kid`s: the server does not hammer an issuer that is down, and its
    /// callers do not queue behind one fetch each.
    #[tokio::test]
    async fn an_unavailable_issuer_is_fetched_at_most_once_per_interval() {
        use std::sync::atomic::Ordering::SeqCst;
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clock = Clock::manual();
        let jwt = JwtAuthenticator::new(JwtConfig::new(
            "iss",
            "aud",
            Flaky {
                fetches: Arc::clone(&fetches),
                up: Arc::clone(&up),
            },
        ))
        .with_clock(clock.clone());
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let token = |kid: &str| {
            format!(
                "{}.{}.c2ln",
                enc(&format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#)),
                enc(r#"{"sub":"x"}"#)
            )
        };

        // Never fetched, and the issuer is down.
        for i in 0..20 {
            assert_eq!(
                jwt.check(&token(&format!("k{i}"))).await,
                Err(TokenError::KeysUnavailable)
            );
        }
        assert_eq!(fetches.load(SeqCst), 1, "one fetch for 20 tokens");
        clock.advance(Duration::from_secs(31));
        assert!(jwt.check(&token("k")).await.is_err());
        assert_eq!(fetches.load(SeqCst), 2, "one more after the interval");

        // Fetched once, then the set goes stale while the issuer is down.
        up.store(true, SeqCst);
        clock.advance(Duration::from_secs(31));
        assert_eq!(jwt.check(&token("k")).await, Err(TokenError::UnknownKey));
        assert_eq!(fetches.load(SeqCst), 3);
        up.store(false, SeqCst);
        clock.advance(Duration::from_secs(601));
        for i in 0..20 {
            assert!(jwt.check(&token(&format!("s{i}"))).await.is_err());
        }
        assert_eq!(
            fetches.load(SeqCst),
            4,
            "one fetch for 20 tokens on a stale set"
        );
    }

    #[tokio::test]
    async fn header_checks_come_before_any_key_lookup() {
        let jwt = JwtAuthenticator::new(JwtConfig::new(
            "iss",
            "aud",
            StaticJwks(r#"{"keys":[]}"#.into()),
        ));
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let none = format!("{}.{}.", enc(r#"{"alg":"none"}"#), enc(r#"{"sub":"x"}"#));
        assert_eq!(
            jwt.check(&none).await,
            Err(TokenError::UnsupportedAlgorithm)
        );
        let hs = format!(
            "{}.{}.c2ln",
            enc(r#"{"alg":"HS256"}"#),
            enc(r#"{"sub":"x"}"#)
        );
        assert_eq!(jwt.check(&hs).await, Err(TokenError::UnsupportedAlgorithm));
        assert_eq!(jwt.check("a.b").await, Err(TokenError::Malformed));
        let rs = format!(
            "{}.{}.c2ln",
            enc(r#"{"alg":"RS256","kid":"k"}"#),
            enc(r#"{"sub":"x"}"#)
        );
        assert_eq!(jwt.check(&rs).await, Err(TokenError::UnknownKey));
    }
}

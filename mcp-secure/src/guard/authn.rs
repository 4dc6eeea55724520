//! Guard 2: find the caller's credential and resolve it to a principal.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{Extensions, RequestMetaObject};

use crate::auth::{AuthError, Authenticator, Credential, CredentialSource, Principal};
use crate::error::{ErrorCode, ToolError};

/// The `_meta` key a client may use to send its token with each request.
pub const META_AUTH_TOKEN: &str = "authToken";

/// Picks the credential for a request: a per-request `_meta.authToken` wins over the
/// transport's (HTTP bearer header or the stdio session token), which is only asked for when
/// there is none. The token is taken out of `_meta`, not copied: the request keeps no copy of
/// the caller's secret for whatever is handed the request later (the tool body included).
pub fn credential<'s>(
    meta: &mut RequestMetaObject,
    transport: impl FnOnce() -> Option<Cow<'s, Credential>>,
) -> Option<Cow<'s, Credential>> {
    match meta.remove(META_AUTH_TOKEN) {
        Some(serde_json::Value::String(t)) => Some(Cow::Owned(Credential::new(
            t,
            CredentialSource::RequestMeta,
        ))),
        // A present but non-string token is not silently replaced by the transport's.
        Some(_) => Some(Cow::Owned(Credential::new(
            String::new(),
            CredentialSource::RequestMeta,
        ))),
        None => transport(),
    }
}

/// The transport's credential for a request. Over HTTP: the principal the HTTP layer already
/// resolved from `Authorization: Bearer` (see `server::http`), else that header itself (when
/// rmcp's HTTP service is mounted without our layer), else none: a request over HTTP never
/// borrows the session credential, which is the stdio process's own. Otherwise the session
/// credential (stdio), borrowed: every call of a session presents the same one, and a clone
/// would write its shared count from every thread. Without the `http` feature, no request is
/// known to come over HTTP.
pub fn transport_credential<'s>(
    extensions: &Extensions,
    session: Option<&'s Credential>,
) -> Option<Cow<'s, Credential>> {
    match http_credential(extensions) {
        Some(over_http) => over_http.map(Cow::Owned),
        None => session.map(Cow::Borrowed),
    }
}

/// `Some` for a request that came over HTTP, holding its credential if it has one.
#[cfg(feature = "http")]
fn http_credential(extensions: &Extensions) -> Option<Option<Credential>> {
    let parts = extensions.get::<http::request::Parts>()?;
    if let Some(principal) = crate::server::http::authenticated(&parts.extensions) {
        return Some(Some(Credential::resolved(
            principal,
            CredentialSource::HttpBearer,
        )));
    }
    Some(bearer_token(&parts.headers).map(|t| Credential::new(t, CredentialSource::HttpBearer)))
}

/// Without the `http` feature, no request is known to come over HTTP.
#[cfg(not(feature = "http"))]
fn http_credential(_: &Extensions) -> Option<Option<Credential>> {
    None
}

/// The token of a single well-formed `Authorization: Bearer <token>` header.
#[cfg(feature = "http")]
pub fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then(|| token.to_owned())
}

/// Resolves the credential, or refuses with `unauthorized`. The principal is borrowed from the
/// credential when it holds one: the one the transport resolved, or the one a session's
/// credential keeps ([`Authenticator::authenticate_kept`]).
pub async fn authenticate<'c>(
    authenticator: &dyn Authenticator,
    credential: Option<&'c Credential>,
) -> Result<Cow<'c, Arc<Principal>>, ToolError> {
    let credential = credential.ok_or_else(|| refusal(&AuthError::Missing))?;
    if let Some(principal) = credential.resolved_principal() {
        return Ok(Cow::Borrowed(principal));
    }
    let answer = match authenticator.authenticate_kept(credential) {
        Some(answer) => answer,
        None => authenticator.authenticate(credential).await.map(Cow::Owned),
    };
    answer.map_err(|e| refusal(&e))
}

/// Asks `authenticator` about `credential`: its ready answer when it has one
/// ([`Authenticator::authenticate_now`]), else the one it awaits.
pub async fn check(
    authenticator: &dyn Authenticator,
    credential: &Credential,
) -> Result<Arc<Principal>, AuthError> {
    match authenticator.authenticate_now(credential) {
        Some(answer) => answer,
        None => authenticator.authenticate(credential).await,
    }
}

fn refusal(e: &AuthError) -> ToolError {
    ToolError::new(ErrorCode::Unauthorized, e.to_string())
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;

    fn over_http(authorization: Option<&str>) -> Extensions {
        let mut request = http::Request::builder().uri("/mcp");
        if let Some(value) = authorization {
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let mut extensions = Extensions::new();
        extensions.insert(parts);
        extensions
    }

    #[test]
    fn the_session_credential_is_for_stdio_only() {
        let session = Credential::new("session-token", CredentialSource::Session);
        // stdio (no HTTP request behind it): the session's.
        let stdio = transport_credential(&Extensions::new(), Some(&session)).unwrap();
        assert_eq!(
            (stdio.expose(), stdio.source()),
            ("session-token", CredentialSource::Session)
        );
        // Borrowed, not cloned: every call of the session presents this one credential.
        assert!(matches!(stdio, Cow::Borrowed(c) if std::ptr::eq(c, &session)));
        // Over HTTP: the request's bearer token, never the session's.
        let bearer = transport_credential(&over_http(Some("Bearer abc")), Some(&session)).unwrap();
        assert_eq!(
            (bearer.expose(), bearer.source()),
            ("abc", CredentialSource::HttpBearer)
        );
        for anonymous in [None, Some("Basic abc"), Some("Bearer ")] {
            assert!(
                transport_credential(&over_http(anonymous), Some(&session)).is_none(),
                "{anonymous:?}"
            );
        }
        assert!(transport_credential(&Extensions::new(), None).is_none());
    }
}

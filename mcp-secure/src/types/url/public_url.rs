//! The validated type.

use std::borrow::Cow;
use std::fmt;

use ::url::Url;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

use super::policy::DEFAULT_POLICY;
use super::rejection::UrlRejection;

/// An absolute `http`/`https` URL whose text passed the [default policy](super::UrlPolicy)
/// (or the policy that parsed it): no credentials, a host that is not local or a cloud
/// metadata service by name, and, if the host is an IP literal, a public address.
///
/// Its host *name* has not been resolved yet: before connecting, resolve it with
/// [`UrlPolicy::resolve`](super::UrlPolicy::resolve), which checks every address, or fetch it
/// with a [`Fetcher`](super::Fetcher), which also re-checks every redirect.
///
/// As a `#[tool]` parameter it needs no `#[validate(length(max = ..))]` rule: it is
/// [`Bounded`](crate::Bounded) (at most [`PublicUrl::MAX_LEN`] bytes), and a refusal is an
/// `invalid_input` error naming its [`UrlRule`](super::UrlRule).
///
/// ```
/// use mcp_secure::types::url::PublicUrl;
///
/// let url = PublicUrl::parse("HTTPS://Example.COM/a/../b?q=1").unwrap();
/// assert_eq!(url.as_str(), "https://example.com/b?q=1");
///
/// for (attack, rule) in [
///     ("http://2130706433/", "loopback"),        // 127.0.0.1 in decimal
///     ("http://0x7f.1/", "loopback"),
///     ("http://[::ffff:169.254.169.254]/", "metadata_endpoint"),
///     ("http://user:pass@example.com/", "userinfo"),
///     ("file:///etc/passwd", "scheme_not_allowed"),
/// ] {
///     assert_eq!(PublicUrl::parse(attack).unwrap_err().rule().as_str(), rule);
/// }
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicUrl(Url);

impl PublicUrl {
    /// The longest URL accepted, in bytes, both as given and once normalized.
    pub const MAX_LEN: usize = 2048;

    /// Checks `text` with the default [`UrlPolicy`](super::UrlPolicy) (see
    /// [`UrlPolicy::parse`](super::UrlPolicy::parse)); nothing is resolved.
    pub fn parse(text: &str) -> Result<Self, UrlRejection> {
        DEFAULT_POLICY.parse(text)
    }

    pub(super) fn from_checked(url: Url) -> Self {
        PublicUrl(url)
    }

    /// The URL, normalized by the URL standard (lowercase scheme and host, IPv4 in dotted
    /// decimal, `..` segments resolved, percent-encoding applied).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The scheme (`"https"`).
    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    /// The host as written in the URL (IPv6 literals in brackets).
    pub fn host_str(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The port, explicit or implied by the scheme.
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or_default()
    }
}

impl fmt::Debug for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicUrl").field(&self.0.as_str()).finish()
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl AsRef<str> for PublicUrl {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = UrlRejection;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for PublicUrl {
    type Error = UrlRejection;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for PublicUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        PublicUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for PublicUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl JsonSchema for PublicUrl {
    fn schema_name() -> Cow<'static, str> {
        "PublicUrl".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "uri",
            "minLength": 1,
            "maxLength": PublicUrl::MAX_LEN,
            "description": format!(
                "An absolute http:// or https:// URL of a public host, at most {} bytes. No \
                 user name or password; no localhost, private, link-local or cloud metadata \
                 addresses.",
                PublicUrl::MAX_LEN
            ),
        })
    }
}

impl crate::tool::Bounded for PublicUrl {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_schema() {
        let u: PublicUrl = serde_json::from_str(r#""https://example.com/x?y=1""#).unwrap();
        assert_eq!(
            format!("{u:?} {u}"),
            r#"PublicUrl("https://example.com/x?y=1") https://example.com/x?y=1"#
        );
        assert_eq!(
            (u.scheme(), u.host_str(), u.port()),
            ("https", "example.com", 443)
        );
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#""https://example.com/x?y=1""#
        );
        let err = serde_json::from_str::<PublicUrl>(r#""http://admin:hunter2@example.com/""#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("URL refused by rule `userinfo`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let schema = schemars::schema_for!(PublicUrl);
        assert_eq!(schema.as_value()["maxLength"], PublicUrl::MAX_LEN);
        assert_eq!(schema.as_value()["format"], "uri");
    }

    #[test]
    fn is_bounded() {
        fn bounded<T: crate::tool::Bounded>() {}
        bounded::<PublicUrl>();
    }
}

//! Why a URL was refused.

use std::fmt;

/// The rule that refused a URL. [`UrlRule::as_str`] is a stable name, safe to match on and to
/// show to clients.
///
/// [`UrlPolicy::parse`](super::UrlPolicy::parse) checks the text and the host in the order
/// listed here (the first rule that matches is reported); the address rules apply to an IP
/// literal at parse time and to every address a name resolves to at
/// [`UrlPolicy::resolve`](super::UrlPolicy::resolve).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UrlRule {
    /// Longer than [`PublicUrl::MAX_LEN`](super::PublicUrl::MAX_LEN) bytes (checked first).
    TooLong,
    /// Empty, or only whitespace.
    Empty,
    /// A control character (tab, CR, LF, NUL, DEL, ...): the URL parser would silently drop
    /// or keep them, and they are how header injection starts.
    ControlChar,
    /// Not an absolute URL (the parser's reason is in the detail: an invalid IPv4 address
    /// such as `256.1.1.1`, an IPv6 zone id, a relative URL, ...).
    ParseError,
    /// A scheme outside the policy's allow-list (`file:`, `gopher:`, `ftp:`, `javascript:`).
    SchemeNotAllowed,
    /// A user name or password in the URL (`http://user:pass@host/`,
    /// `http://public.example@10.0.0.1/`).
    Userinfo,
    /// No host.
    MissingHost,
    /// A port outside the policy's allow-list (if it has one).
    PortNotAllowed,
    /// A cloud metadata service, by name (`metadata.google.internal`, `instance-data`) or
    /// address (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`, `168.63.129.16`).
    MetadataEndpoint,
    /// A name that only resolves on a local network: `localhost` and `*.localhost`, `*.local`,
    /// `*.internal`, `*.home.arpa`, `*.localdomain`, `*.lan`, `*.home`, `*.corp`,
    /// `*.intranet`, `*.private`.
    LocalName,
    /// A host name without a dot (`intranet`, `db`): resolved through the local search
    /// domains, it names an internal host.
    SingleLabelHost,
    /// A loopback address (`127.0.0.0/8`, `::1`), also in IPv6 forms that embed it.
    Loopback,
    /// The unspecified address or "this network" (`0.0.0.0/8`, `::`): `0.0.0.0` reaches the
    /// local host on Linux.
    Unspecified,
    /// A private address (`10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`).
    Private,
    /// Carrier-grade NAT shared address space (`100.64.0.0/10`).
    SharedAddress,
    /// Link-local (`169.254.0.0/16`, `fe80::/10`).
    LinkLocal,
    /// IPv6 unique-local (`fc00::/7`).
    UniqueLocal,
    /// Multicast (`224.0.0.0/4`, `ff00::/8`).
    Multicast,
    /// The limited broadcast address `255.255.255.255`.
    Broadcast,
    /// Documentation ranges (`192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`,
    /// `2001:db8::/32`, `3fff::/20`).
    Documentation,
    /// Benchmarking ranges (`198.18.0.0/15`, `2001:2::/48`).
    Benchmarking,
    /// Other special-purpose or non-global addresses: `240.0.0.0/4`, `192.0.0.0/24`,
    /// `192.88.99.0/24`, deprecated IPv4-compatible and site-local IPv6, Teredo, discard-only,
    /// local-use NAT64, and any IPv6 address outside `2000::/3`.
    Reserved,
    /// The name could not be resolved, or resolved to no address.
    Unresolvable,
    /// More redirects than the fetch policy allows.
    TooManyRedirects,
}

impl UrlRule {
    /// The rule's stable name (`"loopback"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            UrlRule::TooLong => "too_long",
            UrlRule::Empty => "empty",
            UrlRule::ControlChar => "control_char",
            UrlRule::ParseError => "parse_error",
            UrlRule::SchemeNotAllowed => "scheme_not_allowed",
            UrlRule::Userinfo => "userinfo",
            UrlRule::MissingHost => "missing_host",
            UrlRule::PortNotAllowed => "port_not_allowed",
            UrlRule::MetadataEndpoint => "metadata_endpoint",
            UrlRule::LocalName => "local_name",
            UrlRule::SingleLabelHost => "single_label_host",
            UrlRule::Loopback => "loopback",
            UrlRule::Unspecified => "unspecified",
            UrlRule::Private => "private",
            UrlRule::SharedAddress => "shared_address",
            UrlRule::LinkLocal => "link_local",
            UrlRule::UniqueLocal => "unique_local",
            UrlRule::Multicast => "multicast",
            UrlRule::Broadcast => "broadcast",
            UrlRule::Documentation => "documentation",
            UrlRule::Benchmarking => "benchmarking",
            UrlRule::Reserved => "reserved",
            UrlRule::Unresolvable => "unresolvable",
            UrlRule::TooManyRedirects => "too_many_redirects",
        }
    }

    /// Every rule, in declaration order.
    pub const ALL: &'static [UrlRule] = &[
        UrlRule::TooLong,
        UrlRule::Empty,
        UrlRule::ControlChar,
        UrlRule::ParseError,
        UrlRule::SchemeNotAllowed,
        UrlRule::Userinfo,
        UrlRule::MissingHost,
        UrlRule::PortNotAllowed,
        UrlRule::MetadataEndpoint,
        UrlRule::LocalName,
        UrlRule::SingleLabelHost,
        UrlRule::Loopback,
        UrlRule::Unspecified,
        UrlRule::Private,
        UrlRule::SharedAddress,
        UrlRule::LinkLocal,
        UrlRule::UniqueLocal,
        UrlRule::Multicast,
        UrlRule::Broadcast,
        UrlRule::Documentation,
        UrlRule::Benchmarking,
        UrlRule::Reserved,
        UrlRule::Unresolvable,
        UrlRule::TooManyRedirects,
    ];

    /// The rule with this stable name.
    pub fn from_name(name: &str) -> Option<UrlRule> {
        UrlRule::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for UrlRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused URL: the rule that refused it and a short explanation.
///
/// The explanation may name the scheme, the host and an address, never the user name,
/// password, path or query, so it is safe to return to a client and to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("URL refused by rule `{rule}`: {detail}")]
pub struct UrlRejection {
    /// The rule that refused the URL.
    pub rule: UrlRule,
    /// The explanation (without the rule name).
    pub detail: String,
}

impl UrlRejection {
    pub(crate) fn new(rule: UrlRule, detail: impl Into<String>) -> Self {
        UrlRejection {
            rule,
            detail: detail.into(),
        }
    }

    /// The rule that refused the URL.
    pub fn rule(&self) -> UrlRule {
        self.rule
    }

    /// The explanation (without the rule name).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// Quotes a host name for a message (see [`crate::types::quote`]).
pub(crate) fn quote_host(name: &str) -> String {
    crate::types::quote(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_unique() {
        let names: std::collections::HashSet<_> = UrlRule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), UrlRule::ALL.len());
        for rule in UrlRule::ALL {
            assert_eq!(UrlRule::from_name(rule.as_str()), Some(*rule));
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_host("a`b\n"), "`a?b?`");
        assert_eq!(quote_host(&"x".repeat(100)).chars().count(), 67);
    }
}

//! Which addresses are public: the IANA special-purpose registries, with IPv6 forms that embed
//! an IPv4 address judged by that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::rejection::UrlRule;

/// Why an address is not public: the rule, what it is ("a loopback address"), and the IPv6
/// form it was found in, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotPublic {
    pub rule: UrlRule,
    pub what: &'static str,
    pub via: Option<(&'static str, Ipv4Addr)>,
}

impl NotPublic {
    fn new(rule: UrlRule, what: &'static str) -> Self {
        NotPublic {
            rule,
            what,
            via: None,
        }
    }

    /// "127.0.0.1, a loopback address" or "::ffff:7f00:1 (the IPv4-mapped form of 127.0.0.1,
    /// a loopback address)".
    pub fn describe(&self, ip: IpAddr) -> String {
        match self.via {
            None => format!("{ip}, {}", self.what),
            Some((form, v4)) => format!("{ip} (the {form} form of {v4}, {})", self.what),
        }
    }
}

/// `None` if `ip` is a public unicast address.
pub(crate) fn classify(ip: IpAddr) -> Option<NotPublic> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<NotPublic> {
    use UrlRule::*;
    const TABLE: &[([u8; 4], u32, UrlRule, &str)] = &[
        // Cloud metadata first: more specific than the ranges that contain them.
        (
            [169, 254, 169, 254],
            32,
            MetadataEndpoint,
            "a cloud metadata address",
        ),
        (
            [169, 254, 170, 2],
            32,
            MetadataEndpoint,
            "the AWS ECS task metadata address",
        ),
        (
            [169, 254, 170, 23],
            32,
            MetadataEndpoint,
            "the AWS EKS pod identity address",
        ),
        (
            [100, 100, 100, 200],
            32,
            MetadataEndpoint,
            "the Alibaba Cloud metadata address",
        ),
        (
            [168, 63, 129, 16],
            32,
            MetadataEndpoint,
            "the Azure WireServer address",
        ),
        ([255, 255, 255, 255], 32, Broadcast, "the broadcast address"),
        (
            [0, 0, 0, 0],
            8,
            Unspecified,
            "an unspecified (\"this network\") address",
        ),
        ([127, 0, 0, 0], 8, Loopback, "a loopback address"),
        ([10, 0, 0, 0], 8, Private, "a private address"),
        ([172, 16, 0, 0], 12, Private, "a private address"),
        ([192, 168, 0, 0], 16, Private, "a private address"),
        (
            [100, 64, 0, 0],
            10,
            SharedAddress,
            "a carrier-grade NAT address",
        ),
        ([169, 254, 0, 0], 16, LinkLocal, "a link-local address"),
        ([192, 0, 0, 0], 24, Reserved, "an IETF protocol assignment"),
        ([192, 0, 2, 0], 24, Documentation, "a documentation address"),
        (
            [198, 51, 100, 0],
            24,
            Documentation,
            "a documentation address",
        ),
        (
            [203, 0, 113, 0],
            24,
            Documentation,
            "a documentation address",
        ),
        ([198, 18, 0, 0], 15, Benchmarking, "a benchmarking address"),
        (
            [192, 88, 99, 0],
            24,
            Reserved,
            "a deprecated 6to4 relay address",
        ),
        ([224, 0, 0, 0], 4, Multicast, "a multicast address"),
        ([240, 0, 0, 0], 4, Reserved, "a reserved address"),
    ];
    TABLE
        .iter()
        .find(|(net, len, _, _)| in_v4(ip, *net, *len))
        .map(|&(_, _, rule, what)| NotPublic::new(rule, what))
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

fn v4_at(ip: Ipv6Addr, bit: u32) -> Ipv4Addr {
    Ipv4Addr::from((u128::from(ip) >> (96 - bit)) as u32)
}

/// Judges an IPv6 form by the IPv4 address it carries: refused with that address's rule if
/// it is not public, else `public` (the form is usable) or refused as `reserved`.
fn embedded(form: &'static str, v4: Ipv4Addr, public: Option<NotPublic>) -> Option<NotPublic> {
    match classify_v4(v4) {
        Some(inner) => Some(NotPublic {
            via: Some((form, v4)),
            ..inner
        }),
        None => public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<NotPublic> {
    use UrlRule::*;
    let net = |s: &str| s.parse::<Ipv6Addr>().expect("valid network");
    let reserved = |what| Some(NotPublic::new(Reserved, what));

    if ip.is_unspecified() {
        return Some(NotPublic::new(Unspecified, "the unspecified address"));
    }
    if ip.is_loopback() {
        return Some(NotPublic::new(Loopback, "a loopback address"));
    }
    if ip == net("fd00:ec2::254") {
        return Some(NotPublic::new(
            MetadataEndpoint,
            "the AWS metadata address (IPv6)",
        ));
    }
    // IPv4-mapped: connecting to it reaches the IPv4 address.
    if in_v6(ip, net("::ffff:0:0"), 96) {
        return embedded("IPv4-mapped", v4_at(ip, 96), None);
    }
    // IPv4-compatible (deprecated) and IPv4-translated (SIIT).
    if in_v6(ip, net("::"), 96) {
        return embedded(
            "IPv4-compatible",
            v4_at(ip, 96),
            reserved("a deprecated IPv4-compatible address"),
        );
    }
    if in_v6(ip, net("::ffff:0:0:0"), 96) {
        return embedded(
            "IPv4-translated",
            v4_at(ip, 96),
            reserved("an IPv4-translated address"),
        );
    }
    // NAT64 (well-known prefix): what DNS64 synthesizes for public IPv4 hosts.
    if in_v6(ip, net("64:ff9b::"), 96) {
        return embedded("NAT64", v4_at(ip, 96), None);
    }
    if in_v6(ip, net("64:ff9b:1::"), 48) {
        return reserved("a local-use NAT64 address");
    }
    if in_v6(ip, net("100::"), 64) {
        return reserved("a discard-only address");
    }
    if in_v6(ip, net("2001:db8::"), 32) || in_v6(ip, net("3fff::"), 20) {
        return Some(NotPublic::new(Documentation, "a documentation address"));
    }
    if in_v6(ip, net("2001:2::"), 48) {
        return Some(NotPublic::new(Benchmarking, "a benchmarking address"));
    }
    // Teredo: the server's IPv4 address, then the client's (inverted).
    if in_v6(ip, net("2001::"), 32) {
        let server = v4_at(ip, 32);
        let client = Ipv4Addr::from(!(u128::from(ip) as u32));
        return embedded("Teredo server", server, None)
            .or_else(|| embedded("Teredo client", client, None))
            .or(reserved("a Teredo address"));
    }
    if in_v6(ip, net("2001::"), 23) {
        return reserved("an IETF protocol assignment");
    }
    // 6to4: routed to the IPv4 address it carries.
    if in_v6(ip, net("2002::"), 16) {
        return embedded("6to4", v4_at(ip, 16), None);
    }
    if in_v6(ip, net("5f00::"), 16) {
        return reserved("an SRv6 SID address");
    }
    if in_v6(ip, net("fc00::"), 7) {
        return Some(NotPublic::new(UniqueLocal, "a unique-local address"));
    }
    if in_v6(ip, net("fe80::"), 10) {
        return Some(NotPublic::new(LinkLocal, "a link-local address"));
    }
    if in_v6(ip, net("fec0::"), 10) {
        return reserved("a deprecated site-local address");
    }
    if in_v6(ip, net("ff00::"), 8) {
        return Some(NotPublic::new(Multicast, "a multicast address"));
    }
    if !in_v6(ip, net("2000::"), 3) {
        return reserved("not a global unicast address");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Option<&'static str> {
        classify(s.parse().unwrap()).map(|n| n.rule.as_str())
    }

    #[test]
    fn ipv4() {
        for (ip, want) in [
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("223.255.255.255", None),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("shared_address")),
            ("100.127.255.255", Some("shared_address")),
            ("169.254.1.1", Some("link_local")),
            ("169.254.169.254", Some("metadata_endpoint")),
            ("100.100.100.200", Some("metadata_endpoint")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("255.255.255.255", Some("broadcast")),
            ("240.0.0.1", Some("reserved")),
            ("192.0.0.8", Some("reserved")),
            ("192.0.2.1", Some("documentation")),
            ("198.51.100.1", Some("documentation")),
            ("203.0.113.9", Some("documentation")),
            ("198.18.0.1", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
        ] {
            assert_eq!(rule(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6() {
        for (ip, want) in [
            ("2606:2800:220:1:248:1893:25c8:1946", None),
            ("2001:4860:4860::8888", None),
            ("64:ff9b::5db8:d822", None),
            ("2002:5db8:d822::1", None),
            ("::ffff:93.184.216.34", None),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("metadata_endpoint")),
            ("::127.0.0.1", Some("loopback")),
            ("::ffff:0:10.0.0.1", Some("private")),
            ("::5db8:d822", Some("reserved")),
            ("64:ff9b::10.0.0.1", Some("private")),
            ("64:ff9b::127.0.0.1", Some("loopback")),
            ("64:ff9b:1::1", Some("reserved")),
            ("2002:7f00:1::", Some("loopback")),
            ("2002:a9fe:a9fe::", Some("metadata_endpoint")),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                Some("documentation"),
            ),
            ("2001:0:4136:e378:8000:63bf:a247:ffff", Some("reserved")),
            ("2001:0:7f00:1::", Some("loopback")),
            ("2001:db8::1", Some("documentation")),
            ("3fff::1", Some("documentation")),
            ("2001:2::1", Some("benchmarking")),
            ("fc00::1", Some("unique_local")),
            ("fd12:3456::1", Some("unique_local")),
            ("fd00:ec2::254", Some("metadata_endpoint")),
            ("fe80::1", Some("link_local")),
            ("febf::1", Some("link_local")),
            ("fec0::1", Some("reserved")),
            ("ff02::1", Some("multicast")),
            ("100::1", Some("reserved")),
            ("4000::1", Some("reserved")),
        ] {
            assert_eq!(rule(ip), want, "{ip}");
        }
    }

    #[test]
    fn describes_embedded_forms() {
        let ip: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            classify(ip).unwrap().describe(ip),
            "::ffff:127.0.0.1 (the IPv4-mapped form of 127.0.0.1, a loopback address)"
        );
    }
}

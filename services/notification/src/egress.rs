//! The SSRF guard: where a webhook may connect.
//!
//! A webhook URL's host is resolved and every address it resolves to is checked; one address in a
//! refused range refuses the URL. Refused: loopback (127.0.0.0/8, ::1), private (RFC 1918
//! 10/8, 172.16/12, 192.168/16), shared (RFC 6598 100.64/10), link-local (169.254/16 — the cloud
//! metadata address 169.254.169.254 among them — and fe80::/10), unique-local (fc00::/7),
//! unspecified ("this network" 0/8, ::), multicast and broadcast, and the ranges configured in
//! `webhooks.deny_cidrs` (the cluster's pod and service ranges). An IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is checked as its IPv4 address. `webhooks.allow_cidrs` lets chosen ranges
//! through before any rule (the tests' and the local stack's loopback receivers).
//!
//! The check runs when a subscription is made and again at every connection: the delivery worker
//! connects to the very addresses it checked (the URL's host stays in `Host` and in the TLS SNI and
//! certificate check), so a DNS answer that changes after the check (rebinding) cannot send a
//! delivery into the platform's own network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An address range, `a.b.c.d/n` or `x::y/n` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is no address range (a.b.c.d/n or x::y/n)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Why an address is refused: a stable rule id and the sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Loopback,
    Private,
    Shared,
    LinkLocal,
    UniqueLocal,
    Unspecified,
    Multicast,
    Broadcast,
    /// A range of `webhooks.deny_cidrs`.
    Cluster(Cidr),
}

impl Refusal {
    /// The stable rule identifier, e.g. `webhook_url.loopback`.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Loopback => "webhook_url.loopback",
            Self::Private => "webhook_url.private",
            Self::Shared => "webhook_url.shared",
            Self::LinkLocal => "webhook_url.link_local",
            Self::UniqueLocal => "webhook_url.unique_local",
            Self::Unspecified => "webhook_url.unspecified",
            Self::Multicast => "webhook_url.multicast",
            Self::Broadcast => "webhook_url.broadcast",
            Self::Cluster(_) => "webhook_url.cluster_range",
        }
    }

    fn what(&self) -> String {
        match self {
            Self::Loopback => "a loopback address".into(),
            Self::Private => "a private address (RFC 1918)".into(),
            Self::Shared => "a shared address (RFC 6598)".into(),
            Self::LinkLocal => "a link-local address".into(),
            Self::UniqueLocal => "a unique-local address".into(),
            Self::Unspecified => "an unspecified address".into(),
            Self::Multicast => "a multicast address".into(),
            Self::Broadcast => "the broadcast address".into(),
            Self::Cluster(c) => format!("an address of the platform's cluster range {c}"),
        }
    }
}

/// A refused URL: which address of which host, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(
        "host {host} resolves to {addr}, {}: webhooks may not reach the platform's own networks (rule {})",
        refusal.what(), refusal.rule()
    )]
    Refused {
        host: String,
        addr: IpAddr,
        refusal: Refusal,
    },
    #[error("host {host} does not resolve: {reason} (rule webhook_url.resolves)")]
    Unresolved { host: String, reason: String },
    /// An `http://` URL where `webhooks.require_https` is on (a subscription made before it was).
    #[error(
        "an http:// URL while webhooks.require_https is on: deliveries carry the BSN (rule webhook_url.https)"
    )]
    Insecure,
}

impl EgressError {
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Refused { refusal, .. } => refusal.rule(),
            Self::Unresolved { .. } => "webhook_url.resolves",
            Self::Insecure => "webhook_url.https",
        }
    }
}

fn builtin(ip: IpAddr) -> Option<Refusal> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => v4_refusal(a),
        IpAddr::V6(a) => v6_refusal(a),
    }
}

fn v4_refusal(a: Ipv4Addr) -> Option<Refusal> {
    let o = a.octets();
    Some(if a.is_loopback() {
        Refusal::Loopback
    } else if a.is_private() {
        Refusal::Private
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Refusal::Shared
    } else if a.is_link_local() {
        Refusal::LinkLocal
    } else if o[0] == 0 {
        Refusal::Unspecified
    } else if a.is_multicast() {
        Refusal::Multicast
    } else if a.is_broadcast() {
        Refusal::Broadcast
    } else {
        return None;
    })
}

fn v6_refusal(a: Ipv6Addr) -> Option<Refusal> {
    let first = a.segments()[0];
    Some(if a.is_loopback() {
        Refusal::Loopback
    } else if a.is_unspecified() {
        Refusal::Unspecified
    } else if (first & 0xffc0) == 0xfe80 {
        Refusal::LinkLocal
    } else if (first & 0xfe00) == 0xfc00 {
        Refusal::UniqueLocal
    } else if a.is_multicast() {
        Refusal::Multicast
    } else {
        return None;
    })
}

/// How long a name may take to resolve.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The rules with the configured ranges.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl Guard {
    /// `allow` and `deny` as in `webhooks.allow_cidrs` / `webhooks.deny_cidrs`; the error names the
    /// key and the entry.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, String> {
        let parse = |key: &str, list: &[String]| {
            list.iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.parse::<Cidr>()
                        .map_err(|e| format!("webhooks.{key}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: parse("allow_cidrs", allow)?,
            deny: parse("deny_cidrs", deny)?,
        })
    }

    /// Why `ip` may not be connected to, if it may not.
    pub fn refusal(&self, ip: IpAddr) -> Option<Refusal> {
        if self.allow.iter().any(|c| c.contains(ip)) {
            return None;
        }
        if let Some(c) = self.deny.iter().find(|c| c.contains(ip)) {
            return Some(Refusal::Cluster(*c));
        }
        builtin(ip)
    }

    /// Every address `host` resolves to (an IP literal is itself), each allowed; the addresses to
    /// connect to.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let unresolved = |reason: String| EgressError::Unresolved {
            host: host.to_owned(),
            reason,
        };
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| unresolved(format!("no answer within {RESOLVE_TIMEOUT:?}")))?
                .map_err(|e| unresolved(e.to_string()))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(EgressError::Unresolved {
                host: host.to_owned(),
                reason: "no addresses".into(),
            });
        }
        for a in &addrs {
            if let Some(refusal) = self.refusal(a.ip()) {
                return Err(EgressError::Refused {
                    host: host.to_owned(),
                    addr: a.ip(),
                    refusal,
                });
            }
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_builtin_ranges_are_refused() {
        let g = Guard::default();
        for (a, r) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.0.9", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("10.1.2.3", Refusal::Private),
            ("172.16.0.1", Refusal::Private),
            ("172.31.255.255", Refusal::Private),
            ("192.168.1.1", Refusal::Private),
            ("::ffff:10.0.0.1", Refusal::Private),
            ("100.64.0.1", Refusal::Shared),
            ("169.254.169.254", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("febf::1", Refusal::LinkLocal),
            ("fc00::1", Refusal::UniqueLocal),
            ("fd12:3456::1", Refusal::UniqueLocal),
            ("0.0.0.0", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("224.0.0.1", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Broadcast),
        ] {
            assert_eq!(g.refusal(ip(a)), Some(r), "{a}");
        }
        for a in [
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert_eq!(g.refusal(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn configured_ranges_deny_and_allow() {
        let g = Guard::new(
            &["127.0.0.0/8".into(), "::1".into()],
            &["203.0.113.0/24".into(), "2001:db8:1::/48".into()],
        )
        .unwrap();
        assert_eq!(g.refusal(ip("127.0.0.1")), None);
        assert_eq!(g.refusal(ip("::1")), None);
        assert_eq!(g.refusal(ip("10.0.0.1")), Some(Refusal::Private));
        let c: Cidr = "203.0.113.0/24".parse().unwrap();
        assert_eq!(g.refusal(ip("203.0.113.9")), Some(Refusal::Cluster(c)));
        assert_eq!(
            g.refusal(ip("2001:db8:1:2::1")).map(|r| r.rule()),
            Some("webhook_url.cluster_range")
        );
        assert_eq!(g.refusal(ip("2001:db8:2::1")), None);
        assert!(
            Guard::new(&["10.0.0.0/33".into()], &[])
                .unwrap_err()
                .contains("webhooks.allow_cidrs")
        );
        assert!(
            Guard::new(&[], &["nope".into()])
                .unwrap_err()
                .contains("webhooks.deny_cidrs")
        );
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
    }

    #[tokio::test]
    async fn names_are_resolved_and_every_address_checked() {
        let g = Guard::default();
        let e = g.resolve("localhost", 443).await.unwrap_err();
        assert_eq!(e.rule(), "webhook_url.loopback", "{e}");
        assert!(e.to_string().contains("localhost"));
        let e = g.resolve("[::1]", 443).await.unwrap_err();
        assert_eq!(e.rule(), "webhook_url.loopback");
        let e = g.resolve("nothing.invalid", 443).await.unwrap_err();
        assert_eq!(e.rule(), "webhook_url.resolves");
        let open = Guard::new(&["127.0.0.0/8".into(), "::1".into()], &[]).unwrap();
        let addrs = open.resolve("127.0.0.1", 8080).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8080".parse().unwrap()]);
    }
}

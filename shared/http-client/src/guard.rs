//! The SSRF guard: which addresses a workflow's HTTP steps may reach (the
//! policy is described in the crate documentation).
//!
//! The check happens where it cannot be raced:
//! - [`check_url`]: the scheme, and hosts that are IP literals (reqwest
//!   connects to literals without resolving them), before the request is built;
//! - [`GuardedResolver`]: host names are resolved once, denied addresses are
//!   dropped and the name refused if none remain; reqwest then connects to
//!   exactly the addresses that were checked;
//! - redirects are followed by the client, not by reqwest: every hop goes
//!   through [`check_url`] again, and through the resolver.
//!
//! Refusals raised inside reqwest (the resolver) travel as [`Refused`]
//! in the error's source chain, so they can be classified as invalid rather
//! than as (retryable) network errors.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Which addresses outbound calls may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Whether the denied classes of [`is_denied`] may be reached at all.
    pub allow_private: bool,
    /// Exact addresses that may be reached even though their class is denied.
    /// An IPv4 entry also matches its IPv4-mapped IPv6 form.
    pub allowed: Vec<IpAddr>,
}

impl NetworkPolicy {
    /// Public addresses only: the default.
    pub fn deny_private() -> Self {
        Self {
            allow_private: false,
            allowed: Vec::new(),
        }
    }

    /// Every address, private ones included (the guard is off).
    pub fn allow_all() -> Self {
        Self {
            allow_private: true,
            allowed: Vec::new(),
        }
    }

    /// This policy with `ip` added to the exceptions.
    #[must_use]
    pub fn allowing(mut self, ip: IpAddr) -> Self {
        self.allowed.push(ip);
        self
    }

    /// `None` if `ip` may be reached, otherwise the name of the class that
    /// denies it.
    pub fn denies(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_private {
            return None;
        }
        let canonical = ip.to_canonical();
        if self.allowed.iter().any(|allowed| allowed.to_canonical() == canonical) {
            return None;
        }
        is_denied(ip)
    }
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        Self::deny_private()
    }
}

/// The class of a non-public address (`"loopback"`, `"private"`,
/// `"shared (CGNAT)"`, `"link-local"`, `"unique-local"`, `"site-local"`,
/// `"unspecified"`, `"multicast"`, `"broadcast"`, `"documentation"`,
/// `"reserved"`), or `None` for an address that may be called under
/// [`NetworkPolicy::deny_private`].
pub fn is_denied(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => v4_denied(ip),
        IpAddr::V6(ip) => v6_denied(ip),
    }
}

fn v4_denied(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let class = match (a, b, c) {
        // 0.0.0.0/8: "this network"; connecting to it reaches the host itself.
        (0, _, _) => "unspecified",
        (10, _, _) => "private",
        (100, 64..=127, _) => "shared (CGNAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        // IETF protocol assignments, except the two globally reachable anycast addresses.
        (192, 0, 0) if d != 9 && d != 10 => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 168, _) => "private",
        // Benchmarking, 198.18.0.0/15.
        (198, 18..=19, _) => "reserved",
        (224..=239, _, _) => "multicast",
        (255, 255, 255) if d == 255 => "broadcast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    };
    Some(class)
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn v6_denied(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d reaches a.b.c.d on a dual-stack socket.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_denied(v4);
    }
    match ip.segments() {
        // IPv4-compatible ::a.b.c.d (deprecated) and IPv4-translated
        // ::ffff:0:a.b.c.d: never a legitimate target; named by the embedded
        // address when that is denied too.
        [0, 0, 0, 0, 0, 0, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => {
            Some(v4_denied(embedded_v4(hi, lo)).unwrap_or("reserved"))
        }
        // NAT64 64:ff9b::/96 reaches the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4_denied(embedded_v4(hi, lo)),
        // Local-use NAT64, 64:ff9b:1::/48.
        [0x64, 0xff9b, 1, ..] => Some("reserved"),
        // 6to4 2002:aabb:ccdd::/48 reaches aa.bb.cc.dd.
        [0x2002, hi, lo, ..] => v4_denied(embedded_v4(hi, lo)),
        [0x2001, 0xdb8, ..] => Some("documentation"),
        // Discard-only, 100::/64.
        [0x100, 0, 0, 0, ..] => Some("reserved"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique-local"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("site-local"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        // Documentation, 3fff::/20.
        [first, ..] if first & 0xfff0 == 0x3ff0 => Some("documentation"),
        _ => None,
    }
}

/// A call the guard refused. Travels inside reqwest's error (from the
/// resolver) so the failure can be told apart from a network
/// error and is not retried.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// The guard's refusal somewhere in `err`'s source chain.
pub(crate) fn find_refused<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Refused> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = e.source();
    }
    None
}

/// Why `url` may not be called, checked without resolving anything: the
/// scheme, and the host when it is an IP literal. Host names are left to
/// [`GuardedResolver`].
pub(crate) fn check_url(policy: &NetworkPolicy, url: &Url) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("scheme {other:?} is not allowed (only http and https)")),
    }
    let Some(host) = url.host_str() else {
        return Err("the URL has no host".to_owned());
    };
    // IPv6 literals come bracketed; IPv4 ones are already normalised by the
    // URL parser (`http://2130706433/` is `127.0.0.1`).
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if let Some(class) = policy.denies(ip) {
            return Err(format!("{ip} is a {class} address"));
        }
    }
    Ok(())
}

/// Resolves host names once and hands reqwest only the addresses the policy
/// allows.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    pub(crate) fn new(policy: Arc<NetworkPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_checked(self.policy.clone(), name.as_str().to_owned()))
    }
}

async fn resolve_checked(policy: Arc<NetworkPolicy>, host: String) -> Result<Addrs, BoxError> {
    let resolved = tokio::net::lookup_host((host.as_str(), 0u16)).await?;
    let mut allowed: Vec<SocketAddr> = Vec::new();
    let mut first_denied: Option<(IpAddr, &'static str)> = None;
    for addr in resolved {
        match policy.denies(addr.ip()) {
            None => allowed.push(addr),
            Some(class) => {
                if first_denied.is_none() {
                    first_denied = Some((addr.ip(), class));
                }
            }
        }
    }
    if allowed.is_empty() {
        let error: BoxError = match first_denied {
            Some((ip, class)) => Box::new(Refused(format!("refused: {host} resolves to {ip} ({class})"))) as BoxError,
            None => format!("{host} resolves to no address").into(),
        };
        return Err(error);
    }
    if let Some((ip, class)) = first_denied {
        tracing::debug!(%host, %ip, class, "dropped denied addresses of a host name");
    }
    let addrs: Addrs = Box::new(allowed.into_iter());
    Ok(addrs)
}

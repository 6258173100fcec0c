//! The URLs Hookflow is told to call (a connection's host, a webhook
//! endpoint): https, or http to this machine for local imitations and
//! `hookflow dev`. The SSRF guard still checks every address when a call is
//! made; this refuses what could never be right, when it is configured.

/// `url` parsed, or why not, naming `field`.
pub fn https_or_loopback(url: &str, field: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|err| format!("{field} is not a URL: {err}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        other => Err(format!("{field} must be https (or http to localhost), not {other}")),
    }
}

/// Whether the URL carries a user name or password.
pub fn has_credentials(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

//! Origin matching (WebAuthn L3 §7.1 step 9, §7.2 step 13, §5.11 related origins).

/// A parsed serialized origin: scheme, host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    /// "https" or "http" (or another scheme, e.g. an Android app origin).
    pub scheme: &'a str,
    /// Host, lowercase expected.
    pub host: &'a str,
    /// Explicit port, if any.
    pub port: Option<u16>,
}

impl<'a> Origin<'a> {
    /// Parse `scheme://host[:port]` (no path, query or fragment).
    pub fn parse(s: &'a str) -> Option<Self> {
        let (scheme, rest) = s.split_once("://")?;
        if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = if rest.starts_with('[') {
            let end = rest.find(']')?;
            let host = &rest[..=end];
            let after = &rest[end + 1..];
            let port = if after.is_empty() { None } else { Some(after.strip_prefix(':')?.parse().ok()?) };
            (host, port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p.parse().ok()?)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(Origin { scheme, host, port })
    }
}

/// Whether `host` is `rp_id` or a subdomain of it.
pub fn host_within_rp_id(host: &str, rp_id: &str) -> bool {
    // Compared as bytes: a non-ASCII host never matches an ASCII RP ID's
    // bytes by accident, and slicing bytes cannot land inside a character.
    let host = host.trim_end_matches('.').as_bytes();
    let rp_id = rp_id.as_bytes();
    if host.eq_ignore_ascii_case(rp_id) {
        return true;
    }
    match host.len().checked_sub(rp_id.len() + 1) {
        Some(dot) => {
            host.get(dot) == Some(&b'.') && host.get(dot + 1..).is_some_and(|tail| tail.eq_ignore_ascii_case(rp_id))
        }
        None => false,
    }
}

/// A client-data origin written as a URL with an empty path
/// (`"https://example.com/"`) names the same origin as its serialization
/// without the slash (HTML "ASCII serialization of an origin", which
/// WebAuthn L3 §5.8.1 asks clients to send). Clients that put a parsed URL
/// there instead of an origin send the slash: webauthn-authenticator-rs does
/// (its `url::Url` always serializes a path). Only that one trailing `/` is
/// dropped, and only when what remains is a bare `scheme://host[:port]`; any
/// other path, query or fragment is left in place and so never matches.
fn without_root_path(origin: &str) -> &str {
    match origin.strip_suffix('/') {
        Some(o) if Origin::parse(o).is_some() => o,
        _ => origin,
    }
}

/// Check a client-data origin against the configuration (§7.1 step 9, §7.2
/// step 13). Exact origins are compared as strings, after dropping the
/// trailing `/` of a URL-shaped origin (`https://a.example/` matches
/// `https://a.example`).
pub fn origin_allowed(origin: &str, config: &super::RpConfig) -> bool {
    let origin = without_root_path(origin);
    if config.origins.iter().chain(&config.related_origins).any(|o| o == origin) {
        return true;
    }
    if config.allow_subdomains
        && let Some(o) = Origin::parse(origin)
    {
        let secure = o.scheme == "https" || (o.scheme == "http" && o.host == "localhost");
        return secure && host_within_rp_id(o.host, &config.rp_id);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-ASCII host whose byte at `len - rp_id.len()` falls inside a
    /// character used to panic (slicing a `str` off a char boundary).
    #[test]
    fn non_ascii_hosts_do_not_panic() {
        assert!(!host_within_rp_id("xéxample.com", "example.com"));
        assert!(!host_within_rp_id("é", "example.com"));
        assert!(!host_within_rp_id("ééééééééé.com", "example.com"));
        assert!(host_within_rp_id("é.example.com", "example.com"));
        let mut c = crate::server::RpConfig::new("example.com", "Example", "https://example.com");
        c.allow_subdomains = true;
        assert!(!origin_allowed("https://xéxample.com", &c));
        assert!(!origin_allowed("https://\u{1F600}example.com", &c));
        assert!(origin_allowed("https://a.example.com", &c));
    }
    #[test]
    fn parse_origins() {
        assert_eq!(Origin::parse("https://a.example.com").map(|o| o.host), Some("a.example.com"));
        assert_eq!(Origin::parse("http://localhost:8080").and_then(|o| o.port), Some(8080));
        assert!(Origin::parse("https://a.com/path").is_none());
        assert!(Origin::parse("a.com").is_none());
        assert!(host_within_rp_id("login.example.com", "example.com"));
        assert!(!host_within_rp_id("badexample.com", "example.com"));
    }

    #[test]
    fn url_shaped_origins() {
        let mut c = crate::server::RpConfig::new("example.com", "Example", "https://login.example.com");
        assert!(origin_allowed("https://login.example.com", &c));
        // The same origin written as a URL with an empty path.
        assert!(origin_allowed("https://login.example.com/", &c));
        // Anything more than that one slash is not an origin.
        for o in [
            "https://login.example.com//",
            "https://login.example.com/x",
            "https://login.example.com/?",
            "https://login.example.com:443/",
            "https://evil.example.com/",
            "http://login.example.com/",
        ] {
            assert!(!origin_allowed(o, &c), "{o}");
        }
        c.allow_subdomains = true;
        assert!(origin_allowed("https://a.example.com/", &c));
        assert!(!origin_allowed("https://a.example.com/x", &c));
        assert!(!origin_allowed("https://example.org/", &c));
    }
}

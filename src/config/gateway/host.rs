//! `gateway.routes[].host`: the one host name (or `*.` wildcard) a route serves, checked and
//! brought to the form TLS SNI and `Host` headers are compared in (ASCII, lower case).

use std::fmt;

use super::super::ConfigError;

/// The host a route is for. Names are stored in their ASCII (punycode) form, lower case, with
/// no trailing dot and no port: the form SNI carries (RFC 6066 §3) and browsers send in
/// `Host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteHost {
    /// Exactly this name.
    Exact(String),
    /// `*.example.com`: exactly one more label in front of the stored suffix
    /// (`example.com`), as a wildcard certificate matches (RFC 6125 §6.4.3): `a.example.com`,
    /// not `example.com` and not `a.b.example.com`.
    Wildcard(String),
}

impl RouteHost {
    /// Whether `name` (a host name in any case, no port, no trailing dot) is served by this
    /// route. Compares without allocating: this runs for every request of a config with hosts.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            RouteHost::Exact(h) => h.eq_ignore_ascii_case(name),
            RouteHost::Wildcard(suffix) => {
                let Some(cut) = name.len().checked_sub(suffix.len() + 1) else {
                    return false;
                };
                let (Some(label), Some(dot_suffix)) = (name.get(..cut), name.get(cut..)) else {
                    return false;
                };
                dot_suffix.starts_with('.')
                    && dot_suffix[1..].eq_ignore_ascii_case(suffix)
                    && !label.is_empty()
                    && !label.contains('.')
            }
        }
    }
}

impl fmt::Display for RouteHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteHost::Exact(h) => f.write_str(h),
            RouteHost::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl super::super::Config {
    /// The exact host names this process needs a certificate for, each once, in ASCII lower
    /// case: `public_url`'s host first, then every exact `gateway.routes[].host` in route
    /// order. `public_url`'s host is left out when it is an IP address (no ACME certificate
    /// names one). Wildcards are in [`Self::wildcard_hosts`].
    pub fn hosts(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if let Some(url::Host::Domain(d)) = self.public_url.host() {
            names.push(d.trim_end_matches('.').to_ascii_lowercase());
        }
        for route in self.gateway.iter().flat_map(|g| &g.routes) {
            if let Some(RouteHost::Exact(h)) = &route.host {
                if !names.contains(h) {
                    names.push(h.clone());
                }
            }
        }
        names
    }

    /// The wildcard route hosts, written `*.example.com`, each once, in route order.
    pub fn wildcard_hosts(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for route in self.gateway.iter().flat_map(|g| &g.routes) {
            if let Some(h @ RouteHost::Wildcard(_)) = &route.host {
                let h = h.to_string();
                if !names.contains(&h) {
                    names.push(h);
                }
            }
        }
        names
    }
}

/// Checks `text`, the value at key path `at`.
pub(super) fn route_host(text: &str, at: &str) -> Result<RouteHost, ConfigError> {
    let err = |m: &str| ConfigError::at(at, format!("`{text}` {m}"));
    if text.contains(':') || text.contains('/') {
        return Err(err(
            "must be a host name only, like app.example.com: no scheme, port or path \
             (the port is the listener's)",
        ));
    }
    let (wildcard, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if name.contains('*') {
        return Err(err(
            "may have one `*.` label in front only, like *.example.com",
        ));
    }
    let name = ascii_name(name).map_err(|m| err(&m))?;
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(err(
            "is an IP address: routes by host need a name (a route without host: serves any)",
        ));
    }
    if wildcard && !name.contains('.') {
        return Err(err(
            "is too wide: a wildcard needs a parent with a dot, like *.example.com",
        ));
    }
    Ok(if wildcard {
        RouteHost::Wildcard(name)
    } else {
        RouteHost::Exact(name)
    })
}

/// The ASCII form of a DNS name: IDNA (UTS #46) for non-ASCII names, lower case, the trailing
/// dot of a fully qualified name removed, then each label checked (RFC 1123: letters, digits,
/// `-` inside; `_` is refused as no certificate authority issues for it).
fn ascii_name(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    let ascii = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        match url::Host::parse(name) {
            Ok(url::Host::Domain(d)) => d,
            _ => {
                return Err(
                    "is not a valid international domain name (write it in punycode, xn--…)"
                        .to_owned(),
                )
            }
        }
    };
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if ascii.len() > 253 || !ascii.split('.').all(label_ok) {
        return Err(
            "is not a DNS name: labels of letters, digits and `-` (not first or last), \
             separated by single dots"
                .to_owned(),
        );
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests;

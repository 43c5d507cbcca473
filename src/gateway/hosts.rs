//! Which host a request is for: the `Host` header checked against the request target and
//! the TLS server name (RFC 9110 §7.2, §15.5.20), and each host's own origin for logins
//! (its callback URL and the `Origin` its forms come from).

use std::borrow::Cow;

use http::{header, Request};

use crate::config::{GatewayConfig, RouteHost};
use crate::error::RequestError;

/// One host's origin, as the login flow needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// `https://host[:port]`: the only `Origin` its logout form is posted from.
    pub origin: String,
    /// `origin` + the auth prefix + `/callback`: where the central sends the browser back,
    /// and the `aud` of the assertions it accepts.
    pub callback_url: String,
    /// The route host its sessions are bound to; `None` for `public_url`'s.
    pub bound: Option<String>,
}

/// Every host's site: `public_url`'s, and each host routes name.
#[derive(Debug)]
pub struct Sites {
    public: Site,
    /// The exact route hosts (lower case) with their sites.
    exact: Vec<(String, Site)>,
    /// The wildcard route hosts: their names' sites are made when asked for.
    wildcards: Vec<RouteHost>,
    /// To make a wildcard name's site.
    config: SiteShape,
}

#[derive(Debug)]
struct SiteShape {
    port: Option<u16>,
    auth_prefix: String,
}

impl Sites {
    pub fn new(config: &GatewayConfig) -> Self {
        let shape = SiteShape {
            port: config.public_port,
            auth_prefix: config.auth_prefix.clone(),
        };
        let mut exact = Vec::new();
        let mut wildcards = Vec::new();
        for host in config.routes.iter().filter_map(|r| r.host.as_ref()) {
            match host {
                RouteHost::Exact(h) if !exact.iter().any(|(x, _)| x == h) => {
                    exact.push((h.clone(), shape.site(h)));
                }
                RouteHost::Wildcard(_) if !wildcards.contains(host) => wildcards.push(host.clone()),
                _ => {}
            }
        }
        Sites {
            public: Site {
                origin: config.public_url.clone(),
                callback_url: config.callback_url.clone(),
                bound: None,
            },
            exact,
            wildcards,
            config: shape,
        }
    }

    /// The site of a request for `host`: the host's own when a route names it (exactly or by
    /// a wildcard), else `public_url`'s, as before routes had hosts. Never another route
    /// host's: a login on one host sets its session on that host only.
    pub fn of(&self, host: Option<&str>) -> Cow<'_, Site> {
        let Some(host) = host else {
            return Cow::Borrowed(&self.public);
        };
        if let Some((_, site)) = self
            .exact
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
        {
            return Cow::Borrowed(site);
        }
        match self.wildcards.iter().any(|w| w.matches(host)) {
            true => Cow::Owned(self.config.site(&host.to_ascii_lowercase())),
            false => Cow::Borrowed(&self.public),
        }
    }
}

impl Sites {
    /// `host` when it is a route host (its sessions are bound to it), else `None`
    /// (`public_url`'s sessions). Allocates nothing: it runs for requests that need a session.
    pub fn bound<'h>(&self, host: Option<&'h str>) -> Option<&'h str> {
        host.filter(|h| {
            self.exact.iter().any(|(x, _)| x.eq_ignore_ascii_case(h))
                || self.wildcards.iter().any(|w| w.matches(h))
        })
    }
}

impl SiteShape {
    fn site(&self, host: &str) -> Site {
        let origin = crate::config::origin_of(host, self.port);
        Site {
            callback_url: format!("{origin}{}/callback", self.auth_prefix),
            origin,
            bound: Some(host.to_owned()),
        }
    }
}

/// Checks that a request to an upstream names `public_host`: the `Host` header and the
/// target's authority (absolute-form in HTTP/1.1, `:authority` in HTTP/2) must be plain
/// `host[:port]`, agree with each other (400 otherwise) and name `public_host` (421
/// otherwise; the port is not compared). Only an HTTP/1.0 request may name no host.
pub fn check_host<B>(req: &Request<B>, public_host: &str) -> Result<(), RequestError> {
    match named_host(req)? {
        None => Ok(()),
        Some(name) if name.eq_ignore_ascii_case(public_host) => Ok(()),
        Some(_) => Err(RequestError::Misdirected),
    }
}

/// The bytes a host name may hold: ASCII letters and digits, `-`, `.` and `_`. A table, one
/// load a byte: every proxied request's `Host` is read this way.
const NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_';
        b += 1;
    }
    table
};

/// The host a request names (trailing dot removed, case kept): the `Host` header and the
/// target's authority must be plain `host[:port]` and agree (400 otherwise). `None` only for
/// an HTTP/1.0 request that names none.
pub fn named_host<B>(req: &Request<B>) -> Result<Option<&str>, RequestError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let header = hosts.next().map(|v| host_name(v.as_bytes())).transpose()?;
    if hosts.next().is_some() {
        return Err(RequestError::BadHost(
            "The request has more than one Host header.",
        ));
    }
    let target = req
        .uri()
        .authority()
        .map(|a| host_name(a.as_str().as_bytes()))
        .transpose()?;
    let name = match (header, target) {
        (Some(h), Some(t)) if !h.eq_ignore_ascii_case(t) => {
            return Err(RequestError::BadHost(
                "The Host header and the request target name different hosts.",
            ))
        }
        (Some(h), _) | (None, Some(h)) => h,
        // HTTP/1.0 may name no host; HTTP/1.1 and HTTP/2 must (RFC 9112 §3.2, RFC 9113 §8.3.1).
        (None, None) if req.version() <= http::Version::HTTP_10 => return Ok(None),
        (None, None) => return Err(RequestError::BadHost("The request names no host.")),
    };
    Ok(Some(name.trim_end_matches('.')))
}

/// The host a request is for, when routes name hosts: [`named_host`], which must be the TLS
/// server name when the client sent one (421 otherwise, RFC 9110 §15.5.20: a browser that
/// reuses one connection for two names of one certificate then retries on a new one), or
/// that server name when the request names no host.
pub fn request_host<'r, B>(
    req: &'r Request<B>,
    sni: Option<&'r str>,
) -> Result<Option<&'r str>, RequestError> {
    match (named_host(req)?, sni) {
        (Some(host), Some(sni)) if !host.eq_ignore_ascii_case(sni) => {
            Err(RequestError::Misdirected)
        }
        (host, sni) => Ok(host.or(sni)),
    }
}

/// A trusted proxy's `X-Forwarded-Host` (the caller checks the trust): the host name of
/// the one value sent, or `None`. Several values, or a list, are 400 rather than a guess at
/// which one the proxy set.
pub fn forwarded_host(headers: &http::HeaderMap) -> Result<Option<&str>, RequestError> {
    let mut all = headers.get_all(&super::headers::X_FORWARDED_HOST).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(RequestError::BadHost("Send X-Forwarded-Host once."));
    }
    host_name(value.as_bytes()).map(|h| Some(h.trim_end_matches('.')))
}

/// The host name of a `Host` value: `name`, `name:port`, `[v6]` or `[v6]:port`, nothing else
/// (no user info, path, query, spaces or an empty name).
fn host_name(value: &[u8]) -> Result<&str, RequestError> {
    let bad = || RequestError::BadHost("The Host header is not a host name and port.");
    // Read as bytes (a name and a port are ASCII), made text only once they passed.
    let (name, port) = match value.split_first() {
        Some((b'[', rest)) => {
            let close = memchr::memchr(b']', rest).ok_or_else(bad)?;
            let v6 = std::str::from_utf8(&rest[..close]).map_err(|_| bad())?;
            v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            let port = match &rest[close + 1..] {
                [] => None,
                [b':', port @ ..] => Some(port),
                _ => return Err(bad()),
            };
            (&value[..close + 2], port)
        }
        _ => match memchr::memchr(b':', value) {
            Some(at) => (&value[..at], Some(&value[at + 1..])),
            None => (value, None),
        },
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
    }
    if name.first() != Some(&b'[')
        && (name.is_empty() || !name.iter().all(|&b| NAME_BYTE[usize::from(b)]))
    {
        return Err(bad());
    }
    std::str::from_utf8(name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Version;

    fn host_of(host: Option<&str>, target: &str) -> Result<(), RequestError> {
        let mut req = Request::builder().uri(target);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        check_host(&req.body(()).unwrap(), "app.example.com")
    }

    /// The definition as text (as it stood before the byte-level one), but for one fix: after
    /// `[v6]` comes nothing or `:port` (it let `[::1]junk` through as `[::1]`).
    fn host_name_by_text(value: &[u8]) -> Option<&str> {
        let text = std::str::from_utf8(value).ok()?;
        let (name, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (v6, after) = rest.split_once(']')?;
                v6.parse::<std::net::Ipv6Addr>().ok()?;
                if !after.is_empty() && !after.starts_with(':') {
                    return None;
                }
                (&text[..v6.len() + 2], after.strip_prefix(':'))
            }
            None => match text.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (text, None),
            },
        };
        if let Some(port) = port {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
        }
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if !name.starts_with('[') && (name.is_empty() || !name.bytes().all(plain)) {
            return None;
        }
        Some(name)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        #[test]
        fn host_names_read_as_bytes_read_as_text(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"["[..], b"]", b":", b"::", b"1", b"443", b"123456", b"a", b"A", b"-", b".",
                    b"_", b" ", b"/", b"@", b"\xc3\xa9", b"\xff", b"fe80::1", b"example.com",
                ]),
                0..7,
            )
        ) {
            let value: Vec<u8> = pieces.concat();
            proptest::prop_assert_eq!(host_name(&value).ok(), host_name_by_text(&value));
        }
    }

    #[test]
    fn a_bracketed_address_is_followed_by_a_port_or_nothing() {
        assert_eq!(host_name(b"[::1]").ok(), Some("[::1]"));
        assert_eq!(host_name(b"[::1]:8443").ok(), Some("[::1]"));
        for bad in [&b"[::1]x"[..], b"[::1]:", b"[::1] :1", b"[::1]]", b"[::1"] {
            assert!(host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_must_be_the_public_host() {
        for ok in [
            "app.example.com",
            "APP.example.com:8443",
            "app.example.com.",
        ] {
            assert!(host_of(Some(ok), "/").is_ok(), "{ok}");
        }
        assert!(matches!(host_of(None, "/"), Err(RequestError::BadHost(_))));
        let mut http10 = Request::new(());
        *http10.version_mut() = Version::HTTP_10;
        assert!(check_host(&http10, "app.example.com").is_ok());
        assert!(host_of(None, "https://app.example.com/x").is_ok());
        for (host, target) in [
            (Some("evil.example.com"), "/"),
            (Some("app.example.com.evil.com"), "/"),
            (Some("127.0.0.1:8443"), "/"),
            (Some("[::1]:443"), "/"),
            (None, "https://evil.example.com/x"),
        ] {
            assert!(
                matches!(host_of(host, target), Err(RequestError::Misdirected)),
                "{host:?} {target}"
            );
        }
        for (host, target) in [
            (Some("app.example.com/x"), "/"),
            (Some("user@app.example.com"), "/"),
            (Some("app.example.com?x"), "/"),
            (Some("app.example.com:"), "/"),
            (Some("app.example.com:80x"), "/"),
            (Some(""), "/"),
            (Some("app example.com"), "/"),
            (Some("app.example.com"), "https://evil.example.com/x"),
        ] {
            assert!(
                matches!(host_of(host, target), Err(RequestError::BadHost(_))),
                "{host:?} {target}"
            );
        }
    }
}

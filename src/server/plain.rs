//! `http_listen`: plain HTTP/1.1 (port 80). It answers ACME HTTP-01 challenges (RFC 8555
//! §8.3) and sends everything else to HTTPS with a 308, same host and path; nothing is ever
//! proxied in the clear.

use std::net::Ipv6Addr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::config::{Config, RouteHost};
use crate::tls::sni::SniResolver;

/// Where HTTP-01 tokens are fetched (RFC 8555 §8.3).
const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What the plain listener needs to answer.
pub struct Plain {
    /// With ACME: the pending HTTP-01 answers.
    acme: Option<Arc<SniResolver>>,
    /// The HTTPS listener's port, written into redirects unless it is 443.
    https_port: u16,
    /// The only hosts redirected to, when the config knows them all; `None`: any host.
    known: Option<Vec<RouteHost>>,
}

impl Plain {
    /// Hosts are known with ACME (those with a certificate: no other one gets through TLS)
    /// and when every route names its host (then `public_url`'s and theirs); a route for any
    /// host serves any name, and any name is then redirected.
    pub fn new(config: &Config, acme: Option<Arc<SniResolver>>, https_port: u16) -> Self {
        let exact = |names: Vec<String>| names.into_iter().map(RouteHost::Exact);
        let routes = config.gateway.iter().flat_map(|g| &g.routes);
        let known = if let Some(acme) = &acme {
            Some(exact(acme.hosts().to_vec()).collect())
        } else if config.gateway.is_some() && routes.clone().all(|r| r.host.is_some()) {
            Some(
                exact(config.hosts())
                    .chain(routes.filter_map(|r| r.host.clone()))
                    .collect(),
            )
        } else {
            None
        };
        Plain {
            acme,
            https_port,
            known,
        }
    }
}

/// Serves `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, plain: Arc<Plain>) {
    crate::util::serve_plain(listener, "http_listen", move |req| answer(req, &plain)).await;
}

fn answer(req: &Request<Incoming>, plain: &Plain) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if let (Some(acme), Some(token)) = (&plain.acme, path.strip_prefix(CHALLENGE_PREFIX)) {
        return match acme.challenges.http_answer(token) {
            Some(key_authorization) => text(StatusCode::OK, key_authorization),
            None => text(StatusCode::NOT_FOUND, "no such challenge\n".into()),
        };
    }
    let mut hosts = req
        .headers()
        .get_all(HOST)
        .iter()
        .map(HeaderValue::as_bytes);
    let (header, twice) = (hosts.next(), hosts.next().is_some());
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let to = match (
        twice,
        agreed_host(req.uri().authority().map(|a| a.as_str()), header),
    ) {
        (false, Ok(host)) => {
            redirect_target(host, target, plain.https_port, plain.known.as_deref())
        }
        _ => Err(Refusal::BadHost),
    };
    match to {
        Ok(location) => {
            let mut res = text(StatusCode::PERMANENT_REDIRECT, format!("{location}\n"));
            if let Ok(v) = HeaderValue::try_from(location) {
                res.headers_mut().insert(LOCATION, v);
            }
            res
        }
        Err(Refusal::BadHost) => text(
            StatusCode::BAD_REQUEST,
            "missing or malformed Host\n".into(),
        ),
        Err(Refusal::UnknownHost) => text(StatusCode::NOT_FOUND, "unknown host\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    BadHost,
    /// A host this process does not serve: no redirect sends a client there.
    UnknownHost,
}

/// The host a request names: an absolute-form target's (RFC 9112 §3.2.2), which must then be
/// the `Host` header's too, else the `Host` header's. A cache in front keys on `Host`: a
/// redirect to the target's host stored under another `Host` would send that host's visitors
/// anywhere.
fn agreed_host<'a>(
    authority: Option<&'a str>,
    header: Option<&'a [u8]>,
) -> Result<Option<&'a [u8]>, Refusal> {
    match (authority, header) {
        (Some(a), Some(h)) if host_name(a.as_bytes()) != host_name(h) => Err(Refusal::BadHost),
        (Some(a), _) => Ok(Some(a.as_bytes())),
        (None, h) => Ok(h),
    }
}

/// `https://<host>[:<https_port>]<target>`, the host taken from `host` (a `Host` value, its
/// port dropped) and checked; with `known`, only one of them.
fn redirect_target(
    host: Option<&[u8]>,
    target: &str,
    https_port: u16,
    known: Option<&[RouteHost]>,
) -> Result<String, Refusal> {
    let host = host_name(host.ok_or(Refusal::BadHost)?).ok_or(Refusal::BadHost)?;
    if known.is_some_and(|known| !known.iter().any(|k| k.matches(&host))) {
        return Err(Refusal::UnknownHost);
    }
    let target = if target.starts_with('/') { target } else { "/" };
    Ok(if https_port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{https_port}{target}")
    })
}

/// The host of a `Host` value (RFC 9110 §7.2: `uri-host [ ":" port ]`), lowercased: a DNS name
/// or an IP address; `None` for anything else (user info, paths, odd characters).
fn host_name(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?;
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        (&value[..inside.len() + 2], after)
    } else {
        match value.find(':') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        }
    };
    if let Some(digits) = port.strip_prefix(':') {
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    } else if !port.is_empty() {
        return None;
    }
    if host.starts_with('[') {
        return Some(host.to_ascii_lowercase());
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (host.len() <= 253 && host.split('.').all(label_ok)).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_host_path_and_query_and_the_https_port() {
        let to = |host: &str, target: &str, port| {
            redirect_target(Some(host.as_bytes()), target, port, None)
        };
        assert_eq!(
            to("a.example", "/x?y=1", 443).unwrap(),
            "https://a.example/x?y=1"
        );
        assert_eq!(
            to("A.Example:80", "/x", 8443).unwrap(),
            "https://a.example:8443/x"
        );
        assert_eq!(to("[::1]:8080", "/", 8443).unwrap(), "https://[::1]:8443/");
        assert_eq!(
            to("127.0.0.1", "//e.com", 443).unwrap(),
            "https://127.0.0.1//e.com"
        );
        assert_eq!(to("a.example.", "*", 443).unwrap(), "https://a.example/");
    }

    #[test]
    fn an_absolute_target_must_name_the_host_header_s_host() {
        let agreed = |a: Option<&'static str>, h: Option<&'static str>| {
            agreed_host(a, h.map(str::as_bytes)).map(|h| h.map(|b| b.to_vec()))
        };
        assert_eq!(
            agreed(Some("evil.example"), Some("victim.example")),
            Err(Refusal::BadHost)
        );
        assert_eq!(
            agreed(Some("A.example:80"), Some("a.example")),
            Ok(Some(b"A.example:80".to_vec()))
        );
        assert_eq!(
            agreed(Some("a.example"), None),
            Ok(Some(b"a.example".to_vec()))
        );
        assert_eq!(
            agreed(None, Some("a.example")),
            Ok(Some(b"a.example".to_vec()))
        );
        assert_eq!(agreed(None, None), Ok(None));
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for bad in [
            "",
            "a b",
            "a@b",
            "a/b",
            "a\\b",
            "e.com:80@a",
            "a:",
            "a:x",
            "a:80:80",
            "[::1",
            "[nothost]",
            "-a.example",
            "a..b",
            "é.example",
            "[::1]x",
        ] {
            let r = redirect_target(Some(bad.as_bytes()), "/", 443, None);
            assert_eq!(r, Err(Refusal::BadHost), "{bad:?}");
        }
        assert_eq!(redirect_target(None, "/", 443, None), Err(Refusal::BadHost));
    }

    #[test]
    fn with_known_hosts_no_other_host_is_a_target() {
        let known = [
            RouteHost::Exact("a.example".into()),
            RouteHost::Wildcard("apps.example".into()),
        ];
        let to = |h: &str| redirect_target(Some(h.as_bytes()), "/", 443, Some(&known));
        assert_eq!(to("A.example:80").unwrap(), "https://a.example/");
        assert_eq!(to("x.apps.example").unwrap(), "https://x.apps.example/");
        assert_eq!(to("evil.example"), Err(Refusal::UnknownHost));
        assert_eq!(to("x.y.apps.example"), Err(Refusal::UnknownHost));
    }

    #[test]
    fn hosts_are_known_when_every_route_names_one() {
        let config = |routes: &str| {
            let text = format!(
                "listen: 127.0.0.1:8443\npublic_url: https://gw.example\n\
                 tls: {{self_signed: true}}\ngateway:\n  routes:\n{routes}"
            );
            crate::config::Config::parse(&text, &|_| None).unwrap()
        };
        let up = "upstream: 'http://127.0.0.1:1'";
        let named = config(&format!(
            "    - {{host: a.example, prefix: /, {up}}}\n    - {{host: '*.b.example', prefix: /, {up}}}\n"
        ));
        let plain = Plain::new(&named, None, 443);
        let to =
            |p: &Plain, h: &str| redirect_target(Some(h.as_bytes()), "/", 443, p.known.as_deref());
        for ok in ["gw.example", "a.example", "x.b.example"] {
            assert!(to(&plain, ok).is_ok(), "{ok}");
        }
        assert_eq!(to(&plain, "evil.example"), Err(Refusal::UnknownHost));
        let any = config(&format!(
            "    - {{host: a.example, prefix: /, {up}}}\n    - {{prefix: /, {up}}}\n"
        ));
        assert!(to(&Plain::new(&any, None, 443), "evil.example").is_ok());
    }
}

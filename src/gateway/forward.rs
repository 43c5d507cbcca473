//! Forwarding to HTTP(S) upstreams over one pooled keep-alive client: bodies stream both ways,
//! WebSocket handshakes are tunnelled (no other upgrade is), failures become 502 or 504.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::body::RequestBody;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::{debug, warn};

use super::added::Added;
use super::headers;
use crate::error::RequestError;
use crate::metrics::RouteStats;
use crate::pages::Body;
use crate::path::NormalPath;
use crate::upstream::{Pool, SetHeaders};

/// Where and how one request goes upstream.
pub struct Upstream<'a> {
    pub pool: &'a Arc<Pool>,
    /// Leading segments not sent upstream (`strip_prefix`).
    pub strip: usize,
    /// The route's prefix, put back in front of a path-absolute `Location` when `strip` cut it.
    pub prefix: &'a str,
    pub preserve_host: bool,
    pub response_timeout: Duration,
    /// `limits.tunnel_idle_timeout`.
    pub tunnel_idle: Duration,
    /// The route's counters, when metrics are on: a response body that stalls after the
    /// request was counted is counted here.
    pub stats: Option<&'a Arc<RouteStats>>,
    /// The names of `identity.headers`, reserved like `X-User-*` (see `identity`).
    pub also_reserved: &'a [Box<[u8]>],
}

/// A request rewritten for its upstream, ready to go.
pub struct Prepared<'a> {
    pool: &'a Arc<Pool>,
    /// Lent, not moved: it stays in the frame that read it (a move copies 264 bytes, and
    /// every level of a request's futures would hold it again).
    req: &'a mut Request<RequestBody>,
    added: Added,
    response_timeout: Duration,
    tunnel_idle: Duration,
    stats: Option<&'a Arc<RouteStats>>,
    /// A WebSocket handshake's `Sec-WebSocket-Key`, and the client's side of the upgrade.
    upgrade: Option<(HeaderValue, OnUpgrade)>,
    /// The client speaks HTTP/2 (its HPACK table may keep our response's header values).
    client_h2: bool,
    /// `strip_prefix`'s prefix, to put back in front of a redirect's path.
    restore: Option<&'a str>,
}

/// Rewrites `req` (already routed, path normalised) for the upstream: target, hop-by-hop and
/// identity headers stripped, and what it is sent with ([`Added`]: forwarding headers,
/// identity, `X-Request-Id` (the request's id, replacing whatever the client sent), `Host`),
/// set after the hop-by-hop strip, so `Connection` cannot remove them.
pub fn prepare<'a>(
    to: Upstream<'a>,
    req: &'a mut Request<RequestBody>,
    path: &NormalPath,
    peer: SocketAddr,
    identity: Option<super::identity::Outgoing>,
    request_id: HeaderValue,
) -> Result<Prepared<'a>, RequestError> {
    let client_h2 = req.version() == Version::HTTP_2;
    // Any other `Upgrade` goes upstream as a plain request: its headers are hop-by-hop.
    let upgrade = headers::websocket_key(req).map(|key| (key, hyper::upgrade::on(&mut *req)));
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });

    // The forwarded (encoded) form is cut: it has the segments of the normalised path that
    // routing matched, one for one (an escaped `/` is refused, so none splits or merges).
    let origin_form = req.uri().scheme().is_none() && req.uri().authority().is_none();
    let path_and_query = match req.uri().path_and_query() {
        // The usual case, an origin-form target whose path is already in its normal form,
        // nothing stripped: the target as it came (sharing the request's bytes), not rebuilt.
        // Origin-form only: an absolute-form target may have no path at all (`https://h?x`),
        // which `path()` reads as `/` but the bytes do not hold (a review finding).
        Some(same) if origin_form && to.strip == 0 && same.path() == path.encoded() => same.clone(),
        _ => {
            let mut path_and_query = without_segments(path.encoded(), to.strip).to_owned();
            if let Some(q) = req.uri().query() {
                path_and_query.push('?');
                path_and_query.push_str(q);
            }
            PathAndQuery::try_from(path_and_query)
                .map_err(|_| RequestError::BadPath("The request path cannot be forwarded."))?
        }
    };
    *req.uri_mut() = Uri::from(path_and_query);
    *req.version_mut() = Version::HTTP_11;

    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    headers::strip_reserved(h);
    super::identity::strip_configured(h, to.also_reserved);
    // Cut as the head is written (`Added`), not removed from the map.
    let cookies = super::session::own_cookies_cut(h);
    if upgrade.is_some() {
        headers::set_websocket_upgrade(h);
    }
    let added = Added {
        host: match (&host, to.preserve_host) {
            (Some(host), true) => host.clone(),
            _ => to.pool.host.clone(),
        },
        peer: peer.ip(),
        forwarded_host: host,
        identity,
        request_id,
        cookies,
    };
    Ok(Prepared {
        pool: to.pool,
        req,
        added,
        response_timeout: to.response_timeout,
        tunnel_idle: to.tunnel_idle,
        stats: to.stats,
        upgrade,
        client_h2,
        restore: (to.strip > 0).then_some(to.prefix),
    })
}

impl Prepared<'_> {
    /// Sends the request; the response's body streams from the upstream as the client reads.
    /// The upstream's failures are counted and logged (rate-limited) by its pool.
    /// Borrowed, not taken: it stays where it was made, in its caller's future.
    pub async fn send(&mut self) -> Result<Response<Body>, RequestError> {
        let pool = self.pool;
        let sent = if self.upgrade.is_some() {
            Box::pin(self.send_upgrade()).await
        } else {
            // Lent to the pool's future, not moved into it: every level of a request's
            // futures is copied once per request, so what a level holds counts.
            match pool
                .send(self.req, &self.added, self.response_timeout)
                .await
            {
                Ok(res) => answer(res, self.stats, self.restore, self.client_h2),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = &sent {
            pool.failed(e);
        }
        sent
    }

    /// A WebSocket handshake: once the upstream has accepted it, a task of its own copies
    /// bytes both ways between the client and the upstream.
    async fn send_upgrade(&mut self) -> Result<Response<Body>, RequestError> {
        let mut req = std::mem::replace(self.req, Request::new(RequestBody::Empty));
        self.added.set_in(req.headers_mut());
        let sent = self.pool.send_upgrade(req);
        let mut res = tokio::time::timeout(self.response_timeout, sent)
            .await
            .map_err(|_| RequestError::UpstreamTimeout)??;
        let Some((key, client_side)) = self.upgrade.take() else {
            return Err(not_asked_to_switch());
        };
        let switched = res.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switched && !headers::websocket_accepted(res.headers(), &key) {
            return Err(RequestError::Upstream {
                what: "101 Switching Protocols without Upgrade: websocket and the matching Sec-WebSocket-Accept".into(),
                source: None,
            });
        }
        headers::strip_hop_by_hop(res.headers_mut());
        if switched {
            headers::set_websocket_upgrade(res.headers_mut());
            let upstream_side = hyper::upgrade::on(&mut res);
            let idle = self.tunnel_idle;
            tokio::spawn(async move {
                match tokio::try_join!(client_side, upstream_side) {
                    Ok((c, u)) => {
                        let (c, u) = (TokioIo::new(c), TokioIo::new(u));
                        if let Err(e) = super::tunnel::relay(c, u, idle).await {
                            debug!(error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => warn!(error = %e, "upgrade failed"),
                }
            });
        }
        Ok(res.map(Either::Left))
    }
}

/// The upstream's response to a plain (not upgraded) request, made ready for the client.
fn answer(
    mut res: Response<crate::upstream::UpstreamBody>,
    stats: Option<&Arc<RouteStats>>,
    restore: Option<&str>,
    client_h2: bool,
) -> Result<Response<Body>, RequestError> {
    if let Some(stats) = stats {
        res.body_mut().count_stall_into(stats.clone());
    }
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Err(not_asked_to_switch());
    }
    headers::strip_hop_by_hop(res.headers_mut());
    if let Some(prefix) = restore {
        restore_prefix(res.headers_mut(), prefix);
    }
    if client_h2 {
        headers::detach_values(res.headers_mut());
    }
    Ok(res.map(Either::Left))
}

/// A `Location` that is a path (`/x`, from an app that was sent `/x` by `strip_prefix`)
/// gets the route's prefix back (`/app/x`), so the browser stays under the route. Absolute
/// URLs and network-path references (`//host`) are left alone.
fn restore_prefix(headers: &mut http::HeaderMap, prefix: &str) {
    let Some(location) = headers.get(header::LOCATION) else {
        return;
    };
    let bytes = location.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') || bytes.get(1) == Some(&b'\\') {
        return;
    }
    let mut value = Vec::with_capacity(prefix.len() + bytes.len());
    value.extend_from_slice(prefix.as_bytes());
    value.extend_from_slice(bytes);
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(header::LOCATION, v);
    }
}

/// `path` (normalised: no empty segment but perhaps a final `/`) without its first `n`
/// segments: `/app/x` less one is `/x`; `/app` and `/app/` less one are `/`.
fn without_segments(path: &str, n: usize) -> &str {
    let mut rest = path;
    for _ in 0..n {
        match rest.get(1..).and_then(|r| r.find('/')) {
            Some(i) => rest = &rest[i + 1..],
            None => return "/",
        }
    }
    rest
}

fn not_asked_to_switch() -> RequestError {
    RequestError::Upstream {
        what: "101 Switching Protocols to a request that asked for no upgrade".into(),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_prefix_cuts_whole_segments_of_the_forwarded_path() {
        for (path, n, want) in [
            ("/app/x", 1, "/x"),
            ("/app", 1, "/"),
            ("/app/", 1, "/"),
            ("/a/b/c/", 2, "/c/"),
            ("/app;v=1/a%20b", 1, "/a%20b"),
            ("/x", 0, "/x"),
            ("/", 0, "/"),
        ] {
            assert_eq!(without_segments(path, n), want, "{path} less {n}");
        }
    }

    #[test]
    fn only_path_redirects_get_the_prefix_back() {
        for (location, want) in [
            ("/login?x=1", "/app/login?x=1"),
            ("https://e.com/x", "https://e.com/x"),
            ("//e.com/x", "//e.com/x"),
            ("/\\e.com/x", "/\\e.com/x"),
            ("x", "x"),
        ] {
            let mut h = http::HeaderMap::new();
            h.insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
            restore_prefix(&mut h, "/app");
            assert_eq!(h[header::LOCATION], want, "{location}");
        }
    }
}

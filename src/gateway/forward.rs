//! Forwarding to HTTP(S) upstreams over one pooled keep-alive client: bodies stream both ways,
//! `Upgrade` requests (WebSocket and others) are tunnelled, failures become 502 or 504.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::{debug, warn};

use super::headers;
use super::path::NormalPath;
use super::upstream::Pool;
use crate::error::RequestError;
use crate::pages::Body;

/// Where and how one request goes upstream.
pub struct Upstream<'a> {
    pub pool: &'a Arc<Pool>,
    pub preserve_host: bool,
    pub response_timeout: Duration,
}

/// Sends `req` (already routed, path normalised) to the upstream and returns its response.
pub async fn forward(
    to: Upstream<'_>,
    mut req: Request<Incoming>,
    path: &NormalPath,
    peer: SocketAddr,
    identity: Option<HeaderValue>,
) -> Result<Response<Body>, RequestError> {
    let upgrade = match req.version() {
        Version::HTTP_11 => headers::requested_upgrade(req.headers())
            .map(|protocol| (protocol, hyper::upgrade::on(&mut req))),
        _ => None,
    };
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });

    let mut path_and_query = path.encoded();
    if let Some(q) = req.uri().query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    let path_and_query = PathAndQuery::try_from(path_and_query)
        .map_err(|_| RequestError::BadPath("The request path cannot be forwarded."))?;
    *req.uri_mut() = Uri::from(path_and_query);
    *req.version_mut() = Version::HTTP_11;

    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    headers::strip_reserved(h);
    super::session::strip_own_cookies(h);
    headers::set_forwarded(h, peer.ip(), host.as_ref());
    if let Some(identity) = identity {
        h.insert(headers::X_USER_INFO.clone(), identity);
    }
    match (host, to.preserve_host) {
        (Some(host), true) => h.insert(header::HOST, host),
        _ => h.insert(header::HOST, to.pool.host.clone()),
    };
    if let Some((protocol, _)) = &upgrade {
        headers::set_upgrade(h, protocol.clone());
    }

    let sent = async {
        match &upgrade {
            None => to.pool.send(req).await,
            Some(_) => Box::pin(to.pool.send_upgrade(req)).await,
        }
    };
    let mut res = tokio::time::timeout(to.response_timeout, sent)
        .await
        .map_err(|_| RequestError::UpstreamTimeout)??;

    let switched = res.status() == StatusCode::SWITCHING_PROTOCOLS;
    let res_upgrade = res.headers().get(header::UPGRADE).cloned();
    headers::strip_hop_by_hop(res.headers_mut());
    if switched {
        let (Some((_, client_side)), Some(protocol)) = (upgrade, res_upgrade) else {
            return Err(RequestError::Upstream(
                "101 Switching Protocols to a request that asked for no upgrade".into(),
            ));
        };
        headers::set_upgrade(res.headers_mut(), protocol);
        let upstream_side = hyper::upgrade::on(&mut res);
        tokio::spawn(async move {
            match tokio::try_join!(client_side, upstream_side) {
                Ok((c, u)) => {
                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                        debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => warn!(error = %e, "upgrade failed"),
            }
        });
    }
    Ok(res.map(Either::Left))
}

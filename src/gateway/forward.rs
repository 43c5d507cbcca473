//! Forwarding to HTTP(S) upstreams over one pooled keep-alive client: bodies stream both ways,
//! `Upgrade` requests (WebSocket and others) are tunnelled, failures become 502 or 504.

use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::{debug, warn};

use super::headers;
use super::path::NormalPath;
use crate::config::UpstreamSettings;
use crate::error::{RequestError, StartError};
use crate::pages::Body;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Incoming>;

/// The one upstream client of the process: pooled, HTTP/1.1, no redirects followed.
pub fn client(settings: &UpstreamSettings) -> Result<UpstreamClient, StartError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(crate::tls::provider())
        .map_err(|e| StartError::Tls(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.idle_timeout)
        .build(https))
}

/// Where and how one request goes upstream.
pub struct Upstream<'a> {
    pub scheme: &'a Scheme,
    pub authority: &'a Authority,
    pub preserve_host: bool,
    pub response_timeout: Duration,
}

/// Sends `req` (already routed, path normalised) to the upstream and returns its response.
pub async fn forward(
    client: &UpstreamClient,
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
    *req.uri_mut() = Uri::builder()
        .scheme(to.scheme.clone())
        .authority(to.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| RequestError::BadPath("The request path cannot be forwarded."))?;
    *req.version_mut() = Version::HTTP_11;

    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    headers::strip_reserved(h);
    super::session::strip_own_cookies(h);
    headers::set_forwarded(h, peer.ip(), host.as_ref());
    if let Some(identity) = identity {
        h.insert(headers::X_USER_INFO.clone(), identity);
    }
    match (&host, to.preserve_host) {
        (Some(host), true) => {
            h.insert(header::HOST, host.clone());
        }
        _ => {
            h.remove(header::HOST);
        }
    }
    if let Some((protocol, _)) = &upgrade {
        headers::set_upgrade(h, protocol.clone());
    }

    let mut res = match tokio::time::timeout(to.response_timeout, client.request(req)).await {
        Err(_) => return Err(RequestError::UpstreamTimeout),
        Ok(Err(e)) => return Err(classify(&e)),
        Ok(Ok(res)) => res,
    };

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

/// 504 when the upstream timed out (connecting included), 502 for anything else.
fn classify(e: &hyper_util::client::legacy::Error) -> RequestError {
    let mut source = e.source();
    let mut detail = e.to_string();
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return RequestError::UpstreamTimeout;
        }
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    RequestError::Upstream(detail)
}

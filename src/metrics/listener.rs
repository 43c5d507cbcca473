//! The metrics listener: plain HTTP/1.1, `GET /metrics` (Prometheus text 0.0.4), 404 for any
//! other path. Kept apart from the HTTPS listener so it can stay on a private address.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::Metrics;

/// Serves scrapes on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let res = answer(&req, &metrics);
                async move { Ok::<_, Infallible>(res) }
            });
            let mut h1 = http1::Builder::new();
            h1.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            if let Err(e) = h1.serve_connection(TokioIo::new(tcp), service).await {
                debug!(error = %e, peer = %peer, "metrics connection ended");
            }
        });
    }
}

fn answer(req: &Request<Incoming>, metrics: &Arc<Metrics>) -> Response<Full<Bytes>> {
    let (status, body, kind) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            String::from("not found\n"),
            "text/plain",
        )
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            String::from("GET only\n"),
            "text/plain",
        )
    } else {
        (StatusCode::OK, metrics.render(), super::CONTENT_TYPE)
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    res
}

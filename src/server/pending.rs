//! Connections to a host whose ACME certificate is not there yet: they were served the
//! temporary self-signed certificate, and every request on them gets one clear 503 page
//! instead of the application, until the real certificate is served to new connections.

use std::convert::Infallible;

use http::header::{HeaderValue, RETRY_AFTER};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use super::{slots::Slot, Hold, Http};
use crate::pages;

/// The page: what is going on and that it ends by itself.
fn answer() -> http::Response<pages::Body> {
    let html = pages::page(
        "Certificate being obtained",
        "<p>This site's certificate is being obtained from its certificate authority. \
         Try again in a minute.</p>",
    );
    let mut res = pages::html_page(StatusCode::SERVICE_UNAVAILABLE, &html);
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("30"));
    res
}

/// Answers every request on `tls` with the 503 page, HTTP/2 or HTTP/1.1 by ALPN, until the
/// client leaves or the server shuts down.
pub(super) async fn serve(tls: TlsStream<TcpStream>, http: &Http, hold: Hold, slot: Slot) {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let service = service_fn(|_req: Request<Incoming>| async { Ok::<_, Infallible>(answer()) });
    let stop = hold.stop_signal();
    tokio::pin!(stop);
    let result = if h2 {
        let conn = http.h2.serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = &mut stop => { conn.as_mut().graceful_shutdown(); conn.await }
        }
    } else {
        let conn = http.h1.serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = &mut stop => { conn.as_mut().graceful_shutdown(); conn.await }
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection on a temporary certificate ended");
    }
    drop(slot);
}

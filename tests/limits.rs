//! Connections that hold their slot without using it (SPEC §6.6, issue 10 item 6): HTTP/2
//! connections that only answer PINGs (`limits.idle_timeout`), quiet WebSocket tunnels
//! (`limits.tunnel_idle_timeout`), and one address taking every slot
//! (`limits.max_connections_per_ip`).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{connect, get, tls_config};
use common::{Backend, Gateway};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::Message;

async fn setup(limits: &str) -> (Gateway, Backend) {
    Gateway::before_backend(limits).await
}

/// An HTTP/2 client connection that PINGs the gateway every 200 ms (and answers its PINGs),
/// and the task driving it, which ends when the connection closes.
async fn h2_client(gw: &Gateway) -> (http2::SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let tls = connect(gw.addr, tls_config(&gw.cert_pem(), &[b"h2"]))
        .await
        .expect("connect");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tls))
        .await
        .expect("h2 handshake");
    (send, tokio::spawn(async move { drop(conn.await) }))
}

/// GETs `path` on an HTTP/2 connection; the status and body.
async fn h2_get(send: &mut http2::SendRequest<Empty<Bytes>>, path: &str) -> (u16, String) {
    let req = http::Request::get(format!("https://localhost{path}"))
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.expect("h2 response");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Keeps asking for `/` over new HTTP/1.1 connections until one is answered 200.
async fn served_within(gw: &Gateway, limit: Duration) {
    let deadline = Instant::now() + limit;
    let config = tls_config(&gw.cert_pem(), &[b"http/1.1"]);
    loop {
        if let Ok(mut tls) = connect(gw.addr, config.clone()).await {
            let _ = tls
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(limit, tls.read_to_end(&mut answer)).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new client served in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn quiet_http2_connections_that_answer_pings_give_their_slots_back() {
    let (gw, _backend) = setup("limits: {max_connections: 20, idle_timeout: 1s}\n").await;
    let mut quiet = Vec::new();
    for i in 0..20 {
        let (mut send, task) = h2_client(&gw).await;
        let path = format!("/q{i}");
        assert_eq!(h2_get(&mut send, &path).await.0, 200);
        quiet.push((send, task, Instant::now()));
    }
    // Every slot is held: the 21st client is refused.
    let config = tls_config(&gw.cert_pem(), &[b"http/1.1"]);
    assert!(
        connect(gw.addr, config).await.is_err(),
        "a 21st client got in"
    );
    // Each quiet connection is closed one idle time after its last stream, PINGs or not.
    for (_send, task, last) in quiet {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("a quiet HTTP/2 connection was never closed")
            .unwrap();
        let quiet_for = last.elapsed();
        assert!(
            quiet_for >= Duration::from_millis(900),
            "closed after {quiet_for:?}"
        );
    }
    served_within(&gw, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_http2_connection_with_a_stream_open_is_not_idle() {
    let (gw, _backend) = setup("limits: {idle_timeout: 1s}\n").await;
    let (mut send, task) = h2_client(&gw).await;
    // A request that takes 2.5 idle times, and one after it on the same connection.
    let (status, body) = h2_get(&mut send, "/slow?sleep_ms=2500").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "backend GET /slow?sleep_ms=2500")
    );
    assert_eq!(h2_get(&mut send, "/next").await.0, 200);
    assert!(!task.is_finished());
    let last = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("closed once quiet")
        .unwrap();
    assert!(
        last.elapsed() >= Duration::from_millis(900),
        "{:?}",
        last.elapsed()
    );
}

/// A WebSocket backend that answers the handshake, then only reads; it reports when the
/// gateway closes its side.
async fn silent_ws_backend() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let key = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
                    .map_or("", |(_, value)| value.trim())
                    .to_owned();
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                     Upgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    derive_accept_key(key.as_bytes())
                );
                tcp.write_all(answer.as_bytes()).await.unwrap();
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = closed.send(Instant::now());
            });
        }
    });
    (addr, rx)
}

fn ws_url(gw: &Gateway) -> String {
    format!("wss://localhost:{}/ws", gw.addr.port())
}

#[tokio::test]
async fn a_quiet_websocket_is_closed_on_both_sides() {
    let (upstream, mut closed) = silent_ws_backend().await;
    let gw = Gateway::start_with(
        &format!("  routes:\n    - {{prefix: /, upstream: \"http://{upstream}\"}}\n"),
        "limits: {tunnel_idle_timeout: 1s}\n",
    );
    let tls = connect(gw.addr, tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .await
        .unwrap();
    let (mut ws, res) = tokio_tungstenite::client_async(ws_url(&gw), tls)
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    let opened = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a quiet WebSocket was never closed");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
    let took = opened.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    let upstream_closed = tokio::time::timeout(Duration::from_secs(5), closed.recv())
        .await
        .expect("the upstream side was never closed")
        .unwrap();
    assert!(upstream_closed.duration_since(opened) >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_websocket_with_traffic_stays_open() {
    let (gw, _backend) = setup("limits: {tunnel_idle_timeout: 1s}\n").await;
    let tls = connect(gw.addr, tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(ws_url(&gw), tls)
        .await
        .unwrap();
    // A message every 300 ms for three idle times.
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("echo in time")
            .expect("open")
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    // Then quiet: closed.
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("closed once quiet");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
}

#[tokio::test]
async fn a_websocket_keeps_its_connection_slot() {
    let (gw, _backend) = setup("limits: {max_connections: 2}\n").await;
    let config = tls_config(&gw.cert_pem(), &[b"http/1.1"]);
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let tls = connect(gw.addr, config.clone()).await.unwrap();
        let (ws, res) = tokio_tungstenite::client_async(ws_url(&gw), tls)
            .await
            .unwrap();
        assert_eq!(res.status(), 101);
        tunnels.push(ws);
    }
    // Two tunnels hold both slots; before, an upgrade gave its slot back at once.
    for _ in 0..5 {
        assert!(
            connect(gw.addr, config.clone()).await.is_err(),
            "a third client got in past two open tunnels"
        );
    }
    for ws in &mut tunnels {
        ws.send(Message::text("still here")).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), "still here");
    }
    let mut first = tunnels.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    served_within(&gw, Duration::from_secs(10)).await;
}

/// A TLS connection to the gateway from the local address `from`.
async fn connect_from(
    gw: &Gateway,
    from: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    let tcp = socket.connect(gw.addr).await?;
    tokio_rustls::TlsConnector::from(tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let backend = Backend::start().await;
    // Loopback addresses are trusted proxies by default, and those are not capped.
    let gw = Gateway::start_with(
        &format!(
            "  trusted_proxies: []\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
        "limits: {max_connections_per_ip: 3}\n",
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            connect_from(&gw, "127.0.0.1")
                .await
                .expect("within the cap"),
        );
    }
    for _ in 0..5 {
        assert!(
            connect_from(&gw, "127.0.0.1").await.is_err(),
            "a 4th connection from 127.0.0.1 got in"
        );
    }
    // Another address still gets in, and is served.
    let mut other = connect_from(&gw, "127.0.0.2").await.expect("127.0.0.2");
    other
        .write_all(b"GET /other HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), other.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    // A closed connection gives the address its place back.
    drop(held.pop());
    served_within(&gw, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn trusted_proxies_are_not_capped_per_address() {
    let backend = Backend::start().await;
    let gw = Gateway::start_with(
        &format!(
            "  trusted_proxies: [127.0.0.1]\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
        "limits: {max_connections_per_ip: 2}\n",
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            connect_from(&gw, "127.0.0.1")
                .await
                .expect("a trusted proxy"),
        );
    }
    assert_eq!(get(gw.addr, &gw.cert_pem(), "/", "").await.status, 200);
    // Everyone else is capped.
    let _a = connect_from(&gw, "127.0.0.3").await.unwrap();
    let _b = connect_from(&gw, "127.0.0.3").await.unwrap();
    assert!(connect_from(&gw, "127.0.0.3").await.is_err());
}

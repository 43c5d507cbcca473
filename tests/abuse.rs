//! Resource abuse (SPEC §6.5): slow headers, huge headers, many connections, stalled TLS.
//! Each attack is bounded by a limit, and the gateway keeps serving others meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::client::{connect, get, tls_config};
use common::{Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn setup(limits: &str) -> (Gateway, Backend) {
    Gateway::before_backend(limits).await
}

/// Reads until the peer closes; returns how long that took, failing after `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off_by_the_header_timeout() {
    let (gw, backend) = setup("limits: {header_read_timeout: 1s}\n").await;
    let cert = gw.cert_pem();
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut tls = connect(gw.addr, tls_config(&cert, &[b"http/1.1"]))
            .await
            .unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        slow.push(tls);
    }
    // Others are served while the slow clients dribble.
    assert_eq!(get(gw.addr, &cert, "/", "").await.status, 200);
    for tls in &mut slow {
        let _ = tls.write_all(b"a").await;
        let (took, _) = closed_within(tls, Duration::from_secs(10)).await;
        assert!(took < Duration::from_secs(10));
    }
    assert_eq!(backend.count(), 1, "no slow request may reach the backend");
}

#[tokio::test]
async fn huge_headers_are_refused() {
    let (gw, backend) = setup("limits: {max_header_bytes: 16384}\n").await;
    let cert = gw.cert_pem();
    let big = "a".repeat(64 * 1024);
    let mut tls = connect(gw.addr, tls_config(&cert, &[b"http/1.1"]))
        .await
        .unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
    let _ = tls.write_all(request.as_bytes()).await;
    let (_, answer) = closed_within(&mut tls, Duration::from_secs(10)).await;
    if !answer.is_empty() {
        let head = String::from_utf8_lossy(&answer);
        assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    }
    // Many headers of moderate size add up the same way.
    let many: String = (0..400)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(60)))
        .collect();
    let mut tls = connect(gw.addr, tls_config(&cert, &[b"http/1.1"]))
        .await
        .unwrap();
    let _ = tls
        .write_all(format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many}\r\n").as_bytes())
        .await;
    let (_, answer) = closed_within(&mut tls, Duration::from_secs(10)).await;
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"));
    // Over HTTP/2 too.
    let res = gw
        .client()
        .get(gw.url("/"))
        .header("x-big", &big)
        .send()
        .await;
    assert!(
        res.map_or(true, |r| r.status() == 431),
        "an h2 request with 64 KB of headers was accepted"
    );
    assert_eq!(
        backend.count(),
        0,
        "no oversized request may reach the backend"
    );
    assert_eq!(get(gw.addr, &cert, "/", "").await.status, 200);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_and_served_again_after() {
    let (mut gw, _backend) = setup("limits: {max_connections: 8}\n").await;
    let cert = gw.cert_pem();
    let config = tls_config(&cert, &[b"http/1.1"]);
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            connect(gw.addr, config.clone())
                .await
                .expect("within the limit"),
        );
    }
    let mut refused = 0;
    for _ in 0..20 {
        if connect(gw.addr, config.clone()).await.is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 20, "connections over the limit must be refused");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut tls) = connect(gw.addr, config.clone()).await {
            tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let (_, answer) = closed_within(&mut tls, Duration::from_secs(10)).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never served again after the held connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.running());
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_dropped_after_the_handshake_timeout() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: data\n\
             tls: {{self_signed: true, handshake_timeout: 1s}}\n\
             gateway:\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
    )
    .unwrap();
    let gw = Gateway::spawn(dir.path().to_owned(), Some(dir), &config);
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    let mut half = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    half.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .await
        .unwrap();
    idle.push(half);
    assert_eq!(get(gw.addr, &gw.cert_pem(), "/", "").await.status, 200);
    for tcp in &mut idle {
        let (took, _) = closed_within(tcp, Duration::from_secs(10)).await;
        assert!(took < Duration::from_secs(10));
    }
}

//! HTTP/1.1 keep-alive connections that pause. After a quiet spell the gateway frees hyper's
//! buffers and waits holding only the TLS state (`src/server/h1.rs`); the connection must go on
//! exactly where it was: pipelined and half-sent requests, uploads, upgrades, `Connection:
//! close`, the idle limit and shutdown all behave as on a connection that never paused.

mod common;

use std::time::{Duration, Instant};

use common::client::{connect, parse, tls_config, RawResponse};
use common::{Backend, Gateway};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// Longer than the quiet spell after which a connection's round ends (250 ms).
const PAUSE: Duration = Duration::from_millis(600);

async fn setup(top_yaml: &str) -> (Gateway, Backend) {
    Gateway::before_backend(top_yaml).await
}

/// A TLS connection to the gateway speaking HTTP/1.1.
async fn open(gw: &Gateway) -> TlsStream<TcpStream> {
    connect(gw.addr, tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .await
        .expect("connect")
}

/// Reads one response (with a `content-length`) off `stream`; bytes after it stay in `buf`.
async fn next_response(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> RawResponse {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse(&buf[..end + 4]);
            let len: usize = head
                .header("content-length")
                .expect("content-length")
                .parse()
                .unwrap();
            if buf.len() >= end + 4 + len {
                let res = parse(&buf[..end + 4 + len]);
                buf.drain(..end + 4 + len);
                return res;
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
            .await
            .expect("a response within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "connection closed; got so far: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `GET path` on `tls` and checks the backend's answer to it.
async fn ask(tls: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>, path: &str) {
    tls.write_all(get(path).as_bytes()).await.unwrap();
    assert_answered(&next_response(tls, buf).await, path);
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

fn assert_answered(res: &RawResponse, path: &str) {
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        String::from_utf8_lossy(&res.body),
        format!("backend GET {path}")
    );
}

#[tokio::test]
async fn requests_after_pauses_use_the_same_connection() {
    let (gw, backend) = setup("").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    for i in 0..4 {
        let path = format!("/paused/{i}");
        ask(&mut tls, &mut buf, &path).await;
        tokio::time::sleep(PAUSE).await;
    }
    assert_eq!(backend.count(), 4);
}

#[tokio::test]
async fn pipelined_requests_after_a_pause_are_answered_in_order() {
    let (gw, _backend) = setup("").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    ask(&mut tls, &mut buf, "/first").await;
    tokio::time::sleep(PAUSE).await;
    let three = [get("/a"), get("/b"), get("/c")].concat();
    tls.write_all(three.as_bytes()).await.unwrap();
    for path in ["/a", "/b", "/c"] {
        assert_answered(&next_response(&mut tls, &mut buf).await, path);
    }
    // Two requests in one write, the second cut in half, and a pause before its rest: the half
    // is read ahead while the round is still open and must survive the round's end.
    let two = [get("/d"), get("/e-is-split")].concat();
    let cut = two.len() - 10;
    tls.write_all(&two.as_bytes()[..cut]).await.unwrap();
    assert_answered(&next_response(&mut tls, &mut buf).await, "/d");
    tokio::time::sleep(PAUSE).await;
    tls.write_all(&two.as_bytes()[cut..]).await.unwrap();
    assert_answered(&next_response(&mut tls, &mut buf).await, "/e-is-split");
}

#[tokio::test]
async fn a_request_head_split_by_pauses_is_not_lost() {
    let (gw, backend) = setup("").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    ask(&mut tls, &mut buf, "/one").await;
    // Right after an answer, before the round can end.
    let two = get("/two");
    tls.write_all(&two.as_bytes()[..7]).await.unwrap();
    tokio::time::sleep(PAUSE).await;
    tls.write_all(&two.as_bytes()[7..]).await.unwrap();
    assert_answered(&next_response(&mut tls, &mut buf).await, "/two");
    // After the round has ended: the first bytes start a new one.
    tokio::time::sleep(PAUSE).await;
    let three = get("/three");
    for piece in three.as_bytes().chunks(12) {
        tls.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_answered(&next_response(&mut tls, &mut buf).await, "/three");
    assert_eq!(backend.count(), 3);
}

#[tokio::test]
async fn uploads_and_upgrades_around_pauses() {
    let (gw, backend) = setup("").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    let body = "x".repeat(100_000);
    let upload = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(upload.as_bytes()).await.unwrap();
    let res = next_response(&mut tls, &mut buf).await;
    assert_eq!((res.status, res.body.as_slice()), (200, &b"100000"[..]));
    tokio::time::sleep(PAUSE).await;
    // A chunked upload whose body comes after a pause.
    tls.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    tokio::time::sleep(PAUSE).await;
    tls.write_all(b"6\r\n world\r\n0\r\n\r\n").await.unwrap();
    let res = next_response(&mut tls, &mut buf).await;
    assert_eq!((res.status, res.body.as_slice()), (200, &b"11"[..]));
    tokio::time::sleep(PAUSE).await;
    tls.write_all(get("/after-uploads").as_bytes())
        .await
        .unwrap();
    assert_answered(&next_response(&mut tls, &mut buf).await, "/after-uploads");
    tokio::time::sleep(PAUSE).await;
    assert!(buf.is_empty());

    // The same connection, paused, then upgraded to a WebSocket.
    let url = format!("wss://localhost:{}/ws", gw.addr.port());
    let (mut ws, res) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(res.status(), 101);
    for text in ["after a pause", "and another"] {
        ws.send(Message::text(text)).await.unwrap();
        tokio::time::sleep(PAUSE).await;
        let echo = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo in time")
            .expect("a message")
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
    assert_eq!(backend.count(), 4);
}

#[tokio::test]
async fn a_body_left_unread_by_an_early_answer_is_never_read_as_a_request() {
    let (gw, backend) = setup("").await;
    let mut tls = open(&gw).await;
    // The gateway answers 400 to the path without reading the body; the body, sent after a
    // pause, is a request of its own.
    let smuggled = get("/smuggled");
    let head = format!(
        "POST /a%2Fb HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let res = next_response(&mut tls, &mut buf).await;
    assert_eq!(res.status, 400);
    tokio::time::sleep(PAUSE).await;
    let _ = tls.write_all(smuggled.as_bytes()).await;
    tokio::time::sleep(PAUSE).await;
    // Whatever the connection does with those bytes (hyper reads them as the body, or closes),
    // they must not reach the backend as a request.
    let _ = tokio::time::timeout(Duration::from_secs(1), tls.read_to_end(&mut buf)).await;
    let targets: Vec<String> = backend.seen().into_iter().map(|s| s.target).collect();
    assert!(!targets.iter().any(|t| t == "/smuggled"), "{targets:?}");
}

/// CPU time (user + system, clock ticks) the gateway process has used.
fn cpu_ticks(gw: &Gateway) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", gw.pid())).expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_costs_no_cpu() {
    let (gw, _backend) = setup("").await;
    // A small receive window and no reads: the end of the response cannot be flushed, and the
    // round must not be ended (nor retried in a loop) while it waits.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(gw.addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(get("/download?bytes=3000000").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(&gw);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(&gw) - before;
    // A spinning task takes about 200 ticks in 2 s; an idle gateway none.
    assert!(
        used < 40,
        "the gateway used {used} ticks in 2 s with a stalled reader"
    );
    // The response is intact once the client reads again.
    let mut body = 0usize;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    while body < 3_000_000 {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut chunk))
            .await
            .expect("the download goes on")
            .unwrap();
        assert!(n > 0, "closed after {body} body bytes");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            body = buf.len() - end - 4;
        }
    }
    assert_eq!(body, 3_000_000);
}

#[tokio::test]
async fn an_upgrade_that_was_refused_keeps_the_connection() {
    let (gw, _backend) = setup("").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    // hyper prepares an upgrade for any `Upgrade` header; the answer is a plain 200.
    tls.write_all(
        b"GET /plain HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    assert_answered(&next_response(&mut tls, &mut buf).await, "/plain");
    tokio::time::sleep(PAUSE).await;
    ask(&mut tls, &mut buf, "/next").await;
    // hyper keeps a refused upgrade until its connection ends, through later requests too.
    tls.write_all(b"OPTIONS /again HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(next_response(&mut tls, &mut buf).await.status, 200);
    ask(&mut tls, &mut buf, "/then").await;
    tokio::time::sleep(PAUSE).await;
    ask(&mut tls, &mut buf, "/last").await;
}

/// Reads until the server closes; what it sent, and how long that took.
async fn until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "connection still open after {limit:?}");
    (started.elapsed(), got)
}

#[tokio::test]
async fn connection_close_after_a_pause_closes() {
    let (gw, _backend) = setup("").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    ask(&mut tls, &mut buf, "/one").await;
    tokio::time::sleep(PAUSE).await;
    tls.write_all(b"GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, rest) = until_closed(&mut tls, Duration::from_secs(5)).await;
    buf.extend_from_slice(&rest);
    let res = parse(&buf);
    assert_answered(&res, "/last");
    assert_eq!(res.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_client_closing_a_quiet_connection_gets_a_clean_close() {
    let (gw, _backend) = setup("").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    ask(&mut tls, &mut buf, "/one").await;
    tokio::time::sleep(PAUSE).await;
    // close_notify and FIN from the client; the gateway answers with its own close_notify
    // (without it, rustls reports an unexpected EOF).
    tls.shutdown().await.unwrap();
    let mut chunk = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut chunk))
        .await
        .expect("closed within 5 s");
    assert!(matches!(read, Ok(0)), "{read:?}");
}

#[tokio::test]
async fn a_quiet_connection_is_closed_after_the_keep_alive_time() {
    let (gw, _backend) = setup("limits: {header_read_timeout: 1s}\n").await;
    let mut tls = open(&gw).await;
    let mut buf = Vec::new();
    ask(&mut tls, &mut buf, "/one").await;
    let (took, rest) = until_closed(&mut tls, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        took >= Duration::from_millis(800),
        "closed after {took:?}, before the keep-alive time"
    );
    // A connection that never sends anything gets the same time.
    let mut silent = open(&gw).await;
    let (took, _) = until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(800), "{took:?}");
}

#[tokio::test]
async fn sigterm_closes_quiet_connections_at_once() {
    let (mut gw, _backend) = setup("").await;
    let mut quiet = Vec::new();
    for i in 0..20 {
        let mut tls = open(&gw).await;
        let mut buf = Vec::new();
        let path = format!("/q{i}");
        ask(&mut tls, &mut buf, &path).await;
        quiet.push(tls);
    }
    // After an upload the round stays with hyper, which must be told to stop too.
    let mut tls = open(&gw).await;
    tls.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc")
        .await
        .unwrap();
    let res = next_response(&mut tls, &mut Vec::new()).await;
    assert_eq!((res.status, res.body.as_slice()), (200, &b"3"[..]));
    quiet.push(tls);
    tokio::time::sleep(PAUSE).await;
    let started = Instant::now();
    gw.terminate();
    for tls in &mut quiet {
        until_closed(tls, Duration::from_secs(5)).await;
    }
    let exit = gw.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit}");
    // The grace period is 10 s: nothing waited for it.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(gw
        .log()
        .iter()
        .any(|l| l.contains("all connections drained")));
}

#[tokio::test]
async fn quiet_keep_alive_connections_hold_little_memory() {
    const CONNS: usize = 400;
    let (gw, _backend) = setup("").await;
    let config = tls_config(&gw.cert_pem(), &[b"http/1.1"]);
    // Warm up: the runtime, the upstream pool, the allocator's first arenas.
    for _ in 0..20 {
        let mut tls = connect(gw.addr, config.clone()).await.unwrap();
        let mut buf = Vec::new();
        tls.write_all(get("/warm").as_bytes()).await.unwrap();
        next_response(&mut tls, &mut buf).await;
    }
    tokio::time::sleep(PAUSE).await;
    let before = gw.memory_kb("VmRSS");
    let mut open = Vec::new();
    for i in 0..CONNS {
        let mut tls = connect(gw.addr, config.clone()).await.unwrap();
        let mut buf = Vec::new();
        let path = format!("/c{i}");
        ask(&mut tls, &mut buf, &path).await;
        open.push(tls);
    }
    tokio::time::sleep(2 * PAUSE).await;
    let per_conn = (gw.memory_kb("VmRSS").saturating_sub(before)) as f64 / CONNS as f64;
    // Holding hyper's buffers it was about 27 KiB a connection; without them, about 13.
    assert!(
        per_conn < 20.0,
        "{per_conn:.1} KiB per quiet keep-alive connection"
    );
    // And they all still work.
    let mut buf = Vec::new();
    for (i, tls) in open.iter_mut().enumerate().step_by(40) {
        let path = format!("/again{i}");
        ask(tls, &mut buf, &path).await;
    }
}

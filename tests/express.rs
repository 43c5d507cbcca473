//! The HTTP/1.1 express lane (`src/server/express.rs`) seen from a raw TLS client: what it
//! takes is answered exactly as hyper answers it (hyper still serves the same request sent with
//! `Connection: close`, which the lane declines: the oracle), and what it declines (bodies,
//! smuggling attempts, malformed heads, upgrades, oversized or trickled heads) is hyper's.

mod common;

use std::time::{Duration, Instant};

use common::client::tls_config;
use common::client::RawResponse as Res;
use common::wire::{comparable, open, WAIT};
use common::{Backend, Gateway};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

async fn setup(top_yaml: &str) -> (Gateway, Backend) {
    Gateway::before_backend(top_yaml).await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// `request` with `Connection: close` added at the end of its head.
fn closing(request: &str) -> String {
    match request.find("\r\n\r\n") {
        Some(_) => request.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1),
        None => request.replacen("\n\n", "\nConnection: close\n\n", 1),
    }
}

/// `request` answered on a fresh connection, then by hyper (the same request with
/// `Connection: close`, which the lane never takes). The lane's connection stays usable.
async fn lane_and_hyper(gw: &Gateway, request: &str, head: bool) -> (Res, Res) {
    let mut lane = open(gw).await;
    lane.send(request.as_bytes()).await;
    let ours = lane.response(head).await;
    lane.send(get("/still-open").as_bytes()).await;
    assert_eq!(
        lane.response(false).await.status,
        200,
        "the connection went on"
    );
    let mut hyper = open(gw).await;
    hyper.send(closing(request).as_bytes()).await;
    let mut theirs = hyper.response(head).await;
    assert!(
        hyper.closed_within(WAIT).await,
        "hyper closes after {request:?}"
    );
    // hyper announces the close it was asked for.
    let close = ("connection".to_owned(), "close".to_owned());
    theirs.headers.retain(|h| *h != close);
    (comparable(ours), comparable(theirs))
}

#[tokio::test]
async fn what_the_lane_takes_is_answered_as_hyper_answers_it() {
    let (gw, backend) = setup("").await;
    for (request, head) in [
        (get("/plain?q=1"), false),
        ("HEAD /plain HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(), true),
        (get("/redirect?to=/x"), false),
        (get("/cacheable"), false),
        (get("/download?bytes=300000"), false),
        (get("/download?bytes=300000&chunked=1"), false),
        (get("/download?bytes=0&chunked=1"), false),
        // Bare line feeds: hyper's parser takes them, so the lane does.
        ("GET /lf HTTP/1.1\nHost: localhost\nX-A: 1\n\n".to_owned(), false),
        // The gateway's own answers: a bad path, and the id a client sends.
        (get("/%2e%2e/%2e%2e/etc"), false),
        ("GET /id HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: abc\r\nConnection: keep-alive\r\n\r\n".to_owned(), false),
    ] {
        let (ours, theirs) = lane_and_hyper(&gw, &request, head).await;
        assert_eq!(ours, theirs, "{request:?}");
    }
    let seen = backend.seen();
    let lf = seen
        .iter()
        .find(|s| s.target == "/lf")
        .expect("/lf reached the backend");
    assert_eq!(lf.headers["x-a"], "1");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_many_on_one_connection() {
    let (gw, backend) = setup("").await;
    let mut conn = open(&gw).await;
    let head = "HEAD /b HTTP/1.1\r\nHost: localhost\r\n\r\n";
    conn.send([get("/a"), head.to_owned(), get("/c")].concat().as_bytes())
        .await;
    for (path, is_head) in [("/a", false), ("/b", true), ("/c", false)] {
        let res = conn.response(is_head).await;
        assert_eq!(res.status, 200);
        let expected = if is_head {
            String::new()
        } else {
            format!("backend GET {path}")
        };
        assert_eq!(String::from_utf8_lossy(&res.body), expected);
    }
    for i in 0..300 {
        conn.send(get(&format!("/n/{i}")).as_bytes()).await;
        let res = conn.response(false).await;
        assert_eq!(
            String::from_utf8_lossy(&res.body),
            format!("backend GET /n/{i}")
        );
    }
    assert_eq!(backend.count(), 303);
    // A large body streamed, both ways, on the same connection.
    for path in [
        "/download?bytes=3000000",
        "/download?bytes=3000001&chunked=1",
    ] {
        conn.send(get(path).as_bytes()).await;
        let res = conn.response(false).await;
        assert!(res.body.len() >= 3_000_000 && res.body.iter().all(|&b| b == 0));
    }
    // The client asks to close: answered, then closed.
    conn.send(b"GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(conn.response(false).await.status, 200);
    assert!(conn.closed_within(WAIT).await);
}

/// `GET /smuggled` hidden where only a lenient parser would find a request.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn what_the_lane_declines_is_hypers_and_smuggles_nothing() {
    let (gw, backend) = setup("").await;
    let chunk = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let cases = [
        // A GET with a body: the body is a body.
        (format!("GET /cl HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len()), Some(200)),
        (format!("GET /te HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"), Some(200)),
        (format!("GET /clte HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"), Some(200)),
        (format!("GET /fold HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n{SMUGGLED}"), Some(400)),
        (format!("GET /bad HTTP/1.1\r\nHost: localhost\r\nX-A: a\x01b\r\n\r\n{SMUGGLED}"), Some(400)),
        (format!("GET /space HTTP/1.1\r\nHost : localhost\r\n\r\n{SMUGGLED}"), Some(400)),
        ("GET http://localhost/abs HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(), None),
        ("GET /two-hosts HTTP/1.1\r\nHost: localhost\r\nHost: other\r\n\r\n".to_owned(), None),
    ];
    for (request, status) in cases {
        let mut conn = open(&gw).await;
        conn.send(request.as_bytes()).await;
        let res = conn.response(false).await;
        if let Some(status) = status {
            assert_eq!(res.status, status, "{request:?}");
        }
        // Whatever hyper makes of it, it makes of it with `Connection: close` too.
        let mut hyper = open(&gw).await;
        hyper.send(closing(&request).as_bytes()).await;
        assert_eq!(
            hyper.response(false).await.status,
            res.status,
            "{request:?}"
        );
    }
    let seen = backend.seen();
    assert!(
        seen.iter().all(|s| s.target != "/smuggled"),
        "a smuggled request reached the backend"
    );
    let cl = seen
        .iter()
        .find(|s| s.target == "/cl")
        .expect("/cl was forwarded");
    assert_eq!(cl.headers["content-length"], SMUGGLED.len().to_string());
}

#[tokio::test]
async fn oversized_and_trickled_heads_are_cut_as_hyper_cuts_them() {
    let limits = "limits: {max_header_bytes: 16384, header_read_timeout: 1s}\n";
    let (gw, backend) = setup(limits).await;
    let mut conn = open(&gw).await;
    let big = "a".repeat(20 * 1024);
    conn.send(format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let answer = conn.through(b"\r\n").await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // A head that keeps coming, a byte at a time, is cut off a second after it began.
    let mut conn = open(&gw).await;
    let started = Instant::now();
    conn.send(b"GET /slow HTTP/1.1\r\n").await;
    let mut closed = false;
    for _ in 0..40 {
        if conn.tls.write_all(b"X-Slow: 1\r\n").await.is_err()
            || conn.closed_within(Duration::from_millis(200)).await
        {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "a trickled head was not cut off");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(backend.count(), 0);
}

#[tokio::test]
async fn a_websocket_upgrade_goes_to_hyper_after_lane_requests() {
    let (gw, _backend) = setup("").await;
    let mut conn = open(&gw).await;
    conn.send(get("/before").as_bytes()).await;
    assert_eq!(conn.response(false).await.status, 200);
    let url = format!("wss://localhost:{}/ws", gw.addr.port());
    let (mut ws, res) = tokio_tungstenite::client_async(url, conn.tls)
        .await
        .expect("upgrade");
    assert_eq!(res.status(), 101);
    ws.send(Message::text("over the lane's connection"))
        .await
        .expect("send");
    let echo = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time");
    let echo = echo.expect("a message").expect("a frame");
    assert_eq!(
        echo.into_text().expect("text").as_str(),
        "over the lane's connection"
    );
}

/// A blocking TLS client for byte-level pacing: the handshake done, reads waiting at most
/// 100 ms (they pace the tests' loops).
fn raw_tls(gw: &Gateway) -> (std::net::TcpStream, rustls::ClientConnection) {
    let config = tls_config(&gw.cert_pem(), &[b"http/1.1"]);
    let mut tcp = std::net::TcpStream::connect(gw.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let name = "localhost".try_into().expect("name");
    let mut tls = rustls::ClientConnection::new(config, name).expect("client");
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).expect("handshake");
    }
    (tcp, tls)
}

/// `text` sealed into the TLS record(s) that carry it, not yet sent.
fn seal(tls: &mut rustls::ClientConnection, text: &str) -> Vec<u8> {
    use std::io::Write;
    tls.writer().write_all(text.as_bytes()).expect("plaintext");
    let mut bytes = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut bytes).expect("record");
    }
    bytes
}

/// Whether the server has closed: a read finds the end, an alert or a reset (the server's
/// session tickets and a read timing out are not).
fn closed(tcp: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut answer = [0u8; 4096];
    match tcp.read(&mut answer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_record_dribbled_byte_by_byte_is_cut_at_header_read_timeout() {
    let (gw, backend) = setup("limits: {header_read_timeout: 1s}\n").await;
    let (mut tcp, mut tls) = raw_tls(&gw);
    let took = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        // One record holding a whole request, sent three bytes at a time: until its last
        // byte nothing of it can be decrypted.
        let record = seal(&mut tls, &get("/dribbled"));
        let started = Instant::now();
        for piece in record.chunks(3) {
            // The read after each piece paces the dribble too.
            if tcp.write_all(piece).is_err() || closed(&mut tcp) {
                return started.elapsed();
            }
        }
        panic!("the whole record went through ({} bytes)", record.len());
    })
    .await
    .expect("client");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(backend.count(), 0);
}

/// A review finding: a client that held back the last byte of a TLS record for most of
/// `header_read_timeout`, then sent the head's lines slowly, had the whole timeout again from
/// that byte. The head's time runs from the first byte the client sent.
#[tokio::test]
async fn a_record_held_back_does_not_restart_the_heads_time() {
    let (gw, backend) = setup("limits: {header_read_timeout: 1s}\n").await;
    let (mut tcp, mut tls) = raw_tls(&gw);
    let took = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let first = seal(&mut tls, "GET /held HTTP/1.1\r\n");
        let started = Instant::now();
        let (most, last) = first.split_at(first.len() - 1);
        tcp.write_all(most).expect("most of the record");
        while started.elapsed() < Duration::from_millis(800) {
            if closed(&mut tcp) {
                return started.elapsed();
            }
        }
        if tcp.write_all(last).is_err() {
            return started.elapsed();
        }
        for i in 0..40 {
            let line = seal(&mut tls, &format!("X-Line-{i}: v\r\n"));
            if tcp.write_all(&line).is_err() || closed(&mut tcp) {
                return started.elapsed();
            }
        }
        panic!(
            "the head was still being read after {:?}",
            started.elapsed()
        );
    })
    .await
    .expect("client");
    // Before the fix the connection lived about 1.8 s: 0.8 s held, then a whole second more.
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(backend.count(), 0);
}

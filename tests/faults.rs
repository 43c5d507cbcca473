//! Faults and slow peers (issue 20): uploads longer than `response_timeout`, uploads and
//! response bodies that stall mid-way, and trickled posts to the gateway's own forms.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::backend::stalling_mid_body;
use common::client::{connect, tls_config};
use common::{Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

/// A request body of `chunks` times 64 KiB, one chunk every `every`.
fn throttled(chunks: usize, every: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0, move |i| async move {
        if i == chunks {
            return None;
        }
        tokio::time::sleep(every).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 64 * 1024])),
            i + 1,
        ))
    });
    reqwest::Body::wrap_stream(stream)
}

/// Issue 20 item 1: the deadline used to run from the start of the request, so an upload
/// longer than `response_timeout` got a 504 half way while the backend was still reading.
#[tokio::test]
async fn an_upload_longer_than_the_response_timeout_gets_through() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  upstream: {{response_timeout: 2s}}\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    // 10 MiB at about 1 MiB/s (16 chunks of 64 KiB a second), over both protocols at once.
    let uploads = gw.both_protocols().map(|client| {
        let url = gw.url("/upload");
        async move {
            let started = Instant::now();
            let res = client
                .post(url)
                .body(throttled(10 * MIB / (64 * 1024), Duration::from_millis(62)))
                .send()
                .await
                .expect("upload answered");
            (
                res.status().as_u16(),
                res.text().await.unwrap(),
                started.elapsed(),
            )
        }
    });
    let [a, b] = uploads;
    let (a, b) = tokio::join!(a, b);
    for (status, body, took) in [a, b] {
        assert_eq!(status, 200, "{body}");
        // The backend counted every byte it read.
        assert_eq!(body, (10 * MIB).to_string());
        assert!(took > Duration::from_secs(4), "not throttled: {took:?}");
    }
}

/// A request head promising `length` bytes and `sent` of them, then silence; the answer's
/// status line and how long it took.
async fn stalled_upload(gw: &Gateway, length: usize, sent: usize) -> (String, Duration) {
    let config = tls_config(&gw.cert_pem(), &[b"http/1.1"]);
    let mut tls = connect(gw.addr, config).await.expect("connect");
    let head =
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n");
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&vec![b'a'; sent]).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to a stalled upload within 15 s");
    let text = String::from_utf8_lossy(&answer);
    (
        text.lines().next().unwrap_or("").to_owned(),
        started.elapsed(),
    )
}

/// Issue 20 item 1: an upload that brings nothing for `limits.body_idle_timeout` is cut
/// with 408 (nginx's `client_body_timeout`), well before `response_timeout`.
#[tokio::test]
async fn a_stalled_upload_is_cut_after_the_body_idle_timeout() {
    let backend = Backend::start().await;
    let gw = Gateway::start_with(
        &format!(
            "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
        "limits: {body_idle_timeout: 1s}\n",
    );
    let (status, took) = stalled_upload(&gw, 100_000, 1000).await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert!(
        took >= Duration::from_millis(900),
        "cut too early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "cut too late: {took:?}");
    // The backend saw the request, never its whole body, and the gateway goes on serving.
    assert_eq!(backend.count(), 1);
    assert_eq!(gw.text("/fine").await, "backend GET /fine");
}

/// Issue 20 item 3: a backend that goes silent mid-body held the client (and an upstream
/// connection) for ever. It is cut after `limits.upstream_body_idle_timeout`: the client
/// gets an incomplete body, never one that looks whole, and the upstream connection closes.
#[tokio::test]
async fn a_response_body_that_stalls_is_cut() {
    let (stalling, closed) = stalling_mid_body().await;
    let backend = Backend::start().await;
    let gw = Gateway::start_with(
        &format!(
            "  routes:\n    - {{prefix: /stall, upstream: \"http://{stalling}\"}}\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
        "limits: {upstream_body_idle_timeout: 1s}\nmetrics: {listen: \"127.0.0.1:0\"}\n",
    );
    for (i, client) in gw.both_protocols().into_iter().enumerate() {
        let started = Instant::now();
        let res = client.get(gw.url("/stall")).send().await.expect("head");
        assert_eq!(res.status(), 200);
        let body = tokio::time::timeout(Duration::from_secs(10), res.bytes()).await;
        let took = started.elapsed();
        let body = body.expect("the stalled body was not cut within 10 s");
        assert!(body.is_err(), "a cut body must be an error, got {body:?}");
        assert!(
            took >= Duration::from_millis(900),
            "cut too early: {took:?}"
        );
        // The upstream connection was closed too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while closed.load(Ordering::SeqCst) < i + 1 {
            assert!(Instant::now() < deadline, "upstream connection left open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            client.get(gw.url("/ok")).send().await.unwrap().status(),
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.running_log_has("kind=\"body_stalled\"") && !gw.running_log_has("kind=body_stalled") {
        assert!(Instant::now() < deadline, "no warning: {:#?}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Counted for its route, after the 200 the client had already received.
    let scrape = gw.scrape().await;
    assert!(
        scrape.contains(
            "oauthgate_upstream_errors_total{route=\"/stall\",kind=\"body_stalled\"} 2\n"
        ),
        "{scrape}"
    );
}

/// Sends a POST head for `path` with `headers`, promising `length` body bytes, then one
/// body byte a second; the status line of the answer and when it came.
async fn trickled_post(
    gw: &Gateway,
    path: &str,
    headers: &str,
    length: usize,
) -> (String, Duration) {
    let config = tls_config(&gw.cert_pem(), &[b"http/1.1"]);
    let mut tls = connect(gw.addr, config).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         {headers}Content-Length: {length}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        for _ in 0..length {
            if write.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), read.read(&mut answer)).await;
    trickle.abort();
    let n = read.expect("no answer within 20 s").expect("read");
    let text = String::from_utf8_lossy(&answer[..n]);
    (
        text.lines().next().unwrap_or("").to_owned(),
        started.elapsed(),
    )
}

/// Issue 20 item 4: the gateway's own forms waited for a trickled body as long as the
/// client liked (10 s, then 36–48 s seen), and `/oauth/dev` read the body before looking at
/// its state. Now a form has 5 s to arrive, and what can be refused without it is.
#[tokio::test]
async fn trickled_form_posts_are_cut_and_bad_states_refused_at_once() {
    let w = common::flow::World::start("    - {prefix: /, upstream: BACKEND}\n", "").await;
    // A round-trip cookie present (any will do for the cheap check): the body is read, and
    // cut once the form's 5 s are over.
    let cookie = "Cookie: __Host-oauthgate-central-abcdefgh=x\r\n";
    let (status, took) = trickled_post(&w.central, "/oauth/dev", cookie, 100).await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert!(
        took >= Duration::from_millis(4500),
        "cut too early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "cut too late: {took:?}");
    // A state named in the action that this browser never started, or no round trip at
    // all: refused before the body.
    for (path, headers) in [
        ("/oauth/dev?state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", cookie),
        ("/oauth/dev", ""),
    ] {
        let (status, took) = trickled_post(&w.central, path, headers, 100).await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{path}");
        assert!(took < Duration::from_secs(1), "{path} waited {took:?}");
    }
    // The logout form of a logged-in browser, trickled: cut within the same limit.
    let b = w.browser();
    b.log_in(&w.gateway.url("/"), "alice", "alice@example.com")
        .await;
    assert_eq!(b.userinfo_status(&w.gateway).await, 200);
    let cookies = format!("Cookie: {}\r\n", b.cookies(&w.gateway.url("/")));
    let (status, took) = trickled_post(&w.gateway, "/_auth/logout", &cookies, 100).await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert!(took < Duration::from_secs(8), "cut too late: {took:?}");
    // The whole login still works through the form (its action names the state).
    let b = w.browser();
    let (landed, res) = b.log_in(&w.gateway.url("/x"), "bob", "").await;
    assert_eq!(landed.path(), "/x");
    assert_eq!(res.status(), 200);
}

/// An upload whose upstream read it all and never answered: 504 after `response_timeout`
/// from the end of the body, and the upstream connection is closed (as for a bodiless
/// request), not held until the upstream gives up.
#[tokio::test]
async fn an_unanswered_upload_is_a_504_and_its_connection_closed() {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let count = closed.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                // Reads everything (head and body) and never answers.
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let gw = Gateway::start(&format!(
        "  upstream: {{response_timeout: 1s}}\n  routes:\n    - {{prefix: /, upstream: \"http://{upstream}\"}}\n"
    ));
    let started = Instant::now();
    let res = gw
        .client()
        .post(gw.url("/upload"))
        .body(vec![b'u'; 100_000])
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(8));
    let deadline = Instant::now() + Duration::from_secs(5);
    while closed.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream connection was kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

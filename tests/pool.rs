//! Upstream keep-alive connections: reused, never handed on mid-response, not used after the
//! upstream closed them, and closed when there are too many idle or they idled too long.
//!
//! The upstream here is a small raw HTTP/1.1 server that counts the connections it accepts
//! and the ones that were closed by the gateway, so the tests see the pool from the outside.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backend::{raw_upstream, read_head};
use common::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Paths: `/slow` answers after 300 ms, `/hang` never answers, `/big` streams 8 MB slowly,
/// `/early` answers before reading the request body (then drains it),
/// `/bye` answers and then closes the connection (without saying so), anything else answers
/// `ok <n>`, where n counts the requests on that connection.
struct Upstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections whose other end (the gateway) closed them.
    closed_by_peer: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Upstream {
        let closed_by_peer = Arc::new(AtomicUsize::new(0));
        let c = closed_by_peer.clone();
        let (addr, accepted) = raw_upstream(move |tcp, _| serve(tcp, c.clone())).await;
        Upstream {
            addr,
            accepted,
            closed_by_peer,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed_by_peer(&self) -> usize {
        self.closed_by_peer.load(Ordering::SeqCst)
    }
}

async fn serve(mut tcp: TcpStream, closed_by_peer: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut served = 0;
    loop {
        let Some(head) = read_head(&mut tcp, &mut buf).await else {
            closed_by_peer.fetch_add(1, Ordering::SeqCst);
            return;
        };
        served += 1;
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let wrote = match path.as_str() {
            "/slow" => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                answer(&mut tcp, "slow").await
            }
            "/early" => {
                // Refuses an upload at once, then reads and drops its body, as nginx does.
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let ok = answer(&mut tcp, "denied").await;
                // Drop exactly the body: what follows it is the next request on this
                // connection, which the gateway may send as soon as the body is out.
                let buffered = buf.len().min(length);
                buf.drain(..buffered);
                let mut left = length - buffered;
                while ok && left > 0 {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let body = n.min(left);
                            left -= body;
                            buf.extend_from_slice(&chunk[body..n]);
                        }
                    }
                }
                ok && left == 0
            }
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                false
            }
            "/big" => {
                let total = 8 * 1024 * 1024;
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
                let mut ok = tcp.write_all(head.as_bytes()).await.is_ok();
                let block = vec![b'x'; 64 * 1024];
                for _ in 0..total / block.len() {
                    if !ok {
                        break;
                    }
                    ok = tcp.write_all(&block).await.is_ok();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ok
            }
            "/bye" => {
                let _ = answer(&mut tcp, "bye").await;
                return;
            }
            _ => answer(&mut tcp, &format!("ok {served}")).await,
        };
        if !wrote {
            // A write fails once the gateway has closed the connection.
            closed_by_peer.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

async fn answer(tcp: &mut TcpStream, body: &str) -> bool {
    let res = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(res.as_bytes()).await.is_ok()
}

fn gateway(upstream: &Upstream, settings: &str) -> Gateway {
    Gateway::start(&format!(
        "  upstream: {{{settings}}}\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        upstream.url()
    ))
}

async fn get(client: &reqwest::Client, gw: &Gateway, path: &str) -> (u16, String) {
    let res = client.get(gw.url(path)).send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Polls `cond` every 20 ms for at most `limit`.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test]
async fn one_upstream_connection_serves_requests_one_after_another() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    for client in gw.both_protocols() {
        let before = upstream.accepted();
        let mut last = String::new();
        for _ in 0..10 {
            let (status, body) = get(&client, &gw, "/").await;
            assert_eq!(status, 200);
            last = body;
        }
        // One client connection stays on one serving thread, whose idle stack hands the same
        // upstream connection back each time (a second protocol may land on another thread).
        assert!(
            upstream.accepted() - before <= 1,
            "10 requests, one at a time: {} new upstream connections",
            upstream.accepted() - before
        );
        let served: u32 = last.trim_start_matches("ok ").parse().expect("a count");
        assert!(
            served >= 10,
            "the upstream saw them on one connection: {last}"
        );
    }
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    let client = gw.client();
    for _ in 0..5 {
        // `/bye` answers, then the upstream closes: as a keep-alive timeout would.
        assert_eq!(get(&client, &gw, "/bye").await, (200, "bye".into()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get(&client, &gw, "/").await, (200, "ok 1".into()));
    }
    assert_eq!(upstream.accepted(), 6);
}

#[tokio::test]
async fn a_response_the_client_abandoned_closes_its_upstream_connection() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    for client in gw.both_protocols() {
        let mut res = client.get(gw.url("/big")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let first = res.chunk().await.unwrap().expect("some of the body");
        assert!(first.iter().all(|&b| b == b'x'));
        drop(res);
        // The rest of /big must never reach another request: those get their own answers.
        for _ in 0..5 {
            let (status, body) = get(&client, &gw, "/").await;
            assert_eq!(status, 200);
            assert!(body.starts_with("ok "), "got {:.40}", body);
        }
    }
    assert!(
        eventually(Duration::from_secs(5), || upstream.closed_by_peer() >= 2).await,
        "the two abandoned /big connections are closed, {} were",
        upstream.closed_by_peer()
    );
}

#[tokio::test]
async fn idle_connections_beyond_max_idle_are_closed() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "max_idle: 1");
    let client = gw.client();
    let slow = (0..3).map(|_| get(&client, &gw, "/slow"));
    for (status, body) in futures_util::future::join_all(slow).await {
        assert_eq!((status, body.as_str()), (200, "slow"));
    }
    assert_eq!(
        upstream.accepted(),
        3,
        "three at once need three connections"
    );
    assert!(
        eventually(Duration::from_secs(5), || upstream.closed_by_peer() == 2).await,
        "two of three closed, one kept: {} closed",
        upstream.closed_by_peer()
    );
    assert_eq!(get(&client, &gw, "/").await.0, 200);
    assert_eq!(upstream.accepted(), 3, "the kept one is reused");
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "idle_timeout: 400ms");
    assert_eq!(get(&gw.client(), &gw, "/").await.0, 200);
    assert_eq!(upstream.closed_by_peer(), 0);
    assert!(
        eventually(Duration::from_secs(5), || upstream.closed_by_peer() == 1).await,
        "the idle connection is closed"
    );
}

#[tokio::test]
async fn the_response_timeout_counts_from_each_request_on_a_reused_connection() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "response_timeout: 1s");
    let client = gw.client();
    assert_eq!(get(&client, &gw, "/").await.0, 200);
    // The connection's timer was armed for the first request; it goes off during the second,
    // which must still get its whole second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = Instant::now();
    assert_eq!(get(&client, &gw, "/hang").await.0, 504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "504 after {took:?}"
    );
    assert_eq!(
        upstream.accepted(),
        1,
        "the hanging request reused the connection"
    );
    assert_eq!(get(&client, &gw, "/").await.0, 200);
}

#[tokio::test]
async fn an_upload_answered_before_its_end_still_goes_through() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    for client in gw.both_protocols() {
        let res = client
            .post(gw.url("/early"))
            .body(vec![b'u'; 8 * 1024 * 1024])
            .send()
            .await
            .expect("the early answer, not a reset");
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "denied");
        assert!(get(&client, &gw, "/").await.1.starts_with("ok "));
    }
}

/// Issue 20 item 8: with a cap below the concurrency (128 by default then), every response
/// beyond the cap closed its connection and the next request opened another: about 14,000
/// sockets in TIME_WAIT after a minute of HTTP/2 load. By default the pool now keeps what
/// the load needed: rounds of 200 concurrent requests reuse the first round's connections.
#[tokio::test]
async fn by_default_the_pool_keeps_what_the_concurrency_needs() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    let client = gw.client();
    for round in 0..3 {
        let slow = (0..200).map(|_| get(&client, &gw, "/slow"));
        for (status, _) in futures_util::future::join_all(slow).await {
            assert_eq!(status, 200, "round {round}");
        }
    }
    // 200 connections at most (the first round's), none closed after a response.
    assert!(
        upstream.accepted() <= 200,
        "{} connections for 3 rounds of 200",
        upstream.accepted()
    );
    assert_eq!(upstream.closed_by_peer(), 0);
}

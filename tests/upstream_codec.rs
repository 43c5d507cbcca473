//! The hot path's own HTTP/1.1 client codec against a raw upstream answering scripted bytes:
//! framing (chunked, Content-Length, close-delimited, no body), what must never be pooled
//! (a CL+TE conflict, bytes beyond a body's end), 1xx heads, timeouts and retries.
//!
//! The upstream counts the connections it accepts, so the tests see from the outside which
//! requests shared a connection.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backend::{raw_upstream, read_head};
use common::Gateway;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

struct Upstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Late bytes written by `/late` onto an idle connection.
    late: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Upstream {
        let late = Arc::new(AtomicUsize::new(0));
        let l = late.clone();
        let (addr, accepted) = raw_upstream(move |tcp, n| serve(tcp, n, l.clone())).await;
        Upstream {
            addr,
            accepted,
            late,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// What to do after answering.
enum Then {
    Keep,
    Close,
}

/// The scripted answer to `path`, the `served`-th request on connection `conn`.
fn script(method: &str, path: &str, conn: usize, served: usize) -> Option<(String, Then)> {
    let ok = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let keep = |s: String| Some((s, Then::Keep));
    match path {
        "/chunked" => keep("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n".into()),
        "/both" => keep("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".into()),
        "/extra" => keep(format!("{}{}", ok("ok"), ok("smuggled"))),
        "/info" => keep(format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n{}",
            ok("final")
        )),
        "/204" => keep("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n".into()),
        "/304" => keep("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n".into()),
        "/head" if method == "HEAD" => keep("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".into()),
        "/close" => Some(("HTTP/1.1 200 OK\r\n\r\nuntil the end".into(), Then::Close)),
        "/badchunk" => keep("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n".into()),
        "/badlength" => keep("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok".into()),
        "/switch" => keep("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n".into()),
        // An upstream that sends its own X-Request-Id, with each way the lane writes a
        // response: itself (a length), re-chunked, and through hyper (a reason of its own).
        "/their-id" => keep("HTTP/1.1 200 OK\r\nX-Request-Id: theirs\r\nContent-Length: 2\r\n\r\nok".into()),
        "/their-id-chunked" => keep("HTTP/1.1 200 OK\r\nX-Request-Id: theirs\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".into()),
        "/their-id-reason" => keep("HTTP/1.1 200 Fine\r\nX-Request-Id: theirs\r\nContent-Length: 2\r\n\r\nok".into()),
        // The second request on a connection finds it closed before any answer, as when the
        // upstream's keep-alive timeout ends it while the request is on its way.
        "/flaky" if served > 1 => None,
        _ => keep(ok(&format!("{path} conn {conn} req {served}"))),
    }
}

async fn serve(mut tcp: TcpStream, conn: usize, late: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut served = 0;
    while let Some(head) = read_head(&mut tcp, &mut buf).await {
        served += 1;
        let mut words = head.split(' ');
        let method = words.next().unwrap_or("").to_owned();
        let path = words.next().unwrap_or("/").to_owned();
        match path.as_str() {
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                return;
            }
            "/hints" => {
                // `103 Early Hints` without end (at most 10 s of them), never a final head.
                let hint = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until && tcp.write_all(hint).await.is_ok() {}
                return;
            }
            "/split" => {
                // The body after the head, in writes of its own: read by the body's reader,
                // not with the head (which takes a body that came whole with it).
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
                    .await;
                for part in [&b"hello"[..], b" ", b"world"] {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = tcp.write_all(part).await;
                }
                continue;
            }
            "/late" => {
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let fake = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
                if tcp.write_all(fake).await.is_ok() {
                    late.fetch_add(1, Ordering::SeqCst);
                }
                continue;
            }
            _ => {}
        }
        let Some((answer, then)) = script(&method, &path, conn, served) else {
            return;
        };
        if tcp.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if let Then::Close = then {
            return;
        }
    }
}

fn gateway(upstream: &Upstream, settings: &str) -> Gateway {
    Gateway::start_with(
        &format!(
            "  upstream: {{{settings}}}\n  routes:\n    - {{prefix: /, upstream: \"http://{}\"}}\n",
            upstream.addr
        ),
        "metrics: {listen: \"127.0.0.1:0\"}\n",
    )
}

/// The route's count of upstream errors of `kind`, as exported.
async fn errors(gw: &Gateway, kind: &str) -> String {
    let want = format!("oauthgate_upstream_errors_total{{route=\"/\",kind=\"{kind}\"}} ");
    let scrape = gw.scrape().await;
    let line = scrape.lines().find(|l| l.starts_with(&want));
    line.map(|l| l[want.len()..].to_owned()).unwrap_or_default()
}

async fn call(client: &reqwest::Client, method: &str, url: String) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    match client.request(method, url).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            (
                status,
                res.text()
                    .await
                    .unwrap_or_else(|e| format!("body error: {e}")),
            )
        }
        Err(e) => (0, format!("request error: {e}")),
    }
}

async fn get(gw: &Gateway, path: &str) -> (u16, String) {
    call(&gw.client(), "GET", gw.url(path)).await
}

#[tokio::test]
async fn framings_are_read_and_the_connection_reused_only_when_clean() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    // One client connection throughout: it stays on one serving thread, and so every request
    // draws on that thread's idle upstream connections.
    let client = gw.client();
    let mut conns = 1;
    // (path, method, status, body, whether the next request may reuse the connection)
    let cases: [(&str, &str, u16, &str, bool); 9] = [
        ("/chunked", "GET", 200, "hello world", true),
        ("/split", "GET", 200, "hello world", true),
        ("/info", "GET", 200, "final", true),
        ("/204", "GET", 204, "", true),
        ("/304", "GET", 304, "", true),
        ("/head", "HEAD", 200, "", true),
        ("/both", "GET", 200, "hello", false),
        ("/close", "GET", 200, "until the end", false),
        ("/extra", "GET", 200, "ok", false),
    ];
    for (path, method, status, body, reusable) in cases {
        assert_eq!(
            call(&client, method, gw.url(path)).await,
            (status, body.to_owned()),
            "{method} {path}"
        );
        // The next request shows whether that connection went back to the pool.
        let (s, next) = call(&client, "GET", gw.url("/n")).await;
        assert_eq!(s, 200, "{next}");
        assert!(!next.contains("smuggled"), "after {path}: {next}");
        if !reusable {
            conns += 1;
        }
        assert_eq!(
            next,
            format!("/n conn {conns} req {}", if reusable { 2 } else { 1 }),
            "after {path}"
        );
        assert_eq!(upstream.accepted(), conns, "after {path}");
        // Each case starts on a fresh connection of its own.
        assert_eq!(call(&client, "GET", gw.url("/close")).await.0, 200);
        conns += 1;
    }
}

#[tokio::test]
async fn bytes_arriving_on_an_idle_connection_are_never_read_as_a_response() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    // One client connection, so one serving thread's idle upstream connections.
    let client = gw.client();
    assert_eq!(
        call(&client, "GET", gw.url("/late")).await,
        (200, "ok".into())
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.late.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        upstream.late.load(Ordering::SeqCst),
        1,
        "the late bytes were written"
    );
    assert_eq!(
        call(&client, "GET", gw.url("/n")).await,
        (200, "/n conn 2 req 1".into())
    );
}

#[tokio::test]
async fn malformed_responses_are_502_or_a_cut_body_and_never_pooled() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    // One client connection, so one serving thread's idle upstream connections.
    let client = gw.client();
    let (status, body) = call(&client, "GET", gw.url("/badlength")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(call(&client, "GET", gw.url("/switch")).await.0, 502);
    // A broken chunked body has sent its head already: the client sees its end missing.
    let (status, body) = call(&client, "GET", gw.url("/badchunk")).await;
    assert!(
        status == 0 || body.starts_with("body error"),
        "{status} {body}"
    );
    assert_eq!(
        call(&client, "GET", gw.url("/n")).await,
        (200, "/n conn 4 req 1".into())
    );
    assert_eq!(
        errors(&gw, "protocol").await,
        "2",
        "the two refused heads are counted"
    );
}

#[tokio::test]
async fn a_slow_head_is_a_504() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "response_timeout: 500ms");
    let started = Instant::now();
    assert_eq!(get(&gw, "/slow").await.0, 504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(get(&gw, "/n").await, (200, "/n conn 2 req 1".into()));
    assert_eq!(errors(&gw, "timeout").await, "1");
}

#[tokio::test]
async fn a_pooled_connection_closed_under_a_request_is_retried_for_get_only() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    // One client connection throughout, so one serving thread's idle upstream connections.
    let client = gw.client();
    assert_eq!(
        call(&client, "GET", gw.url("/flaky")).await,
        (200, "/flaky conn 1 req 1".into())
    );
    // Connection 1 closes under the second request: a GET goes again on a new one.
    assert_eq!(
        call(&client, "GET", gw.url("/flaky")).await,
        (200, "/flaky conn 2 req 1".into())
    );
    assert_eq!(upstream.accepted(), 2);
    // A POST (bodiless) is not sent twice: the upstream may have acted on it.
    let (status, body) = call(&client, "POST", gw.url("/flaky")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(upstream.accepted(), 2, "no second attempt");
    assert_eq!(errors(&gw, "reset").await, "1", "only the POST failed");
    // A DELETE is idempotent, so it is retried.
    assert_eq!(
        call(&client, "GET", gw.url("/flaky")).await,
        (200, "/flaky conn 3 req 1".into())
    );
    let (status, body) = call(&client, "DELETE", gw.url("/flaky")).await;
    assert_eq!((status, body.as_str()), (200, "/flaky conn 4 req 1"));
}

/// A review finding: informational heads were skipped for as long as the upstream sent them
/// (until the response timeout, a serving thread busy all along). Past four times the head
/// limit before a final head, the response is refused.
#[tokio::test]
async fn endless_informational_heads_are_refused() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "response_timeout: 8s");
    let started = Instant::now();
    let (status, body) = get(&gw, "/hints").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(errors(&gw, "protocol").await, "1");
}

#[tokio::test]
async fn the_response_carries_our_request_id_alone_whatever_the_upstream_sent() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, "");
    let [h1, h2] = gw.both_protocols();
    for client in [h1, h2] {
        for path in ["/their-id", "/their-id-chunked", "/their-id-reason"] {
            let res = client.get(gw.url(path)).send().await.expect("answered");
            let version = res.version();
            assert_eq!(res.status(), 200, "{path} {version:?}");
            let ids: Vec<String> = res
                .headers()
                .get_all("x-request-id")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            assert_eq!(ids.len(), 1, "{path} {version:?}: {ids:?}");
            assert_ne!(ids[0], "theirs", "{path} {version:?}");
            assert_eq!(ids[0].len(), 22, "{path} {version:?}: {ids:?}");
            assert_eq!(res.text().await.unwrap(), "ok", "{path} {version:?}");
        }
    }
}

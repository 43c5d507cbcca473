//! The lane's parser against hyper's: what it takes, what it declines, and for arbitrary heads
//! that a request it takes is exactly the request hyper's server hands its service.
use super::*;
use http::HeaderMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn taken(head: &str) -> Option<Request<RequestBody>> {
    let mut buf = BytesMut::from(head.as_bytes());
    match parse(&buf) {
        Parsed::Ready(h) => take(&mut buf, &h).0,
        _ => None,
    }
}

fn declined(head: &str) -> bool {
    matches!(parse(head.as_bytes()), Parsed::Decline)
}

#[test]
fn a_plain_get_is_taken_with_its_headers_in_order() {
    let req = taken("GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nX-One: 1\r\nx-one: 2\r\nConnection: Keep-Alive\r\n\r\n")
        .expect("taken");
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri(), "/a/b?c=d");
    assert_eq!(req.version(), Version::HTTP_11);
    let ones: Vec<_> = req.headers().get_all("x-one").iter().collect();
    assert_eq!(ones, ["1", "2"]);
    assert_eq!(req.headers()["connection"], "Keep-Alive");
    assert!(taken("HEAD / HTTP/1.1\r\nhost: x\r\n\r\n").is_some());
}

#[test]
fn a_partial_head_waits() {
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\nHost: x\r\n"),
        Parsed::Partial
    ));
    assert!(matches!(parse(b"GE"), Parsed::Partial));
}

#[test]
fn what_needs_hyper_is_declined() {
    for head in [
        "POST / HTTP/1.1\r\nHost: x\r\n\r\n",
        "get / HTTP/1.1\r\nHost: x\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nHTTP2-Settings: AAA\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert!(declined(head), "taken: {head:?}");
    }
    let many: String = (0..MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
    assert!(declined(&format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n"
    )));
}

#[test]
fn a_recycled_map_brings_nothing_of_the_last_request_or_response() {
    let take = |text: &str| {
        let mut buf = BytesMut::from(text);
        match read(&mut buf, 8192) {
            Read::Taken(Some(req), _) => req,
            _ => panic!("not taken: {text:?}"),
        }
    };
    let mut req = take("GET /a HTTP/1.1\r\nHost: one\r\nCookie: s=1\r\n\r\n");
    // What the request's map carries by the time it is given back: the identity headers
    // sent upstream, then the upstream response's (repeated names among them).
    let h = req.headers_mut();
    h.insert(
        "x-user-info",
        http::HeaderValue::from_static("{\"sub\":\"github:1\"}"),
    );
    h.append("set-cookie", http::HeaderValue::from_static("a=1"));
    h.append("set-cookie", http::HeaderValue::from_static("b=2"));
    let kept = |mut req: Request<RequestBody>| {
        crate::maps::give(
            crate::maps::Kind::Request,
            std::mem::take(req.headers_mut()),
        );
    };
    let seen = |req: &Request<RequestBody>| -> Vec<(String, String)> {
        req.headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect()
    };
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    };
    kept(req);
    // Other names: a new map's worth.
    let next = take("GET /b HTTP/1.1\r\nHost: two\r\nAccept: */*\r\n\r\n");
    assert_eq!(seen(&next), pairs(&[("host", "two"), ("accept", "*/*")]));
    kept(next);
    // The same names, more: the kept ones are reused, each with its new value.
    let again = take("GET /c HTTP/1.1\r\nhost: three\r\nACCEPT: a/b\r\nCookie: c=3\r\n\r\n");
    assert_eq!(
        seen(&again),
        pairs(&[("host", "three"), ("accept", "a/b"), ("cookie", "c=3")])
    );
    kept(again);
    // Fewer: the last name is gone, not left blank.
    let fewer = take("GET /d HTTP/1.1\r\nHost: four\r\nAccept: x/y\r\n\r\n");
    assert_eq!(seen(&fewer), pairs(&[("host", "four"), ("accept", "x/y")]));
}

/// What hyper's server hands its service for `bytes`: `None` when it answers an error itself.
fn hyper_sees(bytes: &[u8]) -> Option<(Method, String, Version, HeaderMap)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let seen = Arc::new(Mutex::new(None));
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let record = seen.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let parts = (
                req.method().clone(),
                req.uri().to_string(),
                req.version(),
                req.headers().clone(),
            );
            record.lock().expect("lock").get_or_insert(parts);
            async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new()))) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), service);
        let talk = async {
            client.write_all(bytes).await.expect("write");
            client.shutdown().await.expect("shutdown");
            let mut out = Vec::new();
            let _ = client.read_to_end(&mut out).await;
        };
        let run = async { tokio::join!(conn, talk).1 };
        tokio::time::timeout(std::time::Duration::from_secs(5), run)
            .await
            .expect("hyper done");
        let parts = seen.lock().expect("lock").take();
        parts
    })
}

fn line() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => Just("\r\n"), 1 => Just("\n")]
}

fn header() -> impl Strategy<Value = String> {
    let names = prop_oneof![
        6 => prop::sample::select(vec!["X-A", "x-a", "Accept", "Cookie", "User-Agent"]),
        2 => prop::sample::select(vec!["Connection", "Host"]),
        1 => prop::sample::select(vec![
            "Content-Length", "Transfer-Encoding", "Upgrade", "TE", "Expect", "X A", "X\u{7f}",
            "", "X:Y",
        ]),
    ];
    let values = prop_oneof![
        6 => prop::sample::select(vec!["keep-alive", "v", " v ", "a\tb", "", "Keep-Alive, keep-alive"]),
        1 => prop::sample::select(vec![
            "close", "5", "chunked", "\u{e9}", "a\u{1}b", "x\r\n y", "websocket", "100-continue",
            "a\u{7f}", ",",
        ]),
    ];
    (names, values, line()).prop_map(|(n, v, l)| format!("{n}:{v}{l}"))
}

fn head() -> impl Strategy<Value = String> {
    let method =
        prop_oneof![6 => Just("GET"), 2 => Just("HEAD"), 1 => Just("POST"), 1 => Just("get")];
    let target = prop_oneof![
        6 => prop::sample::select(vec!["/", "/a?b=c", "//x", "/%2e%2e/", "/a/../b?x=%zz"]),
        1 => prop::sample::select(vec!["http://x/", "*", "/a b", "/\u{e9}", "x", "/a#f"]),
    ];
    let version = prop_oneof![8 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0"), 1 => Just("HTTP/2.0")];
    let host = prop_oneof![6 => Just("Host: x\r\n"), 1 => Just("")];
    let headers = prop::collection::vec(header(), 0..6);
    (
        method,
        target,
        version,
        line(),
        host,
        headers,
        0usize..6,
        line(),
    )
        .prop_map(|(m, t, v, l, host, mut h, at, end)| {
            h.insert(at.min(h.len()), host.to_owned());
            format!("{m} {t} {v}{l}{}{end}", h.concat())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A head the lane takes is one hyper takes too, and both see the same request.
    #[test]
    fn a_taken_request_is_the_one_hyper_sees(head in head()) {
        if let Some(req) = taken(&head) {
            let seen = hyper_sees(head.as_bytes());
            prop_assert!(seen.is_some(), "hyper refused what the lane took: {:?}", head);
            let (method, uri, version, headers) = seen.unwrap_or_else(|| unreachable!());
            prop_assert_eq!(req.method(), &method);
            prop_assert_eq!(req.uri().to_string(), uri);
            prop_assert_eq!(req.version(), version);
            prop_assert_eq!(req.headers(), &headers);
        }
    }
}

/// A head dribbled a byte at a time is parsed on the first look and once it may be whole, not
/// after every read (each parse reads the whole buffer: a review finding, the cost was the
/// head's length squared).
#[test]
fn a_dribbled_head_is_parsed_twice_not_once_per_read() {
    let mut head = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..90 {
        head.extend_from_slice(format!("X-{i:03}-{}: v\r\n", "n".repeat(500)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let mut scan = Scan::default();
    let mut parses = Vec::new();
    for end in 1..=head.len() {
        if scan.worth_parsing(&head[..end]) {
            parses.push(end);
        }
    }
    assert_eq!(parses, [1, head.len()], "parsed at these lengths");
    assert!(matches!(parse(&head), Parsed::Ready(_)));
}

/// The end of a head is found wherever the reads split it, bare LF included (httparse, and so
/// hyper, accept `\n\n`).
#[test]
fn the_end_of_a_head_is_seen_across_any_split() {
    for end in ["\r\n\r\n", "\n\n", "\n\r\n"] {
        let text = format!("GET / HTTP/1.1\r\nHost: a{end}");
        let bytes = text.as_bytes();
        for split in 1..bytes.len() {
            let mut scan = Scan::default();
            assert!(scan.worth_parsing(&bytes[..split]), "the first look");
            assert!(
                scan.worth_parsing(bytes),
                "{end:?} split at {split}: the second look must parse"
            );
        }
        // Read a byte at a time after the first: the last byte makes it worth parsing.
        let mut scan = Scan::default();
        let seen: Vec<bool> = (1..=bytes.len())
            .map(|n| scan.worth_parsing(&bytes[..n]))
            .collect();
        assert!(seen[seen.len() - 1], "{end:?}: the last byte ends the head");
        assert!(
            !seen[1..seen.len() - end.len()].iter().any(|&b| b),
            "{end:?}: nothing before the end is worth a parse"
        );
    }
}

//! The lane's response head against hyper's: for arbitrary responses, the same bytes (the date
//! aside) or a refusal that leaves the response to hyper.

use super::*;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn body_of(len: BodyLen) -> TestBody {
    match len {
        BodyLen::None => Full::new(Bytes::new()).boxed(),
        BodyLen::Known(n) => Full::new(Bytes::from(vec![b'x'; n as usize])).boxed(),
        BodyLen::Unknown => {
            let frames = [Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"abc")))];
            StreamBody::new(futures_util::stream::iter(frames)).boxed()
        }
    }
}

fn lane_head(is_head: bool, res: &Response<()>, len: BodyLen) -> Option<(String, Framing)> {
    lane_head_with(is_head, res, len, None)
}

fn lane_head_with(
    is_head: bool,
    res: &Response<()>,
    len: BodyLen,
    request_id: Option<&HeaderValue>,
) -> Option<(String, Framing)> {
    // Written after what the buffer already holds; a refusal leaves that as it was.
    const BEFORE: &[u8] = b"before";
    let mut out = BEFORE.to_vec();
    let parts = Parts {
        status: res.status(),
        version: res.version(),
        headers: res.headers(),
        extensions: res.extensions(),
        request_id,
    };
    let Some(framing) = head(&mut out, is_head, &parts, len, false) else {
        assert_eq!(out, BEFORE, "a refused head leaves nothing behind");
        return None;
    };
    let written = out.strip_prefix(BEFORE).expect("appended");
    Some((String::from_utf8_lossy(written).into_owned(), framing))
}

/// The head hyper's server writes for `res` with a body of `len`, to a GET or a HEAD.
fn hyper_head(is_head: bool, res: &Response<()>, len: BodyLen) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let template = Arc::new(Mutex::new(Some(res.clone())));
    rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let service = service_fn(move |_req| {
            let res = template.lock().expect("lock").take().expect("one request");
            async move { Ok::<_, Infallible>(res.map(|()| body_of(len))) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), service);
        let method = if is_head { "HEAD" } else { "GET" };
        let talk = async {
            let req = format!("{method} / HTTP/1.1\r\nHost: x\r\n\r\n");
            client.write_all(req.as_bytes()).await.expect("write");
            client.shutdown().await.expect("shutdown");
            let mut out = Vec::new();
            let _ = client.read_to_end(&mut out).await;
            out
        };
        let run = async { tokio::join!(conn, talk).1 };
        let out = tokio::time::timeout(std::time::Duration::from_secs(5), run)
            .await
            .expect("hyper done");
        let text = String::from_utf8_lossy(&out).into_owned();
        match text.find("\r\n\r\n") {
            Some(end) => text[..end + 4].to_owned(),
            None => text,
        }
    })
}

/// The `date` value, which differs by the second, made equal.
fn undated(head: &str) -> String {
    head.split("\r\n")
        .map(|l| {
            if l.starts_with("date: ") {
                "date: -"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn a_small_ok_response() {
    let mut res = Response::new(());
    res.headers_mut()
        .insert("x-a", HeaderValue::from_static("1"));
    let (text, framing) = lane_head(false, &res, BodyLen::Known(5)).expect("written");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\ndate: "));
    assert!(text.ends_with(" GMT\r\n\r\n"));
    assert_eq!(framing, Framing::Length(5));
    let (text, framing) = lane_head(false, &res, BodyLen::Unknown).expect("written");
    assert!(text.contains("\r\ntransfer-encoding: chunked\r\n"));
    assert_eq!(framing, Framing::Chunked);
}

#[test]
fn what_hyper_must_write_is_refused() {
    for (name, value) in [
        ("connection", "close"),
        ("transfer-encoding", "chunked"),
        ("trailer", "x"),
    ] {
        // Alone, and after headers the lane had already written.
        let mut res = Response::new(());
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
        assert!(
            lane_head(false, &res, BodyLen::Known(1)).is_none(),
            "{name}"
        );
        let mut res = Response::new(());
        let h = res.headers_mut();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("content-length", HeaderValue::from_static("1"));
        h.insert(
            "date",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        h.insert(name, HeaderValue::from_static(value));
        assert!(
            lane_head(false, &res, BodyLen::Known(1)).is_none(),
            "{name} after others"
        );
    }
    // Two lengths, equal or not, with a known body or not.
    for (second, len) in [
        ("1", BodyLen::Known(1)),
        ("2", BodyLen::Unknown),
        ("1", BodyLen::None),
    ] {
        let mut res = Response::new(());
        let h = res.headers_mut();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.append("content-length", HeaderValue::from_static("1"));
        h.append("content-length", HeaderValue::from_static(second));
        assert!(lane_head(true, &res, len).is_none(), "{second}");
        assert!(lane_head(false, &res, len).is_none(), "{second}");
    }
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    assert!(lane_head(false, &res, BodyLen::None).is_none());
    let mut res = Response::new(());
    *res.version_mut() = Version::HTTP_10;
    assert!(lane_head(false, &res, BodyLen::None).is_none());
    let mut res = Response::new(());
    res.headers_mut()
        .insert("content-length", HeaderValue::from_static("x"));
    assert!(lane_head(false, &res, BodyLen::Unknown).is_none());
}

#[test]
fn chunk_sizes_are_upper_case_hex() {
    for (len, text) in [
        (0, "0\r\n"),
        (10, "A\r\n"),
        (255, "FF\r\n"),
        (4096, "1000\r\n"),
    ] {
        let mut out = Vec::new();
        chunk_size(&mut out, len);
        assert_eq!(out, text.as_bytes());
    }
    assert_eq!(digits(b"0012"), Some(12));
    for bad in [&b""[..], b"+1", b"1 ", b"99999999999999999999"] {
        assert_eq!(digits(bad), None);
    }
}

fn response() -> impl Strategy<Value = Response<()>> {
    let status = prop::sample::select(vec![200u16, 200, 201, 204, 206, 299, 302, 304, 404, 599]);
    let names = prop::sample::select(vec![
        "x-a",
        "content-length",
        "date",
        "set-cookie",
        "cache-control",
        "content-type",
        "connection",
        "trailer",
        "transfer-encoding",
        "x-request-id",
    ]);
    let values = prop::sample::select(vec!["0", "3", "7", "v", "Sun, 06 Nov 1994 08:49:37 GMT"]);
    let headers = prop::collection::vec((names, values), 0..5);
    (status, headers).prop_map(|(status, headers)| {
        let mut res = Response::new(());
        *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        for (n, v) in headers {
            res.headers_mut().append(n, HeaderValue::from_static(v));
        }
        res
    })
}

/// The rule for what the lane leaves to hyper, as it stood before the checks moved into the
/// writing loop: these headers, two lengths, or a length it cannot read for a body of
/// unknown size.
fn hypers_to_write(res: &Response<()>, len: BodyLen) -> bool {
    let h = res.headers();
    let lengths: Vec<_> = h.get_all("content-length").iter().collect();
    res.status().is_informational()
        || res.version() != Version::HTTP_11
        || h.contains_key("transfer-encoding")
        || h.contains_key("trailer")
        || h.contains_key("connection")
        || lengths.len() > 1
        || (matches!(len, BodyLen::Unknown)
            && lengths
                .first()
                .is_some_and(|v| digits(v.as_bytes()).is_none()))
}

fn body_len() -> impl Strategy<Value = BodyLen> {
    prop_oneof![
        Just(BodyLen::None),
        Just(BodyLen::Unknown),
        // Known(0) is an ended body to hyper: `None`.
        (1u64..8).prop_map(BodyLen::Known),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the lane writes is what hyper writes.
    #[test]
    fn the_head_is_hypers(
        is_head in any::<bool>(),
        res in response(),
        len in body_len(),
        with_id in any::<bool>(),
    ) {
        // hyper trusts a body's exact size over the header (and asserts them equal in debug
        // builds): such a response is a bug above the listener, not input.
        let lengths: Vec<_> = res.headers().get_all("content-length").iter().collect();
        // A body shorter than its length is aborted: hyper may not have flushed the head.
        match (len, lengths.first()) {
            (BodyLen::Known(n), Some(v)) => prop_assume!(v.as_bytes() == n.to_string().as_bytes()),
            (BodyLen::Unknown, Some(v)) => prop_assume!(v.as_bytes() == b"3"),
            _ => {}
        }
        // With the request id beside it: what hyper writes for the map with the id set last
        // (any the map had taken out, the others in their order).
        let id = HeaderValue::from_static("req-7");
        let mut hypers = res.clone();
        if with_id {
            let h = hypers.headers_mut();
            h.clear();
            for (n, v) in res.headers().iter().filter(|(n, _)| n.as_str() != "x-request-id") {
                h.append(n, v.clone());
            }
            h.append("x-request-id", id.clone());
        }
        let lane = lane_head_with(is_head, &res, len, with_id.then_some(&id));
        prop_assert_eq!(lane.is_none(), hypers_to_write(&res, len));
        if let Some((ours, _)) = lane {
            prop_assert_eq!(undated(&ours), undated(&hyper_head(is_head, &hypers, len)));
        }
    }
}

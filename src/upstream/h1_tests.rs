//! The request head as written, the response head as read, and RFC 9112 §6.3's framing.

use bytes::BytesMut;
use http::header::HeaderValue;
use proptest::prelude::*;

use super::*;
use crate::maps::Kept;

fn parse(head: &[u8], head_request: bool) -> Result<Option<Parsed>, HeadError> {
    parse_head(
        &mut BytesMut::from(head),
        head_request,
        &mut Kept::default(),
    )
}

fn framed(head: &str) -> Result<(Framing, bool), HeadError> {
    match parse(head.as_bytes(), false)? {
        Some(p) => Ok((p.framing, p.reuse)),
        None => panic!("incomplete: {head:?}"),
    }
}

#[test]
fn a_request_head_is_written_as_hyper_wrote_it() {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("app.example"));
    headers.append("x-a", HeaderValue::from_static("1"));
    headers.append("x-a", HeaderValue::from_static("2"));
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    let mut out = b"left over".to_vec();
    let uri: Uri = "/p/a%20th?q=1".parse().unwrap();
    encode_head(&mut out, &Method::POST, &uri, &headers, &()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "POST /p/a%20th?q=1 HTTP/1.1\r\nhost: app.example\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
    );
}

#[test]
fn a_target_that_is_not_origin_form_is_never_sent() {
    let mut out = Vec::new();
    let h = HeaderMap::new();
    for target in ["http://evil.example/x", "*", "evil.example:443"] {
        let uri: Uri = target.parse().unwrap();
        let e = encode_head(&mut out, &Method::GET, &uri, &h, &());
        assert_eq!(e, Err(HeadError::Target), "{target}");
    }
}

#[test]
fn no_header_value_can_hold_a_line_break_or_nul() {
    // `encode_head` writes values as they are: this is what keeps a value from becoming a
    // second header or request.
    for bad in [&b"a\r\nX: 1"[..], b"a\rb", b"a\nb", b"a\0b"] {
        assert!(HeaderValue::from_bytes(bad).is_err(), "{bad:?}");
        assert!(HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(bad)).is_err());
        assert!(HeaderValue::try_from(String::from_utf8_lossy(bad).into_owned()).is_err());
    }
}

#[test]
fn a_response_head_is_read_with_its_headers_sliced_from_one_copy() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 Fine\r\nA: 1\r\nb: two\r\na: 3\r\n\r\nbody"[..]);
    let p = parse_head(&mut buf, false, &mut Kept::default())
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..], b"body", "the head, and only it, is taken");
    assert_eq!(p.response.status(), 200);
    assert_eq!(p.response.version(), Version::HTTP_11);
    let all: Vec<_> = p.response.headers().get_all("a").iter().collect();
    assert_eq!(all, ["1", "3"]);
    assert_eq!(p.response.headers()["b"], "two");
    let reason = p.response.extensions().get::<hyper::ext::ReasonPhrase>();
    assert_eq!(reason.map(|r| r.as_bytes()), Some(&b"Fine"[..]));
    assert!(parse(b"HTTP/1.1 200 OK\r\n\r\n", false)
        .unwrap()
        .unwrap()
        .response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .is_none());
}

#[test]
fn informational_heads_are_skipped_and_101_is_refused() {
    let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let p = parse(wire, false).unwrap().unwrap();
    assert_eq!(p.response.status(), 201);
    assert!(p.response.headers().get("link").is_none());
    // A 1xx alone: wait for the final head.
    assert!(parse(b"HTTP/1.1 100 Continue\r\n\r\n", false)
        .unwrap()
        .is_none());
    let e = parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false);
    assert_eq!(e.unwrap_err(), HeadError::Switching);
}

#[test]
fn heads_too_large_or_with_too_many_lines_or_malformed_are_refused() {
    let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    big.resize(MAX_HEAD + 1, b'a');
    assert_eq!(parse(&big, false).unwrap_err(), HeadError::TooLarge);
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse(&many, false).unwrap_err(), HeadError::TooManyHeaders);
    for bad in [
        &b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
    ] {
        assert!(
            matches!(parse(bad, false), Err(HeadError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        parse(b"HTTP/1.1 099 Low\r\n\r\n", false).unwrap_err(),
        HeadError::Invalid
    );
}

#[test]
fn framing_follows_rfc_9112_section_6_3() {
    use Framing::*;
    let ok = |h: &str| framed(h).unwrap();
    // No body whatever the headers say.
    assert_eq!(
        ok("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
        (Empty, true)
    );
    assert_eq!(
        ok("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n"),
        (Empty, true)
    );
    let head = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
    assert_eq!(head.unwrap().unwrap().framing, Empty);
    // Transfer-Encoding: chunked last, else close-delimited; with a Content-Length, unpooled.
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
        (Chunked, true)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        (Close, false)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
        (Chunked, true)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        (Chunked, false)
    );
    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let p = parse(both, false).unwrap().unwrap();
    assert!(p.response.headers().get(header::CONTENT_LENGTH).is_none());
    assert_eq!(
        framed("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(HeadError::TransferEncodingInHttp10)
    );
    // Content-Length: one plain decimal, however often repeated.
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        (Length(5), true)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n"),
        (Length(5), true)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (Empty, true)
    );
    for cl in [
        "5, 6",
        "+5",
        "-5",
        "0x5",
        "5 5",
        "",
        "18446744073709551616",
        "5;",
    ] {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(framed(&head), Err(HeadError::ContentLength), "{cl:?}");
    }
    let two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert_eq!(framed(two), Err(HeadError::ContentLength));
    // Neither: until close. HTTP/1.0 or Connection: close: never pooled.
    assert_eq!(ok("HTTP/1.1 200 OK\r\n\r\n"), (Close, false));
    assert_eq!(
        ok("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n"),
        (Length(1), false)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: x, Close\r\n\r\n"),
        (Length(1), false)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: closed\r\n\r\n"),
        (Length(1), true)
    );
}

/// Header lines of responses, some with the same names in other cases.
const LINES: [&str; 10] = [
    "Server: nginx",
    "server: other",
    "Content-Length: 0",
    "Date: Sun, 06 Nov 1994 08:49:37 GMT",
    "Connection: keep-alive",
    "Connection: close",
    "connection: Keep-Alive, x-hop",
    "X-Hop: 1",
    "Set-Cookie: a=1",
    "SET-COOKIE: b=2",
];

proptest! {
    #[test]
    fn any_split_of_a_head_reads_the_same(
        names in prop::collection::vec("[a-z][a-z0-9-]{0,10}", 0..10),
        values in prop::collection::vec("[ -~]{0,20}", 10),
        cut in any::<usize>(),
    ) {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        for (n, v) in names.iter().zip(&values) {
            wire.extend_from_slice(format!("{n}: {}\r\n", v.trim()).as_bytes());
        }
        wire.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        let cut = cut % wire.len();
        let mut buf = BytesMut::from(&wire[..cut]);
        let first = parse_head(&mut buf, false, &mut Kept::default()).unwrap();
        buf.extend_from_slice(&wire[cut..]);
        let p = match first {
            Some(p) => p,
            None => parse_head(&mut buf, false, &mut Kept::default()).unwrap().unwrap(),
        };
        prop_assert_eq!(&buf[..], b"ok");
        prop_assert_eq!(p.framing, Framing::Length(2));
        for (n, v) in names.iter().zip(&values) {
            let got: Vec<_> = p.response.headers().get_all(n.as_str()).iter().collect();
            prop_assert!(got.iter().any(|g| *g == v.trim()), "{n}: {got:?}");
        }
    }

    /// Read into the kept map of any response before it (`maps`), a head reads as into a
    /// new map; a `Connection` that says only `keep-alive` is left out, any other kept.
    #[test]
    fn a_head_reads_the_same_into_a_kept_map(
        before in prop::collection::vec(prop::sample::select(&LINES[..]), 0..6),
        now in prop::collection::vec(prop::sample::select(&LINES[..]), 0..6),
    ) {
        let head = |lines: &[&str]| {
            let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
            for l in lines {
                wire.extend_from_slice(l.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"\r\n");
            wire
        };
        let read = |wire: &[u8], map: &mut Kept| {
            parse_head(&mut BytesMut::from(wire), false, map).map(|p| p.map(|p| p.response))
        };
        if let Ok(Some(last)) = read(&head(&before), &mut Kept::default()) {
            crate::maps::give(crate::maps::Kind::Response, last.into_parts().0.headers);
        }
        let mut kept = crate::maps::take(crate::maps::Kind::Response);
        let wire = head(&now);
        let (got, want) = (read(&wire, &mut kept), read(&wire, &mut Kept::default()));
        let seen = |r: &Result<Option<Response<()>>, HeadError>| match r {
            Ok(Some(res)) => Ok(res
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect::<Vec<_>>()),
            Ok(None) => Err(None),
            Err(e) => Err(Some(format!("{e}"))),
        };
        prop_assert_eq!(seen(&got), seen(&want));
        if let Ok(Some(res)) = &want {
            let keep_alive_only = now.iter().filter(|l| l.to_ascii_lowercase().starts_with("connection:")).all(|l| {
                crate::util::only_keep_alive(l.split_once(':').unwrap().1.as_bytes())
            });
            prop_assert_eq!(res.headers().contains_key("connection"), !keep_alive_only);
        }
    }

    #[test]
    fn no_head_panics(wire in prop::collection::vec(any::<u8>(), 0..300), head: bool) {
        let mut buf = BytesMut::from(&wire[..]);
        if let Ok(Some(p)) = parse_head(&mut buf, head, &mut Kept::default()) {
            prop_assert!(buf.len() < wire.len());
            prop_assert!(!p.response.status().is_informational());
        }
    }
}

/// What `framing` read by one lookup per name before its single pass: the model the pass is
/// held to.
fn framing_headers_by_lookups(headers: &HeaderMap) -> FramingHeaders<'_> {
    FramingHeaders {
        close: headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v.as_bytes(), b"close")),
        last_coding: headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back(),
        has_length: headers.contains_key(header::CONTENT_LENGTH),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// The single pass reads what the lookups read, for any mix and order of framing headers
    /// (repeated, in any case, with lists) among others.
    #[test]
    fn framing_headers_in_one_pass_are_those_by_lookups(
        picks in prop::collection::vec((0usize..6, 0usize..10), 0..8),
    ) {
        const NAMES: [&str; 6] =
            ["connection", "transfer-encoding", "content-length", "date", "x-a", "keep-alive"];
        const VALUES: [&str; 10] = [
            "close", "keep-alive, Close", "chunked", "gzip, chunked", "chunked, gzip", "Chunked ",
            "5", "5, 5", "0", "x",
        ];
        let mut headers = HeaderMap::new();
        for (n, v) in picks {
            headers.append(NAMES[n], HeaderValue::from_static(VALUES[v]));
        }
        prop_assert_eq!(FramingHeaders::of(&headers), framing_headers_by_lookups(&headers));
    }
}

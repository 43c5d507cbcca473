//! Unit tests of the header hygiene: hop-by-hop stripping (with a model), reserved names,
//! forwarding headers, HTTP/2 value detaching and the WebSocket handshake checks.

use super::props::HOP_BY_HOP;
use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect()
}

#[test]
fn reserved_names_in_every_spelling() {
    for name in [
        "x-user-info",
        "X-User-Info",
        "X_User_Info",
        "x_user-email",
        "x-userinfo",
        "x-forwarded-for",
        "X_Forwarded_Host",
        "forwarded",
        "x-real-ip",
        "X-Forwarded-Prefix",
        "x_forwarded_uri",
        "x-forwarded-server",
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-port",
        "X-Original-URL",
        "x_rewrite_url",
        "x-original-uri",
        "X-Client-IP",
        "true_client_ip",
        "CF-Connecting-IP",
        "Remote-User",
        "remote_user",
        "X-Remote-User",
        "X-Auth-Request-User",
        "x_auth_request_email",
        "x-auth-request-access-token",
        "Remote-Email",
        "remote_groups",
        "X-Pomerium-Claim-Email",
        "X-Vouch-User",
        "Cf-Access-Authenticated-User-Email",
        "X-Goog-Authenticated-User-Email",
        "OIDC_CLAIM_email",
        "Gap-Auth",
        "X-WEBAUTH-USER",
        "Client-IP",
        "X-Cluster-Client-IP",
        "Fastly-Client-IP",
        "Proxy-Client-IP",
        "WL-Proxy-Client-IP",
        "X-Envoy-Original-Path",
        "X-Original-Host",
        "X-Host",
        "X_Request_Id",
    ] {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert!(is_reserved(&name), "{name}");
    }
    for name in [
        "x-use",
        "user-agent",
        "x-request-ids",
        "x-forwarded",
        "accept",
        "x-auth-request",
        "cookie",
        "referer",
        "te",
        "forwarded-for",
        "x-original",
        "origin",
        "pragma",
        "priority",
        "x-hostname",
        "remote",
        "client-hints",
    ] {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert!(!is_reserved(&name), "{name}");
    }
}

#[test]
fn strips_hop_by_hop_and_connection_named_headers() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret, x-user-info"),
        ("keep-alive", "timeout=5"),
        ("x-secret", "1"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic x"),
        ("accept", "*/*"),
    ]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("accept"));
}

#[test]
fn the_usual_messages_lose_what_the_rule_says_and_nothing_more() {
    // A keep-alive upstream's response: `Connection` alone goes.
    let mut h = map(&[
        ("date", "x"),
        ("connection", "keep-alive"),
        ("content-length", "6"),
    ]);
    strip_hop_by_hop(&mut h);
    assert_eq!(
        by_name(&h),
        by_name(&map(&[("date", "x"), ("content-length", "6")]))
    );
    // `Keep-Alive` named and present, or another name listed: both go, each named header too.
    let mut h = map(&[
        ("connection", "Keep-Alive"),
        ("keep-alive", "timeout=5"),
        ("a", "1"),
    ]);
    strip_hop_by_hop(&mut h);
    assert_eq!(by_name(&h), by_name(&map(&[("a", "1")])));
    let mut h = map(&[
        ("connection", "keep-alive"),
        ("connection", "X-A"),
        ("x-a", "1"),
    ]);
    strip_hop_by_hop(&mut h);
    assert!(h.is_empty(), "{h:?}");
    // `close` is a token like any other: a header of that name goes.
    let mut h = map(&[("connection", "close"), ("close", "1"), ("b", "2")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(by_name(&h), by_name(&map(&[("b", "2")])));
    // Nothing hop-by-hop: nothing changes.
    let mut h = map(&[("host", "a"), ("cookie", "c=1"), ("cookie", "d=2")]);
    let before = by_name(&h);
    strip_hop_by_hop(&mut h);
    assert_eq!(by_name(&h), before);
    // A hop-by-hop header without `Connection`.
    let mut h = map(&[("te", "trailers"), ("host", "a")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(by_name(&h), by_name(&map(&[("host", "a")])));
}

#[test]
fn odd_connection_tokens_are_read_as_the_rule_says() {
    // Empty items, tabs, a lone comma, bytes outside ASCII: each message as the model says.
    for value in [
        &b""[..],
        b",",
        b" , ,",
        b"\tkeep-alive,,keep-alive ",
        b"keep-alive\xa0",
        b"\xff",
        b"keep-alive,\xff",
        b"keep-alive ,x-A",
    ] {
        for other in [None, Some("keep-alive"), Some("x-a"), Some("te")] {
            let mut h = HeaderMap::new();
            h.append(header::CONNECTION, HeaderValue::from_bytes(value).unwrap());
            h.append("date", HeaderValue::from_static("x"));
            if let Some(name) = other {
                h.append(HeaderName::from_static(name), HeaderValue::from_static("1"));
            }
            let want = hop_by_hop_model(&h);
            strip_hop_by_hop(&mut h);
            assert_eq!(by_name(&h), want, "{value:?} with {other:?}");
        }
    }
}

/// What `strip_hop_by_hop` must leave: every name that is hop-by-hop or that a
/// `Connection` token names goes, all its values with it; every other name keeps its
/// values in their order (the order between names is the map's business).
fn hop_by_hop_model(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let named: Vec<String> = connection_tokens(h).map(str::to_ascii_lowercase).collect();
    by_name(h)
        .into_iter()
        .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()) && !named.contains(n))
        .collect()
}

fn by_name(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = h
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0)); // stable: a name's values keep their order
    all
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]
    /// Few or many doomed names (the stack's slots and the list past them), repeated
    /// names, tokens in any case, several `Connection` headers.
    #[test]
    fn hop_by_hop_strip_matches_its_model(
        picks in proptest::collection::vec((0usize..25, 0usize..9), 0..40),
    ) {
        const NAMES: [&str; 25] = [
            "connection", "keep-alive", "proxy-connection", "te", "trailer", "proxy-authenticate",
            "transfer-encoding", "upgrade", "proxy-authorization", "http2-settings",
            "accept", "cookie", "host", "x-a", "x-b", "x-c", "x-d", "x-e", "x-f", "x-g",
            "x-h", "x-i", "x-j", "x-k", "x-l",
        ];
        // With the usual ones (`keep-alive` alone, in any case, or nothing) often enough that
        // a message with only those (strip_hop_by_hop's quick answer) comes up.
        const VALUES: [&str; 9] = [
            "close", "X-A, x-b,X-C , keep-alive", "x-d,x-e,x-f,x-g,x-h,x-i,x-j,x-k,x-l,Cookie", "1",
            "Keep-Alive, X-E,TE", "keep-alive", " Keep-Alive , ,KEEP-ALIVE", "", "keep-alive, x-a",
        ];
        let mut h = HeaderMap::new();
        for (n, v) in picks {
            h.append(HeaderName::from_static(NAMES[n]), HeaderValue::from_static(VALUES[v]));
        }
        let want = hop_by_hop_model(&h);
        strip_hop_by_hop(&mut h);
        proptest::prop_assert_eq!(by_name(&h), want);
    }

    #[test]
    fn forwarded_for_is_the_address_as_rust_writes_it(v4: u32, v6: u128, four: bool) {
        let ip = if four {
            IpAddr::from(v4.to_be_bytes())
        } else {
            IpAddr::from(v6.to_be_bytes())
        };
        let mut text = [0u8; 48];
        let len = format_ip(&mut text, ip).unwrap();
        let want = ip.to_string();
        proptest::prop_assert_eq!(&text[..len], want.as_bytes());
    }
}

#[test]
fn hop_by_hop_names_are_the_list() {
    for name in HOP_BY_HOP {
        assert!(is_hop_by_hop(name), "{name}");
    }
    for other in [
        "host",
        "cookie",
        "connections",
        "te2",
        "x-te",
        "keep-alive-x",
        "trailers",
    ] {
        assert!(!is_hop_by_hop(other), "{other}");
    }
}

#[test]
fn our_headers_survive_a_connection_header_naming_them() {
    let mut h = map(&[
        ("connection", "X-User-Info, X-Forwarded-For"),
        ("x-user-info", "{}"),
    ]);
    strip_hop_by_hop(&mut h);
    strip_reserved(&mut h);
    set_forwarded(&mut h, "10.0.0.1".parse().unwrap(), None);
    assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.1");
    assert!(!h.contains_key("x-user-info"));
}

#[test]
fn detached_values_share_nothing_with_the_read_buffer() {
    let read_buf = bytes::Bytes::from_static(b"text/plain\x00nginx\x00\xe9t\xe9").slice(..);
    let mut h = HeaderMap::new();
    let slice =
        |r: std::ops::Range<usize>| HeaderValue::from_maybe_shared(read_buf.slice(r)).unwrap();
    h.insert(header::CONTENT_TYPE, slice(0..10));
    h.append(header::SERVER, slice(11..16));
    h.append(header::SERVER, slice(17..20));
    let mut secret = HeaderValue::from_static("s");
    secret.set_sensitive(true);
    h.insert(header::SET_COOKIE, secret);
    detach_values(&mut h);
    let within = read_buf.as_ptr_range();
    for v in h.values() {
        assert!(
            !within.contains(&v.as_bytes().as_ptr()),
            "{v:?} still in the buffer"
        );
    }
    assert_eq!(h[header::CONTENT_TYPE], "text/plain");
    let servers: Vec<_> = h.get_all(header::SERVER).iter().collect();
    assert_eq!(
        servers,
        [
            &HeaderValue::from_static("nginx"),
            &HeaderValue::from_bytes(b"\xe9t\xe9").unwrap()
        ]
    );
    assert!(h[header::SET_COOKIE].is_sensitive());
}

#[test]
fn connection_tokens_survive_a_non_utf8_neighbour() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_bytes(b"x-\xe9, X-Secret").unwrap(),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("accept", HeaderValue::from_static("*/*"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
}

fn ws_request(pairs: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::new(());
    *req.headers_mut() = map(pairs);
    req
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

#[test]
fn only_a_well_formed_websocket_handshake_is_an_upgrade() {
    let good = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", KEY),
    ];
    assert_eq!(websocket_key(&ws_request(&good)).unwrap(), KEY);
    let without = |skip: &str| -> Vec<(&str, &str)> {
        good.iter().filter(|(k, _)| *k != skip).copied().collect()
    };
    let with = |k: &'static str, v: &'static str| -> Vec<(&str, &str)> {
        let mut h = without(k);
        h.push((k, v));
        h
    };
    for bad in [
        without("connection"),
        without("upgrade"),
        without("sec-websocket-version"),
        without("sec-websocket-key"),
        with("upgrade", "h2c"),
        with("upgrade", "websocket, h2c"),
        with("upgrade", "foo"),
        with("sec-websocket-version", "8"),
        with("sec-websocket-key", "short"),
        with("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZXh4eA=="),
        with("connection", "keep-alive"),
    ] {
        assert!(websocket_key(&ws_request(&bad)).is_none(), "{bad:?}");
    }
    let mut post = ws_request(&good);
    *post.method_mut() = Method::POST;
    assert!(websocket_key(&post).is_none());
    let mut h10 = ws_request(&good);
    *h10.version_mut() = Version::HTTP_10;
    assert!(websocket_key(&h10).is_none());
}

#[test]
fn a_101_must_carry_the_matching_accept() {
    let key = HeaderValue::from_static(KEY);
    // The example of RFC 6455 §1.3.
    assert_eq!(websocket_accept(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let ok = map(&[
        ("upgrade", "websocket"),
        ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]);
    assert!(websocket_accepted(&ok, &key));
    for bad in [
        map(&[("upgrade", "websocket"), ("sec-websocket-accept", "x")]),
        map(&[("upgrade", "websocket")]),
        map(&[
            ("upgrade", "h2c"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]),
    ] {
        assert!(!websocket_accepted(&bad, &key), "{bad:?}");
    }
}

#[test]
fn every_reserved_entry_passes_the_first_byte_filters() {
    // `is_reserved` looks at an entry only when its first byte is the name's (a `_` in a
    // name reads as `-`, so no entry may start with `-`), after a match on the first bytes.
    for (want, _) in RESERVED {
        let first = want.as_bytes()[0];
        assert_ne!(first, b'-', "{want}");
        let name = HeaderName::from_bytes(want.as_bytes()).unwrap();
        assert!(is_reserved(&name), "{want}");
    }
}

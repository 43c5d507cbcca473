//! The gateway's headers, written into a head or set in a map: the same headers either way,
//! each once, whatever the request's map still holds.

use std::sync::Arc;

use http::{Method, Uri};
use proptest::prelude::*;
use serde_json::Map;

use super::*;
use crate::gateway::session::{Session, Verified};
use crate::upstream::h1::encode_head;

fn identity(assertion: bool) -> Outgoing {
    let mut user = Map::new();
    user.insert("email".into(), "a@example.com".into());
    let session = Session {
        sub: "dev:a".into(),
        provider: "dev".into(),
        user,
        groups: vec!["ops".into()],
        exp: u64::MAX,
        seen: 0,
        host: None,
    };
    let spec = [(HeaderName::from_static("remote-email"), "email".to_owned())];
    Outgoing {
        verified: Arc::new(Verified::new(session, &spec)),
        assertion: assertion.then(|| HeaderValue::from_static("eyJ.assert.ion")),
    }
}

fn added(peer: &str, forwarded_host: Option<&'static str>, who: Option<Outgoing>) -> Added {
    Added {
        host: HeaderValue::from_static("backend:8080"),
        peer: peer.parse().unwrap(),
        forwarded_host: forwarded_host.map(HeaderValue::from_static),
        identity: who,
        request_id: HeaderValue::from_static("req-1"),
        cookies: OwnCookies::Absent,
    }
}

/// The head's header lines, read back with httparse, in order.
fn lines_of(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    assert!(req.parse(head).unwrap().is_complete(), "a whole head");
    req.headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect()
}

/// A map's headers, sorted (a map's order is its own; a head's is the gateway's).
fn sorted(mut lines: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    lines.sort();
    lines
}

#[test]
fn the_head_gets_our_lines_first_and_none_of_the_clients_of_those_names() {
    let mut map = HeaderMap::new();
    for (name, value) in [
        ("host", "evil.example"),
        ("x-request-id", "chosen-by-client"),
        ("x-forwarded-for", "1.2.3.4"),
        ("x-user-info", "{\"sub\":\"admin\"}"),
        ("remote-email", "admin@example.com"),
        ("x-user-assertion", "forged"),
        ("accept", "text/html"),
    ] {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let set = added("10.1.2.3", Some("app.example"), Some(identity(true)));
    let mut head = Vec::new();
    let uri: Uri = "/x?y=1".parse().unwrap();
    encode_head(&mut head, &Method::GET, &uri, &map, &set).unwrap();
    let text = String::from_utf8(head.clone()).unwrap();
    let info = set
        .identity
        .as_ref()
        .unwrap()
        .verified
        .user_info
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        text,
        format!(
            "GET /x?y=1 HTTP/1.1\r\nhost: backend:8080\r\nx-forwarded-for: 10.1.2.3\r\n\
             x-forwarded-proto: https\r\nx-forwarded-host: app.example\r\nx-user-info: {info}\r\n\
             remote-email: a@example.com\r\nx-user-assertion: eyJ.assert.ion\r\n\
             x-request-id: req-1\r\naccept: text/html\r\n\r\n"
        )
    );
    // Without identity, no forwarded host, an IPv6 peer: `X-User-*` is still left out (the
    // strips remove it before; this is the second fence). A configured identity header is
    // only known as such with a user (its strip is `identity::strip_configured`).
    let set = added("2001:db8::1", None, None);
    encode_head(&mut head, &Method::GET, &uri, &map, &set).unwrap();
    let got = lines_of(&head);
    assert_eq!(
        got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-request-id",
            "remote-email",
            "accept"
        ]
    );
    assert_eq!(got[1].1, b"2001:db8::1");
}

#[test]
fn the_gateways_cookies_reach_no_upstream_written_or_set() {
    let mut map = HeaderMap::new();
    map.append(
        header::COOKIE,
        HeaderValue::from_static(
            "app=1; __Host-oauthgate-session=sealed; __Host-oauthgate-login-x=y",
        ),
    );
    map.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
    map.append(header::ACCEPT, HeaderValue::from_static("*/*"));
    let mut set = added("192.0.2.7", None, None);
    set.cookies = crate::gateway::session::own_cookies_cut(&map);
    // Written into the head (a bodiless request), the map's cookies are left out.
    let mut head = Vec::new();
    encode_head(&mut head, &Method::GET, &"/".parse().unwrap(), &map, &set).unwrap();
    let written = lines_of(&head);
    let cookies: Vec<_> = written.iter().filter(|(n, _)| n == "cookie").collect();
    assert_eq!(cookies.len(), 1, "{written:?}");
    assert_eq!(cookies[0].1, b"app=1; theme=dark");
    assert!(!head.windows(17).any(|w| w == b"__Host-oauthgate-"));
    // Set in the map (an upload, a WebSocket): the same.
    set.set_in(&mut map);
    let in_map: Vec<_> = map.get_all(header::COOKIE).iter().collect();
    assert_eq!(in_map, [&HeaderValue::from_static("app=1; theme=dark")]);
    // Only ours: no `Cookie` at all, either way.
    let mut only = HeaderMap::new();
    only.insert(
        header::COOKIE,
        HeaderValue::from_static("__Host-oauthgate-session=sealed"),
    );
    set.cookies = crate::gateway::session::own_cookies_cut(&only);
    encode_head(&mut head, &Method::GET, &"/".parse().unwrap(), &only, &set).unwrap();
    assert!(lines_of(&head).iter().all(|(n, _)| n != "cookie"));
    set.set_in(&mut only);
    assert!(!only.contains_key(header::COOKIE));
    // None of ours: the client's headers go as they came.
    let mut theirs = HeaderMap::new();
    theirs.append(header::COOKIE, HeaderValue::from_static("a=1"));
    theirs.append(header::COOKIE, HeaderValue::from_static("b=2"));
    set.cookies = crate::gateway::session::own_cookies_cut(&theirs);
    assert_eq!(set.cookies, OwnCookies::Absent);
    encode_head(
        &mut head,
        &Method::GET,
        &"/".parse().unwrap(),
        &theirs,
        &set,
    )
    .unwrap();
    let cookies: Vec<_> = lines_of(&head)
        .into_iter()
        .filter(|(n, _)| n == "cookie")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(cookies, [b"a=1".to_vec(), b"b=2".to_vec()]);
}

const NAMES: [&str; 10] = [
    "host",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-user-info",
    "x-user-assertion",
    "remote-email",
    "accept",
    "cookie",
];

proptest! {
    /// Written into a head (the hot path) or set in the map (a request hyper sends), a
    /// request carries the same headers: ours once each, the rest as they were.
    #[test]
    fn written_or_set_the_request_carries_the_same_headers(
        map_lines in prop::collection::vec((prop::sample::select(&NAMES[..]), "[a-z0-9.]{0,8}"), 0..8),
        v6: bool,
        forwarded_host: bool,
        who in prop::option::of(any::<bool>()),
        cut in prop::option::of(prop::option::of("[a-z0-9=]{1,8}")),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &map_lines {
            map.append(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        let peer = if v6 { "::1" } else { "192.0.2.7" };
        let mut set = added(peer, forwarded_host.then_some("app.example"), who.map(identity));
        if let Some(kept) = &cut {
            set.cookies = OwnCookies::Cut(kept.as_deref().map(|v| HeaderValue::from_str(v).unwrap()));
        }
        let mut head = Vec::new();
        encode_head(&mut head, &Method::GET, &"/".parse().unwrap(), &map, &set).unwrap();
        let written = lines_of(&head);
        set.set_in(&mut map);
        let in_map: Vec<(String, Vec<u8>)> = map
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        // hyper's path sets ours over the client's (the strips before have removed the
        // client's forwarding and identity headers). Only those it does not set may remain
        // in the map from the client: `X-Forwarded-Host` when the client named no host,
        // `X-User-Info` and the assertion without a user, the assertion when it is off. The
        // head leaves them out.
        let left_out = |n: &str| {
            (n == "x-forwarded-host" && !forwarded_host)
                || (who.is_none() && matches!(n, "x-user-info" | "x-user-assertion"))
                || (who == Some(false) && n == "x-user-assertion")
        };
        let in_map: Vec<_> = in_map.into_iter().filter(|(n, _)| !left_out(n)).collect();
        prop_assert_eq!(sorted(written.clone()), sorted(in_map));
        for ours in ["host", "x-forwarded-for", "x-forwarded-proto", "x-request-id"] {
            prop_assert_eq!(written.iter().filter(|(n, _)| n == ours).count(), 1);
        }
        // A cut `Cookie` stands for every one the client sent: it alone, or none.
        if let Some(kept) = &cut {
            let cookies: Vec<&[u8]> = written.iter().filter(|(n, _)| n == "cookie").map(|(_, v)| v.as_slice()).collect();
            let expected: Vec<&[u8]> = kept.iter().map(|v| v.as_bytes()).collect();
            prop_assert_eq!(cookies, expected);
        }
    }
}

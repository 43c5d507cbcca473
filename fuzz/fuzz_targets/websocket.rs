//! The upgrade check (SPEC §6 class 6): only a well-formed WebSocket handshake is tunnelled;
//! for every other request no `Upgrade` or `Connection` survives to the upstream, so `h2c`
//! and friends cannot open a tunnel past the route policy; a 101 is believed only with the
//! `Sec-WebSocket-Accept` of the key that was sent.
#![no_main]

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Version};
use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{
    set_websocket_upgrade, strip_hop_by_hop, websocket_accept, websocket_accepted, websocket_key,
};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut req = Request::new(());
    *req.method_mut() =
        [Method::GET, Method::POST, Method::CONNECT][usize::from(first & 3) % 3].clone();
    *req.version_mut() =
        [Version::HTTP_11, Version::HTTP_10, Version::HTTP_2][usize::from(first >> 2 & 3) % 3];
    *req.headers_mut() = common::headers(rest);
    let h = req.headers();
    let key = websocket_key(&req);

    if let Some(key) = &key {
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.version(), Version::HTTP_11);
        let upgrades: Vec<_> = h.get_all(header::UPGRADE).iter().collect();
        assert_eq!(upgrades.len(), 1, "{h:?}");
        assert!(upgrades[0]
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"websocket"));
        assert!(h
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade")));
        let versions: Vec<_> = h.get_all("sec-websocket-version").iter().collect();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].as_bytes().trim_ascii(), b"13");
        assert_eq!(h.get_all("sec-websocket-key").iter().count(), 1);
        assert_eq!(
            B64.decode(key.as_bytes().trim_ascii()).map(|k| k.len()),
            Ok(16)
        );
        // Only the upstream's answer to this very key is believed.
        let answer = |upgrade: &'static str, accept: &str| {
            let mut a = HeaderMap::new();
            a.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
            a.insert(
                "sec-websocket-accept",
                HeaderValue::from_str(accept).expect("base64"),
            );
            a
        };
        let accept = websocket_accept(key);
        assert!(websocket_accepted(&answer("websocket", &accept), key));
        assert!(!websocket_accepted(&answer("h2c", &accept), key));
        let other = websocket_accept(&HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        if other != accept {
            assert!(!websocket_accepted(&answer("websocket", &other), key));
        }
    }

    // What the upstream gets.
    let mut sent = req.headers().clone();
    strip_hop_by_hop(&mut sent);
    if key.is_some() {
        set_websocket_upgrade(&mut sent);
        assert_eq!(
            sent.get_all(header::UPGRADE).iter().collect::<Vec<_>>(),
            ["websocket"]
        );
        assert_eq!(
            sent.get_all(header::CONNECTION).iter().collect::<Vec<_>>(),
            ["upgrade"]
        );
    } else {
        assert!(!sent.contains_key(header::UPGRADE), "{:?}", req.headers());
        assert!(!sent.contains_key(header::CONNECTION));
        assert!(!sent.contains_key("http2-settings"));
    }
});

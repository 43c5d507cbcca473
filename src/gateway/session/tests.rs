//! Unit tests of sessions: identity headers, rotation with previous secrets, renewal once per
//! cookie.

use super::*;

#[test]
fn user_info_is_ascii_json_with_provider_and_sub_first() {
    let mut user = Map::new();
    user.insert("name".into(), "Zoë 😀".into());
    user.insert("sub".into(), "spoofed".into());
    user.insert("groups".into(), "spoofed".into());
    let mut s = Session {
        sub: "github:1".into(),
        provider: "github".into(),
        user,
        groups: Vec::new(),
        exp: 0,
        seen: 0,
        host: None,
    };
    let h = s.user_info_header();
    let text = h.to_str().unwrap();
    assert_eq!(
        text,
        r#"{"provider":"github","sub":"github:1","groups":[],"name":"Zo\u00eb \ud83d\ude00"}"#
    );
    s.groups = vec!["acme".into(), "acme/ops".into()];
    assert!(s
        .user_info_header()
        .to_str()
        .unwrap()
        .contains(r#""groups":["acme","acme/ops"],"#));
    let back: Value = serde_json::from_str(text).unwrap();
    assert_eq!(back["name"], "Zoë 😀");
}

const OLD: &str = "old-secret-of-at-least-32-characters-00";
const NEW: &str = "new-secret-of-at-least-32-characters-00";

fn sessions(secret: &str, previous: &[&str], idle: Option<u64>) -> Sessions {
    let previous: Vec<Secret> = previous.iter().map(|s| Secret((*s).to_owned())).collect();
    let keys = Keys {
        secret: Some(&Secret(secret.to_owned())),
        previous: &previous,
    };
    let life = (Duration::from_secs(3600), idle.map(Duration::from_secs));
    Sessions::new(
        keys,
        Path::new("/nonexistent"),
        life,
        "__Host-s",
        Vec::new(),
        None,
    )
    .unwrap()
}

/// The request a browser sends after storing `set`.
fn carrying(set: &HeaderValue) -> HeaderMap {
    let pair = set.to_str().unwrap().split(';').next().unwrap();
    HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_str(pair).unwrap())])
}

fn alice(seen: u64) -> Session {
    Session {
        sub: "dev:alice".into(),
        provider: "dev".into(),
        user: Map::new(),
        groups: Vec::new(),
        exp: now() + 1800,
        seen,
        host: None,
    }
}

#[test]
fn a_cookie_of_a_previous_secret_opens_once_renewed_with_the_current_one() {
    let old = carrying(&sessions(OLD, &[], None).issue(&alice(now())));
    assert!(sessions(NEW, &[], None).current(&old, None).is_none());
    let rotating = sessions(NEW, &[OLD], None);
    let v = rotating
        .current(&old, None)
        .expect("opens with the previous secret");
    let renewed = v.renewal().expect("re-sealed").clone();
    let text = renewed.to_str().unwrap();
    assert!(
        text.contains("Max-Age=1800") || text.contains("Max-Age=1799"),
        "{text}"
    );
    // The new cookie opens with the new secret alone, needs no renewal, and ends when
    // the old one did.
    let new = sessions(NEW, &[], None)
        .current(&carrying(&renewed), None)
        .expect("opens");
    assert!(new.renewal().is_none());
    assert_eq!(new.session.exp, v.session.exp);
    // A cookie of the current secret is not re-sealed.
    let current = rotating.issue(&alice(now()));
    assert!(rotating
        .current(&carrying(&current), None)
        .unwrap()
        .renewal()
        .is_none());
}

#[test]
fn a_due_session_is_sealed_once_for_all_its_requests() {
    let idle = sessions(NEW, &[], Some(600));
    let fresh = carrying(&idle.issue(&alice(now())));
    assert!(idle.current(&fresh, None).unwrap().renewal().is_none());
    let due = carrying(&idle.issue(&alice(now() - 61)));
    let first = idle.current(&due, None).unwrap();
    let second = idle.current(&due, None).unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "the memo keeps one value per cookie"
    );
    assert_eq!(first.renewal(), second.renewal());
    let renewed = idle
        .current(&carrying(first.renewal().unwrap()), None)
        .unwrap();
    assert!(
        renewed.session.seen >= now() - 1,
        "{}",
        renewed.session.seen
    );
    assert!(renewed.renewal().is_none());
    let idled = carrying(&idle.issue(&alice(now() - 600)));
    assert!(
        idle.current(&idled, None).is_none(),
        "unused for idle_timeout"
    );
}

/// How the session cookie was found before it was searched for: pair by pair, in headers that
/// are visible ASCII.
fn cookie_value_model<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

proptest::proptest! {
    #[test]
    fn the_session_cookie_is_found_as_pair_by_pair(
        headers in proptest::collection::vec(proptest::collection::vec(0usize..11, 0..10), 1..4),
    ) {
        const NAME: &str = "__Host-oauthgate-session";
        const PIECES: [&str; 11] = [
            "__Host-oauthgate-session=abc", "__Host-oauthgate-session=", "__Host-oauthgate-session",
            "x__Host-oauthgate-session=no", "a=__Host-oauthgate-session=no", ";", " ", "\t", "=",
            "b=2", "__Host-oauthgate-session =no",
        ];
        let mut h = HeaderMap::new();
        for pieces in &headers {
            let value: String = pieces.iter().map(|&i| PIECES[i]).collect();
            h.append(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        }
        let finder = memchr::memmem::Finder::new(NAME);
        proptest::prop_assert_eq!(session_cookie_value(&h, &finder), cookie_value_model(&h, NAME));
        // The first value, looked up without a UTF-8 check (every piece here is text).
        proptest::prop_assert_eq!(
            session_cookie_values(&h, &finder).next(),
            cookie_value_model(&h, NAME).map(str::as_bytes)
        );
    }
}

#[test]
fn another_apps_cookie_that_is_not_ascii_does_not_hide_the_session() {
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_bytes(b"x=\xe9; __Host-oauthgate-session=abc; y=2").unwrap(),
    );
    let finder = memchr::memmem::Finder::new("__Host-oauthgate-session");
    assert_eq!(session_cookie_value(&h, &finder), Some("abc"));
    assert_eq!(cookie_value_model(&h, "__Host-oauthgate-session"), None);
}

#[test]
fn the_cookie_opened_is_the_one_found_and_remembered() {
    let s = sessions(NEW, &[], None);
    let set = s.issue(&alice(now()));
    let valid = set.to_str().unwrap().split(';').next().unwrap().to_owned();
    // A first Cookie header that is not visible ASCII, naming junk as the session, and a
    // second with a real one. Found: the junk. Opened: the junk too (a review finding: the
    // opener read the cookie crate's first readable header, the real one, and the memo kept
    // it under the junk's name, a key of the client's choosing).
    let mut h = HeaderMap::new();
    h.append(
        header::COOKIE,
        HeaderValue::from_bytes(b"x=\xe9; __Host-s=junk").unwrap(),
    );
    h.append(header::COOKIE, HeaderValue::from_str(&valid).unwrap());
    assert!(s.current(&h, None).is_none());
    // The real one, beside a cookie that is not ASCII, opens.
    let beside = format!("x=\u{e9}; {valid}");
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_bytes(beside.as_bytes()).unwrap(),
    );
    assert_eq!(s.current(&h, None).unwrap().session.sub, "dev:alice");
    // A first value that is not text hides neither the real one after it, opened or
    // remembered, nor is it remembered in its place.
    let mut after = b"__Host-s=\xff; ".to_vec();
    after.extend_from_slice(valid.as_bytes());
    let h = HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_bytes(&after).unwrap())]);
    for _ in 0..2 {
        assert_eq!(s.current(&h, None).unwrap().session.sub, "dev:alice");
    }
    assert!(s.memo.get(b"\xff").is_none());
    // One longer than a browser keeps is not looked at.
    let long = format!("__Host-s={}", "A".repeat(MAX_COOKIE + 1));
    let h = HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_str(&long).unwrap())]);
    assert!(s.current(&h, None).is_none());
}

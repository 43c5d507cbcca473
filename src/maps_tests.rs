//! `fill` against the plain way (append each header to a new map), from any map it may be
//! handed; and the kept lists.

use proptest::prelude::*;

use super::*;

/// A head made of these (name, value) lines, and where each lies in it.
fn head_of(lines: &[(&str, &str)]) -> (Bytes, Vec<Line>) {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    let mut at = Vec::new();
    for (name, value) in lines {
        let n0 = head.len() as u32;
        head.extend_from_slice(name.as_bytes());
        let n1 = head.len() as u32;
        head.extend_from_slice(b": ");
        let v0 = head.len() as u32;
        head.extend_from_slice(value.as_bytes());
        let v1 = head.len() as u32;
        head.extend_from_slice(b"\r\n");
        at.push((n0, n1, v0, v1));
    }
    (Bytes::from(head), at)
}

/// The plain way: each header appended to a new map.
fn appended(head: &Bytes, lines: &[Line]) -> Result<HeaderMap, Invalid> {
    let mut map = HeaderMap::new();
    for &(n0, n1, v0, v1) in lines {
        let name = HeaderName::from_bytes(&head[n0 as usize..n1 as usize]).map_err(|_| Invalid)?;
        let value =
            HeaderValue::from_bytes(&head[v0 as usize..v1 as usize]).map_err(|_| Invalid)?;
        map.append(name, value);
    }
    Ok(map)
}

/// A map's headers in iteration order, and each name's values.
type Seen = (Vec<(String, Vec<u8>)>, Vec<Vec<Vec<u8>>>);

/// What anyone can see of a map: its headers in iteration order, and every name's values.
fn seen(map: &HeaderMap) -> Seen {
    let order = map
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let by_name = map
        .keys()
        .map(|n| {
            map.get_all(n)
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect()
        })
        .collect();
    (order, by_name)
}

const NAMES: [&str; 9] = [
    "Host",
    "host",
    "Content-Type",
    "content-TYPE",
    "Set-Cookie",
    "x-custom",
    "X-Custom",
    "a",
    "bad name",
];
const VALUES: [&str; 5] = ["", "v", "text/html; charset=utf-8", "a\u{1}b", " x "];

fn lines() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    prop::collection::vec(
        (
            prop::sample::select(&NAMES[..]),
            prop::sample::select(&VALUES[..]),
        ),
        0..8,
    )
}

/// Valid header names (lower case, as `HeaderName` keeps them), some long.
fn name() -> impl Strategy<Value = String> {
    "[a-z0-9!#$%&'*+.^_`|~-]{1,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Eight bytes at a time, a name compares as `eq_ignore_ascii_case` does: against
    /// itself in any case, and against any bytes at all.
    #[test]
    fn names_compare_as_eq_ignore_ascii_case(
        name in name(),
        flips in prop::collection::vec(any::<bool>(), 40),
        other in prop::collection::vec(any::<u8>(), 0..41),
        swap in (0usize..40, any::<u8>()),
    ) {
        let cased: Vec<u8> = name
            .bytes()
            .zip(&flips)
            .map(|(b, &up)| if up { b.to_ascii_uppercase() } else { b })
            .collect();
        let mut changed = cased.clone();
        let at = swap.0 % changed.len();
        changed[at] = swap.1;
        for raw in [&cased[..], &changed[..], &other[..]] {
            prop_assert_eq!(same_name(raw, name.as_bytes()), raw.eq_ignore_ascii_case(name.as_bytes()));
        }
    }

    /// Up to eight bytes read as one word: each byte in its place, zeros after.
    #[test]
    fn a_word_holds_its_bytes_in_order(bytes in prop::collection::vec(any::<u8>(), 0..12)) {
        let model = bytes
            .iter()
            .take(8)
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | (u64::from(b) << (8 * i)));
        prop_assert_eq!(word(&bytes), model);
    }

    /// Whatever map `fill` starts from (the last head's names, in any order, some removed,
    /// values blank or not), it ends as the plain way's map, or empty with `Err` where that
    /// fails.
    #[test]
    fn fill_makes_the_map_the_lines_make_from_any_map(
        before in lines(),
        removed in prop::collection::vec(prop::sample::select(&NAMES[..]), 0..2),
        blank: bool,
        now in lines(),
        room in 0usize..4,
    ) {
        let (old_head, old_lines) = head_of(&before);
        let mut map = HeaderMap::new();
        // The last head's map, as a kept one would be: filled, perhaps changed, given back.
        let _ = fill(&mut map, &old_head, &old_lines, 0);
        for name in removed {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                map.remove(name);
            }
        }
        if blank {
            for v in map.values_mut() {
                *v = HeaderValue::from_static("");
            }
        }
        let (head, at) = head_of(&now);
        let filled = fill(&mut map, &head, &at, room);
        match appended(&head, &at) {
            Ok(want) => {
                prop_assert_eq!(filled, Ok(()));
                prop_assert_eq!(seen(&map), seen(&want));
                prop_assert!(map.capacity() >= map.keys_len() + room);
            }
            Err(e) => {
                prop_assert_eq!(filled, Err(e));
                prop_assert!(map.is_empty());
            }
        }
    }
}

#[test]
fn names_that_differ_only_in_the_case_bit_of_a_non_letter_differ() {
    // Pairs of bytes 0x20 apart where at least one is no letter: not the same name.
    for (a, b) in [
        (b'^', b'~'),
        (b'@', b'`'),
        (b'[', b'{'),
        (b'_', 0x7f),
        (b'-', 0x0d),
        (b'0', 0x10),
    ] {
        for name in [[a].as_slice(), &[b'x', a, b'y'], &[b'a'; 9], &[a; 17]] {
            let other: Vec<u8> = name.iter().map(|&c| if c == a { b } else { c }).collect();
            if other != name {
                assert!(!same_name(&other, name), "{other:?} {name:?}");
                assert!(!same_name(name, &other), "{name:?} {other:?}");
            }
        }
    }
    assert!(same_name(b"Content-Length", b"content-length"));
    assert!(same_name(
        b"X-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        b"x-abcdefghijklmnopqrstuvwxyz"
    ));
    assert!(!same_name(b"Content-Lengt\xc8", b"content-length"));
}

#[test]
fn the_same_names_again_keep_the_map_and_take_the_new_values() {
    let (head, at) = head_of(&[
        ("Server", "a"),
        ("Content-Length", "1"),
        ("Set-Cookie", "x"),
    ]);
    let mut map = HeaderMap::new();
    fill(&mut map, &head, &at, 0).unwrap();
    give(Kind::Response, map);
    let mut map = take(Kind::Response).0;
    assert_eq!(map.len(), 3);
    assert!(map.values().all(|v| v.is_empty()), "given back blank");
    // Same names, other case, one more: the first three are reused, the fourth appended.
    let (head, at) = head_of(&[
        ("server", "b"),
        ("CONTENT-LENGTH", "22"),
        ("Set-Cookie", "y"),
        ("set-cookie", "z"),
    ]);
    fill(&mut map, &head, &at, 0).unwrap();
    assert_eq!(seen(&map), seen(&appended(&head, &at).unwrap()));
    assert_eq!(map.get_all("set-cookie").iter().count(), 2);
    // Every value is a slice of the new head: nothing of the old one is held.
    let span = head.as_ptr() as usize..head.as_ptr() as usize + head.len();
    assert!(map
        .values()
        .all(|v| span.contains(&(v.as_bytes().as_ptr() as usize))));
}

#[test]
fn a_kept_map_holds_no_byte_of_the_message_it_carried() {
    let head = Bytes::from(b"HTTP/1.1 200 OK\r\nServer: a\r\n\r\n".to_vec());
    let (_, at) = head_of(&[("Server", "a")]);
    let mut map = HeaderMap::new();
    fill(&mut map, &head, &at, 0).unwrap();
    assert!(!head.is_unique(), "the map's value is a slice of it");
    give(Kind::Request, map);
    // The head's only owner again: its buffer can be taken back whole.
    assert!(head.is_unique());
    let map = take(Kind::Request).0;
    assert_eq!(
        map.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
        ["server"]
    );
}

#[test]
fn requests_and_responses_keep_maps_apart_and_within_bounds() {
    // Tests run on threads of their own: this thread's lists are this test's.
    let spares = |kind: Kind| kind.list().with(|l| l.borrow().len());
    let mut request = HeaderMap::new();
    request.insert(http::header::HOST, HeaderValue::from_static("a"));
    give(Kind::Request, request);
    assert_eq!((spares(Kind::Request), spares(Kind::Response)), (1, 0));
    assert!(take(Kind::Response).0.is_empty(), "none kept: a new one");
    assert!(take(Kind::Request).0.contains_key(http::header::HOST));
    // A map that grew large is freed, not kept.
    let big = HeaderMap::with_capacity(KEEP_HEADERS + 1);
    give(Kind::Response, big);
    assert_eq!(spares(Kind::Response), 0);
    let most = HeaderMap::with_capacity(KEEP_HEADERS);
    assert_eq!(most.capacity(), KEEP_HEADERS);
    give(Kind::Response, most);
    assert_eq!(spares(Kind::Response), 1);
    for _ in 0..SPARES + 3 {
        give(Kind::Response, HeaderMap::new());
    }
    assert_eq!(spares(Kind::Response), SPARES);
}

#[test]
fn the_threads_line_list_comes_back_empty_and_is_never_lent_twice() {
    let mut lines = take_lines();
    assert!(lines.is_empty());
    lines.extend([(0, 1, 2, 3), (4, 5, 6, 7)]);
    // Lent out: another head parsed meanwhile gets a list of its own.
    let other = take_lines();
    assert!(other.is_empty());
    give_lines(lines);
    let again = take_lines();
    assert!(again.is_empty(), "no positions of the last head");
    assert!(again.capacity() >= 2, "its room is kept");
    give_lines(again);
}

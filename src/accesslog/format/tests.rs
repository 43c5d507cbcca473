//! The access line's formatter: escaping, numbers, time, both formats.

use super::*;

fn sample() -> Line<'static> {
    Line {
        // 2026-11-30T06:10:17.042Z
        time: UNIX_EPOCH + Duration::from_millis(1_796_019_017_042),
        request_id: b"AAAAAAAAAAAAAAAAAAAAAA",
        peer: "10.1.2.3".parse().unwrap(),
        method: "GET",
        path: "/app/x",
        status: 200,
        route: "/app",
        duration: Duration::from_micros(1_234_567),
        user: None,
        verdict: Verdict::Pass,
        reason: None,
    }
}

fn text(l: &Line<'_>, format: LogFormat) -> String {
    let mut out = Vec::new();
    line(&mut out, &mut Clock::default(), format, l);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_text_line_keeps_key_value_fields() {
    assert_eq!(
        text(&sample(), LogFormat::Text),
        "2026-11-30T06:10:17.042Z  INFO access: request_id=AAAAAAAAAAAAAAAAAAAAAA \
         peer=10.1.2.3 method=GET path=/app/x status=200 route=/app duration=1234.567 \
         user=- decision=pass\n"
    );
    let denied = Line {
        user: Some("alice smith"),
        verdict: Verdict::Deny,
        reason: Some("not_allowed"),
        ..sample()
    };
    let got = text(&denied, LogFormat::Text);
    assert!(
        got.ends_with(" user=\"alice smith\" decision=deny reason=not_allowed\n"),
        "{got}"
    );
}

#[test]
fn the_json_line_has_every_field_with_its_type() {
    let l = Line {
        peer: "::1".parse().unwrap(),
        user: Some("u-1"),
        verdict: Verdict::Error,
        reason: Some("upstream_timeout"),
        status: 504,
        ..sample()
    };
    let got = text(&l, LogFormat::Json);
    assert!(got.ends_with("}\n") && got.matches('\n').count() == 1);
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(v["time"], "2026-11-30T06:10:17.042Z");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["target"], "access");
    assert_eq!(v["peer"], "::1");
    assert_eq!(v["status"], 504);
    assert_eq!(v["duration"].as_f64(), Some(1234.567));
    assert_eq!(v["user"], "u-1");
    assert_eq!(v["decision"], "error");
    assert_eq!(v["reason"], "upstream_timeout");
    assert_eq!(v["path"], "/app/x");
    assert_eq!(v["request_id"], "AAAAAAAAAAAAAAAAAAAAAA");
}

#[test]
fn every_byte_is_escaped_so_the_line_parses() {
    // Every byte a string field may hold, as UTF-8 (the sub comes from an identity provider).
    let all: String = (0u32..=0x7f)
        .chain([0xe9, 0x2028, 0x1f600])
        .filter_map(char::from_u32)
        .collect();
    let id: Vec<u8> = b"id\"\\\x01".to_vec();
    let l = Line {
        user: Some(&all),
        method: "G\"ET",
        request_id: &id,
        ..sample()
    };
    for format in [LogFormat::Json, LogFormat::Text] {
        let got = text(&l, format);
        assert_eq!(got.matches('\n').count(), 1, "{got:?}");
        assert!(!got.bytes().any(|b| b < 0x20 && b != b'\n'), "{got:?}");
    }
    let v: serde_json::Value = serde_json::from_str(&text(&l, LogFormat::Json)).unwrap();
    assert_eq!(v["user"].as_str(), Some(all.as_str()));
    assert_eq!(v["method"], "G\"ET");
    assert_eq!(v["request_id"], "id\"\\\u{1}");
    // Text: quoted and escaped the same way, so it reads back.
    let t = text(&l, LogFormat::Text);
    let quoted = t.split(" user=").nth(1).unwrap();
    let back: String = serde_json::Deserializer::from_str(quoted)
        .into_iter::<String>()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(back, all);
}

#[test]
fn paths_are_percent_encoded_outside_visible_ascii() {
    let path = "/a b/\u{e9}\"\\\t%41";
    let l = Line { path, ..sample() };
    let v: serde_json::Value = serde_json::from_str(&text(&l, LogFormat::Json)).unwrap();
    assert_eq!(v["path"], "/a%20b/%C3%A9\"\\%09%41");
    assert!(text(&l, LogFormat::Text).contains(" path=/a%20b/%C3%A9\"\\%09%41 "));
}

#[test]
fn json_escape_covers_controls_quotes_and_backslashes() {
    let mut out = Vec::new();
    json_escape(&mut out, b"a\"b\\c\nd\re\tf\x00g\x1fh\x7fi");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"a\"b\\c\nd\re\tf\u0000g\u001fh\u007fi"#
    );
}

#[test]
fn times_are_rfc3339_utc_with_milliseconds() {
    let at = |ms: u64| {
        let mut out = Vec::new();
        Clock::default().write(&mut out, UNIX_EPOCH + Duration::from_millis(ms));
        String::from_utf8(out).unwrap()
    };
    assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(951_782_400_999), "2000-02-29T00:00:00.999Z");
    assert_eq!(at(4_107_542_399_001), "2100-02-28T23:59:59.001Z");
    assert_eq!(at(1_709_251_199_500), "2024-02-29T23:59:59.500Z");
    // The cached second is replaced when the second changes.
    let mut clock = Clock::default();
    let mut out = Vec::new();
    clock.write(&mut out, UNIX_EPOCH + Duration::from_millis(59_999));
    clock.write(&mut out, UNIX_EPOCH + Duration::from_millis(60_000));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "1970-01-01T00:00:59.999Z1970-01-01T00:01:00.000Z"
    );
}

#[test]
fn durations_have_three_decimals() {
    let ms = |d: Duration| {
        let mut out = Vec::new();
        millis(&mut out, d);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(ms(Duration::ZERO), "0.000");
    assert_eq!(ms(Duration::from_micros(83)), "0.083");
    assert_eq!(ms(Duration::from_micros(1_234_567)), "1234.567");
    assert_eq!(ms(Duration::from_nanos(999)), "0.000");
}

/// Not a check: the cost of one access line and one request id, printed. The fastest of
/// several batches, so that time the machine gave to others is left out:
/// `cargo test --release --lib -- --ignored access_line_cost --nocapture`
#[test]
#[ignore]
fn access_line_cost() {
    const N: u32 = 200_000;
    let fastest = |f: &mut dyn FnMut()| {
        (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..N {
                    f();
                }
                t.elapsed().as_nanos() as f64 / f64::from(N)
            })
            .fold(f64::MAX, f64::min)
    };
    let mut out = Vec::with_capacity(64 * 1024);
    let mut clock = Clock::default();
    let start = std::time::Instant::now();
    let line_ns = fastest(&mut || {
        if out.len() > 32 * 1024 {
            out.clear();
        }
        let l = Line {
            time: SystemTime::now(),
            duration: start.elapsed(),
            user: Some("github:583231"),
            ..sample()
        };
        line(
            &mut out,
            &mut clock,
            LogFormat::Text,
            std::hint::black_box(&l),
        );
    });
    let json_ns = fastest(&mut || {
        if out.len() > 32 * 1024 {
            out.clear();
        }
        let l = Line {
            time: SystemTime::now(),
            duration: start.elapsed(),
            ..sample()
        };
        line(
            &mut out,
            &mut clock,
            LogFormat::Json,
            std::hint::black_box(&l),
        );
    });
    let id_ns = fastest(&mut || {
        std::hint::black_box(crate::context::new_request_id());
    });
    println!(
        "text line incl. two clock reads: {line_ns:.0} ns; json line: {json_ns:.0} ns; request id: {id_ns:.0} ns"
    );
}

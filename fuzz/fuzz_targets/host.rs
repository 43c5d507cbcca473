//! The `Host` check (SPEC §6 class 6): a request reaches an upstream only when its `Host` and
//! its target's authority name `public_url`'s host, read by hand here (`name[.][:port]`, case
//! ignored); a well-formed `Host` naming it (and the same name as the target, if any) is
//! always accepted.
#![no_main]

use http::header::{self, HeaderValue};
use http::{Request, Version};
use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::check_host;

const PUBLIC: &str = "app.example.com";

/// Whether a `Host` value (or authority) names [`PUBLIC`]: the name, trailing dots allowed,
/// then an optional port of 1 to 5 digits.
fn names_public(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let (name, port) = text.split_once(':').unwrap_or((text, "0"));
    (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && name.trim_end_matches('.').eq_ignore_ascii_case(PUBLIC)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // The first line is the request target; each other line a `Host` header.
    let mut lines = rest.split(|&b| b == b'\n');
    let Ok(uri) = http::Uri::try_from(lines.next().unwrap_or(b"/")) else {
        return;
    };
    let mut req = Request::new(());
    *req.uri_mut() = uri;
    *req.version_mut() =
        [Version::HTTP_11, Version::HTTP_10, Version::HTTP_2][usize::from(first) % 3];
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            req.headers_mut().append(header::HOST, v);
        }
    }
    let hosts: Vec<&HeaderValue> = req.headers().get_all(header::HOST).iter().collect();
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    let ok = check_host(&req, PUBLIC).is_ok();
    if ok {
        assert!(hosts.len() <= 1, "{hosts:?}");
        match (hosts.first(), authority) {
            (None, None) => assert_eq!(req.version(), Version::HTTP_10),
            (h, a) => {
                for value in h.map(|h| h.as_bytes()).into_iter().chain(a) {
                    assert!(
                        names_public(value),
                        "{:?} accepted",
                        String::from_utf8_lossy(value)
                    );
                }
            }
        }
    }
    // Whatever names the public host, alone and agreeing with the target, is accepted.
    // Agreeing is the same name, case aside (`app.example.com.` and `app.example.com` do not).
    let name = |v: &[u8]| {
        String::from_utf8_lossy(v)
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let agrees = authority.is_none_or(|a| {
        names_public(a) && hosts.first().is_some_and(|h| name(h.as_bytes()) == name(a))
    });
    if hosts.len() == 1 && names_public(hosts[0].as_bytes()) && agrees {
        assert!(ok, "{:?} with target {:?} refused", hosts[0], req.uri());
    }
});

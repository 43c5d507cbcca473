//! Routing and path normalisation against the real binary: longest whole-segment prefix, and
//! every SPEC §6.2 skip-auth payload either refused with 400 or routed by the path the backend
//! then sees, byte for byte.

mod common;

use common::client::get;
use common::{Backend, Gateway};

struct Setup {
    gw: Gateway,
    private: Backend,
    public: Backend,
    admin: Backend,
}

async fn setup() -> Setup {
    let private = Backend::start().await;
    let public = Backend::start().await;
    let admin = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n\
         \x20   - {{prefix: /private, upstream: \"{}\"}}\n\
         \x20   - {{prefix: /private/admin, upstream: \"{}\"}}\n\
         \x20   - {{prefix: /, upstream: \"{}\"}}\n",
        private.url(),
        admin.url(),
        public.url()
    ));
    Setup {
        gw,
        private,
        public,
        admin,
    }
}

/// Which backend answered, and the request target it saw.
async fn probe(s: &Setup, target: &str) -> (u16, Option<(&'static str, String)>) {
    let before = (s.private.count(), s.public.count(), s.admin.count());
    let res = get(s.gw.addr, &s.gw.cert_pem(), target, "").await;
    let after = (s.private.count(), s.public.count(), s.admin.count());
    let hit = if after.0 > before.0 {
        Some(("private", s.private.last().target))
    } else if after.1 > before.1 {
        Some(("public", s.public.last().target))
    } else if after.2 > before.2 {
        Some(("admin", s.admin.last().target))
    } else {
        None
    };
    (res.status, hit)
}

#[tokio::test]
async fn longest_prefix_on_whole_segments() {
    let s = setup().await;
    for (target, backend, seen) in [
        ("/private", "private", "/private"),
        ("/private/", "private", "/private/"),
        ("/private/page?q=1", "private", "/private/page?q=1"),
        ("/privatex", "public", "/privatex"),
        ("/private/admin/users", "admin", "/private/admin/users"),
        (
            "/private/administrator",
            "private",
            "/private/administrator",
        ),
        ("/", "public", "/"),
        ("/other/deep/path", "public", "/other/deep/path"),
    ] {
        let (status, hit) = probe(&s, target).await;
        assert_eq!(status, 200, "{target}");
        assert_eq!(hit, Some((backend, seen.to_owned())), "{target}");
    }
}

#[tokio::test]
async fn skip_auth_payloads_are_refused_or_routed_by_what_the_backend_sees() {
    let s = setup().await;
    // (payload, Some((backend, exact target it must see))) or None for "refused with 400".
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        ("/public/../private", Some(("private", "/private"))),
        ("/public/%2e%2e/private", Some(("private", "/private"))),
        ("/%2e%2e/private", Some(("private", "/private"))),
        ("/%2E%2E/private/admin", Some(("admin", "/private/admin"))),
        ("/private%2F", None),
        ("/private%2fadmin", None),
        ("/public/..%2fprivate", None),
        ("/public%5c..%5cprivate", None),
        ("/public\\..\\private", None),
        ("/private%00", None),
        ("/private%zz", None),
        ("/private%ff", None),
        ("/private;x", Some(("private", "/private;x"))),
        ("/private;x/admin", Some(("admin", "/private;x/admin"))),
        ("/privatex", Some(("public", "/privatex"))),
        (
            "/private?x=/public",
            Some(("private", "/private?x=/public")),
        ),
        ("/public?x=/private", Some(("public", "/public?x=/private"))),
        (
            "/public?x=/../private",
            Some(("public", "/public?x=/../private")),
        ),
        ("/./private", Some(("private", "/private"))),
        (
            "/public/./../private/./admin",
            Some(("admin", "/private/admin")),
        ),
        ("//private", Some(("private", "/private"))),
        ("//private//admin", Some(("admin", "/private/admin"))),
        ("/%70rivate", Some(("private", "/private"))),
        ("/private/%2e", Some(("private", "/private/"))),
        ("/private/admin/..", Some(("private", "/private/"))),
        ("/../../private", Some(("private", "/private"))),
    ];
    for &(payload, want) in cases {
        let (status, hit) = probe(&s, payload).await;
        match want {
            None => {
                assert_eq!(status, 400, "{payload} must be refused");
                assert_eq!(hit, None, "{payload} must not reach any backend");
            }
            Some((backend, target)) => {
                assert_eq!(status, 200, "{payload}");
                assert_eq!(hit, Some((backend, target.to_owned())), "{payload}");
            }
        }
    }
}

#[tokio::test]
async fn fragments_never_reach_the_router() {
    let s = setup().await;
    // A client must not send a fragment; if one does, it is refused or dropped, never used to
    // pick a route, and never forwarded as part of the path.
    for payload in [
        "/public#/../private",
        "/private#x",
        "/public/%23/../private",
    ] {
        let (status, hit) = probe(&s, payload).await;
        if let Some((backend, target)) = &hit {
            assert!(
                !target.contains('#'),
                "{payload} forwarded a raw # as {target}"
            );
            let routed_private = target.starts_with("/private");
            assert_eq!(
                *backend == "private",
                routed_private,
                "{payload} → {backend} {target}"
            );
        } else {
            assert_eq!(status, 400, "{payload}");
        }
    }
}

#[tokio::test]
async fn no_route_is_a_404_page_and_auth_prefix_is_reserved() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /app, upstream: \"{}\"}}\n",
        backend.url()
    ));
    let cert = gw.cert_pem();
    let res = get(gw.addr, &cert, "/elsewhere", "Accept: text/html\r\n").await;
    assert_eq!(res.status, 404);
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    let res = get(gw.addr, &cert, "/elsewhere", "Accept: application/json\r\n").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let res = get(gw.addr, &cert, "/_auth/health", "").await;
    assert_eq!(res.status, 200);
    assert_eq!(String::from_utf8_lossy(&res.body), r#"{"status":"ok"}"#);
    let res = get(gw.addr, &cert, "/_auth/nothing", "").await;
    assert_eq!(res.status, 404);
    assert_eq!(backend.count(), 0);
}

/// SPEC §6.6: segments that servlet containers (Tomcat, Jetty, Spring) read as dot or empty
/// segments once they drop `;parameters` are refused, so `/public/..;/private` can never be
/// routed under `/public` and read as `/private` by the backend. Other `;` pass, each forwarded
/// the way it arrived (a servlet container treats a raw `;` as parameters, `%3B` as a letter).
#[tokio::test]
async fn servlet_dot_segments_are_refused_and_semicolons_forwarded_as_they_came() {
    let s = setup().await;
    for payload in [
        "/public/..;/private",
        "/public/..;x=1/private/admin",
        "/public/.;/../private",
        "/;/private",
        "/;x/private",
        "/public/%2e%2e%3b/private",
        "/public/%2e%2e;/private",
        "/public/%2E%3B/private",
        "/public/..%3Bjsessionid=1/private",
        // `//..`: merged first it is `/public`, resolved first (RFC 3986) `/private/x/`.
        "/private/x//../..",
        "/public//..",
    ] {
        let (status, hit) = probe(&s, payload).await;
        assert_eq!(status, 400, "{payload} must be refused");
        assert_eq!(hit, None, "{payload} must not reach any backend");
    }
    for (payload, backend, seen) in [
        ("/public/a%3Bb", "public", "/public/a%3Bb"),
        ("/public/a;b", "public", "/public/a;b"),
        ("/private%3Bx/admin", "admin", "/private%3Bx/admin"),
        (
            "/private/x/..%2e;/admin",
            "private",
            "/private/x/...;/admin",
        ),
        ("/public/a%3b%20;b", "public", "/public/a%3B%20;b"),
    ] {
        let (status, hit) = probe(&s, payload).await;
        assert_eq!(status, 200, "{payload}");
        assert_eq!(hit, Some((backend, seen.to_owned())), "{payload}");
    }
}

/// SPEC §6.6: behind a case-insensitive backend (Express, IIS) `/node/ADMIN` is the admin
/// page; with `case_insensitive` the route table reads it the same way.
#[tokio::test]
async fn case_insensitive_routes_catch_every_spelling_the_backend_accepts() {
    let node = Backend::start().await;
    let admin = Backend::start().await;
    let exact = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  case_insensitive: true\n  routes:\n\
         \x20   - {{prefix: /node, upstream: \"{}\"}}\n\
         \x20   - {{prefix: /node/admin, upstream: \"{}\"}}\n\
         \x20   - {{prefix: /node/Exact, upstream: \"{}\", case_insensitive: false}}\n",
        node.url(),
        admin.url(),
        exact.url()
    ));
    let cert = gw.cert_pem();
    for path in [
        "/node/admin/secret",
        "/NODE/ADMIN/secret",
        "/node/Admin",
        "/node/admin./secret",
        "/node/admin%20/secret",
        "/node/ADMIN.%20/secret",
        "/node/admin;x/secret",
        "/node/adm%C4%B1n/secret",
        "/node/%C5%BFecret/../admin",
        "/node/ADM%C4%B0N/x",
    ] {
        let before = admin.count();
        let res = get(gw.addr, &cert, path, "").await;
        assert_eq!(res.status, 200, "{path}");
        assert_eq!(
            admin.count(),
            before + 1,
            "{path} must reach the admin route"
        );
    }
    let before = (node.count(), exact.count());
    assert_eq!(get(gw.addr, &cert, "/node/exact/x", "").await.status, 200);
    assert_eq!(
        get(gw.addr, &cert, "/node/administrator", "").await.status,
        200
    );
    assert_eq!((node.count(), exact.count()), (before.0 + 2, before.1));
    assert_eq!(get(gw.addr, &cert, "/node/Exact/x", "").await.status, 200);
    assert_eq!(exact.count(), before.1 + 1);
}

/// Issue 10 item 11: a request to an upstream must name `public_url`'s host; another host is
/// 421 (never another site's app), a malformed `Host` is 400; `preserve_host: any` opts out.
#[tokio::test]
async fn requests_for_another_host_are_misdirected() {
    let app = Backend::start().await;
    let any = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n\
         \x20   - {{prefix: /any, upstream: \"{}\", preserve_host: any}}\n\
         \x20   - {{prefix: /, upstream: \"{}\"}}\n",
        any.url(),
        app.url(),
    ));
    let cert = gw.cert_pem();
    let host = |h: &str| format!("GET /x HTTP/1.1\r\nHost: {h}\r\n");
    for (h, want) in [
        ("localhost", 200),
        ("LOCALHOST:8443", 200),
        ("localhost.", 200),
        ("evil.example", 421),
        ("127.0.0.1", 421),
        ("localhost.evil.example", 421),
        ("user@localhost", 400),
        ("localhost/x", 400),
        ("localhost:x", 400),
    ] {
        let res = common::client::request(gw.addr, &cert, &host(h)).await;
        assert_eq!(res.status, want, "Host: {h}");
    }
    let res = common::client::request(
        gw.addr,
        &cert,
        "GET https://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n",
    )
    .await;
    assert_eq!(res.status, 421);
    let res = common::client::request(
        gw.addr,
        &cert,
        "GET https://evil.example/x HTTP/1.1\r\nHost: localhost\r\n",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(app.count(), 3, "only the three good hosts reach the app");
    let res = common::client::request(
        gw.addr,
        &cert,
        "GET /any/x HTTP/1.1\r\nHost: other.example\r\n",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(any.last().headers["host"], "other.example");
    // The gateway's own endpoints answer whatever the host.
    let res = common::client::request(
        gw.addr,
        &cert,
        "GET /_auth/health HTTP/1.1\r\nHost: x.example\r\n",
    )
    .await;
    assert_eq!(res.status, 200);
    // HTTP/2: `:authority` is the host.
    let res = gw
        .client_builder()
        .resolve("evil.example", gw.addr)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("https://evil.example:{}/x", gw.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 421);
    assert_eq!(app.count(), 3);
}

/// An absolute-form target with no path (`https://host?x`, `https://host#f`) reaches the
/// backend as `/` with its query, with and without a body. A review finding: the gateway
/// forwarded the target's bytes as they came whenever its path read as the normalised one,
/// and `http`'s `PathAndQuery` reads an absent path as `/`: the upstream request went out as
/// `?x` (refused by our client: 502, counted as the upstream's failure) or, with a body,
/// through hyper with an empty request target.
#[tokio::test]
async fn an_absolute_form_target_without_a_path_is_forwarded_as_slash() {
    let app = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        app.url()
    ));
    let port = gw.addr.port();
    let cert = gw.cert_pem();
    let res = common::client::request(
        gw.addr,
        &cert,
        &format!("GET https://localhost:{port}?x=1 HTTP/1.1\r\nHost: localhost:{port}\r\n"),
    )
    .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(app.last().target, "/?x=1");

    let mut conn = common::wire::open(&gw).await;
    conn.send(
        format!(
            "POST https://localhost:{port}#f HTTP/1.1\r\nHost: localhost:{port}\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\nhello"
        )
        .as_bytes(),
    )
    .await;
    let res = conn.response(false).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let seen = app.last();
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/"));
}

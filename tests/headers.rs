//! Header hygiene (SPEC §4, §6.3): hop-by-hop headers and every client-sent identity or
//! forwarding header are gone before the backend sees the request; ours are set.

mod common;

use common::client::{get, request};
use common::{Backend, Gateway};

async fn setup(extra_route: &str) -> (Gateway, Backend) {
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"{extra_route}}}\n",
        backend.url()
    ));
    (gw, backend)
}

const SPOOFS: &str = "X-User-Info: {\"sub\":\"github:admin\"}\r\n\
x-user-info: {\"sub\":\"github:admin\"}\r\n\
X_User_Info: {\"sub\":\"github:admin\"}\r\n\
x_user_info: admin\r\n\
X-User-Email: admin@example.com\r\n\
X-User: admin\r\n\
X-Forwarded-For: 6.6.6.6\r\n\
X_Forwarded_For: 6.6.6.6\r\n\
X-Forwarded-Host: evil.example\r\n\
X-Forwarded-Proto: http\r\n\
X-Real-IP: 6.6.6.6\r\n\
Forwarded: for=6.6.6.6\r\n\
Connection: X-User-Info, X-Forwarded-For, keep-alive\r\n";

#[tokio::test]
async fn spoofed_identity_and_forwarding_headers_never_reach_the_backend() {
    let (gw, backend) = setup("").await;
    let cert = gw.cert_pem();
    for method in ["GET", "POST", "OPTIONS", "DELETE"] {
        let head =
            format!("{method} /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n{SPOOFS}");
        let res = request(gw.addr, &cert, &head).await;
        assert_eq!(res.status, 200, "{method}");
        let seen = backend.last();
        assert_eq!(seen.method, method);
        for (name, value) in &seen.headers {
            let folded = name.as_str().replace('_', "-");
            assert!(
                !folded.starts_with("x-user"),
                "{method}: {name}: {value:?} reached the backend"
            );
            assert_ne!(folded, "forwarded", "{method}");
            assert_ne!(folded, "x-real-ip", "{method}");
        }
        assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
        assert_eq!(seen.headers["x-forwarded-host"], "localhost");
        assert!(!seen.headers.contains_key("x_forwarded_for"));
    }
}

#[tokio::test]
async fn spoofed_identity_over_http2_is_removed_too() {
    let (gw, backend) = setup("").await;
    let res = gw
        .client()
        .get(gw.url("/h2"))
        .header("X-User-Info", "{\"sub\":\"x\"}")
        .header("x_user_info", "x")
        .header("X-User-Login", "admin")
        .header("X-Forwarded-For", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let seen = backend.last();
    assert_eq!(seen.target, "/h2");
    assert!(seen
        .headers
        .keys()
        .all(|k| !k.as_str().replace('_', "-").starts_with("x-user")));
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        seen.headers["host"],
        format!("localhost:{}", gw.addr.port())
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_others_pass() {
    let (gw, backend) = setup("").await;
    let head = "GET /hop HTTP/1.1\r\nHost: localhost\r\n\
        Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic YTpi\r\n\
        Proxy-Connection: keep-alive\r\nX-Private-Hop: secret\r\n\
        Connection: keep-alive, X-Private-Hop\r\n\
        X-Request-Id: abc123\r\nAuthorization: Bearer app-token\r\nCookie: app=1\r\n";
    let res = request(gw.addr, &gw.cert_pem(), head).await;
    assert_eq!(res.status, 200);
    let seen = backend.last();
    for gone in [
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "x-private-hop",
        "upgrade",
    ] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the backend"
        );
    }
    // The upstream hop has its own Connection header (or none), never the client's tokens.
    if let Some(c) = seen.headers.get("connection") {
        assert!(!c
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("x-private-hop"));
    }
    assert_eq!(seen.headers["x-request-id"], "abc123");
    assert_eq!(seen.headers["authorization"], "Bearer app-token");
    assert_eq!(seen.headers["cookie"], "app=1");
    assert_eq!(seen.headers["host"], "localhost");
}

#[tokio::test]
async fn host_is_the_upstreams_when_preserve_host_is_off() {
    let (gw, backend) = setup(", preserve_host: false").await;
    let res = get(gw.addr, &gw.cert_pem(), "/", "").await;
    assert_eq!(res.status, 200);
    let seen = backend.last();
    assert_eq!(seen.headers["host"], backend.addr.to_string());
    assert_eq!(seen.headers["x-forwarded-host"], "localhost");
}

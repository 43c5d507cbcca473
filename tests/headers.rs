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

/// SPEC §6.6: headers that backends trust for routing or for who the client is. Each is sent
/// in three spellings; none may reach the backend (the gateway's own `X-Forwarded-For`,
/// `-Proto` and `-Host` aside, which replace the client's).
const TRUSTED_BY_BACKENDS: &[&str] = &[
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Uri",
    "X-Forwarded-Server",
    "X-Forwarded-Ssl",
    "X-Forwarded-Scheme",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Original-URL",
    "X-Original-URI",
    "X-Rewrite-URL",
    "X-Real-IP",
    "X-Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Remote-User",
    "X-Remote-User",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-User-Info",
    "X-User-Groups",
    "Remote-Email",
    "Remote-Groups",
    "X-Pomerium-Claim-Email",
    "X-Vouch-User",
    "Cf-Access-Authenticated-User-Email",
    "X-Goog-Authenticated-User-Email",
    "OIDC-Claim-Email",
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
];

fn spellings(name: &str) -> [String; 3] {
    [
        name.to_owned(),
        name.to_ascii_lowercase(),
        name.to_ascii_uppercase().replace('-', "_"),
    ]
}

/// Whether a header the backend saw is one of [`TRUSTED_BY_BACKENDS`] in any spelling, other
/// than the three forwarding headers the gateway sets itself.
fn spoof_survived(name: &str) -> bool {
    let folded = name.to_ascii_lowercase().replace('_', "-");
    let ours = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];
    TRUSTED_BY_BACKENDS
        .iter()
        .any(|t| t.to_ascii_lowercase() == folded)
        && !(ours.contains(&folded.as_str()) && folded == name)
}

#[tokio::test]
async fn every_header_backends_trust_is_removed_in_every_spelling_over_both_protocols() {
    let (gw, backend) = setup("").await;
    let cert = gw.cert_pem();
    // One spelling per request: all of them at once would pass hyper's 100-header limit.
    for i in 0..3 {
        let mut head = String::from("GET /h1 HTTP/1.1\r\nHost: localhost\r\n");
        for name in TRUSTED_BY_BACKENDS {
            head.push_str(&format!("{}: spoof-{i}\r\n", spellings(name)[i]));
        }
        assert_eq!(request(gw.addr, &cert, &head).await.status, 200);
        let mut h2 = gw.client().get(gw.url("/h2"));
        for name in TRUSTED_BY_BACKENDS {
            h2 = h2.header(spellings(name)[i].as_str(), format!("spoof-{i}"));
        }
        let res = h2.send().await.unwrap();
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        assert_eq!(res.status(), 200);
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 6);
    for req in &seen {
        for (name, value) in &req.headers {
            assert!(
                !spoof_survived(name.as_str()),
                "{}: {name}: {value:?} reached the backend",
                req.target
            );
            assert!(
                !value.as_bytes().starts_with(b"spoof-"),
                "{}: {name}: {value:?} reached the backend",
                req.target
            );
        }
        assert_eq!(req.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert!(req.headers["x-forwarded-host"]
            .to_str()
            .unwrap()
            .starts_with("localhost"));
    }
}

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
        X-Request-Id: abc123\r\nX_Request_Id: forged\r\nAuthorization: Bearer app-token\r\nCookie: app=1\r\n";
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
    // One id, ours (here the trusted peer's): a `_` spelling, which CGI and WSGI read as the
    // same name, never reaches the backend.
    assert_eq!(seen.headers.get_all("x-request-id").iter().count(), 1);
    assert!(!seen.headers.contains_key("x_request_id"));
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

//! Proxy confusion (SPEC §6 class 6, issue 10 items 1-5) against REAL backends: Tomcat 10.1
//! reading `..;`, Express 5 routing case-insensitively and echoing headers, hypercorn speaking
//! h2c behind an upgrade, nginx `auth_request` in front of an app that decodes `%2F`, and a
//! raw socket that records every byte a tunnel lets through.

mod common;

use common::client::{connect, get, tls_config};
use common::realbackends::{self, TOMCAT_SECRET};
use common::tunnel::{self, RawUpstream, TUNNEL_OPEN};
use common::{Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway with its own central (so `login: required` routes work) and these `routes:`.
fn gateway(extra: &str, routes: &str) -> Gateway {
    Gateway::start_raw(&format!(
        "central:\n  providers:\n    dev: {{kind: dev}}\ngateway:\n{extra}  routes:\n{routes}"
    ))
}

/// Opens a raw HTTP/1.1-over-TLS connection to `gw` and sends `head` as is.
async fn send_raw(
    gw: &Gateway,
    head: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = connect(gw.addr, tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .await
        .expect("connect");
    tls.write_all(head.as_bytes()).await.expect("write");
    tls
}

const FORGED: &str = "{\"sub\":\"github:admin\",\"email\":\"boss@example.com\"}";

/// Item 1 (critical). Proves: an `Upgrade: h2c` on an open route is answered as a plain
/// request: 200, no 101, no `Upgrade` in the answer, and hypercorn's app sees neither
/// `Upgrade` nor `HTTP2-Settings`. On the base code the gateway answers 101 and tunnels to
/// hypercorn; the test then speaks HTTP/2 through that tunnel for the `login: required`
/// route `/admin` with a forged `X-User-Info`, and fails showing what hypercorn answered.
#[tokio::test]
async fn h2c_upgrade_on_an_open_route_opens_no_tunnel_to_protected_routes() {
    let hc = realbackends::hypercorn().url();
    let gw = gateway(
        "",
        &format!(
            "    - {{prefix: /public, upstream: \"{hc}\", login: none}}\n\
             \x20   - {{prefix: /admin, upstream: \"{hc}\", login: required}}\n"
        ),
    );
    let anonymous = gw.client().get(gw.url("/admin")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "/admin must need a login");

    let mut tls = send_raw(
        &gw,
        "GET /public HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\n\
         HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
    )
    .await;
    let (status, head) = tunnel::read_head(&mut tls).await;
    if status == 101 {
        let through = tunnel::h2c_get(&mut tls, "/admin", &[("x-user-info", FORGED)]).await;
        panic!(
            "the gateway answered 101 to `Upgrade: h2c` on the open route /public and opened a \
             tunnel to hypercorn; an anonymous HTTP/2 request for the protected /admin with a \
             forged X-User-Info then got: {through:?}"
        );
    }
    assert_eq!(status, 200, "{head}");
    assert_eq!(tunnel::head_value(&head, "upgrade"), None, "{head}");
    let len: usize = tunnel::head_value(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a plain answer with a length: {head}"));
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).await.expect("body");
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("hypercorn's JSON");
    assert_eq!(seen["path"], "/public");
    assert_eq!(seen["http_version"], "1.1", "{seen}");
    for name in ["upgrade", "http2-settings"] {
        assert!(
            seen["headers"].get(name).is_none(),
            "{name} reached: {seen}"
        );
    }
}

/// Item 1. Proves, with a raw upstream that answers 101 to any `Upgrade` and records every
/// byte: for a non-WebSocket upgrade (`foo`, `h2c`) the client gets no 101, the upstream sees
/// no `Upgrade` header, and bytes the client sends after the response never reach the
/// upstream. On the base code the gateway tunnels: the probe arrives at the raw socket.
#[tokio::test]
async fn non_websocket_upgrades_let_nothing_cross_after_the_response() {
    for protocol in ["foo", "h2c"] {
        let raw = RawUpstream::start().await;
        let gw = gateway(
            "",
            &format!(
                "    - {{prefix: /raw, upstream: \"{}\", login: none}}\n",
                raw.url()
            ),
        );
        let mut tls = send_raw(
            &gw,
            &format!(
                "GET /raw/x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
            ),
        )
        .await;
        let (status, head) = tunnel::read_head(&mut tls).await;
        // The gateway may close after its answer; what matters is what the upstream got.
        let _ = tls
            .write_all(b"PROBE-BYTES-AFTER-THE-RESPONSE PROBE-END\r\n\r\n")
            .await;
        let rest = tunnel::read_rest(&mut tls).await;
        let received = raw.received();
        assert!(
            !received.iter().any(|c| c.contains("PROBE-BYTES")),
            "Upgrade: {protocol}: bytes sent after the response crossed to the upstream \
             (client got {status}, then {rest:?}); the upstream received {received:#?}"
        );
        assert!(!rest.contains(TUNNEL_OPEN), "{rest}");
        assert_ne!(status, 101, "Upgrade: {protocol} was switched: {head}");
        assert!(
            received
                .iter()
                .all(|c| !c.to_ascii_lowercase().contains("\r\nupgrade:")),
            "Upgrade: {protocol} reached the upstream: {received:#?}"
        );
    }
}

/// Item 1. Proves: an upstream that answers a real WebSocket request with 101 but a
/// `Sec-WebSocket-Accept` that does not match the key gets the client a 502, never a 101 (a
/// server that does not compute the accept value is no WebSocket server, RFC 6455 §4.1).
/// On the base code the client gets the 101.
#[tokio::test]
async fn websocket_101_with_a_wrong_accept_is_a_502() {
    let raw = RawUpstream::start().await;
    let gw = gateway(
        "",
        &format!(
            "    - {{prefix: /raw, upstream: \"{}\", login: none}}\n",
            raw.url()
        ),
    );
    let mut tls = send_raw(
        &gw,
        "GET /raw/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    let (status, head) = tunnel::read_head(&mut tls).await;
    assert!(
        raw.received()
            .iter()
            .any(|c| c.contains("Sec-WebSocket-Key") || c.contains("sec-websocket-key")),
        "the WebSocket request never reached the upstream: {:#?}",
        raw.received()
    );
    assert_eq!(status, 502, "{head}");
}

/// The `;` payloads of item 2 and what Tomcat itself makes of each. Only those marked `true`
/// are bypasses through the base gateway: it resolves `..` first, so `/public/.;/../admin`
/// reaches Tomcat as `/public/admin/secret`.
const SEMICOLON_PAYLOADS: &[(&str, bool)] = &[
    ("/public/..;/admin/secret", true),
    ("/public/..;x=1/admin/secret", true),
    ("/public/%2e%2e;/admin/secret", true),
    ("/public/%2e%2e%3b/admin/secret", true),
    ("/public/%2E%2E%3B/admin/secret", true),
    ("/;/admin/secret", true),
    ("/public/.;/../admin/secret", false),
    ("/public/.;/admin/secret", false),
];

/// Item 2, the backend's side. Proves Tomcat 10.1 really reads `..;` and `/;/` as dot and
/// empty segments: its default servlet serves `/admin/secret` for them. `%3b` is not a
/// parameter for Tomcat (it splits before decoding): only a proxy that decodes it first
/// turns `%2e%2e%3b` into `..;`.
#[tokio::test]
async fn tomcat_reads_dot_dot_semicolon_as_the_parent() {
    let port = realbackends::tomcat().port;
    assert_eq!(
        realbackends::raw_get(port, "/admin/secret").await,
        (200, TOMCAT_SECRET.to_owned())
    );
    for target in [
        "/public/..;/admin/secret",
        "/public/..;x=1/admin/secret",
        "/public/%2e%2e;/admin/secret",
        "/;/admin/secret",
    ] {
        let (status, body) = realbackends::raw_get(port, target).await;
        assert_eq!((status, body.as_str()), (200, TOMCAT_SECRET), "{target}");
    }
    let (status, _) = realbackends::raw_get(port, "/public/%2e%2e%3b/admin/secret").await;
    assert_eq!(status, 404);
}

/// Item 2. Proves: every segment whose part before the first `;` is `.`, `..` or empty is
/// refused with 400 and Tomcat's secret never comes back to an anonymous client, with
/// `/public` and `/` open and `/admin` login-required, all on one Tomcat. On the base code
/// the payloads marked as bypasses return the secret with 200.
#[tokio::test]
async fn dot_segments_with_parameters_are_refused_before_tomcat_sees_them() {
    let tc = realbackends::tomcat().url();
    let gw = gateway(
        "",
        &format!(
            "    - {{prefix: /, upstream: \"{tc}\", login: none}}\n\
             \x20   - {{prefix: /public, upstream: \"{tc}\", login: none}}\n\
             \x20   - {{prefix: /admin, upstream: \"{tc}\", login: required}}\n"
        ),
    );
    let cert = gw.cert_pem();
    // The policy holds on the plain path, and `admin;x` is still under /admin.
    for target in ["/admin/secret", "/admin;x/secret", "/ADMIN/../admin/secret"] {
        let res = get(gw.addr, &cert, target, "").await;
        assert_eq!(res.status, 401, "{target}");
    }
    assert_eq!(
        get(gw.addr, &cert, "/public/index.html", "").await.status,
        200
    );

    let mut wrong = Vec::new();
    for &(target, bypass_on_base) in SEMICOLON_PAYLOADS {
        let res = get(gw.addr, &cert, target, "").await;
        let leaked = String::from_utf8_lossy(&res.body).contains(TOMCAT_SECRET);
        if res.status != 400 || leaked {
            wrong.push(format!(
                "{target}: {} {}(a bypass on the base code: {bypass_on_base})",
                res.status,
                if leaked { "WITH THE ADMIN SECRET " } else { "" }
            ));
        }
    }
    assert!(wrong.is_empty(), "not refused:\n{}", wrong.join("\n"));
}

/// Item 2. Proves `;` is forwarded exactly as it arrived: `%3B` stays `%3B` (a servlet
/// container would otherwise read a parameter the client never sent) and a raw `;` stays
/// `;`. On the base code `%3B` is decoded and reaches the upstream as `;`.
#[tokio::test]
async fn semicolons_are_forwarded_as_they_arrived() {
    let backend = Backend::start().await;
    let gw = gateway(
        "",
        &format!(
            "    - {{prefix: /public, upstream: \"{}\", login: none}}\n",
            backend.url()
        ),
    );
    let cert = gw.cert_pem();
    for (target, want) in [
        ("/public/a%3Bb", "/public/a%3Bb"),
        ("/public/a;b", "/public/a;b"),
        ("/public/a;b=c/d", "/public/a;b=c/d"),
    ] {
        let res = get(gw.addr, &cert, target, "").await;
        assert_eq!(res.status, 200, "{target}");
        assert_eq!(backend.last().target, want, "{target}");
    }
    let res = get(gw.addr, &cert, "/public/a%3bb", "").await;
    assert_eq!(res.status, 200);
    assert!(
        backend.last().target.eq_ignore_ascii_case("/public/a%3bb"),
        "{}",
        backend.last().target
    );
}

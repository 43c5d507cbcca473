//! nginx `auth_request` against `/_auth/check`: a real nginx protects a backend with the
//! gateway's session; allowed with a session, 401 without, 403 outside `allow`.

mod common;

use common::flow::World;
use common::nginx::Nginx;
use common::{free_port, Backend};

#[tokio::test]
async fn nginx_auth_request_protects_a_backend_with_the_gateway_session() {
    let w = World::start(
        concat!(
            "    - {prefix: /staff, upstream: \"BACKEND\", login: required, allow: {emails: [boss@example.com]}}\n",
            "    - {prefix: /, upstream: \"BACKEND\", login: required}\n",
        ),
        "",
    )
    .await;
    let app = Backend::start().await;
    let cert = w.gateway.dir.join("data/tls/localhost.crt");
    let nginx = Nginx::start(
        free_port(),
        &format!(
            "  server {{\n    listen 127.0.0.1:{{port}};\n\
             \x20   location = /_oauthgate_check {{\n      internal;\n\
             \x20     proxy_pass https://127.0.0.1:{gw}/_auth/check;\n\
             \x20     proxy_ssl_server_name on;\n      proxy_ssl_name localhost;\n\
             \x20     proxy_ssl_verify on;\n      proxy_ssl_trusted_certificate {cert};\n\
             \x20     proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n\
             \x20     proxy_set_header X-Original-URI $request_uri;\n    }}\n\
             \x20   location / {{\n      auth_request /_oauthgate_check;\n\
             \x20     auth_request_set $user_info $upstream_http_x_user_info;\n\
             \x20     proxy_set_header X-User-Info $user_info;\n\
             \x20     proxy_pass http://{app};\n    }}\n  }}\n",
            gw = w.gateway.addr.port(),
            cert = cert.display(),
            app = app.addr,
        ),
    );
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", nginx.port);
    let plain = reqwest::Client::new();

    // No session: nginx answers 401 and the app sees nothing.
    let res = plain.get(url("/app/page")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.count(), 0);
    // A forged X-User-Info from the client is not what the app gets.
    let res = plain
        .get(url("/app/page"))
        .header("x-user-info", "{\"sub\":\"admin\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Log in at the gateway, then present its cookies to nginx.
    let b = w.browser();
    b.log_in(&w.gateway.url("/"), "alice", "alice@example.com")
        .await;
    let cookies = b.cookies(&w.gateway.url("/"));
    let res = plain
        .get(url("/app/page?x=1"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = app.last();
    assert_eq!(seen.target, "/app/page?x=1");
    let info: serde_json::Value =
        serde_json::from_str(seen.headers["x-user-info"].to_str().unwrap()).unwrap();
    assert_eq!(info["sub"], "dev:alice");
    assert_eq!(info["email"], "alice@example.com");

    // The original URI (from nginx, a trusted proxy) picks the route's allow list.
    let res = plain
        .get(url("/staff/board"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.last().target,
        "/app/page?x=1",
        "the 403 must not reach the app"
    );

    // Encoded separators and NULs in the original URI: a WSGI upstream would decode
    // `/staff%2Fboard` to `/staff/board`, so the check fails closed (400, which nginx turns
    // into 500) instead of judging a path it cannot route.
    for sneaky in [
        "/staff%2Fboard",
        "/staff%2fboard",
        "/staff%00/board",
        "/x/..;/staff/board",
    ] {
        let before = app.count();
        let res = plain
            .get(url(sneaky))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        // 500: nginx's answer to a 400 from the check; nginx refuses `%00` itself (400).
        assert!(
            matches!(res.status().as_u16(), 400 | 500),
            "{sneaky}: {}",
            res.status()
        );
        assert_eq!(app.count(), before, "{sneaky} must not reach the app");
    }

    // A tampered cookie is no session.
    let tampered = cookies.replace("__Host-oauthgate-session=", "__Host-oauthgate-session=x");
    let res = plain
        .get(url("/app/page"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn check_ignores_the_original_uri_from_untrusted_peers() {
    let w = World::start(
        concat!(
            "    - {prefix: /open, upstream: \"BACKEND\", login: none}\n",
            "    - {prefix: /, upstream: \"BACKEND\", login: required}\n",
        ),
        "  trusted_proxies: [\"10.9.9.9\"]\n",
    )
    .await;
    let client = w.gateway.client();
    // From an untrusted peer the URI cannot be believed, and judging without it would skip
    // the route's `allow`: 403, even for /open.
    let res = client
        .get(w.gateway.url("/_auth/check"))
        .header("x-original-uri", "/open/x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "untrusted_proxy", "{body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "error and request_id: {body}"
    );
}

/// Issue 10 item 3: `/_auth/check` routes and judges the original URI exactly as a proxied
/// request, and fails closed: 400 for a URI that does not parse, 403 for one that names no
/// route, never 200 with an identity.
#[tokio::test]
async fn check_fails_closed_on_uris_it_cannot_route() {
    let w = World::start(
        concat!(
            "    - {prefix: /open, upstream: \"BACKEND\", login: none}\n",
            "    - {prefix: /app, upstream: \"BACKEND\", login: required}\n",
            "    - {prefix: /admin, upstream: \"BACKEND\", login: required, allow: {emails: [boss@example.com]}}\n",
        ),
        "",
    )
    .await;
    let b = w.browser();
    b.log_in(&w.gateway.url("/app"), "alice", "alice@example.com")
        .await;
    let cookies = b.cookies(&w.gateway.url("/"));
    let client = w.gateway.client();
    let check = |uri: &'static str, cookie: bool| {
        let mut req = client
            .get(w.gateway.url("/_auth/check"))
            .header("x-original-uri", uri);
        if cookie {
            req = req.header("cookie", &cookies);
        }
        async move {
            let res = req.send().await.unwrap();
            let info = res.headers().get("x-user-info").is_some();
            (res.status().as_u16(), info)
        }
    };
    // Caddy `forward_auth` and Traefik pass the client's headers on beside their own: a
    // client's X-Original-URI next to the proxy's X-Forwarded-Uri, or a second copy of
    // either, must not choose what is judged.
    for (pairs, want) in [
        (
            &[
                ("x-original-uri", "/open/x"),
                ("x-forwarded-uri", "/admin/x"),
            ][..],
            400,
        ),
        (
            &[
                ("x-forwarded-uri", "/open/x"),
                ("x-original-uri", "/admin/x"),
            ][..],
            400,
        ),
        (
            &[
                ("x-original-uri", "/open/x"),
                ("x-original-uri", "/admin/x"),
            ][..],
            400,
        ),
        (
            &[
                ("x-forwarded-uri", "/open/x"),
                ("x-forwarded-uri", "/admin/x"),
            ][..],
            400,
        ),
        (&[("x-forwarded-uri", "/admin/x")][..], 403),
    ] {
        let mut req = client
            .get(w.gateway.url("/_auth/check"))
            .header("cookie", &cookies);
        for (k, v) in pairs {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), want, "{pairs:?}");
        assert!(res.headers().get("x-user-info").is_none(), "{pairs:?}");
    }
    for (uri, with_session, want) in [
        ("/app/x?y=1", true, (200, true)),
        ("/app/x", false, (401, false)),
        ("/open/x", false, (200, false)),
        ("/open/x", true, (200, false)),
        ("/admin/x", true, (403, false)),
        ("/ADMIN/x", true, (403, false)),
        ("/admin%2Fx", true, (400, false)),
        ("/app%2F..%2Fadmin", true, (400, false)),
        ("/admin%00", true, (400, false)),
        ("/open/..;/admin/x", true, (400, false)),
        ("/open/%2e%2e%3b/admin/x", true, (400, false)),
        ("/open/../admin/x", true, (403, false)),
        ("https://localhost/admin/x", true, (403, false)),
        ("admin/x", true, (400, false)),
        ("*", true, (400, false)),
        ("/elsewhere", true, (403, false)),
        ("/", true, (403, false)),
    ] {
        assert_eq!(
            check(uri, with_session).await,
            want,
            "{uri} (session: {with_session})"
        );
    }
}

//! Caddy `forward_auth` against `/_auth/check`: a real Caddy protects a backend with the
//! gateway's session, and passes the client's own headers on to the check beside its
//! `X-Forwarded-Uri` — so a client-sent `X-Original-URI` must not choose what is judged.

mod common;

use common::caddy::Caddy;
use common::flow::World;
use common::{free_port, Backend};

#[tokio::test]
async fn caddy_forward_auth_judges_the_request_caddy_forwards() {
    let w = World::start(
        concat!(
            "    - {prefix: /open, upstream: \"BACKEND\", login: none}\n",
            "    - {prefix: /app, upstream: \"BACKEND\", login: required}\n",
            "    - {prefix: /admin, upstream: \"BACKEND\", login: required, allow: {emails: [boss@example.com]}}\n",
        ),
        "",
    )
    .await;
    let app = Backend::start().await;
    let cert = w.gateway.dir.join("data/tls/localhost.crt");
    let caddy = Caddy::start(
        free_port(),
        &format!(
            "http://127.0.0.1:{{port}} {{\n\
             \x20 forward_auth https://127.0.0.1:{gw} {{\n\
             \x20   uri /_auth/check\n\
             \x20   copy_headers X-User-Info\n\
             \x20   transport http {{\n\
             \x20     tls_trusted_ca_certs {cert}\n\
             \x20     tls_server_name localhost\n\
             \x20   }}\n\
             \x20 }}\n\
             \x20 reverse_proxy {app}\n}}\n",
            gw = w.gateway.addr.port(),
            cert = cert.display(),
            app = app.addr,
        ),
    );
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", caddy.port);
    let plain = reqwest::Client::new();
    let get = |path: &'static str,
               headers: &'static [(&'static str, &'static str)],
               cookie: Option<String>| {
        let mut req = plain.get(url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };

    // Anonymous: the open route passes, the others need a login.
    assert_eq!(get("/open/x", &[], None).await, 200);
    assert_eq!(get("/app/x", &[], None).await, 401);
    // The bypass: the client names an open path in X-Original-URI; Caddy adds its own
    // X-Forwarded-Uri for /app/x. Both reach the check, which refuses to pick one.
    let before = app.count();
    assert_eq!(
        get("/app/x", &[("x-original-uri", "/open/x")], None).await,
        400
    );
    assert_eq!(
        get("/app/x", &[("x-forwarded-uri", "/open/x")], None).await,
        401
    );
    assert_eq!(app.count(), before, "nothing reached the app");

    let b = w.browser();
    b.log_in(&w.gateway.url("/app"), "alice", "alice@example.com")
        .await;
    let alice = || Some(b.cookies(&w.gateway.url("/")));
    assert_eq!(get("/app/x", &[], alice()).await, 200);
    assert!(app.last().headers["x-user-info"]
        .to_str()
        .unwrap()
        .contains("\"sub\":\"dev:alice\""));
    let before = app.count();
    assert_eq!(get("/admin/x", &[], alice()).await, 403);
    assert_eq!(
        get("/admin/x", &[("x-original-uri", "/app/x")], alice()).await,
        400
    );
    assert_eq!(get("/ADMIN/../admin/x", &[], alice()).await, 403);
    assert_eq!(app.count(), before, "the admin app saw nothing");
}

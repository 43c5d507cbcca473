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

/// Caddy `forward_auth` as its users write it, with the gateway's identity headers copied:
/// a browser is sent to the login and comes back, an API call gets 401, the app sees the
/// copied headers (the assertion included), `allow`, `methods` and `rd` hold.
#[tokio::test]
async fn caddy_forward_auth_parity_redirects_copies_identity_and_judges_methods() {
    let w = World::start(
        concat!(
            "    - {prefix: /app, upstream: \"BACKEND\"}\n",
            "    - {prefix: /admin, upstream: \"BACKEND\", allow: {groups: [admins]}}\n",
            "    - {prefix: /ro, upstream: \"BACKEND\", methods: [GET]}\n",
        ),
        "  identity:\n    headers: {Remote-User: login, Remote-Groups: groups}\n    assertion: true\n",
    )
    .await;
    let cert = w.gateway.dir.join("data/tls/localhost.crt");
    let caddy = Caddy::start(
        free_port(),
        &format!(
            "http://127.0.0.1:{{port}} {{\n\
             \x20 forward_auth https://127.0.0.1:{gw} {{\n\
             \x20   uri /_auth/check\n\
             \x20   copy_headers Remote-User Remote-Groups X-User-Info X-User-Assertion\n\
             \x20   transport http {{\n\
             \x20     tls_trusted_ca_certs {cert}\n\
             \x20     tls_server_name localhost\n\
             \x20   }}\n\
             \x20 }}\n\
             \x20 reverse_proxy {app}\n}}\n",
            gw = w.gateway.addr.port(),
            cert = cert.display(),
            app = w.backend.addr,
        ),
    );
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", caddy.port);
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A browser's navigation: 302 to the gateway's login, coming back to the original path.
    let res = plain
        .get(url("/app/deep?x=1"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        login,
        w.gateway.url("/_auth/login?next=%2Fapp%2Fdeep%3Fx%3D1")
    );
    // An API call: 401, no redirect.
    let res = plain.get(url("/app/deep")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("location").is_none());

    let b = w.browser();
    let (landed, _) = b
        .log_in_with_groups(&login, "olga", "olga@example.com", "ops")
        .await;
    assert_eq!(landed.path(), "/app/deep");
    assert_eq!(landed.query(), Some("x=1"));
    let cookie = b.cookies(&w.gateway.url("/"));
    let with = |m: reqwest::Method, p: &str| {
        plain
            .request(m, url(p))
            .header("cookie", cookie.clone())
            .send()
    };
    let before = w.backend.count();
    assert_eq!(
        with(reqwest::Method::GET, "/app/x").await.unwrap().status(),
        200
    );
    let seen = w.backend.last();
    assert_eq!(seen.headers["remote-user"], "olga");
    assert_eq!(seen.headers["remote-groups"], "ops");
    assert!(seen.headers["x-user-info"]
        .to_str()
        .unwrap()
        .contains("\"sub\":\"dev:olga\""));
    let jwks = w.gateway.text("/_auth/jwks").await;
    let iss = format!("https://localhost:{}", w.gateway.addr.port());
    let token = seen.headers["x-user-assertion"]
        .to_str()
        .unwrap()
        .to_owned();
    let (ok, _, err) = common::python::script(
        "verify_assertion.py",
        &[&jwks, &token, &iss, &w.backend.url()],
    );
    assert!(ok, "{err}");
    // Outside `allow`: 403; a method outside `methods`: 405 with Allow.
    assert_eq!(
        with(reqwest::Method::GET, "/admin/x")
            .await
            .unwrap()
            .status(),
        403
    );
    let res = with(reqwest::Method::DELETE, "/ro/x").await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    assert_eq!(
        with(reqwest::Method::GET, "/ro/x").await.unwrap().status(),
        200
    );
    assert_eq!(
        w.backend.count(),
        before + 2,
        "only the allowed requests reached the app"
    );

    // `?rd=`: back to a path of the gateway's own origin, never elsewhere.
    let gw = w.gateway.client();
    let check = |rd: String| {
        gw.get(w.gateway.url(&format!("/_auth/check?rd={rd}")))
            .send()
    };
    let res = check(format!("https://localhost:{}/deep", w.gateway.addr.port()))
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/_auth/login?next=%2Fdeep"));
    let res = check("https://evil.example/x".into()).await.unwrap();
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/_auth/login?next=%2F"));
}

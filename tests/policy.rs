//! Route policy beyond logins, through two real processes (central with the dev provider,
//! gateway, backend): `allow.groups`, `allow.networks` alone and with identity lists (AND),
//! on `none`, `optional` and `required` routes, the client address behind a trusted proxy,
//! `methods` (405 with `Allow`) and `cors_preflight: allow`.

mod common;

use common::flow::{Browser, World};
use reqwest::Method;

const ROUTES: &str = r#"    - {prefix: /open, upstream: "BACKEND", login: none}
    - {prefix: /net-only, upstream: "BACKEND", login: none, allow: {networks: [127.0.0.0/8, "::1"]}}
    - {prefix: /net-far, upstream: "BACKEND", login: none, allow: {networks: [10.0.0.0/8]}}
    - {prefix: /net-optional, upstream: "BACKEND", login: optional, allow: {networks: [10.0.0.0/8]}}
    - {prefix: /net-login, upstream: "BACKEND", allow: {networks: [127.0.0.0/8]}}
    - {prefix: /net-group, upstream: "BACKEND", allow: {networks: [127.0.0.1/32], groups: [ops]}}
    - {prefix: /group, upstream: "BACKEND", allow: {groups: [acme/ops, dev:admins]}}
    - {prefix: /group-or-login, upstream: "BACKEND", allow: {groups: [ops], logins: [carol]}}
    - {prefix: /methods, upstream: "BACKEND", login: none, methods: [GET, POST]}
    - {prefix: /cors, upstream: "BACKEND", methods: [GET], cors_preflight: allow}
    - {prefix: /nocors, upstream: "BACKEND"}
"#;

/// An API call (no `text/html`): a missing login is 401, not a redirect.
async fn status(b: &Browser, w: &World, method: Method, path: &str, xff: Option<&str>) -> u16 {
    let mut req = b.client.request(method, w.gateway.url(path));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn get(b: &Browser, w: &World, path: &str) -> u16 {
    status(b, w, Method::GET, path, None).await
}

#[tokio::test]
async fn groups_and_networks_in_every_combination() {
    let w = World::start(ROUTES, "").await;
    let anon = w.browser();
    let ops = w.browser();
    ops.log_in_with_groups(
        &w.gateway.url("/nocors"),
        "olga",
        "olga@example.com",
        "ops, Acme/Ops",
    )
    .await;
    let plain = w.browser();
    plain
        .log_in(&w.gateway.url("/nocors"), "paul", "paul@example.com")
        .await;
    let carol = w.browser();
    carol
        .log_in(&w.gateway.url("/nocors"), "carol", "carol@example.com")
        .await;
    let admin = w.browser();
    admin
        .log_in_with_groups(&w.gateway.url("/nocors"), "ada", "", "admins")
        .await;

    // Networks alone on `login: none`: network-only access, no login needed. The client is
    // 127.0.0.1, a trusted proxy by default, so its X-Forwarded-For names the client.
    assert_eq!(get(&anon, &w, "/net-only/x").await, 200);
    assert_eq!(
        status(&anon, &w, Method::GET, "/net-only/x", Some("10.9.9.9")).await,
        403
    );
    assert_eq!(
        status(
            &anon,
            &w,
            Method::GET,
            "/net-only/x",
            Some("10.9.9.9, 127.0.0.1")
        )
        .await,
        403
    );
    assert_eq!(
        status(&anon, &w, Method::GET, "/net-only/x", Some("10.9.9.9, ::1")).await,
        403
    );
    assert_eq!(get(&anon, &w, "/net-far/x").await, 403);
    assert_eq!(
        status(&anon, &w, Method::GET, "/net-far/x", Some("10.1.2.3")).await,
        200
    );
    // A logged-in user outside the network is refused on an optional route too.
    assert_eq!(get(&ops, &w, "/net-optional").await, 403);
    assert_eq!(get(&anon, &w, "/net-optional").await, 403);

    // Networks with login: required: both must hold (AND). Outside the network no login is
    // asked for: 403 at once, for a navigation as well.
    assert_eq!(get(&anon, &w, "/net-login").await, 401);
    assert_eq!(get(&plain, &w, "/net-login").await, 200);
    assert_eq!(
        status(&plain, &w, Method::GET, "/net-login", Some("10.0.0.1")).await,
        403
    );
    let (_, res) = anon.navigate(&w.gateway.url("/net-login")).await;
    assert_eq!(
        res.url().path(),
        "/oauth/dev",
        "a navigation inside the network logs in"
    );
    let res = anon
        .client
        .get(w.gateway.url("/net-login"))
        .header("accept", "text/html")
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "network", "{body}");
    assert!(body["request_id"].is_string(), "{body}");

    // Networks AND groups: the right group from the right network only.
    assert_eq!(get(&ops, &w, "/net-group").await, 200);
    assert_eq!(get(&plain, &w, "/net-group").await, 403);
    assert_eq!(
        status(&ops, &w, Method::GET, "/net-group", Some("192.0.2.1")).await,
        403
    );
    assert_eq!(get(&anon, &w, "/net-group").await, 401);

    // Groups: any listed group (case-insensitive), an entry tied to a provider.
    assert_eq!(get(&ops, &w, "/group").await, 200);
    assert_eq!(get(&admin, &w, "/group").await, 200);
    assert_eq!(get(&plain, &w, "/group").await, 403);
    assert_eq!(get(&anon, &w, "/group").await, 401);
    // Groups ORed with the other identity lists.
    assert_eq!(get(&ops, &w, "/group-or-login").await, 200);
    assert_eq!(get(&carol, &w, "/group-or-login").await, 200);
    assert_eq!(get(&plain, &w, "/group-or-login").await, 403);

    // The backend saw the groups of whoever passed.
    get(&ops, &w, "/group/x").await;
    let info: serde_json::Value =
        serde_json::from_str(w.backend.last().headers["x-user-info"].to_str().unwrap()).unwrap();
    assert_eq!(info["groups"], serde_json::json!(["ops", "Acme/Ops"]));
}

#[tokio::test]
async fn networks_without_trusted_proxies_ignore_x_forwarded_for() {
    let w = World::start(ROUTES, "  trusted_proxies: []\n").await;
    let anon = w.browser();
    assert_eq!(
        status(&anon, &w, Method::GET, "/net-only", Some("10.9.9.9")).await,
        200
    );
    assert_eq!(
        status(&anon, &w, Method::GET, "/net-far", Some("10.1.2.3")).await,
        403
    );
}

#[tokio::test]
async fn methods_and_cors_preflights() {
    let w = World::start(ROUTES, "").await;
    let anon = w.browser();
    for (method, want) in [
        (Method::GET, 200),
        (Method::HEAD, 200),
        (Method::POST, 200),
        (Method::PUT, 405),
        (Method::DELETE, 405),
        (Method::OPTIONS, 405),
    ] {
        let res = anon
            .client
            .request(method.clone(), w.gateway.url("/methods/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), want, "{method}");
        if want == 405 {
            assert_eq!(res.headers()["allow"], "GET, POST, HEAD");
        }
    }
    let before = w.backend.count();
    let preflight = |path: &str, acrm: bool| {
        let mut req = anon
            .client
            .request(Method::OPTIONS, w.gateway.url(path))
            .header("origin", "https://spa.example");
        if acrm {
            req = req.header("access-control-request-method", "GET");
        }
        req.send()
    };
    // A preflight passes unauthenticated (outside `methods` too), with no identity.
    let res = preflight("/cors/api", true).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(w.backend.count(), before + 1);
    let seen = w.backend.last();
    assert_eq!(seen.method, "OPTIONS");
    assert!(!seen.headers.contains_key("x-user-info"));
    // Not a preflight (no Access-Control-Request-Method): judged like any request.
    assert_eq!(preflight("/cors/api", false).await.unwrap().status(), 405);
    // On a route without cors_preflight a preflight needs the login like anything else.
    assert_eq!(preflight("/nocors/api", true).await.unwrap().status(), 401);
    assert_eq!(get(&anon, &w, "/cors/api").await, 401);
    // A logged-in user's preflight carries no identity either.
    let user = w.browser();
    user.log_in(&w.gateway.url("/cors/api"), "u", "u@example.com")
        .await;
    let res = user
        .client
        .request(Method::OPTIONS, w.gateway.url("/cors/api"))
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!w.backend.last().headers.contains_key("x-user-info"));
    assert_eq!(w.backend.count(), before + 3);
    assert_eq!(w.backend.count(), w.backend.seen().len());
}

/// `/_auth/check` behind nginx (`X-Original-URI`): nginx passes the client's own headers on
/// to the check, so a client's `X-Forwarded-Method: OPTIONS` (or `X-Original-Method`) with
/// `Origin` and `Access-Control-Request-Method` must not make its GET a preflight that passes
/// a `cors_preflight: allow` route without a login.
#[tokio::test]
async fn a_client_sent_method_header_cannot_fake_a_preflight_through_check() {
    let w = World::start(ROUTES, "").await;
    let c = w.gateway.client();
    // Ignored beside X-Original-URI (401: log in); taken as the method, but never as a
    // preflight (405: OPTIONS is not in the route's methods).
    for (spoof, want) in [("x-forwarded-method", 401), ("x-original-method", 405)] {
        let res = c
            .get(w.gateway.url("/_auth/check"))
            .header("x-original-uri", "/cors/api")
            .header(spoof, "OPTIONS")
            .header("origin", "https://spa.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), want, "{spoof}");
    }
    // Caddy and Traefik set X-Forwarded-Method and X-Forwarded-Uri themselves (replacing a
    // client's): a real preflight they forward passes.
    let res = c
        .get(w.gateway.url("/_auth/check"))
        .header("x-forwarded-uri", "/cors/api")
        .header("x-forwarded-method", "OPTIONS")
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

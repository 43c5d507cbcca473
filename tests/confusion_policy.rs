//! Proxy confusion, part two (SPEC §6 class 6, issue 10 items 3-5) against REAL backends:
//! `/_auth/check` behind a real nginx `auth_request` in front of hypercorn (which decodes
//! `%2F`), Express 5's case-insensitive routing, and the forwarding and identity headers a
//! backend trusts, echoed back by Express.

mod common;

use common::client::get;
use common::flow::World;
use common::nginx::Nginx;
use common::realbackends::{self, EXPRESS_SECRET, HYPERCORN_SECRET};
use common::{free_port, Gateway};

/// A gateway with its own central (so `login: required` routes work) and these `routes:`.
fn gateway(extra: &str, routes: &str) -> Gateway {
    Gateway::start_raw(&format!(
        "central:\n  providers:\n    dev: {{kind: dev}}\ngateway:\n{extra}  routes:\n{routes}"
    ))
}

/// nginx with the README's `auth_request` setup (`X-Original-URI $request_uri`) for `gw`,
/// proxying to `app` with the original URI untouched.
fn nginx_in_front(gw: &Gateway, app: &str) -> Nginx {
    let cert = gw.dir.join("data/tls/localhost.crt");
    Nginx::start(
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
             \x20     proxy_pass {app};\n    }}\n  }}\n",
            gw = gw.addr.port(),
            cert = cert.display(),
        ),
    )
}

/// Item 3. Proves `/_auth/check` fails closed. Behind a real nginx, a user logged in and
/// allowed only on `/public` does not reach hypercorn's `/admin/secret` by spelling it
/// `/admin%2Fsecret` (hypercorn decodes `%2F`); asked directly by a trusted proxy, an
/// `X-Original-URI` that does not parse (`%2F`, `%00`, `..;`) gets 400 and one that names no
/// route gets 403. On the base code all of these answer 200 with the user's `X-User-Info`,
/// and nginx serves the admin secret.
#[tokio::test]
async fn auth_check_behind_nginx_fails_closed() {
    let hc = realbackends::hypercorn().url();
    let w = World::start(
        &format!(
            "    - {{prefix: /public, upstream: \"{hc}\", login: required}}\n\
             \x20   - {{prefix: /admin, upstream: \"{hc}\", login: required, allow: {{emails: [boss@example.com]}}}}\n"
        ),
        "",
    )
    .await;
    let b = w.browser();
    let (_, landed) = b
        .log_in(&w.gateway.url("/public/home"), "alice", "alice@example.com")
        .await;
    assert_eq!(landed.status(), 200);
    let cookies = b.cookies(&w.gateway.url("/"));
    let nginx = nginx_in_front(&w.gateway, &hc);
    let plain = reqwest::Client::new();

    let mut wrong = Vec::new();
    // (target through nginx, the status it must get; None: anything but 200)
    for (target, want) in [
        ("/public/page", Some(200)),
        ("/admin/secret", Some(403)),
        ("/admin%2Fsecret", None),
        ("/admin%2fsecret", None),
    ] {
        let res = plain
            .get(format!("http://127.0.0.1:{}{target}", nginx.port))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        let leaked = body.contains(HYPERCORN_SECRET);
        if leaked || want.map_or(status == 200, |w| w != status) {
            wrong.push(format!("nginx {target}: {status} {body}"));
        }
    }
    for (original, want) in [
        ("/public/page", 200),
        ("/admin%2Fsecret", 400),
        ("/admin%00/secret", 400),
        ("/public/..;/admin/secret", 400),
        ("/elsewhere", 403),
    ] {
        let res = w
            .gateway
            .client()
            .get(w.gateway.url("/_auth/check"))
            .header("cookie", &cookies)
            .header("x-original-uri", original)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let user = res.headers().get("x-user-info").cloned();
        if status != want || (want != 200 && user.is_some()) {
            wrong.push(format!(
                "/_auth/check for {original}: {status} (want {want}), X-User-Info {user:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The spellings Express (and IIS-style backends) fold into `/node/admin/secret`.
const CASE_PAYLOADS: &[&str] = &[
    "/node/ADMIN/secret",
    "/node/Admin/secret",
    "/node/admin./secret",
    "/node/admin%20/secret",
    "/node/ADMIN./secret",
];

/// Item 4, the hazard. Proves Express 5 serves `/node/admin/secret` for `/node/ADMIN/secret`,
/// so a gateway matching case-sensitively (still the default: every new key is optional and
/// a config valid before means the same) routes it to the open `/node` and the secret goes
/// out anonymously. The reason `case_insensitive` exists and the README must name Express.
#[tokio::test]
async fn without_case_insensitive_express_serves_the_secret_in_another_case() {
    let ex = realbackends::express();
    assert_eq!(
        realbackends::raw_get(ex.port, "/node/ADMIN/secret").await,
        (200, EXPRESS_SECRET.to_owned())
    );
    let gw = gateway(
        "",
        &format!(
            "    - {{prefix: /node, upstream: \"{0}\", login: none}}\n\
             \x20   - {{prefix: /node/admin, upstream: \"{0}\", login: required}}\n",
            ex.url()
        ),
    );
    let cert = gw.cert_pem();
    assert_eq!(
        get(gw.addr, &cert, "/node/admin/secret", "").await.status,
        401
    );
    let res = get(gw.addr, &cert, "/node/ADMIN/secret", "").await;
    assert_eq!(
        (res.status, String::from_utf8_lossy(&res.body).as_ref()),
        (200, EXPRESS_SECRET)
    );
}

/// Item 4. Proves `case_insensitive: true` on the route `/node/admin`, and the gateway-wide
/// `gateway.case_insensitive: true`, put every case, trailing-dot and trailing-`%20` spelling
/// of `/node/admin` under that route: login required (401 for an API client), never Express's
/// secret. On the base code the key does not exist and the gateway refuses the config.
#[tokio::test]
async fn case_insensitive_routes_hold_against_express() {
    let ex = realbackends::express().url();
    for (extra, option) in [
        ("", ", case_insensitive: true"),
        ("  case_insensitive: true\n", ""),
    ] {
        let gw = gateway(
            extra,
            &format!(
                "    - {{prefix: /node, upstream: \"{ex}\", login: none}}\n\
                 \x20   - {{prefix: /node/admin, upstream: \"{ex}\", login: required{option}}}\n"
            ),
        );
        let cert = gw.cert_pem();
        for target in CASE_PAYLOADS {
            let res = get(gw.addr, &cert, target, "").await;
            let body = String::from_utf8_lossy(&res.body);
            assert!(
                res.status == 401 && !body.contains(EXPRESS_SECRET),
                "{extra}{option} {target}: {} {body}",
                res.status
            );
        }
        // The open route still answers.
        let res = get(gw.addr, &cert, "/node/page", "").await;
        assert_eq!(res.status, 200, "{extra}{option}");
    }
}

/// Item 5: every header a backend may trust for routing or client identity.
const FORWARDING: &[&str] = &[
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
    "X-Rewrite-URL",
    "X-Real-IP",
    "X-Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Remote-User",
    "X-Remote-User",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-User-Info",
];

/// A name as written, in lower case, and with `_` for `-` (upper case when it has no `-`).
fn spellings(name: &str) -> [String; 3] {
    let third = if name.contains('-') {
        name.replace('-', "_")
    } else {
        name.to_ascii_uppercase()
    };
    [name.to_owned(), name.to_ascii_lowercase(), third]
}

/// What Express received that it should not have: any header carrying a forged value, and
/// the gateway's own `X-Forwarded-For/-Proto/-Host` missing or not once each.
fn leaks(echo: &serde_json::Value) -> Vec<String> {
    let headers = echo["headers"].as_array().expect("Express's header list");
    let mut out: Vec<String> = headers
        .iter()
        .filter(|h| h[1].as_str().is_some_and(|v| v.contains("forged")))
        .map(|h| format!("{}: {}", h[0], h[1]))
        .collect();
    for (name, want) in [
        ("x-forwarded-for", Some("127.0.0.1")),
        ("x-forwarded-proto", Some("https")),
        ("x-forwarded-host", None),
    ] {
        let values: Vec<&str> = headers
            .iter()
            .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .filter_map(|h| h[1].as_str())
            .collect();
        if values.len() != 1 || want.is_some_and(|w| values[0] != w) {
            out.push(format!("{name}: {values:?}"));
        }
    }
    out
}

/// Item 5. Proves no forwarding or identity header a client sends, in any spelling (as
/// written, lower case, `_` for `-`), over HTTP/1.1 (names sent byte for byte) or HTTP/2,
/// reaches Express; only the gateway's own `X-Forwarded-For/-Proto/-Host` do. On the base
/// code `X-Forwarded-Prefix`, `X-Original-URL`, `Remote-User` and most others pass.
#[tokio::test]
async fn forwarding_and_identity_headers_never_reach_express() {
    let gw = gateway(
        "",
        &format!(
            "    - {{prefix: /node, upstream: \"{}\", login: none}}\n",
            realbackends::express().url()
        ),
    );
    let mut h1 = String::new();
    for (i, name) in FORWARDING.iter().enumerate() {
        for (j, spelled) in spellings(name).iter().enumerate() {
            h1.push_str(&format!("{spelled}: forged-{i}-{j}\r\n"));
        }
    }
    let res = get(gw.addr, &gw.cert_pem(), "/node/echo", &h1).await;
    assert_eq!(res.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&res.body).expect("Express's JSON");
    let over_h1 = leaks(&echo);

    let [_, h2] = gw.both_protocols();
    let mut req = h2.get(gw.url("/node/echo"));
    for (i, name) in FORWARDING.iter().enumerate() {
        for (j, spelled) in spellings(name).iter().enumerate().skip(1) {
            req = req.header(spelled.as_str(), format!("forged-{i}-{j}"));
        }
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let echo: serde_json::Value = res.json().await.unwrap();
    let over_h2 = leaks(&echo);
    assert!(
        over_h1.is_empty() && over_h2.is_empty(),
        "reached Express over HTTP/1.1:\n{}\nover HTTP/2:\n{}",
        over_h1.join("\n"),
        over_h2.join("\n")
    );
}

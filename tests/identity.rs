//! Who the user is, as backends see it: groups from GitHub organisations and teams (a
//! GitHub-shaped fake, paginated) and from an OIDC claim (the real npm `oidc-provider`, by
//! name and by JSON pointer), carried through the assertion into the session, `X-User-Info`
//! and `/_auth/userinfo`.

mod common;

use common::fakes::github_with_groups;
use common::flow::World;
use common::oidc::{walk, OidcProvider};
use common::{free_port, param};
use serde_json::{json, Value};
use url::Url;

const ROUTES: &str = "    - {prefix: /, upstream: \"BACKEND\"}\n";

fn user_info(w: &World) -> Value {
    let seen = w.backend.last();
    serde_json::from_str(seen.headers["x-user-info"].to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn github_orgs_and_teams_become_groups_across_pages() {
    let fake = github_with_groups(
        &["Acme", "beta", "gamma", "delta", "Epsilon"],
        &[("Acme", "ops"), ("acme", "Dev"), ("zeta", "core")],
    )
    .await;
    let (cport, gport) = (free_port(), free_port());
    let provider = format!(
        "    github:\n      client_id: gh-id\n      client_secret: gh-secret\n      groups: true\n\
         \x20     authorize_url: {a}\n      access_token_url: {t}\n      user_info_url: {u}\n      emails_url: {e}\n",
        a = fake.url("/login/oauth/authorize"),
        t = fake.url("/login/oauth/access_token"),
        u = fake.url("/user"),
        e = fake.url("/user/emails"),
    );
    let w = World::start_full(cport, gport, &provider, "[github]", ROUTES, "").await;
    let b = w.browser();
    let (at_github, _) = b.navigate(&w.gateway.url("/app")).await;
    assert_eq!(at_github.path(), "/login/oauth/authorize");
    let scope = param(&at_github, "scope").unwrap();
    assert!(scope.split(' ').any(|s| s == "read:org"), "{scope}");
    let back = Url::parse(&param(&at_github, "redirect_uri").unwrap()).unwrap();
    let state = param(&at_github, "state").unwrap();
    let (landed, res) = b
        .navigate(
            &w.central
                .url(&format!("{}?code=good-code&state={state}", back.path())),
        )
        .await;
    assert_eq!(res.status(), 200, "at {landed}");
    assert_eq!(landed.path(), "/app");
    let info = user_info(&w);
    assert_eq!(
        info["groups"],
        json!([
            "acme",
            "beta",
            "gamma",
            "delta",
            "epsilon",
            "acme/ops",
            "acme/dev",
            "zeta",
            "zeta/core"
        ])
    );
    assert_eq!(info["sub"], "github:583231");
    // Every page was read, with the token, and the link to another origin was not followed.
    let pages = |p: &str| fake.to(p).len();
    assert_eq!((pages("/user/orgs"), pages("/user/teams")), (3, 2));
    assert!(fake.seen().iter().all(|r| !r
        .header("host")
        .unwrap_or_default()
        .starts_with("localhost")));
    // /_auth/userinfo answers the X-User-Info object plus exp.
    let mut me: Value = b
        .client
        .get(w.gateway.url("/_auth/userinfo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let exp = me.as_object_mut().unwrap().remove("exp").unwrap();
    assert!(exp.as_u64().unwrap() > oauthgate::util::now());
    assert_eq!(me, info);
}

#[tokio::test]
async fn github_without_groups_asks_no_read_org_and_sends_an_empty_list() {
    let fake = github_with_groups(&["acme"], &[]).await;
    let (cport, gport) = (free_port(), free_port());
    let provider = format!(
        "    github:\n      client_id: gh-id\n      client_secret: gh-secret\n\
         \x20     authorize_url: {a}\n      access_token_url: {t}\n      user_info_url: {u}\n",
        a = fake.url("/login/oauth/authorize"),
        t = fake.url("/login/oauth/access_token"),
        u = fake.url("/user"),
    );
    let w = World::start_full(cport, gport, &provider, "[github]", ROUTES, "").await;
    let b = w.browser();
    let (at_github, _) = b.navigate(&w.gateway.url("/")).await;
    assert!(!param(&at_github, "scope").unwrap().contains("read:org"));
    let back = Url::parse(&param(&at_github, "redirect_uri").unwrap()).unwrap();
    let state = param(&at_github, "state").unwrap();
    let url = w
        .central
        .url(&format!("{}?code=good-code&state={state}", back.path()));
    assert_eq!(b.navigate(&url).await.1.status(), 200);
    assert_eq!(user_info(&w)["groups"], json!([]));
    assert!(fake.to("/user/orgs").is_empty());
}

async fn oidc_groups(claim: &str, want: Value) {
    let (cport, gport) = (free_port(), free_port());
    let op = OidcProvider::start(
        "oauthgate-test",
        "test-secret-1",
        &[format!("https://localhost:{cport}/oauth/callback/corp")],
    );
    let providers = format!(
        "    corp:\n      kind: oidc\n      issuer: {}\n      client_id: oauthgate-test\n      client_secret: test-secret-1\n      scope: openid email profile groups\n      groups_claim: {claim}\n",
        op.issuer()
    );
    let w = World::start_full(cport, gport, &providers, "[corp]", ROUTES, "").await;
    let b = w.browser();
    let deep = w.gateway.url("/x");
    let landed = walk(&b.client, Url::parse(&deep).unwrap(), "dana", &deep, false).await;
    assert_eq!(b.client.get(landed).send().await.unwrap().status(), 200);
    let info = user_info(&w);
    assert_eq!(info["groups"], want, "{info}");
    assert!(info.get("realm_access").is_none());
}

#[tokio::test]
async fn an_oidc_groups_claim_by_name() {
    oidc_groups("groups", json!(["staff", "team-dana"])).await;
}

#[tokio::test]
async fn an_oidc_groups_claim_by_json_pointer() {
    oidc_groups("/realm_access/roles", json!(["reader", "dana-role"])).await;
}

const IDENTITY: &str = "  identity:\n    headers:\n      Remote-User: login\n      X-Email: email\n      X_Team: groups\n      Grp: groups\n";
const IDENTITY_ROUTES: &str = "    - {prefix: /, upstream: \"BACKEND\"}\n    - {prefix: /opt, upstream: \"BACKEND\", login: optional}\n    - {prefix: /pub, upstream: \"BACKEND\", login: none}\n";

/// SPEC §6.3 on a configured name: the name as written, lower case, upper case with `_` for
/// `-`, with `-` for `_`, and `Connection` naming it (trying to delete ours).
fn spoofs(name: &str) -> String {
    let mut head = String::new();
    for spelling in [
        name.to_owned(),
        name.to_ascii_lowercase(),
        name.to_ascii_uppercase().replace('-', "_"),
        name.replace('_', "-"),
    ] {
        head.push_str(&format!("{spelling}: spoofed-admin\r\n"));
    }
    head.push_str(&format!("Connection: {name}\r\n"));
    head
}

#[tokio::test]
async fn identity_headers_are_set_from_fields_and_spoofs_of_them_never_pass() {
    let w = World::start(IDENTITY_ROUTES, IDENTITY).await;
    let b = w.browser();
    b.log_in_with_groups(
        &w.gateway.url("/"),
        "olga",
        "olga@example.com",
        "ops,acme/dev",
    )
    .await;
    let cookie = b.cookies(&w.gateway.url("/"));
    let cert = w.gateway.cert_pem();
    let names = ["Remote-User", "X-Email", "X_Team", "Grp"];
    for path in ["/", "/opt/x", "/pub/x"] {
        for logged_in in [true, false] {
            for name in names {
                let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
                if logged_in {
                    head.push_str(&format!("Cookie: {cookie}\r\n"));
                }
                head.push_str(&spoofs(name));
                let res = common::client::request(w.gateway.addr, &cert, &head).await;
                let want = if path == "/" && !logged_in { 401 } else { 200 };
                assert_eq!(res.status, want, "{path} {name} {logged_in}");
                if want != 200 {
                    continue;
                }
                let seen = w.backend.last();
                for (k, v) in seen.headers.iter() {
                    let v = v.to_str().unwrap_or_default();
                    assert!(
                        !v.contains("spoofed"),
                        "{path}: {k}: {v} reached the backend"
                    );
                }
                let one = |h: &str| {
                    let all: Vec<_> = seen.headers.get_all(h).iter().collect();
                    assert!(all.len() <= 1, "{h}: {all:?}");
                    all.first().map(|v| v.to_str().unwrap().to_owned())
                };
                let ours = logged_in && path != "/pub/x";
                let expect = |v: &str| ours.then(|| v.to_owned());
                assert_eq!(one("remote-user"), expect("olga"), "{path} {name}");
                assert_eq!(one("x-email"), expect("olga@example.com"));
                assert_eq!(one("x_team"), expect("ops,acme/dev"));
                assert_eq!(one("grp"), expect("ops,acme/dev"));
                assert_eq!(one("x-team"), None);
            }
        }
    }
    // /_auth/check answers the same headers, for a proxy to copy.
    let res = b
        .client
        .get(w.gateway.url("/_auth/check"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["remote-user"], "olga");
    assert_eq!(res.headers()["x_team"], "ops,acme/dev");
    assert!(res.headers().contains_key("x-user-info"));
}

#[test]
fn identity_header_names_that_cannot_work_are_config_errors() {
    for (name, why) in [
        ("Connection", "hop-by-hop"),
        ("Host", "hop-by-hop"),
        ("X-User-Login", "X-User-*"),
        ("Bad Name", "valid header name"),
    ] {
        let (code, err) = common::check(&format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost:8443\ntls: {{self_signed: true}}\ngateway:\n  identity:\n    headers:\n      \"{name}\": login\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:9\", login: none}}\n"
        ));
        assert_eq!(code, 64, "{name}");
        assert!(
            err.contains(&format!("gateway.identity.headers.{name}")),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
    }
}

#[tokio::test]
async fn x_user_assertion_verifies_with_pyjwt_through_the_gateways_jwks() {
    let extra = "  identity:\n    assertion: true\n";
    let w = World::start(IDENTITY_ROUTES, extra).await;
    let b = w.browser();
    b.log_in_with_groups(&w.gateway.url("/"), "olga", "olga@example.com", "ops")
        .await;
    let token = |w: &World| {
        w.backend.last().headers["x-user-assertion"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let res = b
        .client
        .get(w.gateway.url("/x"))
        .header("x-user-assertion", "spoofed")
        .header("x_user_assertion", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        w.backend
            .last()
            .headers
            .get_all("x-user-assertion")
            .iter()
            .count(),
        1
    );
    let first = token(&w);
    assert_ne!(first, "spoofed");
    let jwks = w.gateway.text("/_auth/jwks").await;
    let iss = format!("https://localhost:{}", w.gateway.addr.port());
    let aud = w.backend.url();
    let (ok, out, err) =
        common::python::script("verify_assertion.py", &[&jwks, &first, &iss, &aud]);
    assert!(ok, "PyJWT refused X-User-Assertion: {err}");
    let py: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(py["header"]["alg"], "EdDSA");
    let c = &py["claims"];
    assert_eq!(c["sub"], "dev:olga");
    assert_eq!(c["provider"], "dev");
    assert_eq!(c["groups"], json!(["ops"]));
    assert_eq!(c["email"], "olga@example.com");
    assert!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap() <= 60);
    // Another audience (or issuer) is refused.
    for (iss, aud) in [
        (iss.as_str(), "http://127.0.0.1:1"),
        ("https://evil.example", aud.as_str()),
    ] {
        let (ok, _, _) = common::python::script("verify_assertion.py", &[&jwks, &first, iss, aud]);
        assert!(!ok, "accepted for {iss} {aud}");
    }
    // Reused by the next requests (no signature per request), on other routes of the same
    // upstream too; an optional route's anonymous request and a public route get none.
    for path in ["/y", "/opt/z", "/"] {
        b.client.get(w.gateway.url(path)).send().await.unwrap();
        assert_eq!(token(&w), first, "{path}");
    }
    b.client.get(w.gateway.url("/pub/x")).send().await.unwrap();
    assert!(!w.backend.last().headers.contains_key("x-user-assertion"));
    let anon = w.browser();
    anon.client
        .get(w.gateway.url("/opt/x"))
        .send()
        .await
        .unwrap();
    assert!(!w.backend.last().headers.contains_key("x-user-assertion"));
    // The key is the gateway's own, kept private in its data_dir.
    let key = w.gateway.data_dir().join("gateway.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(!jwks.contains(std::fs::read_to_string(&key).unwrap().trim()));
}

#[tokio::test]
async fn no_key_and_no_jwks_without_assertions_or_bearer_routes() {
    let w = World::start(IDENTITY_ROUTES, "").await;
    let res = w
        .browser()
        .client
        .get(w.gateway.url("/_auth/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!w.gateway.data_dir().join("gateway.key").exists());
}

#[tokio::test]
async fn a_session_with_more_groups_than_a_cookie_holds_gets_the_clear_page() {
    let w = World::start(IDENTITY_ROUTES, "").await;
    let b = w.browser();
    let many: Vec<String> = (0..250)
        .map(|i| format!("team-with-a-long-name-{i:04}"))
        .collect();
    let (_, res) = b
        .log_in_with_groups(&w.gateway.url("/"), "olga", "", &many.join(","))
        .await;
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("fewer user_info_fields or groups"));
    assert_eq!(b.userinfo_status(&w.gateway).await, 401);
}

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

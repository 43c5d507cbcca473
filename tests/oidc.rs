//! The central server against a real OpenID Connect provider (npm `oidc-provider`): the full
//! code flow with PKCE, its interactive login and consent pages, id_token checks, the user
//! info reaching the assertion, and the user saying no.

mod common;

use common::param;

use common::oidc::{walk, OidcProvider};
use common::Gateway;
use oauthgate::assertion::{self, Expected};
use url::Url;

const APP: &str = "https://app.example/_auth/callback";

fn central(op: &OidcProvider) -> Gateway {
    Gateway::start_raw(&format!(
        "central:\n  providers:\n    corp:\n      kind: oidc\n      display_name: Corp SSO\n      issuer: {}\n      client_id: oauthgate-test\n      client_secret: test-secret-1\n  clients:\n    - redirect_url: {APP}\n",
        op.issuer()
    ))
}

/// Logs in as `login` through the provider; returns the central's final response.
async fn login(
    gw: &Gateway,
    op: &OidcProvider,
    login: &str,
    state: &str,
    abort: bool,
) -> reqwest::Response {
    let b = gw.client_builder().cookie_store(true).build().unwrap();
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("provider", "corp")
        .append_pair("state", state)
        .append_pair("redirect_url", APP)
        .finish();
    let res = b
        .get(gw.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let at = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        at.as_str().starts_with(&format!("{}/auth?", op.issuer())),
        "{at}"
    );
    assert_eq!(param(&at, "code_challenge_method").as_deref(), Some("S256"));
    assert!(param(&at, "nonce").is_some());
    // The provider sends the browser to the configured redirect_url (no port in these
    // tests); the browser then reaches the central where it really listens.
    let back = walk(&b, at, login, "https://localhost/oauth/callback", abort).await;
    assert_eq!(back.path(), "/oauth/callback/corp");
    let cb = gw.url(&format!("{}?{}", back.path(), back.query().unwrap()));
    b.get(cb)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_real_oidc_provider_logs_people_in_with_pkce_and_a_checked_id_token() {
    let op = OidcProvider::start(
        "oauthgate-test",
        "test-secret-1",
        &["https://localhost/oauth/callback/corp".to_owned()],
    );
    let gw = central(&op);
    let key_hex = gw.text("/oauth/key").await;
    let key = assertion::parse_verify_key(&key_hex).unwrap();

    let res = login(&gw, &op, "alice", "op-1", false).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(APP));
    let now = oauthgate::util::now();
    let claims = assertion::verify(
        &param(&back, "assertion").unwrap(),
        &[key],
        &Expected {
            iss: "https://localhost/oauth",
            aud: APP,
            nonce: "op-1",
            now,
        },
    )
    .unwrap();
    assert_eq!(claims.sub, "corp:alice");
    assert_eq!(claims.provider, "corp");
    assert_eq!(
        serde_json::Value::Object(claims.user),
        serde_json::json!({"email": "alice@example.com", "name": "User alice"})
    );

    // An address the provider marks unverified is not passed on.
    let res = login(&gw, &op, "unverified-bob", "op-2", false).await;
    assert_eq!(res.status(), 303);
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let claims = assertion::verify(
        &param(&back, "assertion").unwrap(),
        &[key],
        &Expected {
            iss: "https://localhost/oauth",
            aud: APP,
            nonce: "op-2",
            now,
        },
    )
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(claims.user),
        serde_json::json!({"name": "User unverified-bob"})
    );
}

#[tokio::test]
async fn cancelling_at_the_provider_ends_in_a_page_with_a_retry_link() {
    let op = OidcProvider::start(
        "oauthgate-test",
        "test-secret-1",
        &["https://localhost/oauth/callback/corp".to_owned()],
    );
    let gw = central(&op);
    let res = login(&gw, &op, "alice", "op-3", true).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    let page = res.text().await.unwrap();
    assert!(
        page.contains("The login at Corp SSO was cancelled."),
        "{page}"
    );
    assert!(page.contains("Try again"), "{page}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_clear_refusal() {
    let op = OidcProvider::start(
        "oauthgate-test",
        "the-real-secret",
        &["https://localhost/oauth/callback/corp".to_owned()],
    );
    let gw = central(&op);
    let res = login(&gw, &op, "alice", "op-4", false).await;
    assert_eq!(res.status(), 502);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Corp SSO refused the login (invalid_client)"),
        "{page}"
    );
    assert!(!page.contains("test-secret-1"));
}

#[tokio::test]
async fn gateway_and_central_apart_with_the_real_provider_end_to_end() {
    let (cport, gport) = (common::free_port(), common::free_port());
    let op = OidcProvider::start(
        "oauthgate-test",
        "test-secret-1",
        &[format!("https://localhost:{cport}/oauth/callback/corp")],
    );
    let providers = format!(
        "    corp:\n      kind: oidc\n      issuer: {}\n      client_id: oauthgate-test\n      client_secret: test-secret-1\n",
        op.issuer()
    );
    let w = common::flow::World::start_full(
        cport,
        gport,
        &providers,
        "[corp]",
        "    - {prefix: /, upstream: \"BACKEND\"}\n",
        "",
    )
    .await;
    assert_ne!(w.central.data_dir(), w.gateway.data_dir());
    let b = w.browser();
    let deep = w.gateway.url("/reports/2026?format=pdf&page=2");
    let landed = walk(&b.client, Url::parse(&deep).unwrap(), "carol", &deep, false).await;
    assert_eq!(landed.as_str(), deep);
    let res = b.client.get(landed).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = w.backend.last();
    assert_eq!(seen.target, "/reports/2026?format=pdf&page=2");
    let info: serde_json::Value =
        serde_json::from_str(seen.headers["x-user-info"].to_str().unwrap()).unwrap();
    assert_eq!(
        info,
        serde_json::json!({"provider": "corp", "sub": "corp:carol", "groups": [], "email": "carol@example.com", "name": "User carol"})
    );
    // Logging out at the gateway ends the gateway session.
    assert_eq!(b.log_out(&w.gateway).await.status(), 200);
    let res = b.client.get(&deep).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

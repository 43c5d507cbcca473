//! The central OAuth server against GitHub-, Google- and Facebook-shaped fakes: the full code
//! flow, what the central sends providers, the assertion (checked by PyJWT as well as by us),
//! the legacy Jumpscale signature (checked by PyNaCl), and every rejection.

mod common;

use common::param;

use std::sync::{Arc, Mutex};

use common::fakes::{Fake, Recorded};
use common::python;
use common::{Backend, Gateway};
use oauthgate::assertion::{self, Expected};
use url::Url;

const APP: &str = "https://app.example/_auth/callback";
const LEGACY: &str = "https://old.example/oauth2/callback";
const ISSUER: &str = "https://localhost/oauth";

fn json(body: serde_json::Value) -> (u16, &'static str, String) {
    (200, "application/json", body.to_string())
}

/// A GitHub-shaped provider: JSON only when asked, 200 with an error for a bad code, the API
/// needs a User-Agent; the profile shows a public email the user typed (GitHub does not
/// check it), the verified primary address lives at /user/emails.
async fn github() -> Fake {
    Fake::start(|r: &Recorded| match r.path.as_str() {
        "/login/oauth/access_token" => {
            if r.param("code").as_deref() != Some("good-code") {
                return json(serde_json::json!({"error": "bad_verification_code"}));
            }
            if r.header("accept").is_some_and(|a| a.contains("application/json")) {
                json(serde_json::json!({"access_token": "gho_token", "token_type": "bearer", "scope": "read:user,user:email"}))
            } else {
                (200, "application/x-www-form-urlencoded", "access_token=gho_token&token_type=bearer".into())
            }
        }
        "/user" | "/user/emails" if r.header("authorization") != Some("Bearer gho_token") => {
            (401, "application/json", r#"{"message":"Bad credentials"}"#.into())
        }
        "/user" | "/user/emails" if r.header("user-agent").is_none() => (403, "text/plain", "UA required".into()),
        "/user" => json(serde_json::json!({"login": "octocat", "id": 583231, "name": "Zoë Ñandú", "email": "unverified-public@example.org", "site_admin": false})),
        "/user/emails" => json(serde_json::json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "octocat@github.com", "primary": true, "verified": true},
        ])),
        _ => (404, "text/plain", "not found".into()),
    })
    .await
}

fn github_provider(fake: &Fake) -> String {
    format!(
        "    github:\n      client_id: gh-id\n      client_secret: gh-secret\n\
         \x20     authorize_url: {a}\n      access_token_url: {t}\n      user_info_url: {u}\n      emails_url: {e}\n",
        a = fake.url("/login/oauth/authorize"),
        t = fake.url("/login/oauth/access_token"),
        u = fake.url("/user"),
        e = fake.url("/user/emails"),
    )
}

fn central(providers: &str, extra: &str) -> Gateway {
    Gateway::start_raw(&format!(
        "central:\n{extra}  providers:\n{providers}  clients:\n    - redirect_url: {APP}\n    - redirect_url: {LEGACY}\n      protocol: jumpscale\n"
    ))
}

/// A browser: keeps cookies, follows no redirects.
fn browser(gw: &Gateway) -> reqwest::Client {
    gw.client_builder().cookie_store(true).build().unwrap()
}

fn location(res: &reqwest::Response) -> Url {
    let loc = res
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap();
    Url::parse(loc).unwrap_or_else(|_| Url::parse("https://localhost").unwrap().join(loc).unwrap())
}

fn authorize_url(gw: &Gateway, provider: &str, state: &str, redirect: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("provider", provider)
        .append_pair("state", state)
        .append_pair("redirect_url", redirect)
        .finish();
    gw.url(&format!("/oauth/authorize?{q}"))
}

/// authorize → (the provider's URL with our state) → callback; returns the final response.
async fn login(
    gw: &Gateway,
    b: &reqwest::Client,
    provider: &str,
    state: &str,
    redirect: &str,
    code: &str,
) -> (Url, reqwest::Response) {
    let at_provider = to_provider(gw, b, provider, state, redirect).await;
    let res = b.get(callback_url(gw, code, &at_provider)).send().await;
    (at_provider, res.unwrap())
}

/// Where `/oauth/authorize` sends the browser: the provider's page, with our state.
async fn to_provider(
    gw: &Gateway,
    b: &reqwest::Client,
    provider: &str,
    state: &str,
    redirect: &str,
) -> Url {
    let res = b
        .get(authorize_url(gw, provider, state, redirect))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    location(&res)
}

/// The callback the provider sends the browser back to from `at_provider`: the
/// `redirect_uri` it was given (`/oauth/callback/<provider>`), where the central listens.
fn callback_url(gw: &Gateway, code: &str, at_provider: &Url) -> String {
    let state = param(at_provider, "state").expect("state at the provider");
    let back = Url::parse(&param(at_provider, "redirect_uri").expect("a redirect_uri")).unwrap();
    gw.url(&format!("{}?code={code}&state={state}", back.path()))
}

async fn verify_key(gw: &Gateway) -> String {
    gw.text("/oauth/key").await
}

/// The claims of the assertion in `back` (the redirect to the client), verified with the
/// central's published key for the expected issuer, audience and `nonce`.
async fn verified(gw: &Gateway, back: &Url, nonce: &str) -> assertion::Claims {
    let key = assertion::parse_verify_key(&verify_key(gw).await).unwrap();
    let token = param(back, "assertion").expect("an assertion");
    let now = oauthgate::util::now();
    assertion::verify(
        &token,
        &[key],
        &Expected {
            iss: ISSUER,
            aud: APP,
            nonce,
            now,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn github_login_end_to_end_with_an_assertion_any_jwt_library_verifies() {
    let fake = github().await;
    let gw = central(&github_provider(&fake), "");
    let b = browser(&gw);
    let (at_provider, res) = login(&gw, &b, "github", "gateway-nonce-1", APP, "good-code").await;

    // What the browser was sent to GitHub with.
    assert!(at_provider
        .as_str()
        .starts_with(&fake.url("/login/oauth/authorize")));
    assert_eq!(param(&at_provider, "client_id").as_deref(), Some("gh-id"));
    assert_eq!(
        param(&at_provider, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        param(&at_provider, "redirect_uri").as_deref(),
        Some("https://localhost/oauth/callback/github")
    );
    assert_eq!(
        param(&at_provider, "scope").as_deref(),
        Some("read:user user:email")
    );
    assert_eq!(
        param(&at_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(param(&at_provider, "code_challenge").is_some_and(|c| c.len() == 43));
    assert!(
        !at_provider.as_str().contains("gh-secret"),
        "secret in the authorize URL"
    );

    // What the central sent GitHub's token endpoint: JSON asked for, PKCE verifier, secret in
    // the body and never in a URL.
    let token = &fake.to("/login/oauth/access_token")[0];
    assert_eq!(token.method, "POST");
    assert!(token.header("accept").unwrap().contains("application/json"));
    assert_eq!(token.param("code").as_deref(), Some("good-code"));
    assert!(token.param("code_verifier").is_some_and(|v| v.len() >= 43));
    assert_eq!(
        token.param("redirect_uri").as_deref(),
        Some("https://localhost/oauth/callback/github")
    );
    assert!(token.body.contains("client_secret=gh-secret"));
    assert!(fake.seen().iter().all(|r| !r.query.contains("gh-secret")));
    let user = &fake.to("/user")[0];
    assert!(user.header("user-agent").unwrap().starts_with("oauthgate/"));

    // Back to the client with a signed assertion and its state.
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(back.as_str().starts_with(APP));
    assert_eq!(param(&back, "state").as_deref(), Some("gateway-nonce-1"));
    let token = param(&back, "assertion").unwrap();
    let claims = verified(&gw, &back, "gateway-nonce-1").await;
    assert_eq!(claims.sub, "github:583231");
    assert_eq!(claims.provider, "github");
    assert!(claims.exp - claims.iat <= 120);
    assert_eq!(
        serde_json::Value::Object(claims.user.clone()),
        serde_json::json!({"email": "octocat@github.com", "login": "octocat", "name": "Zoë Ñandú"})
    );

    // PyJWT, with the JWKS, agrees.
    let jwks = gw.text("/oauth/jwks").await;
    let (ok, out, err) = python::script("verify_assertion.py", &[&jwks, &token, ISSUER, APP]);
    assert!(ok, "PyJWT refused the assertion: {err}");
    let py: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(py["header"]["alg"], "EdDSA");
    assert_eq!(py["claims"]["sub"], "github:583231");
    assert_eq!(py["claims"]["nonce"], "gateway-nonce-1");
    // …and refuses it for another audience.
    let (ok, _, _) = python::script(
        "verify_assertion.py",
        &[&jwks, &token, ISSUER, "https://evil.example/cb"],
    );
    assert!(!ok);

    // Replaying the callback fails: the round-trip cookie is gone.
    let replay = b
        .get(callback_url(&gw, "good-code", &at_provider))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay.headers().get("location").is_none());
}

#[tokio::test]
async fn legacy_jumpscale_clients_get_a_signature_pynacl_verifies() {
    let fake = github().await;
    let gw = central(&github_provider(&fake), "");
    let (_, res) = login(
        &gw,
        &browser(&gw),
        "github",
        "js state/1",
        LEGACY,
        "good-code",
    )
    .await;
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(back.as_str().starts_with(LEGACY));
    let query = back.query().unwrap().to_owned();
    assert!(!query.contains("assertion="));
    // The state is signed, not sent: the client adds the one from its own session.
    assert!(!query.contains("state="), "{query}");
    let key = verify_key(&gw).await;
    let client = |state: &str, query: &str| {
        python::script("jumpscale_client.py", &[key.trim(), state, query])
    };
    let (ok, out, err) = client("js state/1", &query);
    assert!(ok, "the Jumpscale client refused the callback: {err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        info,
        serde_json::json!({"email": "octocat@github.com", "login": "octocat", "name": "Zoë Ñandú"})
    );
    // A tampered field, or another session's state, breaks it.
    let tampered = query.replace("login=octocat", "login=admin");
    assert!(!client("js state/1", &tampered).0);
    assert!(!client("another state", &query).0);
}

#[tokio::test]
async fn github_answers_form_encoded_without_accept_json_and_bad_codes_with_200() {
    let fake = github().await;
    let gw = central(&github_provider(&fake), "");
    let (_, res) = login(&gw, &browser(&gw), "github", "s-bad", APP, "wrong-code").await;
    assert_eq!(res.status(), 502);
    let page = res.text().await.unwrap();
    assert!(page.contains("GitHub"), "{page}");
    assert!(!page.contains("gh-secret") && !page.contains("gho_token"));
}

/// A Google-shaped OIDC provider signing id_tokens with RS256.
struct FakeGoogle {
    fake: Fake,
    nonce: Arc<Mutex<String>>,
    email_verified: Arc<Mutex<bool>>,
}

async fn google() -> FakeGoogle {
    let nonce = Arc::new(Mutex::new(String::new()));
    let verified = Arc::new(Mutex::new(true));
    let issuer = Arc::new(Mutex::new(String::new()));
    let (n, v, iss) = (nonce.clone(), verified.clone(), issuer.clone());
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("fixtures/google-test-rsa.pem"))
            .unwrap();
    let fake = Fake::start(move |r: &Recorded| match r.path.as_str() {
        "/token" => {
            if !r.header("authorization").is_some_and(|a| a.starts_with("Basic ")) {
                return (401, "application/json", r#"{"error":"invalid_client"}"#.into());
            }
            let now = oauthgate::util::now();
            let claims = serde_json::json!({
                "iss": *iss.lock().unwrap(), "aud": "g-id", "sub": "1093", "iat": now, "exp": now + 300,
                "nonce": *n.lock().unwrap(), "email": "jane@example.com", "email_verified": *v.lock().unwrap(),
            });
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some("test-rsa-1".into());
            let id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            json(serde_json::json!({"access_token": "ya29.x", "token_type": "Bearer", "expires_in": 3599, "id_token": id_token}))
        }
        "/userinfo" => json(serde_json::json!({"sub": "1093", "name": "Jane Doe", "email": "jane@example.com", "email_verified": *v.lock().unwrap()})),
        "/certs" => (200, "application/json", include_str!("fixtures/google-test-jwks.json").into()),
        _ => (404, "text/plain", "not found".into()),
    })
    .await;
    *issuer.lock().unwrap() = fake.url("");
    FakeGoogle {
        fake,
        nonce,
        email_verified: verified,
    }
}

fn google_provider(g: &Fake) -> String {
    format!(
        "    google:\n      client_id: g-id\n      client_secret: g-secret\n      issuer: {iss}\n\
         \x20     authorize_url: {a}\n      access_token_url: {t}\n      user_info_url: {u}\n      jwks_url: {j}\n",
        iss = g.url(""),
        a = g.url("/auth"),
        t = g.url("/token"),
        u = g.url("/userinfo"),
        j = g.url("/certs"),
    )
}

async fn google_login(gw: &Gateway, g: &FakeGoogle, state: &str) -> reqwest::Response {
    let b = browser(gw);
    let at = to_provider(gw, &b, "google", state, APP).await;
    assert_eq!(param(&at, "scope").as_deref(), Some("openid email profile"));
    *g.nonce.lock().unwrap() = param(&at, "nonce").expect("an OIDC nonce");
    b.get(callback_url(gw, "c", &at)).send().await.unwrap()
}

#[tokio::test]
async fn google_oidc_id_token_is_verified_and_unverified_emails_are_dropped() {
    let g = google().await;
    let gw = central(&google_provider(&g.fake), "");
    let res = google_login(&gw, &g, "g1").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let claims = verified(&gw, &location(&res), "g1").await;
    assert_eq!(claims.sub, "google:1093");
    assert_eq!(
        serde_json::Value::Object(claims.user),
        serde_json::json!({"email": "jane@example.com", "name": "Jane Doe"})
    );
    // Client secret by HTTP Basic for Google, never in the body or a URL.
    let token = &g.fake.to("/token")[0];
    assert!(!token.body.contains("g-secret"));

    *g.email_verified.lock().unwrap() = false;
    let res = google_login(&gw, &g, "g2").await;
    assert_eq!(res.status(), 303);
    let claims = verified(&gw, &location(&res), "g2").await;
    assert_eq!(
        serde_json::Value::Object(claims.user),
        serde_json::json!({"name": "Jane Doe"}),
        "an unverified email must not be passed on"
    );
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let g = google().await;
    let gw = central(&google_provider(&g.fake), "");
    let b = browser(&gw);
    let at = to_provider(&gw, &b, "google", "g3", APP).await;
    *g.nonce.lock().unwrap() = "a-nonce-from-another-login".into();
    let res = b.get(callback_url(&gw, "c", &at)).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn facebook_is_asked_for_fields() {
    let fake = Fake::start(|r: &Recorded| match r.path.as_str() {
        "/oauth/access_token" => json(serde_json::json!({"access_token": "EAAx", "token_type": "bearer", "expires_in": 5183944})),
        // Without fields= the Graph API answers id and name only.
        "/me" => match r.param("fields") {
            Some(f) if f.split(',').any(|x| x == "email") => json(serde_json::json!({"id": "10158", "name": "Mark", "email": "mark@example.com"})),
            _ => json(serde_json::json!({"id": "10158", "name": "Mark"})),
        },
        _ => (404, "text/plain", "not found".into()),
    })
    .await;
    let provider = format!(
        "    facebook:\n      client_id: fb-id\n      client_secret: fb-secret\n      authorize_url: {}\n      access_token_url: {}\n      user_info_url: {}\n",
        fake.url("/dialog/oauth"),
        fake.url("/oauth/access_token"),
        fake.url("/me")
    );
    let gw = central(&provider, "");
    let (_, res) = login(&gw, &browser(&gw), "facebook", "f1", APP, "c").await;
    assert_eq!(res.status(), 303);
    let claims = verified(&gw, &location(&res), "f1").await;
    assert_eq!(claims.sub, "facebook:10158");
    assert_eq!(claims.user["email"], "mark@example.com");
    assert!(fake.to("/me")[0].param("fields").unwrap().contains("email"));
}

#[tokio::test]
async fn unregistered_redirect_urls_get_a_400_page_and_never_a_redirect() {
    let fake = github().await;
    let gw = central(&github_provider(&fake), "");
    let b = browser(&gw);
    let ours = [
        "data:text/html,<script>alert(1)</script>",
        "https://app.example/_auth/callback\r\nLocation: https://e.com",
        "https://app.example/_auth/callback%0d%0a",
        "https://app.example/_auth/callback/../../e",
        "https://app.example/_auth/callback?x=1",
        "https://app.example/_auth/callback#x",
        "https://app.example.e.com/_auth/callback",
        "https://app.example@e.com/_auth/callback",
        "HTTPS://APP.EXAMPLE/_auth/callback",
        "https://app.example:443/_auth/callback",
        "http://app.example/_auth/callback",
        "",
    ];
    for payload in common::OPEN_REDIRECTS.iter().chain(&ours).copied() {
        let res = b
            .get(authorize_url(&gw, "github", "s", payload))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{payload:?}");
        assert!(
            res.headers().get("location").is_none(),
            "{payload:?} redirected"
        );
        assert!(
            res.headers().get("set-cookie").is_none(),
            "{payload:?} started a login"
        );
    }
    assert!(
        fake.seen().is_empty(),
        "the provider must never be contacted"
    );
}

#[tokio::test]
async fn unknown_providers_missing_and_bad_state_are_refused() {
    let fake = github().await;
    let gw = central(&github_provider(&fake), "");
    let b = browser(&gw);
    let res = b
        .get(authorize_url(&gw, "gitlab", "s", APP))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(page.contains("gitlab") && page.contains("github"), "{page}");
    let res = b
        .get(authorize_url(&gw, "<script>", "s", APP))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        !res.text().await.unwrap().contains("<script>"),
        "reflected markup"
    );
    let res = b
        .get(gw.url(&format!(
            "/oauth/authorize?provider=github&redirect_url={APP}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    for cb in [
        "/oauth/callback?code=x",
        "/oauth/callback?code=x&state=",
        "/oauth/callback?code=x&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let res = b.get(gw.url(cb)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{cb}");
    }
    // A state from another browser's login is refused: the round trip lives in that browser.
    let at = to_provider(&gw, &b, "github", "s", APP).await;
    let other = browser(&gw);
    let res = other
        .get(callback_url(&gw, "good-code", &at))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(fake.to("/login/oauth/access_token").is_empty());
}

#[tokio::test]
async fn provider_failures_end_in_a_page_with_a_retry_link() {
    let hang = Backend::start().await;
    let dead = common::backend::dead_address().await;
    let mode = Arc::new(Mutex::new("ok"));
    let m = mode.clone();
    let fake = Fake::start(
        move |r: &Recorded| match (r.path.as_str(), *m.lock().unwrap()) {
            ("/token", "500") => (500, "text/html", "<h1>oops</h1>".into()),
            ("/token", "html") => (200, "text/html", "<html>login</html>".into()),
            ("/token", "no-token") => json(serde_json::json!({"token_type": "bearer"})),
            ("/token", "invalid-grant") => (
                400,
                "application/json",
                r#"{"error":"invalid_grant"}"#.into(),
            ),
            ("/token", _) => json(serde_json::json!({"access_token": "t", "token_type": "bearer"})),
            ("/user", "user-401") => (401, "application/json", "{}".into()),
            ("/user", _) => json(serde_json::json!({"id": 7, "email": "x@example.com"})),
            _ => (404, "text/plain", "".into()),
        },
    )
    .await;
    let provider = |name: &str, token: &str| {
        format!(
            "    {name}:\n      kind: oauth2\n      client_id: id\n      client_secret: secret\n      authorize_url: {}\n      access_token_url: {token}\n      user_info_url: {}\n",
            fake.url("/authorize"),
            fake.url("/user")
        )
    };
    let providers = [
        provider("acme", &fake.url("/token")),
        provider("down", &format!("http://{dead}/token")),
        provider("slow", &format!("{}/hang", hang.url())),
    ]
    .concat();
    let gw = central(&providers, "  provider_timeout: 1s\n");
    let b = browser(&gw);

    // The user says no at the provider.
    let at = to_provider(&gw, &b, "acme", "s1", APP).await;
    let state = param(&at, "state").unwrap();
    let res = b
        .get(gw.url(&format!(
            "/oauth/callback/acme?error=access_denied&state={state}"
        )))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let page = res.text().await.unwrap();
    assert!(page.contains("cancelled"), "{page}");
    assert!(
        page.contains("/oauth/authorize?provider=acme&amp;state=s1&amp;redirect_url="),
        "{page}"
    );

    let cases = [
        ("acme", "500", "cannot use"),
        ("acme", "html", "cannot use"),
        ("acme", "no-token", "cannot use"),
        ("acme", "invalid-grant", "refused the login (invalid_grant)"),
        ("acme", "user-401", "cannot use"),
        ("down", "ok", "could not be reached"),
        ("slow", "ok", "could not be reached"),
    ];
    for (name, m, want) in cases {
        *mode.lock().unwrap() = m;
        let (_, res) = login(&gw, &b, name, "s2", APP, "c").await;
        assert_eq!(res.status(), 502, "{name}/{m}");
        assert!(res.headers().get("location").is_none());
        let page = res.text().await.unwrap();
        assert!(page.contains(want), "{name}/{m}: {page}");
        assert!(
            page.contains("\"retry_url\":\"/oauth/authorize?provider="),
            "{name}/{m}: no retry link"
        );
        assert!(!page.contains("secret"), "{name}/{m}");
    }
    // Browsers get a page with a "Try again" button.
    *mode.lock().unwrap() = "500";
    let at = to_provider(&gw, &b, "acme", "s3", APP).await;
    let res = b
        .get(callback_url(&gw, "c", &at))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Try again")
            && page.contains("href=\"/oauth/authorize?provider=acme&amp;state=s3"),
        "{page}"
    );
    // The line goes through the log writer and a pipe: it may come after the response.
    gw.log_when("the provider failure's line", |log| {
        log.iter()
            .any(|l| l.contains("login failed at the provider"))
    });
}

#[tokio::test]
async fn key_endpoints_and_a_persistent_signing_key() {
    let fake = github().await;
    let gw = central(
        &format!("{}    dev:\n      kind: dev\n", github_provider(&fake)),
        "",
    );
    let hex = verify_key(&gw).await;
    assert_eq!(hex.len(), 64);
    let key = assertion::parse_verify_key(&hex).unwrap();
    let jwks: serde_json::Value = gw
        .client()
        .get(gw.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], assertion::thumbprint(&key));
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let providers: serde_json::Value = gw
        .client()
        .get(gw.url("/oauth/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(providers, serde_json::json!(["github", "dev"]));
    let signing = gw.data_dir().join("signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&signing).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let gw = gw.restart();
    assert_eq!(verify_key(&gw).await, hex, "the key must survive a restart");
    assert!(
        !gw.log()
            .iter()
            .any(|l| l.contains(&std::fs::read_to_string(&signing).unwrap().trim().to_owned())),
        "the secret key was logged"
    );
}

#[tokio::test]
async fn the_dev_provider_logs_in_through_its_form() {
    let gw = central("    dev:\n      kind: dev\n", "");
    let b = browser(&gw);
    let form_url = to_provider(&gw, &b, "dev", "d1", APP).await;
    assert_eq!(form_url.path(), "/oauth/dev");
    let form = b
        .get(gw.url(&format!("/oauth/dev?{}", form_url.query().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(html.contains("name=\"login\"") && html.contains("<label for=\"login\">"));
    let state = param(&form_url, "state").unwrap();
    let res = b
        .post(gw.url("/oauth/dev"))
        .form(&[
            ("state", state.as_str()),
            ("login", "alice"),
            ("email", "alice@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let claims = verified(&gw, &location(&res), "d1").await;
    assert_eq!(claims.sub, "dev:alice");
    assert_eq!(
        serde_json::Value::Object(claims.user),
        serde_json::json!({"email": "alice@example.com", "login": "alice"})
    );
    // The form cannot be posted without the round trip this browser started.
    let res = browser(&gw)
        .post(gw.url("/oauth/dev"))
        .form(&[("state", state.as_str()), ("login", "mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[test]
fn the_dev_provider_refuses_a_public_listener_or_public_url() {
    let dev = "tls: {self_signed: true}\ncentral:\n  providers:\n    dev: {kind: dev}\n";
    for (top, why) in [
        (
            "listen: 0.0.0.0:8443\npublic_url: https://example.com\n",
            "listen",
        ),
        // The README's "nginx in front" setup: loopback listener, public site.
        (
            "listen: 127.0.0.1:8443\npublic_url: https://example.com\n",
            "public_url",
        ),
        (
            "listen: \"[::1]:8443\"\npublic_url: https://app.localhost.example.com\n",
            "public_url",
        ),
    ] {
        let (code, err) = common::check(&format!("{top}{dev}"));
        assert_eq!(code, 64, "{top}: {err}");
        assert!(
            err.contains("central.providers.dev.kind") && err.contains(why),
            "{top}: {err}"
        );
    }
    for top in [
        "listen: 127.0.0.1:8443\npublic_url: https://localhost:8443\n",
        "listen: 127.0.0.1:8443\npublic_url: https://127.0.0.2:8443\n",
        "listen: \"[::1]:8443\"\npublic_url: \"https://[::1]:8443\"\n",
    ] {
        let (code, err) = common::check(&format!("{top}{dev}"));
        assert_eq!(code, 0, "{top}: {err}");
    }
}

/// Runs `oauthgate check` on `yaml`; returns (exit code, stdout, stderr).
fn check_out(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_each_providers_own_callback_and_shared_callbacks_are_refused() {
    let head = "listen: 127.0.0.1:8443\npublic_url: https://auth.example.com\ntls: {self_signed: true}\ncentral:\n  providers:\n";
    let (code, out, err) = check_out(&format!(
        "{head}    github: {{client_id: a, client_secret: b}}\n    google: {{client_id: c, client_secret: d}}\n    dev: {{kind: dev}}\n"
    ));
    // The dev provider needs no callback, but refuses this public_url.
    assert_eq!(code, 64, "{out}{err}");
    let (code, out, err) = check_out(&format!(
        "{head}    github: {{client_id: a, client_secret: b}}\n    google: {{client_id: c, client_secret: d}}\n"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("provider github: register the callback URL https://auth.example.com/oauth/callback/github\n")
            && out.contains("provider google: register the callback URL https://auth.example.com/oauth/callback/google\n"),
        "{out}"
    );
    // Two providers on one callback is the IdP mix-up; GitHub on the plain one beside another
    // provider too, since GitHub accepts any callback below the registered one.
    for (providers, key) in [
        (
            "    google: {client_id: c, client_secret: d, redirect_url: https://auth.example.com/oauth/callback}\n    corp: {kind: oidc, issuer: https://corp.example, client_id: c, client_secret: d, redirect_url: https://auth.example.com/oauth/callback}\n",
            "central.providers.corp.redirect_url",
        ),
        (
            "    github: {client_id: a, client_secret: b, redirect_url: https://auth.example.com/oauth/callback}\n    google: {client_id: c, client_secret: d}\n",
            "central.providers.github.redirect_url",
        ),
        (
            "    google: {client_id: c, client_secret: d, redirect_url: https://auth.example.com/oauth/callback/github}\n",
            "central.providers.google.redirect_url",
        ),
    ] {
        let (code, _, err) = check_out(&format!("{head}{providers}"));
        assert_eq!(code, 64, "{providers}");
        assert!(err.contains(key), "{providers}: {err}");
    }
    // One provider may keep the plain callback it was registered with.
    let (code, out, err) = check_out(&format!(
        "{head}    github: {{client_id: a, client_secret: b, redirect_url: https://auth.example.com/oauth/callback}}\n"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("https://auth.example.com/oauth/callback\n"),
        "{out}"
    );
}

#[tokio::test]
async fn one_provider_also_answers_at_the_plain_callback() {
    let fake = github().await;
    let gw = central(&github_provider(&fake), "");
    let b = browser(&gw);
    let at = to_provider(&gw, &b, "github", "plain-1", APP).await;
    let state = param(&at, "state").unwrap();
    let res = b
        .get(gw.url(&format!("/oauth/callback?code=good-code&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    verified(&gw, &location(&res), "plain-1").await;
}

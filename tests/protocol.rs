//! The login protocol against providers the tests control (tests/common/idp.rs): the IdP
//! mix-up end to end with a malicious provider, the RFC 9207 `iss` parameter, discovery that
//! names plain-http endpoints, PKCE without S256 listed, `azp`, unverified emails, and
//! answers of 64 MiB (SPEC §6.7).

mod common;

use common::param;

use common::flow::{Browser, World};
use common::idp::{Bounce, Idp};
use common::{free_port, Gateway};
use oauthgate::assertion::{self, Expected};
use serde_json::{json, Value};
use url::Url;

const APP: &str = "https://app.example/_auth/callback";

/// Whether `gw` logs a line containing `text` within a few seconds (log lines reach the test
/// through the process's log thread, after the answer that caused them).
async fn logs(gw: &Gateway, text: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gw.running_log_has(text) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    true
}

/// Follows redirects from `url` until the next one would satisfy `stop`; returns that URL
/// without requesting it.
async fn follow_until(b: &reqwest::Client, url: &str, stop: impl Fn(&Url) -> bool) -> Url {
    let mut url = Url::parse(url).unwrap();
    for _ in 0..10 {
        let res = b.get(url.clone()).send().await.unwrap();
        assert!(res.status().is_redirection(), "{url}: {}", res.status());
        url = url
            .join(res.headers()["location"].to_str().unwrap())
            .unwrap();
        if stop(&url) {
            return url;
        }
    }
    panic!("never got there");
}

fn alice() -> Value {
    json!({"sub": "uid-alice", "email": "alice@example.com", "email_verified": true, "name": "Alice"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_mix_up_gets_the_attacker_nothing() {
    let (cport, gport) = (free_port(), free_port());
    let honest = Idp::start("central-at-honest", alice()).await;
    let evil = Idp::start("central-at-evil", json!({"sub": "evil-user"})).await;
    // The honest provider knows the central's callbacks: its own, and the plain one an
    // operator may have registered before per-provider callbacks existed.
    honest.set(|k| {
        k.redirect_uris = vec![
            format!("https://localhost:{cport}/oauth/callback/honest"),
            format!("https://localhost:{cport}/oauth/callback"),
        ]
    });
    let providers = [
        honest.provider_yaml("honest", "oauth2", ""),
        evil.provider_yaml("evil", "oauth2", ""),
    ]
    .concat();
    let routes = "    - {prefix: /private, upstream: \"BACKEND\", login: required}\n";
    let w = World::start_full(cport, gport, &providers, "[honest, evil]", routes, "").await;
    let on_honest = |u: &Url| u.as_str().starts_with(&honest.fake.url("/authorize"));

    // The attacker starts their own login with the honest provider and stops before it.
    let attacker = w.browser();
    let login = w.gateway.url("/_auth/login?provider=honest&next=/private");
    let theirs = follow_until(&attacker.client, &login, on_honest).await;
    let attacker_state = param(&theirs, "state").unwrap();
    let observed = param(&theirs, "redirect_uri").unwrap();
    for redirect_uri in [
        observed,
        format!("https://localhost:{cport}/oauth/callback"),
    ] {
        // Evil bounces whoever logs in with it to the honest provider, with the attacker's
        // PKCE challenge and the honest provider's callback.
        evil.set(|k| {
            k.bounce = Some(Bounce {
                authorize: honest.fake.url("/authorize"),
                client_id: param(&theirs, "client_id").unwrap(),
                redirect_uri: redirect_uri.clone(),
                code_challenge: param(&theirs, "code_challenge").unwrap(),
            })
        });
        // The victim, logged in at the honest provider, follows a link to log in with evil.
        let victim = w.browser();
        let (landed, res) = victim
            .navigate(&w.gateway.url("/_auth/login?provider=evil&next=/private"))
            .await;

        // Whatever code reached evil's token endpoint, the attacker redeems in their own
        // pending login, as the provider would send their browser back.
        for code in evil.codes_redeemed() {
            let back = format!(
                "{}?code={code}&state={attacker_state}",
                Url::parse(&redirect_uri).unwrap().path()
            );
            attacker.navigate(&w.central.url(&back)).await;
        }
        let status = attacker.userinfo_status(&w.gateway).await;
        let info = userinfo(&attacker, &w.gateway).await;
        assert_eq!(status, 401, "the attacker holds a session: {info}");
        assert!(
            evil.codes_redeemed().is_empty(),
            "a code from the honest provider reached evil's token endpoint"
        );
        // The victim's code was not redeemed anywhere; the victim gets a page saying why.
        assert!(honest.codes_redeemed().is_empty());
        assert_eq!(res.status(), 400, "{redirect_uri}: at {landed}");
        assert!(landed.path().starts_with("/oauth/callback"), "{landed}");
        assert_eq!(victim.userinfo_status(&w.gateway).await, 401);
    }
    assert!(logs(&w.central, "another provider's callback").await);
}

async fn userinfo(b: &Browser, gw: &Gateway) -> String {
    let res = b
        .client
        .get(gw.url("/_auth/userinfo"))
        .send()
        .await
        .unwrap();
    res.text().await.unwrap()
}

/// A central on a known port (so providers can send browsers back to it) with `providers`.
fn central(providers: &str) -> Gateway {
    Gateway::start_public(
        free_port(),
        &format!("central:\n  providers:\n{providers}  clients:\n    - redirect_url: {APP}\n"),
    )
}

fn browser(gw: &Gateway) -> reqwest::Client {
    gw.client_builder().cookie_store(true).build().unwrap()
}

/// A whole login at the central through `provider`: every redirect followed until one leads
/// to the client (returned) or an answer is not a redirect (returned).
async fn login(gw: &Gateway, provider: &str, state: &str) -> reqwest::Response {
    let b = browser(gw);
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("provider", provider)
        .append_pair("state", state)
        .append_pair("redirect_url", APP)
        .finish();
    let mut url = Url::parse(&gw.url(&format!("/oauth/authorize?{q}"))).unwrap();
    for _ in 0..10 {
        let res = b.get(url.clone()).send().await.unwrap();
        let Some(loc) = res.headers().get("location") else {
            return res;
        };
        let next = url.join(loc.to_str().unwrap()).unwrap();
        if !res.status().is_redirection() || next.as_str().starts_with(APP) {
            return res;
        }
        url = next;
    }
    panic!("redirect loop");
}

/// The user fields of the assertion in a 303 to the client.
async fn user_of(gw: &Gateway, res: reqwest::Response, state: &str) -> Value {
    let status = res.status();
    let loc = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    assert_eq!(status, 303, "{}", res.text().await.unwrap());
    let back = Url::parse(&loc.unwrap()).unwrap();
    let key = assertion::parse_verify_key(&gw.text("/oauth/key").await).unwrap();
    let issuer = format!("https://localhost:{}/oauth", gw.addr.port());
    let expected = Expected {
        iss: &issuer,
        aud: APP,
        nonce: state,
        now: oauthgate::util::now(),
    };
    let claims = assertion::verify(&param(&back, "assertion").unwrap(), &[key], &expected).unwrap();
    Value::Object(claims.user)
}

/// What a provider registers for the central `gw` as `name`: its own callback, and the
/// plain one (so that these tests fail on code from before per-provider callbacks for the
/// reason they test, not because of the callback).
fn callbacks(gw: &Gateway, name: &str) -> Vec<String> {
    let base = format!("https://localhost:{}/oauth/callback", gw.addr.port());
    vec![format!("{base}/{name}"), base]
}

/// An OIDC provider with discovery, registered for the central `gw` will be as `name`.
async fn oidc_idp(port_of: impl Fn(&Idp) -> String) -> (Idp, Gateway) {
    let idp = Idp::start("oidc-client", alice()).await;
    let gw = central(&port_of(&idp));
    idp.set(|k| k.redirect_uris = callbacks(&gw, "corp"));
    (idp, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iss_response_parameter_must_name_the_provider() {
    let (idp, gw) = oidc_idp(|i| i.provider_yaml("corp", "oidc", "")).await;
    idp.set(|k| k.iss_param = Some("https://evil.example".into()));
    let res = login(&gw, "corp", "i1").await;
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("does not come from corp"));
    assert!(
        idp.codes_redeemed().is_empty(),
        "redeemed despite a foreign iss"
    );
    // The right issuer passes.
    let issuer = idp.issuer();
    idp.set(|k| k.iss_param = Some(issuer));
    assert_eq!(
        user_of(&gw, login(&gw, "corp", "i2").await, "i2").await["name"],
        "Alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_promises_iss_must_send_it() {
    let (idp, gw) = oidc_idp(|i| {
        i.set(|k| {
            k.discovery_extra = json!({"authorization_response_iss_parameter_supported": true})
        });
        i.provider_yaml("corp", "oidc", "")
    })
    .await;
    let res = login(&gw, "corp", "p1").await;
    assert_eq!(res.status(), 400);
    assert!(idp.codes_redeemed().is_empty());
    let issuer = idp.issuer();
    idp.set(|k| k.iss_param = Some(issuer));
    assert_eq!(login(&gw, "corp", "p2").await.status(), 303);
}

/// A discovery document naming a plain-http endpoint is refused (each endpoint and scheme is
/// checked by the unit tests of `check_endpoints`): logins with the provider are 503 while
/// the background discovery retries, and work once the document is fixed (issue 20 item
/// 10: a failed discovery is no longer fetched again by every login).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_endpoints_must_be_https() {
    let (idp, gw) = oidc_idp(|i| {
        i.set(|k| k.discovery_extra = json!({"token_endpoint": "http://example.com/token"}));
        i.provider_yaml("corp", "oidc", "")
    })
    .await;
    assert!(
        logs(
            &gw,
            "provider corp: discovery gives token_endpoint http://example.com/token"
        )
        .await
    );
    let res = login(&gw, "corp", "d1").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("location").is_none(), "redirected");
    idp.set(|k| k.discovery_extra = json!({}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = login(&gw, "corp", "d2").await.status();
        if status == 303 {
            break;
        }
        assert_eq!(status, 503);
        assert!(std::time::Instant::now() < deadline, "never rediscovered");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_s256_is_sent_even_when_discovery_lists_only_plain() {
    let (idp, gw) = oidc_idp(|i| {
        i.set(|k| k.discovery_extra = json!({"code_challenge_methods_supported": ["plain"]}));
        [
            i.provider_yaml("corp", "oidc", ""),
            i.provider_yaml("nopkce", "oidc", "      pkce: false\n"),
        ]
        .concat()
    })
    .await;
    assert_eq!(login(&gw, "corp", "k1").await.status(), 303);
    let auth = &idp.fake.to("/authorize")[0];
    assert_eq!(auth.param("code_challenge_method").as_deref(), Some("S256"));
    assert!(auth.param("code_challenge").is_some_and(|c| c.len() == 43));
    assert!(idp.fake.to("/token")[0].param("code_verifier").is_some());
    // Only `pkce: false` turns it off.
    login(&gw, "nopkce", "k2").await;
    assert_eq!(idp.fake.to("/authorize")[1].param("code_challenge"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_audiences_need_our_azp() {
    let (idp, gw) = oidc_idp(|i| i.provider_yaml("corp", "oidc", "")).await;
    for (extra, ok) in [
        (json!({"aud": ["oidc-client", "other-client"]}), false),
        (
            json!({"aud": ["oidc-client", "other-client"], "azp": "other-client"}),
            false,
        ),
        (json!({"azp": "other-client"}), false),
        (
            json!({"aud": ["oidc-client", "other-client"], "azp": "oidc-client"}),
            true,
        ),
        (json!({"aud": ["oidc-client"]}), true),
    ] {
        idp.set(|k| k.id_token_extra = extra.clone());
        let res = login(&gw, "corp", "a1").await;
        assert_eq!(res.status() == 303, ok, "{extra}: {}", res.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_verified_emails_reach_the_assertion() {
    let unverified = json!({"sub": "u1", "email": "ceo@example.com", "name": "Mallory"});
    let plain = Idp::start("p", unverified.clone()).await;
    let trusted = Idp::start("t", unverified).await;
    let oidc = Idp::start("oidc-client", alice()).await;
    let gw = central(
        &[
            plain.provider_yaml("plain", "oauth2", ""),
            oidc.provider_yaml("corp", "oidc", ""),
        ]
        .concat(),
    );
    plain.set(|k| k.redirect_uris = callbacks(&gw, "plain"));
    oidc.set(|k| k.redirect_uris = callbacks(&gw, "corp"));

    // kind: oauth2 says nothing about the address: dropped, unless the operator trusts it.
    let user = user_of(&gw, login(&gw, "plain", "e1").await, "e1").await;
    assert_eq!(user, json!({"name": "Mallory"}));
    plain.set(|k| k.user["email_verified"] = json!(false));
    let user = user_of(&gw, login(&gw, "plain", "e2").await, "e2").await;
    assert_eq!(user, json!({"name": "Mallory"}));
    plain.set(|k| k.user["email_verified"] = json!(true));
    let user = user_of(&gw, login(&gw, "plain", "e3").await, "e3").await;
    assert_eq!(user["email"], "ceo@example.com");

    // OIDC: an id_token that says `email_verified: true` but carries no email does not
    // vouch for userinfo's address, which userinfo itself marks unverified.
    oidc.set(|k| {
        k.id_token_extra = json!({"email_verified": true});
        k.user["email_verified"] = json!(false);
    });
    let user = user_of(&gw, login(&gw, "corp", "e5").await, "e5").await;
    assert_eq!(user, json!({"name": "Alice"}));
    // The id_token's own verified email is kept even when userinfo differs.
    oidc.set(|k| k.id_token_extra = json!({"email": "alice@corp.example", "email_verified": true}));
    let user = user_of(&gw, login(&gw, "corp", "e6").await, "e6").await;
    assert_eq!(user["email"], "alice@corp.example");

    // The operator may vouch for a provider's addresses.
    let gw = central(&trusted.provider_yaml("trusted", "oauth2", "      email_verified: true\n"));
    trusted.set(|k| k.redirect_uris = callbacks(&gw, "trusted"));
    let user = user_of(&gw, login(&gw, "trusted", "e4").await, "e4").await;
    assert_eq!(user["email"], "ceo@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_answers_stop_at_one_mebibyte() {
    const HUGE: usize = 64 * 1024 * 1024;
    let plain = Idp::start("p", alice()).await;
    let oidc = Idp::start("oidc-client", alice()).await;
    let gw = central(
        &[
            plain.provider_yaml("plain", "oauth2", ""),
            oidc.provider_yaml("corp", "oidc", ""),
        ]
        .concat(),
    );
    plain.set(|k| k.redirect_uris = callbacks(&gw, "plain"));
    oidc.set(|k| k.redirect_uris = callbacks(&gw, "corp"));
    assert_eq!(login(&gw, "plain", "warm").await.status(), 303);
    let before = gw.memory_kb("VmHWM");
    for (idp, name, path) in [
        (&plain, "plain", "/token"),
        (&plain, "plain", "/userinfo"),
        (&oidc, "corp", "/jwks"),
    ] {
        idp.set(|k| k.huge = Some((path.into(), HUGE)));
        let res = login(&gw, name, "h1").await;
        assert_eq!(res.status(), 502, "{path}");
        assert!(res.text().await.unwrap().contains("cannot use"), "{path}");
        idp.set(|k| k.huge = None);
    }
    let grown = gw.memory_kb("VmHWM") - before;
    assert!(
        grown < 16 * 1024,
        "peak memory grew by {grown} kB reading 64 MiB answers"
    );
    // Discovery is read at start-up: a central started while it is huge.
    oidc.set(|k| k.huge = Some(("/.well-known/openid-configuration".into(), HUGE)));
    let other = central(&oidc.provider_yaml("corp", "oidc", ""));
    assert!(logs(&other, "answered more than 1048576 bytes").await);
    assert!(logs(&gw, "answered more than 1048576 bytes").await);
}

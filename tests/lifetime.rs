//! Session lifetime and key rotation against real processes (issue 14 items 3 and 4): the idle
//! timeout slides with use and never past `ttl`; a session secret rotated with
//! `previous_secrets` keeps users logged in until the old secret is removed; a central's
//! signing key rotated while gateways list both verify keys.

mod common;

use std::time::{Duration, Instant};

use common::flow::{Browser, World};
use common::Gateway;

const ROUTES: &str = "    - {prefix: /, upstream: BACKEND}\n";
const COOKIE: &str = "__Host-oauthgate-session";
const SECRET_A: &str = "secret-a-0123456789abcdef0123456789abcdef";
const SECRET_B: &str = "secret-b-0123456789abcdef0123456789abcdef";

/// A client without a cookie jar: each request carries exactly the cookie given.
fn bare(gw: &Gateway) -> reqwest::Client {
    gw.client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An API request to the gateway's `/` with `cookie` (`name=value`): the status and the
/// session cookie the response sets (`name=value`), if any.
async fn with_cookie(
    client: &reqwest::Client,
    gw: &Gateway,
    cookie: &str,
) -> (u16, Option<String>) {
    let res = client
        .get(gw.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.starts_with(&format!("{COOKIE}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert!(set.len() <= 1, "{set:?}");
    (res.status().as_u16(), set.into_iter().next())
}

/// The browser's session cookie at `gw` (`name=value`).
fn session_of(b: &Browser, gw: &Gateway) -> String {
    b.cookies(&gw.url("/"))
        .split("; ")
        .find(|c| c.starts_with(&format!("{COOKIE}=")))
        .expect("a session cookie")
        .to_owned()
}

async fn logged_in(w: &World, login: &str) -> (Browser, String) {
    let b = w.browser();
    let (url, res) = b
        .log_in(&w.gateway.url("/"), login, &format!("{login}@example.com"))
        .await;
    assert_eq!(res.status(), 200, "{url}");
    let cookie = session_of(&b, &w.gateway);
    (b, cookie)
}

/// `idle_timeout: 8s` renews every 4 s. One cookie sent again and again is sealed once: the
/// answers set nothing until the renewal is due (3 to 4 s after login: `seen` is in whole
/// seconds), then the same cookie every time; the renewed cookie itself is not renewed.
#[tokio::test]
async fn the_same_cookie_is_renewed_once_however_often_it_is_used() {
    let w = World::start(ROUTES, "  session: {idle_timeout: 8s, ttl: 30s}\n").await;
    let (_, cookie) = logged_in(&w, "alice").await;
    let client = bare(&w.gateway);
    let start = Instant::now();
    // A logout form served before the renewal.
    let page = client
        .get(w.gateway.url("/_auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let token = common::flow::logout_token(&page.text().await.unwrap());
    let mut answers = Vec::new();
    let mut fresh = None;
    while start.elapsed() < Duration::from_millis(5500) {
        let (status, set) = with_cookie(&client, &w.gateway, &cookie).await;
        assert_eq!(status, 200, "within the idle timeout of its login");
        if let (Some(renewed), None) = (&set, &fresh) {
            // At once, well before it is due in its turn.
            fresh = Some(with_cookie(&client, &w.gateway, renewed).await);
        }
        answers.push(set);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = answers
        .iter()
        .position(Option::is_some)
        .expect("renewed after 4 s");
    assert!(first > 0, "renewed at once: {answers:?}");
    assert!(answers[..first].iter().all(Option::is_none));
    let renewed = answers[first].clone().unwrap();
    assert_ne!(renewed, cookie);
    assert!(
        answers[first..]
            .iter()
            .all(|a| a.as_deref() == Some(&renewed)),
        "sealed more than once: {answers:?}"
    );
    assert_eq!(fresh, Some((200, None)), "the renewed cookie is fresh");
    // That form still logs out the session whose cookie was renewed meanwhile.
    let res = client
        .post(w.gateway.url("/_auth/logout"))
        .header("cookie", &renewed)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are logged out"));
}

/// A browser that keeps using its session stays logged in past the idle timeout, renewed
/// every 2 s, not per request; unused for the idle timeout it must log in again; in use all
/// along it must log in again at `ttl`, not later.
#[tokio::test]
async fn idle_sessions_end_used_ones_slide_until_their_ttl() {
    let w = World::start(ROUTES, "  session: {idle_timeout: 4s, ttl: 12s}\n").await;
    let logged_at = Instant::now();
    let (b, first) = logged_in(&w, "alice").await;
    let (_, idle) = logged_in(&w, "bob").await;
    let mut renewals = 0;
    let mut cookie = first.clone();
    let mut requests = 0;
    let ended = loop {
        let res = b.client.get(w.gateway.url("/")).send().await.unwrap();
        let status = res.status().as_u16();
        if status != 200 {
            assert_eq!(status, 401, "an API request without a session");
            break logged_at.elapsed();
        }
        requests += 1;
        let now = session_of(&b, &w.gateway);
        if now != cookie {
            renewals += 1;
            cookie = now;
        }
        assert!(logged_at.elapsed() < Duration::from_secs(20), "never ended");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // 12 s in use: past 4 s of idle timeout thanks to the renewals, ended by the ttl (which
    // counts whole seconds, so up to one less).
    assert!(ended >= Duration::from_secs(10), "ended early: {ended:?}");
    assert!(
        ended <= Duration::from_millis(13_500),
        "ended late: {ended:?}"
    );
    assert!(renewals >= 3, "{renewals} renewals in {requests} requests");
    assert!(
        renewals <= 7,
        "{renewals} renewals in {requests} requests: more than every 2 s"
    );
    // Bob's session was not used for longer than the idle timeout.
    let (status, _) = with_cookie(&bare(&w.gateway), &w.gateway, &idle).await;
    assert_eq!(status, 401, "an idle session still opened");
    // And a browser navigation is sent to log in again.
    let res = bare(&w.gateway)
        .get(w.gateway.url("/"))
        .header("cookie", &idle)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
}

/// Waits until `gw` has applied `n` config changes in all (the file is watched; each change
/// is one reload).
fn reloaded(gw: &Gateway, n: usize) {
    gw.log_when("the config reload", |log| {
        log.iter().filter(|l| l.contains("config reloaded")).count() >= n
    });
}

/// Starts a login at the gateway and stops at the central's dev form: its URL.
async fn start_login(w: &World, b: &Browser) -> url::Url {
    let (form_url, form) = b.navigate(&w.gateway.url("/")).await;
    assert_eq!(
        (form_url.path(), form.status().as_u16()),
        ("/oauth/dev", 200)
    );
    form_url
}

/// Submits the dev form at `form_url` as `login` and follows the way back to the gateway.
async fn finish_login(b: &Browser, form_url: &url::Url, login: &str) -> (u16, String) {
    let state = common::param(form_url, "state").expect("state");
    let res = b
        .client
        .post(form_url.join("/oauth/dev").unwrap())
        .form(&[("state", state.as_str()), ("login", login), ("email", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let back = form_url
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap();
    let (_, res) = b.navigate(back.as_str()).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Secret A, then B with `previous_secrets: [A]`, then B alone, each applied by a reload of
/// the running gateway.
#[tokio::test]
async fn a_rotated_session_secret_keeps_sessions_until_the_old_one_is_removed() {
    let w = World::start(ROUTES, &format!("  session: {{secret: {SECRET_A}}}\n")).await;
    let (_, old) = logged_in(&w, "alice").await;
    let client = bare(&w.gateway);
    assert_eq!(with_cookie(&client, &w.gateway, &old).await, (200, None));
    // A login in flight across the rotation: started under A.
    let pending = w.browser();
    let form = start_login(&w, &pending).await;

    let config = common::reload::read_config(&w.gateway);
    let a_only = format!("session: {{secret: {SECRET_A}}}");
    let rotating = format!("session: {{secret: {SECRET_B}, previous_secrets: [{SECRET_A}]}}");
    common::reload::write_config(&w.gateway, &config.replace(&a_only, &rotating));
    reloaded(&w.gateway, 1);
    let (status, new) = with_cookie(&client, &w.gateway, &old).await;
    assert_eq!(status, 200, "a cookie of the previous secret was refused");
    let new = new.expect("re-sealed with the current secret on that response");
    assert_ne!(new, old);
    assert_eq!(with_cookie(&client, &w.gateway, &new).await, (200, None));
    // The login started under A finishes under B.
    let (status, body) = finish_login(&pending, &form, "carol").await;
    assert_eq!(status, 200, "{body}");
    let carol = session_of(&pending, &w.gateway);

    common::reload::write_config(
        &w.gateway,
        &config.replace(&a_only, &format!("session: {{secret: {SECRET_B}}}")),
    );
    reloaded(&w.gateway, 2);
    assert_eq!(
        with_cookie(&client, &w.gateway, &old).await.0,
        401,
        "the removed secret still opens"
    );
    // What was re-sealed, or sealed, under B opens with B alone.
    assert_eq!(with_cookie(&client, &w.gateway, &new).await, (200, None));
    assert_eq!(with_cookie(&client, &w.gateway, &carol).await, (200, None));
}

/// `oauthgate keygen --out path`: the verify key it prints.
fn keygen(path: &std::path::Path) -> String {
    let out = std::process::Command::new(common::bin())
        .args(["keygen", "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A central apart from its gateway switches `signing_key` from k1 to k2 while the gateway
/// lists both verify keys: logins signed with either pass, sessions opened before stay; once
/// the gateway drops k1, an assertion signed with k1 is refused.
#[tokio::test]
async fn a_central_signing_key_rotates_while_gateways_list_both_verify_keys() {
    let keys = tempfile::tempdir().unwrap();
    let (k1_path, k2_path) = (keys.path().join("k1.key"), keys.path().join("k2.key"));
    let (k1, k2) = (keygen(&k1_path), keygen(&k2_path));
    assert_ne!(k1, k2);
    let (cport, gport) = (common::free_port(), common::free_port());
    let backend = common::Backend::start().await;
    let central = Gateway::start_public(
        cport,
        &format!(
            "central:\n  signing_key: {}\n  providers:\n    dev: {{kind: dev}}\n  clients:\n    - redirect_url: https://localhost:{gport}/_auth/callback\n",
            k1_path.display()
        ),
    );
    assert_eq!(central.text("/oauth/key").await.trim(), k1);
    let gateway = Gateway::start_public(
        gport,
        &format!(
            "gateway:\n  oauth_proxy:\n    url: https://localhost:{cport}/oauth\n    verify_key: [{k1}, {k2}]\n    providers: [dev]\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
    );
    let w = World {
        central,
        gateway,
        backend,
    };
    let (_, early) = logged_in(&w, "early").await;
    // A login in flight while the central switches.
    let pending = w.browser();
    let form = start_login(&w, &pending).await;

    let central_config = common::reload::read_config(&w.central);
    let switch = |from: &std::path::Path, to: &std::path::Path| {
        central_config.replace(&from.display().to_string(), &to.display().to_string())
    };
    common::reload::write_config(&w.central, &switch(&k1_path, &k2_path));
    reloaded(&w.central, 1);
    assert_eq!(
        w.central.text("/oauth/key").await.trim(),
        k2,
        "/oauth/key serves the new key"
    );
    let (_, late) = logged_in(&w, "late").await;
    // A login that was at the provider during the switch starts again: the central's
    // round-trip cookie is sealed with a key derived from its signing key.
    let state = common::param(&form, "state").expect("state");
    let res = pending
        .client
        .post(form.join("/oauth/dev").unwrap())
        .form(&[("state", state.as_str()), ("login", "inflight")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Start again from the application."));
    let again = start_login(&w, &pending).await;
    let (status, body) = finish_login(&pending, &again, "inflight").await;
    assert_eq!(status, 200, "{body}");
    let client = bare(&w.gateway);
    for cookie in [&early, &late] {
        assert_eq!(with_cookie(&client, &w.gateway, cookie).await.0, 200);
    }

    // The gateway drops k1; a central still signing with k1 (here: switched back) is refused.
    let gateway_config = common::reload::read_config(&w.gateway);
    common::reload::write_config(
        &w.gateway,
        &gateway_config.replace(&format!("[{k1}, {k2}]"), &format!("[{k2}]")),
    );
    reloaded(&w.gateway, 1);
    common::reload::write_config(&w.central, &central_config);
    reloaded(&w.central, 2);
    let refused = w.browser();
    let form = start_login(&w, &refused).await;
    let (status, body) = finish_login(&refused, &form, "mallory").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("The login could not be verified."), "{body}");
    assert_eq!(
        with_cookie(&client, &w.gateway, &early).await.0,
        200,
        "sessions do not depend on the central's key"
    );
}

/// A renewal never rides on an answer a shared cache may store (a cache in front would hand
/// it to every later visitor): the app's `Cache-Control: public` answer carries no cookie, the
/// next private one does, and an answer without `Cache-Control` gets `private` with it.
#[tokio::test]
async fn a_renewal_waits_for_an_answer_no_shared_cache_may_store() {
    let w = World::start(ROUTES, "  session: {idle_timeout: 4s, ttl: 30s}\n").await;
    let (_, cookie) = logged_in(&w, "alice").await;
    let client = bare(&w.gateway);
    // Renewals every 2 s (`seen` in whole seconds): 2.2 s on, this cookie is due, and 4 s
    // of idle timeout are not over.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let get = |path: &'static str| {
        client
            .get(w.gateway.url(path))
            .header("cookie", &cookie)
            .send()
    };
    let cacheable = get("/cacheable").await.unwrap();
    assert_eq!(cacheable.status(), 200);
    assert_eq!(cacheable.headers()["cache-control"], "public, max-age=600");
    assert!(
        cacheable.headers().get("set-cookie").is_none(),
        "a renewal on a public answer"
    );
    let plain = get("/").await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["cache-control"], "private");
    assert!(plain.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with(&format!("{COOKIE}=")));
}

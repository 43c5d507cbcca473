//! What a person meets, in a real browser (headless Chromium over WebDriver): the shipped
//! quick start, a real provider's login and consent pages, the provider chooser, the 403
//! page, an API call after the session expired, and provider errors. Each scenario ends in an
//! assertion on what the page shows and what the backend received; screenshots of every page
//! land in tests/screenshots/.

mod common;

use std::path::Path;

use common::chrome::{Chrome, TestCert};
use common::oidc::OidcProvider;
use common::{free_port, Backend, Gateway};
use fantoccini::Locator;

/// The shipped config.yaml and demo/ in a temp folder, on a free port instead of 8443, with
/// the certificate it would generate already in place (so Chromium can pin it).
fn shipped(cert: &TestCert) -> Gateway {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = std::fs::read_to_string(root.join("config.yaml"))
        .unwrap()
        .replace("8443", &port.to_string());
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    std::fs::create_dir_all(dir.path().join("demo")).unwrap();
    for entry in std::fs::read_dir(root.join("demo")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("demo").join(entry.file_name()),
        )
        .unwrap();
    }
    cert.write(&dir.path().join("data/tls"), "localhost");
    let path = dir.path().join("config.yaml");
    Gateway::spawn(dir.path().to_owned(), Some(dir), &path)
}

#[tokio::test]
async fn the_shipped_config_as_a_new_user_runs_it() {
    let cert = TestCert::new();
    let gw = shipped(&cert);
    let chrome = Chrome::start(&cert).await;
    let c = &chrome.client;

    c.goto(&gw.url("/")).await.unwrap();
    chrome
        .wait_url("the dev login form", |u| u.path() == "/oauth/dev")
        .await;
    chrome.wait_css("input#login").await;
    chrome.screenshot("quickstart-1-dev-login").await;
    let text = chrome.text().await;
    assert!(text.contains("Development login"), "{text}");
    c.find(Locator::Css("input#login"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    c.find(Locator::Css("input#email"))
        .await
        .unwrap()
        .send_keys("alice@example.com")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    chrome.wait_url("the demo page", |u| u.path() == "/").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let who = c
            .find(Locator::Css("#who"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if who == "alice@example.com" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo page never showed the user: {who}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(chrome.text().await.contains("\"sub\": \"dev:alice\""));
    chrome.screenshot("quickstart-2-demo-page").await;

    c.find(Locator::LinkText("Log out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chrome
        .wait_url("the logout page", |u| u.path() == "/_auth/logout")
        .await;
    let button = chrome.wait_css("form button[type=submit]").await;
    assert!(chrome.text().await.contains("alice@example.com"));
    chrome.screenshot("quickstart-3-logout-confirm").await;
    button.click().await.unwrap();
    chrome.wait_css("a.button[href='/_auth/login']").await;
    assert!(chrome
        .text()
        .await
        .contains("You are logged out of oauthgate demo."));
    chrome.screenshot("quickstart-4-logged-out").await;

    c.goto(&gw.url("/")).await.unwrap();
    chrome
        .wait_url("the login again", |u| u.path() == "/oauth/dev")
        .await;
    chrome.close().await;
}

/// Central and gateway apart (both on the test certificate), a real OIDC provider, a backend.
struct Apart {
    op: OidcProvider,
    central: Gateway,
    gateway: Gateway,
    backend: Backend,
}

async fn apart(
    cert: &TestCert,
    extra_providers: &str,
    names: &str,
    routes: &str,
    extra: &str,
    op_secret: &str,
) -> Apart {
    let backend = Backend::start().await;
    let (cport, gport) = (free_port(), free_port());
    let op = OidcProvider::start(
        "oauthgate-test",
        op_secret,
        &[format!("https://localhost:{cport}/oauth/callback/corp")],
    );
    let central = Gateway::start_with_cert(
        cport,
        cert,
        &format!(
            "central:\n  providers:\n    corp:\n      kind: oidc\n      display_name: Corp SSO\n      issuer: {}\n      client_id: oauthgate-test\n      client_secret: test-secret-1\n{extra_providers}  clients:\n    - redirect_url: https://localhost:{gport}/_auth/callback\n",
            op.issuer()
        ),
    );
    let key = central.text("/oauth/key").await;
    let gateway = Gateway::start_with_cert(
        gport,
        cert,
        &format!(
            "gateway:\n  title: Alice's threebot\n  oauth_proxy:\n    url: https://localhost:{cport}/oauth\n    verify_key: {key}\n    providers: {names}\n{extra}  routes:\n{}",
            routes.replace("BACKEND", &backend.url())
        ),
    );
    Apart {
        op,
        central,
        gateway,
        backend,
    }
}

async fn provider_login(chrome: &Chrome, op: &OidcProvider, login: &str, shots: Option<&str>) {
    let issuer = op.issuer();
    let login_page = chrome
        .wait_url("the provider's login page", |u| {
            u.as_str().starts_with(&issuer)
        })
        .await;
    let c = &chrome.client;
    chrome
        .wait_css("input[name=login]")
        .await
        .send_keys(login)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("any")
        .await
        .unwrap();
    if let Some(s) = shots {
        chrome.screenshot(&format!("{s}-provider-login")).await;
    }
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The consent page has its own interaction URL (and no login field).
    chrome
        .wait_url("the provider's consent page", |u| {
            u.as_str().starts_with(&issuer)
                && u.path().starts_with("/interaction/")
                && *u != login_page
        })
        .await;
    let button = chrome.wait_css("button[type=submit]").await;
    assert!(
        c.find(Locator::Css("input[name=login]")).await.is_err(),
        "still on the login page"
    );
    if let Some(s) = shots {
        chrome.screenshot(&format!("{s}-provider-consent")).await;
    }
    button.click().await.unwrap();
}

#[tokio::test]
async fn a_real_provider_login_lands_on_the_deep_link() {
    let cert = TestCert::new();
    let a = apart(
        &cert,
        "",
        "[corp]",
        "    - {prefix: /, upstream: \"BACKEND\"}\n",
        "",
        "test-secret-1",
    )
    .await;
    let chrome = Chrome::start(&cert).await;
    let deep = a.gateway.url("/reports/q3?format=table&sort=-date");
    chrome.client.goto(&deep).await.unwrap();
    provider_login(&chrome, &a.op, "carol", Some("oidc")).await;
    let landed = chrome
        .wait_url("the deep link", |u| u.as_str() == deep)
        .await;
    assert_eq!(landed.query(), Some("format=table&sort=-date"));
    assert!(chrome
        .text()
        .await
        .contains("backend GET /reports/q3?format=table&sort=-date"));
    let seen = a.backend.last();
    let info: serde_json::Value =
        serde_json::from_str(seen.headers["x-user-info"].to_str().unwrap()).unwrap();
    assert_eq!(info["sub"], "corp:carol");
    assert_eq!(info["email"], "carol@example.com");
    drop(a.central);
    chrome.close().await;
}

#[tokio::test]
async fn the_chooser_lists_both_providers_and_goes_to_the_one_picked() {
    let cert = TestCert::new();
    let a = apart(
        &cert,
        "    dev: {kind: dev}\n",
        "[dev, corp]",
        "    - {prefix: /, upstream: \"BACKEND\"}\n",
        "",
        "test-secret-1",
    )
    .await;
    let chrome = Chrome::start(&cert).await;
    chrome.client.goto(&a.gateway.url("/wiki")).await.unwrap();
    chrome
        .wait_url("the chooser", |u| u.path() == "/_auth/login")
        .await;
    let buttons = chrome
        .client
        .find_all(Locator::Css("ul.providers a.button"))
        .await
        .unwrap();
    let mut labels = Vec::new();
    for b in &buttons {
        labels.push(b.text().await.unwrap());
    }
    assert_eq!(labels, ["Continue with dev", "Continue with corp"]);
    let text = chrome.text().await;
    assert!(text.contains("Alice's threebot"), "{text}");
    chrome.screenshot("chooser").await;
    buttons[1].click().await.unwrap();
    let issuer = a.op.issuer();
    chrome
        .wait_url("the corp provider", |u| u.as_str().starts_with(&issuer))
        .await;
    assert_eq!(a.backend.count(), 0);
    chrome.close().await;
}

#[tokio::test]
async fn a_user_outside_allow_sees_who_they_are_and_can_log_out() {
    let cert = TestCert::new();
    let routes = "    - {prefix: /, upstream: \"BACKEND\", allow: {emails: [boss@example.com]}}\n";
    let a = apart(&cert, "", "[corp]", routes, "", "test-secret-1").await;
    let chrome = Chrome::start(&cert).await;
    chrome.client.goto(&a.gateway.url("/board")).await.unwrap();
    provider_login(&chrome, &a.op, "dave", None).await;
    chrome
        .wait_url("back at the gateway", |u| u.path() == "/board")
        .await;
    let button = chrome.wait_css("form[action='/_auth/logout'] button").await;
    let text = chrome.text().await;
    assert!(
        text.contains("You are logged in as dave@example.com"),
        "{text}"
    );
    assert!(text.contains("Access denied"), "{text}");
    chrome.screenshot("forbidden").await;
    assert_eq!(
        a.backend.count(),
        0,
        "a user outside allow must not reach the app"
    );
    button.click().await.unwrap();
    chrome.wait_css("a.button[href='/_auth/login']").await;
    assert!(chrome.text().await.contains("You are logged out"));
    chrome.close().await;
}

#[tokio::test]
async fn an_api_call_after_the_session_expired_gets_401_json_not_a_redirect() {
    let cert = TestCert::new();
    let a = apart(
        &cert,
        "",
        "[corp]",
        "    - {prefix: /, upstream: \"BACKEND\"}\n",
        "  session: {ttl: 2s}\n",
        "test-secret-1",
    )
    .await;
    let chrome = Chrome::start(&cert).await;
    chrome.client.goto(&a.gateway.url("/app")).await.unwrap();
    provider_login(&chrome, &a.op, "erin", None).await;
    chrome.wait_url("the app", |u| u.path() == "/app").await;
    let script = "const done = arguments[arguments.length - 1];\
        fetch('/app/api/items', {headers: {'Accept': 'application/json'}})\
          .then(async r => done({status: r.status, redirected: r.redirected, type: r.headers.get('content-type'), body: await r.text()}))\
          .catch(e => done({error: String(e)}));";
    let before = chrome.client.execute_async(script, vec![]).await.unwrap();
    assert_eq!(before["status"], 200, "{before}");
    // Let the session run out (ttl 2s), then call again from the same page.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let after = chrome.client.execute_async(script, vec![]).await.unwrap();
    assert_eq!(after["status"], 401, "{after}");
    assert_eq!(after["redirected"], false);
    assert_eq!(after["type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(after["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "login_required");
    assert_eq!(body["login_url"], "/_auth/login?next=%2Fapp%2Fapi%2Fitems");
    chrome.close().await;
}

#[tokio::test]
async fn provider_errors_show_a_clear_page_with_a_retry() {
    let cert = TestCert::new();
    let dead = common::backend::dead_address().await;
    let down = format!("    down:\n      kind: oidc\n      display_name: Down SSO\n      issuer: http://{dead}\n      client_id: x\n      client_secret: y\n");
    let a = apart(
        &cert,
        &down,
        "[corp, down]",
        "    - {prefix: /, upstream: \"BACKEND\"}\n",
        "",
        "test-secret-1",
    )
    .await;
    let chrome = Chrome::start(&cert).await;
    let c = &chrome.client;

    // The user says no at the provider.
    c.goto(&a.gateway.url("/_auth/login?next=/x&provider=corp"))
        .await
        .unwrap();
    let issuer = a.op.issuer();
    chrome
        .wait_url("the provider", |u| u.as_str().starts_with(&issuer))
        .await;
    chrome
        .wait_css("a[href$='/abort']")
        .await
        .click()
        .await
        .unwrap();
    let retry = chrome.wait_css("a.button").await;
    let text = chrome.text().await;
    assert!(
        text.contains("403 Forbidden") && text.contains("The login at Corp SSO was cancelled."),
        "{text}"
    );
    chrome.screenshot("error-cancelled").await;
    retry.click().await.unwrap();
    chrome
        .wait_url("the provider again", |u| u.as_str().starts_with(&issuer))
        .await;

    // The provider is down: its discovery never succeeded, so the login is 503 at once
    // (issue 20 item 10) rather than a wait for the provider and a 502.
    c.goto(&a.gateway.url("/_auth/login?next=/x&provider=down"))
        .await
        .unwrap();
    chrome.wait_css("a.button").await;
    let text = chrome.text().await;
    assert!(
        text.contains("503 Service Unavailable")
            && text.contains("Down SSO is unavailable at the moment"),
        "{text}"
    );
    chrome.screenshot("error-provider-down").await;
    assert_eq!(a.backend.count(), 0);
    chrome.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_page_cannot_log_a_user_out() {
    let cert = TestCert::new();
    let backend = Backend::start().await;
    let port = free_port();
    let gw = Gateway::start_with_cert(
        port,
        &cert,
        &format!(
            "central:\n  providers:\n    dev: {{kind: dev}}\ngateway:\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
    );
    // Another site (another host, plain http) with a page that posts the logout form as
    // soon as it opens; it cannot know the token, and sends none.
    let logout = gw.url("/_auth/logout");
    let attacker = common::fakes::Fake::start(move |_| {
        (
            200,
            "text/html",
            format!(
                "<form id=f method=post action=\"{logout}\"><input name=token value=x></form>\
                 <script>document.getElementById('f').submit()</script>"
            ),
        )
    })
    .await;

    let chrome = Chrome::start(&cert).await;
    let c = &chrome.client;
    c.goto(&gw.url("/private")).await.unwrap();
    chrome
        .wait_css("input#login")
        .await
        .send_keys("alice")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chrome
        .wait_url("the backend", |u| u.path() == "/private")
        .await;
    assert!(chrome.text().await.contains("backend GET /private"));

    c.goto(&attacker.url("/attack")).await.unwrap();
    chrome
        .wait_url("the posted logout", |u| u.path() == "/_auth/logout")
        .await;
    let text = chrome.text().await;
    chrome.screenshot("logout-csrf").await;
    assert_eq!(attacker.to("/attack").len(), 1);
    assert!(!text.contains("You are logged out"), "{text}");

    // Still logged in.
    c.goto(&gw.url("/private/again")).await.unwrap();
    chrome
        .wait_url("the backend again", |u| u.path() == "/private/again")
        .await;
    assert!(chrome.text().await.contains("backend GET /private/again"));
    chrome.close().await;
}

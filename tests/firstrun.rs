//! What a new user meets first: the split setup (central and gateway as two processes) in a
//! real browser with the dev provider, and the Docker image's command line and config run
//! outside Docker, answering its health check.

mod common;

use std::time::{Duration, Instant};

use common::chrome::{Chrome, TestCert};
use common::{free_port, Backend, Gateway};
use fantoccini::Locator;

/// Issue 19, blocker 1: the dev form posts to the central, which answers 303 to the gateway's
/// callback on another origin. With `form-action 'self'` Chromium stops at that redirect;
/// scripted clients never saw it.
#[tokio::test]
async fn the_split_setup_logs_in_with_the_dev_provider_in_chromium() {
    let cert = TestCert::new();
    let backend = Backend::start().await;
    let (cport, gport) = (free_port(), free_port());
    let central = Gateway::start_with_cert(
        cport,
        &cert,
        &format!(
            "central:\n  providers:\n    dev: {{kind: dev, display_name: Try-out login}}\n  clients:\n    - redirect_url: https://localhost:{gport}/_auth/callback\n"
        ),
    );
    let key = central.text("/oauth/key").await;
    let gateway = Gateway::start_with_cert(
        gport,
        &cert,
        &format!(
            "gateway:\n  title: Split threebot\n  oauth_proxy:\n    url: https://localhost:{cport}/oauth\n    verify_key: {key}\n    providers: [dev]\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
    );
    let chrome = Chrome::start(&cert).await;
    let c = &chrome.client;
    c.goto(&gateway.url("/app/page?x=1")).await.unwrap();
    chrome
        .wait_url("the central's dev form", |u| {
            u.port() == Some(cport) && u.path() == "/oauth/dev"
        })
        .await;
    chrome
        .wait_css("input#login")
        .await
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
    let landed = chrome
        .wait_url("the deep link on the gateway", |u| {
            u.port() == Some(gport) && u.path() == "/app/page"
        })
        .await;
    assert_eq!(landed.query(), Some("x=1"));
    chrome.screenshot("split-dev-landed").await;
    // The browser asks for /favicon.ico too: find the page's own request.
    let seen = backend
        .seen()
        .into_iter()
        .find(|s| s.target == "/app/page?x=1")
        .expect("the page reached the backend");
    let info = seen
        .headers
        .get("x-user-info")
        .expect("the backend got the user")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(info.contains("\"sub\":\"dev:alice\""), "{info}");
    chrome.close().await;
}

/// Issue 19 item 10: an https upstream with a self-signed certificate is a 502 whose log line
/// says so (another oauthgate, with its generated certificate, is that upstream).
#[tokio::test]
async fn a_self_signed_https_upstream_is_named_in_the_log() {
    let upstream = Gateway::start(
        "  routes:\n    - {prefix: /, upstream: \"http://127.0.0.1:9\", login: none}\n",
    );
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"https://localhost:{}\", login: none}}\n",
        upstream.addr.port()
    ));
    let res = gw.client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.running_log_has("a self-signed one?") {
        assert!(Instant::now() < deadline, "no hint in {:#?}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

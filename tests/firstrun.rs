//! What a new user meets first: the split setup (central and gateway as two processes) in a
//! real browser with the dev provider, and the Docker image's command line and config run
//! outside Docker, answering its health check.

mod common;

use std::path::Path;
use std::process::Command;
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
/// says so and names the key that trusts it, `upstream_tls.ca` (another oauthgate, with its
/// generated certificate, is that upstream).
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
    while !gw.running_log_has("self-signed, or from a private CA? set the route's upstream_tls.ca")
    {
        assert!(Instant::now() < deadline, "no hint in {:#?}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

use common::image::{image, is_root};

/// Issue 19, blocker 2: the image's command line and config, run here with a real provider
/// from environment variables and a data folder owned by the image's user, listen on all
/// interfaces, pass their own HEALTHCHECK, and send a browser to GitHub. A data folder the
/// user cannot write is refused once, naming data_dir and the uid.
#[tokio::test]
async fn the_docker_image_command_and_config_run_outside_docker() {
    let image = image();
    let mut start = image.entrypoint.clone();
    start.extend(image.cmd.iter().cloned());
    assert_eq!(image.env_value("OAUTHGATE_LISTEN"), "0.0.0.0:8443");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let overrides = vec![
        ("OAUTHGATE_LISTEN", format!("0.0.0.0:{port}")),
        ("OAUTHGATE_PUBLIC_URL", format!("https://localhost:{port}")),
        ("OAUTHGATE_DATA_DIR", data.display().to_string()),
        ("GITHUB_CLIENT_ID", "docker-test-id".to_owned()),
        ("GITHUB_CLIENT_SECRET", "docker-test-secret".to_owned()),
    ];
    if is_root() {
        // A bind-mounted folder owned by root: refused clearly, once, before binding.
        for p in [dir.path(), data.as_path()] {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let out = image.command(&start, &overrides).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(
            err.contains("data_dir: ") && err.contains("not writable"),
            "{err}"
        );
        assert!(err.contains("(uid 10001)"), "{err}");
        assert_eq!(err.matches("Permission denied").count(), 1, "{err}");
        let ok = Command::new("chown")
            .args(["10001:10001"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let gw = Gateway::spawn_command(
        dir.path().to_owned(),
        None,
        image.command(&start, &overrides),
    );
    // The image's own HEALTHCHECK, as Docker would run it (same environment).
    let out = image
        .command(&image.healthcheck, &overrides)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("/_auth/health: 200"), "{said}");
    // A browser is sent to log in at GitHub, with this container's own callback.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = common::browser(&[&gw], jar);
    let mut url = url::Url::parse(&gw.url("/")).unwrap();
    let mut hops = Vec::new();
    while url.host_str() == Some("localhost") {
        let res = browser
            .get(url.clone())
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "{url}");
        url = url
            .join(res.headers()["location"].to_str().unwrap())
            .unwrap();
        hops.push(url.path().to_owned());
        assert!(hops.len() < 5, "{hops:?}");
    }
    assert_eq!(
        url.as_str().split('?').next(),
        Some("https://github.com/login/oauth/authorize")
    );
    assert_eq!(
        common::param(&url, "redirect_uri").as_deref(),
        Some(format!("https://localhost:{port}/oauth/callback/github").as_str())
    );
    // The demo page from the image's path serves once logged in: here, its file is there.
    assert!(Path::new(&image.local("/usr/share/oauthgate/demo"))
        .join("index.html")
        .is_file());
    drop(gw);
    drop(dir);
}

/// Issue 19 item 11: the chooser names providers by the central's `display_name`, and the
/// demo page, served publicly, offers a Log in link to a visitor without a session (and no
/// Log out button).
#[tokio::test]
async fn the_chooser_and_the_public_demo_page_speak_to_a_new_user() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cert = TestCert::new();
    let port = free_port();
    let gw = Gateway::start_with_cert(
        port,
        &cert,
        &format!(
            "central:\n  providers:\n    dev: {{kind: dev, display_name: Try-out login}}\n    other: {{kind: dev, display_name: Second way}}\n\
             gateway:\n  routes:\n    - {{prefix: /, upstream: \"file://{}\", login: none}}\n    - {{prefix: /private, upstream: \"file://{}\"}}\n",
            root.join("demo").display(),
            root.join("demo").display()
        ),
    );
    let chooser = gw.text("/_auth/login?next=/private").await;
    assert!(chooser.contains("Continue with Try-out login"), "{chooser}");
    assert!(chooser.contains("Continue with Second way"), "{chooser}");
    assert!(!chooser.contains("Continue with dev"), "{chooser}");

    let chrome = Chrome::start(&cert).await;
    let c = &chrome.client;
    c.goto(&gw.url("/")).await.unwrap();
    let login = chrome.wait_css("a#login").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !login.is_displayed().await.unwrap() {
        assert!(Instant::now() < deadline, "the Log in link never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logout = c.find(Locator::Css("a#logout")).await.unwrap();
    assert!(
        !logout.is_displayed().await.unwrap(),
        "a Log out button for a stranger"
    );
    assert!(chrome.text().await.contains("Hello, stranger"));
    chrome.screenshot("demo-public-stranger").await;
    login.click().await.unwrap();
    chrome
        .wait_url("the chooser", |u| u.path() == "/_auth/login")
        .await;
    chrome.close().await;
}

/// Issue 19 item 7: two gateways on one host name, different ports. Cookies ignore ports,
/// so with one cookie name a login at one ends the session at the other; with
/// `session.cookie_name` each keeps its own.
#[tokio::test]
async fn two_gateways_on_one_host_keep_their_sessions_with_their_own_cookie_names() {
    let backend = Backend::start().await;
    let (cport, aport, bport) = (free_port(), free_port(), free_port());
    let central = Gateway::start_public(
        cport,
        &format!(
            "central:\n  providers:\n    dev: {{kind: dev}}\n  clients:\n    - redirect_url: https://localhost:{aport}/_auth/callback\n    - redirect_url: https://localhost:{bport}/_auth/callback\n"
        ),
    );
    let key = central.text("/oauth/key").await;
    let gateway = |port: u16, cookie: &str| {
        Gateway::start_public(
            port,
            &format!(
                "gateway:\n  oauth_proxy:\n    url: https://localhost:{cport}/oauth\n    verify_key: {key}\n    providers: [dev]\n{cookie}  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
                backend.url()
            ),
        )
    };
    for (names, a_survives) in [
        (["", ""], false),
        (
            [
                "  session: {cookie_name: __Host-oauthgate-session-a}\n",
                "  session: {cookie_name: __Host-oauthgate-session-b}\n",
            ],
            true,
        ),
    ] {
        let a = gateway(aport, names[0]);
        let b = gateway(bport, names[1]);
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let browser = common::flow::Browser {
            client: common::browser(&[&central, &a, &b], jar.clone()),
            jar,
        };
        browser.log_in(&a.url("/"), "alice", "").await;
        assert_eq!(browser.userinfo_status(&a).await, 200);
        browser.log_in(&b.url("/"), "bob", "").await;
        assert_eq!(browser.userinfo_status(&b).await, 200);
        let a_status = browser.userinfo_status(&a).await;
        assert_eq!(
            a_status == 200,
            a_survives,
            "names {names:?}: A answered {a_status}"
        );
        drop((a, b));
    }
}

//! The README's "nginx in front" and "Caddy in front" recipes, extracted from README.md (the
//! fenced blocks marked `# recipe: …`), their placeholders replaced by this test's ports and
//! certificate, run against real nginx and Caddy with oauthgate as the judge: a browser-like
//! client goes from the app to the login and back; an API call gets 401; the app never sees
//! the gateway's cookies. So the printed text is what is tested.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::caddy::Caddy;
use common::chrome::TestCert;
use common::flow::Browser;
use common::nginx::Nginx;
use common::{free_port, Backend, Gateway};
use reqwest::cookie::Jar;

/// The fenced block of README.md whose first line is `# recipe: <name>`.
fn recipe(name: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let marker = format!("# recipe: {name}\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no block marked `{marker}`"));
    let end = readme[start..].find("\n```").expect("the block's end") + start;
    readme[start..end].to_owned()
}

/// Replaces `from` by `to`, insisting that the placeholder is in the recipe.
fn put(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the recipe lost its `{from}`:\n{text}");
    text.replace(from, to)
}

/// oauthgate as the README configures it, on `port`, judging for the site on `site_port`,
/// logging in with the dev provider instead of GitHub.
fn judge(port: u16, site_port: u16, app: &Backend) -> Gateway {
    let mut config = recipe("judge-config");
    config = put(&config, "127.0.0.1:8443", &format!("127.0.0.1:{port}"));
    config = put(
        &config,
        "https://app.example.com",
        &format!("https://localhost:{site_port}"),
    );
    config = config.replace("http://127.0.0.1:8080", &app.url());
    let github = config
        .lines()
        .find(|l| l.trim_start().starts_with("github:"))
        .expect("a github provider line")
        .to_owned();
    config = put(&config, &github, "    dev: {kind: dev}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    Gateway::spawn(dir.path().to_owned(), Some(dir), &path)
}

/// A browser (cookie jar, no automatic redirects) that trusts `cert` and reaches the site.
fn browser(cert: &TestCert, site_port: u16, jar: Arc<Jar>) -> Browser {
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], site_port).into())
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    Browser { client, jar }
}

/// What both recipes must do, seen from a browser and from a script.
async fn walk(cert: &TestCert, site_port: u16, app: &Backend) {
    let site = format!("https://localhost:{site_port}");
    // An API call without a session: 401, and the app sees nothing.
    let script = browser(cert, site_port, Arc::new(Jar::default()));
    let res = script
        .client
        .get(format!("{site}/app/data"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.count(), 0, "the app was reached without a login");
    // A public route passes without a login, and a client's own identity header is dropped.
    let res = script
        .client
        .get(format!("{site}/public/x"))
        .header("accept", "application/json")
        .header("x-user-info", "{\"sub\":\"github:1\",\"login\":\"admin\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = app.last();
    assert_eq!(seen.target, "/public/x");
    assert!(
        seen.headers.get("x-user-info").is_none(),
        "a forged identity reached the app: {:?}",
        seen.headers.get("x-user-info")
    );

    // A browser: anonymous navigation → login (on the site's own origin) → back to the app.
    let jar = Arc::new(Jar::default());
    jar.add_cookie_str("app=1", &url::Url::parse(&site).unwrap());
    let b = browser(cert, site_port, jar);
    let (landed, res) = b
        .log_in(
            &format!("{site}/app/page?x=1"),
            "alice",
            "alice@example.com",
        )
        .await;
    assert_eq!(landed.as_str(), format!("{site}/app/page?x=1"));
    assert_eq!(res.status(), 200);
    let seen = app.last();
    assert_eq!(seen.target, "/app/page?x=1");
    let info = seen.headers["x-user-info"].to_str().unwrap();
    assert!(info.contains("\"sub\":\"dev:alice\""), "{info}");
    // The gateway's session cookie stayed with the gateway; the app's own cookie arrived.
    assert!(b.cookies(&site).contains("__Host-oauthgate-session="));
    let cookie = seen
        .headers
        .get("cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(cookie.as_deref(), Some("app=1"));

    // The session also passes an API call now.
    let res = b
        .client
        .get(format!("{site}/app/data"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_readme_nginx_recipe_logs_a_browser_in_and_keeps_apis_at_401() {
    common::nginx::binary();
    let cert = TestCert::new();
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = cert.write(certs.path(), "site");
    let app = Backend::start().await;
    let (site_port, gw_port) = (free_port(), free_port());
    let _judge = judge(gw_port, site_port, &app);
    let mut conf = recipe("nginx");
    conf = put(&conf, "listen 443 ssl;", "listen 127.0.0.1:{port} ssl;");
    conf = put(
        &conf,
        "server_name app.example.com;",
        "server_name localhost;",
    );
    conf = put(
        &conf,
        "/etc/ssl/app.example.com.crt",
        &crt.display().to_string(),
    );
    conf = put(
        &conf,
        "/etc/ssl/app.example.com.key",
        &key.display().to_string(),
    );
    conf = put(&conf, "127.0.0.1:8443", &format!("127.0.0.1:{gw_port}"));
    conf = put(&conf, "127.0.0.1:8080", &app.addr.to_string());
    let _nginx = Nginx::start(site_port, &conf);
    walk(&cert, site_port, &app).await;
}

#[tokio::test]
async fn the_readme_caddy_recipe_logs_a_browser_in_and_keeps_apis_at_401() {
    let cert = TestCert::new();
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = cert.write(certs.path(), "site");
    let app = Backend::start().await;
    let (site_port, gw_port) = (free_port(), free_port());
    let _judge = judge(gw_port, site_port, &app);
    let mut site = recipe("caddy");
    site = put(&site, "app.example.com {", "https://localhost:{port} {");
    site = put(
        &site,
        "/etc/ssl/app.example.com.crt",
        &crt.display().to_string(),
    );
    site = put(
        &site,
        "/etc/ssl/app.example.com.key",
        &key.display().to_string(),
    );
    site = put(&site, "127.0.0.1:8443", &format!("127.0.0.1:{gw_port}"));
    site = put(&site, "127.0.0.1:8080", &app.addr.to_string());
    let _caddy = Caddy::start(site_port, &site);
    walk(&cert, site_port, &app).await;
}

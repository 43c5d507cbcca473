//! `oauthgate check` against each first-run mistake of issue 19 (and issue 20 item 11): the
//! exit code and the message, naming the key path and the fix; and `oauthgate health`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{check, Gateway};

const HEAD: &str = "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: data\n";

fn route(upstream: &str) -> String {
    format!("gateway:\n  routes:\n    - {{prefix: /, upstream: \"{upstream}\", login: none}}\n")
}

/// Runs `check` with environment variables; returns (exit code, stderr).
fn check_env(yaml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_tls_files_are_refused_by_check_naming_the_key() {
    let (code, err) = check(&format!(
        "{HEAD}tls: {{cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}}\n{}",
        route("http://127.0.0.1:9")
    ));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("tls.cert: /nonexistent/cert.pem does not exist"),
        "{err}"
    );
    assert!(
        err.contains("tls.key: /nonexistent/key.pem does not exist"),
        "{err}"
    );
    // A file that is there but holds no certificate: what serve would refuse.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let (code, err) = check(&format!(
        "{HEAD}tls: {{cert: {0}, key: {0}}}\n{1}",
        junk.display(),
        route("http://127.0.0.1:9")
    ));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains(": tls.cert: certificate ") && err.contains("junk.pem: no CERTIFICATE"),
        "{err}"
    );
}

#[test]
fn a_dollar_name_secret_is_refused_and_braces_are_the_fix() {
    let yaml = format!(
        "{HEAD}tls: {{self_signed: true}}\ngateway:\n  session:\n    secret: $SESSION_SECRET\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:9\", login: none}}\n"
    );
    let secret = ("SESSION_SECRET", "0123456789abcdef0123456789abcdef");
    let (code, err) = check_env(&yaml, &[secret]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("gateway.session.secret: the value is a `$NAME` without braces"),
        "{err}"
    );
    assert!(err.contains("write `${SESSION_SECRET}`"), "{err}");
    let fixed = yaml.replace("$SESSION_SECRET", "${SESSION_SECRET}");
    let (code, err) = check_env(&fixed, &[secret]);
    assert_eq!(code, 0, "{err}");
    // Outside secret fields it is only a warning.
    let title = format!(
        "{HEAD}tls: {{self_signed: true}}\ngateway:\n  title: $HOSTNAME\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:9\", login: none}}\n"
    );
    let (code, err) = check_env(&title, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: gateway.title: `$HOSTNAME` is taken literally"),
        "{err}"
    );
}

#[test]
fn a_variable_fills_a_number() {
    let yaml = format!(
        "{HEAD}tls: {{self_signed: true}}\nlimits:\n  max_connections: ${{MAXCONN}}\n{}",
        route("http://127.0.0.1:9")
    );
    let (code, err) = check_env(&yaml, &[("MAXCONN", "500")]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = check_env(&yaml, &[("MAXCONN", "lots")]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("limits.max_connections: invalid type"),
        "{err}"
    );
}

#[test]
fn messages_name_the_key_and_the_fix() {
    let tls = "tls: {self_signed: true}\n";
    let cases = [
        (
            route("127.0.0.1:8080"),
            "gateway.routes[0].upstream: `127.0.0.1:8080` has no scheme: write http://127.0.0.1:8080",
        ),
        (
            route("file:/srv/www"),
            "gateway.routes[0].upstream: `file:/srv/www`: write a folder as file:// and its path",
        ),
        (
            "central:\n  providers:\n    github:\n    client_id: x\n".to_owned(),
            "central.providers.client_id: invalid type: string \"x\", expected a mapping",
        ),
    ];
    for (body, want) in cases {
        let (code, err) = check(&format!("{HEAD}{tls}{body}"));
        assert_eq!(code, 64, "{body}: {err}");
        assert!(err.contains(want), "{body}\nwant {want}\ngot {err}");
        assert!(!err.contains("Raw"), "{err}");
        assert!(!err.contains("is not one of http, https, file"), "{err}");
    }
}

#[test]
fn a_loopback_public_url_on_another_port_is_a_warning() {
    let (code, err) = check(&format!(
        "listen: 127.0.0.1:9443\npublic_url: https://localhost:8443\ntls: {{self_signed: true}}\n{}",
        route("http://127.0.0.1:9")
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: public_url: `https://localhost:8443/` names port 8443, but listen is port 9443"),
        "{err}"
    );
}

#[test]
fn a_data_dir_that_is_not_a_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let (code, err) = check(&format!(
        "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: {}/data\ntls: {{self_signed: true}}\n{}",
        file.display(),
        route("http://127.0.0.1:9")
    ));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("data_dir: ") && err.contains("is not a folder"),
        "{err}"
    );
}

/// A gateway whose central is another process: check fetches `<url>/key` and compares.
#[tokio::test]
async fn check_compares_verify_key_and_url_with_a_reachable_central() {
    let central = Gateway::start_raw("central:\n  providers:\n    dev: {kind: dev}\n");
    let port = central.addr.port();
    let served = central.text("/oauth/key").await;
    let gateway = |url: &str, key: &str| {
        format!(
            "{HEAD}tls: {{self_signed: true}}\ngateway:\n  oauth_proxy:\n    url: {url}\n    verify_key: {key}\n    providers: [dev]\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:9\"}}\n"
        )
    };
    let right = format!("https://localhost:{port}/oauth");
    let (code, err) = check(&gateway(&right, &served));
    assert_eq!(code, 0, "{err}");
    let wrong_key = "00".repeat(32);
    assert_ne!(wrong_key, served);
    let (code, err) = check(&gateway(&right, &wrong_key));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains(&format!(
            "gateway.oauth_proxy.verify_key: does not match the central: {right}/key serves {served}"
        )),
        "{err}"
    );
    let bare = format!("https://localhost:{port}");
    let (code, err) = check(&gateway(&bare, &served));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains(&format!(
            "gateway.oauth_proxy.url: {bare}/key answers 404; the central answers under /oauth: write {bare}/oauth"
        )),
        "{err}"
    );
    // An unreachable central is only a warning: it may be set up later.
    let down = format!("https://localhost:{}/oauth", common::free_port());
    let (code, err) = check(&gateway(&down, &served));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: could not reach"), "{err}");
}

/// At start-up a gateway with a wrong key says so once, clearly.
#[tokio::test]
async fn serve_logs_a_verify_key_the_central_does_not_serve() {
    let central = Gateway::start_raw("central:\n  providers:\n    dev: {kind: dev}\n");
    let gw = Gateway::start(&format!(
        "  oauth_proxy:\n    url: https://localhost:{}/oauth\n    verify_key: {}\n    providers: [dev]\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:9\"}}\n",
        central.addr.port(),
        "00".repeat(32)
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.running_log_has("gateway.oauth_proxy.verify_key: does not match the central") {
        assert!(Instant::now() < deadline, "{:#?}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn health(dir: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(common::bin())
        .args(["health", "--config", "config.yaml"])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn health_probes_the_gateway_or_the_central_and_fails_when_down() {
    let gw = Gateway::start(&route("http://127.0.0.1:9")["gateway:\n".len()..]);
    // The config says port 0: the probe is told the real one with --url.
    let url = format!("https://localhost:{}/_auth/health", gw.addr.port());
    let (code, out) = health(&gw.dir, &["--url", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("200 {\"status\":\"ok\"}"), "{out}");
    let central = Gateway::start_raw("central:\n  providers:\n    dev: {kind: dev}\n");
    let url = format!("https://127.0.0.1:{}/oauth/health", central.addr.port());
    let (code, out) = health(&central.dir, &["--url", &url]);
    assert_eq!(code, 0, "{out}");
    // A 404 and a closed port are failures.
    let (code, out) = health(
        &gw.dir,
        &[
            "--url",
            &format!("https://localhost:{}/nope", gw.addr.port()),
        ],
    );
    assert_eq!(code, 1, "{out}");
    let (code, out) = health(
        &gw.dir,
        &[
            "--url",
            &format!("https://localhost:{}/_auth/health", common::free_port()),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unhealthy"), "{out}");
}

/// Without --url the probe goes to `listen` (here a fixed free port) with public_url's host.
#[tokio::test]
async fn health_without_url_reads_the_listen_address() {
    let port = common::free_port();
    let gw = Gateway::start_public(port, &route("http://127.0.0.1:9"));
    let (code, out) = health(&gw.dir, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("https://localhost:{port}/_auth/health: 200")),
        "{out}"
    );
    drop(gw);
}

/// data_dir must be writable only when something will be generated there: a read-only one
/// with every file given stays valid (/proc refuses new files, even to root).
#[test]
fn data_dir_is_checked_only_when_serve_would_write_to_it() {
    let (code, err) = check(&format!(
        "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: /proc/oauthgate-test\ntls: {{self_signed: true}}\n{}",
        route("http://127.0.0.1:9")
    ));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("data_dir: /proc is not writable"), "{err}");
    let cert = common::chrome::TestCert::new();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = cert.write(dir.path(), "tls");
    let (code, err) = check(&format!(
        "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: /proc/oauthgate-test\n\
         tls: {{cert: {}, key: {}}}\n{}",
        crt.display(),
        key.display(),
        route("http://127.0.0.1:9")
    ));
    assert_eq!(code, 0, "{err}");
}

/// A generated session secret that was cut short: serve refuses it, so check does too.
#[test]
fn a_truncated_generated_session_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/session.key"), "short\n").unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: {}/data\ntls: {{self_signed: true}}\n\
         central:\n  providers:\n    dev: {{kind: dev}}\ngateway:\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:9\"}}\n",
        dir.path().display()
    );
    let (code, err) = check(&yaml);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("gateway.session.secret: is not set, and "),
        "{err}"
    );
    assert!(
        err.contains("session.key (the generated one) is too short"),
        "{err}"
    );
}

//! Failures: dead, hanging and half-answering upstreams give clean 502/504 answers or a cut
//! body, and the gateway keeps serving; bad config files exit with 64 and the key path.

mod common;

use std::time::{Duration, Instant};

use common::backend::{closing_mid_body, dead_address};
use common::client::get;
use common::{check, Backend, Gateway};

#[tokio::test]
async fn a_dead_upstream_is_a_502_page_or_json() {
    let dead = dead_address().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"http://{dead}\"}}\n"
    ));
    let cert = gw.cert_pem();
    let html = get(gw.addr, &cert, "/", "Accept: text/html\r\n").await;
    assert_eq!(html.status, 502);
    assert!(html
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(String::from_utf8_lossy(&html.body).contains("not answering"));
    let api = get(gw.addr, &cert, "/api", "Accept: application/json\r\n").await;
    assert_eq!(api.status, 502);
    let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(body["error"], "bad_gateway");
    // The page never leaks the upstream address.
    assert!(!String::from_utf8_lossy(&html.body).contains(&dead.port().to_string()));
}

#[tokio::test]
async fn a_hanging_upstream_is_a_504_after_the_response_timeout() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  upstream: {{response_timeout: 1s}}\n  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    let started = Instant::now();
    let res = get(gw.addr, &gw.cert_pem(), "/hang", "").await;
    assert_eq!(res.status, 504);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(get(gw.addr, &gw.cert_pem(), "/fine", "").await.status, 200);
}

#[tokio::test]
async fn an_upstream_closing_mid_body_cuts_the_client_off_and_the_gateway_survives() {
    let upstream = closing_mid_body().await;
    let backend = Backend::start().await;
    let mut gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /cut, upstream: \"http://{upstream}\"}}\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    for client in gw.both_protocols() {
        // Whether the head reaches the client before the error depends on whether the
        // upstream's close is read before the head is flushed: the client gets either a 200
        // whose body fails, or a failed request (HTTP/1.1 connection cut, HTTP/2 stream reset).
        // Never a body that looks complete.
        let outcome = match client.get(gw.url("/cut")).send().await {
            Ok(res) => {
                assert_eq!(res.status(), 200);
                res.bytes().await.map(|b| b.len())
            }
            Err(e) => Err(e),
        };
        assert!(
            outcome.is_err(),
            "a truncated body must surface as an error, got {outcome:?}"
        );
        assert_eq!(
            client.get(gw.url("/ok")).send().await.unwrap().status(),
            200
        );
    }
    assert!(gw.running());
}

fn valid(routes: &str) -> String {
    format!("listen: 127.0.0.1:0\npublic_url: https://localhost\ntls: {{self_signed: true}}\ngateway:\n  routes:\n{routes}")
}

#[test]
fn check_accepts_a_valid_file_and_the_shipped_example() {
    let (code, err) = check(&valid(
        "    - {prefix: /, upstream: \"http://127.0.0.1:9\"}\n",
    ));
    assert_eq!(code, 0, "{err}");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(common::bin())
        .args(["check", "--config", "config.yaml"])
        .current_dir(shipped)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_config_files_exit_64_naming_the_key_path() {
    let cases = [
        (valid("    - {prefix: /, upstream: \"http://a\"}\n    - {prefix: /b, upstream: \"gopher://x\"}\n"), "gateway.routes[1].upstream"),
        (valid("    - {prefix: /, upstream: \"http://a\", typo: 1}\n"), "gateway.routes[0].typo"),
        (valid("    - {prefix: /, upstream: \"${OAUTHGATE_TEST_UNSET_VAR}\"}\n"), "OAUTHGATE_TEST_UNSET_VAR"),
        (valid("    - {prefix: /, upstream: \"file:///nonexistent/dir\"}\n"), "gateway.routes[0].upstream"),
        ("listen: 127.0.0.1:0\npublic_url: https://localhost\ntls: {}\ngateway: {routes: []}\n".to_owned(), "tls"),
        ("listen: [unclosed\n".to_owned(), "not valid YAML"),
        // Issue 20 item 9: a sub-second ttl passed and logged every user out at once.
        (format!("{}  session: {{ttl: 500ms}}\n", valid("    - {prefix: /, upstream: \"http://a\"}\n")), "gateway.session.ttl"),
        (format!("{}  session: {{ttl: 1500ms}}\n", valid("    - {prefix: /, upstream: \"http://a\"}\n")), "gateway.session.ttl"),
    ];
    for (yaml, want) in cases {
        let (code, err) = check(&yaml);
        assert_eq!(code, 64, "{yaml}\n{err}");
        assert!(err.contains(want), "{yaml}\nwant {want} in: {err}");
    }
    // `serve` refuses the same way, before binding anything.
    let out = std::process::Command::new(common::bin())
        .args(["--config", "/nonexistent/config.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

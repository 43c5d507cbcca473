//! Logs (SPEC §7): JSON lines that all parse and hold no secret, access lines with every
//! field and the decision, nothing lost at SIGTERM, and the switches that turn access lines
//! off. Request ids: tests/request_ids.rs.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::flow::Browser;
use common::{browser, free_port, Backend, Gateway};
use serde_json::Value;

const SESSION_SECRET: &str = "SESSION-SECRET-0123456789abcdef-0123456789";
const CLIENT_SECRET: &str = "GH-CLIENT-SECRET-7f3a";

/// The response's `X-Request-Id`.
fn id_of(res: &reqwest::Response) -> String {
    res.headers()["x-request-id"].to_str().unwrap().to_owned()
}

/// Stops the process with SIGTERM and returns everything it logged.
fn stop(mut gw: Gateway) -> Vec<String> {
    gw.terminate();
    assert!(gw.wait_exit(Duration::from_secs(15)).success());
    // A client's idle keep-alive connection may hold the drain until `shutdown_grace`.
    gw.log_when("the drain was not logged", |log| {
        log.iter()
            .any(|l| l.contains("all connections drained") || l.contains("grace period over"))
    })
}

/// One process with a central (dev provider, plus a GitHub one for its secret) and a gateway
/// that uses it, logging JSON: `/admin` only for boss@example.com, `/dead` on a closed port.
async fn json_world(backend: &Backend) -> Gateway {
    let port = free_port();
    let dead = free_port();
    Gateway::start_public(
        port,
        &format!(
            "log: {{format: json}}\nlimits: {{shutdown_grace: 1s}}\n\
             central:\n  providers:\n    dev: {{kind: dev}}\n\
             \x20   gh: {{kind: oauth2, client_id: gh-id, client_secret: {CLIENT_SECRET}, \
             authorize_url: 'https://127.0.0.1:9/a', access_token_url: 'https://127.0.0.1:9/t', \
             user_info_url: 'https://127.0.0.1:9/u'}}\n\
             gateway:\n  oauth_proxy: {{providers: [dev]}}\n  session: {{secret: {SESSION_SECRET}}}\n  routes:\n\
             \x20   - {{prefix: /admin, upstream: {b}, login: required, allow: {{emails: [boss@example.com]}}}}\n\
             \x20   - {{prefix: /dead, upstream: 'http://127.0.0.1:{dead}'}}\n\
             \x20   - {{prefix: /, upstream: {b}, login: required}}\n",
            b = backend.url()
        ),
    )
}

/// Checks the SPEC §7 fields of an access line and their types.
fn check_access_fields(v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"));
    let time = s("time");
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{v}"
    );
    assert!(!s("request_id").is_empty());
    s("peer")
        .parse::<std::net::IpAddr>()
        .expect("peer is an address");
    assert!(!s("method").is_empty());
    assert!(
        s("path").starts_with('/') && !s("path").contains('?'),
        "{v}"
    );
    assert!((100..600).contains(&v["status"].as_u64().expect("status")));
    assert!(!s("route").is_empty());
    assert!(v["duration"].as_f64().expect("duration") >= 0.0);
    assert!(!s("user").is_empty());
    let decision = s("decision");
    assert!(
        ["pass", "login", "deny", "error"].contains(&decision),
        "{v}"
    );
    assert_eq!(
        v["reason"].is_string(),
        decision == "deny" || decision == "error",
        "{v}"
    );
}

#[tokio::test]
async fn json_logs_parse_line_by_line_carry_decisions_and_hold_no_secret() {
    let backend = Backend::start().await;
    let gw = json_world(&backend).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let alice = Browser {
        client: browser(&[&gw], jar.clone()),
        jar,
    };
    let (landed, page) = alice
        .log_in(&gw.url("/app"), "alice", "alice@example.com")
        .await;
    assert_eq!((landed.path(), page.status().as_u16()), ("/app", 200));
    let cookies = alice.cookies(&gw.url("/"));
    assert!(cookies.contains('='), "logged in: {cookies}");

    // id → (status, decision, reason)
    let mut want: HashMap<String, (u16, &str, Option<&str>)> = HashMap::new();
    let res = alice
        .client
        .get(gw.url("/app/x?code=CODE-SECRET-1&state=STATE-SECRET-2"))
        .header("authorization", "Bearer BEARER-SECRET-3")
        .send()
        .await
        .unwrap();
    want.insert(id_of(&res), (200, "pass", None));
    let res = alice.client.get(gw.url("/admin")).send().await.unwrap();
    want.insert(id_of(&res), (403, "deny", Some("not_allowed")));
    let res = alice
        .client
        .get(gw.url("/dead/x?code=C"))
        .send()
        .await
        .unwrap();
    want.insert(id_of(&res), (502, "error", Some("upstream_unavailable")));
    let anonymous = gw.client();
    let res = anonymous.get(gw.url("/app?state=S")).send().await.unwrap();
    want.insert(id_of(&res), (401, "login", None));
    let res = anonymous
        .get(gw.url("/_auth/nothing"))
        .send()
        .await
        .unwrap();
    want.insert(id_of(&res), (404, "deny", Some("not_found")));
    // A path with the bytes hyper lets through that JSON must escape or that are not ASCII.
    let raw_path = "/app/a\"b\\c/\u{e9}{x}";
    let odd = common::client::get(
        gw.addr,
        &gw.cert_pem(),
        &format!("{raw_path}?code=RAW-CODE-SECRET"),
        "",
    )
    .await;
    let odd_id = odd.header("x-request-id").expect("an id").to_owned();
    for (id, (status, ..)) in &want {
        assert_eq!(id.len(), 22, "{id}");
        assert!(*status > 0);
    }

    let signing_key = std::fs::read_to_string(gw.data_dir().join("signing.key")).unwrap();
    // SIGTERM: every line so far must be written before the process ends.
    let log = stop(gw);
    let raw = log.join("\n");
    let mut secrets = vec![
        "CODE-SECRET-1",
        "STATE-SECRET-2",
        "BEARER-SECRET-3",
        "RAW-CODE-SECRET",
        SESSION_SECRET,
        CLIENT_SECRET,
        signing_key.trim(),
    ];
    let cookie_values: Vec<&str> = cookies
        .split("; ")
        .filter_map(|c| c.split_once('=').map(|(_, v)| v))
        .collect();
    secrets.extend(cookie_values.iter().copied());
    for secret in secrets {
        assert!(secret.len() >= 8, "a weak probe: {secret:?}");
        assert!(!raw.contains(secret), "{secret:?} appears in the log");
    }

    let mut seen = HashMap::new();
    let mut warned = false;
    for line in &log {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["time"].is_string() && v["level"].is_string() && v["target"].is_string());
        if v["target"] == "access" {
            check_access_fields(&v);
            seen.insert(v["request_id"].as_str().unwrap().to_owned(), v);
        } else if v["level"] == "WARN" && v["message"] == "upstream error" {
            // An upstream's failures are warned by its pool (folded when they repeat), with
            // the kind as a field of its own.
            assert_eq!(v["kind"], "connect", "{line}");
            warned = true;
        }
    }
    assert!(warned, "the 502 logged no warning");
    let odd_line = seen.get(&odd_id).expect("an access line for the odd path");
    assert_eq!(odd_line["path"], "/app/a\"b\\c/%C3%A9{x}");
    assert_eq!(odd_line["status"], odd.status);
    assert!(log.iter().any(|l| l.contains(r#""message":"listening""#)));
    for (id, (status, decision, reason)) in want {
        let line = seen
            .get(&id)
            .unwrap_or_else(|| panic!("no access line for {id}"));
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["decision"], decision, "{line}");
        assert_eq!(line["reason"].as_str(), reason, "{line}");
        let user = line["user"].as_str().unwrap();
        assert_eq!(user == "-", decision == "login" || status == 404, "{line}");
    }
}

/// Starts a gateway with `top` YAML and `RUST_LOG=rust_log`, sends a few requests, stops it
/// and returns its log.
async fn log_of_a_few_requests(top: &str, rust_log: &str) -> Vec<String> {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: data\n\
             tls: {{self_signed: true}}\nlimits: {{shutdown_grace: 1s}}\n{top}\ngateway:\n  routes:\n    - {{prefix: /, upstream: {}}}\n",
            backend.url()
        ),
    )
    .unwrap();
    let gw = Gateway::spawn_env(dir.path().to_owned(), Some(dir), &path, rust_log);
    for _ in 0..5 {
        let res = gw.client().get(gw.url("/x")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(backend.seen().len(), 5);
    stop(gw)
}

#[tokio::test]
async fn access_lines_are_off_with_log_access_false_or_a_warn_filter() {
    let on = log_of_a_few_requests("", "info").await;
    assert_eq!(
        on.iter().filter(|l| l.contains(" INFO access: ")).count(),
        5
    );
    let off = log_of_a_few_requests("log: {access: false}", "info").await;
    assert!(!off.iter().any(|l| l.contains("access")), "{off:#?}");
    let filtered = log_of_a_few_requests("", "warn,oauthgate=info").await;
    assert!(
        !filtered.iter().any(|l| l.contains("access")),
        "{filtered:#?}"
    );
    let json_off = log_of_a_few_requests("log: {format: json, access: false}", "info").await;
    assert!(json_off.iter().all(|l| l.starts_with('{')));
    assert!(
        !json_off.iter().any(|l| l.contains("\"access\"")),
        "{json_off:#?}"
    );
}

#[tokio::test]
async fn a_request_that_finishes_during_the_drain_is_logged_before_exit() {
    let backend = Backend::start().await;
    let mut gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: {}}}\n",
        backend.url()
    ));
    let client = gw.client();
    let url = gw.url("/slow?sleep_ms=1500");
    let slow = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    // SIGTERM once the request is at the backend, so it finishes during the drain.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.seen().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.terminate();
    let res = slow.await.unwrap();
    assert_eq!(res.status(), 200);
    let id = id_of(&res);
    assert!(gw.wait_exit(Duration::from_secs(15)).success());
    let log = gw.log_when("the drain was not logged", |log| {
        log.iter().any(|l| l.contains("all connections drained"))
    });
    let drained = log
        .iter()
        .position(|l| l.contains("stopped accepting"))
        .expect("the drain started");
    let line = log
        .iter()
        .position(|l| l.contains(&format!("request_id={id} ")))
        .expect("the access line of the request that finished during the drain");
    assert!(line > drained, "{log:#?}");
}

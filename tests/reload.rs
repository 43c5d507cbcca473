//! Live reload (SPEC §7) under load: clients keep proxied requests going over HTTP/1.1 and
//! HTTP/2, and a WebSocket stays open, while the test edits the config file (add a route,
//! change an `allow`, break it, fix it), sends SIGHUP, and tries to move `listen`. No request
//! fails, the WebSocket still echoes at the end, every change shows within 3 s, and refused
//! changes leave the running config serving, logged with their key path and counted. Also:
//! pools of unchanged origins are kept, new certificate files are served, a used login stays
//! used, and the central reloads its providers.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::client::{connect, tls_config};
use common::flow::World;
use common::reload::{
    counting_upstream, echo, keep_requesting, read_config, reloads, within, write_config,
};
use common::{free_port, Gateway};

const ROUTES: &str = concat!(
    "    - {prefix: /app, upstream: \"BACKEND\", login: none}\n",
    "    - {prefix: /ws, upstream: \"BACKEND\", login: none}\n",
    "    - {prefix: /staff, upstream: \"BACKEND\", login: required, allow: {domains: [example.org]}}\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_and_sighup_reload_without_failing_a_request() {
    let metrics = "metrics: {listen: \"127.0.0.1:0\"}\n";
    let w = World::start_top(
        free_port(),
        free_port(),
        "    dev: {kind: dev}\n",
        "[dev]",
        ROUTES,
        "",
        metrics,
    )
    .await;
    let gw = &w.gateway;
    let b = w.browser();
    let (_, res) = b
        .log_in(&gw.url("/staff/x"), "alice", "alice@example.com")
        .await;
    // Logged in, but outside `allow`.
    assert_eq!(res.status(), 403);

    // Load on both protocols, and a WebSocket.
    let stop = Arc::new(AtomicBool::new(false));
    let [h1, h2] = gw.both_protocols();
    let loads = [
        keep_requesting(h1, gw.url("/app/h1"), stop.clone()),
        keep_requesting(h2, gw.url("/app/h2"), stop.clone()),
    ];
    let tls = connect(gw.addr, tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .await
        .unwrap();
    let ws_url = format!("wss://localhost:{}/ws", gw.addr.port());
    let (mut ws, res) = tokio_tungstenite::client_async(ws_url, tls).await.unwrap();
    assert_eq!(res.status(), 101);
    let echoes = AtomicUsize::new(0);
    echo(&mut ws, "before", &echoes).await;
    let original = read_config(gw);
    let backend = w.backend.url();

    // 1. A new route answers within 3 s of the edit.
    assert_eq!(
        gw.client()
            .get(gw.url("/new/x"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let added = original.replace(
        "  routes:\n",
        &format!("  routes:\n    - {{prefix: /new, upstream: \"{backend}\", login: none}}\n"),
    );
    assert_ne!(added, original);
    write_config(gw, &added);
    let api = gw.client();
    within(Duration::from_secs(3), "the new route", || async {
        api.get(gw.url("/new/x")).send().await.unwrap().status() == 200
    })
    .await;
    echo(&mut ws, "after a new route", &echoes).await;

    // 2. A changed `allow` takes effect for the same session.
    let allowed = added.replace("domains: [example.org]", "domains: [example.com]");
    assert_ne!(allowed, added);
    write_config(gw, &allowed);
    within(Duration::from_secs(3), "the new allow", || async {
        b.client
            .get(gw.url("/staff/x"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert_eq!(reloads(gw, "ok").await, 2);
    assert_eq!(reloads(gw, "error").await, 0);

    // 3. A broken file changes nothing; the error names its key path and is counted.
    let broken = allowed.replace("login: none}", "login: none, colour: red}");
    write_config(gw, &broken);
    within(Duration::from_secs(5), "the counted error", || async {
        reloads(gw, "error").await == 1
    })
    .await;
    // The metric may be read before the warning has gone through the log writer and the pipe.
    gw.log_when("the refused reload's warning", |log| {
        log.iter().any(|l| {
            l.contains("config reload refused")
                && l.contains("gateway.routes[0].colour: unknown field")
        })
    });
    assert_eq!(
        api.get(gw.url("/new/x")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        b.client
            .get(gw.url("/staff/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    echo(&mut ws, "after a broken file", &echoes).await;

    // 4. Fixed again: loaded.
    write_config(gw, &allowed);
    within(Duration::from_secs(5), "the fixed file", || async {
        reloads(gw, "ok").await == 3
    })
    .await;

    // 5. SIGHUP reloads even an unchanged file.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    within(Duration::from_secs(3), "the SIGHUP reload", || async {
        reloads(gw, "ok").await == 4
    })
    .await;
    // As in 3: the metric may be read before the line has gone through the log writer.
    gw.log_when("the SIGHUP line", |log| {
        log.iter().any(|l| l.contains("SIGHUP received"))
    });

    // 6. `listen` cannot move: refused with the reason; the old listener serves on.
    let port = gw.addr.port();
    let moved = allowed.replace(
        &format!("listen: 127.0.0.1:{port}"),
        &format!("listen: 127.0.0.1:{}", free_port()),
    );
    assert_ne!(moved, allowed);
    write_config(gw, &moved);
    within(Duration::from_secs(5), "the refused listen", || async {
        reloads(gw, "error").await == 2
    })
    .await;
    assert!(
        gw.running_log_has("listen cannot change without a restart"),
        "{:#?}",
        gw.log()
    );
    assert_eq!(
        api.get(gw.url("/new/y")).send().await.unwrap().status(),
        200
    );

    // Load stopped: nothing failed, and the WebSocket opened before all this still echoes.
    echo(&mut ws, "at the end", &echoes).await;
    stop.store(true, Relaxed);
    for load in loads {
        let (sent, failures) = load.await.unwrap();
        assert!(sent > 10, "only {sent} requests sent");
        assert!(
            failures.is_empty(),
            "{} of {sent} failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
    assert_eq!(echoes.load(Relaxed), 4);
    assert!(gw.running_log_has("config reloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_pools_of_unchanged_upstreams() {
    let (upstream, accepted) = counting_upstream().await;
    let routes = format!("  routes:\n    - {{prefix: /a, upstream: \"{upstream}\"}}\n");
    let gw = Gateway::start_with(&routes, "metrics: {listen: \"127.0.0.1:0\"}\n");
    let api = gw.client();
    let get = |path: &'static str| {
        let (api, url) = (api.clone(), gw.url(path));
        async move { api.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(get("/a/1").await, "ok");
    assert_eq!(accepted.load(Relaxed), 1);

    // Another route to the same origin: the pool (and its idle connection) is kept.
    let original = read_config(&gw);
    let more = original.replace(
        "  routes:\n",
        &format!("  routes:\n    - {{prefix: /b, upstream: \"{upstream}\"}}\n"),
    );
    write_config(&gw, &more);
    within(Duration::from_secs(3), "route /b", || async {
        reloads(&gw, "ok").await == 1
    })
    .await;
    for path in ["/a/2", "/b/1", "/a/3"] {
        assert_eq!(get(path).await, "ok");
    }
    assert_eq!(
        accepted.load(Relaxed),
        1,
        "a kept pool reuses its connection"
    );

    // Other pool settings: a new pool, so a new connection (this check can fail).
    let other = more.replace("gateway:\n", "gateway:\n  upstream: {max_idle: 7}\n");
    assert_ne!(other, more);
    write_config(&gw, &other);
    within(Duration::from_secs(3), "new pool settings", || async {
        reloads(&gw, "ok").await == 2
    })
    .await;
    assert_eq!(get("/a/4").await, "ok");
    assert_eq!(accepted.load(Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_names_other_certificate_files_serves_them() {
    let backend = common::Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    let old = gw.cert_pem();
    // Kept open across the switch: it goes on with the certificate it shook hands with.
    let kept = gw.client();
    assert_eq!(kept.get(gw.url("/1")).send().await.unwrap().status(), 200);

    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let new = made.cert.pem();
    let (crt, key) = (gw.dir.join("new.crt"), gw.dir.join("new.key"));
    std::fs::write(&crt, &new).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let text = read_config(&gw).replace(
        "tls: {self_signed: true}",
        &format!("tls: {{cert: {}, key: {}}}", crt.display(), key.display()),
    );
    write_config(&gw, &text);
    let trusting = |pem: &str| {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .resolve("localhost", gw.addr)
            .build()
            .unwrap()
    };
    let fresh = trusting(&new);
    within(Duration::from_secs(3), "the new certificate", || async {
        fresh
            .get(gw.url("/2"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // New connections no longer get the old one.
    let old_only = trusting(std::str::from_utf8(&old).unwrap());
    assert!(old_only.get(gw.url("/3")).send().await.is_err());
    assert_eq!(kept.get(gw.url("/4")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_login_cannot_be_replayed_after_a_reload() {
    let metrics = "metrics: {listen: \"127.0.0.1:0\"}\n";
    let w = World::start_top(
        free_port(),
        free_port(),
        "    dev: {kind: dev}\n",
        "[dev]",
        ROUTES,
        "",
        metrics,
    )
    .await;
    let victim = w.browser();
    let res = victim
        .client
        .get(w.gateway.url("/_auth/login?provider=dev&next=/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let (form, _) = victim
        .navigate(res.headers()["location"].to_str().unwrap())
        .await;
    assert_eq!(form.path(), "/oauth/dev");
    let state = common::param(&form, "state").unwrap();
    let res = victim
        .client
        .post(form.join("/oauth/dev").unwrap())
        .form(&[("state", state.as_str()), ("login", "victim")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    // Someone copies the victim's cookies; the victim's callback goes through.
    let cookies = victim.cookies(&w.gateway.url("/"));
    assert_eq!(victim.client.get(&back).send().await.unwrap().status(), 303);

    // A reload builds a new login flow: the used nonce must still be known to it.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &w.gateway.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    within(Duration::from_secs(3), "the reload", || async {
        reloads(&w.gateway, "ok").await == 1
    })
    .await;
    let copy = w.browser();
    let res = copy
        .client
        .get(&back)
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a replay after a reload was accepted");
    let scrape = w.gateway.scrape().await;
    for line in [
        "oauthgate_logins_total{provider=\"dev\",outcome=\"accepted\"} 1",
        "oauthgate_logins_total{provider=\"dev\",outcome=\"refused\"} 1",
    ] {
        assert!(scrape.lines().any(|l| l == line), "{line} in {scrape}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_reloads_its_providers_and_keeps_its_key() {
    let metrics = "metrics: {listen: \"127.0.0.1:0\"}\n";
    let w = World::start_top(
        free_port(),
        free_port(),
        "    dev: {kind: dev}\n",
        "[dev]",
        ROUTES,
        "",
        metrics,
    )
    .await;
    let central = &w.central;
    let key = central.text("/oauth/key").await;
    assert!(!central.text("/oauth/providers").await.contains("\"other\""));
    let text = read_config(central).replace(
        "    dev: {kind: dev}\n",
        "    dev: {kind: dev}\n    other: {kind: dev, display_name: Other}\n",
    );
    write_config(central, &text);
    within(Duration::from_secs(3), "the new provider", || async {
        central.text("/oauth/providers").await.contains("\"other\"")
    })
    .await;
    assert_eq!(central.text("/oauth/key").await, key);
    assert_eq!(reloads(central, "ok").await, 1);
    // Logins still work end to end, through the reloaded central.
    let b = w.browser();
    let (_, res) = b
        .log_in(&w.gateway.url("/staff/x"), "bob", "bob@example.org")
        .await;
    assert_eq!(res.status(), 200);
}

//! Metrics (SPEC §7) against real peers: Debian's `promtool` checks a scrape taken after real
//! traffic (a login, proxied 200s, a 401, a 403, a 404, 502s from a dead upstream), the counts
//! are exact, and a real Prometheus scrapes the endpoint and answers queries about it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::backend::{dead_address, Backend};
use common::flow::World;
use common::{apt_install, free_port, Gateway};

const METRICS: &str = "metrics: {listen: \"127.0.0.1:0\"}\n";

fn need_prometheus() {
    apt_install("/usr/bin/promtool", &["prometheus"], "tests/metrics.rs");
}

/// The value of the sample whose line starts with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn requests(route: &str, code: u16) -> String {
    format!("oauthgate_http_requests_total{{route=\"{route}\",code=\"{code}\"}}")
}

/// `promtool check metrics` on `text`: its exit status and everything it printed.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[tokio::test]
async fn real_traffic_is_counted_exactly_and_passes_promtool() {
    need_prometheus();
    let dead = dead_address().await;
    let routes = format!(
        "    - {{prefix: /app, upstream: \"BACKEND\", login: none}}\n\
         \x20   - {{prefix: /private, upstream: \"BACKEND\", login: required}}\n\
         \x20   - {{prefix: /staff, upstream: \"BACKEND\", login: required, allow: {{domains: [example.org]}}}}\n\
         \x20   - {{prefix: /dead, upstream: \"http://{dead}\", login: none}}\n"
    );
    let w = World::start_top(
        free_port(),
        free_port(),
        "    dev: {kind: dev}\n",
        "[dev]",
        &routes,
        "",
        METRICS,
    )
    .await;
    let api = w.gateway.client();

    // Seven proxied 200s, each at a raw path of its own: one series all the same.
    for i in 0..7 {
        let res = api
            .get(w.gateway.url(&format!("/app/page{i}/x?secret=q{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // An API call without a session: 401.
    let res = api
        .get(w.gateway.url("/private/data"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A path no route takes: 404.
    let res = api.get(w.gateway.url("/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // Two 502s from an upstream nobody listens on.
    for _ in 0..2 {
        let res = api.get(w.gateway.url("/dead/x")).send().await.unwrap();
        assert_eq!(res.status(), 502);
    }
    // A real login through the central, then a 403 outside `allow`.
    let b = w.browser();
    let (_, res) = b
        .log_in(
            &w.gateway.url("/private/page"),
            "alice",
            "alice@example.com",
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = b
        .client
        .get(w.gateway.url("/staff/board"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let text = w.gateway.scrape().await;
    for (series, want) in [
        (requests("/app", 200), 7.0),
        (requests("/private", 401), 1.0),
        (requests("-", 404), 1.0),
        (requests("/dead", 502), 2.0),
        (requests("/staff", 403), 1.0),
        (
            "oauthgate_http_request_duration_seconds_count{route=\"/app\"}".into(),
            7.0,
        ),
        (
            "oauthgate_upstream_errors_total{route=\"/dead\",kind=\"connect\"}".into(),
            2.0,
        ),
        (
            "oauthgate_logins_total{provider=\"dev\",outcome=\"accepted\"}".into(),
            1.0,
        ),
        (
            "oauthgate_config_reloads_total{result=\"error\"}".into(),
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, &series), Some(want), "{series} in:\n{text}");
    }
    // Labels are route prefixes: no raw path, no query.
    let app_series = text
        .lines()
        .filter(|l| l.starts_with("oauthgate_http_requests_total{route=\"/app\""))
        .count();
    assert_eq!(app_series, 1, "{text}");
    assert!(
        !text.contains("page3") && !text.contains("secret"),
        "{text}"
    );
    // This scrape's own client is not counted, but the API client's keep-alive connection is.
    let open = sample(&text, "oauthgate_connections").expect("connections gauge");
    assert!(open >= 1.0, "{text}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = text
        .lines()
        .find(|l| l.starts_with("oauthgate_tls_certificate_expiry_timestamp_seconds{file="))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .expect("a certificate expiry sample");
    // rcgen's self-signed certificates are valid until 4096.
    assert_eq!(expiry, 67_090_118_400.0, "now {now}");

    let central = w.central.scrape().await;
    assert_eq!(
        sample(
            &central,
            "oauthgate_logins_total{provider=\"dev\",outcome=\"completed\"}"
        ),
        Some(1.0),
        "{central}"
    );
    assert!(
        sample(&central, &requests("/oauth", 303)).is_some_and(|n| n >= 1.0),
        "{central}"
    );

    for scrape in [&text, &central] {
        let (ok, said) = promtool(scrape);
        assert!(ok && said.trim().is_empty(), "promtool: {said}\n{scrape}");
    }
    // promtool itself would fail a broken exposition (the check above can fail).
    let (ok, _) = promtool("oauthgate_x{route=\"/a\" 1\n");
    assert!(!ok);
}

#[tokio::test]
async fn the_metrics_listener_answers_only_get_metrics() {
    let backend = Backend::start().await;
    let gw = Gateway::start_with(
        &format!(
            "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
        METRICS,
    );
    let url = gw.metrics_url();
    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let other = url.replace("/metrics", "/metricsx");
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 404);
    let post = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    // The HTTPS listener does not serve metrics: /metrics there is an ordinary proxied path.
    let res = gw.client().get(gw.url("/metrics")).send().await.unwrap();
    assert!(res
        .text()
        .await
        .unwrap()
        .starts_with("backend GET /metrics"));
}

#[tokio::test]
async fn a_real_prometheus_scrapes_it() {
    need_prometheus();
    let backend = Backend::start().await;
    let gw = Gateway::start_with(
        &format!(
            "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
        METRICS,
    );
    for _ in 0..3 {
        let res = gw.client().get(gw.url("/x")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let target = gw.metrics_url();
    let target = target
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: oauthgate\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let query = |q: &str| {
        let url = format!("http://127.0.0.1:{port}/api/v1/query");
        let q = q.to_owned();
        async move {
            let res = reqwest::Client::new()
                .get(url)
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = res.json().await.ok()?;
            body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut up, mut total) = (None, None);
    while Instant::now() < deadline {
        up = query("up{job=\"oauthgate\"}").await;
        total =
            query("sum(oauthgate_http_requests_total{job=\"oauthgate\",route=\"/\",code=\"200\"})")
                .await;
        if up == Some(1.0) && total == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(up, Some(1.0), "Prometheus never saw the target up");
    assert_eq!(total, Some(3.0), "Prometheus never saw the requests");
}

//! X-Request-Id (SPEC §7): unique per request, echoed, forwarded, in the access line; a
//! client's kept only from a trusted proxy; shown on error pages and in JSON errors.

mod common;

use std::collections::HashSet;

use common::{field, free_port, Backend, Gateway};
use serde_json::Value;

/// The response's `X-Request-Id`.
fn id_of(res: &reqwest::Response) -> String {
    res.headers()["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn request_ids_are_unique_echoed_forwarded_and_logged() {
    const REQUESTS: usize = 10_000;
    const CLIENTS: usize = 32;
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: {}}}\n",
        backend.url()
    ));
    let [h1, h2] = gw.both_protocols();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = if c % 2 == 0 { h1.clone() } else { h2.clone() };
        let url = gw.url("/r");
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..REQUESTS / CLIENTS {
                let res = client.get(&url).send().await.unwrap();
                assert_eq!(res.status(), 200);
                ids.push(id_of(&res));
            }
            ids
        }));
    }
    let mut echoed = HashSet::new();
    for t in tasks {
        echoed.extend(t.await.unwrap());
    }
    let total = REQUESTS / CLIENTS * CLIENTS;
    assert_eq!(echoed.len(), total, "request ids repeat");
    let forwarded: HashSet<String> = backend
        .seen()
        .iter()
        .map(|s| s.headers["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(forwarded, echoed, "the backend saw other ids");
    let log = gw.log_when("access lines missing", |log| {
        let logged: HashSet<String> = log.iter().filter_map(|l| field(l, "request_id")).collect();
        echoed.iter().all(|id| logged.contains(id))
    });
    // The text format keeps its key=value fields.
    let line = log.iter().find(|l| l.contains(" INFO access: ")).unwrap();
    for key in [
        "request_id",
        "peer",
        "method",
        "path",
        "status",
        "route",
        "duration",
        "user",
        "decision",
    ] {
        assert!(field(line, key).is_some(), "{key} missing: {line}");
    }
    assert_eq!(field(line, "decision").as_deref(), Some("pass"));
    assert_eq!(field(line, "path").as_deref(), Some("/r"));
}

#[tokio::test]
async fn a_client_id_is_kept_only_from_a_trusted_proxy_and_errors_show_the_id() {
    let backend = Backend::start().await;
    let routes = |dead: u16| {
        format!(
            "  routes:\n    - {{prefix: /app, upstream: {}}}\n    - {{prefix: /dead, upstream: 'http://127.0.0.1:{dead}'}}\n",
            backend.url()
        )
    };
    // The test client is on loopback: trusted by default, not when the list names another.
    let trusting = Gateway::start(&routes(free_port()));
    let strict = Gateway::start(&format!(
        "  trusted_proxies: [10.9.9.9]\n{}",
        routes(free_port())
    ));
    let get = |gw: &Gateway, path: &str, id: &str| {
        gw.client()
            .get(gw.url(path))
            .header("x-request-id", id)
            .header("accept", "text/html")
            .send()
    };
    let res = get(&trusting, "/app", "from-proxy-42").await.unwrap();
    assert_eq!(id_of(&res), "from-proxy-42");
    assert_eq!(backend.last().headers["x-request-id"], "from-proxy-42");
    let res = get(&trusting, "/app", "not sane").await.unwrap();
    assert_eq!(id_of(&res).len(), 22);

    let res = get(&strict, "/app", "from-proxy-42").await.unwrap();
    let id = id_of(&res);
    assert_eq!(id.len(), 22, "{id}");
    assert_eq!(backend.last().headers["x-request-id"], id.as_str());
    // Error pages (HTML for a navigation, JSON for an API call) name the id.
    let res = get(&strict, "/nothing", "x").await.unwrap();
    assert_eq!(res.status(), 404);
    let id = id_of(&res);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(&format!("<code>{id}</code>")));
    let res = strict
        .client()
        .get(strict.url("/dead"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let id = id_of(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str());
    strict.log_when("the 502 access line", |log| {
        log.iter()
            .any(|l| l.contains(&format!("request_id={id} ")) && l.contains(" decision=error"))
    });
}

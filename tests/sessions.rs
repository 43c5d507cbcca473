//! The Redis session store (SPEC §9) against a real `redis-server` started by the test: a
//! session opened on one gateway works on another sharing secret and store; `oauthgate
//! sessions list | revoke` and logout end it on both within the stated bound (2 s); Redis
//! stopped mid-run gives 503 (JSON or page) only where a session is needed, and the same
//! processes recover when it is back.

mod common;

use std::time::{Duration, Instant};

use common::flow::World;
use common::redis::{sessions, status_with, until_status, Redis};
use common::{free_port, Gateway};

const ROUTES: &str = concat!(
    "    - {prefix: /private, upstream: \"BACKEND\", login: required}\n",
    "    - {prefix: /, upstream: \"BACKEND\", login: none}\n",
);
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The revocation bound the README states (the gateway's cache), plus the time a request
/// takes on a busy test machine.
const BOUND: Duration = Duration::from_millis(2000 + 1500);

fn session_yaml(redis: &Redis) -> String {
    format!(
        "  session:\n    secret: \"{SECRET}\"\n    store: \"{}\"\n",
        redis.url()
    )
}

/// `oauthgate check` of `g`'s config: exit code and stderr.
fn check(g: &Gateway) -> (i32, String) {
    common::check(&std::fs::read_to_string(g.dir.join("config.yaml")).unwrap())
}

/// A logged-in browser's session cookie header (what a thief would copy).
async fn logged_in(w: &World, login: &str) -> String {
    let b = w.browser();
    let (_, res) = b
        .log_in(
            &w.gateway.url("/private/x"),
            login,
            &format!("{login}@example.com"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let cookie = b.cookies(&w.gateway.url("/"));
    assert!(cookie.contains("__Host-oauthgate-session="), "{cookie}");
    cookie
}

#[tokio::test]
async fn a_copied_cookie_works_on_both_gateways_until_revoked_by_sub_then_all() {
    let redis = Redis::start();
    let w = World::start(ROUTES, &session_yaml(&redis)).await;
    let other = w.another_gateway(free_port());
    let alice = logged_in(&w, "alice").await;
    let bob = logged_in(&w, "bob").await;
    // The cookie holds a sealed id, not the session: it is short, and Redis has the records.
    assert!(alice.len() < 200, "{alice}");
    assert_eq!(redis.count("oauthgate:session:"), 2);
    for cookie in [&alice, &bob] {
        for g in [&w.gateway, &other] {
            assert_eq!(status_with(g, "/private/x", cookie).await, 200);
        }
    }
    let (code, out, err) = sessions(&w.gateway, &["list"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|f| f.len() == 5 && f[1] == "dev"), "{out}");
    let alice_sub = lines[0][0].to_owned();
    assert!(alice_sub.contains("alice"), "{out}");
    // The other gateway read Alice's session from Redis (its cache had not seen it): its
    // access line still names her.
    let user = format!("user={alice_sub}");
    other.log_when("Alice in an access line", |log| {
        log.iter()
            .any(|l| l.contains("path=/private/x") && l.contains(&user))
    });

    let (code, out, err) = sessions(&other, &["revoke", "--sub", &alice_sub]);
    assert_eq!((code, out.trim()), (0, "revoked 1 session(s)"), "{err}");
    let took = until_status(&[&w.gateway, &other], "/private/x", &alice, 401, BOUND).await;
    assert!(took < BOUND, "{took:?}");
    // Bob's session was not Alice's.
    assert_eq!(status_with(&other, "/private/x", &bob).await, 200);

    let (code, out, err) = sessions(&w.gateway, &["revoke", "--all"]);
    assert_eq!((code, out.trim()), (0, "revoked 1 session(s)"), "{err}");
    until_status(&[&w.gateway, &other], "/private/x", &bob, 401, BOUND).await;
    assert_eq!(redis.count("oauthgate:session:"), 0);
    assert_eq!(redis.count("oauthgate:sub:"), 0);
    // A navigation with the revoked cookie is sent to the login again.
    let res = w
        .gateway
        .client()
        .get(w.gateway.url("/private/x"))
        .header("cookie", &bob)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/_auth/login"));
}

#[tokio::test]
async fn logout_deletes_the_session_everywhere() {
    let redis = Redis::start();
    let w = World::start(ROUTES, &session_yaml(&redis)).await;
    let other = w.another_gateway(free_port());
    let b = w.browser();
    let (_, res) = b
        .log_in(&w.gateway.url("/private/x"), "carol", "carol@example.com")
        .await;
    assert_eq!(res.status(), 200);
    let copied = b.cookies(&w.gateway.url("/"));
    assert_eq!(status_with(&other, "/private/x", &copied).await, 200);
    let res = b.log_out(&w.gateway).await;
    assert_eq!(res.status(), 200);
    assert_eq!(redis.count("oauthgate:session:"), 0);
    // This gateway dropped it from its cache at once; the other within the bound.
    assert_eq!(status_with(&w.gateway, "/private/x", &copied).await, 401);
    until_status(&[&other], "/private/x", &copied, 401, BOUND).await;
}

#[tokio::test]
async fn cookie_sessions_cannot_be_listed_or_revoked() {
    let g = Gateway::start(
        "  routes:\n    - {prefix: /, upstream: \"http://127.0.0.1:9\", login: none}\n",
    );
    for args in [
        &["list"][..],
        &["revoke", "--all"],
        &["revoke", "--sub", "x"],
    ] {
        let (code, _, err) = sessions(&g, args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(
            err.contains("cookie sessions") && err.contains("cannot be listed or revoked"),
            "{err}"
        );
    }
    let (code, _, err) = sessions(&g, &["revoke"]);
    assert_eq!(code, 2, "--sub or --all is required: {err}");
}

#[tokio::test]
async fn redis_down_is_503_where_a_session_is_needed_and_recovers_by_itself() {
    let mut redis = Redis::start();
    let metrics = "metrics: {listen: \"127.0.0.1:0\"}\n";
    let w = World::start_top(
        free_port(),
        free_port(),
        "    dev: {kind: dev}\n",
        "[dev]",
        ROUTES,
        &session_yaml(&redis),
        metrics,
    )
    .await;
    let cookie = logged_in(&w, "dave").await;
    assert_eq!(status_with(&w.gateway, "/private/x", &cookie).await, 200);

    assert!(!check(&w.gateway).1.contains("gateway.session.store"));
    redis.stop();
    until_status(
        &[&w.gateway],
        "/private/x",
        &cookie,
        503,
        Duration::from_secs(10),
    )
    .await;
    let res = w
        .gateway
        .client()
        .get(w.gateway.url("/private/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "service_unavailable", "{body}");
    let res = w
        .gateway
        .client()
        .get(w.gateway.url("/private/x"))
        .header("cookie", &cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Sessions cannot be checked right now"));
    // Without a cookie nothing is asked of Redis: the login, as always.
    assert_eq!(status_with(&w.gateway, "/private/x", "").await, 401);
    // A `login: none` route does not need the store, cookie or not.
    assert_eq!(status_with(&w.gateway, "/public", &cookie).await, 200);
    let seen = w.backend.count();
    assert_eq!(status_with(&w.gateway, "/private/x", &cookie).await, 503);
    assert_eq!(
        w.backend.count(),
        seen,
        "a request passed while Redis was down"
    );
    let scrape = w.gateway.scrape().await;
    let errors: u64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("oauthgate_session_store_errors_total "))
        .and_then(|n| n.parse().ok())
        .expect("the store errors counter");
    assert!(errors >= 1, "{scrape}");
    let log = w.gateway.log_when("the store failure logged", |l| {
        l.iter().any(|l| l.contains("session store (Redis) failed"))
    });
    assert!(!log
        .iter()
        .any(|l| l.contains(&cookie[cookie.find('=').unwrap() + 1..])));
    // One rate-limited warning from the store, not a line per 503.
    let per_request = log.iter().filter(|l| l.contains("request failed")).count();
    assert_eq!(per_request, 0, "{log:#?}");

    // `check` warns (the config is valid: Redis may come back).
    let (code, err) = check(&w.gateway);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: gateway.session.store: Redis does not answer"),
        "{err}"
    );
    // The command line says Redis cannot be reached (exit 69), without the URL's secrets.
    let (code, _, err) = sessions(&w.gateway, &["list"]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("Redis (gateway.session.store)"), "{err}");

    redis.resume();
    until_status(
        &[&w.gateway],
        "/private/x",
        &cookie,
        200,
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test]
async fn an_idle_session_ends_in_redis_and_use_keeps_it_alive() {
    let redis = Redis::start();
    let idle = Duration::from_secs(4);
    let yaml = format!(
        "  session:\n    secret: \"{SECRET}\"\n    store: \"{}\"\n    ttl: 1h\n    idle_timeout: 4s\n",
        redis.url()
    );
    let w = World::start(ROUTES, &yaml).await;
    let cookie = logged_in(&w, "frank").await;
    // Used every 300 ms for almost twice the idle timeout: it slides, never ends.
    let start = Instant::now();
    while start.elapsed() < idle * 7 / 4 {
        assert_eq!(
            status_with(&w.gateway, "/private/x", &cookie).await,
            200,
            "after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Left alone, it ends once idle (not before: the ttl is an hour).
    let last_use = Instant::now();
    assert_eq!(status_with(&w.gateway, "/private/x", &cookie).await, 200);
    tokio::time::sleep(idle - Duration::from_secs(1)).await;
    assert_eq!(
        redis.count("oauthgate:session:"),
        1,
        "ended before its idle timeout"
    );
    // Any request would be a use that slides it: one look, once the idle timeout is over
    // (the cache's entry, at most FRESH old, is stale by then).
    tokio::time::sleep(
        (last_use + idle + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    )
    .await;
    assert_eq!(status_with(&w.gateway, "/private/x", &cookie).await, 401);
    // Redis drops the record too (its TTL counts from the write, within a second of ours).
    let deadline = Instant::now() + Duration::from_secs(3);
    while redis.count("oauthgate:session:") != 0 {
        assert!(
            Instant::now() < deadline,
            "the idle record outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn logging_in_again_ends_the_session_the_browser_had() {
    let redis = Redis::start();
    let w = World::start(ROUTES, &session_yaml(&redis)).await;
    let b = w.browser();
    let (_, res) = b
        .log_in(&w.gateway.url("/private/x"), "gina", "gina@example.com")
        .await;
    assert_eq!(res.status(), 200);
    let first = b.cookies(&w.gateway.url("/"));
    let (_, res) = b
        .log_in(
            &w.gateway.url("/_auth/login?next=/private/y"),
            "gina",
            "gina@example.com",
        )
        .await;
    assert_eq!(res.status(), 200);
    let second = b.cookies(&w.gateway.url("/"));
    assert_ne!(first, second);
    assert_eq!(redis.count("oauthgate:session:"), 1);
    assert_eq!(status_with(&w.gateway, "/private/x", &first).await, 401);
    assert_eq!(status_with(&w.gateway, "/private/x", &second).await, 200);
}

#[tokio::test]
async fn previous_secrets_open_redis_ids_and_reseal_them_with_the_new_secret() {
    const NEW: &str = "aa23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let redis = Redis::start();
    let w = World::start(ROUTES, &session_yaml(&redis)).await;
    let old = logged_in(&w, "hana").await;
    let secret = format!("secret: \"{SECRET}\"");
    let body = w.gateway_body();
    assert!(body.contains(&secret), "{body}");
    let rotating = format!("secret: \"{NEW}\"\n    previous_secrets: [\"{SECRET}\"]");
    let rotated = Gateway::start_public(free_port(), &body.replace(&secret, &rotating));
    let res = rotated
        .client()
        .get(rotated.url("/private/x"))
        .header("cookie", &old)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let renewed = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-oauthgate-session="))
        .expect("the id sealed again");
    assert_ne!(renewed, old);
    // The same session (one record), now under the new secret only.
    assert_eq!(redis.count("oauthgate:session:"), 1);
    let only_new = Gateway::start_public(
        free_port(),
        &body.replace(&secret, &format!("secret: \"{NEW}\"")),
    );
    assert_eq!(status_with(&only_new, "/private/x", &renewed).await, 200);
    assert_eq!(status_with(&only_new, "/private/x", &old).await, 401);
}

#[tokio::test]
async fn a_slow_redis_is_503_within_the_timeout_not_a_hang() {
    let redis = Redis::start();
    let w = World::start(ROUTES, &session_yaml(&redis)).await;
    let cookie = logged_in(&w, "ivan").await;
    // A replica that has not seen this session yet: it must ask Redis.
    let other = w.another_gateway(free_port());
    assert_eq!(
        redis
            .command(&["CLIENT", "PAUSE", "6000", "ALL"])
            .as_deref(),
        Some("+OK")
    );
    let asked = Instant::now();
    assert_eq!(status_with(&other, "/private/x", &cookie).await, 503);
    // Bounded by the store's 2.5 s per operation, well before Redis answers again.
    assert!(
        asked.elapsed() < Duration::from_millis(4500),
        "{:?}",
        asked.elapsed()
    );
    until_status(
        &[&other],
        "/private/x",
        &cookie,
        200,
        Duration::from_secs(15),
    )
    .await;
}

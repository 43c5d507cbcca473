//! Replicas (SPEC §9) behind a real HAProxy started by the test, round robin per connection,
//! no stickiness: 2 centrals sharing `signing_key` and 2 gateways sharing `secret` and a real
//! Redis store. A login starts on one central and ends on the other; a session opened through
//! one gateway works through the other; one gateway SIGKILLed under a bounded load of
//! logged-in requests fails none but those in flight on it, and loses no session.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::haproxy::Haproxy;
use common::idp::Idp;
use common::redis::Redis;
use common::{bin, free_port, Backend, Gateway};
use serde_json::json;

const SECRET: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

struct Replicas {
    centrals: [Gateway; 2],
    gateways: [Gateway; 2],
    /// In front of the gateways: the public URL they share.
    front: Haproxy,
    /// In front of the centrals: their shared issuer.
    _login: Haproxy,
    backend: Backend,
    _idp: Idp,
    _redis: Redis,
    _keys: tempfile::TempDir,
}

/// Starts oauthgate listening on `port` with `public_url` at `public_port` (a balancer's).
fn replica(port: u16, public_port: u16, body: &str) -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "listen: 127.0.0.1:{port}\npublic_url: https://localhost:{public_port}\ndata_dir: data\n\
         tls: {{self_signed: true}}\n{body}\n"
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write config");
    Gateway::spawn(dir.path().to_owned(), Some(dir), &path)
}

impl Replicas {
    async fn start() -> Replicas {
        let redis = Redis::start();
        let backend = Backend::start().await;
        let idp = Idp::start(
            "central",
            json!({"sub": "u-7", "email": "erin@example.com", "name": "Erin"}),
        )
        .await;
        // One signing key, made once, named by both centrals' configs.
        let keys = tempfile::tempdir().expect("temp dir");
        let key_path = keys.path().join("signing.key");
        let out = Command::new(bin())
            .arg("keygen")
            .arg("--out")
            .arg(&key_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let verify_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();

        let cports = [free_port(), free_port()];
        let gports = [free_port(), free_port()];
        // The balancers' ports are known first (the replicas' public URLs name them); the
        // balancers start once the replicas listen.
        let (login_port, front_port) = (free_port(), free_port());
        let front_url = |path: &str| format!("https://localhost:{front_port}{path}");
        let callback = format!("https://localhost:{login_port}/oauth/callback");
        idp.set(|k| k.redirect_uris = vec![format!("{callback}/corp"), callback.clone()]);
        let central_body = format!(
            "central:\n  signing_key: {}\n  providers:\n{}  clients:\n    - redirect_url: {}\n",
            key_path.display(),
            idp.provider_yaml("corp", "oauth2", ""),
            front_url("/_auth/callback"),
        );
        let centrals = cports.map(|p| replica(p, login_port, &central_body));
        let gateway_body = format!(
            "gateway:\n  oauth_proxy:\n    url: https://localhost:{}/oauth\n    verify_key: {verify_key}\n    providers: [corp]\n\
             \x20 session:\n    secret: \"{SECRET}\"\n    store: \"{}\"\n\
             \x20 routes:\n    - {{prefix: /private, upstream: \"{}\", login: required}}\n",
            login_port,
            redis.url(),
            backend.url()
        );
        let gateways = gports.map(|p| replica(p, front_port, &gateway_body));
        let login = Haproxy::start(login_port, &cports);
        let front = Haproxy::start(front_port, &gports);
        Replicas {
            centrals,
            gateways,
            front,
            _login: login,
            backend,
            _idp: idp,
            _redis: redis,
            _keys: keys,
        }
    }

    /// A browser trusting every replica's certificate that opens a new connection for every
    /// request, so that the balancer sends each one to the next replica.
    fn browser(&self, jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
        let all: Vec<&Gateway> = self.centrals.iter().chain(&self.gateways).collect();
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30));
        for s in all {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&s.cert_pem()).unwrap());
        }
        b.resolve("localhost", "127.0.0.1:0".parse().unwrap())
            .build()
            .unwrap()
    }

    /// Walks a login through the balancers up to the gateway's callback; returns its URL.
    async fn to_callback(&self, b: &reqwest::Client) -> url::Url {
        let start = self.front.url("/private/page");
        let (url, _) = follow(b, &start, |u| u.path() == "/_auth/callback").await;
        assert_eq!(url.path(), "/_auth/callback");
        url
    }

    /// Logs in through the balancers, following every redirect; returns the session cookie.
    async fn log_in(&self, b: &reqwest::Client, jar: &reqwest::cookie::Jar) -> String {
        use reqwest::cookie::CookieStore;
        let (url, res) = follow(b, &self.front.url("/private/page"), |_| false).await;
        assert_eq!(res.status(), 200, "{url}: {}", res.text().await.unwrap());
        assert_eq!(url.path(), "/private/page");
        let home = url::Url::parse(&self.front.url("/")).unwrap();
        jar.cookies(&home).unwrap().to_str().unwrap().to_owned()
    }
}

/// GETs `start` as a navigation and follows redirects until `stop` holds for the next URL
/// (not fetched) or an answer is not a redirect; returns that URL and the last answer.
async fn follow(
    b: &reqwest::Client,
    start: &str,
    stop: impl Fn(&url::Url) -> bool,
) -> (url::Url, reqwest::Response) {
    let mut url = url::Url::parse(start).unwrap();
    for _ in 0..12 {
        let res = b
            .get(url.clone())
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        match res.headers().get("location") {
            Some(loc) if res.status().is_redirection() => {
                url = url.join(loc.to_str().unwrap()).unwrap();
                if stop(&url) {
                    return (url, res);
                }
            }
            _ => return (url, res),
        }
    }
    panic!("redirect loop at {url}");
}

/// How many access lines `g` logged for a path starting with `path`.
fn served(g: &Gateway, path: &str) -> usize {
    let field = format!("path={path}");
    g.log().iter().filter(|l| l.contains(&field)).count()
}

/// Per central, how many authorize and callback requests it served, once both sums reach
/// `n` (access lines are written in batches: waited for, bounded).
fn trips(centrals: &[Gateway; 2], n: usize) -> [(usize, usize); 2] {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counts = centrals
            .each_ref()
            .map(|c| (served(c, "/oauth/authorize"), served(c, "/oauth/callback")));
        if counts[0].0 + counts[1].0 >= n && counts[0].1 + counts[1].1 >= n {
            return counts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{counts:?}: access lines missing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_crosses_centrals_and_a_session_crosses_gateways() {
    let r = Replicas::start().await;
    // Logins that start on one central and end on the other: round robin makes the first one
    // cross, unless another connection (a gateway's start-up probe of the central) came
    // between its two requests; then the next one does.
    let mut crossed = None;
    for n in 1..=3 {
        let before = trips(&r.centrals, n - 1);
        // A new browser each time: one logged in would not log in again.
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let cookie = r.log_in(&r.browser(jar.clone()), &jar).await;
        let after = trips(&r.centrals, n);
        let gained = |i: usize| (after[i].0 - before[i].0, after[i].1 - before[i].1);
        if matches!((gained(0), gained(1)), ((1, 0), (0, 1)) | ((0, 1), (1, 0))) {
            crossed = Some(cookie);
            break;
        }
    }
    let cookie = crossed.expect("no login crossed from one central to the other");
    // The session works on each gateway, asked directly.
    for g in &r.gateways {
        let res = g
            .client()
            .get(g.url("/private/direct"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let info: serde_json::Value =
            serde_json::from_str(r.backend.last().headers["x-user-info"].to_str().unwrap())
                .unwrap();
        assert_eq!(info["name"], "Erin", "{info}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_under_load_fails_only_its_requests_in_flight() {
    const WORKERS: usize = 4;
    const EACH: usize = 40;
    let r = Replicas::start().await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let b = r.browser(jar.clone());
    let cookie = r.log_in(&b, &jar).await;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (b, cookie, url, done) = (
            b.clone(),
            cookie.clone(),
            r.front.url("/private/load"),
            done.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut results = Vec::with_capacity(EACH);
            for _ in 0..EACH {
                let res = b.get(&url).header("cookie", &cookie).send().await;
                results.push(match res {
                    Ok(res) => Ok(res.status().as_u16()),
                    Err(e) => Err(e.to_string()),
                });
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            results
        }));
    }
    // A third of the way in, the second gateway dies without a word.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while done.load(std::sync::atomic::Ordering::SeqCst) < WORKERS * EACH / 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load did not get going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = Command::new("kill")
        .args(["-KILL", &r.gateways[1].pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut failed = Vec::new();
    let mut statuses = Vec::new();
    let mut tail_ok = 0;
    for w in workers {
        let results = w.await.unwrap();
        // Each worker's last quarter ran well after the kill.
        tail_ok += results[EACH * 3 / 4..]
            .iter()
            .filter(|r| matches!(r, Ok(200)))
            .count();
        for res in results {
            match res {
                Ok(s) => statuses.push(s),
                Err(e) => failed.push(e),
            }
        }
    }
    eprintln!(
        "{} answered, {} failed (in flight on the killed gateway)",
        statuses.len(),
        failed.len()
    );
    // No session lost (no 401) and no other answer than the page: every answer is 200.
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // At most one request in flight per worker could be on the killed process.
    assert!(failed.len() <= WORKERS, "{failed:#?}");
    assert_eq!(
        tail_ok,
        WORKERS * (EACH - EACH * 3 / 4),
        "failures after the kill: {failed:#?}"
    );
    assert_eq!(statuses.len() + failed.len(), WORKERS * EACH);
}

/// A callback replayed on the other gateway replica (someone holding a copy of the victim's
/// login cookie and the assertion) is refused: the used nonce is shared through Redis, not
/// only remembered by the replica that took the first callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callback_replayed_on_another_gateway_replica_is_refused() {
    use reqwest::cookie::CookieStore;
    let r = Replicas::start().await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let victim = r.browser(jar.clone());
    let back = r.to_callback(&victim).await;
    let copied = jar.cookies(&back).unwrap().to_str().unwrap().to_owned();
    assert!(copied.contains("__Host-oauthgate-login-"), "{copied}");
    let on = |g: &Gateway| {
        let mut u = back.clone();
        u.set_port(Some(g.addr.port())).unwrap();
        u
    };
    let res = victim.get(on(&r.gateways[0])).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let thief = r.browser(Arc::new(reqwest::cookie::Jar::default()));
    let res = thief
        .get(on(&r.gateways[1]))
        .header("cookie", &copied)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("__Host-oauthgate-session=")));
}

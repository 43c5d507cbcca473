//! OIDC discovery off the start-up path (issue 20 item 10): a provider that accepts
//! connections but never answers used to hold the central's start for 5 s per provider and
//! every login for 5 s more. Discovery now runs in the background with backoff.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fakes::Fake;
use common::Gateway;
use tokio::net::{TcpListener, TcpStream};

const APP: &str = "https://app.example/_auth/callback";

/// A listener that accepts connections and holds them unanswered until the switch is on,
/// then relays new ones to `target`.
async fn switchable(target: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let on = Arc::new(AtomicBool::new(false));
    let switch = on.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            if !switch.load(Ordering::SeqCst) {
                held.push(tcp);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut up) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                }
            });
        }
    });
    (addr, on)
}

/// GET /oauth/authorize for the provider `corp`; the status, the Location and how long it
/// took.
async fn authorize(gw: &Gateway) -> (u16, String, Duration) {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("provider", "corp")
        .append_pair("state", "s1")
        .append_pair("redirect_url", APP)
        .finish();
    let started = Instant::now();
    let res = gw
        .client()
        .get(gw.url(&format!("/oauth/authorize?{q}")))
        .header("accept", "text/html")
        .send()
        .await
        .expect("answered");
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    if status == 503 {
        assert!(body.contains("unavailable"), "{body}");
    }
    (status, location, started.elapsed())
}

/// The status of `GET /oauth/health`.
async fn health(gw: &Gateway) -> u16 {
    let res = gw.client().get(gw.url("/oauth/health")).send().await;
    res.expect("answered").status().as_u16()
}

#[tokio::test]
async fn a_provider_that_never_answers_neither_delays_start_nor_logins() {
    let issuer = Arc::new(std::sync::Mutex::new(String::new()));
    let named = issuer.clone();
    let op = Fake::start(move |r| match r.path.as_str() {
        "/.well-known/openid-configuration" => {
            let iss = named.lock().unwrap().clone();
            let doc = serde_json::json!({
                "issuer": iss,
                "authorization_endpoint": format!("{iss}/authorize"),
                "token_endpoint": format!("{iss}/token"),
                "jwks_uri": format!("{iss}/jwks"),
            });
            (200, "application/json", doc.to_string())
        }
        _ => (404, "text/plain", String::new()),
    })
    .await;
    let (front, on) = switchable(op.addr).await;
    *issuer.lock().unwrap() = format!("http://{front}");
    let started = Instant::now();
    let gw = Gateway::start_raw(&format!(
        "central:\n  provider_timeout: 5s\n  providers:\n    corp:\n      kind: oidc\n      issuer: http://{front}\n      client_id: c\n      client_secret: s\n  clients:\n    - redirect_url: {APP}\n"
    ));
    // Serving at once, not after the provider's 5 s timeout.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "started after {took:?}");
    // A login meanwhile: a clear 503 without waiting for the provider's timeout, and
    // again at once for the next one (no discovery per login).
    let (status, _, took) = authorize(&gw).await;
    assert_eq!(status, 503);
    assert!(
        took < Duration::from_millis(3500),
        "first login took {took:?}"
    );
    let (status, _, took) = authorize(&gw).await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(1), "second login took {took:?}");
    assert_eq!(gw.text("/oauth/providers").await, "[\"corp\"]");
    // Readiness (SPEC §7): 503 while a required discovery has never succeeded.
    assert_eq!(health(&gw).await, 503);
    // The provider answers from now on: the background retry finds it, logins work.
    on.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, location, _) = authorize(&gw).await;
        if status == 302 {
            assert!(location.starts_with(&format!("http://{front}/authorize?")));
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "never discovered: {:#?}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The line goes through the log writer and a pipe: it may come after the answer.
    gw.log_when("the discovery line", |log| {
        log.iter().any(|l| l.contains("provider discovery done"))
    });
    assert_eq!(health(&gw).await, 200);
    // Backoff: a handful of failed attempts, not one per login.
    let failures = gw
        .log()
        .iter()
        .filter(|l| l.contains("provider discovery failed"))
        .count();
    assert!((1..=4).contains(&failures), "{failures} failed attempts");
    assert_eq!(op.to("/.well-known/openid-configuration").len(), 1);
}

//! Graceful shutdown: SIGTERM stops accepting, lets an in-flight request finish, then exits 0.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Gateway};

#[tokio::test]
async fn sigterm_drains_an_in_flight_slow_request() {
    let backend = Backend::start().await;
    let mut gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    let client = gw.client();
    let slow = tokio::spawn({
        let client = client.clone();
        let url = gw.url("/slow?sleep_ms=1500");
        async move {
            let res = client.get(url).send().await?;
            let status = res.status();
            Ok::<_, reqwest::Error>((status, res.text().await?))
        }
    });
    // Wait until the slow request is in flight at the backend.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.terminate();

    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio::net::TcpStream::connect(gw.addr).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, body) = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(status, 200);
    assert_eq!(body, "backend GET /slow?sleep_ms=1500");
    let exit = gw.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit}");
    assert!(gw
        .log()
        .iter()
        .any(|l| l.contains("all connections drained")));
}

#[tokio::test]
async fn the_drain_is_bounded_by_shutdown_grace() {
    let backend = Backend::start().await;
    let mut gw = Gateway::start_with(
        &format!(
            "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        ),
        "limits: {shutdown_grace: 1s}\n",
    );
    let client = gw.client();
    let url = gw.url("/hang");
    let hanging = tokio::spawn(async move { client.get(url).send().await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    gw.terminate();
    let exit = gw.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        hanging.await.unwrap().is_err(),
        "the hanging request is cut at the deadline"
    );
}

/// Issue 20 item 5: SIGUSR1, SIGUSR2 (and SIGHUP before the config reload existed) killed
/// the process without draining. Every signal but SIGTERM/SIGINT is logged and ignored.
#[tokio::test]
async fn other_signals_are_ignored_and_sigint_still_drains() {
    let backend = Backend::start().await;
    let mut gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    for signal in ["USR1", "USR2", "HUP", "PIPE"] {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &gw.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} failed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gw.running_log_has(&format!("signal=\"SIG{signal}\""))
            && !gw.running_log_has(&format!("signal=SIG{signal}"))
        {
            assert!(gw.running(), "SIG{signal} killed the process");
            assert!(Instant::now() < deadline, "SIG{signal} not logged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gw.running(), "SIG{signal} killed the process");
        assert_eq!(gw.text("/after").await, "backend GET /after");
    }
    // SIGINT stops gracefully, like SIGTERM: an in-flight request still completes.
    let slow = tokio::spawn({
        let client = gw.client();
        let url = gw.url("/slow?sleep_ms=1000");
        async move { client.get(url).send().await?.text().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.count() < 5 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ok = std::process::Command::new("kill")
        .args(["-INT", &gw.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let body = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(body, "backend GET /slow?sleep_ms=1000");
    let exit = gw.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit}");
    assert!(gw.running_log_has("SIGINT received"));
}

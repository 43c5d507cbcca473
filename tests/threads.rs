//! The serving threads (`server/threads.rs`): one single-threaded runtime per core, all
//! accepting from the one listening socket. Connections spread over them, each thread keeps
//! its own idle upstream connections, and SIGTERM drains every thread and loses none of their
//! access lines.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Backend, Gateway};

/// The gateway's serving threads other than the first, with the writes each has made.
fn serving_threads(pid: u32) -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the gateway's threads") {
        let dir = task.expect("a thread").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = name.trim().to_owned();
        if !name.starts_with("oauthgate/") {
            continue;
        }
        // Write-family system calls: a thread that answered requests made some; one that
        // only woke to race for a connection did not.
        let io = std::fs::read_to_string(dir.join("io")).unwrap_or_default();
        let writes = io
            .lines()
            .find_map(|l| l.strip_prefix("syscw:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        threads.push((name, writes));
    }
    threads.sort();
    threads
}

#[tokio::test]
async fn connections_spread_over_the_serving_threads_and_sigterm_loses_no_line() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: data\n\
         tls: {{self_signed: true}}\nlimits: {{shutdown_grace: 2s}}\n\
         gateway:\n  routes:\n    - {{prefix: /, upstream: {}, login: none}}\n",
        backend.url()
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write config");
    let mut command = Command::new(common::bin());
    command
        .arg("--config")
        .arg(&path)
        .env("TOKIO_WORKER_THREADS", "4");
    let mut gw = Gateway::spawn_command(dir.path().to_owned(), Some(dir), command);

    // They start once the server announced itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let names = loop {
        let names: Vec<String> = serving_threads(gw.pid()).into_iter().map(|t| t.0).collect();
        if names.len() >= 3 || std::time::Instant::now() > deadline {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        names,
        ["oauthgate/1", "oauthgate/2", "oauthgate/3"],
        "TOKIO_WORKER_THREADS=4: the first thread and three more"
    );

    // 16 clients at once, each on a keep-alive connection of its own, 25 requests each.
    let clients = 16;
    let each: usize = 25;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = gw.client();
        let url = gw.url(&format!("/c{c}"));
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..each {
                let res = client.get(&url).send().await.expect("request");
                if res.status() == 200 && res.bytes().await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("client"), each);
    }
    // Connections arrive in a burst; more than the first thread took some of them.
    let spread = serving_threads(gw.pid());
    eprintln!("writes per serving thread: {spread:?}");
    assert!(
        spread.iter().any(|(_, writes)| *writes >= each as u64),
        "no thread beside the first served a connection: {spread:?}"
    );

    gw.terminate();
    assert!(gw.wait_exit(Duration::from_secs(15)).success());
    let log = gw.log_when("the drain was not logged", |log| {
        log.iter()
            .any(|l| l.contains("all connections drained") || l.contains("grace period over"))
    });
    // Every thread handed its batch of access lines in before the process ended.
    for c in 0..clients {
        let lines = log
            .iter()
            .filter(|l| l.contains(" access: ") && l.contains(&format!(" path=/c{c} ")))
            .count();
        assert_eq!(
            lines,
            each,
            "access lines of client {c}:\n{}",
            log.join("\n")
        );
    }
}

//! Helpers for the reload tests: edit a running process's config file, read its reload
//! counters, wait (bounded) for a change to show, and keep load going meanwhile.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::Gateway;

/// Writes the new config the way editors and deploy tools do: a new file renamed over the old.
pub fn write_config(gw: &Gateway, text: &str) {
    let tmp = gw.dir.join("config.yaml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, gw.dir.join("config.yaml")).unwrap();
}

pub fn read_config(gw: &Gateway) -> String {
    std::fs::read_to_string(gw.dir.join("config.yaml")).unwrap()
}

pub async fn reloads(gw: &Gateway, result: &str) -> u64 {
    let series = format!("oauthgate_config_reloads_total{{result=\"{result}\"}} ");
    let text = gw.scrape().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

/// Polls `ok` until it holds, for at most `limit`; returns how long that took.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut ok: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if ok().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `text` on the WebSocket and expects it back.
pub async fn echo<S>(ws: &mut S, text: &str, echoes: &AtomicUsize)
where
    S: futures_util::Sink<Message>
        + futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
    S::Error: std::fmt::Debug,
{
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("echo in time")
        .expect("the WebSocket is open")
        .unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), text);
    echoes.fetch_add(1, Relaxed);
}

/// A client that sends requests one after another until `stop`, counting failures.
pub fn keep_requesting(
    client: reqwest::Client,
    url: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let (mut sent, mut failures) = (0, Vec::new());
        // Bounded: at most this many, whatever happens to `stop`.
        while !stop.load(Relaxed) && sent < 200_000 {
            sent += 1;
            match client.get(&url).send().await {
                Ok(res) if res.status() == 200 => {
                    if res.bytes().await.is_err() {
                        failures.push("body cut".into());
                    }
                }
                Ok(res) => failures.push(format!("status {}", res.status())),
                Err(e) => failures.push(format!("{e:?}")),
            }
        }
        (sent, failures)
    })
}

/// An HTTP/1.1 upstream (keep-alive) that counts the connections it accepted.
pub async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

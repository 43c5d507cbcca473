//! Bodies stream through the gateway (100 MB each way without the gateway's memory growing),
//! and WebSocket upgrades are tunnelled.

mod common;

use std::time::Duration;

use common::client::{connect, tls_config};
use common::{Backend, Gateway};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const HUNDRED_MB: u64 = 100 * 1024 * 1024;
/// How much the gateway's peak RSS may grow while moving 100 MB.
const GROWTH_LIMIT_KB: u64 = 8 * 1024;

async fn setup() -> (Gateway, Backend) {
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    ));
    (gw, backend)
}

/// Warms the process up (connection pools, TLS buffers) so the baseline is honest.
async fn warm_up(gw: &Gateway, client: &reqwest::Client) {
    let res = client
        .get(gw.url("/download?bytes=1048576"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().len(), 1 << 20);
}

/// The gateway's peak RSS grew by less than [`GROWTH_LIMIT_KB`] since `before` (kB).
fn assert_small_growth(gw: &Gateway, before: u64, version: reqwest::Version) {
    let peak = gw.memory_kb("VmHWM");
    let growth = peak.saturating_sub(before);
    eprintln!("{version:?}: peak RSS {peak} kB, grew by {growth} kB");
    assert!(
        growth < GROWTH_LIMIT_KB,
        "{version:?}: peak RSS grew by {growth} kB"
    );
}

#[tokio::test]
async fn a_100mb_download_streams_in_constant_memory() {
    let (gw, _backend) = setup().await;
    for client in gw.both_protocols() {
        warm_up(&gw, &client).await;
        let before = gw.memory_kb("VmHWM");
        let res = client
            .get(gw.url(&format!("/download?bytes={HUNDRED_MB}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let version = res.version();
        let mut stream = res.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            total += chunk.unwrap().len() as u64;
        }
        assert_eq!(total, HUNDRED_MB, "{version:?}");
        assert_small_growth(&gw, before, version);
    }
}

#[tokio::test]
async fn a_100mb_upload_streams_in_constant_memory() {
    let (gw, _backend) = setup().await;
    for client in gw.both_protocols() {
        warm_up(&gw, &client).await;
        let before = gw.memory_kb("VmHWM");
        let chunk = bytes::Bytes::from(vec![7u8; 64 * 1024]);
        let chunks = (0..HUNDRED_MB / chunk.len() as u64)
            .map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let res = client
            .post(gw.url("/upload"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let version = res.version();
        assert_eq!(
            res.text().await.unwrap(),
            HUNDRED_MB.to_string(),
            "{version:?}"
        );
        assert_small_growth(&gw, before, version);
    }
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    let (gw, backend) = setup().await;
    let tls = connect(gw.addr, tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/ws", gw.addr.port());
    let (mut ws, res) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(res.status(), 101);
    for text in ["hello", "second message", &"x".repeat(70_000)] {
        ws.send(Message::text(text)).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo in time")
            .expect("a message")
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_data().as_ref(), &[0u8, 1, 2, 255]);
    ws.close(None).await.unwrap();
    let seen = backend.last();
    assert_eq!(seen.target, "/ws");
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert!(!seen.headers.contains_key("x-user-info"));
}

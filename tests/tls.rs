//! The TLS listener: ALPN h2 and http/1.1, a pinned self-signed certificate that is generated
//! once and reused, certificate files reloaded without a restart, garbage refused.

mod common;

use std::time::{Duration, Instant};

use common::client::{connect, get, tls_config};
use common::{Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn routes(backend: &Backend) -> String {
    format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
        backend.url()
    )
}

#[tokio::test]
async fn alpn_offers_h2_and_http11_and_both_serve() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&routes(&backend));
    let cert = gw.cert_pem();
    for (offer, want) in [
        (&[&b"h2"[..], b"http/1.1"][..], &b"h2"[..]),
        (&[&b"http/1.1"[..]][..], &b"http/1.1"[..]),
    ] {
        let tls = connect(gw.addr, tls_config(&cert, offer)).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(want));
        let version = tls.get_ref().1.protocol_version().unwrap();
        assert!(
            matches!(
                version,
                rustls::ProtocolVersion::TLSv1_3 | rustls::ProtocolVersion::TLSv1_2
            ),
            "{version:?}"
        );
    }
    let h2 = gw.client().get(gw.url("/a")).send().await.unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.text().await.unwrap(), "backend GET /a");
    let h1 = gw.client_builder().http1_only().build().unwrap();
    let res = h1.get(gw.url("/b")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.text().await.unwrap(), "backend GET /b");
}

#[tokio::test]
async fn tls12_only_clients_are_served_and_unpinned_clients_refuse_the_cert() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&routes(&backend));
    let tls12 = gw
        .client_builder()
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(tls12.get(gw.url("/")).send().await.unwrap().status(), 200);

    // A client that trusts the usual roots, not this self-signed certificate, must fail.
    let other = reqwest::Client::builder()
        .resolve("localhost", gw.addr)
        .build()
        .unwrap();
    assert!(other.get(gw.url("/")).send().await.is_err());
}

#[tokio::test]
async fn the_self_signed_certificate_is_generated_once_and_reused() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&routes(&backend));
    let first = gw.cert_pem();
    let key = gw.data_dir().join("tls/localhost.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode {mode:o}");
    }
    let gw = gw.restart();
    assert_eq!(
        gw.cert_pem(),
        first,
        "a restart must reuse the generated certificate"
    );
    assert_eq!(
        gw.client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn certificate_files_are_reloaded_without_a_restart() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let write_cert = |name: &str| {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), name.to_owned()])
            .unwrap();
        std::fs::write(dir.path().join("cert.pem"), c.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), c.signing_key.serialize_pem()).unwrap();
        c.cert.pem().into_bytes()
    };
    let first = write_cert("first.test");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: data\n\
             tls: {{cert: cert.pem, key: key.pem, reload_interval: 200ms}}\ngateway:\n{}",
            routes(&backend)
        ),
    )
    .unwrap();
    let gw = Gateway::spawn(dir.path().to_owned(), None, &config);
    assert_eq!(get(gw.addr, &first, "/", "").await.status, 200);

    // mtime granularity: make sure the new files look newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = write_cert("second.test");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(tls) = connect(gw.addr, tls_config(&second, &[b"http/1.1"])).await {
            drop(tls);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old certificate is no longer trusted by a client pinning it.
    assert!(connect(gw.addr, tls_config(&first, &[b"http/1.1"]))
        .await
        .is_err());
    assert!(gw
        .log()
        .iter()
        .any(|l| l.contains("TLS certificate reloaded")));
}

#[tokio::test]
async fn garbage_and_plaintext_are_dropped_and_the_gateway_keeps_serving() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&routes(&backend));
    let payloads: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello",
        &[0xffu8; 4096],
        b"\x16\x03\x03\xff\xff",
    ];
    for payload in payloads {
        let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let _ = tcp.write_all(payload).await;
        let mut buf = vec![0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf)).await;
        let read = read.expect("the gateway must close or answer, not hang");
        if let Ok(n) = read {
            assert!(!buf[..n].starts_with(b"HTTP/"), "plaintext HTTP was served");
        }
    }
    assert_eq!(get(gw.addr, &gw.cert_pem(), "/", "").await.status, 200);
}

//! A raw HTTP/1.1-over-TLS client, for request targets that URL libraries would normalise away
//! (`/%2e%2e/x`, `/a/../b`, `//x`) and for malformed requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A parsed response: status, lower-cased headers, body bytes.
#[derive(Debug, PartialEq)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// TLS client config trusting only `cert_pem`, offering `alpn`.
pub fn tls_config(cert_pem: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Opens a TLS connection to `addr` for server name `localhost`.
pub async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    connect_as(addr, config, "localhost").await
}

/// Opens a TLS connection to `addr` sending `name` as the server name (SNI).
pub async fn connect_as(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// Sends `head` (request line and headers; `Connection: close` is added) and reads the whole
/// response until the server closes.
pub async fn request(addr: SocketAddr, cert_pem: &[u8], head: &str) -> RawResponse {
    let mut tls = connect(addr, tls_config(cert_pem, &[b"http/1.1"]))
        .await
        .expect("connect");
    let head = head.trim_end_matches("\r\n");
    let request = format!("{head}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut buf)).await;
    match read {
        Ok(Ok(_)) => {}
        // A peer that closes without close_notify still gave us its bytes.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Ok(Err(e)) => panic!("read: {e}"),
        Err(_) => panic!("no response within 20s to {head:?}"),
    }
    parse(&buf)
}

/// `GET path` with a Host header.
pub async fn get(
    addr: SocketAddr,
    cert_pem: &[u8],
    path: &str,
    extra_headers: &str,
) -> RawResponse {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    head.push_str(extra_headers);
    request(addr, cert_pem, &head).await
}

pub fn parse(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(len) = headers_len(&headers) {
        body.truncate(len);
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

fn headers_len(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
}

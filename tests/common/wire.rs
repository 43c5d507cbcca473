//! A raw HTTP/1.1-over-TLS keep-alive connection to a gateway that reads one response after
//! another off the wire, with a length or chunked, keeping what it read past each.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::client::{connect, tls_config, RawResponse as Res};
use super::Gateway;

/// A new HTTP/1.1 connection to `gw`.
pub async fn open(gw: &Gateway) -> Conn {
    let tls = connect(gw.addr, tls_config(&gw.cert_pem(), &[b"http/1.1"]))
        .await
        .expect("connect");
    Conn {
        tls,
        buf: Vec::new(),
    }
}

/// Without the headers that differ between any two answers (the date, the request id).
pub fn comparable(mut res: Res) -> Res {
    res.headers
        .retain(|(k, _)| k != "date" && k != "x-request-id");
    res
}

/// A client connection and the bytes read past the last response.
pub struct Conn {
    pub tls: TlsStream<TcpStream>,
    pub buf: Vec<u8>,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Conn {
    pub async fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).await.expect("write");
    }

    /// Reads more; `false` at the end of the stream.
    pub async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(WAIT, self.tls.read(&mut chunk)).await {
            Err(_) => panic!("nothing read within {WAIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The bytes up to and including `end`, once read.
    pub async fn through(&mut self, end: &[u8]) -> Vec<u8> {
        loop {
            if let Some(at) = self.buf.windows(end.len()).position(|w| w == end) {
                return self.buf.drain(..at + end.len()).collect();
            }
            assert!(self.fill().await, "closed; so far {:?}", self.text());
        }
    }

    pub async fn exactly(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "closed mid-body");
        }
        self.buf.drain(..n).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// One response; `head` if it answers a HEAD request.
    pub async fn response(&mut self, head: bool) -> Res {
        let raw = self.through(b"\r\n\r\n").await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut lines = text.trim_end().split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1));
        let status = status.and_then(|s| s.parse().ok()).expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut res = Res {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return res;
        }
        if res.header("transfer-encoding") == Some("chunked") {
            loop {
                let line = self.through(b"\r\n").await;
                let size = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
                let size = usize::from_str_radix(&size, 16).expect("chunk size");
                if size == 0 {
                    assert_eq!(self.through(b"\r\n").await, b"\r\n", "no trailers");
                    return res;
                }
                let data = self.exactly(size + 2).await;
                res.body.extend_from_slice(&data[..size]);
            }
        }
        let len = res.header("content-length").expect("a length").parse();
        res.body = self.exactly(len.expect("a number")).await;
        res
    }

    /// Whether the server closes the connection within `limit` sending nothing more.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(limit, self.tls.read(&mut chunk)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => self.buf.is_empty(),
            Ok(Ok(n)) => panic!("more bytes: {:?}", String::from_utf8_lossy(&chunk[..n])),
        }
    }
}

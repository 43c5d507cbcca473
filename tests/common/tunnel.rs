//! What crosses an upgrade: a raw-socket upstream that records every byte it receives and
//! answers every upgrade with 101, a client side that reads one response head off a raw TLS
//! stream and then keeps the stream, and just enough HTTP/2 (RFC 9113 frames, RFC 7541
//! literal headers) to send a request through an h2c tunnel and read its body back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the raw upstream received, connection by connection, byte for byte.
pub struct RawUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Sent by the raw upstream once it has read the probe through a tunnel.
pub const TUNNEL_OPEN: &str = "RAW-UPSTREAM-GOT-THE-PROBE";
/// A WebSocket accept value that matches no key.
pub const WRONG_ACCEPT: &str = "d3JvbmctYWNjZXB0LXZhbHVlIQ==";

impl RawUpstream {
    /// Per connection: reads one request head. With `Sec-WebSocket-Key` it answers 101 with
    /// [`WRONG_ACCEPT`]; with any other `Upgrade` it answers 101 for that protocol; then it
    /// records whatever else arrives, and answers [`TUNNEL_OPEN`] and closes once it saw
    /// `PROBE-END`. A request without `Upgrade` gets a plain `200 plain` and a close.
    pub async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let slot = {
                        let mut all = log.lock().unwrap();
                        all.push(Vec::new());
                        all.len() - 1
                    };
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; 8192];
                    let mut answered = false;
                    loop {
                        let n = match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        got.extend_from_slice(&buf[..n]);
                        log.lock().unwrap()[slot].extend_from_slice(&buf[..n]);
                        if !answered {
                            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                                continue;
                            };
                            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                            let header = |name: &str| {
                                head.lines()
                                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                                    .map(|v| v.trim().to_owned())
                            };
                            let answer = if header("sec-websocket-key").is_some() {
                                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {WRONG_ACCEPT}\r\n\r\n")
                            } else if let Some(protocol) = header("upgrade") {
                                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\n\r\n")
                            } else {
                                let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain").await;
                                return;
                            };
                            answered = true;
                            if tcp.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        if got.windows(9).any(|w| w == b"PROBE-END") {
                            let _ = tcp.write_all(TUNNEL_OPEN.as_bytes()).await;
                            let _ = tcp.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every byte received so far, each connection's as (lossy) text.
    pub fn received(&self) -> Vec<String> {
        let all = self.received.lock().unwrap();
        all.iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }
}

/// Reads one response head (status line and headers) off `io`, byte by byte so nothing after
/// it is consumed; returns the status and the lower-cased head.
pub async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(20), io.read(&mut byte)).await;
        match read {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!(
                "no complete response head ({other:?}); got {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, head)
}

/// Reads until the peer closes (or 20 s pass); a close without TLS close_notify is fine.
pub async fn read_rest<S: AsyncRead + Unpin>(io: &mut S) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), io.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The value of header `name` (lower case) in a head from [`read_head`].
pub fn head_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// RFC 7541 §5.1 integer with a 7-bit prefix (string lengths, no Huffman).
fn hpack_len(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// RFC 7541 §6.2.2: every field a literal without indexing, with a literal name.
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        hpack_len(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_len(&mut out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Speaks HTTP/2 on a stream the server already switched to h2c (its stream 1 is the upgraded
/// request): sends the preface and one GET on stream 3 with `fields` as its headers (after the
/// pseudo-headers), and returns that stream's body, or the frame that ended it early.
pub async fn h2c_get<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<String, String> {
    let mut all = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
    ];
    all.extend_from_slice(fields);
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, 0x1 | 0x4, 3, &hpack(&all)));
    io.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut head = [0u8; 9];
        tokio::time::timeout_at(deadline, io.read_exact(&mut head))
            .await
            .map_err(|_| "no HTTP/2 answer within 20 s".to_owned())?
            .map_err(|e| format!("HTTP/2 read: {e}"))?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        tokio::time::timeout_at(deadline, io.read_exact(&mut payload))
            .await
            .map_err(|_| "a frame cut short".to_owned())?
            .map_err(|e| format!("HTTP/2 read: {e}"))?;
        match (kind, stream) {
            (SETTINGS, 0) if flags & 0x1 == 0 => {
                io.write_all(&frame(SETTINGS, 0x1, 0, &[]))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            (DATA, 3) => {
                let data = if flags & 0x8 != 0 && !payload.is_empty() {
                    let pad = payload[0] as usize;
                    &payload[1..payload.len().saturating_sub(pad)]
                } else {
                    &payload[..]
                };
                body.extend_from_slice(data);
                if flags & 0x1 != 0 {
                    return Ok(String::from_utf8_lossy(&body).into_owned());
                }
            }
            (HEADERS, 3) if flags & 0x1 != 0 => return Ok(String::new()),
            (RST_STREAM, 3) | (GOAWAY, _) => {
                return Err(format!("the server ended it: frame type {kind}"));
            }
            _ => {}
        }
    }
}

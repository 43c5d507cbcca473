//! The floor: the least CPU a TLS-terminating HTTP/1.1 proxy built on the same parts as
//! oauthgate (tokio, one current-thread runtime per core, rustls with ring) can spend on a
//! request. It is not a proxy anyone should run; it is the measuring stick for issue 16's
//! "where the microseconds go" (`PERF=stat FLOOR=1 bench/auth.sh`).
//!
//! Per client connection it keeps one upstream connection of its own. A request is read
//! until its head ends (no body is expected and none is checked), a fixed request is written
//! upstream, the response is read until its head and `Content-Length` bytes are in, and
//! those bytes go back to the client as they came: no header is parsed, built, checked or
//! rewritten, no session is opened, nothing is logged, there is no timeout. The system calls
//! are the same as oauthgate's (one read and one write on each side).
//!
//! ```sh
//! cargo run --release --example floor -- LISTEN UPSTREAM CERT KEY [THREADS]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, cert, key, rest @ ..] = &args[..] else {
        return Err("usage: floor LISTEN UPSTREAM CERT KEY [THREADS]".into());
    };
    let threads: usize = match rest.first() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism()?.get(),
    };
    let upstream: SocketAddr = upstream.parse()?;
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (listener, acceptor) = (listener.try_clone()?, acceptor.clone());
        handles.push(std::thread::spawn(move || {
            serve(listener, acceptor, upstream)
        }));
    }
    for handle in handles {
        handle.join().map_err(|_| "a serving thread panicked")??;
    }
    Ok(())
}

fn serve(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                loop {
                    let (tcp, _) = listener.accept().await?;
                    let acceptor = acceptor.clone();
                    tokio::task::spawn_local(async move {
                        let _ = connection(tcp, acceptor, upstream).await;
                    });
                }
            })
            .await
    })
}

async fn connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut client = acceptor.accept(tcp).await?;
    let mut backend = TcpStream::connect(upstream).await?;
    backend.set_nodelay(true)?;
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let (mut head, mut answer) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    loop {
        head.clear();
        while head_end(&head).is_none() {
            if client.read_buf(&mut head).await? == 0 {
                return Ok(());
            }
        }
        backend.write_all(request).await?;
        answer.clear();
        loop {
            if let Some(end) = head_end(&answer) {
                if answer.len() >= end + content_length(&answer[..end]) {
                    break;
                }
            }
            if backend.read_buf(&mut answer).await? == 0 {
                return Ok(());
            }
        }
        client.write_all(&answer).await?;
        client.flush().await?;
    }
}

/// Where the head ends (after its blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The head's `Content-Length` (0 when it has none or it is not a number).
fn content_length(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"content-length")
                .then(|| std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok())?
        })
        .unwrap_or(0)
}

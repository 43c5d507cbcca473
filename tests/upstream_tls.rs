//! Route options for the upstream side (SPEC §10) against the real binary: `upstream_tls`
//! (an HTTPS backend whose certificate comes from a private CA, made here with rcgen) and
//! `strip_prefix` (with the recording backend).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{Backend, Gateway};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A private CA (PEM) and a certificate it signed for `name`, with that certificate's key.
fn private_ca(name: &str) -> (String, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// An HTTPS backend on 127.0.0.1:0 serving `cert`; records the SNI and target of each
/// request it answers.
async fn https_backend(cert: &str, key: &str) -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_owned();
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let target = req.uri().to_string();
                    log.lock().unwrap().push((sni.clone(), target));
                    async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from("secure"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_private_ca_upstream_is_refused_without_upstream_tls_ca_and_served_with_it() {
    let (ca, cert, key) = private_ca("backend.internal");
    let (other_ca, _, _) = private_ca("backend.internal");
    let (addr, seen) = https_backend(&cert, &key).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.path().join("other.pem"), &other_ca).unwrap();
    let (ca_path, other_path) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    let up = format!("https://{addr}");
    let gw = Gateway::start(&format!(
        "  routes:\n\
         \x20   - {{prefix: /public-roots, upstream: \"{up}\"}}\n\
         \x20   - {{prefix: /ca, upstream: \"{up}\", upstream_tls: {{ca: \"{}\", server_name: backend.internal}}}}\n\
         \x20   - {{prefix: /other-ca, upstream: \"{up}\", upstream_tls: {{ca: \"{}\", server_name: backend.internal}}}}\n\
         \x20   - {{prefix: /wrong-name, upstream: \"{up}\", upstream_tls: {{ca: \"{}\", server_name: other.internal}}}}\n",
        ca_path.display(),
        other_path.display(),
        ca_path.display(),
    ));
    let client = gw.client();
    let get = |path: &'static str| {
        let (client, url) = (client.clone(), gw.url(path));
        async move {
            let res = client.get(url).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    // Trusted through the route's CA, verified for (and sent) its server_name; first, so
    // that a pool shared by origin would hand its connection to the routes below.
    assert_eq!(get("/ca/x").await, (200, "secure".to_owned()));
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [("backend.internal".to_owned(), "/ca/x".to_owned())]
    );
    for refused in ["/public-roots/x", "/other-ca/x", "/wrong-name/x"] {
        assert_eq!(get(refused).await.0, 502, "{refused}");
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no refused route reached the backend"
    );
    let log = gw.log_when("the hint", |l| {
        l.iter().any(|l| l.contains("upstream_tls.ca"))
    });
    assert!(log.iter().any(|l| l.contains("upstream_tls.ca")));
}

#[test]
fn upstream_tls_errors_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here").unwrap();
    let cases = [
        (
            "http://127.0.0.1:1",
            "{ca: /nonexistent/ca.pem}",
            "gateway.routes[0].upstream_tls: ",
        ),
        (
            "https://127.0.0.1:1",
            "{ca: /nonexistent/ca.pem}",
            "gateway.routes[0].upstream_tls.ca: ",
        ),
        (
            "https://127.0.0.1:1",
            &format!("{{ca: \"{}\"}}", empty.display()),
            "gateway.routes[0].upstream_tls.ca: ",
        ),
        (
            "https://127.0.0.1:1",
            "{server_name: \"a b\"}",
            "gateway.routes[0].upstream_tls.server_name: ",
        ),
        (
            "https://127.0.0.1:1",
            "{sni: x}",
            "gateway.routes[0].upstream_tls.sni: ",
        ),
    ];
    for (upstream, tls, want) in cases {
        let (code, out) = common::check(&format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost\ntls: {{self_signed: true}}\n\
             gateway:\n  routes:\n    - {{prefix: /, upstream: \"{upstream}\", upstream_tls: {tls}}}\n"
        ));
        assert_eq!(code, 64, "{tls}: {out}");
        assert!(out.contains(want), "{tls}\n  got: {out}\n  want: {want}");
    }
}

#[tokio::test]
async fn strip_prefix_sends_the_rest_of_the_path_and_keeps_the_query() {
    let backend = Backend::start().await;
    let b = backend.url();
    let gw = Gateway::start(&format!(
        "  routes:\n\
         \x20   - {{prefix: /app, upstream: \"{b}\", strip_prefix: true}}\n\
         \x20   - {{prefix: /deep/er/, upstream: \"{b}\", strip_prefix: true}}\n\
         \x20   - {{prefix: /kept, upstream: \"{b}\"}}\n"
    ));
    let client = gw.client();
    for (path, upstream) in [
        ("/app/x?q=1&r=%2F", "/x?q=1&r=%2F"),
        ("/app", "/"),
        ("/app/", "/"),
        ("/app?q", "/?q"),
        ("/app/a%20b/c%3Bd", "/a%20b/c%3Bd"),
        ("/app;jsessionid=1/x", "/x"),
        ("/app/x/../y", "/y"),
        ("/deep/er/y/", "/y/"),
        ("/kept/z", "/kept/z"),
    ] {
        let res = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(backend.last().target, upstream, "{path}");
    }
    // A redirect to a path of the app comes back under the route; others are left alone.
    for (to, location) in [
        ("/login", "/app/login"),
        ("https://example.com/x", "https://example.com/x"),
        ("//example.com/x", "//example.com/x"),
    ] {
        let res = client
            .get(gw.url(&format!("/app/redirect?to={to}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(res.headers()["location"], location, "{to}");
    }
}

//! Pebble, Let's Encrypt's ACME test server (Debian `pebble`), on free ports with a fresh CA,
//! validating real HTTP-01 and TLS-ALPN-01 challenges against the ports a test names, and
//! resolving every name to 127.0.0.1 through the test's own DNS responder.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::dns::Dns;
use super::Gateway;

/// Where a Pebble answers and what it validates against.
#[derive(Clone, Copy)]
pub struct Ports {
    /// Its ACME directory (`https://127.0.0.1:<acme>/dir`).
    pub acme: u16,
    /// The gateway's `http_listen` port, where HTTP-01 is checked.
    pub http: u16,
    /// The gateway's `listen` port, where TLS-ALPN-01 is checked.
    pub tls: u16,
}

/// A running Pebble; killed when dropped.
pub struct Pebble {
    pub ports: Ports,
    /// The PEM file to give `tls.acme.ca` (Pebble's own HTTPS certificate).
    pub ca: PathBuf,
    mgmt: u16,
    /// Its HTTPS certificate and key (PEM) and validity, to start it again as it was.
    https: (String, String),
    validity: Option<u64>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _dns: Dns,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts Pebble on `ports` (the ACME port may be one the gateway already names), issuing
    /// certificates valid for `validity` seconds (Pebble's default, five years, when `None`).
    pub async fn start(ports: Ports, validity: Option<u64>) -> Pebble {
        // Pebble's HTTPS listener needs a certificate: one of our own, trusted by tls.acme.ca.
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("pebble certificate");
        Self::start_with_cert(ports, validity, &made).await
    }

    /// Stops it (the CA goes down); [`Pebble::restart`] brings a new one up.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops this Pebble and starts a new one on the same ports with the same HTTPS
    /// certificate: the new one knows no account, order or issuing CA of the old one.
    pub async fn restart(self) -> Pebble {
        let (ports, validity, (cert, key)) = (self.ports, self.validity, self.https.clone());
        drop(self);
        Self::start_pem(ports, validity, cert, key).await
    }

    /// [`Pebble::start`] with `made` as its HTTPS certificate (one a gateway already trusts).
    pub async fn start_with_cert(
        ports: Ports,
        validity: Option<u64>,
        made: &rcgen::CertifiedKey<rcgen::KeyPair>,
    ) -> Pebble {
        Self::start_pem(
            ports,
            validity,
            made.cert.pem(),
            made.signing_key.serialize_pem(),
        )
        .await
    }

    async fn start_pem(
        ports: Ports,
        validity: Option<u64>,
        cert: String,
        key_pem: String,
    ) -> Pebble {
        super::apt_install("/usr/bin/pebble", &["pebble"], "tests/acme.rs");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("pebble-ca.pem");
        let key = dir.path().join("pebble-key.pem");
        std::fs::write(&ca, &cert).expect("write");
        std::fs::write(&key, &key_pem).expect("write");
        let mgmt = super::free_port();
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{}", ports.acme),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": ca, "privateKey": key,
            "httpPort": ports.http, "tlsPort": ports.tls,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        if let Some(seconds) = validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        let path = dir.path().join("pebble.json");
        std::fs::write(&path, config.to_string()).expect("write");
        let dns = Dns::start();
        let mut child = Command::new("/usr/bin/pebble")
            .arg("-config")
            .arg(&path)
            .arg("-dnsserver")
            .arg(dns.addr.to_string())
            // No random sleeps before validating, no randomly refused nonces, and a fresh
            // validation for every order (no reused authorizations).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let pebble = Pebble {
            ports,
            ca,
            mgmt,
            https: (cert, key_pem),
            validity,
            child,
            log,
            _dns: dns,
            _dir: dir,
        };
        pebble.wait_ready().await;
        pebble
    }

    /// The directory URL for `tls.acme.directory`.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.ports.acme)
    }

    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca).expect("read ca");
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client")
    }

    async fn wait_ready(&self) {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = client.get(self.directory()).send().await;
            if res.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not start: {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The root that issues its certificates (PEM), from the management API.
    pub async fn issuing_root(&self) -> Vec<u8> {
        let url = format!("https://127.0.0.1:{}/roots/0", self.mgmt);
        let res = self.client().get(url).send().await.expect("pebble roots");
        assert_eq!(res.status(), 200);
        res.bytes().await.expect("root").to_vec()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// What a gateway serves, checked as a client that trusts only Pebble's root would.

/// The end-entity certificate `addr` serves for `host` with ALPN `alpn`, verified against
/// `root` (PEM) by rustls, or why not.
pub async fn served(
    addr: SocketAddr,
    host: &str,
    root: &[u8],
    alpn: &[&[u8]],
) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_owned()).expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned());
    leaf.map(|c| c.to_vec())
        .ok_or_else(|| "no certificate".into())
}

/// Polls until `host`'s certificate verifies against `root` (bounded).
pub async fn issued(gw: &Gateway, pebble: &Pebble, host: &str, root: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        match served(gw.addr, host, root, &[b"http/1.1"]).await {
            Ok(der) => return der,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{host}: no verifiable certificate ({e})\ngateway: {:#?}\npebble: {:#?}",
                gw.log(),
                pebble.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The DNS names and serial of a certificate.
pub fn names_and_serial(der: &[u8]) -> (Vec<String>, String) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("x509");
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (names, cert.raw_serial_as_string())
}

/// A client that trusts only `root` and finds `a.test`/`b.test` at `addr`.
pub fn client(root: &[u8], addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root).expect("root"))
        .resolve("a.test", addr)
        .resolve("b.test", addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// GET `https://<host><path>` from `gw`, trusting only `root`: (status, body).
pub async fn fetch(root: &[u8], gw: &Gateway, host: &str, path: &str) -> (u16, String) {
    let url = format!("https://{host}:{}{path}", gw.addr.port());
    let res = client(root, gw.addr)
        .get(url)
        .send()
        .await
        .expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// A bounded client: GETs on `hosts` in turn, a new connection (and handshake) every fifth
/// request, until `stop` is set or `max` requests are done: (answered 200, failed).
pub async fn load(
    root: Vec<u8>,
    addr: SocketAddr,
    hosts: &'static [&'static str],
    stop: Arc<AtomicBool>,
    max: usize,
) -> (usize, Vec<String>) {
    let (mut ok, mut failed) = (0, Vec::new());
    let mut https = client(&root, addr);
    for i in 0..max {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if i % 5 == 0 {
            https = client(&root, addr);
        }
        let url = format!("https://{}:{}/load", hosts[i % hosts.len()], addr.port());
        match https.get(url).send().await {
            Ok(res) if res.status() == 200 => ok += 1,
            Ok(res) => failed.push(res.status().to_string()),
            Err(e) => failed.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (ok, failed)
}

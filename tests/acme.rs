//! Automatic HTTPS against a real ACME server (Debian's Pebble, which validates every
//! challenge itself): certificates per host by SNI through HTTP-01 and TLS-ALPN-01, renewal of
//! short-lived ones, stored certificates served with the CA down, the 503 page while a host
//! waits, and `http_listen`'s redirects.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pebble::{fetch, issued, load, names_and_serial, served, Pebble, Ports};
use common::{free_port, Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes the config and starts the gateway: `public_url` host `a.test`, a route for host
/// `b.test` and one for any host, certificates from `directory`.
fn gateway(
    ports: Ports,
    directory: &str,
    ca: &std::path::Path,
    acme: &str,
    backend: &Backend,
) -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    // A copy: the gateway outlives the Pebble whose certificate this is.
    let copy = dir.path().join("acme-ca.pem");
    std::fs::copy(ca, &copy).expect("copy the CA");
    let config = format!(
        "listen: 127.0.0.1:{tls}\nhttp_listen: 127.0.0.1:{http}\npublic_url: https://a.test:{tls}\n\
         data_dir: data\nmetrics: {{listen: \"127.0.0.1:0\"}}\n\
         tls:\n  acme: {{directory: \"{directory}\", ca: \"{ca}\", email: ops@a.test, {acme}}}\n\
         gateway:\n  routes:\n    - {{host: b.test, prefix: /, upstream: \"{up}\"}}\n\
         \x20   - {{prefix: /, upstream: \"{up}\"}}\n",
        tls = ports.tls,
        http = ports.http,
        ca = copy.display(),
        up = backend.url(),
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write config");
    Gateway::spawn(dir.path().to_owned(), Some(dir), &path)
}

/// Pebble (certificates valid `validity` seconds), its issuing root, a backend and a gateway
/// answering `challenge`.
async fn with_pebble(
    validity: Option<u64>,
    challenge: &str,
) -> (Ports, Pebble, Vec<u8>, Backend, Gateway) {
    let ports = ports();
    let pebble = Pebble::start(ports, validity).await;
    let root = pebble.issuing_root().await;
    let backend = Backend::start().await;
    let acme = format!("challenge: {challenge}");
    let gw = gateway(ports, &pebble.directory(), &pebble.ca, &acme, &backend);
    (ports, pebble, root, backend, gw)
}

fn ports() -> Ports {
    Ports {
        acme: free_port(),
        http: free_port(),
        tls: free_port(),
    }
}

/// One raw HTTP/1.1 exchange on the plain listener: (status, Location).
async fn plain(port: u16, head: &str) -> (u16, Option<String>) {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "{}\r\nConnection: close\r\n\r\n",
        head.trim_end_matches("\r\n")
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.expect("read");
    let res = common::client::parse(&buf);
    (res.status, res.header("location").map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread")]
async fn http01_certificates_per_host_are_served_by_sni_and_kept_with_the_ca_down() {
    let (ports, mut pebble, root, _backend, gw) = with_pebble(None, "http-01").await;

    let a = issued(&gw, &pebble, "a.test", &root).await;
    let b = issued(&gw, &pebble, "b.test", &root).await;
    assert_eq!(names_and_serial(&a).0, ["a.test"]);
    assert_eq!(names_and_serial(&b).0, ["b.test"]);

    let (status, body) = fetch(&root, &gw, "a.test", "/x").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "backend GET /x");

    // http_listen: a 308 to the same host and path, the listener's port kept; no redirect to
    // a host without a certificate here; a challenge token not pending is not answered.
    let (status, location) = plain(ports.http, "GET /p/q?r=1 HTTP/1.1\r\nHost: a.test").await;
    assert_eq!(
        (status, location.as_deref()),
        (308, Some(&*format!("https://a.test:{}/p/q?r=1", ports.tls)))
    );
    assert_eq!(
        plain(ports.http, "GET / HTTP/1.1\r\nHost: evil.test").await,
        (404, None)
    );
    assert_eq!(
        plain(ports.http, "GET / HTTP/1.1\r\nHost: a.test@evil.test").await,
        (400, None)
    );
    let token = plain(
        ports.http,
        "GET /.well-known/acme-challenge/nope HTTP/1.1\r\nHost: a.test",
    )
    .await;
    assert_eq!(token, (404, None));

    // What was stored: one account, each host's pair, all owner-only.
    use std::os::unix::fs::PermissionsExt;
    let stored = gw.data_dir().join("acme");
    let mut names: Vec<String> = std::fs::read_dir(&stored)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let account = names.iter().filter(|n| n.starts_with("account-")).count();
    let pairs = ["a.test.crt", "a.test.key", "b.test.crt", "b.test.key"];
    assert!(account == 1 && names.len() == 5, "{names:?}");
    assert!(
        pairs.iter().all(|p| names.iter().any(|n| n == p)),
        "{names:?}"
    );
    for name in &names {
        let mode = std::fs::metadata(stored.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }

    let scrape = gw.scrape().await;
    assert!(
        scrape.contains("oauthgate_acme_orders_total{result=\"ok\"} 2"),
        "{scrape}"
    );
    assert!(
        scrape.contains("oauthgate_acme_orders_total{result=\"error\"} 0"),
        "{scrape}"
    );
    for host in ["a.test", "b.test"] {
        let prefix = "oauthgate_tls_certificate_expiry_timestamp_seconds{file=";
        let line = scrape
            .lines()
            .find(|l| l.starts_with(prefix) && l.contains(&format!("host=\"{host}\"")));
        assert!(line.is_some(), "{host}: {scrape}");
    }

    // The CA goes away; a restarted gateway serves the stored certificates at once.
    pebble.stop();
    let gw = gw.restart();
    assert_eq!(served(gw.addr, "a.test", &root, &[b"h2"]).await.unwrap(), a);
    assert_eq!(served(gw.addr, "b.test", &root, &[b"h2"]).await.unwrap(), b);
    let (status, body) = fetch(&root, &gw, "b.test", "/y").await;
    assert_eq!(status, 200, "{body}");
    let hosts = &["a.test", "b.test"];
    let (ok, failed) = load(root.clone(), gw.addr, hosts, Arc::default(), 100).await;
    assert!(
        ok == 100 && failed.is_empty(),
        "{ok} ok, failed: {failed:?}"
    );
    assert!(gw
        .log()
        .iter()
        .any(|l| l.contains("serving the stored ACME certificate")));

    // A new CA on the same address (Pebble forgets everything): b.test's pair is gone, its
    // order with the stored account is refused (accountDoesNotExist), and the retry registers
    // a new account; a.test keeps the first CA's certificate.
    let pebble = pebble.restart().await;
    let new_root = pebble.issuing_root().await;
    for file in ["b.test.crt", "b.test.key"] {
        std::fs::remove_file(gw.data_dir().join("acme").join(file)).unwrap();
    }
    let gw = gw.restart();
    issued(&gw, &pebble, "b.test", &new_root).await;
    assert_eq!(served(gw.addr, "a.test", &root, &[b"h2"]).await.unwrap(), a);
    let log = gw.log();
    assert!(
        log.iter().any(|l| l.contains("accountDoesNotExist")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("ACME account registered")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_alpn01_certificates_are_issued_on_the_listener_and_renewed_when_short_lived() {
    // Certificates of about 12 s (Pebble ends them a second early): renewed every 7 or 8 s.
    let (_, pebble, root, _backend, gw) = with_pebble(Some(12), "tls-alpn-01").await;

    let first = issued(&gw, &pebble, "a.test", &root).await;
    let (names, serial) = names_and_serial(&first);
    assert_eq!(names, ["a.test"]);
    // No challenge is pending now: a validation handshake gets nothing at all.
    let alpn = served(gw.addr, "a.test", &root, &[b"acme-tls/1"]).await;
    assert!(alpn.is_err(), "{alpn:?}");
    // Offered among others, `acme-tls/1` is not a validation: the real certificate.
    let mixed = served(gw.addr, "a.test", &root, &[b"h2", b"acme-tls/1"]).await;
    assert_eq!(mixed.as_deref(), Ok(&first[..]));

    // A bounded client the whole time: no request fails while certificates are swapped.
    let stop = Arc::new(AtomicBool::new(false));
    let hosts = &["a.test", "b.test"];
    let client = tokio::spawn(load(root.clone(), gw.addr, hosts, stop.clone(), 5000));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = served(gw.addr, "a.test", &root, &[b"http/1.1"]).await;
        if let Ok(der) = now {
            if names_and_serial(&der).1 != serial {
                break;
            }
        }
        assert!(Instant::now() < deadline, "not renewed: {:#?}", gw.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, body) = fetch(&root, &gw, "a.test", "/z").await;
    assert_eq!(status, 200, "{body}");
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.await.unwrap();
    assert!(ok > 50 && failed.is_empty(), "{ok} ok, failed: {failed:?}");
    let log = gw.log();
    // The renewal order started at two thirds of the first certificate's life (whole seconds
    // from notBefore to notAfter), before it expired, and once: not in a loop.
    let at = |what: &str| -> Vec<std::time::SystemTime> {
        log.iter()
            .filter(|l| l.contains(what) && l.contains("host=\"a.test\""))
            .filter_map(|l| humantime::parse_rfc3339(l.split_whitespace().next()?).ok())
            .collect()
    };
    let started = at("ACME order started");
    assert!(started.len() >= 2, "{log:#?}");
    let (_, cert) = x509_parser::parse_x509_certificate(&first).unwrap();
    let (from, to) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    let life = Duration::from_secs(u64::try_from(to - from).unwrap());
    let not_before = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(from).unwrap());
    let after = started[1].duration_since(not_before).unwrap();
    let two_thirds = life * 2 / 3;
    assert!(
        after + Duration::from_secs(1) >= two_thirds && after < life,
        "{after:?} of {life:?}"
    );
    let renewals = log
        .iter()
        .filter(|l| l.contains("ACME certificate obtained") && l.contains("a.test"));
    assert!(renewals.count() <= 3, "{log:#?}");

    // A reload may change routes, not `tls.acme`: that one is refused, and serving goes on.
    use common::reload::{read_config, reloads, within, write_config};
    let text = read_config(&gw);
    write_config(
        &gw,
        &text.replace("email: ops@a.test", "email: other@a.test"),
    );
    within(Duration::from_secs(10), "refused", || async {
        reloads(&gw, "error").await == 1
    })
    .await;
    assert!(gw
        .log()
        .iter()
        .any(|l| l.contains("tls.acme cannot change")));
    let more = format!("{text}    - {{prefix: /more, upstream: \"http://127.0.0.1:9\"}}\n");
    write_config(&gw, &more);
    within(Duration::from_secs(10), "reloaded", || async {
        reloads(&gw, "ok").await == 1
    })
    .await;
    let (status, body) = fetch(&root, &gw, "a.test", "/z").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_gets_a_503_page_until_its_certificate_arrives_after_a_retry() {
    let ports = ports();
    let backend = Backend::start().await;
    // The CA is not there yet: the gateway starts anyway, on its temporary certificate.
    let ca = tempfile::NamedTempFile::new().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(ca.path(), made.cert.pem()).unwrap();
    let directory = format!("https://127.0.0.1:{}/dir", ports.acme);
    let gw = gateway(ports, &directory, ca.path(), "challenge: http-01", &backend);

    let insecure = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("a.test", gw.addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for h2 in [false, true] {
        let req = insecure.get(format!("https://a.test:{}/x", ports.tls));
        let req = if h2 {
            req.version(reqwest::Version::HTTP_2)
        } else {
            req
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "30");
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("Certificate being obtained"));
    }
    assert_eq!(backend.count(), 0);
    gw.log_when("a failed order", |log| {
        log.iter().any(|l| l.contains("ACME order failed"))
    });

    // The CA comes up (Pebble's own certificate is the one `tls.acme.ca` names).
    let pebble = Pebble::start_with_cert(ports, None, &made).await;
    let root = pebble.issuing_root().await;
    issued(&gw, &pebble, "a.test", &root).await;
    let (status, body) = fetch(&root, &gw, "a.test", "/x").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(backend.count(), 1);
}

#[tokio::test]
async fn http_listen_without_acme_redirects_to_https_on_the_listener_port() {
    let http = free_port();
    let gw = Gateway::start_with(
        "  routes:\n    - {prefix: /, upstream: \"http://127.0.0.1:9\"}\n",
        &format!("http_listen: 127.0.0.1:{http}"),
    );
    let https = gw.addr.port();
    let cases = [
        (
            "GET /a/b?c=d HTTP/1.1\r\nHost: example.org",
            308,
            Some(format!("https://example.org:{https}/a/b?c=d")),
        ),
        (
            "POST /form HTTP/1.1\r\nHost: Example.ORG:80\r\nContent-Length: 0",
            308,
            Some(format!("https://example.org:{https}/form")),
        ),
        (
            "GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: [::1]:80",
            308,
            Some(format!(
                "https://[::1]:{https}/.well-known/acme-challenge/t"
            )),
        ),
        ("GET / HTTP/1.1\r\nHost: a@b", 400, None),
        ("GET / HTTP/1.1\r\nHost: a/b", 400, None),
        ("GET / HTTP/1.0", 400, None),
        // Review finding (session 6): an absolute-form target naming another host than
        // `Host` was a redirect there, which a cache keyed on `Host` would keep.
        (
            "GET http://evil.example/ HTTP/1.1\r\nHost: victim.example",
            400,
            None,
        ),
        (
            "GET http://Example.org/x HTTP/1.1\r\nHost: example.org:80",
            308,
            Some(format!("https://example.org:{https}/x")),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example",
            400,
            None,
        ),
    ];
    for (head, status, location) in cases {
        assert_eq!(plain(http, head).await, (status, location), "{head}");
    }
}

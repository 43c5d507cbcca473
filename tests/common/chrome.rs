//! Headless Chromium (Debian's `chromium` and `chromium-driver`, installed by the harness when
//! missing) driven over WebDriver with `fantoccini`, and the test certificate it trusts.
//!
//! Chromium gets a fresh profile and trusts exactly one key: every HTTPS server of a browser
//! test uses the certificate from [`TestCert`], and Chromium is told to accept that key's
//! SPKI hash (`--ignore-certificate-errors-spki-list`), nothing else.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};

/// A certificate for localhost and its key, written as PEM files.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// base64(SHA-256(SubjectPublicKeyInfo)), what Chromium pins.
    pub spki: String,
}

impl TestCert {
    pub fn new() -> TestCert {
        let c = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let spki = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(c.signing_key.subject_public_key_info()));
        TestCert {
            cert_pem: c.cert.pem(),
            key_pem: c.signing_key.serialize_pem(),
            spki,
        }
    }

    /// Writes `<name>.crt` and `<name>.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let (crt, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&crt, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (crt, key)
    }
}

fn ensure_installed() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists() {
            return;
        }
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-q", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install() {
            let _ = Command::new("apt-get").args(["update", "-q"]).status();
            assert!(install(), "cannot install chromium and chromium-driver");
        }
    });
}

pub struct Chrome {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Chrome {
    /// Starts chromedriver and a headless Chromium trusting `cert`'s key only.
    pub async fn start(cert: &TestCert) -> Chrome {
        ensure_installed();
        let port = super::free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let status = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(&status).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--window-size=1100,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={}", cert.spki),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Chrome {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Waits (bounded) until the page's URL satisfies `pred`; returns it.
    pub async fn wait_url(&self, what: &str, pred: impl Fn(&url::Url) -> bool) -> url::Url {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.client.current_url().await.unwrap();
            if pred(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "never reached {what}; at {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) for an element matching `css`.
    pub async fn wait_css(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Saves a PNG screenshot as tests/screenshots/<name>.png (ignored by git) to look at.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Ends the session (and with it the browser), then the driver (in `Drop`).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A test that failed never closed its session: end the browser it left behind,
        // recognisable by its own profile folder. The pattern must not start with `-`, or
        // pkill reads it as an option of its own and kills nothing.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(format!("user-data-dir={}", self._profile.path().display()))
            .status();
    }
}

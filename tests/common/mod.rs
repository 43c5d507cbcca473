//! Test harness: the real `oauthgate` binary on 127.0.0.1:0, real backends, pinned-TLS clients.
#![allow(dead_code)]

pub mod backend;
pub mod caddy;
pub mod chrome;
pub mod client;
pub mod dns;
pub mod fakes;
pub mod flow;
pub mod haproxy;
pub mod idp;
pub mod image;
pub mod nginx;
pub mod oidc;
pub mod pebble;
pub mod python;
pub mod realbackends;
pub mod redis;
pub mod reload;
pub mod tunnel;
pub mod wire;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open-redirect payloads (SPEC §6) that every "where to go back to" parameter must refuse:
/// protocol-relative, backslash and tab tricks, encoded slashes, other hosts, scripts.
pub const OPEN_REDIRECTS: &[&str] = &[
    "//e.com",
    "/\\e.com",
    "\\/e.com",
    "/%09/e.com",
    "/\t/e.com",
    "%2F%2Fe.com",
    "https:e.com",
    "https://ok@e.com",
    "https://ok.e.com",
    "javascript:alert(1)",
];

#[allow(unused_imports)]
pub use backend::Backend;

/// Installs Debian `packages` (as root) unless `present` exists; once per test binary per
/// path. `why` names the tests that need them, for the panic when that fails.
pub fn apt_install(present: &str, packages: &[&str], why: &str) {
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|p| p == present) || std::path::Path::new(present).exists() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        assert!(install(), "cannot install {packages:?} (needed for {why})");
    }
    done.push(present.to_owned());
}

/// The first value of `key` in `url`'s query.
pub fn param(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_oauthgate")
}

/// A running `oauthgate` process with its own temp folder (config, data, self-signed cert).
pub struct Gateway {
    pub addr: SocketAddr,
    /// The working folder: config.yaml, data/.
    pub dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Starts a gateway whose `gateway:` section is `gateway_yaml` (indented by two spaces).
    pub fn start(gateway_yaml: &str) -> Gateway {
        Self::start_with(gateway_yaml, "")
    }

    /// Like [`Gateway::start`], with extra top-level YAML (e.g. a `limits:` section).
    pub fn start_with(gateway_yaml: &str, top_yaml: &str) -> Gateway {
        Self::start_raw(&format!("{top_yaml}\ngateway:\n{gateway_yaml}\n"))
    }

    /// A gateway routing everything to a fresh test [`Backend`], with extra top-level YAML.
    pub async fn before_backend(top_yaml: &str) -> (Gateway, Backend) {
        let backend = Backend::start().await;
        let routes = format!(
            "  routes:\n    - {{prefix: /, upstream: \"{}\"}}\n",
            backend.url()
        );
        (Self::start_with(&routes, top_yaml), backend)
    }

    /// Starts oauthgate on `port` with `public_url: https://localhost:<port>`, for setups
    /// where other processes must know the URL in advance (see [`free_port`]).
    pub fn start_public(port: u16, body: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "listen: 127.0.0.1:{port}\npublic_url: https://localhost:{port}\ndata_dir: data\n\
             tls: {{self_signed: true}}\n{body}\n"
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(dir.path().to_owned(), Some(dir), &path)
    }

    /// Starts oauthgate on `port` (public_url `https://localhost:<port>`) serving the browser
    /// tests' certificate.
    pub fn start_with_cert(port: u16, cert: &chrome::TestCert, body: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let (crt, key) = cert.write(dir.path(), "tls");
        // Where `cert_pem` looks, so the pinned clients trust it too.
        cert.write(&dir.path().join("data/tls"), "localhost");
        let config = format!(
            "listen: 127.0.0.1:{port}\npublic_url: https://localhost:{port}\ndata_dir: data\n\
             tls: {{cert: {}, key: {}}}\n{body}\n",
            crt.display(),
            key.display()
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(dir.path().to_owned(), Some(dir), &path)
    }

    /// Starts oauthgate on `body` (any sections) below the common listen/TLS header.
    pub fn start_raw(body: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: data\n\
             tls: {{self_signed: true}}\n{body}\n"
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(dir.path().to_owned(), Some(dir), &path)
    }

    /// Starts the binary in `dir` on a config file already written; `tmp` is dropped with it.
    pub fn spawn(
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        config: &std::path::Path,
    ) -> Gateway {
        Self::spawn_env(dir, tmp, config, "info")
    }

    /// [`Gateway::spawn`] with `RUST_LOG=rust_log`.
    pub fn spawn_env(
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        config: &std::path::Path,
        rust_log: &str,
    ) -> Gateway {
        let mut command = Command::new(bin());
        command
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", rust_log);
        Self::spawn_command(dir, tmp, command)
    }

    /// Like [`Gateway::start_raw`], run through `wrapper` (a command that execs its
    /// arguments, such as `prlimit --nofile=256:256`), so the pid is still oauthgate's.
    pub fn start_wrapped(wrapper: &[&str], body: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "listen: 127.0.0.1:0\npublic_url: https://localhost\ndata_dir: data\n\
             tls: {{self_signed: true}}\n{body}\n"
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn_wrapped(dir.path().to_owned(), Some(dir), &path, wrapper)
    }

    fn spawn_wrapped(
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        config: &std::path::Path,
        wrapper: &[&str],
    ) -> Gateway {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        command.arg("--config").arg(config);
        Self::spawn_command(dir, tmp, command)
    }

    /// Starts `command` (the binary, its arguments and environment) in `dir` and waits for it
    /// to listen; `RUST_LOG` is `info` unless `command` sets it.
    pub fn spawn_command(
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        mut command: Command,
    ) -> Gateway {
        let rust_log = command
            .get_envs()
            .find(|(k, _)| *k == "RUST_LOG")
            .and_then(|(_, v)| v.map(std::ffi::OsStr::to_owned))
            .unwrap_or_else(|| "info".into());
        let mut child = command
            .current_dir(&dir)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start oauthgate");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = ready_tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = ready_rx.recv_timeout(Duration::from_millis(50)) {
                let addr = addr.parse().expect("listening address");
                return Gateway {
                    addr,
                    dir,
                    tmp,
                    child,
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("oauthgate exited with {status}: {:#?}", log.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "oauthgate did not start: {:#?}",
                log.lock().unwrap()
            );
        }
    }

    /// Where its `metrics.listen` listener answers (`http://addr/metrics`); the process must
    /// have been started with a `metrics:` section.
    pub fn metrics_url(&self) -> String {
        let addr = self
            .log()
            .iter()
            .find_map(|l| field(l, "metrics_addr"))
            .expect("a metrics listener (is there a `metrics:` section?)");
        format!("http://{addr}/metrics")
    }

    /// One scrape of its metrics endpoint: the Prometheus text.
    pub async fn scrape(&self) -> String {
        let res = reqwest::get(self.metrics_url()).await.expect("scrape");
        assert_eq!(res.status(), 200);
        res.text().await.expect("metrics text")
    }

    /// The self-signed certificate the gateway generated (PEM).
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("data/tls/localhost.crt")).expect("generated cert")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A reqwest client that trusts only this gateway's certificate and resolves
    /// `localhost` to it.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("client")
    }

    /// An HTTP/1.1-only client and one that speaks HTTP/2 (both as [`Gateway::client`]).
    pub fn both_protocols(&self) -> [reqwest::Client; 2] {
        let h1 = self.client_builder().http1_only().build().expect("client");
        [h1, self.client()]
    }

    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&self.cert_pem()).expect("pem"))
            .resolve("localhost", self.addr)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
    }

    /// GETs `path` with [`Gateway::client`] and returns the body.
    pub async fn text(&self, path: &str) -> String {
        let res = self
            .client()
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        res.text().await.expect("body")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
    pub fn memory_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("memory field")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "oauthgate did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Whether some log line so far contains `text`.
    pub fn running_log_has(&self, text: &str) -> bool {
        self.log().iter().any(|l| l.contains(text))
    }

    /// Everything it logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) until `done` holds for the log so far, then returns it; panics
    /// with `what` and the log otherwise.
    pub fn log_when(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if done(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "{what}: {log:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops this process (SIGKILL) and starts a new one on the same folder and config.
    pub fn restart(mut self) -> Gateway {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let tmp = self.tmp.take();
        Gateway::spawn(self.dir.clone(), tmp, &self.dir.join("config.yaml"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (bound, then released), for configs
/// that must name their own public URL before the process starts.
///
/// Picked below Linux's ephemeral range (32768–60999), where no outgoing connection and no
/// listener on port 0 is ever given a port: a port from the ephemeral range, free when
/// checked, was sometimes taken by another test's client connection before the process under
/// test could bind it ("Address already in use"). Test binaries share the machine, so the walk
/// through 20000–32767 starts at a place of this process's own.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    let _ = NEXT.compare_exchange(u32::MAX, seed % SPAN, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let port = LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = u16::try_from(port).expect("below 32768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32767");
}

/// A client that trusts the certificates of all `servers`, keeps cookies in `jar`, and
/// follows no redirects: a browser without JavaScript, step by step.
pub fn browser(servers: &[&Gateway], jar: std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    for s in servers {
        b = b
            .add_root_certificate(reqwest::Certificate::from_pem(&s.cert_pem()).expect("pem"))
            .resolve("localhost", s.addr);
    }
    b.build().expect("browser")
}

/// The address of the "listening" line, in the text or the JSON log format.
fn listening_addr(line: &str) -> Option<String> {
    if line.contains(" listening ") {
        return field(line, "addr");
    }
    if line.starts_with('{') && line.contains(r#""message":"listening""#) {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        return v["addr"].as_str().map(str::to_owned);
    }
    None
}

/// A `key=value` field of a text log line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    Some(line[start..].split_whitespace().next()?.to_owned())
}

/// Runs `oauthgate check` on `yaml` and returns (exit code, stderr).
pub fn check(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("run check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

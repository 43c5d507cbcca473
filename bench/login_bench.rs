//! Login throughput of the central server alone: how many complete logins per second the
//! release binary handles, and how much CPU each costs it, when the provider is a local fake
//! that answers instantly.
//!
//! ```sh
//! cargo build --release --bin oauthgate --example login_bench
//! target/release/examples/login_bench [--binary target/release/oauthgate] \
//!     [--concurrency 16] [--seconds 10] [--warmup 2]
//! ```
//!
//! (`bench/central.sh` does this several times and prints the medians.) The binary can also
//! be given as `OAUTHGATE_BIN`.
//!
//! What happens:
//! 1. A fake OAuth2 provider (hyper, HTTP/1.1, 127.0.0.1:0) answers `POST /token` and
//!    `GET /user` with fixed JSON.
//! 2. `oauthgate` is started with a central-only config (self-signed TLS, one `kind: oauth2`
//!    provider pointing at the fake, one client) and `RUST_LOG=warn`.
//! 3. `--concurrency` workers, each with its own HTTP/1.1 keep-alive connection and cookie
//!    jar, log in back to back: `GET /oauth/authorize` (302 to the provider, with the
//!    round-trip cookie), then `GET /oauth/callback?code&state` as the provider would redirect
//!    (303 to the client with `assertion=`). The callback makes oauthgate call the fake's
//!    `/token` and `/user`.
//! 4. After `--warmup` seconds, a window of `--seconds` is measured: logins completed in it,
//!    their client-side latency (both requests), failures, and oauthgate's CPU time (utime +
//!    stime from `/proc/<pid>/stat`). The peak RSS (`VmHWM`) is read at the end.
//!
//! One line is printed on stdout:
//!
//! ```text
//! logins/s=… p50_ms=… p99_ms=… cpu_ms_per_login=… failures=… rss_peak_mb=… logins=…
//!     window_s=… concurrency=… server_cpu_pct=… bench_cpu_ms_per_login=…
//! ```
//!
//! `server_cpu_pct` is oauthgate's CPU use over the window (100 = one core busy);
//! `bench_cpu_ms_per_login` is what this process (load generator and fake provider) spent per
//! login, since both share the machine with oauthgate. Diagnostics go to stderr, including
//! anything oauthgate wrote there. The exit status is 1 when no login succeeded or oauthgate
//! died.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use reqwest::redirect::Policy;
use tokio::net::TcpListener;

/// The client registered in the config; every login ends with a redirect here.
const REDIRECT_URL: &str = "https://app.example/_auth/callback";
/// The name of the configured provider.
const PROVIDER: &str = "acme";
/// Bound on every request the benchmark makes, so that no worker can hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long oauthgate may take to answer its first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts (each on a fresh port: the free port we pick can be taken before the child
/// binds it).
const START_ATTEMPTS: u32 = 3;
/// Pause after a failed login, so that a broken server does not turn the workers into a busy
/// loop of errors.
const FAILURE_BACKOFF: Duration = Duration::from_millis(10);
/// At most this many oauthgate stderr lines are echoed at the end.
const STDERR_LINES_SHOWN: usize = 20;

/// Command-line options.
struct Options {
    binary: PathBuf,
    concurrency: usize,
    seconds: u64,
    warmup: u64,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut opts = Options {
            binary: std::env::var_os("OAUTHGATE_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target/release/oauthgate")),
            concurrency: 16,
            seconds: 10,
            warmup: 2,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            let number = |v: String| {
                v.parse::<u64>()
                    .map_err(|_| format!("{flag}: not a number: {v}"))
            };
            match flag.as_str() {
                "--binary" => opts.binary = PathBuf::from(value()?),
                "--concurrency" => opts.concurrency = number(value()?)? as usize,
                "--seconds" => opts.seconds = number(value()?)?,
                "--warmup" => opts.warmup = number(value()?)?,
                "-h" | "--help" => {
                    return Err("usage: login_bench [--binary PATH] [--concurrency N] \
                                [--seconds N] [--warmup N]"
                        .into())
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if opts.concurrency == 0 || opts.seconds == 0 {
            return Err("--concurrency and --seconds must be at least 1".into());
        }
        Ok(opts)
    }
}

// --- the fake provider ----------------------------------------------------------------------

/// Starts the fake provider on 127.0.0.1:0 and returns its address. It lives as long as the
/// runtime.
async fn start_fake_provider() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(fake_provider))
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The provider's two endpoints that the central server calls on a callback.
async fn fake_provider(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let route = (req.method().clone(), req.uri().path().to_owned());
    // Read the (small) request body so that the connection can be kept alive.
    let _ = req.into_body().collect().await;
    let (status, body): (StatusCode, &'static str) = match (&route.0, route.1.as_str()) {
        (&Method::POST, "/token") => (
            StatusCode::OK,
            r#"{"access_token":"t","token_type":"bearer"}"#,
        ),
        (&Method::GET, "/user") => (
            StatusCode::OK,
            r#"{"id":42,"login":"bench","email":"bench@example.com"}"#,
        ),
        _ => (StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#),
    };
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

// --- the oauthgate child process ------------------------------------------------------------

/// Owns the oauthgate process and kills it when dropped, also when the benchmark panics.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// True while the process is running.
    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running oauthgate, ready to serve.
struct Server {
    child: ChildGuard,
    addr: SocketAddr,
    cert: reqwest::Certificate,
}

/// A port that was free a moment ago.
fn free_port() -> std::io::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The central-only configuration.
fn config_yaml(port: u16, data_dir: &Path, fake: SocketAddr) -> String {
    format!(
        "listen: 127.0.0.1:{port}
public_url: https://localhost:{port}
data_dir: {data}
tls: {{self_signed: true}}
central:
  providers:
    {PROVIDER}:
      kind: oauth2
      client_id: id
      client_secret: secret
      authorize_url: http://{fake}/authorize
      access_token_url: http://{fake}/token
      user_info_url: http://{fake}/user
  clients:
    - redirect_url: {REDIRECT_URL}
",
        data = data_dir.display(),
    )
}

/// Starts oauthgate and waits until `/oauth/providers` answers 200 over TLS, retrying on a
/// fresh port when the child exits during start-up.
async fn start_oauthgate(opts: &Options, dir: &Path, fake: SocketAddr) -> Result<Server, String> {
    let data_dir = dir.join("data");
    let cert_path = data_dir.join("tls").join("localhost.crt");
    let stderr_path = dir.join("oauthgate.err");
    let mut last_error = String::new();
    for attempt in 1..=START_ATTEMPTS {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = dir.join("config.yaml");
        std::fs::write(&config, config_yaml(port, &data_dir, fake))
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| format!("creating {}: {e}", stderr_path.display()))?;
        let child = Command::new(&opts.binary)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", opts.binary.display()))?;
        let mut child = ChildGuard(child);

        match wait_ready(&mut child, addr, &cert_path).await {
            Ok(cert) => return Ok(Server { child, addr, cert }),
            Err(e) => {
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                last_error = format!("{e}\noauthgate stderr:\n{stderr}");
                eprintln!("[login_bench] start attempt {attempt} failed: {e}");
            }
        }
        // `child` is dropped (killed) here before the next attempt.
    }
    Err(last_error)
}

/// Polls, at most `STARTUP_TIMEOUT`, until the generated certificate exists and
/// `GET /oauth/providers` answers 200 through it.
async fn wait_ready(
    child: &mut ChildGuard,
    addr: SocketAddr,
    cert_path: &Path,
) -> Result<reqwest::Certificate, String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut client: Option<(reqwest::Client, reqwest::Certificate)> = None;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if !child.alive() {
            return Err("oauthgate exited during start-up".into());
        }
        if client.is_none() {
            // The self-signed certificate is written during start-up.
            if let Ok(pem) = std::fs::read(cert_path) {
                if let Ok(cert) = reqwest::Certificate::from_pem(&pem) {
                    let c = http_client(&cert, addr, false).map_err(|e| e.to_string())?;
                    client = Some((c, cert));
                }
            }
        }
        if let Some((c, cert)) = &client {
            let url = format!("https://localhost:{}/oauth/providers", addr.port());
            match c.get(&url).send().await {
                Ok(r) if r.status() == StatusCode::OK => return Ok(cert.clone()),
                Ok(r) => last = format!("{url} answered {}", r.status()),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("not ready after {STARTUP_TIMEOUT:?}: {last}"))
}

/// A client that trusts only oauthgate's certificate, reaches `localhost` at `addr`, speaks
/// HTTP/1.1 with keep-alive and follows no redirects.
fn http_client(
    cert: &reqwest::Certificate,
    addr: SocketAddr,
    cookies: bool,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .add_root_certificate(cert.clone())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .http1_only()
        .redirect(Policy::none())
        .cookie_store(cookies)
        .timeout(REQUEST_TIMEOUT)
        .build()
}

// --- /proc ----------------------------------------------------------------------------------

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: &str) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces: count fields
    // after its closing parenthesis, where field 3 (state) comes first.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> std::io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("/proc/{pid}/stat: no field {n}")))
    };
    Ok(field(14)? + field(15)?) // utime, stime
}

/// Peak resident set size (`VmHWM`) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second, from `getconf CLK_TCK` (100 on practically every Linux).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

// --- the load -------------------------------------------------------------------------------

/// Where the run is; workers read it after each login.
const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// What one worker saw during the measured window.
#[derive(Default)]
struct WorkerStats {
    /// Client-side duration of each successful login, in microseconds.
    latencies_us: Vec<u64>,
    failures: u64,
    /// Failures during the warm-up, reported but not counted.
    warmup_failures: u64,
    first_error: Option<String>,
}

/// One complete login: authorize (302 + round-trip cookie), then the provider's redirect to
/// the callback (303 to the client, with an assertion).
async fn login(client: &reqwest::Client, base: &str, state: &str) -> Result<(), String> {
    let authorize = format!("{base}/oauth/authorize");
    let res = client
        .get(&authorize)
        .query(&[
            ("provider", PROVIDER),
            ("state", state),
            ("redirect_url", REDIRECT_URL),
        ])
        .send()
        .await
        .map_err(|e| format!("authorize: {e}"))?;
    if res.status() != StatusCode::FOUND {
        return Err(format!("authorize: status {}", res.status()));
    }
    if !res.headers().contains_key(reqwest::header::SET_COOKIE) {
        return Err("authorize: no Set-Cookie".into());
    }
    // Our state at the provider, as the provider would echo it back.
    let provider_state = location(&res)
        .and_then(|l| url::Url::parse(l).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        })
        .ok_or("authorize: no state in Location")?;
    // Drain the body so the connection is reused.
    res.bytes()
        .await
        .map_err(|e| format!("authorize body: {e}"))?;

    let res = client
        .get(format!("{base}/oauth/callback"))
        .query(&[("code", "c"), ("state", provider_state.as_str())])
        .send()
        .await
        .map_err(|e| format!("callback: {e}"))?;
    let status = res.status();
    let ok = status == StatusCode::SEE_OTHER
        && location(&res).is_some_and(|l| l.starts_with(REDIRECT_URL) && l.contains("assertion="));
    let target = location(&res).map(|l| l.chars().take(120).collect::<String>());
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("callback body: {e}"))?;
    if !ok {
        return Err(format!(
            "callback: status {status}, Location {target:?}, body {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(())
}

fn location(res: &reqwest::Response) -> Option<&str> {
    res.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
}

/// Logs in back to back until the phase is `STOP`; records logins that complete while the
/// phase is `MEASURE`.
async fn worker(
    client: reqwest::Client,
    base: String,
    id: usize,
    phase: Arc<AtomicU8>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut n: u64 = 0;
    while phase.load(Ordering::Acquire) != STOP {
        n += 1;
        let state = format!("bench-{id}-{n}");
        let started = Instant::now();
        let result = login(&client, &base, &state).await;
        let elapsed = started.elapsed();
        let measuring = phase.load(Ordering::Acquire) == MEASURE;
        match result {
            Ok(()) if measuring => stats.latencies_us.push(elapsed.as_micros() as u64),
            Ok(()) => {}
            Err(e) => {
                if measuring {
                    stats.failures += 1;
                } else {
                    stats.warmup_failures += 1;
                }
                stats.first_error.get_or_insert(e);
                tokio::time::sleep(FAILURE_BACKOFF).await;
            }
        }
    }
    stats
}

/// The `p` quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let opts = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("login_bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // On Ctrl-C or SIGTERM the run is dropped, which kills oauthgate and removes the temp dir.
    let result = tokio::select! {
        r = run(&opts) => r,
        s = interrupted() => Err(format!("interrupted by {s}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("login_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM, with its name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers, never resolve: the default actions apply.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn run(opts: &Options) -> Result<(), String> {
    // Declared before the server so that it is removed after the child is killed.
    let dir = tempfile::Builder::new()
        .prefix("oauthgate-login-bench.")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let fake = start_fake_provider()
        .await
        .map_err(|e| format!("fake provider: {e}"))?;
    let mut server = start_oauthgate(opts, dir.path(), fake).await?;
    let pid = server.child.pid().to_string();
    let base = format!("https://localhost:{}", server.addr.port());
    eprintln!(
        "[login_bench] oauthgate pid {pid} at {base}, fake provider at {fake}; \
         {} workers, {} s warm-up, {} s measured",
        opts.concurrency, opts.warmup, opts.seconds
    );

    // The workers start in the warm-up phase.
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut workers = Vec::with_capacity(opts.concurrency);
    for id in 0..opts.concurrency {
        let client =
            http_client(&server.cert, server.addr, true).map_err(|e| format!("client: {e}"))?;
        workers.push(tokio::spawn(worker(
            client,
            base.clone(),
            id,
            phase.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(opts.warmup)).await;

    // The measured window: CPU counters are read right at its edges.
    let cpu_start = cpu_ticks(&pid).map_err(|e| format!("oauthgate CPU: {e}"))?;
    let self_start = cpu_ticks("self").map_err(|e| format!("own CPU: {e}"))?;
    let window_start = Instant::now();
    phase.store(MEASURE, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
    phase.store(STOP, Ordering::Release);
    let window = window_start.elapsed();
    let cpu_end = cpu_ticks(&pid).map_err(|e| format!("oauthgate CPU: {e}"))?;
    let self_end = cpu_ticks("self").map_err(|e| format!("own CPU: {e}"))?;

    // Workers finish the login in flight (each request is bounded by REQUEST_TIMEOUT).
    let mut latencies = Vec::new();
    let (mut failures, mut warmup_failures) = (0, 0);
    let mut errors = Vec::new();
    for w in workers {
        let stats = w.await.map_err(|e| format!("worker panicked: {e}"))?;
        latencies.extend(stats.latencies_us);
        failures += stats.failures;
        warmup_failures += stats.warmup_failures;
        errors.extend(stats.first_error);
    }
    let alive = server.child.alive();
    let rss_kib = peak_rss_kib(server.child.pid());
    drop(server); // kills oauthgate

    // Anything oauthgate logged (at warn or above).
    let stderr = std::fs::read_to_string(dir.path().join("oauthgate.err")).unwrap_or_default();
    let lines: Vec<&str> = stderr.lines().collect();
    eprintln!("[login_bench] oauthgate stderr: {} line(s)", lines.len());
    for line in lines.iter().take(STDERR_LINES_SHOWN) {
        eprintln!("[login_bench]   {line}");
    }
    for e in errors.iter().take(5) {
        eprintln!("[login_bench] a worker's first error: {e}");
    }
    if warmup_failures > 0 {
        eprintln!("[login_bench] {warmup_failures} failure(s) during the warm-up (not counted)");
    }

    latencies.sort_unstable();
    let logins = latencies.len() as u64;
    let secs = window.as_secs_f64();
    let tck = clock_ticks_per_second() as f64;
    let server_cpu_ms = (cpu_end - cpu_start) as f64 * 1000.0 / tck;
    let bench_cpu_ms = (self_end - self_start) as f64 * 1000.0 / tck;
    let per_login = |ms: f64| {
        if logins > 0 {
            ms / logins as f64
        } else {
            f64::NAN
        }
    };
    println!(
        "logins/s={:.1} p50_ms={:.2} p99_ms={:.2} cpu_ms_per_login={:.3} failures={} \
         rss_peak_mb={:.1} logins={} window_s={:.2} concurrency={} server_cpu_pct={:.0} \
         bench_cpu_ms_per_login={:.3}",
        logins as f64 / secs,
        quantile(&latencies, 0.50) as f64 / 1000.0,
        quantile(&latencies, 0.99) as f64 / 1000.0,
        per_login(server_cpu_ms),
        failures,
        rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0),
        logins,
        secs,
        opts.concurrency,
        server_cpu_ms / 10.0 / secs,
        per_login(bench_cpu_ms),
    );

    if !alive {
        return Err("oauthgate exited during the run".into());
    }
    if logins == 0 {
        return Err("no login succeeded".into());
    }
    Ok(())
}

//! The real OpenID Connect provider (npm `oidc-provider`, pinned in tests/oidc/package-lock.json
//! and installed with `npm ci` by the harness) as a child process on 127.0.0.1:0.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct OidcProvider {
    pub port: u16,
    child: Child,
    /// Held open: the provider exits when it closes.
    _stdin: ChildStdin,
}

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc"))
}

fn install() {
    npm_ci(dir());
}

/// Runs `npm ci` in `dir` once per lock file (other test binaries wait on a file lock).
pub fn npm_ci(dir: &Path) {
    let lock_file =
        std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("oidc-npm.lock"))
            .expect("lock");
    lock_file.lock().expect("lock");
    let lock = std::fs::read(dir.join("package-lock.json")).expect("package-lock.json");
    let marker = dir.join("node_modules/.installed-lock");
    if std::fs::read(&marker).ok().as_deref() == Some(lock.as_slice()) {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .output()
        .expect("npm (Node.js) is needed for the OIDC provider and example tests");
    assert!(
        out.status.success(),
        "npm ci failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, &lock).expect("marker");
}

impl OidcProvider {
    /// Starts the provider with one client allowed to redirect to `redirect_uris`.
    pub fn start(client_id: &str, client_secret: &str, redirect_uris: &[String]) -> OidcProvider {
        install();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let wait = |want: &str| -> String {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("the OIDC provider never said {want}"));
            assert!(line.starts_with(want), "expected {want}, got {line}");
            line
        };
        let port = wait("PORT ")["PORT ".len()..].trim().parse().expect("port");
        let config = serde_json::json!({
            "client_id": client_id, "client_secret": client_secret, "redirect_uris": redirect_uris,
        });
        writeln!(stdin, "{config}").expect("configure the provider");
        wait("READY");
        OidcProvider {
            port,
            child,
            _stdin: stdin,
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Walks a browser through the provider's own login and consent pages (its development
/// interactions) from `start`, until a redirect to a URL starting with `stop_at`; returns that
/// URL. `abort` clicks the pages' Cancel link instead of logging in.
pub async fn walk(
    client: &reqwest::Client,
    start: url::Url,
    login: &str,
    stop_at: &str,
    abort: bool,
) -> url::Url {
    let mut url = start;
    let mut post: Option<Vec<(&str, String)>> = None;
    for _ in 0..20 {
        let req = match post.take() {
            Some(form) => client.post(url.clone()).form(&form),
            None => client.get(url.clone()).header("accept", "text/html"),
        };
        let res = req.send().await.expect("provider request");
        if res.status().is_redirection() {
            let next = url
                .join(res.headers()["location"].to_str().unwrap())
                .unwrap();
            if next.as_str().starts_with(stop_at) {
                return next;
            }
            url = next;
            continue;
        }
        let status = res.status();
        let html = res.text().await.unwrap();
        assert_eq!(status, 200, "at {url}: {html}");
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no form at {url}: {html}"))
            .to_owned();
        if abort {
            let cancel = html
                .split("href=\"")
                .filter_map(|s| s.split('"').next())
                .find(|h| h.ends_with("/abort"))
                .unwrap_or_else(|| panic!("no cancel link at {url}"))
                .to_owned();
            url = url.join(&cancel).unwrap();
            continue;
        }
        // Both pages post to /interaction/<uid>; the login page is the one asking for a login.
        let form: Vec<(&str, String)> = if html.contains("name=\"login\"") {
            vec![
                ("prompt", "login".into()),
                ("login", login.into()),
                ("password", "any".into()),
            ]
        } else {
            vec![("prompt", "consent".into())]
        };
        url = url.join(&action).unwrap();
        post = Some(form);
    }
    panic!("the provider never redirected to {stop_at}");
}

//! Real third-party backends for the proxy-confusion tests (SPEC §6 class 6): Tomcat 10.1
//! (Debian's jars), Express 5 (npm, tests/backends/package-lock.json) and hypercorn (PyPI,
//! tests/requirements.txt), each installed by the harness when missing, started once per test
//! binary on 127.0.0.1:0, and gone when the binary exits.
//!
//! Each peer holds a pipe to its standard input and exits when that pipe closes: a shared
//! instance in a `static` is never dropped, and the pipe closing with the test process is what
//! stops it then. A dropped instance is also killed by PID.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// The body Tomcat serves at `/admin/secret`.
pub const TOMCAT_SECRET: &str = "TOMCAT-ADMIN-SECRET";
/// The body Express serves at `/node/admin/secret` (and, case-insensitively, `/node/ADMIN/…`).
pub const EXPRESS_SECRET: &str = "EXPRESS-ADMIN-SECRET";
/// Part of every hypercorn answer under its decoded path `/admin`.
pub const HYPERCORN_SECRET: &str = "HYPERCORN-ADMIN-SECRET";

/// A backend process and the port it listens on.
pub struct Peer {
    pub port: u16,
    child: Child,
    /// Other processes to kill by PID on drop (Tomcat's JVM, under its watchdog shell).
    also: Vec<u32>,
    /// Held open: the peer exits when it closes.
    _stdin: ChildStdin,
    _dir: Option<tempfile::TempDir>,
}

impl Peer {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for pid in &self.also {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn backends_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/backends"))
}

/// Spawns `cmd` with piped stdin/stdout and waits (bounded) for stdout lines: `port_of` picks
/// the port from a line, `ready` says when it may be used. `what` names it in failures.
fn spawn(
    what: &str,
    cmd: &mut Command,
    port_of: fn(&str) -> Option<u16>,
    ready: fn(&str) -> bool,
) -> (Child, ChildStdin, u16, Vec<String>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut port, mut lines) = (None, Vec::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not become ready within 60 s; it said:\n{lines:#?}");
        };
        port = port.or_else(|| port_of(&line));
        let done = port.is_some() && ready(&line);
        lines.push(line);
        if done {
            // Keep draining its output, so a chatty peer never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (child, stdin, port.unwrap_or_default(), lines);
        }
    }
}

fn port_line(line: &str) -> Option<u16> {
    line.strip_prefix("PORT ")?.trim().parse().ok()
}

/// Installs a lock file's npm packages once (other test binaries wait on a file lock).
fn npm_ci(dir: &Path, lock_name: &str) {
    let lock_file = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join(lock_name))
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
        .expect("npm (Node.js) is needed for the Express backend");
    assert!(
        out.status.success(),
        "npm ci in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, &lock).expect("marker");
}

/// The shared Express 5 app (tests/backends/app.js).
pub fn express() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        npm_ci(backends_dir(), "backends-npm.lock");
        let (child, stdin, port, _) = spawn(
            "Express (node app.js)",
            Command::new("node")
                .arg("app.js")
                .current_dir(backends_dir()),
            port_line,
            |l| l.starts_with("PORT "),
        );
        Peer {
            port,
            child,
            also: Vec::new(),
            _stdin: stdin,
            _dir: None,
        }
    })
}

/// The shared hypercorn server of tests/backends/asgi_app.py (plain HTTP, h2c on).
pub fn hypercorn() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        let python = super::python::python();
        let (child, stdin, port, _) = spawn(
            "hypercorn (asgi_app.py)",
            Command::new(python)
                .arg("asgi_app.py")
                .current_dir(backends_dir()),
            port_line,
            |l| l.starts_with("PORT "),
        );
        Peer {
            port,
            child,
            also: Vec::new(),
            _stdin: stdin,
            _dir: None,
        }
    })
}

const TOMCAT_HOME: &str = "/usr/share/tomcat10";

/// Debian's Tomcat 10.1 jars (`tomcat10-common`, `libtomcat10-java`), installed once if missing.
fn tomcat_home() -> &'static str {
    let jar = format!("{TOMCAT_HOME}/bin/bootstrap.jar");
    super::apt_install(
        &jar,
        &["tomcat10-common", "libtomcat10-java"],
        "the `..;` tests",
    );
    TOMCAT_HOME
}

/// A private CATALINA_BASE: one HTTP connector on 127.0.0.1 and a port the OS picks (Tomcat
/// logs it), no shutdown port, the default servlet only (no JSP), and two static webapps:
/// `/public/index.html` and `/admin/secret`.
fn tomcat_base() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().to_owned();
    for d in ["conf", "temp", "logs", "webapps/public", "webapps/admin"] {
        std::fs::create_dir_all(base.join(d)).expect("catalina base");
    }
    let write = |p: &str, text: &str| std::fs::write(base.join(p), text).expect("write");
    write(
        "conf/server.xml",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Server port=\"-1\" shutdown=\"SHUTDOWN\">\n\
         \x20 <Service name=\"Catalina\">\n\
         \x20   <Connector port=\"0\" address=\"127.0.0.1\" protocol=\"HTTP/1.1\" />\n\
         \x20   <Engine name=\"Catalina\" defaultHost=\"localhost\">\n\
         \x20     <Host name=\"localhost\" appBase=\"webapps\" unpackWARs=\"false\" autoDeploy=\"false\" />\n\
         \x20   </Engine>\n  </Service>\n</Server>\n",
    );
    write(
        "conf/web.xml",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <web-app xmlns=\"https://jakarta.ee/xml/ns/jakartaee\" version=\"6.0\">\n\
         \x20 <servlet>\n    <servlet-name>default</servlet-name>\n\
         \x20   <servlet-class>org.apache.catalina.servlets.DefaultServlet</servlet-class>\n\
         \x20   <load-on-startup>1</load-on-startup>\n  </servlet>\n\
         \x20 <servlet-mapping>\n    <servlet-name>default</servlet-name>\n\
         \x20   <url-pattern>/</url-pattern>\n  </servlet-mapping>\n</web-app>\n",
    );
    write("webapps/public/index.html", "public page\n");
    write("webapps/admin/secret", TOMCAT_SECRET);
    (dir, base)
}

/// The shared Tomcat, run by `java` directly (no systemd), under a shell that kills the JVM
/// when its standard input closes.
pub fn tomcat() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        let home = tomcat_home();
        let (dir, base) = tomcat_base();
        let classpath = format!("{home}/bin/bootstrap.jar:{home}/bin/tomcat-juli.jar");
        let script =
            "java -Dcatalina.home=\"$1\" -Dcatalina.base=\"$2\" -Djava.io.tmpdir=\"$2/temp\" \
             -cp \"$3\" org.apache.catalina.startup.Bootstrap start 2>&1 &\n\
             echo \"JVM $!\"\ncat >/dev/null\nkill $! 2>/dev/null\nwait";
        let (child, mut stdin, port, lines) = spawn(
            "Tomcat",
            Command::new("sh")
                .args(["-c", script, "tomcat"])
                .arg(home)
                .arg(&base)
                .arg(&classpath),
            // `Starting ProtocolHandler ["http-nio-127.0.0.1-auto-1-40125"]`
            |l| {
                let rest = l.split("Starting ProtocolHandler [\"http-nio-").nth(1)?;
                let name = rest.split('"').next()?;
                name.rsplit('-').next()?.parse().ok()
            },
            |l| l.contains("Server startup in"),
        );
        let jvm = lines
            .iter()
            .find_map(|l| l.strip_prefix("JVM ")?.trim().parse().ok())
            .into_iter()
            .collect();
        // Nothing to say to it; the pipe only has to stay open.
        let _ = stdin.flush();
        Peer {
            port,
            child,
            also: jvm,
            _stdin: stdin,
            _dir: Some(dir),
        }
    })
}

/// A plain HTTP/1.1 GET of `target` sent byte for byte (no client-side normalisation) to
/// `port`; returns (status, body).
pub async fn raw_get(port: u16, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut buf))
        .await
        .expect("an answer within 20 s")
        .expect("read");
    let res = super::client::parse(&buf);
    (res.status, String::from_utf8_lossy(&res.body).into_owned())
}

//! A real Redis (Debian's `redis-server`, installed by the harness when missing) on a free
//! port, its data dir (append-only file) in its own temp dir, stopped by PID; it can be
//! stopped and started again on the same port (the "Redis restarted" tests). Also what the
//! session store tests ask of gateways: a status with a cookie, polled; `oauthgate sessions`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{bin, Gateway};

pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// The redis-server binary, installing Debian's `redis-server` once if it is missing.
pub fn binary() -> &'static str {
    const REDIS: &str = "/usr/bin/redis-server";
    super::apt_install(REDIS, &["redis-server"], "the Redis session store tests");
    REDIS
}

impl Redis {
    /// Starts Redis on a free port. Every write is appended and synced to its data dir, so
    /// sessions outlive a SIGKILL and [`Redis::resume`] (as a Redis restart would keep them).
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = Redis {
            port: super::free_port(),
            child: None,
            dir,
        };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:<port>/0`, for `gateway.session.store`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (SIGKILL by PID) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits (bounded) until it answers PING.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(binary())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one command (RESP) and returns the first line of the answer, `None` when the
    /// server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        conn.write_all(req.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// How many keys start with `prefix` (`oauthgate:session:`): an integer reply.
    pub fn count(&self, prefix: &str) -> usize {
        let pattern = format!("{prefix}*");
        // EVAL keeps it to one round trip with a one-line answer.
        let script = "return #redis.call('KEYS', ARGV[1])";
        let answer = self
            .command(&["EVAL", script, "0", &pattern])
            .expect("redis");
        answer
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a count: {answer}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `oauthgate sessions ARGS --config` of `g`: exit code, stdout, stderr.
pub fn sessions(g: &Gateway, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("sessions")
        .args(args)
        .arg("--config")
        .arg(g.dir.join("config.yaml"))
        .output()
        .expect("run oauthgate sessions");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The status of a GET of `path` at `g` with only `cookie` (an API client: no redirect).
pub async fn status_with(g: &Gateway, path: &str, cookie: &str) -> u16 {
    let res = g
        .client()
        .get(g.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("request");
    res.status().as_u16()
}

/// Polls (bounded by `limit`) until `path` answers `want` on every gateway with `cookie`;
/// returns how long that took.
pub async fn until_status(
    gs: &[&Gateway],
    path: &str,
    cookie: &str,
    want: u16,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        let mut seen = Vec::new();
        for g in gs {
            let s = status_with(g, path, cookie).await;
            seen.push(s);
            all &= s == want;
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still {seen:?}, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

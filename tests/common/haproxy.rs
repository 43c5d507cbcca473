//! A real HAProxy (Debian's `haproxy`, installed by the harness when missing) balancing TCP
//! connections round robin, without stickiness, over replicas: TLS passes through to them, as
//! in front of oauthgate replicas that each terminate TLS. A replica that stops answering is
//! taken out by the health check, and a connection it refuses is dispatched to another.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Haproxy {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// The haproxy binary, installing Debian's `haproxy` once if it is missing.
pub fn binary() -> &'static str {
    const HAPROXY: &str = "/usr/sbin/haproxy";
    super::apt_install(HAPROXY, &["haproxy"], "the replica tests");
    HAPROXY
}

impl Haproxy {
    /// Listens on `port` and spreads connections over `backends` (their ports on 127.0.0.1),
    /// one after the other. Start it once the replicas listen: a replica whose first health
    /// check fails gets no connection until a later one passes.
    pub fn start(port: u16, backends: &[u16]) -> Haproxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p} check inter 100ms fall 1 rise 1\n"))
            .collect();
        let config = format!(
            "global\n  maxconn 512\n\
             defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
             \x20 retries 3\n  option redispatch 1\n\
             frontend in\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let child = Command::new(binary())
            .args(["-db", "-q", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Haproxy {
            port,
            child,
            _dir: dir,
        }
    }

    /// `https://localhost:<port><path>`: the replicas' shared public URL.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

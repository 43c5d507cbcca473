//! A real Caddy (Debian's package, installed by the harness when missing) on its own temp
//! Caddyfile, as the peer for `forward_auth`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Caddy {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Caddy {
    /// Starts Caddy with `site` (a Caddyfile site block; `{port}` is replaced by its port),
    /// without its admin endpoint, automatic HTTPS or any state outside its temp folder.
    pub fn start(port: u16, site: &str) -> Caddy {
        super::apt_install("/usr/bin/caddy", &["caddy"], "the forward_auth tests");
        let dir = tempfile::tempdir().expect("temp dir");
        let caddyfile = format!(
            "{{\n  admin off\n  auto_https off\n  storage file_system {}\n}}\n{}\n",
            dir.path().join("data").display(),
            site.replace("{port}", &port.to_string())
        );
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, caddyfile).expect("write Caddyfile");
        let child = Command::new("/usr/bin/caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start caddy");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "caddy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Caddy {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The example backends of examples/backends/ (a Bottle app verifying with PyJWT, a Node app
//! verifying with `jose`), each run behind a real gateway: they read `X-User-Info` and verify
//! `X-User-Assertion` through `/_auth/jwks`, and refuse an assertion made for another app.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::flow::World;
use common::free_port;
use serde_json::Value;

struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/backends"))
}

/// Starts `cmd` (an example app on `port`) and waits until it accepts connections.
fn start(mut cmd: Command, port: u16) -> App {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start app");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the example app exited"
        );
        assert!(Instant::now() < deadline, "the example app did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    App(child)
}

/// A gateway with `identity.assertion` whose `/app` route goes to an example app on
/// `app_port` and whose `/other` route to the world's own backend (another audience).
async fn world(app_port: u16) -> World {
    let routes = format!(
        "    - {{prefix: /app, upstream: \"http://127.0.0.1:{app_port}\"}}\n    - {{prefix: /other, upstream: \"BACKEND\"}}\n"
    );
    World::start_full(
        free_port(),
        free_port(),
        "    dev: {kind: dev}\n",
        "[dev]",
        &routes,
        "  identity:\n    assertion: true\n",
    )
    .await
}

async fn run(app: impl FnOnce(&World, u16) -> App, name: &str) {
    let port = free_port();
    let w = world(port).await;
    let _app = app(&w, port);
    let b = w.browser();
    let (_, res) = b
        .log_in_with_groups(&w.gateway.url("/app/me"), "olga", "olga@example.com", "ops")
        .await;
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["app"], name);
    assert_eq!(me["verified"], true, "{me}");
    assert_eq!(me["user"]["sub"], "dev:olga");
    assert_eq!(me["claims"]["sub"], "dev:olga");
    assert_eq!(me["claims"]["groups"], serde_json::json!(["ops"]));

    // An assertion the gateway made for another app (the /other route's upstream), shown to
    // this one directly: refused, whatever X-User-Info claims.
    b.client
        .get(w.gateway.url("/other/x"))
        .send()
        .await
        .unwrap();
    let foreign = w.backend.last().headers["x-user-assertion"]
        .to_str()
        .unwrap()
        .to_owned();
    let info = w.backend.last().headers["x-user-info"]
        .to_str()
        .unwrap()
        .to_owned();
    let direct: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/me"))
        .header("x-user-assertion", foreign)
        .header("x-user-info", info)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(direct["verified"], false, "{direct}");
    assert!(
        direct["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("aud"),
        "{direct}"
    );
}

fn env(cmd: &mut Command, w: &World, port: u16) {
    cmd.env("PORT", port.to_string())
        .env(
            "GATEWAY",
            format!("https://localhost:{}", w.gateway.addr.port()),
        )
        .env("AUDIENCE", format!("http://127.0.0.1:{port}"));
}

#[tokio::test]
async fn the_bottle_example_verifies_with_pyjwt() {
    run(
        |w, port| {
            let mut cmd = Command::new(common::python::python());
            cmd.arg(examples().join("python/app.py"));
            env(&mut cmd, w, port);
            cmd.env("CA_FILE", w.gateway.dir.join("data/tls/localhost.crt"));
            start(cmd, port)
        },
        "bottle",
    )
    .await;
}

#[tokio::test]
async fn the_node_example_verifies_with_jose() {
    common::oidc::npm_ci(&examples().join("node"));
    run(
        |w, port| {
            let mut cmd = Command::new("node");
            cmd.arg("app.mjs").current_dir(examples().join("node"));
            env(&mut cmd, w, port);
            cmd.env(
                "NODE_EXTRA_CA_CERTS",
                w.gateway.dir.join("data/tls/localhost.crt"),
            );
            start(cmd, port)
        },
        "node",
    )
    .await;
}

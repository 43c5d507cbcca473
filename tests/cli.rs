//! The key commands: `keygen` writes a private key file once, `key` prints the verify key the
//! running server publishes at /oauth/key.

mod common;

use std::process::Command;

use common::Gateway;

#[tokio::test]
async fn key_prints_what_the_server_serves_at_oauth_key() {
    let gw = Gateway::start_raw("central:\n  providers:\n    dev: {kind: dev}\n");
    let served = gw.text("/oauth/key").await;
    let out = Command::new(common::bin())
        .args(["key", "--config", "config.yaml"])
        .current_dir(&gw.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), served);
}

#[test]
fn keygen_writes_a_private_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing.key");
    let run = || {
        Command::new(common::bin())
            .args(["keygen", "--out"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success());
    let verify = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    assert!(
        oauthgate::assertion::parse_verify_key(&verify).is_some(),
        "{verify}"
    );
    let secret = std::fs::read_to_string(&path).unwrap();
    assert_ne!(secret.trim(), verify);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        !run().status.success(),
        "keygen must not replace an existing key"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
}

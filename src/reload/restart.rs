//! What a reload cannot change: the keys whose values were used once, at start-up, by parts
//! that live as long as the process.
//!
//! `listen`, `data_dir` and `metrics.listen` are SPEC §7's: the sockets are bound and the data
//! folder holds the keys and certificates everything else was made from. `limits`, the TLS
//! listener's timings and `gateway.trusted_proxies` (exempt from the per-address connection
//! cap) and `log.format` (the log writer is set up once) are ours: they shape the accept loop and each connection's HTTP settings, which are
//! built once; refusing says so instead of silently keeping the old value. So are
//! `http_listen` (a socket) and every `tls.acme` key, with the hosts ACME covers (the ACME
//! tasks and the per-host resolver are built once): a reload accepts none of their changes.

use std::fmt::Debug;

use super::Refused;
use crate::config::{Config, TlsSource};

/// `Ok` when `file` changes none of the keys only a restart can change.
pub(super) fn unchanged(running: &Config, file: &Config) -> Result<(), Refused> {
    same("listen", &running.listen, &file.listen)?;
    same("data_dir", &running.data_dir, &file.data_dir)?;
    same(
        "metrics.listen",
        &running.metrics.as_ref().map(|m| m.listen),
        &file.metrics.as_ref().map(|m| m.listen),
    )?;
    // The log writer and the subscriber's format are set up once, before the config could
    // be reloaded; `log.access` is read into each new state and may change.
    same("log.format", &running.log.format, &file.log.format)?;
    // The plain listener is bound once; the ACME tasks, their hosts and the resolver they fill
    // are built once too: a reload accepts no change to `tls.acme` (nor a move to or from it).
    same("http_listen", &running.http_listen, &file.http_listen)?;
    let acme = |c: &Config| match &c.tls.source {
        TlsSource::Acme(a) => Some((a.clone(), crate::tls::acme::hosts(c))),
        _ => None,
    };
    if acme(running) != acme(file) {
        return Err(Refused::NeedsRestart {
            key: "tls.acme",
            running: describe(acme(running).is_some()),
            file: describe(acme(file).is_some()),
        });
    }
    same(
        "tls.handshake_timeout",
        &running.tls.handshake_timeout,
        &file.tls.handshake_timeout,
    )?;
    same(
        "tls.reload_interval",
        &running.tls.reload_interval,
        &file.tls.reload_interval,
    )?;
    // The accept loop exempts them from the per-address cap, from a list taken at start-up.
    if let (Some(a), Some(b)) = (&running.gateway, &file.gateway) {
        same(
            "gateway.trusted_proxies",
            &a.trusted_proxies,
            &b.trusted_proxies,
        )?;
    }
    if running.limits != file.limits {
        return Err(Refused::NeedsRestart {
            key: "limits",
            running: "the values in force".into(),
            file: "other values".into(),
        });
    }
    Ok(())
}

/// How the refusal names the ACME settings (or the hosts they cover) on each side.
fn describe(acme: bool) -> String {
    if acme {
        "ACME (its directory, e-mail, CA, challenge and hosts)".into()
    } else {
        "no ACME".into()
    }
}

fn same<T: PartialEq + Debug>(key: &'static str, running: &T, file: &T) -> Result<(), Refused> {
    if running == file {
        return Ok(());
    }
    Err(Refused::NeedsRestart {
        key,
        running: format!("{running:?}"),
        file: format!("{file:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "listen: 127.0.0.1:8443\npublic_url: https://localhost\ntls: {{self_signed: true}}\n\
             {extra}\ngateway:\n  routes:\n    - {{prefix: /, upstream: 'http://127.0.0.1:1'}}\n"
        );
        Config::parse(&text, &|_| None).expect("valid config")
    }

    #[test]
    fn routes_may_change_listeners_may_not() {
        let running = config("metrics: {listen: '127.0.0.1:9464'}");
        assert!(unchanged(&running, &running.clone()).is_ok());
        let mut other = running.clone();
        if let Some(g) = other.gateway.as_mut() {
            g.routes.clear();
        }
        assert!(unchanged(&running, &other).is_ok(), "routes reload");
        for (extra, key) in [
            ("metrics: {listen: '127.0.0.1:9465'}", "metrics.listen"),
            ("", "metrics.listen"),
            (
                "metrics: {listen: '127.0.0.1:9464'}\ndata_dir: d2",
                "data_dir",
            ),
            (
                "metrics: {listen: '127.0.0.1:9464'}\nlimits: {max_connections: 5}",
                "limits",
            ),
            (
                "metrics: {listen: '127.0.0.1:9464'}\nlog: {format: json}",
                "log.format",
            ),
        ] {
            let e = unchanged(&running, &config(extra))
                .expect_err(key)
                .to_string();
            assert!(e.starts_with(&format!("{key} cannot change")), "{e}");
        }
        let mut proxied = running.clone();
        if let Some(g) = proxied.gateway.as_mut() {
            g.trusted_proxies.push("10.0.0.1".parse().unwrap());
        }
        let e = unchanged(&running, &proxied).unwrap_err().to_string();
        assert!(
            e.starts_with("gateway.trusted_proxies cannot change"),
            "{e}"
        );
        let mut moved = running.clone();
        moved.listen = "127.0.0.1:8444".parse().unwrap();
        let e = unchanged(&running, &moved).unwrap_err().to_string();
        assert!(e.contains("listen cannot change without a restart"), "{e}");
        assert!(
            e.contains("127.0.0.1:8443") && e.contains("127.0.0.1:8444"),
            "{e}"
        );
    }

    #[test]
    fn acme_and_http_listen_need_a_restart() {
        let acme = |top: &str| {
            let text = format!(
                "listen: 127.0.0.1:8443\npublic_url: https://gw.example\n{top}\n\
                 gateway:\n  routes:\n    - {{prefix: /, upstream: 'http://127.0.0.1:1'}}\n"
            );
            Config::parse(&text, &|_| None).expect("valid config")
        };
        let dir = "directory: 'https://ca.example/dir'";
        let running = acme(&format!("tls: {{acme: {{{dir}, challenge: tls-alpn-01}}}}"));
        assert!(unchanged(&running, &running.clone()).is_ok());
        for (top, key) in [
            (
                format!("tls: {{acme: {{{dir}, challenge: tls-alpn-01, email: a@b.example}}}}"),
                "tls.acme",
            ),
            ("tls: {self_signed: true}".to_owned(), "tls.acme"),
            (
                format!(
                    "http_listen: 127.0.0.1:8080\ntls: {{acme: {{{dir}, challenge: tls-alpn-01}}}}"
                ),
                "http_listen",
            ),
        ] {
            let e = unchanged(&running, &acme(&top)).expect_err(key).to_string();
            assert!(e.starts_with(&format!("{key} cannot change")), "{e}");
        }
        let mut moved = running.clone();
        moved.public_url = "https://other.example".parse().unwrap();
        let e = unchanged(&running, &moved).unwrap_err().to_string();
        assert!(e.starts_with("tls.acme cannot change"), "{e}");
    }
}

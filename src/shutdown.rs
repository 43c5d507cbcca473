//! Signals: SIGTERM or SIGINT (Ctrl-C) stop the process gracefully; every other signal an
//! operator, logrotate or a supervisor may send (SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE) is logged
//! and ignored, where its default action would kill the process without draining.

use std::future::Future;

use tracing::{info, warn};

/// Listens for signals from now on and resolves when the process is asked to stop. Call it
/// before the listener is announced: a signal that arrives before its handler is installed
/// takes its default action (for SIGHUP and SIGUSR1/2, killing the process). Needs a runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::SignalKind;
        for (kind, name) in [
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
            (SignalKind::pipe(), "SIGPIPE"),
        ] {
            // Installed now; a listener elsewhere (the config reload's SIGHUP) is woken too.
            match tokio::signal::unix::signal(kind) {
                Ok(mut s) => {
                    tokio::spawn(async move {
                        while s.recv().await.is_some() {
                            // Another listener (the config reload's SIGHUP) may act on it.
                            info!(signal = name, "signal received; it does not stop oauthgate");
                        }
                    });
                }
                Err(e) => warn!(signal = name, error = %e, "cannot listen for a signal"),
            }
        }
        let term = stop_on(SignalKind::terminate(), "SIGTERM");
        let int = stop_on(SignalKind::interrupt(), "SIGINT");
        async move {
            tokio::select! {
                name = term => info!("{name} received, shutting down"),
                name = int => info!("{name} received, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        info!("Ctrl-C received, shutting down");
    }
}

/// Resolves with `name` when `kind` arrives; installed at once, pending for ever if it
/// cannot be.
#[cfg(unix)]
fn stop_on(
    kind: tokio::signal::unix::SignalKind,
    name: &'static str,
) -> impl Future<Output = &'static str> + Send + 'static {
    let listener = tokio::signal::unix::signal(kind);
    async move {
        match listener {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(signal = name, error = %e, "cannot listen for a signal");
                std::future::pending::<()>().await;
            }
        }
        name
    }
}

//! Live config reload (SPEC §7, STYLE 15): on SIGHUP, and when the config file changes
//! (checked every second), the whole file is read and validated again; a valid one becomes a new
//! [`AppState`] built beside the running one and swapped in whole. Requests in flight, and
//! WebSocket tunnels, finish on the state they started with; new requests take the new one.
//!
//! An invalid file, or one that changes what only a restart can change, changes nothing: the
//! error is logged with its key path and counted (`oauthgate_config_reloads_total{result}`).

mod restart;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{error, info};

use crate::app::AppState;
use crate::config::Config;
use crate::error::StartError;
use crate::metrics::Metrics;
use crate::tls::ReloadingResolver;

/// How often the file is looked at (SPEC §7: at least every 2 s; once a second leaves room
/// for the settling and the build within the 3 s an edit may take to show). Reading a few
/// kilobytes a second costs nothing; a watcher crate would add a dependency (and platform
/// quirks) to save that.
const POLL: Duration = Duration::from_secs(1);

/// A change must read the same twice this far apart before it is loaded, so that a file
/// caught half-written (an editor or `cp` writing in place) is not reported as broken.
const SETTLE: Duration = Duration::from_millis(250);

/// Why a reload was not applied; logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Invalid(#[from] crate::error::ConfigError),
    #[error("{key} cannot change without a restart (running: {running}; file: {file})")]
    NeedsRestart {
        key: &'static str,
        running: String,
        file: String,
    },
    #[error(transparent)]
    Start(#[from] StartError),
}

pub struct Reloader {
    path: PathBuf,
    /// The config the running state was built from.
    running: Config,
    state: Arc<ArcSwap<AppState>>,
    metrics: Option<Arc<Metrics>>,
    tls: Option<Arc<ReloadingResolver>>,
    /// The file's bytes when last looked at (`None`: it could not be read).
    seen: Option<Vec<u8>>,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Reloader {
    /// Takes over SIGHUP at once (its default action ends the process).
    pub fn new(
        path: PathBuf,
        running: Config,
        state: Arc<ArcSwap<AppState>>,
        metrics: Option<Arc<Metrics>>,
        tls: Option<Arc<ReloadingResolver>>,
    ) -> Result<Self, StartError> {
        #[cfg(unix)]
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|source| StartError::Io {
                what: "cannot listen for SIGHUP to reload",
                path: path.clone(),
                source,
            })?;
        Ok(Reloader {
            seen: std::fs::read(&path).ok(),
            path,
            running,
            state,
            metrics,
            tls,
            #[cfg(unix)]
            hangup,
        })
    }

    /// Runs until the task is aborted.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signalled = tokio::select! {
                _ = tick.tick() => false,
                () = self.hangup() => true,
            };
            if signalled {
                info!(config = %self.path.display(), "SIGHUP received, reloading the config");
            } else if !self.changed().await {
                continue;
            }
            self.reload().await;
        }
    }

    #[cfg(unix)]
    async fn hangup(&mut self) {
        if self.hangup.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    #[cfg(not(unix))]
    async fn hangup(&mut self) {
        std::future::pending::<()>().await;
    }

    /// Whether the file's bytes differ from the ones last seen, and have settled.
    async fn changed(&mut self) -> bool {
        let now = tokio::fs::read(&self.path).await.ok();
        if now == self.seen {
            return false;
        }
        tokio::time::sleep(SETTLE).await;
        tokio::fs::read(&self.path).await.ok() == now
    }

    /// Reads, validates and applies the file; logs and counts the outcome.
    async fn reload(&mut self) {
        let result = self.try_reload().await;
        if let Some(m) = &self.metrics {
            m.reloaded(result.is_ok());
        }
        match result {
            Ok(()) => info!(config = %self.path.display(), "config reloaded"),
            Err(e) => error!(
                config = %self.path.display(),
                error = %crate::util::error_chain(&e),
                "config reload refused; the running config stays"
            ),
        }
    }

    async fn try_reload(&mut self) -> Result<(), Refused> {
        let text = tokio::fs::read(&self.path).await;
        self.seen = text.as_ref().ok().cloned();
        let text = text.map_err(|source| crate::error::ConfigError::Read {
            path: self.path.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&text);
        let config = Config::parse(&text, &|name| std::env::var(name).ok())?;
        restart::unchanged(&self.running, &config)?;
        let host = config.public_url.host_str().unwrap_or("localhost");
        let files = crate::tls::cert_files(&config.tls, &config.data_dir, host)?;
        let old = self.state.load_full();
        let state = AppState::new(&config, self.metrics.as_ref(), Some(&old)).await?;
        // Last, as it cannot be undone: the certificate files (a no-op when they are the same).
        if let (Some(tls), Some(files)) = (&self.tls, &files) {
            tls.switch(files)?;
        }
        self.state.store(Arc::new(state));
        self.running = config;
        Ok(())
    }
}

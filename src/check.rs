//! `oauthgate check` beyond the file's shape: what `serve` would refuse (certificate and key
//! files, stored keys, a `data_dir` it cannot write) and, when it answers, the central server
//! a gateway logs in with (its verify key, its `/oauth` path). `serve` runs the local checks
//! before it binds, and the central's once it listens, so a wrong `verify_key` is said once,
//! clearly, instead of failing every login. A Redis session store that does not answer is
//! a warning.

use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::config::{Config, ConfigError, TlsSource};

/// What the checks found: errors make `check` exit 64; warnings are printed.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
}

/// How long `check` waits for the central (it may well be down while a gateway is set up).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Every check, local files first, then the remote central when there is one.
pub async fn run(config: &Config) -> Findings {
    let mut found = Findings {
        errors: local(config),
        warnings: Vec::new(),
    };
    match central(config).await {
        Probe::Fine | Probe::NoRemote => {}
        Probe::Wrong(e) => found.errors.push(e),
        Probe::Unreachable(w) => found.warnings.push(w),
    }
    found
        .warnings
        .extend(crate::gateway::session::admin::ping(config).await);
    found
}

/// At start-up: the remote central's key compared with `verify_key`, logged (a central
/// that is down now may be up at the first login, so nothing is refused).
pub async fn startup(config: &Config) {
    match central(config).await {
        Probe::Fine | Probe::NoRemote => {}
        Probe::Wrong(e) => tracing::error!("{e}; every login will fail until this is fixed"),
        Probe::Unreachable(w) => tracing::info!("{w}"),
    }
}

/// What `serve` would refuse on this machine, each error naming its key: run by `check`,
/// and by `serve` before it binds, so both say the same thing the same way.
pub fn local(config: &Config) -> Vec<ConfigError> {
    let mut errors = files(config);
    errors.extend(data_dir(config));
    errors
}

/// The certificate and key files, and stored keys that `serve` reads.
fn files(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let TlsSource::Files { cert, key } = &config.tls.source {
        let missing = |key_path: &str, p: &Path| {
            (!p.is_file()).then(|| {
                ConfigError::at(
                    key_path,
                    format!("{} does not exist or is not a file", p.display()),
                )
            })
        };
        let absent: Vec<ConfigError> = [missing("tls.cert", cert), missing("tls.key", key)]
            .into_iter()
            .flatten()
            .collect();
        if absent.is_empty() {
            if let Err(e) = crate::tls::check_files(cert, key) {
                let text = crate::util::error_chain(&e);
                let text = text.strip_prefix("TLS: ").unwrap_or(&text);
                let at = if text.starts_with("certificate ") {
                    "tls.cert"
                } else if text.starts_with("private key ") {
                    "tls.key"
                } else {
                    "tls"
                };
                errors.push(ConfigError::at(at, text));
            }
        }
        errors.extend(absent);
    }
    if let TlsSource::Acme(acme) = &config.tls.source {
        if let Some(ca) = &acme.ca {
            if !ca.is_file() {
                let text = format!("{} does not exist or is not a file", ca.display());
                errors.push(ConfigError::at("tls.acme.ca", text));
            }
        }
    }
    if let Some(central) = &config.central {
        if let Err(e) = crate::central::keys::load(&central.signing_key) {
            errors.push(ConfigError::at("central.signing_key", e));
        }
    }
    let generated_secret = config
        .gateway
        .as_ref()
        .is_some_and(|g| g.login.is_some() && g.session_secret.is_none());
    if generated_secret {
        // serve refuses a generated secret file that was cut short (see gateway/session.rs).
        let path = config.data_dir.join("session.key");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if text.trim().len() < 32 {
                errors.push(ConfigError::at(
                    "gateway.session.secret",
                    format!(
                        "is not set, and {} (the generated one) is too short: remove the file \
                         to have a new one made (every session ends) or set the secret",
                        path.display()
                    ),
                ));
            }
        }
    }
    errors
}

/// The files `serve` would generate because they are not there yet, each with the key that
/// decides where it goes.
fn to_generate(config: &Config) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut files = Vec::new();
    if config.tls.source == TlsSource::SelfSigned {
        let host = config.public_url.host_str().unwrap_or("localhost");
        let f = crate::tls::self_signed_files(&config.data_dir, host);
        files.extend([("data_dir", f.cert), ("data_dir", f.key)]);
    }
    if let TlsSource::Acme(acme) = &config.tls.source {
        // Obtained from the ACME server once serving, not by `check`.
        let dir = &config.data_dir;
        files.push((
            "data_dir",
            crate::tls::store::account_path(dir, &acme.directory),
        ));
        for host in config.hosts() {
            let f = crate::tls::store::cert_files(dir, &host);
            files.extend([("data_dir", f.cert), ("data_dir", f.key)]);
        }
    }
    if let Some(c) = &config.central {
        files.push(("central.signing_key", c.signing_key.clone()));
    }
    if config
        .gateway
        .as_ref()
        .is_some_and(|g| g.login.is_some() && g.session_secret.is_none())
    {
        files.push(("data_dir", config.data_dir.join("session.key")));
    }
    files.retain(|(_, f)| !f.exists());
    files
}

/// Whether `serve` can write what it will generate (the usual Docker mistake: a
/// bind-mounted folder owned by another uid). Nothing to generate, nothing to check: a
/// read-only `data_dir` with every file in place stays fine. Writes only a probe file.
fn data_dir(config: &Config) -> Option<ConfigError> {
    to_generate(config).into_iter().find_map(|(key, file)| {
        let dir = file.parent().unwrap_or(Path::new("."));
        writable(key, dir)
    })
}

fn writable(key: &str, dir: &Path) -> Option<ConfigError> {
    // The folder, or the nearest parent that exists (serve creates the rest).
    let existing = dir
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())?;
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    if !existing.is_dir() {
        return Some(ConfigError::at(
            key,
            format!("{} is not a folder", existing.display()),
        ));
    }
    let probe = existing.join(format!(".oauthgate-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(ConfigError::at(
            key,
            format!(
                "{} is not writable ({e}); generated keys and certificates are kept there: \
                 make it writable by this user{}",
                existing.display(),
                uid_hint()
            ),
        )),
    }
}

/// ` (uid N)`, read from /proc where there is one: what `chown` needs.
fn uid_hint() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .map_or_else(String::new, |uid| format!(" (uid {uid})"))
}

enum Probe {
    NoRemote,
    Fine,
    Wrong(ConfigError),
    Unreachable(String),
}

/// `<oauth_proxy.url>/key` compared with `verify_key`, for a gateway whose central is
/// another process.
async fn central(config: &Config) -> Probe {
    let Some(login) = config.gateway.as_ref().and_then(|g| g.login.as_ref()) else {
        return Probe::NoRemote;
    };
    if login.verify_keys.is_empty() {
        // The central of this same process.
        return Probe::NoRemote;
    }
    let url = format!("{}/key", login.url);
    let Ok(parsed) = Url::parse(&url) else {
        return Probe::NoRemote;
    };
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // Only the public key is compared, and only on this machine may it be self-signed.
        .danger_accept_invalid_certs(crate::config::is_loopback(&parsed))
        .build();
    let answer = match client {
        Ok(c) => c.get(parsed).send().await,
        Err(e) => return Probe::Unreachable(format!("cannot build a client to check {url}: {e}")),
    };
    let res = match answer {
        Ok(r) => r,
        Err(e) => {
            return Probe::Unreachable(format!(
                "could not reach {url} to compare gateway.oauth_proxy.verify_key: {}",
                crate::util::error_chain(&e)
            ))
        }
    };
    let status = res.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        let hint = if login.url.ends_with("/oauth") {
            "is this the central's URL?".to_owned()
        } else {
            format!(
                "the central answers under /oauth: write {}/oauth",
                login.url
            )
        };
        return Probe::Wrong(ConfigError::at(
            "gateway.oauth_proxy.url",
            format!("{url} answers 404; {hint}"),
        ));
    }
    if !status.is_success() {
        return Probe::Unreachable(format!("{url} answers {status}; verify_key not compared"));
    }
    let served = res.text().await.unwrap_or_default();
    match crate::assertion::parse_verify_key(served.trim()) {
        Some(key) if login.verify_keys.contains(&key) => Probe::Fine,
        Some(_) => Probe::Wrong(ConfigError::at(
            "gateway.oauth_proxy.verify_key",
            format!("does not match the central: {url} serves {}", served.trim()),
        )),
        None => Probe::Wrong(ConfigError::at(
            "gateway.oauth_proxy.url",
            format!("{url} does not answer with a verify key: is this the central's /oauth URL?"),
        )),
    }
}

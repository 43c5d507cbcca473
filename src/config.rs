//! `config.yaml`: loading, `${ENV}` substitution and validation into the typed [`Config`].
//!
//! Two types, as in the style guide: the serde shape in `raw` (private) and the validated
//! `Config` built from it by `TryFrom`. Everything is checked here, before any port is bound;
//! every error names the key path it is about.

mod central;
mod env;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use url::Url;

pub use crate::error::ConfigError;
pub use central::{
    is_loopback, CentralConfig, ClientAuth, ClientConfig, Protocol, ProviderConfig, ProviderKind,
    Secret,
};
use raw::{RawConfig, RawGateway, RawLimits, RawRoute, RawTls};

/// The validated configuration of one `oauthgate` process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The HTTPS listener address.
    pub listen: SocketAddr,
    /// How browsers reach this process (scheme `https`, no path).
    pub public_url: Url,
    /// Where generated keys and certificates live.
    pub data_dir: PathBuf,
    pub tls: TlsSettings,
    pub limits: Limits,
    pub central: Option<CentralConfig>,
    pub gateway: Option<GatewayConfig>,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub source: TlsSource,
    /// A client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM certificate chain and private key, reloaded when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate for the `public_url` host (and localhost), generated once into `data_dir`.
    SelfSigned,
}

/// Bounds that protect the listener from slow or greedy clients.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's own endpoints (`/_auth/health`, …); routes cannot shadow it.
    pub auth_prefix: String,
    pub upstream: UpstreamSettings,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to receiving the response head.
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Normalised prefix: starts with `/`, no trailing `/` except for the root.
    pub prefix: String,
    pub target: Target,
    /// Send the client's `Host` upstream (default) rather than the upstream's authority.
    pub preserve_host: bool,
}

#[derive(Debug, Clone)]
pub enum Target {
    /// An HTTP or HTTPS origin; the normalised request path is forwarded unchanged.
    Http {
        scheme: Scheme,
        authority: Authority,
    },
    /// A directory of static files (GET and HEAD only), looked up by the request path.
    Files(PathBuf),
}

impl Config {
    /// Reads, substitutes and validates the file at `path`, with variables from the environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Parses YAML text, taking `${VAR}` values from `lookup`.
    pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        env::substitute(&mut doc, &mut Vec::new(), lookup)?;
        let raw: RawConfig = serde_path_to_error::deserialize(doc).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                "config".to_owned()
            } else {
                path
            };
            ConfigError::at(&path, e.into_inner().to_string())
        })?;
        Self::try_from(raw)
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen: SocketAddr = raw.listen.parse().map_err(|_| {
            ConfigError::at(
                "listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:8443 or [::]:443",
                    raw.listen
                ),
            )
        })?;
        let public_url = public_url(&raw.public_url)?;
        let tls = tls(raw.tls)?;
        let limits = limits(raw.limits)?;
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let central = raw
            .central
            .map(|c| central::central_config(c, &public_url, &data_dir))
            .transpose()?;
        if let Some(c) = &central {
            let dev = c.providers.iter().find(|p| p.kind == ProviderKind::Dev);
            if let (Some(dev), false) = (dev, listen.ip().is_loopback()) {
                return Err(ConfigError::at(
                    &format!("central.providers.{}.kind", dev.name),
                    format!(
                        "the dev provider lets anyone log in as anyone; it only runs when listen is a loopback address, not {listen}"
                    ),
                ));
            }
        }
        let gateway = raw.gateway.map(gateway_config).transpose()?;
        if let (Some(_), Some(g)) = (&central, &gateway) {
            let oauth = crate::central::PREFIX;
            if crate::gateway::routes::under(&g.auth_prefix, oauth) {
                return Err(ConfigError::at(
                    "gateway.auth_prefix",
                    format!("cannot be under {oauth}, the central server's prefix"),
                ));
            }
            if let Some(i) = g
                .routes
                .iter()
                .position(|r| crate::gateway::routes::under(&r.prefix, oauth))
            {
                return Err(ConfigError::at(
                    &format!("gateway.routes[{i}].prefix"),
                    format!(
                        "would shadow {oauth}, where the central server of this process answers"
                    ),
                ));
            }
        }
        if central.is_none() && gateway.is_none() {
            return Err(ConfigError::at(
                "config",
                "nothing to serve: add a `gateway:` section with routes, a `central:` section, or both",
            ));
        }
        Ok(Config {
            listen,
            public_url,
            data_dir,
            tls,
            limits,
            central,
            gateway,
        })
    }
}

fn not_yet(path: &str, what: &str) -> ConfigError {
    ConfigError::at(
        path,
        format!("{what} is not supported by this version of oauthgate yet"),
    )
}

fn public_url(text: &str) -> Result<Url, ConfigError> {
    let err = |m: &str| ConfigError::at("public_url", format!("`{text}` {m}"));
    let url = Url::parse(text).map_err(|e| err(&format!("is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(err("must start with https:// (oauthgate terminates TLS)"));
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(err("must name a host and no user"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            "must be an origin only, with no path, query or fragment",
        ));
    }
    Ok(url)
}

fn duration(path: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(default),
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(ConfigError::at(path, "must be longer than zero")),
            Err(e) => Err(ConfigError::at(
                path,
                format!("`{t}` is not a duration like 30s, 5m or 12h: {e}"),
            )),
        },
    }
}

fn tls(raw: RawTls) -> Result<TlsSettings, ConfigError> {
    let source = match (raw.cert, raw.key, raw.self_signed) {
        (Some(cert), Some(key), false) => TlsSource::Files { cert, key },
        (None, None, true) => TlsSource::SelfSigned,
        (Some(_), Some(_), true) => {
            return Err(ConfigError::at(
                "tls.self_signed",
                "give either cert and key, or self_signed: true, not both",
            ))
        }
        (Some(_), None, _) => return Err(ConfigError::at("tls.key", "is required with tls.cert")),
        (None, Some(_), _) => return Err(ConfigError::at("tls.cert", "is required with tls.key")),
        (None, None, false) => {
            return Err(ConfigError::at(
                "tls",
                "give cert and key (PEM files), or self_signed: true",
            ))
        }
    };
    Ok(TlsSettings {
        source,
        handshake_timeout: duration(
            "tls.handshake_timeout",
            raw.handshake_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        reload_interval: duration(
            "tls.reload_interval",
            raw.reload_interval.as_deref(),
            Duration::from_secs(30),
        )?,
    })
}

fn limits(raw: RawLimits) -> Result<Limits, ConfigError> {
    let max_header_bytes = raw.max_header_bytes.unwrap_or(64 * 1024);
    if !(8 * 1024..=1024 * 1024).contains(&max_header_bytes) {
        return Err(ConfigError::at(
            "limits.max_header_bytes",
            "must be between 8192 and 1048576",
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(10_000);
    if max_connections == 0 {
        return Err(ConfigError::at(
            "limits.max_connections",
            "must be at least 1",
        ));
    }
    Ok(Limits {
        max_connections,
        header_read_timeout: duration(
            "limits.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        max_header_bytes,
        shutdown_grace: duration(
            "limits.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(10),
        )?,
    })
}

fn gateway_config(raw: RawGateway) -> Result<GatewayConfig, ConfigError> {
    if raw.oauth_proxy.is_some() {
        return Err(not_yet(
            "gateway.oauth_proxy",
            "login through a central server",
        ));
    }
    if raw.session.is_some() {
        return Err(not_yet("gateway.session", "the login session"));
    }
    let auth_prefix = match raw.auth_prefix {
        None => "/_auth".to_owned(),
        Some(p) => {
            let p = prefix(&p).map_err(|m| ConfigError::at("gateway.auth_prefix", m))?;
            if p == "/" {
                return Err(ConfigError::at("gateway.auth_prefix", "cannot be `/`"));
            }
            p
        }
    };
    let u = raw.upstream;
    let upstream = UpstreamSettings {
        connect_timeout: duration(
            "gateway.upstream.connect_timeout",
            u.connect_timeout.as_deref(),
            Duration::from_secs(5),
        )?,
        response_timeout: duration(
            "gateway.upstream.response_timeout",
            u.response_timeout.as_deref(),
            Duration::from_secs(60),
        )?,
        idle_timeout: duration(
            "gateway.upstream.idle_timeout",
            u.idle_timeout.as_deref(),
            Duration::from_secs(90),
        )?,
    };
    if raw.routes.is_empty() {
        return Err(ConfigError::at(
            "gateway.routes",
            "needs at least one route",
        ));
    }
    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.into_iter().enumerate() {
        let at = |key: &str| format!("gateway.routes[{i}].{key}");
        let route = route(r, &at)?;
        if crate::gateway::routes::under(&route.prefix, &auth_prefix) {
            return Err(ConfigError::at(
                &at("prefix"),
                format!(
                    "`{}` would shadow the gateway's own {auth_prefix}",
                    route.prefix
                ),
            ));
        }
        if let Some(j) = routes.iter().position(|o| o.prefix == route.prefix) {
            return Err(ConfigError::at(
                &at("prefix"),
                format!("`{}` is already used by gateway.routes[{j}]", route.prefix),
            ));
        }
        routes.push(route);
    }
    Ok(GatewayConfig {
        auth_prefix,
        upstream,
        routes,
    })
}

fn route(raw: RawRoute, at: &dyn Fn(&str) -> String) -> Result<Route, ConfigError> {
    let prefix = prefix(&raw.prefix).map_err(|m| ConfigError::at(&at("prefix"), m))?;
    match raw.login.as_deref() {
        None | Some("none") => {}
        Some("required" | "optional") => {
            return Err(not_yet(&at("login"), "login (needs gateway.oauth_proxy)"))
        }
        Some(other) => {
            return Err(ConfigError::at(
                &at("login"),
                format!("`{other}` is not one of required, optional, none"),
            ))
        }
    }
    if raw.allow.is_some() {
        return Err(not_yet(&at("allow"), "`allow` (needs login)"));
    }
    Ok(Route {
        prefix,
        target: target(&raw.upstream).map_err(|m| ConfigError::at(&at("upstream"), m))?,
        preserve_host: raw.preserve_host.unwrap_or(true),
    })
}

/// Checks a route prefix and returns it without a trailing slash (except for `/`).
fn prefix(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("`{text}` must start with /"));
    }
    let trimmed = text.trim_end_matches('/');
    let bad_segment = trimmed
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..");
    let bad_char = trimmed
        .chars()
        .any(|c| c.is_control() || matches!(c, '?' | '#' | '%' | ';' | '\\' | ' '));
    if bad_segment || bad_char {
        return Err(format!(
            "`{text}` must be a plain path like /chat: no empty or dot segments, no ? # % ; \\ or spaces"
        ));
    }
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

fn target(text: &str) -> Result<Target, String> {
    if let Some(dir) = text.strip_prefix("file://") {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(format!("`{text}`: {} is not a directory", dir.display()));
        }
        return Ok(Target::Files(dir));
    }
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let scheme = match url.scheme() {
        "http" => Scheme::HTTP,
        "https" => Scheme::HTTPS,
        other => {
            return Err(format!(
                "`{text}`: scheme `{other}` is not one of http, https, file"
            ))
        }
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` must be an origin like http://127.0.0.1:8080 (the request path is forwarded as is)"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` must not carry a user or password"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let authority = authority
        .parse()
        .map_err(|e| format!("`{text}` has a bad host: {e}"))?;
    Ok(Target::Http { scheme, authority })
}

#[cfg(test)]
mod tests;

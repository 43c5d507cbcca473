//! `config.yaml`: loading, `${ENV}` substitution and validation into the typed [`Config`].
//!
//! Two types, as in the style guide: the serde shape in `raw` (private) and the validated
//! `Config` built from it by `TryFrom`. Everything is checked here, before any port is bound;
//! every error names the key path it is about.

/// `/oauth`, as a literal for `concat!`.
macro_rules! central_prefix {
    () => {
        "/oauth"
    };
}

mod central;
mod env;
mod gateway;
mod identity;
mod policy;
mod raw;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

pub use crate::error::ConfigError;
/// Where the central role answers: `public_url` + this is its issuer.
pub const CENTRAL_PREFIX: &str = central_prefix!();

pub use central::{
    is_loopback, provider_display_name, CentralConfig, ClientAuth, ClientConfig, GroupsClaim,
    Protocol, ProviderConfig, ProviderKind, Secret, CALLBACK,
};
pub use gateway::{
    origin_of, Allow, AllowEntry, GatewayConfig, Login, LoginSource, Route, RouteHost,
    SessionStore, Target, UpstreamSettings, UpstreamTls,
};
pub use identity::{BearerIssuer, IdentityConfig, MINTED_PROVIDER};
pub use policy::{Methods, RouteAccess};
use raw::{RawConfig, RawLimits};
pub use tls::{AcmeSettings, Challenge, TlsSettings, TlsSource};

/// The validated configuration of one `oauthgate` process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The HTTPS listener address.
    pub listen: SocketAddr,
    /// `http_listen`: plain HTTP for ACME HTTP-01 answers; everything else is redirected.
    pub http_listen: Option<SocketAddr>,
    /// How browsers reach this process (scheme `https`, no path).
    pub public_url: Url,
    /// Where generated keys and certificates live.
    pub data_dir: PathBuf,
    pub tls: TlsSettings,
    pub limits: Limits,
    pub log: Log,
    pub central: Option<CentralConfig>,
    pub gateway: Option<GatewayConfig>,
    /// Things that work but are probably not what was meant, each naming its key path:
    /// printed by `check`, logged at start-up.
    pub warnings: Vec<String>,
    /// `None`: no metrics are kept (counting costs one branch per request).
    pub metrics: Option<MetricsSettings>,
}

/// `metrics:`: where Prometheus scrapes `GET /metrics` (plain HTTP: keep it on a private
/// address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
}

/// Bounds that protect the listener from slow or greedy clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// An HTTP/2 connection with no open stream for this long is closed (GOAWAY, then close),
    /// whether or not it answers our PINGs.
    pub idle_timeout: Duration,
    /// A WebSocket tunnel that carries no byte either way for this long is closed, both sides.
    pub tunnel_idle_timeout: Duration,
    /// Open client connections one address may hold (IPv6: one /64); 0 means no cap.
    /// `gateway.trusted_proxies` are exempt.
    pub max_connections_per_ip: usize,
    /// A request body that brings no byte for this long while it is sent upstream is cut:
    /// 408 when no response has started yet (nginx's `client_body_timeout`).
    pub body_idle_timeout: Duration,
    /// A response body that brings no byte for this long, while the client waits for it, is
    /// cut (nginx's `proxy_read_timeout`, between two reads): the client's connection ends
    /// without the body's end, and the upstream connection is closed.
    pub upstream_body_idle_timeout: Duration,
}

/// `log:`: how log lines are written (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Log {
    pub format: LogFormat,
    /// One access line per request (`RUST_LOG=warn` turns them off as well).
    pub access: bool,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable `key=value` lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for every line.
    Json,
}

/// nginx closes an idle HTTP/2 connection after `keepalive_timeout` (75 s; `http2_idle_timeout`
/// was 3 min before it), Caddy after 5 min. Three minutes keeps a browser's connection across
/// the pauses between clicks while a quiet connection gives its slot back within minutes.
const IDLE_TIMEOUT: Duration = Duration::from_secs(180);

/// WebSocket libraries ping every 15 to 30 s (socket.io, SignalR, Phoenix), because nginx's
/// `proxy_read_timeout` (60 s) and most load balancers cut silent tunnels after a minute or two;
/// Caddy cuts none. An hour breaks no application that works behind either, and still frees the
/// tunnels of clients that vanished without a FIN.
const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// nginx's `client_body_timeout` and `proxy_read_timeout`: a minute between two reads of a
/// body is far longer than any working client or application pauses mid-stream.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        // A field that refuses the string of a whole `${NAME}` that reads as a number or a
        // boolean gets the typed value, and the shape is read again: bounded by the number
        // of such values, and never applied to a field that takes strings.
        let mut retype: Vec<String> = Vec::new();
        let (raw, warnings) = loop {
            let mut doc = doc.clone();
            let found = env::substitute(&mut doc, lookup, &retype)?;
            match serde_path_to_error::deserialize::<_, RawConfig>(doc) {
                Ok(raw) => break (raw, found.warnings),
                Err(e) => {
                    let path = e.path().to_string();
                    if found.typed.iter().any(|(p, _)| *p == path) {
                        retype.push(path);
                        continue;
                    }
                    return Err(shape_error(&path, e.into_inner()));
                }
            }
        };
        let mut config = Self::try_from(raw)?;
        config.warnings.splice(0..0, warnings);
        Ok(config)
    }
}

/// A serde error at `path`, in the file's words: the shape's type names (`RawProvider`) mean
/// nothing to the reader, and a section that is empty or a string where a mapping belongs is
/// almost always an indentation mistake.
fn shape_error(path: &str, e: serde_yaml::Error) -> ConfigError {
    // `.` is the document itself; an empty path, an unknown empty key at its top.
    let path = if path == "." || path.is_empty() {
        "config"
    } else {
        path
    };
    let text = e.to_string();
    // Keys that take one of two shapes (serde's untagged enums, named after internal types).
    for (name, want) in [
        ("OneOrMany", "one value or a list of values"),
        ("RawPreserveHost", "true, false or any"),
    ] {
        if text.contains(&format!("untagged enum {name}")) {
            return ConfigError::at(path, format!("expected {want}"));
        }
    }
    let Some((before, after)) = text.split_once("expected struct Raw") else {
        return ConfigError::at(path, text);
    };
    // What follows the type name (serde_yaml adds a position: " at line 3 column 5").
    let tail = after.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    let before = before.replace("unit value", "an empty value");
    ConfigError::at(
        path,
        format!(
            "{before}expected a mapping{tail} (keys indented below `{}`: is the indentation right?)",
            path.rsplit('.').next().unwrap_or(path)
        ),
    )
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = address("listen", &raw.listen)?;
        let metrics = raw
            .metrics
            .map(|m| {
                Ok::<_, ConfigError>(MetricsSettings {
                    listen: address("metrics.listen", &m.listen)?,
                })
            })
            .transpose()?;
        if metrics
            .as_ref()
            .is_some_and(|m| m.listen == listen && listen.port() != 0)
        {
            return Err(ConfigError::at(
                "metrics.listen",
                "must differ from `listen` (the metrics endpoint has a listener of its own)",
            ));
        }
        let public_url = public_url(&raw.public_url)?;
        let tls = tls::tls(raw.tls)?;
        let http_listen = raw
            .http_listen
            .as_deref()
            .map(|a| address("http_listen", a))
            .transpose()?;
        tls::check_listeners(&tls, listen, http_listen, metrics.as_ref())?;
        let limits = limits(raw.limits)?;
        let log = Log {
            format: raw.log.format.unwrap_or_default(),
            access: raw.log.access.unwrap_or(true),
        };
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let central = raw
            .central
            .map(|c| central::central_config(c, &public_url, &data_dir))
            .transpose()?;
        if let Some(c) = &central {
            central::dev_gate(c, listen, &public_url)?;
        }
        let mut central = central;
        let gateway = match raw.gateway {
            Some(g) => {
                let (mut g, own_clients) =
                    gateway::gateway_config(g, &public_url, central.as_ref())?;
                // The upstream pools apply these `limits` to the bodies they carry.
                g.upstream.body_idle_timeout = limits.body_idle_timeout;
                g.upstream.response_body_idle_timeout = limits.upstream_body_idle_timeout;
                if let Some(central) = central.as_mut() {
                    for client in own_clients {
                        if !central
                            .clients
                            .iter()
                            .any(|c| c.redirect_url == client.redirect_url)
                        {
                            central.clients.push(client);
                        }
                    }
                }
                Some(g)
            }
            None => None,
        };
        if let (Some(_), Some(g)) = (&central, &gateway) {
            let oauth = CENTRAL_PREFIX;
            if crate::path::under(&g.auth_prefix, oauth) {
                return Err(ConfigError::at(
                    "gateway.auth_prefix",
                    format!("cannot be under {oauth}, the central server's prefix"),
                ));
            }
            if let Some(i) = g
                .routes
                .iter()
                .position(|r| crate::path::under(&r.prefix, oauth))
            {
                return Err(ConfigError::at(
                    &format!("gateway.routes[{i}].prefix"),
                    format!(
                        "would shadow {oauth}, where the central server of this process answers"
                    ),
                ));
            }
        }
        let mut warnings = Vec::new();
        if let Some(w) = port_mismatch(listen, &public_url) {
            warnings.push(w);
        }
        if central.is_none() && gateway.is_none() {
            return Err(ConfigError::at(
                "config",
                "nothing to serve: add a `gateway:` section with routes, a `central:` section, or both",
            ));
        }
        let mut config = Config {
            listen,
            http_listen,
            public_url,
            data_dir,
            tls,
            limits,
            log,
            central,
            gateway,
            warnings,
            metrics,
        };
        tls::check_acme_hosts(&mut config)?;
        Ok(config)
    }
}

/// A `public_url` on this machine whose port is not the listener's: browsers here would not
/// reach it. Elsewhere a proxy or port mapping may well sit between the two.
fn port_mismatch(listen: SocketAddr, public_url: &Url) -> Option<String> {
    let public = public_url.port_or_known_default()?;
    let mismatch =
        central::is_loopback(public_url) && listen.port() != 0 && listen.port() != public;
    mismatch.then(|| {
        format!(
            "public_url: `{public_url}` names port {public}, but listen is port {}: browsers on this \
             machine reach this process there only through a proxy on port {public}; without \
             one, change both together",
            listen.port()
        )
    })
}

/// A listen address at `path`.
fn address(path: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::at(
            path,
            format!("`{text}` is not an address like 127.0.0.1:8443 or [::]:443"),
        )
    })
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

pub(super) fn duration(
    path: &str,
    text: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
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
    // A tenth of all slots per address by default: an office behind one NAT (a browser holds
    // one HTTP/2 connection per site, at most six HTTP/1.1 ones) fits, and one host alone
    // cannot take every slot.
    let max_connections_per_ip = raw
        .max_connections_per_ip
        .unwrap_or(max_connections.div_ceil(10));
    Ok(Limits {
        max_connections,
        max_connections_per_ip,
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
        idle_timeout: duration(
            "limits.idle_timeout",
            raw.idle_timeout.as_deref(),
            IDLE_TIMEOUT,
        )?,
        tunnel_idle_timeout: duration(
            "limits.tunnel_idle_timeout",
            raw.tunnel_idle_timeout.as_deref(),
            TUNNEL_IDLE_TIMEOUT,
        )?,
        body_idle_timeout: duration(
            "limits.body_idle_timeout",
            raw.body_idle_timeout.as_deref(),
            BODY_IDLE_TIMEOUT,
        )?,
        upstream_body_idle_timeout: duration(
            "limits.upstream_body_idle_timeout",
            raw.upstream_body_idle_timeout.as_deref(),
            BODY_IDLE_TIMEOUT,
        )?,
    })
}

#[cfg(test)]
mod tests;

//! The `gateway:` section: routes with their login policy, where to log in, the session.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use http::uri::{Authority, Scheme};
use url::Url;

use super::central::{CentralConfig, ClientConfig, Protocol, Secret};
use super::raw::{RawGateway, RawUpstreamSettings};
use super::{duration, ConfigError};
pub use host::RouteHost;
use login::login_source;
use route::routes;
pub use route::UpstreamTls;
use values::{prefix, session_cookie};

mod host;
mod login;
mod route;
mod values;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Shown on the gateway's pages (the threebot's name).
    pub title: String,
    /// `public_url` without a trailing `/`: the `iss` of what the gateway signs.
    pub public_url: String,
    /// The gateway's own endpoints (`/_auth/login`, …); routes cannot shadow it.
    pub auth_prefix: String,
    /// `public_url` + `auth_prefix` + `/callback`: where the central sends browsers back.
    pub callback_url: String,
    /// `public_url`'s host name, lower case: the `Host` that requests to upstreams must name.
    pub public_host: String,
    /// `public_url`'s port when it names one: route hosts are served on the same listener, so
    /// their origins (`https://<host>[:port]`) carry it too.
    pub public_port: Option<u16>,
    /// Where logins happen; `None` when no route needs one.
    pub login: Option<LoginSource>,
    /// Cookie key material; generated into `data_dir` when absent.
    pub session_secret: Option<Secret>,
    pub session_ttl: Duration,
    /// The session cookie's name: `__Host-oauthgate-session` unless set (two gateways on one
    /// host name with different ports need different names: cookies ignore ports).
    pub session_cookie: String,
    /// Peers whose `X-Original-URI` / `X-Forwarded-Uri` `/_auth/check` believes.
    pub trusted_proxies: Vec<IpAddr>,
    pub upstream: UpstreamSettings,
    pub routes: Vec<Route>,
    /// `identity`: extra identity headers, and the signed assertion.
    pub identity: super::IdentityConfig,
    /// `bearer.issuers`: whose tokens `bearer: true` routes accept (besides minted ones).
    pub bearer_issuers: Vec<super::BearerIssuer>,
}

/// The central server a gateway logs people in with (the seed's `oauth_proxy`).
#[derive(Debug, Clone)]
pub struct LoginSource {
    /// The central's `/oauth` URL: `<url>/authorize` is where logins start; also the
    /// assertions' expected `iss`.
    pub url: String,
    /// Keys an assertion may be signed with (several during a rotation). Empty when the
    /// central role runs in this process: its own key is used.
    pub verify_keys: Vec<VerifyingKey>,
    /// Offered on the login page, in this order.
    pub providers: Vec<String>,
    /// How the chooser names each of `providers` (same order): the central's
    /// `display_name` when it runs in this process, else the preset's name or the name.
    pub display_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    /// Time allowed from the end of the request (its body included) to the response head.
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
    /// Idle keep-alive connections kept per upstream origin; more are closed. `None` (the
    /// default): as many as the load needed, each closed after `idle_timeout`.
    pub max_idle: Option<usize>,
    /// `limits.body_idle_timeout`: a request body stalled this long is cut.
    pub body_idle_timeout: Duration,
    /// `limits.upstream_body_idle_timeout`: a response body stalled this long is cut.
    pub response_body_idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Login {
    /// Logged-in users only; others are sent to log in (browsers) or get 401 (APIs).
    Required,
    /// Identity forwarded when there is a session; no redirect otherwise.
    Optional,
    /// No identity; client identity headers are still removed.
    None,
}

/// Who may use a route. The identity lists (emails, domains, logins, providers, groups) are
/// ORed, all empty meaning any logged-in user; `networks`, when set, must match as well (AND),
/// and is the one list a `login: none` or `optional` route may have. An entry of `emails`,
/// `domains`, `logins` or `groups` written `<provider>:<value>` matches only sessions from
/// that provider; a plain entry matches the value from any offered provider.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    /// Lower-cased.
    pub emails: Vec<AllowEntry>,
    /// Lower-cased, compared with the part after the last `@`.
    pub domains: Vec<AllowEntry>,
    /// Lower-cased.
    pub logins: Vec<AllowEntry>,
    pub providers: Vec<String>,
    /// Lower-cased; compared with the session's groups ignoring case.
    pub groups: Vec<AllowEntry>,
    /// The client address must be in one of these (when any).
    pub networks: Vec<ipnet::IpNet>,
}

impl Allow {
    /// Whether any identity list is set (`networks` is not one).
    pub fn names_anyone(&self) -> bool {
        !(self.emails.is_empty()
            && self.domains.is_empty()
            && self.logins.is_empty()
            && self.providers.is_empty()
            && self.groups.is_empty())
    }
}

/// One value of an `allow` list, perhaps tied to one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub provider: Option<String>,
    pub value: String,
}

impl AllowEntry {
    /// Whether this entry (lower case) admits `value`, in any case, from `provider`.
    pub fn admits(&self, provider: &str, value: &str) -> bool {
        self.provider.as_deref().is_none_or(|p| p == provider)
            && super::policy::same_folded(value, &self.value)
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// `host:`: the only host this route serves; `None` serves any host (as before hosts).
    pub host: Option<RouteHost>,
    /// Normalised prefix: starts with `/`, no trailing `/` except for the root.
    pub prefix: String,
    pub target: Target,
    pub login: Login,
    pub allow: Allow,
    /// Send the client's `Host` upstream (default) rather than the upstream's authority.
    pub preserve_host: bool,
    /// Serve requests whatever their `Host` (`preserve_host: any`); otherwise a `Host` other
    /// than `public_url`'s gets 421.
    pub any_host: bool,
    /// Match the prefix ignoring case, and trailing dots and spaces of a segment, as
    /// case-insensitive backends (Express by default, IIS) read paths.
    pub case_insensitive: bool,
    /// `methods`, `cors_preflight`, `bearer`.
    pub access: super::policy::RouteAccess,
    /// `strip_prefix: true`: the prefix's segments are cut from the path sent upstream
    /// (`/app/x` goes as `/x`, `/app` as `/`).
    pub strip_prefix: bool,
    /// `upstream_tls`: whom an `https://` upstream's certificate must chain to, and the name
    /// it must carry.
    pub upstream_tls: Option<UpstreamTls>,
}

#[derive(Debug, Clone)]
pub enum Target {
    /// An HTTP or HTTPS origin; the normalised request path is forwarded (less the route's
    /// prefix with `strip_prefix`).
    Http {
        scheme: Scheme,
        authority: Authority,
    },
    /// A directory of static files (GET and HEAD only), looked up by the request path.
    Files(PathBuf),
}

pub(super) fn gateway_config(
    raw: RawGateway,
    public_url: &Url,
    central: Option<&CentralConfig>,
) -> Result<(GatewayConfig, Vec<ClientConfig>), ConfigError> {
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
    let callback_url = format!(
        "{}{auth_prefix}/callback",
        public_url.as_str().trim_end_matches('/')
    );
    let uses_own_central =
        central.is_some() && raw.oauth_proxy.as_ref().is_none_or(|o| o.url.is_none());
    let login = login_source(raw.oauth_proxy, central)?;

    let session_secret = match raw.session.secret {
        Some(s) if s.len() < 32 => {
            return Err(ConfigError::at(
                "gateway.session.secret",
                "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
            ))
        }
        s => s.map(Secret),
    };
    let session_ttl = session_ttl(raw.session.ttl.as_deref())?;
    let session_cookie = session_cookie(raw.session.cookie_name)?;
    let trusted_proxies = trusted_proxies(raw.trusted_proxies)?;
    let upstream = upstream_settings(raw.upstream)?;
    let identity = super::identity::identity(raw.identity)?;
    let bearer_issuers = super::identity::bearer(raw.bearer)?;
    let default_case = raw.case_insensitive.unwrap_or(false);
    let routes = routes(raw.routes, login.as_ref(), &auth_prefix, default_case)?;
    // The gateway of this process is a client of its own central server, with the callback
    // of `public_url` and of every exact route host (each host is an origin of its own).
    let mut own_clients = Vec::new();
    if login.is_some() && uses_own_central {
        own_clients.push(callback_url.clone());
        for route in &routes {
            if let Some(RouteHost::Exact(h)) = &route.host {
                let url = format!("{}{auth_prefix}/callback", origin_of(h, public_url.port()));
                if !own_clients.contains(&url) {
                    own_clients.push(url);
                }
            }
        }
    }
    let own_clients = own_clients
        .into_iter()
        .map(|redirect_url| ClientConfig {
            redirect_url,
            protocol: Protocol::Assertion,
        })
        .collect();
    let config = GatewayConfig {
        title: raw
            .title
            .unwrap_or_else(|| public_url.host_str().unwrap_or("oauthgate").to_owned()),
        public_url: public_url.as_str().trim_end_matches('/').to_owned(),
        auth_prefix,
        callback_url,
        public_host: public_url
            .host_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        public_port: public_url.port(),
        login,
        session_secret,
        session_ttl,
        session_cookie,
        trusted_proxies,
        upstream,
        routes,
        identity,
        bearer_issuers,
    };
    Ok((config, own_clients))
}

/// The origin of a host this gateway serves: `https://<host>`, with `public_url`'s port when
/// it names one.
pub fn origin_of(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("https://{host}:{port}"),
        None => format!("https://{host}"),
    }
}

/// `gateway.session.ttl` (default 12 h). Sessions expire, and their cookies' `Max-Age`
/// counts, in whole seconds: `500ms` used to pass and end every session at once, and a
/// fraction of a second cannot be honoured. A ttl of a few seconds is valid (tests use it)
/// but lives up to a second less than it says; anything of a minute or more is exact to 2 %.
fn session_ttl(text: Option<&str>) -> Result<Duration, ConfigError> {
    let ttl = duration("gateway.session.ttl", text, Duration::from_secs(12 * 3600))?;
    if ttl < Duration::from_secs(1) || ttl.subsec_nanos() != 0 {
        return Err(ConfigError::at(
            "gateway.session.ttl",
            format!(
                "`{}` is not a whole number of seconds: sessions expire in whole seconds \
                 (use at least 1m in production)",
                text.unwrap_or_default()
            ),
        ));
    }
    Ok(ttl)
}

/// `gateway.trusted_proxies` (default: the loopback addresses).
fn trusted_proxies(raw: Option<Vec<String>>) -> Result<Vec<IpAddr>, ConfigError> {
    Ok(match raw {
        None => vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ],
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                // Canonical, as peers are compared: `::ffff:10.0.0.2` is `10.0.0.2`.
                ip.parse::<IpAddr>()
                    .map(|ip| ip.to_canonical())
                    .map_err(|_| {
                        ConfigError::at(
                            &format!("gateway.trusted_proxies[{i}]"),
                            format!("`{ip}` is not an IP address"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    })
}

/// `gateway.upstream`.
fn upstream_settings(u: RawUpstreamSettings) -> Result<UpstreamSettings, ConfigError> {
    Ok(UpstreamSettings {
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
        max_idle: u.max_idle,
        // Set from `limits` by the caller.
        body_idle_timeout: Duration::from_secs(60),
        response_body_idle_timeout: Duration::from_secs(60),
    })
}

//! The serde shape of `config.yaml`: exactly what the file may say, nothing validated yet.
//!
//! Every struct denies unknown fields, so a typo is an error naming its key path instead of a
//! setting that silently does nothing. These types never leave the `config` module.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

use super::central::{ClientAuth, Protocol, ProviderKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: String,
    #[serde(default)]
    pub http_listen: Option<String>,
    pub public_url: String,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    pub tls: RawTls,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub central: Option<RawCentral>,
    #[serde(default)]
    pub gateway: Option<RawGateway>,
    #[serde(default)]
    pub metrics: Option<RawMetrics>,
}

/// `metrics:`: the Prometheus endpoint's own plain-HTTP listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub self_signed: bool,
    pub handshake_timeout: Option<String>,
    pub reload_interval: Option<String>,
    /// `365d`: `Strict-Transport-Security: max-age=<seconds>` on every response.
    pub hsts: Option<String>,
    #[serde(default)]
    pub acme: Option<RawAcme>,
}

/// `tls.acme`: certificates from an ACME server (SPEC §10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcme {
    pub directory: String,
    pub email: Option<String>,
    pub ca: Option<PathBuf>,
    pub challenge: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub shutdown_grace: Option<String>,
    pub idle_timeout: Option<String>,
    pub tunnel_idle_timeout: Option<String>,
    pub max_connections_per_ip: Option<usize>,
    pub body_idle_timeout: Option<String>,
    pub upstream_body_idle_timeout: Option<String>,
}

/// `log:` (SPEC §7).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<super::LogFormat>,
    pub access: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub title: Option<String>,
    pub auth_prefix: Option<String>,
    pub oauth_proxy: Option<RawOauthProxy>,
    #[serde(default)]
    pub session: RawSession,
    pub trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    pub upstream: RawUpstreamSettings,
    /// The default of `routes[].case_insensitive`.
    pub case_insensitive: Option<bool>,
    pub identity: Option<super::identity::RawIdentity>,
    pub bearer: Option<super::identity::RawBearer>,
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamSettings {
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_idle: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub host: Option<String>,
    pub prefix: String,
    pub upstream: String,
    pub login: Option<super::Login>,
    pub preserve_host: Option<RawPreserveHost>,
    pub case_insensitive: Option<bool>,
    pub allow: Option<RawAllow>,
    pub methods: Option<Vec<String>>,
    pub cors_preflight: Option<String>,
    pub bearer: Option<bool>,
    pub strip_prefix: Option<bool>,
    pub upstream_tls: Option<RawUpstreamTls>,
}

/// `routes[].upstream_tls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamTls {
    pub ca: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// `preserve_host: true | false | any`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPreserveHost {
    Flag(bool),
    Word(String),
}

/// The seed's `oauth_proxy` client: where to log in and how to check what comes back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOauthProxy {
    pub url: Option<String>,
    pub verify_key: Option<OneOrMany>,
    pub providers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub secret: Option<String>,
    /// Old secrets whose cookies still open (and are re-sealed with `secret`).
    pub previous_secrets: Option<OneOrMany>,
    pub ttl: Option<String>,
    pub idle_timeout: Option<String>,
    pub cookie_name: Option<String>,
    /// `cookie` (default) or `redis://host:port/db`.
    pub store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub logins: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub networks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCentral {
    pub signing_key: Option<PathBuf>,
    pub provider_timeout: Option<String>,
    pub providers: IndexMap<String, RawProvider>,
    #[serde(default)]
    pub clients: Vec<RawClient>,
}

/// The seed's `oauth_provider` fields, plus `kind` and a few modern knobs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub kind: Option<ProviderKind>,
    pub display_name: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub access_token_url: Option<String>,
    pub authorize_url: Option<String>,
    pub redirect_url: Option<String>,
    pub user_info_url: Option<String>,
    pub emails_url: Option<String>,
    pub scope: Option<String>,
    pub user_info_fields: Option<Vec<String>>,
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub pkce: Option<bool>,
    pub client_auth: Option<ClientAuth>,
    /// `true`: this provider's emails count as verified even when it does not say so.
    pub email_verified: Option<bool>,
    /// GitHub: organisations and teams become groups (asks for `read:org`).
    pub groups: Option<bool>,
    /// OIDC: the claim (a name, or a JSON pointer such as `/realm_access/roles`) with groups.
    pub groups_claim: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub redirect_url: String,
    pub protocol: Option<Protocol>,
}

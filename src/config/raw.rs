//! The serde shape of `config.yaml`: exactly what the file may say, nothing validated yet.
//!
//! Every struct denies unknown fields, so a typo is an error naming its key path instead of a
//! setting that silently does nothing. These types never leave the `config` module.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: String,
    pub public_url: String,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    pub tls: RawTls,
    #[serde(default)]
    pub limits: RawLimits,
    /// Parsed so that a config written for a later version fails loudly, not silently.
    #[serde(default)]
    pub central: Option<serde_yaml::Value>,
    #[serde(default)]
    pub gateway: Option<RawGateway>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub auth_prefix: Option<String>,
    pub oauth_proxy: Option<serde_yaml::Value>,
    pub session: Option<serde_yaml::Value>,
    #[serde(default)]
    pub upstream: RawUpstreamSettings,
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamSettings {
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub idle_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: String,
    pub upstream: String,
    pub login: Option<String>,
    pub preserve_host: Option<bool>,
    pub allow: Option<serde_yaml::Value>,
}

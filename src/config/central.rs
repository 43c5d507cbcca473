//! The `central:` section: providers (each read by `central/provider.rs`), clients, the
//! signing key, and which provider answers at the plain callback.

mod provider;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::raw::{RawCentral, RawClient};
use super::ConfigError;
use provider::provider;
pub use provider::provider_display_name;

/// The validated central OAuth server settings.
#[derive(Debug, Clone)]
pub struct CentralConfig {
    /// Where the Ed25519 signing key lives (generated on first start when missing).
    pub signing_key: PathBuf,
    /// Bound on each request to a provider (token, user info, discovery, keys).
    pub provider_timeout: std::time::Duration,
    /// `public_url` + `/oauth`: the assertions' `iss`.
    pub issuer: String,
    pub providers: Vec<ProviderConfig>,
    pub clients: Vec<ClientConfig>,
    /// The provider that answers at the plain `/oauth/callback` (see [`CALLBACK`]): the one
    /// whose `redirect_url` says so, or the only provider. `None`: every provider has its own.
    pub plain_callback: Option<String>,
}

/// The callback path of the central; each provider answers at `CALLBACK/<name>`.
pub const CALLBACK: &str = concat!(central_prefix!(), "/callback");

/// A value that must never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `kind:`, as the file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// GitHub's OAuth apps: JSON only when asked, private emails at `/user/emails`.
    #[serde(rename = "github")]
    GitHub,
    /// Facebook's Graph API: fields must be named with `fields=`.
    Facebook,
    /// Any OAuth2 provider with a JSON user-info endpoint.
    #[serde(rename = "oauth2")]
    OAuth2,
    /// OpenID Connect: `id_token` verified against the provider's JWKS.
    #[serde(alias = "google")]
    Oidc,
    /// A built-in form for development (loopback listeners only).
    Dev,
}

/// `client_auth:`: how the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic (RFC 6749 §2.3.1, the default).
    Basic,
    /// `client_id` and `client_secret` in the POST body.
    Body,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Secret,
    /// `None` for OIDC providers whose endpoints come from discovery.
    pub authorize_url: Option<Url>,
    pub token_url: Option<Url>,
    pub user_info_url: Option<Url>,
    pub emails_url: Option<Url>,
    pub jwks_url: Option<Url>,
    /// The OIDC issuer (`iss` of id_tokens; discovery base).
    pub issuer: Option<Url>,
    pub redirect_url: Url,
    pub scopes: Vec<String>,
    pub user_info_fields: Vec<String>,
    pub pkce: bool,
    pub client_auth: ClientAuth,
    /// Emails from this provider count as verified even when it does not say so
    /// (`email_verified: true`; Facebook's preset and the dev provider).
    pub trust_email: bool,
    /// GitHub (`groups: true`): read the user's organisations and teams as groups.
    pub groups: bool,
    /// OIDC: where the groups are among the claims; see [`GroupsClaim`].
    pub groups_claim: Option<GroupsClaim>,
}

/// `groups_claim:` — a top-level claim name, or a JSON pointer (RFC 6901) for a nested one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupsClaim {
    Name(String),
    Pointer(String),
}

impl GroupsClaim {
    /// What a `groups_claim` must be, for errors.
    pub const EXPECTED: &'static str =
        "must name a claim (groups) or a JSON pointer (/realm_access/roles)";

    /// A name, or a pointer when it starts with `/`; `None` for an empty one.
    pub fn parse(text: String) -> Option<Self> {
        match text.as_str() {
            t if t.trim().is_empty() || t == "/" => None,
            t if t.starts_with('/') => Some(GroupsClaim::Pointer(text)),
            _ => Some(GroupsClaim::Name(text)),
        }
    }
}

/// `protocol:`, how a client wants to hear who logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// The signed JWT assertion of SPEC §3 (the default).
    #[default]
    Assertion,
    /// The Jumpscale `oauth_proxy` wire format: no audience, no expiry; opt-in.
    Jumpscale,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub redirect_url: String,
    pub protocol: Protocol,
}

pub(super) fn central_config(
    raw: RawCentral,
    public_url: &Url,
    data_dir: &std::path::Path,
) -> Result<CentralConfig, ConfigError> {
    let base = public_url.as_str().trim_end_matches('/');
    let issuer = format!("{base}/oauth");
    let default_redirect = format!("{base}{CALLBACK}");
    if raw.providers.is_empty() {
        return Err(ConfigError::at(
            "central.providers",
            "needs at least one provider",
        ));
    }
    let mut providers = Vec::with_capacity(raw.providers.len());
    for (name, p) in raw.providers {
        let at = |key: &str| format!("central.providers.{name}.{key}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::at(
                &format!("central.providers.{name}"),
                "a provider name may use letters, digits, - and _ only",
            ));
        }
        providers.push(provider(&name, p, &default_redirect, &at)?);
    }
    let plain_callback = plain_callback(&providers)?;
    let mut clients: Vec<ClientConfig> = Vec::with_capacity(raw.clients.len());
    for (i, c) in raw.clients.into_iter().enumerate() {
        let at = format!("central.clients[{i}]");
        let client = client(c).map_err(|(key, m)| ConfigError::at(&format!("{at}.{key}"), m))?;
        if clients
            .iter()
            .any(|o| o.redirect_url == client.redirect_url)
        {
            return Err(ConfigError::at(
                &format!("{at}.redirect_url"),
                "is listed twice",
            ));
        }
        clients.push(client);
    }
    Ok(CentralConfig {
        signing_key: raw
            .signing_key
            .unwrap_or_else(|| data_dir.join("signing.key")),
        provider_timeout: super::duration(
            "central.provider_timeout",
            raw.provider_timeout.as_deref(),
            std::time::Duration::from_secs(15),
        )?,
        issuer,
        providers,
        clients,
        plain_callback,
    })
}

/// Which provider, if any, answers at the plain `/oauth/callback`. Every callback path must
/// name exactly one provider, checked against the login's round trip before a code is
/// redeemed: two providers sharing one is the IdP mix-up (RFC 9700 §4.4), where a code from
/// one provider is sent to the other's token endpoint.
fn plain_callback(providers: &[ProviderConfig]) -> Result<Option<String>, ConfigError> {
    let plain: Vec<&ProviderConfig> = providers
        .iter()
        .filter(|p| p.redirect_url.path() == CALLBACK)
        .collect();
    match (plain.as_slice(), providers) {
        ([], [only]) => Ok(Some(only.name.clone())),
        ([], _) => Ok(None),
        ([one], [_]) => Ok(Some(one.name.clone())),
        // GitHub accepts any redirect_uri below the registered callback URL, so a GitHub app
        // registered at /oauth/callback would also send codes to /oauth/callback/<other>.
        ([one], _) if one.kind == ProviderKind::GitHub => Err(ConfigError::at(
            &format!("central.providers.{}.redirect_url", one.name),
            format!(
                "GitHub accepts any callback below the registered one, so with several providers \
                 GitHub needs its own: register and use {}/{} (or remove redirect_url)",
                CALLBACK, one.name
            ),
        )),
        ([one], _) => Ok(Some(one.name.clone())),
        ([first, second, ..], _) => Err(ConfigError::at(
            &format!("central.providers.{}.redirect_url", second.name),
            format!(
                "`{}` is also the callback of `{}`: each provider needs its own, so a code \
                 from one provider can never be redeemed at another (remove redirect_url to get \
                 {CALLBACK}/{})",
                second.redirect_url, first.name, second.name
            ),
        )),
    }
}

/// The dev provider lets anyone log in as anyone: only when both the listener and the
/// address browsers use are this machine. A loopback `listen` alone is not enough, since
/// that is also how a site behind nginx or another proxy listens.
pub(super) fn dev_gate(
    central: &CentralConfig,
    listen: std::net::SocketAddr,
    public_url: &Url,
) -> Result<(), ConfigError> {
    let Some(dev) = central
        .providers
        .iter()
        .find(|p| p.kind == ProviderKind::Dev)
    else {
        return Ok(());
    };
    let why = if !listen.ip().is_loopback() {
        format!("listen is {listen}")
    } else if !is_loopback(public_url) {
        format!("public_url is {public_url}")
    } else {
        return Ok(());
    };
    Err(ConfigError::at(
        &format!("central.providers.{}.kind", dev.name),
        format!(
            "the dev provider lets anyone log in as anyone; it only runs when listen is a loopback \
             address and public_url's host is localhost, 127.x or ::1, but {why}"
        ),
    ))
}

fn client(raw: RawClient) -> Result<ClientConfig, (&'static str, String)> {
    let url = Url::parse(&raw.redirect_url).map_err(|e| {
        (
            "redirect_url",
            format!("`{}` is not a URL: {e}", raw.redirect_url),
        )
    })?;
    if url.scheme() != "https" && !is_loopback(&url) {
        return Err((
            "redirect_url",
            format!(
                "`{}` must be https (http only for localhost)",
                raw.redirect_url
            ),
        ));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err((
            "redirect_url",
            format!("`{}` must not carry a fragment or user", raw.redirect_url),
        ));
    }
    // Compared byte for byte with what clients send; keep exactly what the operator wrote.
    Ok(ClientConfig {
        redirect_url: raw.redirect_url,
        protocol: raw.protocol.unwrap_or_default(),
    })
}

/// Whether a URL points at this machine (http allowed there, for development and tests).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

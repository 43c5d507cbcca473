//! The `central:` section: providers (with name-based presets), clients, the signing key.

use std::fmt;
use std::path::PathBuf;

use url::Url;

use super::raw::{RawCentral, RawClient, RawProvider};
use super::ConfigError;

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
pub const CALLBACK: &str = "/oauth/callback";

/// A value that must never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// GitHub's OAuth apps: JSON only when asked, private emails at `/user/emails`.
    GitHub,
    /// Facebook's Graph API: fields must be named with `fields=`.
    Facebook,
    /// Any OAuth2 provider with a JSON user-info endpoint.
    OAuth2,
    /// OpenID Connect: `id_token` verified against the provider's JWKS.
    Oidc,
    /// A built-in form for development (loopback listeners only).
    Dev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The signed JWT assertion of SPEC §3.
    Assertion,
    /// The Jumpscale `oauth_proxy` wire format: no audience, no expiry; opt-in.
    Jumpscale,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub redirect_url: String,
    pub protocol: Protocol,
}

/// Defaults a provider name brings with it; any field in the file overrides them.
struct Preset {
    kind: ProviderKind,
    display_name: &'static str,
    authorize_url: Option<&'static str>,
    token_url: Option<&'static str>,
    user_info_url: Option<&'static str>,
    emails_url: Option<&'static str>,
    jwks_url: Option<&'static str>,
    issuer: Option<&'static str>,
    scope: &'static str,
    fields: &'static [&'static str],
    client_auth: ClientAuth,
}

/// How a provider is named on pages: the preset's name (GitHub) or the configured one.
pub fn provider_display_name(name: &str) -> String {
    preset(name).map_or_else(|| name.to_owned(), |p| p.display_name.to_owned())
}

fn preset(name: &str) -> Option<Preset> {
    match name {
        "github" => Some(Preset {
            kind: ProviderKind::GitHub,
            display_name: "GitHub",
            authorize_url: Some("https://github.com/login/oauth/authorize"),
            token_url: Some("https://github.com/login/oauth/access_token"),
            user_info_url: Some("https://api.github.com/user"),
            emails_url: Some("https://api.github.com/user/emails"),
            jwks_url: None,
            issuer: None,
            scope: "read:user user:email",
            fields: &["email", "login", "name"],
            client_auth: ClientAuth::Body,
        }),
        "google" => Some(Preset {
            kind: ProviderKind::Oidc,
            display_name: "Google",
            authorize_url: Some("https://accounts.google.com/o/oauth2/v2/auth"),
            token_url: Some("https://oauth2.googleapis.com/token"),
            user_info_url: Some("https://openidconnect.googleapis.com/v1/userinfo"),
            emails_url: None,
            jwks_url: Some("https://www.googleapis.com/oauth2/v3/certs"),
            issuer: Some("https://accounts.google.com"),
            scope: "openid email profile",
            fields: &["email", "name"],
            client_auth: ClientAuth::Basic,
        }),
        "facebook" => Some(Preset {
            kind: ProviderKind::Facebook,
            display_name: "Facebook",
            authorize_url: Some("https://www.facebook.com/v19.0/dialog/oauth"),
            token_url: Some("https://graph.facebook.com/v19.0/oauth/access_token"),
            user_info_url: Some("https://graph.facebook.com/v19.0/me?fields=id,name,email"),
            emails_url: None,
            jwks_url: None,
            issuer: None,
            scope: "email public_profile",
            fields: &["email", "name"],
            client_auth: ClientAuth::Body,
        }),
        _ => None,
    }
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
    let protocol = match raw.protocol.as_deref() {
        None | Some("assertion") => Protocol::Assertion,
        Some("jumpscale") => Protocol::Jumpscale,
        Some(other) => {
            return Err((
                "protocol",
                format!("`{other}` is not one of assertion, jumpscale"),
            ))
        }
    };
    // Compared byte for byte with what clients send; keep exactly what the operator wrote.
    Ok(ClientConfig {
        redirect_url: raw.redirect_url,
        protocol,
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

fn provider(
    name: &str,
    raw: RawProvider,
    // `public_url` + `/oauth/callback`; each provider's own is below it.
    default_redirect: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<ProviderConfig, ConfigError> {
    let preset = preset(name);
    let kind = match (raw.kind.as_deref(), &preset) {
        (None, Some(p)) => p.kind,
        (None, None) => {
            return Err(ConfigError::at(&at("kind"), format!("`{name}` is not a preset (github, google, facebook): say kind: oauth2, oidc or dev")))
        }
        (Some("github"), _) => ProviderKind::GitHub,
        (Some("facebook"), _) => ProviderKind::Facebook,
        (Some("oauth2"), _) => ProviderKind::OAuth2,
        (Some("oidc" | "google"), _) => ProviderKind::Oidc,
        (Some("dev"), _) => ProviderKind::Dev,
        (Some(other), _) => return Err(ConfigError::at(&at("kind"), format!("`{other}` is not one of github, facebook, oauth2, oidc, dev"))),
    };
    let url = |key: &str,
               given: Option<String>,
               preset: Option<&str>|
     -> Result<Option<Url>, ConfigError> {
        match given.as_deref().or(preset) {
            None => Ok(None),
            Some(text) => {
                let u = Url::parse(text).map_err(|e| {
                    ConfigError::at(&at(key), format!("`{text}` is not a URL: {e}"))
                })?;
                if u.scheme() != "https" && !(u.scheme() == "http" && is_loopback(&u)) {
                    return Err(ConfigError::at(
                        &at(key),
                        format!("`{text}` must be https (http only for localhost)"),
                    ));
                }
                Ok(Some(u))
            }
        }
    };
    let p = preset.as_ref();
    let authorize_url = url(
        "authorize_url",
        raw.authorize_url,
        p.and_then(|p| p.authorize_url),
    )?;
    let token_url = url(
        "access_token_url",
        raw.access_token_url,
        p.and_then(|p| p.token_url),
    )?;
    let user_info_url = url(
        "user_info_url",
        raw.user_info_url,
        p.and_then(|p| p.user_info_url),
    )?;
    let emails_url = url("emails_url", raw.emails_url, p.and_then(|p| p.emails_url))?;
    let jwks_url = url("jwks_url", raw.jwks_url, p.and_then(|p| p.jwks_url))?;
    let issuer = url("issuer", raw.issuer, p.and_then(|p| p.issuer))?;
    let redirect_text = raw
        .redirect_url
        .unwrap_or_else(|| format!("{default_redirect}/{name}"));
    let redirect_url = Url::parse(&redirect_text).map_err(|e| {
        ConfigError::at(
            &at("redirect_url"),
            format!("`{redirect_text}` is not a URL: {e}"),
        )
    })?;
    let own_callback = format!("{CALLBACK}/{name}");
    let path = redirect_url.path();
    if (path != own_callback && path != CALLBACK)
        || redirect_url.query().is_some()
        || redirect_url.fragment().is_some()
    {
        return Err(ConfigError::at(
            &at("redirect_url"),
            format!("`{redirect_text}` must end in {own_callback} (or {CALLBACK}), with no query"),
        ));
    }

    let needs_secret = kind != ProviderKind::Dev;
    let client_id = raw.client_id.unwrap_or_default();
    let client_secret = raw.client_secret.unwrap_or_default();
    if needs_secret && client_id.is_empty() {
        return Err(ConfigError::at(&at("client_id"), "is required"));
    }
    if needs_secret && client_secret.is_empty() {
        return Err(ConfigError::at(&at("client_secret"), "is required"));
    }
    match kind {
        ProviderKind::Oidc => {
            if issuer.is_none() {
                return Err(ConfigError::at(&at("issuer"), "is required for kind: oidc"));
            }
        }
        ProviderKind::Dev => {}
        _ => {
            for (key, value) in [
                ("authorize_url", &authorize_url),
                ("access_token_url", &token_url),
                ("user_info_url", &user_info_url),
            ] {
                if value.is_none() {
                    return Err(ConfigError::at(
                        &at(key),
                        "is required for this kind of provider",
                    ));
                }
            }
        }
    }
    let scope = raw.scope.unwrap_or_else(|| match kind {
        ProviderKind::Oidc => p.map_or("openid email profile", |p| p.scope).to_owned(),
        _ => p.map_or("", |p| p.scope).to_owned(),
    });
    let mut scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    if kind == ProviderKind::Oidc && !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    let user_info_fields = raw.user_info_fields.unwrap_or_else(|| match (kind, p) {
        (_, Some(p)) => p.fields.iter().map(|f| (*f).to_owned()).collect(),
        (ProviderKind::Dev, None) => vec!["email".into(), "login".into()],
        _ => vec!["email".into(), "name".into()],
    });
    let client_auth = match raw.client_auth.as_deref() {
        None => p.map_or(ClientAuth::Basic, |p| p.client_auth),
        Some("basic") => ClientAuth::Basic,
        Some("body") => ClientAuth::Body,
        Some(other) => {
            return Err(ConfigError::at(
                &at("client_auth"),
                format!("`{other}` is not one of basic, body"),
            ))
        }
    };
    let trust_email = match (kind, raw.email_verified) {
        // GitHub says per address whether it is verified (`/user/emails`): nothing to trust.
        (ProviderKind::GitHub, Some(_)) => return Err(ConfigError::at(
            &at("email_verified"),
            "does not apply to GitHub, whose verified primary address is read from /user/emails",
        )),
        (_, Some(trust)) => trust,
        // Facebook's Graph API returns only a confirmed address (or none), and the dev
        // provider's are whatever the developer typed.
        (ProviderKind::Facebook | ProviderKind::Dev, None) => true,
        (_, None) => false,
    };
    Ok(ProviderConfig {
        name: name.to_owned(),
        display_name: raw
            .display_name
            .unwrap_or_else(|| p.map_or_else(|| name.to_owned(), |p| p.display_name.to_owned())),
        kind,
        client_id,
        client_secret: Secret(client_secret),
        authorize_url,
        token_url,
        user_info_url,
        emails_url,
        jwks_url,
        issuer,
        redirect_url,
        scopes,
        user_info_fields,
        pkce: raw.pkce.unwrap_or(true),
        client_auth,
        trust_email,
    })
}

//! One `central.providers.<name>` entry: its kind, the defaults its name brings (GitHub,
//! Google, Facebook), its endpoints, callback and secrets, checked into a [`ProviderConfig`].

use url::Url;

use super::super::raw::RawProvider;
use super::super::ConfigError;
use super::{is_loopback, ClientAuth, GroupsClaim, ProviderConfig, ProviderKind, Secret, CALLBACK};

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

/// The provider's endpoints: the file's, else its preset's.
struct Endpoints {
    authorize: Option<Url>,
    token: Option<Url>,
    user_info: Option<Url>,
    emails: Option<Url>,
    jwks: Option<Url>,
    issuer: Option<Url>,
}

/// Reads one entry; `at(key)` is the key path of one of its fields, for errors.
pub(super) fn provider(
    name: &str,
    mut raw: RawProvider,
    // `public_url` + `/oauth/callback`; each provider's own is below it.
    default_redirect: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<ProviderConfig, ConfigError> {
    let preset = preset(name);
    let p = preset.as_ref();
    let kind = match (raw.kind, p) {
        (Some(kind), _) => kind,
        (None, Some(p)) => p.kind,
        (None, None) => return Err(ConfigError::at(&at("kind"), format!("`{name}` is not a preset (github, google, facebook): say kind: oauth2, oidc or dev"))),
    };
    // Checked in the order of the fields in the documentation, so the first mistake of an
    // entry is the one reported.
    let endpoints = endpoints(&mut raw, p, at)?;
    let redirect_url = redirect_url(name, raw.redirect_url.take(), default_redirect, at)?;
    let (client_id, client_secret) = credentials(kind, &mut raw, at)?;
    required_endpoints(kind, &endpoints, at)?;
    let trust_email = trust_email(kind, raw.email_verified, at)?;
    let (groups, groups_claim) = groups(kind, raw.groups, raw.groups_claim.take(), at)?;
    let scope = raw.scope.unwrap_or_else(|| match kind {
        ProviderKind::Oidc => p.map_or("openid email profile", |p| p.scope).to_owned(),
        _ => p.map_or("", |p| p.scope).to_owned(),
    });
    let mut scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    if kind == ProviderKind::Oidc && !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    // GitHub lists private memberships, and teams at all, only with `read:org`.
    if groups && !scopes.iter().any(|s| s == "read:org" || s == "admin:org") {
        scopes.push("read:org".to_owned());
    }
    let user_info_fields = raw.user_info_fields.unwrap_or_else(|| match (kind, p) {
        (_, Some(p)) => p.fields.iter().map(|f| (*f).to_owned()).collect(),
        (ProviderKind::Dev, None) => vec!["email".into(), "login".into()],
        _ => vec!["email".into(), "name".into()],
    });
    Ok(ProviderConfig {
        name: name.to_owned(),
        display_name: raw
            .display_name
            .unwrap_or_else(|| p.map_or_else(|| name.to_owned(), |p| p.display_name.to_owned())),
        kind,
        client_id,
        client_secret: Secret(client_secret),
        authorize_url: endpoints.authorize,
        token_url: endpoints.token,
        user_info_url: endpoints.user_info,
        emails_url: endpoints.emails,
        jwks_url: endpoints.jwks,
        issuer: endpoints.issuer,
        redirect_url,
        scopes,
        user_info_fields,
        pkce: raw.pkce.unwrap_or(true),
        client_auth: raw
            .client_auth
            .unwrap_or_else(|| p.map_or(ClientAuth::Basic, |p| p.client_auth)),
        trust_email,
        groups,
        groups_claim,
    })
}

/// `groups` (GitHub only) and `groups_claim` (OIDC only): elsewhere they would be settings
/// that silently do nothing, and a route's `allow.groups` would then refuse everyone.
fn groups(
    kind: ProviderKind,
    groups: Option<bool>,
    claim: Option<String>,
    at: &dyn Fn(&str) -> String,
) -> Result<(bool, Option<GroupsClaim>), ConfigError> {
    if groups.is_some() && kind != ProviderKind::GitHub {
        return Err(ConfigError::at(
            &at("groups"),
            "applies to GitHub only (organisations and teams); OIDC providers use groups_claim",
        ));
    }
    let claim = match claim {
        None => None,
        Some(_) if kind != ProviderKind::Oidc => {
            return Err(ConfigError::at(
                &at("groups_claim"),
                "applies to kind: oidc only (GitHub uses groups: true)",
            ))
        }
        Some(c) => Some(
            GroupsClaim::parse(c)
                .ok_or_else(|| ConfigError::at(&at("groups_claim"), GroupsClaim::EXPECTED))?,
        ),
    };
    Ok((groups.unwrap_or(false), claim))
}

/// Each endpoint of the file (taken out of `raw`) or the preset, https (http only on this
/// machine).
fn endpoints(
    raw: &mut RawProvider,
    p: Option<&Preset>,
    at: &dyn Fn(&str) -> String,
) -> Result<Endpoints, ConfigError> {
    let pre = |field: fn(&Preset) -> Option<&'static str>| p.and_then(field);
    let url = |key: &str, given: Option<String>, preset: Option<&str>| {
        let Some(text) = given.as_deref().or(preset) else {
            return Ok(None);
        };
        let u = Url::parse(text)
            .map_err(|e| ConfigError::at(&at(key), format!("`{text}` is not a URL: {e}")))?;
        if u.scheme() != "https" && !(u.scheme() == "http" && is_loopback(&u)) {
            return Err(ConfigError::at(
                &at(key),
                format!("`{text}` must be https (http only for localhost)"),
            ));
        }
        Ok(Some(u))
    };
    Ok(Endpoints {
        authorize: url(
            "authorize_url",
            raw.authorize_url.take(),
            pre(|p| p.authorize_url),
        )?,
        token: url(
            "access_token_url",
            raw.access_token_url.take(),
            pre(|p| p.token_url),
        )?,
        user_info: url(
            "user_info_url",
            raw.user_info_url.take(),
            pre(|p| p.user_info_url),
        )?,
        emails: url("emails_url", raw.emails_url.take(), pre(|p| p.emails_url))?,
        jwks: url("jwks_url", raw.jwks_url.take(), pre(|p| p.jwks_url))?,
        issuer: url("issuer", raw.issuer.take(), pre(|p| p.issuer))?,
    })
}

/// OIDC needs its issuer (the rest may come from discovery); the kinds without discovery
/// need all three endpoints; the dev provider none.
fn required_endpoints(
    kind: ProviderKind,
    e: &Endpoints,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    match kind {
        ProviderKind::Oidc if e.issuer.is_none() => {
            Err(ConfigError::at(&at("issuer"), "is required for kind: oidc"))
        }
        ProviderKind::Oidc | ProviderKind::Dev => Ok(()),
        ProviderKind::GitHub | ProviderKind::Facebook | ProviderKind::OAuth2 => {
            let missing = [
                ("authorize_url", &e.authorize),
                ("access_token_url", &e.token),
                ("user_info_url", &e.user_info),
            ]
            .into_iter()
            .find(|(_, value)| value.is_none());
            match missing {
                Some((key, _)) => Err(ConfigError::at(
                    &at(key),
                    "is required for this kind of provider",
                )),
                None => Ok(()),
            }
        }
    }
}

/// The provider's callback: `<default_redirect>/<name>`, or one the file gives, which must
/// be this provider's own callback path (or the plain one).
fn redirect_url(
    name: &str,
    given: Option<String>,
    default_redirect: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<Url, ConfigError> {
    let text = given.unwrap_or_else(|| format!("{default_redirect}/{name}"));
    let url = Url::parse(&text)
        .map_err(|e| ConfigError::at(&at("redirect_url"), format!("`{text}` is not a URL: {e}")))?;
    let own_callback = format!("{CALLBACK}/{name}");
    let path = url.path();
    if (path != own_callback && path != CALLBACK)
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(ConfigError::at(
            &at("redirect_url"),
            format!("`{text}` must end in {own_callback} (or {CALLBACK}), with no query"),
        ));
    }
    Ok(url)
}

/// `client_id` and `client_secret`, required by every kind but dev.
fn credentials(
    kind: ProviderKind,
    raw: &mut RawProvider,
    at: &dyn Fn(&str) -> String,
) -> Result<(String, String), ConfigError> {
    let client_id = raw.client_id.take().unwrap_or_default();
    let client_secret = raw.client_secret.take().unwrap_or_default();
    if kind != ProviderKind::Dev {
        if client_id.is_empty() {
            return Err(ConfigError::at(&at("client_id"), "is required"));
        }
        if client_secret.is_empty() {
            return Err(ConfigError::at(&at("client_secret"), "is required"));
        }
    }
    Ok((client_id, client_secret))
}

/// Whether this provider's emails count as verified when it does not say so.
fn trust_email(
    kind: ProviderKind,
    given: Option<bool>,
    at: &dyn Fn(&str) -> String,
) -> Result<bool, ConfigError> {
    match (kind, given) {
        // GitHub says per address whether it is verified (`/user/emails`): nothing to trust.
        (ProviderKind::GitHub, Some(_)) => Err(ConfigError::at(
            &at("email_verified"),
            "does not apply to GitHub, whose verified primary address is read from /user/emails",
        )),
        (_, Some(trust)) => Ok(trust),
        // Facebook's Graph API returns only a confirmed address (or none), and the dev
        // provider's are whatever the developer typed.
        (ProviderKind::Facebook | ProviderKind::Dev, None) => Ok(true),
        (_, None) => Ok(false),
    }
}

//! Single values of the `gateway:` section that need more than a type: route prefixes,
//! upstream targets and the session cookie's name, each checked with a message that says
//! the fix.

use std::path::PathBuf;

use http::uri::Scheme;
use url::Url;

use super::super::ConfigError;
use super::Target;

/// Checks a route prefix and returns it without a trailing slash (except for `/`).
pub(super) fn prefix(text: &str) -> Result<String, String> {
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

pub(super) fn target(text: &str) -> Result<Target, String> {
    if !text.contains("://") {
        return Err(if text.starts_with("file:") {
            format!(
                "`{text}`: write a folder as file:// and its path: file:///srv/www (absolute) or \
                 file://www (relative to the working directory)"
            )
        } else {
            format!("`{text}` has no scheme: write http://{text} (or https://)")
        });
    }
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

/// `gateway.session.cookie_name`. It keeps the `__Host-oauthgate-` prefix: `__Host-` binds the
/// cookie to this host name (secure, no `Domain`, path `/`), and the rest marks it as the
/// gateway's, never sent upstream. The login cookies' prefixes are taken.
pub(super) fn session_cookie(raw: Option<String>) -> Result<String, ConfigError> {
    const PREFIX: &str = "__Host-oauthgate-";
    let Some(name) = raw else {
        return Ok("__Host-oauthgate-session".to_owned());
    };
    let at = "gateway.session.cookie_name";
    let rest = name.strip_prefix(PREFIX).ok_or_else(|| {
        ConfigError::at(
            at,
            format!("`{name}` must start with {PREFIX} (e.g. {PREFIX}session-8444)"),
        )
    })?;
    let token = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !token {
        return Err(ConfigError::at(
            at,
            format!("`{name}`: after {PREFIX} use letters, digits, - and _ only"),
        ));
    }
    if rest.starts_with("login-") || rest.starts_with("central-") {
        return Err(ConfigError::at(
            at,
            format!("`{name}` is taken by the login cookies"),
        ));
    }
    Ok(name)
}

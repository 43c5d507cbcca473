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

/// `gateway.session.store`: `cookie` (the default) or `redis://[:password@]host[:port][/db]`.
/// The URL is checked here so that a typo stops the start, not the first login; the error
/// never repeats the URL, which may hold a password.
pub(super) fn session_store(raw: Option<&str>) -> Result<super::SessionStore, ConfigError> {
    let at = "gateway.session.store";
    let text = match raw.map(str::trim) {
        None | Some("cookie") => return Ok(super::SessionStore::Cookie),
        Some(text) => text,
    };
    let bad = |why: &str| ConfigError::at(at, why.to_owned());
    let url =
        Url::parse(text).map_err(|e| bad(&format!("not `cookie` nor a redis:// URL ({e})")))?;
    match url.scheme() {
        "redis" => {}
        "rediss" => {
            return Err(bad(
                "rediss:// (TLS) is not supported: use redis:// on a private network",
            ))
        }
        other => {
            return Err(bad(&format!(
                "scheme `{other}`: use cookie or redis://host:port/db"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("the redis:// URL names no host"));
    }
    let db = url.path().trim_start_matches('/');
    if !(db.is_empty() || db.parse::<u16>().is_ok()) {
        return Err(bad(&format!(
            "`/{db}`: the path is the database number (redis://host:6379/0)"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("the redis:// URL takes no query or fragment"));
    }
    Ok(super::SessionStore::Redis(super::Secret(text.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::super::SessionStore;
    use super::*;

    #[test]
    fn the_session_store_is_cookie_or_a_redis_url() {
        assert_eq!(session_store(None).unwrap(), SessionStore::Cookie);
        assert_eq!(session_store(Some("cookie")).unwrap(), SessionStore::Cookie);
        for good in [
            "redis://127.0.0.1:6379/0",
            "redis://:pw@db.internal",
            "redis://r/3",
        ] {
            assert!(
                matches!(session_store(Some(good)), Ok(SessionStore::Redis(_))),
                "{good}"
            );
        }
        for bad in [
            "memory",
            "rediss://r:6380/0",
            "http://r:6379",
            "redis:///0",
            "redis://r:6379/zero",
            "redis://r:6379/0?x=1",
            "redis://:hunter2@r/zero",
        ] {
            let e = session_store(Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with("gateway.session.store: "), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}

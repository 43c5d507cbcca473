//! `gateway.identity`: the plain headers backends get from user fields, and whether they get
//! the signed `X-User-Assertion`. Header names are checked here, once, so that a name the
//! gateway could not set safely (hop-by-hop, `Host`, its own `X-User-*`) never starts.

use http::header::HeaderName;
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    #[serde(default)]
    pub headers: indexmap::IndexMap<String, String>,
    #[serde(default)]
    pub assertion: bool,
}

/// What backends are told about the user beyond `X-User-Info`.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// Header (lower case) → the user field it carries (`login`, `email`, `groups`, `sub`,
    /// `provider`, or any kept user field).
    pub headers: Vec<(HeaderName, String)>,
    /// `X-User-Assertion` on every request of a logged-in user.
    pub assertion: bool,
}

/// Names a configured identity header may not have: hop-by-hop ones (RFC 9110 §7.6.1, which
/// proxies drop), `Host`, the framing and credentials of the request itself, and the
/// forwarding headers the gateway sets.
const REFUSED: [&str; 17] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "host",
    "content-length",
    "content-type",
    "cookie",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
];

pub(super) fn identity(raw: Option<RawIdentity>) -> Result<IdentityConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(IdentityConfig::default());
    };
    let mut headers: Vec<(HeaderName, String)> = Vec::with_capacity(raw.headers.len());
    for (name, field) in raw.headers {
        let at = format!("gateway.identity.headers.{name}");
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::at(&at, "is not a valid header name"))?;
        // Compared as the reserved names are: lower case, `_` read as `-`.
        let plain = parsed.as_str().replace('_', "-");
        if REFUSED.contains(&plain.as_str()) || plain == "x-forwarded-host" {
            return Err(ConfigError::at(
                &at,
                "is a hop-by-hop, framing or forwarding header the gateway cannot use for identity",
            ));
        }
        if plain.starts_with("x-user") {
            return Err(ConfigError::at(
                &at,
                "collides with the gateway's own X-User-* headers (X-User-Info, X-User-Assertion)",
            ));
        }
        if headers
            .iter()
            .any(|(n, _)| n.as_str().replace('_', "-") == plain)
        {
            return Err(ConfigError::at(
                &at,
                "is listed twice (names ignore case, and _ is -)",
            ));
        }
        let field_ok = !field.is_empty()
            && field.len() <= 64
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !field_ok {
            return Err(ConfigError::at(
                &at,
                format!("`{field}` is not a user field name (login, email, groups, sub, …)"),
            ));
        }
        headers.push((parsed, field));
    }
    Ok(IdentityConfig {
        headers,
        assertion: raw.assertion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Result<IdentityConfig, ConfigError> {
        identity(Some(RawIdentity {
            headers: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            assertion: false,
        }))
    }

    #[test]
    fn header_names_are_checked_with_their_key_path() {
        let ok = check(&[("Remote-User", "login"), ("X-Email", "email")]).unwrap();
        assert_eq!(ok.headers[0].0.as_str(), "remote-user");
        for (name, field) in [
            ("Bad Name", "login"),
            ("Connection", "login"),
            ("Transfer-Encoding", "login"),
            ("host", "login"),
            ("X-User-Name", "login"),
            ("x_user_groups", "groups"),
            ("Cookie", "login"),
            ("X_Forwarded_For", "login"),
            ("Remote-User", "lo gin"),
            ("Remote-User", ""),
        ] {
            let e = check(&[(name, field)]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("gateway.identity.headers.{name}")),
                "{e}"
            );
        }
        let e = check(&[("Remote-User", "login"), ("remote_user", "email")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("gateway.identity.headers.remote_user"), "{e}");
    }
}

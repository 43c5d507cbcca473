//! `gateway.identity`: the plain headers backends get from user fields, and whether they get
//! the signed `X-User-Assertion`; and `gateway.bearer`, the issuers whose tokens machine
//! clients may bring. Header names are checked here, once, so that a name the gateway could
//! not set safely (hop-by-hop, `Host`, its own `X-User-*`) never starts.

use http::header::HeaderName;
use serde::Deserialize;
use url::Url;

use super::{ConfigError, GroupsClaim};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBearer {
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    pub issuer: String,
    pub audience: String,
    pub name: Option<String>,
    pub groups_claim: Option<String>,
}

/// An issuer whose bearer tokens are accepted (found through OIDC discovery).
#[derive(Debug, Clone)]
pub struct BearerIssuer {
    /// As the tokens' `iss` names it (no trailing `/` added or removed).
    pub issuer: String,
    /// The `aud` its tokens must carry.
    pub audience: String,
    /// The `provider` of its tokens' identities (`allow.providers`); default its host.
    pub name: String,
    pub groups_claim: Option<GroupsClaim>,
}

/// The `provider` of tokens minted by `oauthgate token`.
pub const MINTED_PROVIDER: &str = "token";

pub(super) fn bearer(raw: Option<RawBearer>) -> Result<Vec<BearerIssuer>, ConfigError> {
    let raw = raw.unwrap_or_default();
    let mut out: Vec<BearerIssuer> = Vec::with_capacity(raw.issuers.len());
    for (i, r) in raw.issuers.into_iter().enumerate() {
        let at = |key: &str| format!("gateway.bearer.issuers[{i}].{key}");
        let url = Url::parse(&r.issuer).map_err(|e| {
            ConfigError::at(&at("issuer"), format!("`{}` is not a URL: {e}", r.issuer))
        })?;
        if url.scheme() != "https" && !(url.scheme() == "http" && super::is_loopback(&url)) {
            return Err(ConfigError::at(
                &at("issuer"),
                "must be https (http only for localhost)",
            ));
        }
        if r.audience.is_empty() {
            return Err(ConfigError::at(&at("audience"), "must not be empty"));
        }
        let name = r
            .name
            .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned());
        let name_ok = !name.is_empty()
            && name != MINTED_PROVIDER
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(ConfigError::at(
                &at("name"),
                format!("`{name}` must be letters, digits, . - _ and not `{MINTED_PROVIDER}`"),
            ));
        }
        if out.iter().any(|o| o.issuer == r.issuer || o.name == name) {
            return Err(ConfigError::at(
                &at("issuer"),
                "is listed twice (or its name is)",
            ));
        }
        let groups_claim = match r.groups_claim {
            None => None,
            Some(c) => Some(
                GroupsClaim::parse(c)
                    .ok_or_else(|| ConfigError::at(&at("groups_claim"), GroupsClaim::EXPECTED))?,
            ),
        };
        out.push(BearerIssuer {
            issuer: r.issuer,
            audience: r.audience,
            name,
            groups_claim,
        });
    }
    Ok(out)
}

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

/// Names a configured identity header may not have besides the hop-by-hop ones
/// ([`crate::util::is_hop_by_hop`], which proxies drop): `Host`, the framing and credentials of
/// the request itself, and the forwarding and request-id headers the gateway sets or reads.
const REFUSED: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "cookie",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
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
        let hop_by_hop = crate::util::is_hop_by_hop(&plain);
        if hop_by_hop || REFUSED.contains(&plain.as_str()) {
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

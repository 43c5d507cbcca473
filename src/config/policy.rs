//! The access keys of a route besides its `login`: `allow` (identity lists, groups,
//! networks), `methods`, `cors_preflight`, `bearer`, checked into the types the gateway's one
//! access decision reads.

use std::net::IpAddr;

use http::header::HeaderValue;
use http::Method;
use ipnet::IpNet;

use super::gateway::{Allow, AllowEntry, LoginSource};
use super::raw::RawAllow;
use super::ConfigError;

/// What a route accepts besides its `allow` lists.
#[derive(Debug, Clone, Default)]
pub struct RouteAccess {
    /// `methods`: `None` accepts every method.
    pub methods: Option<Methods>,
    /// `cors_preflight: allow`: a CORS preflight passes without a login.
    pub cors_preflight: bool,
    /// `bearer: true`: `Authorization: Bearer <JWT>` is accepted as well as the session.
    pub bearer: bool,
    /// The upstream's origin (`http://127.0.0.1:8080`): the `aud` of `X-User-Assertion`.
    /// `None` for a folder of files.
    pub audience: Option<Box<str>>,
}

impl RouteAccess {
    /// The `Allow` header of the 405 for `method`, when `methods` refuses it. A CORS preflight
    /// on a `cors_preflight: allow` route is never refused.
    pub fn refuses(&self, method: &Method, preflight: bool) -> Option<HeaderValue> {
        let methods = self.methods.as_ref()?;
        let passes = methods.permits(method) || preflight && self.cors_preflight;
        (!passes).then(|| methods.allow_header.clone())
    }
}

/// The methods a route accepts, and the `Allow` header a 405 names them in (RFC 9110 §15.5.6).
#[derive(Debug, Clone)]
pub struct Methods {
    list: Vec<Method>,
    pub allow_header: HeaderValue,
}

impl Methods {
    /// Whether `method` is accepted: listed, or `HEAD` where `GET` is (RFC 9110 §9.3.2).
    pub fn permits(&self, method: &Method) -> bool {
        self.list.contains(method) || (method == Method::HEAD && self.list.contains(&Method::GET))
    }
}

/// `routes[].methods`: method names as written (upper case, RFC 9110 §9.1 tokens).
pub(super) fn methods(
    raw: Option<Vec<String>>,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<Methods>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.is_empty() {
        return Err(ConfigError::at(
            &at("methods"),
            "lists no method; omit it to accept every method",
        ));
    }
    let mut list: Vec<Method> = Vec::with_capacity(raw.len() + 1);
    for (i, name) in raw.iter().enumerate() {
        let method = Method::from_bytes(name.as_bytes())
            .ok()
            .filter(|_| !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()));
        let Some(method) = method else {
            return Err(ConfigError::at(
                &at(&format!("methods[{i}]")),
                format!("`{name}` is not a method name in upper case (GET, POST, …)"),
            ));
        };
        if !list.contains(&method) {
            list.push(method);
        }
    }
    if list.contains(&Method::GET) && !list.contains(&Method::HEAD) {
        list.push(Method::HEAD);
    }
    let names: Vec<&str> = list.iter().map(Method::as_str).collect();
    let allow_header = HeaderValue::from_str(&names.join(", "))
        .map_err(|_| ConfigError::at(&at("methods"), "cannot be sent in an Allow header"))?;
    Ok(Some(Methods { list, allow_header }))
}

/// `routes[].cors_preflight`: `allow`, or absent (a preflight is judged like any request).
pub(super) fn cors_preflight(
    raw: Option<String>,
    at: &dyn Fn(&str) -> String,
) -> Result<bool, ConfigError> {
    match raw.as_deref() {
        None => Ok(false),
        Some("allow") => Ok(true),
        Some(other) => Err(ConfigError::at(
            &at("cors_preflight"),
            format!("`{other}` is not `allow` (omit the key to judge preflights like any request)"),
        )),
    }
}

/// `routes[].allow`: each entry checked, `<provider>:` ties resolved against the offered
/// providers.
pub(super) fn allow(
    raw: RawAllow,
    at: &dyn Fn(&str) -> String,
    login: Option<&LoginSource>,
) -> Result<Allow, ConfigError> {
    let offered: &[String] = login.map_or(&[], |l| l.providers.as_slice());
    // A group name may hold a `:` of its own (`urn:…`): only an offered provider's name
    // before it ties the entry to that provider.
    let entries = |key: &str, list: Vec<String>, strip_at: bool| {
        list.into_iter()
            .enumerate()
            .map(|(i, text)| {
                let text = text.trim();
                let (provider, value) = match text.split_once(':') {
                    Some((p, v)) if offered.iter().any(|o| o == p) => (Some(p.to_owned()), v),
                    Some(_) if key == "groups" => (None, text),
                    Some((p, _)) => {
                        return Err(ConfigError::at(
                            &at(&format!("allow.{key}[{i}]")),
                            format!(
                                "`{text}`: `{p}` is not an offered provider ({}); write <provider>:<value>",
                                offered.join(", ")
                            ),
                        ))
                    }
                    None => (None, text),
                };
                let value = if strip_at {
                    value.trim_start_matches('@')
                } else {
                    value
                };
                Ok(AllowEntry {
                    provider,
                    // Char by char, as `same_folded` lower-cases what it compares.
                    value: value.chars().flat_map(char::to_lowercase).collect(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Allow {
        emails: entries("emails", raw.emails, false)?,
        domains: entries("domains", raw.domains, true)?,
        logins: entries("logins", raw.logins, false)?,
        providers: raw.providers,
        groups: entries("groups", raw.groups, false)?,
        networks: networks(raw.networks, at)?,
    })
}

/// Whether `value` lower-cased is `lower`, where a letter outside ASCII never lower-cases into
/// ASCII: Unicode folds KELVIN SIGN (U+212A) into `k` and `İ` into `i` + U+0307, so a name an
/// attacker may pick at an identity provider (`\u{212A}ate`) would pass for `kate`.
pub(crate) fn same_folded(value: &str, lower: &str) -> bool {
    let mut want = lower.chars();
    for c in value.chars() {
        for l in c.to_lowercase() {
            if (!c.is_ascii() && l.is_ascii()) || want.next() != Some(l) {
                return false;
            }
        }
    }
    want.next().is_none()
}

/// `allow.networks`: CIDR blocks (`10.0.0.0/8`, `::1/128`) or single addresses.
pub(super) fn networks(
    raw: Vec<String>,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<IpNet>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, text)| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    ConfigError::at(
                        &at(&format!("allow.networks[{i}]")),
                        format!("`{text}` is not a network (10.0.0.0/8, fd00::/8) or an address"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(key: &str) -> String {
        format!("gateway.routes[0].{key}")
    }

    #[test]
    fn methods_with_head_for_get_and_errors_naming_the_entry() {
        let m = methods(Some(vec!["GET".into(), "POST".into()]), &at)
            .unwrap()
            .unwrap();
        assert_eq!(m.allow_header, "GET, POST, HEAD");
        assert!(m.permits(&Method::HEAD) && m.permits(&Method::POST));
        assert!(!m.permits(&Method::DELETE) && !m.permits(&Method::OPTIONS));
        assert!(methods(None, &at).unwrap().is_none());
        for (bad, key) in [
            (vec![], "methods"),
            (vec!["get".into()], "methods[0]"),
            (vec!["GET".into(), "GE T".into()], "methods[1]"),
        ] {
            let e = methods(Some(bad), &at).unwrap_err().to_string();
            assert!(e.contains(&at(key)), "{e}");
        }
    }

    #[test]
    fn folding_never_turns_a_non_ascii_letter_into_ascii() {
        for (value, lower) in [
            ("Kate", "kate"),
            ("ZOË", "zoë"),
            ("ΟΔΟΣ", "οδοσ"),
            ("a", "a"),
        ] {
            assert!(same_folded(value, lower), "{value}");
        }
        for (value, lower) in [
            ("\u{212A}ate", "kate"),
            ("\u{130}nfo", "i\u{307}nfo"),
            ("kat", "kate"),
            ("kates", "kate"),
            ("", "k"),
        ] {
            assert!(!same_folded(value, lower), "{value}");
        }
    }

    #[test]
    fn networks_are_cidr_or_addresses() {
        let n = networks(
            vec!["10.1.2.3/8".into(), "::1".into(), "192.168.0.7".into()],
            &at,
        )
        .unwrap();
        assert_eq!(n[0].to_string(), "10.0.0.0/8");
        assert_eq!(n[1].to_string(), "::1/128");
        assert_eq!(n[2].to_string(), "192.168.0.7/32");
        let e = networks(vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()], &at)
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow.networks[1]"), "{e}");
        assert!(cors_preflight(Some("yes".into()), &at).is_err());
        assert!(cors_preflight(Some("allow".into()), &at).unwrap());
    }
}

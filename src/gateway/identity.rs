//! What backends are told about the user besides `X-User-Info`: the headers of
//! `identity.headers` (values from the session's fields, worked out once per session), and the
//! client-sent headers of those names, which are removed in every spelling like `X-User-*`.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::headers::X_USER_INFO;
use super::session::{Session, Verified};

pub static X_USER_ASSERTION: HeaderName = HeaderName::from_static("x-user-assertion");

/// The identity set on one upstream request (or on a `/_auth/check` answer).
pub struct Outgoing {
    pub verified: Arc<Verified>,
    /// `X-User-Assertion`, when `identity.assertion` is on.
    pub assertion: Option<HeaderValue>,
}

impl Outgoing {
    /// Sets `X-User-Info`, the configured identity headers and the assertion, replacing any
    /// value of those names (the client's were removed before; these go last, so a
    /// `Connection` header naming them cannot remove them).
    pub fn set(&self, h: &mut HeaderMap) {
        self.each(|name, value| {
            h.insert(name.clone(), value.clone());
        });
    }

    /// Each header this identity sets, in order: `X-User-Info`, the configured ones, the
    /// assertion.
    pub fn each(&self, mut f: impl FnMut(&HeaderName, &HeaderValue)) {
        f(&X_USER_INFO, &self.verified.user_info);
        for (name, value) in &self.verified.headers {
            f(name, value);
        }
        if let Some(a) = &self.assertion {
            f(&X_USER_ASSERTION, a);
        }
    }

    /// Whether `name` is one of the headers of `identity.headers`.
    pub fn configures(&self, name: &HeaderName) -> bool {
        self.verified.headers.iter().any(|(n, _)| n == name)
    }
}

/// The values of `spec` (header → field) for `session`: a field absent (or empty) sets no
/// header; a list is comma-joined, with a `,` (and so `\`) inside a member escaped as
/// `\u002c` (`\u005c`), so that a group named `x,admins` never reads as the group `admins`
/// to a backend that splits on commas; every value is ASCII, as `X-User-Info` is.
pub fn header_values(
    spec: &[(HeaderName, String)],
    session: &Session,
) -> Vec<(HeaderName, HeaderValue)> {
    if spec.is_empty() {
        return Vec::new();
    }
    let info = session.info();
    spec.iter()
        .filter_map(|(name, field)| {
            let text = match info.get(field)? {
                Value::Array(list) => list
                    .iter()
                    .map(|v| plain(v, true))
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(","),
                other => plain(other, false),
            };
            let value = HeaderValue::from_str(&text).ok()?;
            (!text.is_empty()).then(|| (name.clone(), value))
        })
        .collect()
}

/// One value as header text: a string as is, anything else as compact JSON; then every
/// character outside printable ASCII escaped as `\uXXXX` (JSON's spelling), so no value can
/// carry a line break or bytes a backend would read in another charset. In a list `member`,
/// `,` and `\` are escaped too (a member's comma would read as a separator).
fn plain(v: &Value, member: bool) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (' '..='~').contains(&c) && !(member && matches!(c, ',' | '\\')) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The configured names as [`strip_configured`] compares them: lower case, `_` as `-`.
pub fn reserved_names(spec: &[(HeaderName, String)]) -> Vec<Box<[u8]>> {
    spec.iter()
        .map(|(n, _)| n.as_str().replace('_', "-").into_bytes().into_boxed_slice())
        .collect()
}

/// Removes every client-sent header named like one of `names` (from [`reserved_names`]), in
/// any case and with `_` for `-`. Nothing to do, and nothing done, when none is configured.
pub fn strip_configured(h: &mut HeaderMap, names: &[Box<[u8]>]) {
    if names.is_empty() {
        return;
    }
    let same = |got: &[u8], want: &[u8]| {
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(&g, &w)| g == w || (g == b'_' && w == b'-'))
    };
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| names.iter().any(|n| same(k.as_str().as_bytes(), n)))
        .cloned()
        .collect();
    for name in doomed {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn values_from_fields_lists_joined_and_ascii() {
        let mut user = Map::new();
        user.insert("login".into(), "zoë".into());
        user.insert("email".into(), "z@example.com".into());
        user.insert("name".into(), "line\r\nX-Evil: 1".into());
        user.insert("empty".into(), "".into());
        let s = Session {
            sub: "dev:z".into(),
            provider: "dev".into(),
            user,
            groups: vec!["acme".into(), "acme/ops".into()],
            exp: 0,
            seen: 0,
            host: None,
        };
        let spec: Vec<(HeaderName, String)> = [
            ("remote-user", "login"),
            ("remote-groups", "groups"),
            ("remote-name", "name"),
            ("remote-sub", "sub"),
            ("remote-empty", "empty"),
            ("remote-missing", "nope"),
        ]
        .iter()
        .map(|(n, f)| (HeaderName::from_static(n), f.to_string()))
        .collect();
        let got: Vec<(String, String)> = header_values(&spec, &s)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let want = [
            ("remote-user", r"zo\u00eb"),
            ("remote-groups", "acme,acme/ops"),
            ("remote-name", r"line\u000d\u000aX-Evil: 1"),
            ("remote-sub", "dev:z"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn configured_names_are_stripped_in_every_spelling() {
        let spec = vec![(HeaderName::from_static("x-email"), "email".to_string())];
        let names = reserved_names(&spec);
        let mut h = HeaderMap::new();
        for n in ["x-email", "X_Email", "x_email", "accept"] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        strip_configured(&mut h, &names);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }
}

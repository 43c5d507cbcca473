//! The login session: who is logged in (with their groups), sealed in the
//! `__Host-oauthgate-session` cookie (or `gateway.session.cookie_name`), and the identity
//! headers derived from it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Secret;
use crate::cookies::CookieCodec;
use crate::error::StartError;
use crate::util::now;

/// Every cookie of the gateway starts with this; none of them is sent upstream.
pub const COOKIE_PREFIX: &str = "__Host-oauthgate-";

/// A logged-in user, as the verified assertion described them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub sub: String,
    pub provider: String,
    pub user: Map<String, Value>,
    /// The user's groups, as the central's assertion named them. Cookies sealed before
    /// groups existed have none and still open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Unix time after which the session is over, whatever the browser keeps.
    pub exp: u64,
    /// The route host (lower case) whose login made it: it opens on that host only, so a
    /// cookie copied to another host is no session there. `None`: `public_url`'s host (and
    /// every session sealed before routes had hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Session {
    /// What backends are told about the user: `provider`, `sub`, `groups` (always a list),
    /// then the user fields (any field named like those three is the gateway's, not the
    /// provider's).
    pub fn info(&self) -> Map<String, Value> {
        let mut info = Map::with_capacity(self.user.len() + 3);
        info.insert("provider".into(), self.provider.clone().into());
        info.insert("sub".into(), self.sub.clone().into());
        info.insert("groups".into(), self.groups.clone().into());
        for (k, v) in &self.user {
            if !info.contains_key(k) {
                info.insert(k.clone(), v.clone());
            }
        }
        info
    }

    /// The `X-User-Info` value: [`Session::info`] as compact JSON, ASCII only (anything else
    /// escaped as `\uXXXX`), so every HTTP stack passes it intact.
    pub fn user_info_header(&self) -> HeaderValue {
        let json = ascii_json(&Value::Object(self.info()));
        HeaderValue::from_str(&json).unwrap_or_else(|_| HeaderValue::from_static("{}"))
    }

    /// How the user is named on pages: email, else login, else the subject.
    pub fn display_name(&self) -> String {
        ["email", "login", "name"]
            .iter()
            .find_map(|k| self.user.get(*k).and_then(Value::as_str))
            .map_or_else(|| self.sub.clone(), str::to_owned)
    }
}

/// Serialises `value` as compact JSON with every non-ASCII character escaped. Inside JSON
/// text such characters only occur within strings, so escaping them there is exact.
pub fn ascii_json(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
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

/// A session opened from its cookie, with the identity headers derived from it.
#[derive(Debug)]
pub struct Verified {
    pub session: Session,
    pub user_info: HeaderValue,
    /// The values of `identity.headers` for this session.
    pub headers: Vec<(http::header::HeaderName, HeaderValue)>,
    /// `X-User-Assertion`s signed for this session, per audience (see `signer`).
    pub assertions: Mutex<Vec<super::signer::Cached>>,
}

impl Verified {
    /// `session` with its headers worked out (`identity` is `identity.headers`).
    pub fn new(session: Session, identity: &[(http::header::HeaderName, String)]) -> Self {
        Verified {
            user_info: session.user_info_header(),
            headers: super::identity::header_values(identity, &session),
            assertions: Mutex::new(Vec::new()),
            session,
        }
    }
}

impl crate::context::User for Verified {
    fn sub(&self) -> &str {
        &self.session.sub
    }
}

/// How many opened sessions are remembered (then the memo starts afresh).
const MEMO_CAPACITY: usize = 10_000;

/// Seals and opens sessions, and the short-lived login cookies.
pub struct Sessions {
    sessions: CookieCodec,
    logins: CookieCodec,
    pub ttl: Duration,
    /// The session cookie's name (starts with [`COOKIE_PREFIX`], so it never goes upstream).
    cookie: Box<str>,
    /// `identity.headers`: header → user field.
    identity: Vec<(http::header::HeaderName, String)>,
    /// Sealed cookie value → what it opened to. Opening is deterministic for a given value,
    /// so this only saves the decryption, JSON parsing and header building that every request
    /// of a logged-in user would repeat; `exp` is still checked on every use. Hashed with
    /// foldhash, not SipHash: a key is a whole sealed cookie (over 200 bytes) hashed on every
    /// request, and only cookies that opened, so sealed with our secret, are ever stored:
    /// nobody can choose keys to collide.
    memo: Mutex<HashMap<Box<str>, Arc<Verified>, foldhash::fast::RandomState>>,
}

impl Sessions {
    pub fn new(
        secret: Option<&Secret>,
        data_dir: &Path,
        ttl: Duration,
        cookie: &str,
        identity: Vec<(http::header::HeaderName, String)>,
    ) -> Result<Self, StartError> {
        let secret = match secret {
            Some(s) => s.0.as_bytes().to_vec(),
            None => generated_secret(&data_dir.join("session.key"))?,
        };
        Ok(Sessions {
            sessions: CookieCodec::derive(&secret, "oauthgate gateway session v1"),
            logins: CookieCodec::derive(&secret, "oauthgate gateway login v1"),
            ttl,
            cookie: cookie.into(),
            identity,
            memo: Mutex::new(HashMap::default()),
        })
    }

    /// The request's session, if it has a valid, unexpired one made for `host` (the route
    /// host the request is for, `None` for `public_url`'s: see [`Session::host`]).
    pub fn current(&self, headers: &HeaderMap, host: Option<&str>) -> Option<Arc<Verified>> {
        let raw = session_cookie_value(headers, &self.cookie)?;
        let now = now();
        let usable = |s: &Session| {
            s.exp > now
                && match (s.host.as_deref(), host) {
                    (None, None) => true,
                    (Some(made), Some(here)) => made.eq_ignore_ascii_case(here),
                    _ => false,
                }
        };
        if let Some(hit) = self.memo.lock().ok().and_then(|m| m.get(raw).cloned()) {
            return usable(&hit.session).then_some(hit);
        }
        let session: Session =
            serde_json::from_str(&self.sessions.open(headers, &self.cookie)?).ok()?;
        if !usable(&session) {
            return None;
        }
        let verified = Arc::new(Verified::new(session, &self.identity));
        if let Ok(mut memo) = self.memo.lock() {
            if memo.len() >= MEMO_CAPACITY {
                memo.clear();
            }
            memo.insert(raw.into(), verified.clone());
        }
        Some(verified)
    }

    /// The `Set-Cookie` value that starts `session`.
    pub fn issue(&self, session: &Session) -> HeaderValue {
        let value = serde_json::to_string(session).unwrap_or_default();
        self.sessions.seal(&self.cookie, &value, self.ttl)
    }

    pub fn logins(&self) -> &CookieCodec {
        &self.logins
    }

    /// The raw sealed session cookie (for deriving the logout form's token).
    pub fn raw_cookie(&self, headers: &HeaderMap) -> Option<String> {
        session_cookie_value(headers, &self.cookie).map(str::to_owned)
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }
}

/// The sealed session cookie's value in a request, found without allocating.
fn session_cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The secret in `path`, created (32 random bytes, hex, mode 0600) when missing.
fn generated_secret(path: &Path) -> Result<Vec<u8>, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 32 => Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => Err(StartError::Key(format!(
            "{} is too short to be a session secret",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = crate::util::random_secret();
            crate::fsutil::write_private(path, format!("{secret}\n").as_bytes())?;
            Ok(secret.into_bytes())
        }
        Err(source) => Err(StartError::Io {
            what: "cannot read the session secret",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Removes the gateway's own cookies from the `Cookie` header sent upstream.
///
/// Works on bytes: a `Cookie` header may carry non-UTF-8 bytes (any site on the same host can
/// set such a cookie), and skipping such a header as unreadable would forward our session
/// cookie along with it.
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let prefix = COOKIE_PREFIX.as_bytes();
    // A plain substring test first: most requests to most routes carry none of ours.
    let has_ours = headers.get_all(header::COOKIE).iter().any(|v| {
        // The first-byte test keeps this from comparing at every position.
        v.as_bytes()
            .windows(prefix.len())
            .any(|w| w[0] == prefix[0] && w == prefix)
    });
    if !has_ours {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value
            .as_bytes()
            .split(|&b| b == b';')
            .map(<[u8]>::trim_ascii)
        {
            if pair.is_empty() || pair.starts_with(prefix) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_bytes(&kept) {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_ascii_json_with_provider_and_sub_first() {
        let mut user = Map::new();
        user.insert("name".into(), "Zoë 😀".into());
        user.insert("sub".into(), "spoofed".into());
        user.insert("groups".into(), "spoofed".into());
        let mut s = Session {
            sub: "github:1".into(),
            provider: "github".into(),
            user,
            groups: Vec::new(),
            exp: 0,
            host: None,
        };
        let h = s.user_info_header();
        let text = h.to_str().unwrap();
        assert_eq!(
            text,
            r#"{"provider":"github","sub":"github:1","groups":[],"name":"Zo\u00eb \ud83d\ude00"}"#
        );
        s.groups = vec!["acme".into(), "acme/ops".into()];
        assert!(s
            .user_info_header()
            .to_str()
            .unwrap()
            .contains(r#""groups":["acme","acme/ops"],"#));
        let back: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back["name"], "Zoë 😀");
    }

    #[test]
    fn own_cookies_are_stripped_and_others_kept() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("app=1; __Host-oauthgate-session=abc"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-oauthgate-login-x=y; theme=dark"),
        );
        strip_own_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "app=1; theme=dark");
        let mut only = HeaderMap::new();
        only.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-oauthgate-session=abc"),
        );
        strip_own_cookies(&mut only);
        assert!(!only.contains_key(header::COOKIE));
    }

    #[test]
    fn own_cookies_are_stripped_from_a_header_that_is_not_utf8() {
        // Another app on the host set `x=é` in Latin-1: the header is not UTF-8.
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"x=\xe9; __Host-oauthgate-session=abc; y=2").unwrap(),
        );
        strip_own_cookies(&mut h);
        assert_eq!(h[header::COOKIE].as_bytes(), b"x=\xe9; y=2");
    }
}

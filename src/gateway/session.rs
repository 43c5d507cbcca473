//! The login session: who is logged in (with their groups), sealed in the
//! `__Host-oauthgate-session` cookie (or `gateway.session.cookie_name`), and the identity
//! headers derived from it. With `store: redis` the cookie holds a sealed id and the
//! session lives in Redis (`redis.rs`).

pub mod admin;
pub mod lifetime;
mod redis;
mod store;
mod strip;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use memchr::memmem;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Secret;
use crate::cookies::{CookieCodec, SealedWith};
use crate::error::StartError;
use crate::util::{now, Memo};
pub use redis::{Fetch, RedisStore};
#[cfg(feature = "fuzzing")]
pub use strip::strip_own_cookies;
pub use strip::{own_cookies_cut, OwnCookies};

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
    /// Unix time the cookie was sealed (at login, then at each renewal): the idle timeout
    /// counts from it. 0 in cookies sealed before it existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seen: u64,
    /// The route host (lower case) whose login made it: it opens on that host only, so a
    /// cookie copied to another host is no session there. `None`: `public_url`'s host (and
    /// every session sealed before routes had hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Whether `s` was made for the route host `host` (both `None`: `public_url`'s host).
fn made_for(s: &Session, host: Option<&str>) -> bool {
    match (s.host.as_deref(), host) {
        (None, None) => true,
        (Some(made), Some(here)) => made.eq_ignore_ascii_case(here),
        _ => false,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// Opened with a previous secret: re-sealed with the current one on first use.
    old_key: bool,
    /// The `Set-Cookie` that renews this cookie, sealed once when first due: every request
    /// still carrying this cookie gets the same one, so a session is re-sealed at most once
    /// per renewal period however many requests it sends.
    renewal: OnceLock<HeaderValue>,
}

impl Verified {
    /// `session` with its headers worked out (`identity` is `identity.headers`).
    pub fn new(session: Session, identity: &[(http::header::HeaderName, String)]) -> Self {
        Verified {
            user_info: session.user_info_header(),
            headers: super::identity::header_values(identity, &session),
            assertions: Mutex::new(Vec::new()),
            session,
            old_key: false,
            renewal: OnceLock::new(),
        }
    }

    /// The `Set-Cookie` that renews this session's cookie, once it is due (see
    /// [`Sessions::current`]); the response to a request that used the session carries it.
    pub fn renewal(&self) -> Option<&HeaderValue> {
        self.renewal.get()
    }
}

impl crate::context::User for Verified {
    fn sub(&self) -> &str {
        &self.session.sub
    }

    fn renewal(&self) -> Option<&HeaderValue> {
        Verified::renewal(self)
    }
}

/// How many opened sessions are remembered, all serving threads' memos together (then a
/// memo starts afresh).
const MEMO_CAPACITY: usize = 10_000;

/// The longest cookie value looked at: browsers keep no cookie over 4,096 bytes (RFC 6265
/// §6.1's minimum, and what they all enforce), so no session cookie of ours is longer.
const MAX_COOKIE: usize = 4096;

/// Seals and opens sessions, and the short-lived login cookies.
pub struct Sessions {
    sessions: CookieCodec,
    logins: CookieCodec,
    pub ttl: Duration,
    life: lifetime::Lifetime,
    /// Keys the logout form's token (see [`Sessions::logout_token`]).
    logout_key: [u8; 32],
    /// The session cookie's name (starts with [`COOKIE_PREFIX`], so it never goes upstream).
    cookie: Box<str>,
    /// Finds `cookie` in a request's cookie header.
    finder: memmem::Finder<'static>,
    /// `identity.headers`: header → user field.
    identity: Vec<(http::header::HeaderName, String)>,
    /// Sealed cookie value → what it opened to. Opening is deterministic for a given value,
    /// so this only saves the decryption, JSON parsing and header building that every request
    /// of a logged-in user would repeat; `exp` is still checked on every use. Hashed with
    /// foldhash, not SipHash: a key is a whole sealed cookie (over 200 bytes) hashed on every
    /// request, and only cookies that opened, so sealed with our secret, are ever stored:
    /// nobody can choose keys to collide. One memo per serving thread: a shared one had its
    /// lock, and the reference counts of the values it hands out (the `Verified` and its
    /// `X-User-Info` bytes), written by both cores on every request.
    memo: Memo<Verified>,
    /// `store: redis`: where sessions live (the cookie names one); `None`: in the cookie.
    store: Option<Arc<RedisStore>>,
}

impl Sessions {
    pub fn new(
        keys: Keys<'_>,
        data_dir: &Path,
        life: (Duration, Option<Duration>),
        cookie: &str,
        identity: Vec<(http::header::HeaderName, String)>,
        store: Option<Arc<RedisStore>>,
    ) -> Result<Self, StartError> {
        let secret = match keys.secret {
            Some(s) => s.0.as_bytes().to_vec(),
            None => generated_secret(&data_dir.join("session.key"))?,
        };
        let previous: Vec<&[u8]> = keys.previous.iter().map(|s| s.0.as_bytes()).collect();
        let codec = |purpose| CookieCodec::rotating(&secret, &previous, purpose);
        let (ttl, idle) = life;
        Ok(Sessions {
            sessions: codec("oauthgate gateway session v1"),
            logins: codec("oauthgate gateway login v1"),
            ttl,
            life: lifetime::Lifetime::new(ttl, idle),
            logout_key: logout_key(&secret),
            cookie: cookie.into(),
            finder: memmem::Finder::new(cookie).into_owned(),
            identity,
            memo: Memo::new(MEMO_CAPACITY),
            store,
        })
    }

    /// The request's session, if it has a valid one made for `host` (the route host the
    /// request is for, `None` for `public_url`'s: see [`Session::host`]), not past `ttl` and
    /// not idle too long. A session due for renewal, or opened with a previous secret, gets
    /// its renewed cookie sealed here (see [`Verified::renewal`]); the common request only
    /// compares numbers.
    pub fn current(&self, headers: &HeaderMap, host: Option<&str>) -> Option<Arc<Verified>> {
        // The first value, looked up as bytes (a remembered value was text when it was
        // opened); anything else takes the first that is text, as opening always did.
        let first = session_cookie_values(headers, &self.finder).next()?;
        let now = now();
        let verified = match self.memo.get(first) {
            Some(hit) => hit,
            None => {
                let raw = session_cookie_value(headers, &self.finder)?;
                match self.memo.get(raw.as_bytes()) {
                    Some(hit) => hit,
                    None => self.open(raw, now)?,
                }
            }
        };
        if !made_for(&verified.session, host) {
            return None;
        }
        match self.life.judge(&verified.session, now) {
            lifetime::Life::Over => return None,
            lifetime::Life::Renew => self.renew(&verified, now),
            lifetime::Life::Fresh if verified.old_key => self.renew(&verified, now),
            lifetime::Life::Fresh => {}
        }
        Some(verified)
    }

    /// Opens the session cookie `raw` (the memo did not have it) and remembers it.
    fn open(&self, raw: &str, now: u64) -> Option<Arc<Verified>> {
        let (text, with) = self.sessions.open_value(&self.cookie, raw)?;
        let session: Session = serde_json::from_str(&text).ok()?;
        if self.life.judge(&session, now) == lifetime::Life::Over {
            return None;
        }
        let mut verified = Verified::new(session, &self.identity);
        verified.old_key = with == SealedWith::Previous;
        let verified = Arc::new(verified);
        self.memo.remember(raw.as_bytes(), verified.clone());
        Some(verified)
    }

    /// Seals `v`'s renewed cookie (with the current secret), unless done already.
    fn renew(&self, v: &Verified, now: u64) {
        v.renewal.get_or_init(|| {
            let renewed = lifetime::renewed(&v.session, now);
            let value = serde_json::to_string(&renewed).unwrap_or_default();
            // Never past the session's end: the cookie lives only what the session has left.
            let left = Duration::from_secs(renewed.exp.saturating_sub(now).max(1));
            self.sessions.seal(&self.cookie, &value, left)
        });
    }

    /// The `Set-Cookie` value that starts `session`.
    pub fn issue(&self, session: &Session) -> HeaderValue {
        let value = serde_json::to_string(session).unwrap_or_default();
        self.sessions.seal(&self.cookie, &value, self.ttl)
    }

    pub fn logins(&self) -> &CookieCodec {
        &self.logins
    }

    /// The logout form's token for `s`: bound to the session (its subject and end, which a
    /// renewal keeps, so a cookie renewed after the form was served still matches) and keyed
    /// by the secret, so no other page can work it out.
    pub fn logout_token(&self, s: &Session) -> String {
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let mut token = Sha256::new();
        token.update(self.logout_key);
        token.update(s.sub.as_bytes());
        token.update([0]);
        token.update(s.exp.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token.finalize()[..18])
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }
}

/// The session secret, and the previous ones whose cookies still open.
#[derive(Clone, Copy)]
pub struct Keys<'a> {
    pub secret: Option<&'a Secret>,
    pub previous: &'a [Secret],
}

/// The sealed session cookie's values in a request, found without allocating: each `name=`
/// (`name` found by `finder`) that begins a cookie pair, to the next `;` (trailing blanks
/// cut), in order. Searched as bytes with SIMD rather than split pair by pair: a browser's
/// cookie header is often hundreds of bytes; ours first in the header (as a browser sends
/// it when it is the site's only cookie) is taken without a search. A header with bytes
/// other than visible ASCII elsewhere (another app's cookie) does not hide ours.
fn session_cookie_values<'a>(
    headers: &'a HeaderMap,
    finder: &'a memmem::Finder<'_>,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let name = finder.needle().len();
    headers.get_all(header::COOKIE).iter().flat_map(move |v| {
        let v = v.as_bytes();
        let first = v.starts_with(finder.needle());
        let from = usize::from(first);
        std::iter::once(0)
            .filter(move |_| first)
            .chain(finder.find_iter(&v[from..]).map(move |at| at + from))
            .filter_map(move |at| {
                let before = v[..at].trim_ascii_end();
                if !(before.is_empty() || before.ends_with(b";")) {
                    return None;
                }
                let rest = v[at + name..].strip_prefix(b"=")?;
                let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
                let value = rest[..end].trim_ascii_end();
                // Longer than any cookie a browser keeps: not one we sealed, nor a memo key.
                (value.len() <= MAX_COOKIE).then_some(value)
            })
    })
}

/// The session cookie's value to open: the first of [`session_cookie_values`] that is UTF-8.
fn session_cookie_value<'a>(
    headers: &'a HeaderMap,
    finder: &'a memmem::Finder<'_>,
) -> Option<&'a str> {
    session_cookie_values(headers, finder).find_map(|v| std::str::from_utf8(v).ok())
}

/// The key of logout tokens: derived from the session secret for that purpose alone.
fn logout_key(secret: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut key = Sha256::new();
    key.update(b"oauthgate gateway logout v1\0");
    key.update(secret);
    key.finalize().into()
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

#[cfg(test)]
mod tests;

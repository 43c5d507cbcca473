//! Encrypted, authenticated cookies (the `cookie` crate's private jar: AES-256-GCM, the name
//! bound as associated data), always `__Host-`: Secure, Path=/, no Domain, HttpOnly, Lax.
//! [`Sealed`] builds the short-lived cookies of logins in flight on top of them.

mod sealed;

use std::time::Duration;

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::header::{self, HeaderMap, HeaderValue};

pub use sealed::Sealed;

/// Seals the cookies of one role with one key, and opens them with it or, during a secret
/// rotation, with one of the keys before it.
pub struct CookieCodec {
    key: Key,
    /// Keys of `previous_secrets`: cookies they sealed still open (and should be re-sealed).
    previous: Vec<Key>,
}

/// Which key opened a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedWith {
    Current,
    /// A previous secret's key: the cookie should be re-sealed with the current one.
    Previous,
}

impl CookieCodec {
    /// A codec whose key is derived from `secret` (at least 32 bytes) for one `purpose`, so
    /// the same secret never keys two kinds of cookie.
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        Self::rotating(secret, &[], purpose)
    }

    /// Like [`CookieCodec::derive`], also opening what the `previous` secrets sealed.
    pub fn rotating(secret: &[u8], previous: &[&[u8]], purpose: &str) -> Self {
        CookieCodec {
            key: derive_key(secret, purpose),
            previous: previous.iter().map(|s| derive_key(s, purpose)).collect(),
        }
    }

    /// A `Set-Cookie` value holding `value` encrypted, living `max_age`.
    pub fn seal(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key).add(attributes(
            Cookie::new(name.to_owned(), value.to_owned()),
            max_age,
        ));
        let sealed = jar.get(name).map(ToString::to_string).unwrap_or_default();
        // Cookie values from the jar are base64 and the attributes are ASCII.
        HeaderValue::from_str(&sealed).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The decrypted value of cookie `name` from a request's `Cookie` headers, if it is ours
    /// and intact.
    pub fn open(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        self.open_with(headers, name).map(|(value, _)| value)
    }

    /// Like [`CookieCodec::open`], saying whether the current key or an old one opened it.
    pub fn open_with(&self, headers: &HeaderMap, name: &str) -> Option<(String, SealedWith)> {
        let raw = request_cookies(headers).find(|c| c.name() == name)?;
        self.open_cookie(name, raw.into_owned())
    }

    /// Opens the sealed value `raw` of cookie `name`, as found by the caller: what is opened
    /// is exactly what the caller keys its memo with.
    pub fn open_value(&self, name: &str, raw: &str) -> Option<(String, SealedWith)> {
        self.open_cookie(name, Cookie::new(name.to_owned(), raw.to_owned()))
    }

    /// Opens `raw`, a cookie named `name`, with the current key or an old one.
    fn open_cookie(&self, name: &str, raw: Cookie<'static>) -> Option<(String, SealedWith)> {
        let mut jar = CookieJar::new();
        jar.add_original(raw);
        if let Some(c) = jar.private(&self.key).get(name) {
            return Some((c.value().to_owned(), SealedWith::Current));
        }
        // AES-GCM authenticates: a key that did not seal the cookie cannot open it.
        self.previous.iter().find_map(|key| {
            let c = jar.private(key).get(name)?;
            Some((c.value().to_owned(), SealedWith::Previous))
        })
    }
}

fn derive_key(secret: &[u8], purpose: &str) -> Key {
    use sha2::{Digest, Sha512};
    let mut master = Sha512::new();
    master.update(purpose.as_bytes());
    master.update([0]);
    master.update(secret);
    Key::derive_from(&master.finalize())
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn removal(name: &str) -> HeaderValue {
    let cookie = attributes(Cookie::new(name.to_owned(), ""), Duration::ZERO);
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn attributes(mut cookie: Cookie<'static>, max_age: Duration) -> Cookie<'static> {
    cookie.set_path("/");
    cookie.set_secure(true);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_max_age(cookie::time::Duration::seconds(
        i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
    ));
    cookie
}

/// Adds `set_cookie` (a renewed session) to a response unless a shared cache could store
/// that response: one cache in front handing a stored `Set-Cookie` to every later visitor
/// would hand them this user's session. `private` or `no-store` responses take it; one
/// without `Cache-Control` takes it with `Cache-Control: private` added; any other
/// (`public`, `s-maxage`, a bare `max-age`, `no-cache`) does not: the renewal rides on a
/// later response. Returns whether the cookie was added.
pub fn attach_unshared(headers: &mut HeaderMap, set_cookie: &HeaderValue) -> bool {
    let mut any = false;
    let mut unshared = false;
    for value in headers.get_all(header::CACHE_CONTROL) {
        any = true;
        let text = value.to_str().unwrap_or("");
        unshared |= text.split(',').any(|d| {
            let name = d.trim().split('=').next().unwrap_or("").trim();
            name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store")
        });
    }
    if any && !unshared {
        return false;
    }
    if !any {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    }
    headers.append(header::SET_COOKIE, set_cookie.clone());
    true
}

/// Every cookie of a request (HTTP/2 may split them over several `Cookie` headers).
pub fn request_cookies(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'_>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_never_rides_on_a_response_a_shared_cache_may_store() {
        let cookie = HeaderValue::from_static("__Host-oauthgate-session=x");
        let with = |cc: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in cc {
                h.append(header::CACHE_CONTROL, HeaderValue::from_static(v));
            }
            let added = attach_unshared(&mut h, &cookie);
            (added, h)
        };
        for shared in [
            &["public, max-age=600"][..],
            &["max-age=60"],
            &["s-maxage=60"],
            &["no-cache"],
            &["PUBLIC"],
            &["max-age=60", "must-revalidate"],
        ] {
            let (added, h) = with(shared);
            assert!(!added, "{shared:?}");
            assert!(h.get(header::SET_COOKIE).is_none(), "{shared:?}");
        }
        for unshared in [
            &["private"][..],
            &["no-store"],
            &["Private, max-age=60"],
            &["max-age=60", "private=\"set-cookie\""],
        ] {
            let (added, h) = with(unshared);
            assert!(added, "{unshared:?}");
            assert_eq!(h.get(header::SET_COOKIE), Some(&cookie), "{unshared:?}");
        }
        let (added, h) = with(&[]);
        assert!(added);
        assert_eq!(h[header::CACHE_CONTROL], "private");
        assert_eq!(h[header::SET_COOKIE], cookie);
    }

    fn request_with(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).unwrap(),
        );
        h
    }

    #[test]
    fn sealed_cookies_open_only_with_their_key_and_name() {
        let codec = CookieCodec::derive(&[1; 32], "test");
        let set = codec.seal("__Host-a", "secret value", Duration::from_secs(60));
        let text = set.to_str().unwrap();
        assert!(!text.contains("secret"), "{text}");
        for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(text.contains(attr), "{attr} missing in {text}");
        }
        let req = request_with(&set);
        assert_eq!(
            codec.open(&req, "__Host-a").as_deref(),
            Some("secret value")
        );
        // Another key, or another purpose of the same secret, cannot open it.
        assert_eq!(
            CookieCodec::derive(&[2; 32], "test").open(&req, "__Host-a"),
            None
        );
        assert_eq!(
            CookieCodec::derive(&[1; 32], "other").open(&req, "__Host-a"),
            None
        );
        // The name is authenticated: the same value under another name is refused.
        let moved = HeaderMap::from_iter([(
            header::COOKIE,
            HeaderValue::from_str(
                &req[header::COOKIE]
                    .to_str()
                    .unwrap()
                    .replace("__Host-a=", "__Host-b="),
            )
            .unwrap(),
        )]);
        assert_eq!(codec.open(&moved, "__Host-b"), None);
        // Tampering is refused.
        let tampered = req[header::COOKIE]
            .to_str()
            .unwrap()
            .replace("__Host-a=", "__Host-a=A");
        let tampered =
            HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_str(&tampered).unwrap())]);
        assert_eq!(codec.open(&tampered, "__Host-a"), None);
    }

    #[test]
    fn previous_keys_open_and_say_so_until_they_are_removed() {
        let (old, new) = ([1; 32], [2; 32]);
        let set = CookieCodec::derive(&old, "test").seal("__Host-a", "v", Duration::from_secs(60));
        let req = request_with(&set);
        let rotating = CookieCodec::rotating(&new, &[&old], "test");
        assert_eq!(
            rotating.open_with(&req, "__Host-a"),
            Some(("v".to_owned(), SealedWith::Previous))
        );
        // Another purpose of the old secret still cannot open it.
        let other = CookieCodec::rotating(&new, &[&old], "other");
        assert_eq!(other.open(&req, "__Host-a"), None);
        // What the rotating codec seals opens with the new secret alone.
        let resealed = request_with(&rotating.seal("__Host-a", "v", Duration::from_secs(60)));
        let only_new = CookieCodec::derive(&new, "test");
        assert_eq!(
            only_new.open_with(&resealed, "__Host-a"),
            Some(("v".to_owned(), SealedWith::Current))
        );
        // The old secret removed: the old cookie is refused.
        assert_eq!(only_new.open(&req, "__Host-a"), None);
    }

    #[test]
    fn removal_expires_the_cookie() {
        let text = removal("__Host-a");
        assert!(text.to_str().unwrap().contains("Max-Age=0"));
    }
}

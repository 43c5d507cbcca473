//! Encrypted, authenticated cookies (the `cookie` crate's private jar: AES-256-GCM, the name
//! bound as associated data), always `__Host-`: Secure, Path=/, no Domain, HttpOnly, Lax.
//! [`Sealed`] builds the short-lived cookies of logins in flight on top of them.

mod sealed;

use std::time::Duration;

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::header::{self, HeaderMap, HeaderValue};

pub use sealed::Sealed;

/// Seals and opens the cookies of one role with one key.
pub struct CookieCodec {
    key: Key,
}

impl CookieCodec {
    /// A codec whose key is derived from `secret` (at least 32 bytes) for one `purpose`, so
    /// the same secret never keys two kinds of cookie.
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        use sha2::{Digest, Sha512};
        let mut master = Sha512::new();
        master.update(purpose.as_bytes());
        master.update([0]);
        master.update(secret);
        CookieCodec {
            key: Key::derive_from(&master.finalize()),
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
        let raw = request_cookies(headers).find(|c| c.name() == name)?;
        let mut jar = CookieJar::new();
        jar.add_original(raw.into_owned());
        jar.private(&self.key)
            .get(name)
            .map(|c| c.value().to_owned())
    }
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
    fn removal_expires_the_cookie() {
        let text = removal("__Host-a");
        assert!(text.to_str().unwrap().contains("Max-Age=0"));
    }
}

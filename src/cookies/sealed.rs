//! Logins in flight: what a login must remember while the browser is away, sealed in a
//! short-lived cookie of its own, opened only for the `state` it was started with and only
//! until it expires. The central's round trip and the gateway's pending login both use it.

use std::marker::PhantomData;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{removal, request_cookies, CookieCodec};
use crate::util::now;

/// Shorter states are refused before any cookie is opened (ours are 32 characters).
const MIN_STATE: usize = 16;

/// One kind of login in flight: its cookie prefix, how long it may take, and how many a
/// browser may have at once. `T` is what the login remembers besides its state and expiry.
pub struct Sealed<T> {
    prefix: &'static str,
    ttl: Duration,
    max_in_flight: usize,
    value: PhantomData<fn() -> T>,
}

/// What the cookie holds: the state and the expiry every login has, and the caller's value.
/// The wire names stay short: the cookie travels with every request to the site.
#[derive(Serialize, Deserialize)]
struct Envelope<V> {
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "exp")]
    expires: u64,
    #[serde(flatten)]
    value: V,
}

/// Only the expiry, to pick the oldest logins without knowing what they remember.
#[derive(Deserialize)]
struct Expiry {
    exp: u64,
}

impl<T: Serialize + DeserializeOwned> Sealed<T> {
    pub const fn new(prefix: &'static str, ttl: Duration, max_in_flight: usize) -> Self {
        Sealed {
            prefix,
            ttl,
            max_in_flight,
            value: PhantomData,
        }
    }

    /// The `Set-Cookie` values that start the login `state` remembering `value`: first the
    /// removals of this browser's oldest logins beyond the limit, then the new login's cookie.
    pub fn seal(
        &self,
        codec: &CookieCodec,
        headers: &HeaderMap,
        state: &str,
        value: &T,
    ) -> Result<Vec<HeaderValue>, serde_json::Error> {
        let text = serde_json::to_string(&Envelope {
            state: state.to_owned(),
            expires: now() + self.ttl.as_secs(),
            value,
        })?;
        let started = |v: &str| serde_json::from_str::<Expiry>(v).ok().map(|e| e.exp);
        let stale = excess_logins(
            codec,
            headers,
            self.prefix,
            self.max_in_flight.saturating_sub(1),
            started,
        );
        let mut set: Vec<HeaderValue> = stale.iter().map(|name| removal(name)).collect();
        set.push(codec.seal(&self.cookie_name(state), &text, self.ttl));
        Ok(set)
    }

    /// What the login `state` remembers, if this browser started it (its cookie opens and
    /// holds exactly this state, compared in constant time) and it has not expired.
    pub fn open(&self, codec: &CookieCodec, headers: &HeaderMap, state: &str) -> Option<T> {
        if state.len() < MIN_STATE {
            return None;
        }
        let text = codec.open(headers, &self.cookie_name(state))?;
        let envelope: Envelope<T> = serde_json::from_str(&text).ok()?;
        let same = bool::from(envelope.state.as_bytes().ct_eq(state.as_bytes()));
        (same && envelope.expires >= now()).then_some(envelope.value)
    }

    /// Whether the request carries any login of this kind: a check that costs no decryption,
    /// for refusing a request before reading its body.
    pub fn any_in(&self, headers: &HeaderMap) -> bool {
        request_cookies(headers).any(|c| c.name().starts_with(self.prefix))
    }

    /// The `Set-Cookie` value that ends the login `state` (it is used up).
    pub fn removal(&self, state: &str) -> HeaderValue {
        removal(&self.cookie_name(state))
    }

    fn cookie_name(&self, state: &str) -> String {
        per_login_name(self.prefix, state)
    }
}

/// The name of a per-login cookie: `prefix` plus the first characters of the login's random
/// state, so that logins in two tabs do not overwrite each other.
fn per_login_name(prefix: &str, state: &str) -> String {
    let short: String = state
        .chars()
        .take(16)
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("{prefix}{short}")
}

/// The per-login cookies (`prefix…`) of a request that must go so that the browser holds at
/// most `keep` of them: those that do not open, then the oldest by `started` (read from each
/// value). Each login in flight costs a cookie, and a page that starts many logins must not
/// push a browser's cookies past what servers accept.
fn excess_logins(
    codec: &CookieCodec,
    headers: &HeaderMap,
    prefix: &str,
    keep: usize,
    started: impl Fn(&str) -> Option<u64>,
) -> Vec<String> {
    let mut logins: Vec<(Option<u64>, String)> = request_cookies(headers)
        .filter(|c| c.name().starts_with(prefix))
        .map(|c| {
            let name = c.name().to_owned();
            let at = codec.open(headers, &name).and_then(|v| started(&v));
            (at, name)
        })
        .collect();
    if logins.len() <= keep {
        return Vec::new();
    }
    // `None` (unreadable) sorts first, so it goes first.
    logins.sort();
    let excess = logins.len() - keep;
    logins.into_iter().take(excess).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Trip {
        #[serde(rename = "r")]
        return_to: String,
    }

    const TRIPS: Sealed<Trip> = Sealed::new("__Host-t-", Duration::from_secs(60), 2);
    const STATE: &str = "0123456789abcdefghij";

    /// A request carrying the cookies `set` would store (removals and all).
    fn request_with(set: &[HeaderValue]) -> HeaderMap {
        let pairs: Vec<&str> = set
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap())
            .collect();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).unwrap(),
        );
        h
    }

    fn trip() -> Trip {
        Trip {
            return_to: "/x".into(),
        }
    }

    fn codec() -> CookieCodec {
        CookieCodec::derive(&[1; 32], "test")
    }

    /// The cookies that start the login `state` in a browser holding `before`.
    fn start(before: &[HeaderValue], state: &str) -> Vec<HeaderValue> {
        let headers = if before.is_empty() {
            HeaderMap::new()
        } else {
            request_with(before)
        };
        TRIPS.seal(&codec(), &headers, state, &trip()).unwrap()
    }

    #[test]
    fn a_login_opens_only_for_its_own_state() {
        let codec = codec();
        let set = start(&[], STATE);
        assert_eq!(set.len(), 1);
        let text = set[0].to_str().unwrap();
        assert!(text.starts_with("__Host-t-0123456789abcdef="), "{text}");
        assert!(text.contains("Max-Age=60"), "{text}");
        let req = request_with(&set);
        assert_eq!(TRIPS.open(&codec, &req, STATE), Some(trip()));
        // Same cookie name (first 16 characters), another state: refused.
        assert_eq!(TRIPS.open(&codec, &req, "0123456789abcdefXXXX"), None);
        assert_eq!(TRIPS.open(&codec, &req, "0123456789abcdef"), None);
        // Too short to be ours, and another key: refused.
        assert_eq!(TRIPS.open(&codec, &req, "0123"), None);
        let other = CookieCodec::derive(&[2; 32], "test");
        assert_eq!(TRIPS.open(&other, &req, STATE), None);
        assert!(TRIPS.removal(STATE).to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn an_expired_login_does_not_open() {
        let codec = codec();
        let past = Envelope {
            state: STATE.to_owned(),
            expires: now() - 1,
            value: trip(),
        };
        let sealed = codec.seal(
            &per_login_name("__Host-t-", STATE),
            &serde_json::to_string(&past).unwrap(),
            Duration::from_secs(60),
        );
        let req = request_with(&[sealed]);
        assert_eq!(TRIPS.open(&codec, &req, STATE), None);
    }

    #[test]
    fn the_oldest_logins_beyond_the_limit_are_named() {
        let codec = codec();
        let mut pairs: Vec<String> = [("p-c", "30"), ("p-a", "10"), ("p-b", "20")]
            .iter()
            .map(|(n, v)| {
                let set = codec.seal(n, v, Duration::from_secs(60));
                set.to_str().unwrap().split(';').next().unwrap().to_owned()
            })
            .collect();
        pairs.push("p-forged=xyz".into());
        pairs.push("other=1".into());
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).unwrap(),
        );
        let started = |v: &str| v.parse().ok();
        assert_eq!(
            excess_logins(&codec, &h, "p-", 2, started),
            ["p-forged", "p-a"]
        );
        assert!(excess_logins(&codec, &h, "p-", 4, started).is_empty());
    }

    #[test]
    fn starting_a_login_past_the_limit_ends_the_oldest() {
        let first = start(&[], STATE);
        let second = start(&first, "abcdefghij0123456789");
        assert_eq!(second.len(), 1, "two logins fit");
        let third = start(&[&first[..], &second[..]].concat(), "ABCDEFGHIJ0123456789");
        assert_eq!(third.len(), 2, "{third:?}");
        let ended = third[0].to_str().unwrap();
        assert!(ended.contains("Max-Age=0"), "{ended}");
    }
}

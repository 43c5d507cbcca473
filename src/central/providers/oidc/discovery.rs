//! An OpenID Connect provider's metadata: discovery (fetched in the background from
//! start-up until it succeeds, refreshed hourly, its endpoints https only) and `id_token` verification against the provider's JWKS: an
//! asymmetric algorithm only, a known key, then `iss`, `aud` (and `azp`), `exp` and the
//! `nonce` this login sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use url::Url;

use crate::central::fetch::get_json;
use crate::central::providers::ProviderError;
use crate::config::is_loopback;

/// How long a discovery document or key set is trusted before it is fetched again.
const REFRESH: Duration = Duration::from_secs(3600);
/// Unknown `kid`s trigger a key refetch at most this often.
const KEY_REFETCH: Duration = Duration::from_secs(30);
/// How long after start-up a login waits for the first discovery still under way (later
/// ones do not wait).
const FIRST_WAIT: Duration = Duration::from_secs(2);
/// After a failed refresh, the stale document serves this long before the next try, so that
/// logins do not each wait for a provider that is down.
const REFRESH_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    pub jwks_uri: Url,
    /// RFC 9207: the provider adds `iss` to every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl Discovery {
    /// Refuses endpoints a network attacker could change or that are not web addresses at
    /// all: https only, plain http only on this machine for an issuer on this machine.
    fn check_endpoints(&self, provider: &str, issuer: &Url) -> Result<(), ProviderError> {
        let local_issuer = issuer.scheme() == "http" && is_loopback(issuer);
        let endpoints = [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", Some(&self.token_endpoint)),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
            ("jwks_uri", Some(&self.jwks_uri)),
        ];
        for (key, url) in endpoints {
            let Some(url) = url else { continue };
            let ok = match url.scheme() {
                "https" => true,
                "http" => local_issuer && is_loopback(url),
                _ => false,
            };
            if !ok {
                return Err(ProviderError::BadAnswer(format!(
                    "provider {provider}: discovery gives {key} {url}, which is not https \
                     (http only for an issuer on this machine)"
                )));
            }
        }
        Ok(())
    }
}

/// One OIDC provider's cached metadata and keys.
pub struct Metadata {
    /// The provider's name, for errors.
    name: String,
    issuer: Url,
    /// Endpoints given in the config (presets such as Google): no discovery needed.
    fixed: Option<Discovery>,
    discovery: RwLock<Option<(Discovery, Instant)>>,
    /// No refresh before this, after one failed.
    retry_after: RwLock<Option<Instant>>,
    /// Set once the first fetch has ended, either way; `first_done` wakes who waits for it.
    tried: AtomicBool,
    first_done: Notify,
    created: Instant,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

impl Metadata {
    pub fn new(name: &str, issuer: Url, fixed: Option<Discovery>) -> Self {
        Metadata {
            name: name.to_owned(),
            issuer,
            fixed,
            discovery: RwLock::new(None),
            retry_after: RwLock::new(None),
            tried: AtomicBool::new(false),
            first_done: Notify::new(),
            created: Instant::now(),
            keys: RwLock::new(None),
        }
    }

    /// Whether logins can start: the endpoints are fixed, or discovery succeeded once.
    pub fn ready(&self) -> bool {
        self.fixed.is_some() || self.discovery.read().is_ok_and(|d| d.is_some())
    }

    /// The provider's metadata: fixed, cached, or refreshed now when the cached one is over
    /// an hour old. Never discovered yet: `NotDiscovered` at once, as the first discovery is
    /// the background task's ([`Metadata::fetch`]); a login does not wait for it.
    pub async fn discovery(&self, http: &reqwest::Client) -> Result<Discovery, ProviderError> {
        if let Some(fixed) = &self.fixed {
            return Ok(fixed.clone());
        }
        if !self.tried.load(Ordering::Acquire) {
            self.first_fetch().await;
        }
        let cached = self.discovery.read().ok().and_then(|d| d.clone());
        let Some((d, at)) = cached else {
            return Err(ProviderError::NotDiscovered);
        };
        let backing_off = self
            .retry_after
            .read()
            .ok()
            .and_then(|r| *r)
            .is_some_and(|r| Instant::now() < r);
        if at.elapsed() < REFRESH || backing_off {
            return Ok(d);
        }
        // A stale document beats none while the provider is briefly unreachable.
        Ok(self.fetch(http).await.unwrap_or(d))
    }

    /// Waits for the first fetch, until [`FIRST_WAIT`] after start-up: a login in the first
    /// instants finds the provider discovered rather than unavailable.
    async fn first_fetch(&self) {
        let notified = self.first_done.notified();
        tokio::pin!(notified);
        // Registered before the flag is read again: a wake-up in between is not lost.
        notified.as_mut().enable();
        if !self.tried.load(Ordering::Acquire) {
            let until = tokio::time::Instant::from_std(self.created + FIRST_WAIT);
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    /// Fetches the discovery document and keeps it; after a failure, the next refresh
    /// through [`Metadata::discovery`] waits [`REFRESH_RETRY`].
    pub async fn fetch(&self, http: &reqwest::Client) -> Result<Discovery, ProviderError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.as_str().trim_end_matches('/')
        );
        let fetched = get_json::<Discovery>(http, &url, None).await.and_then(|d| {
            if d.issuer.trim_end_matches('/') != self.issuer.as_str().trim_end_matches('/') {
                return Err(ProviderError::BadAnswer(format!(
                    "discovery names issuer {} instead of {}",
                    d.issuer, self.issuer
                )));
            }
            d.check_endpoints(&self.name, &self.issuer)?;
            Ok(d)
        });
        match &fetched {
            Ok(d) => {
                if let Ok(mut slot) = self.discovery.write() {
                    *slot = Some((d.clone(), Instant::now()));
                }
            }
            Err(_) => {
                if let Ok(mut r) = self.retry_after.write() {
                    *r = Some(Instant::now() + REFRESH_RETRY);
                }
            }
        }
        if !self.tried.swap(true, Ordering::AcqRel) {
            self.first_done.notify_waiters();
        }
        fetched
    }

    /// Verifies an `id_token` and returns its claims.
    pub async fn verify(
        &self,
        http: &reqwest::Client,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let bad = |m: String| ProviderError::BadAnswer(format!("id_token: {m}"));
        let unreadable = |e| ProviderError::unreadable("id_token", e);
        let header = jsonwebtoken::decode_header(token).map_err(unreadable)?;
        let alg = header.alg;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(bad(format!("algorithm {alg:?} is not accepted")));
        }
        let discovery = self.discovery(http).await?;
        let jwk_set = self
            .keys(http, &discovery.jwks_uri, header.kid.as_deref())
            .await?;
        let jwk = match &header.kid {
            Some(kid) => jwk_set.find(kid),
            None if jwk_set.keys.len() == 1 => jwk_set.keys.first(),
            None => None,
        }
        .ok_or_else(|| bad("signed by a key the provider does not publish".into()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(unreadable)?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[discovery.issuer.as_str()]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(unreadable)?;
        let claims = data.claims;
        // OIDC Core §3.1.3.7: with several audiences the token must name us as its
        // authorized party, and an `azp` that is present must be us.
        let several = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp") {
            Some(Value::String(azp)) if azp == client_id => {}
            None if !several => {}
            Some(_) => return Err(bad("azp is another client".into())),
            None => return Err(bad("several audiences and no azp".into())),
        }
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(bad("nonce does not match this login".into()));
        }
        Ok(claims)
    }

    /// The key set, refetched when stale or when `kid` is unknown (rate-limited).
    async fn keys(
        &self,
        http: &reqwest::Client,
        url: &Url,
        kid: Option<&str>,
    ) -> Result<JwkSet, ProviderError> {
        let cached = self.keys.read().ok().and_then(|k| k.clone());
        if let Some((set, at)) = &cached {
            let knows = kid.is_none_or(|kid| set.find(kid).is_some());
            if at.elapsed() < REFRESH && (knows || at.elapsed() < KEY_REFETCH) {
                return Ok(set.clone());
            }
        }
        match get_json::<JwkSet>(http, url.as_str(), None).await {
            Ok(set) => {
                if let Ok(mut slot) = self.keys.write() {
                    *slot = Some((set.clone(), Instant::now()));
                }
                Ok(set)
            }
            Err(e) => cached.map(|(s, _)| s).ok_or(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(issuer: &str, key: &str, value: &str) -> Discovery {
        let mut d = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
        });
        d[key] = value.into();
        serde_json::from_value(d).unwrap()
    }

    /// Moved here from `tests/protocol.rs`, which fetched the document again per login.
    #[test]
    fn endpoints_must_be_https_or_loopback_for_a_loopback_issuer() {
        let public = Url::parse("https://login.example").unwrap();
        let local = Url::parse("http://127.0.0.1:9000").unwrap();
        for (key, value) in [
            ("token_endpoint", "http://example.com/token"),
            ("userinfo_endpoint", "http://10.1.2.3/userinfo"),
            ("jwks_uri", "file:///etc/passwd"),
            ("authorization_endpoint", "javascript:alert(1)"),
        ] {
            for issuer in [&public, &local] {
                let d = doc(issuer.as_str().trim_end_matches('/'), key, value);
                let e = d.check_endpoints("corp", issuer).unwrap_err().to_string();
                assert!(e.contains(&format!("discovery gives {key}")), "{e}");
            }
        }
        let d = doc(
            "http://127.0.0.1:9000",
            "jwks_uri",
            "http://127.0.0.1:9000/k",
        );
        assert!(d.check_endpoints("corp", &local).is_ok());
        let d = doc(
            "https://login.example",
            "jwks_uri",
            "https://keys.example/k",
        );
        assert!(d.check_endpoints("corp", &public).is_ok());
        let d = doc(
            "https://login.example",
            "jwks_uri",
            "http://127.0.0.1:9000/k",
        );
        assert!(d.check_endpoints("corp", &public).is_err());
    }
}

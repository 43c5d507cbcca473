//! The keys of the issuers in `gateway.bearer.issuers`: OIDC discovery
//! (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the configured one),
//! then its `jwks_uri`. Kept in memory; re-read when a token names a `kid` not in them, at
//! most once per [`MIN_REFRESH`], or when older than [`MAX_AGE`]. Every answer is capped at
//! [`MAX_DOCUMENT`] and the client follows no redirects.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;

use super::BearerError;
use crate::config::BearerIssuer;
use crate::error::StartError;

/// Re-reads for unknown `kid`s at most this often (a flood of forged `kid`s costs one fetch).
const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Keys older than this are re-read on the next token (rotations without a new `kid`).
const MAX_AGE: Duration = Duration::from_secs(3600);
/// The largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;

pub struct Issuer {
    pub config: BearerIssuer,
    http: reqwest::Client,
    keys: RwLock<Arc<JwkSet>>,
    /// When the keys were last fetched (or tried); held while fetching, so one fetch runs.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The client for issuers: no redirects, bounded in time.
pub fn http_client() -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("oauthgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| StartError::Key(format!("the HTTP client for bearer issuers: {e}")))
}

impl Issuer {
    pub fn new(config: BearerIssuer, http: reqwest::Client) -> Self {
        Issuer {
            config,
            http,
            keys: RwLock::new(Arc::new(JwkSet { keys: Vec::new() })),
            fetched: tokio::sync::Mutex::new(None),
        }
    }

    /// The key for `kid` (or the only key, for a token without one), re-reading the JWKS
    /// once when it is unknown.
    pub async fn key(&self, kid: Option<&str>) -> Result<Jwk, BearerError> {
        if let Some(k) = self.find(kid) {
            if !self.stale().await {
                return Ok(k);
            }
        }
        self.refresh_if_due().await;
        self.find(kid).ok_or(BearerError::UnknownKey)
    }

    fn find(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().ok()?.clone();
        match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        }
    }

    async fn stale(&self) -> bool {
        match self.fetched.try_lock() {
            Ok(at) => at.is_none_or(|t| t.elapsed() > MAX_AGE),
            // A fetch is running: use what we have.
            Err(_) => false,
        }
    }

    /// Fetches the keys unless they were fetched less than [`MIN_REFRESH`] ago.
    pub async fn refresh_if_due(&self) {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return;
        }
        *fetched = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                if let Ok(mut keys) = self.keys.write() {
                    *keys = Arc::new(set);
                }
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "cannot fetch the bearer issuer's keys")
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, BearerError> {
        let base = self.config.issuer.trim_end_matches('/');
        let d: Discovery = self
            .get(&format!("{base}/.well-known/openid-configuration"))
            .await?;
        if d.issuer != self.config.issuer {
            return Err(BearerError::Keys(format!(
                "discovery names the issuer {:?}",
                d.issuer
            )));
        }
        let uri = url::Url::parse(&d.jwks_uri).map_err(|e| BearerError::Keys(e.to_string()))?;
        if uri.scheme() != "https" && !crate::config::is_loopback(&uri) {
            return Err(BearerError::Keys("jwks_uri is not https".into()));
        }
        self.get(uri.as_str()).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, BearerError> {
        let keys = |e: &dyn std::fmt::Display| BearerError::Keys(format!("{url}: {e}"));
        let mut res = self.http.get(url).send().await.map_err(|e| keys(&e))?;
        if !res.status().is_success() {
            return Err(keys(&res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| keys(&e))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(keys(&"answer too large"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| keys(&e))
    }
}

//! The central role: the OAuth server of a group of threebots, under `/oauth`.
//!
//! `authorize` checks the asking client and sends the browser to the provider, keeping the
//! round trip in an encrypted cookie on this origin (no server-side store, so replicas that
//! share the signing key need nothing else). `callback` (or a provider's own form) brings the
//! answer, the provider turns it into who logged in, and `complete` sends the browser back to
//! the client with a signed assertion (or, for clients that opted in, the legacy Jumpscale
//! signature).

mod authorize;
mod callback;
mod complete;
mod fetch;
mod form;
pub mod keys;
mod providers;

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::body::RequestBody;
use ed25519_dalek::{SigningKey, VerifyingKey};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tracing::{info, warn};

use crate::assertion;
use crate::config::{CentralConfig, ClientConfig};
use crate::cookies::CookieCodec;
use crate::error::{RequestError, StartError};
use crate::pages::{self, Body};
use crate::path::NormalPath;
use crate::util::error_chain;
use providers::Provider;

/// The prefix of every central endpoint.
pub const PREFIX: &str = crate::config::CENTRAL_PREFIX;

pub struct Central {
    issuer: String,
    key: SigningKey,
    verify_hex: String,
    jwks: serde_json::Value,
    cookies: CookieCodec,
    providers: Vec<Arc<dyn Provider>>,
    clients: Vec<ClientConfig>,
    /// The provider answering at the plain `/oauth/callback`, if any.
    plain_callback: Option<String>,
    http: reqwest::Client,
    /// Where logins are counted (`completed` / `failed` per provider).
    pub logins: crate::metrics::Logins,
}

impl Central {
    pub async fn new(config: &CentralConfig) -> Result<Self, StartError> {
        let key = keys::load_or_generate(&config.signing_key)?;
        let vk = key.verifying_key();
        let http = fetch::http_client(config.provider_timeout).map_err(StartError::Client)?;
        let providers: Vec<Arc<dyn Provider>> = config
            .providers
            .iter()
            .cloned()
            .map(providers::build)
            .collect();
        for p in providers.iter().filter(|p| !p.ready()) {
            tokio::spawn(discover(Arc::downgrade(p), http.clone()));
        }
        Ok(Central {
            issuer: config.issuer.clone(),
            verify_hex: assertion::hex(vk.as_bytes()),
            jwks: assertion::jwks(&[vk]),
            cookies: CookieCodec::derive(key.as_bytes(), "oauthgate central round trip v1"),
            key,
            providers,
            clients: config.clients.clone(),
            plain_callback: config.plain_callback.clone(),
            http,
            logins: crate::metrics::Logins::default(),
        })
    }

    /// Whether every provider can start logins: each discovery it needs has succeeded at
    /// least once (what `/oauth/health` reports).
    pub fn ready(&self) -> bool {
        self.providers.iter().all(|p| p.ready())
    }

    /// The public key gateways verify with.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub async fn handle(
        &self,
        req: Request<RequestBody>,
        path: &NormalPath,
    ) -> Result<Response<Body>, RequestError> {
        let endpoint = path.as_str().strip_prefix(PREFIX).unwrap_or("");
        match (req.method(), endpoint) {
            (&Method::GET, "/authorize") => self.authorize(&req).await,
            (&Method::GET, e) if callback::is_callback(e) => self.callback(&req, e).await,
            (&Method::GET, "/dev") => self.form(&req),
            (&Method::POST, "/dev") => self.submit(req).await,
            (&Method::GET, "/key") => Ok(pages::response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                self.verify_hex.clone(),
            )),
            (&Method::GET, "/jwks") => Ok(self.jwks()),
            (&Method::GET | &Method::HEAD, "/health") => Ok(self.health()),
            (&Method::GET, "/providers") => Ok(pages::json(
                StatusCode::OK,
                &serde_json::json!(self.provider_names()),
            )),
            (_, "/authorize" | "/dev" | "/key" | "/jwks" | "/providers" | "/health") => {
                Err(RequestError::MethodNotAllowed)
            }
            (_, e) if callback::is_callback(e) => Err(RequestError::MethodNotAllowed),
            _ => Err(RequestError::NotFound),
        }
    }

    /// `GET /oauth/health`: 200 when serving, 503 while not ready (for load balancers and
    /// `oauthgate health`).
    fn health(&self) -> Response<Body> {
        let (status, word) = if self.ready() {
            (StatusCode::OK, "ok")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        };
        pages::json(status, &serde_json::json!({ "status": word }))
    }

    /// `GET /oauth/jwks`: the verifying key as a JWK set, cacheable for a while.
    fn jwks(&self) -> Response<Body> {
        let mut res = pages::response(
            StatusCode::OK,
            "application/jwk-set+json",
            self.jwks.to_string(),
        );
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        res
    }

    fn provider_names(&self) -> Vec<&str> {
        self.providers.iter().map(|p| p.name()).collect()
    }

    fn provider(&self, name: &str) -> Result<&dyn Provider, RequestError> {
        match self.providers.iter().find(|p| p.name() == name) {
            Some(p) => Ok(p.as_ref()),
            None => Err(RequestError::Invalid(format!(
                "Unknown provider \u{201c}{}\u{201d}. This server offers: {}.",
                truncate(name, 40),
                self.provider_names().join(", ")
            ))),
        }
    }

    fn client(&self, redirect_url: &str) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.redirect_url == redirect_url)
    }
}

/// The first wait after a failed discovery, doubled after each failure up to the cap.
const DISCOVERY_BACKOFF: Duration = Duration::from_secs(1);
const DISCOVERY_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A provider's discovery, from start-up and in the background: every provider at once,
/// none holding the listener back, and after a failure again with exponential backoff
/// (1 s to 5 min) until it succeeds. Logins meanwhile are told the provider is unavailable
/// without waiting. Ends when the provider is gone (a reloaded config).
async fn discover(provider: Weak<dyn Provider>, http: reqwest::Client) {
    let mut wait = DISCOVERY_BACKOFF;
    loop {
        let Some(p) = provider.upgrade() else { return };
        match p.warm_up(&http).await {
            Ok(()) => {
                info!(provider = %p.name(), "provider discovery done");
                return;
            }
            Err(e) => warn!(
                provider = %p.name(),
                error = %error_chain(&e),
                retry_in = ?wait,
                "provider discovery failed; logins with it answer 503 until it succeeds"
            ),
        }
        drop(p);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(DISCOVERY_BACKOFF_MAX);
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

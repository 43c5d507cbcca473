//! The central role: the OAuth server of a group of threebots, under `/oauth`.
//!
//! `authorize` checks the asking client and sends the browser to the provider, keeping the
//! round trip in an encrypted cookie on this origin (no server-side store, so replicas that
//! share the signing key need nothing else). `callback` exchanges the code, fetches who logged
//! in and sends the browser back to the client with a signed assertion (or, for clients that
//! opted in, the legacy Jumpscale signature).

mod callback;
mod dev;
mod fetch;
mod identity;
pub mod keys;
mod oidc;
pub mod providers;

use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use url::Url;

use crate::assertion::{self, Claims};
use crate::config::{CentralConfig, ClientConfig, Protocol, ProviderKind};
use crate::cookies::{self, CookieCodec};
use crate::error::{RequestError, StartError};
use crate::pages::{self, Body};
use crate::path::NormalPath;
use crate::util::{now, random_token, Query};
use providers::{Identity, Provider, ProviderError};

/// The prefix of every central endpoint.
pub const PREFIX: &str = crate::config::CENTRAL_PREFIX;
/// How long a login may take at the provider.
const ROUND_TRIP_TTL: Duration = Duration::from_secs(600);
/// How long an assertion is valid (SPEC: at most 120 s).
const ASSERTION_TTL: u64 = 60;
const ROUND_TRIP_COOKIE: &str = "__Host-oauthgate-central-";
/// Logins a browser may have in flight at the central at once; another ends the oldest.
const MAX_ROUND_TRIPS: usize = 5;

/// What the central server remembers of a login while the browser is at the provider.
#[derive(Serialize, Deserialize)]
struct RoundTrip {
    /// Provider name.
    p: String,
    /// The client's state (becomes the assertion's nonce).
    cs: String,
    /// The client's redirect_url.
    r: String,
    /// Our state at the provider.
    s: String,
    /// PKCE verifier.
    v: Option<String>,
    /// OIDC nonce.
    n: String,
    exp: u64,
}

pub struct Central {
    issuer: String,
    key: SigningKey,
    verify_hex: String,
    jwks: serde_json::Value,
    cookies: CookieCodec,
    providers: Vec<Provider>,
    clients: Vec<ClientConfig>,
    /// The provider answering at the plain `/oauth/callback`, if any.
    plain_callback: Option<String>,
    http: reqwest::Client,
}

impl Central {
    pub async fn new(config: &CentralConfig) -> Result<Self, StartError> {
        let key = keys::load_or_generate(&config.signing_key)?;
        let vk = key.verifying_key();
        let http = fetch::http_client(config.provider_timeout).map_err(StartError::Client)?;
        let providers: Vec<Provider> = config
            .providers
            .iter()
            .cloned()
            .map(Provider::new)
            .collect();
        for p in &providers {
            if let Err(e) = p.warm_up(&http).await {
                warn!(provider = %p.config.name, error = %e, "provider discovery failed; retrying at the first login");
            }
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
        })
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
        req: Request<Incoming>,
        path: &NormalPath,
    ) -> Result<Response<Body>, RequestError> {
        let endpoint = path.as_str().strip_prefix(PREFIX).unwrap_or("");
        match (req.method(), endpoint) {
            (&Method::GET, "/authorize") => self.authorize(&req).await,
            (&Method::GET, e) if callback::is_callback(e) => self.callback(&req, e).await,
            (&Method::GET, "/dev") => dev::form(self, &req),
            (&Method::POST, "/dev") => dev::submit(self, req).await,
            (&Method::GET, "/key") => Ok(pages::response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                self.verify_hex.clone(),
            )),
            (&Method::GET, "/jwks") => {
                let mut res = pages::response(
                    StatusCode::OK,
                    "application/jwk-set+json",
                    self.jwks.to_string(),
                );
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                );
                Ok(res)
            }
            (&Method::GET, "/providers") => {
                let names: Vec<&str> = self
                    .providers
                    .iter()
                    .map(|p| p.config.name.as_str())
                    .collect();
                Ok(pages::json(StatusCode::OK, &serde_json::json!(names)))
            }
            (_, "/authorize" | "/dev" | "/key" | "/jwks" | "/providers") => {
                Err(RequestError::MethodNotAllowed)
            }
            (_, e) if callback::is_callback(e) => Err(RequestError::MethodNotAllowed),
            _ => Err(RequestError::NotFound),
        }
    }

    fn provider(&self, name: &str) -> Result<&Provider, RequestError> {
        self.providers
            .iter()
            .find(|p| p.config.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .providers
                    .iter()
                    .map(|p| p.config.name.as_str())
                    .collect();
                RequestError::Invalid(format!(
                    "Unknown provider \u{201c}{}\u{201d}. This server offers: {}.",
                    truncate(name, 40),
                    names.join(", ")
                ))
            })
    }

    /// `GET /oauth/authorize?provider&state&redirect_url`
    async fn authorize(&self, req: &Request<Incoming>) -> Result<Response<Body>, RequestError> {
        let q = Query::of(req);
        let redirect_url = q.require("redirect_url")?;
        // Exact match only, and never a redirect to an unregistered address.
        let client = self.client(redirect_url).ok_or_else(|| {
            RequestError::Invalid(
                "This redirect_url is not registered with this login server.".into(),
            )
        })?;
        let provider = self.provider(q.require("provider")?)?;
        let client_state = q.require("state")?;
        if client_state.len() > 512 {
            return Err(RequestError::Invalid(
                "The state parameter is too long.".into(),
            ));
        }
        let trip = RoundTrip {
            p: provider.config.name.clone(),
            cs: client_state.to_owned(),
            r: client.redirect_url.clone(),
            s: random_token(),
            v: None,
            n: random_token(),
            exp: now() + ROUND_TRIP_TTL.as_secs(),
        };
        let (location, trip) = if provider.config.kind == ProviderKind::Dev {
            (format!("{PREFIX}/dev?state={}", trip.s), trip)
        } else {
            let started = provider
                .start(&self.http, &trip.s, &trip.n)
                .await
                .map_err(|e| self.login_error(provider, &e, Some(&trip)))?;
            (
                started.url.to_string(),
                RoundTrip {
                    v: started.pkce_verifier,
                    ..trip
                },
            )
        };
        let mut res = pages::redirect(StatusCode::FOUND, &location)?;
        let value =
            serde_json::to_string(&trip).map_err(|_| RequestError::Invalid("state".into()))?;
        let stale = self.cookies.excess_logins(
            req.headers(),
            ROUND_TRIP_COOKIE,
            MAX_ROUND_TRIPS - 1,
            |v| serde_json::from_str::<RoundTrip>(v).ok().map(|t| t.exp),
        );
        for name in stale {
            res.headers_mut()
                .append(header::SET_COOKIE, cookies::removal(&name));
        }
        res.headers_mut().append(
            header::SET_COOKIE,
            self.cookies.seal(
                &cookies::per_login_name(ROUND_TRIP_COOKIE, &trip.s),
                &value,
                ROUND_TRIP_TTL,
            ),
        );
        Ok(res)
    }

    /// The round trip whose state the provider echoed, if this browser started it and it
    /// has not expired or been used.
    fn round_trip<B>(
        &self,
        req: &Request<B>,
        state: Option<&str>,
    ) -> Result<RoundTrip, RequestError> {
        let stale = || {
            RequestError::Invalid(
                "This login link has expired or was already used. Start again from the application.".into(),
            )
        };
        let state = state.filter(|s| s.len() >= 16).ok_or_else(stale)?;
        let value = self
            .cookies
            .open(
                req.headers(),
                &cookies::per_login_name(ROUND_TRIP_COOKIE, state),
            )
            .ok_or_else(stale)?;
        let trip: RoundTrip = serde_json::from_str(&value).map_err(|_| stale())?;
        if !bool::from(trip.s.as_bytes().ct_eq(state.as_bytes())) || trip.exp < now() {
            return Err(stale());
        }
        Ok(trip)
    }

    /// Sends the browser back to the client with the signed user info.
    fn complete(
        &self,
        trip: &RoundTrip,
        provider: &Provider,
        identity: Identity,
    ) -> Result<Response<Body>, RequestError> {
        let client = self
            .client(&trip.r)
            .ok_or_else(|| RequestError::Invalid("This client is no longer registered.".into()))?;
        let mut url = Url::parse(&client.redirect_url)
            .map_err(|_| RequestError::Invalid("The client's redirect_url is not valid.".into()))?;
        match client.protocol {
            Protocol::Assertion => {
                let iat = now();
                let claims = Claims {
                    iss: self.issuer.clone(),
                    aud: client.redirect_url.clone(),
                    sub: format!("{}:{}", provider.config.name, identity.id),
                    provider: provider.config.name.clone(),
                    nonce: trip.cs.clone(),
                    iat,
                    exp: iat + ASSERTION_TTL,
                    user: identity.user,
                };
                url.query_pairs_mut()
                    .append_pair("assertion", &assertion::sign(&self.key, &claims))
                    .append_pair("state", &trip.cs);
            }
            Protocol::Jumpscale => {
                let payload = assertion::legacy_query(&self.key, &trip.cs, &identity.user);
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{payload}"),
                    _ => payload,
                };
                url.set_query(Some(&query));
            }
        }
        info!(provider = %provider.config.name, client = %client.redirect_url, "login completed");
        let mut res = pages::redirect(StatusCode::SEE_OTHER, url.as_str())?;
        res.headers_mut().append(
            header::SET_COOKIE,
            cookies::removal(&cookies::per_login_name(ROUND_TRIP_COOKIE, &trip.s)),
        );
        Ok(res)
    }

    fn client(&self, redirect_url: &str) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.redirect_url == redirect_url)
    }

    fn login_error(
        &self,
        provider: &Provider,
        e: &ProviderError,
        trip: Option<&RoundTrip>,
    ) -> RequestError {
        warn!(provider = %provider.config.name, error = %e, "login failed at the provider");
        let name = &provider.config.display_name;
        let message = match e {
            ProviderError::Unreachable(_) => {
                format!("{name} could not be reached. Please try again in a moment.")
            }
            ProviderError::Refused(code) => {
                format!("{name} refused the login ({}).", truncate(code, 60))
            }
            ProviderError::BadAnswer(_) => format!("{name} gave an answer this server cannot use."),
        };
        RequestError::Login {
            status: StatusCode::BAD_GATEWAY,
            message,
            retry: trip.map(retry_url),
        }
    }
}

/// Where "Try again" leads: the same authorisation request, as the client made it.
fn retry_url(trip: &RoundTrip) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("provider", &trip.p)
        .append_pair("state", &trip.cs)
        .append_pair("redirect_url", &trip.r)
        .finish();
    format!("{PREFIX}/authorize?{query}")
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

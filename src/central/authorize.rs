//! `GET /oauth/authorize?provider&state&redirect_url`: checks the asking client, starts the
//! login at the provider, and seals the round trip in a cookie of this browser's, which the
//! provider's answer must come back with.

use std::time::Duration;

use crate::body::RequestBody;
use http::header;
use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::providers::Login;
use super::{truncate, Central, PREFIX};
use crate::cookies::Sealed;
use crate::error::RequestError;
use crate::pages::{self, Body};
use crate::util::{random_token, Query};

/// How long a login may take at the provider.
const ROUND_TRIP_TTL: Duration = Duration::from_secs(600);
/// Logins a browser may have in flight at the central at once; another ends the oldest.
const MAX_ROUND_TRIPS: usize = 5;
/// Each round trip, sealed in a `__Host-oauthgate-central-…` cookie; its state is ours at
/// the provider.
pub(super) const ROUND_TRIPS: Sealed<RoundTrip> =
    Sealed::new("__Host-oauthgate-central-", ROUND_TRIP_TTL, MAX_ROUND_TRIPS);

/// What the central server remembers of a login while the browser is at the provider.
#[derive(Serialize, Deserialize)]
pub(super) struct RoundTrip {
    #[serde(rename = "p")]
    pub provider: String,
    /// The client's state (becomes the assertion's nonce).
    #[serde(rename = "cs")]
    pub client_state: String,
    /// The client's redirect_url.
    #[serde(rename = "r")]
    pub redirect_url: String,
    #[serde(rename = "v")]
    pub pkce_verifier: Option<String>,
    /// The OIDC nonce.
    #[serde(rename = "n")]
    pub nonce: String,
}

impl RoundTrip {
    /// What the provider sees of this login, whose state is `state`.
    pub fn login<'a>(&'a self, http: &'a reqwest::Client, state: &'a str) -> Login<'a> {
        Login {
            http,
            state,
            nonce: &self.nonce,
            pkce_verifier: self.pkce_verifier.as_deref(),
        }
    }

    /// Where "Try again" leads: the same authorisation request, as the client made it.
    pub fn retry_url(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("provider", &self.provider)
            .append_pair("state", &self.client_state)
            .append_pair("redirect_url", &self.redirect_url)
            .finish();
        format!("{PREFIX}/authorize?{query}")
    }
}

impl Central {
    pub(super) async fn authorize(
        &self,
        req: &Request<RequestBody>,
    ) -> Result<Response<Body>, RequestError> {
        let q = Query::of(req);
        let redirect_url = q.require("redirect_url")?;
        // Exact match only, and never a redirect to an unregistered address.
        let client = self.client(redirect_url).ok_or_else(|| {
            // The operator's usual mistake (a gateway not listed in `clients`): the log says
            // which URL to add. Without its query, which may carry anything.
            let shown = redirect_url.split(['?', '#']).next().unwrap_or_default();
            tracing::warn!(
                redirect_url = %truncate(shown, 200),
                "authorize: redirect_url is not a registered client (add it to central.clients)"
            );
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
        let state = random_token();
        let mut trip = RoundTrip {
            provider: provider.name().to_owned(),
            client_state: client_state.to_owned(),
            redirect_url: client.redirect_url.clone(),
            pkce_verifier: None,
            nonce: random_token(),
        };
        let started = provider
            .start(&trip.login(&self.http, &state))
            .await
            .map_err(|e| self.login_error(provider, &e, &trip))?;
        trip.pkce_verifier = started.pkce_verifier;
        let mut res = pages::redirect(StatusCode::FOUND, &started.location)?;
        let cookies = ROUND_TRIPS
            .seal(&self.cookies, req.headers(), &state, &trip)
            .map_err(|e| RequestError::Internal(format!("round trip: {e}")))?;
        for cookie in cookies {
            res.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(res)
    }

    /// The round trip whose state the provider echoed, if this browser started it and it
    /// has not expired or been used.
    pub(super) fn round_trip<B>(
        &self,
        req: &Request<B>,
        state: Option<&str>,
    ) -> Result<RoundTrip, RequestError> {
        state
            .and_then(|state| ROUND_TRIPS.open(&self.cookies, req.headers(), state))
            .ok_or_else(no_round_trip)
    }
}

/// The answer to a request that names no round trip this browser has in flight.
pub(super) fn no_round_trip() -> RequestError {
    RequestError::Invalid(
        "This login link has expired or was already used. Start again from the application.".into(),
    )
}

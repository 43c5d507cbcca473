//! The end of a login at the central: the browser goes back to the client with who logged
//! in (a signed assertion, or the legacy Jumpscale signature), or sees why it failed.

use http::header;
use http::{Response, StatusCode};
use tracing::{info, warn};
use url::Url;

use super::authorize::{RoundTrip, ROUND_TRIPS};
use super::providers::{Identity, Provider, ProviderError};
use super::{truncate, Central};
use crate::assertion::{self, Claims};
use crate::config::Protocol;
use crate::error::RequestError;
use crate::metrics::LoginOutcome;
use crate::pages::{self, Body};
use crate::util::{error_chain, now};

/// How long an assertion is valid (SPEC: at most 120 s).
const ASSERTION_TTL: u64 = 60;

impl Central {
    /// Sends the browser back to the client with the signed user info, and ends the round
    /// trip `state`.
    pub(super) fn complete(
        &self,
        state: &str,
        trip: &RoundTrip,
        provider: &dyn Provider,
        identity: Identity,
    ) -> Result<Response<Body>, RequestError> {
        let client = self
            .client(&trip.redirect_url)
            .ok_or_else(|| RequestError::Invalid("This client is no longer registered.".into()))?;
        // Validated at start-up: failing here is ours, not the client's.
        let mut url = Url::parse(&client.redirect_url)
            .map_err(|e| RequestError::Internal(format!("client redirect_url: {e}")))?;
        let name = provider.name();
        match client.protocol {
            Protocol::Assertion => {
                let iat = now();
                let claims = Claims {
                    iss: self.issuer.clone(),
                    aud: client.redirect_url.clone(),
                    sub: format!("{name}:{}", identity.id),
                    provider: name.to_owned(),
                    nonce: trip.client_state.clone(),
                    iat,
                    exp: iat + ASSERTION_TTL,
                    user: identity.user,
                    groups: identity.groups,
                };
                url.query_pairs_mut()
                    .append_pair("assertion", &assertion::sign(&self.key, &claims))
                    .append_pair("state", &trip.client_state);
            }
            Protocol::Jumpscale => {
                let payload =
                    assertion::legacy_query(&self.key, &trip.client_state, &identity.user);
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{payload}"),
                    _ => payload,
                };
                url.set_query(Some(&query));
            }
        }
        info!(provider = %name, client = %client.redirect_url, "login completed");
        self.logins.count(name, LoginOutcome::Completed);
        let mut res = pages::redirect(StatusCode::SEE_OTHER, url.as_str())?;
        res.headers_mut()
            .append(header::SET_COOKIE, ROUND_TRIPS.removal(state));
        Ok(res)
    }

    /// What the user is told when a provider failed them: a 502 naming the provider, with
    /// a way to try again; the details go to the log.
    pub(super) fn login_error(
        &self,
        provider: &dyn Provider,
        e: &ProviderError,
        trip: &RoundTrip,
    ) -> RequestError {
        let name = &provider.config().display_name;
        let message = match e {
            // The user's own typing, for the user to correct.
            ProviderError::Input(message) => return RequestError::Invalid(message.clone()),
            ProviderError::Unreachable(_) => {
                format!("{name} could not be reached. Please try again in a moment.")
            }
            ProviderError::Refused(code) => {
                format!("{name} refused the login ({}).", truncate(code, 60))
            }
            ProviderError::BadAnswer(_) | ProviderError::Unreadable { .. } => {
                format!("{name} gave an answer this server cannot use.")
            }
            // Discovery is retried in the background (and logged there): no warning per login.
            ProviderError::NotDiscovered => {
                return RequestError::Login {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: format!(
                        "{name} is unavailable at the moment. Please try again shortly."
                    ),
                    retry: Some(trip.retry_url()),
                }
            }
        };
        warn!(provider = %provider.name(), error = %error_chain(e), "login failed at the provider");
        self.logins.count(provider.name(), LoginOutcome::Failed);
        RequestError::Login {
            status: StatusCode::BAD_GATEWAY,
            message,
            retry: Some(trip.retry_url()),
        }
    }
}

//! `GET /oauth/callback/<provider>?code&state[&iss]`: where a provider sends the browser back.
//!
//! Before any code is redeemed, the answer must have come to the callback of the provider
//! this login was started with, and carry that provider's issuer when it names one (RFC 9207).
//! Without these checks a malicious provider can bounce a victim to an honest provider with
//! the victim's state; the honest provider's code then comes back to a login the central
//! believes is the malicious provider's, and is sent to its token endpoint (the IdP mix-up,
//! RFC 9700 §4.4), from where an attacker redeems it in their own pending login.

use crate::body::RequestBody;
use http::{Request, Response, StatusCode};
use tracing::{info, warn};

use super::authorize::RoundTrip;
use super::providers::{Answer, Provider};
use super::{truncate, Central};
use crate::error::RequestError;
use crate::metrics::LoginOutcome;
use crate::pages::Body;
use crate::util::Query;

/// Whether `endpoint` (the path below `/oauth`) is a callback: `/callback` or
/// `/callback/<name>`.
pub fn is_callback(endpoint: &str) -> bool {
    endpoint == "/callback"
        || endpoint
            .strip_prefix("/callback/")
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

impl Central {
    /// The provider a callback path belongs to: `/callback/<name>` to `<name>`, the plain
    /// `/callback` to the one provider configured for it (or none).
    fn bound_provider<'a>(&'a self, endpoint: &'a str) -> Option<&'a str> {
        match endpoint.strip_prefix("/callback/") {
            Some(name) => Some(name),
            None => self.plain_callback.as_deref(),
        }
    }

    pub(super) async fn callback(
        &self,
        req: &Request<RequestBody>,
        endpoint: &str,
    ) -> Result<Response<Body>, RequestError> {
        let q = Query::of(req);
        let trip = self.round_trip(req, q.get("state"))?;
        let state = q.get("state").unwrap_or_default();
        let bound = self.bound_provider(endpoint);
        if bound != Some(trip.provider.as_str()) {
            warn!(
                provider = %trip.provider,
                callback = %truncate(endpoint, 60),
                "a provider's answer came to another provider's callback; refused (IdP mix-up?)"
            );
            return Err(RequestError::Invalid(
                "This login answer came back from another provider than the one it was started with. Start again from the application.".into(),
            ));
        }
        let provider = self.provider(&trip.provider)?;
        self.check_issuer(provider, q.get("iss"), &trip).await?;
        if let Some(error) = q.get("error") {
            let name = &provider.config().display_name;
            let (status, message) = if error == "access_denied" {
                (
                    StatusCode::FORBIDDEN,
                    format!("The login at {name} was cancelled."),
                )
            } else {
                (
                    StatusCode::BAD_GATEWAY,
                    format!("{name} reported an error: {}.", truncate(error, 60)),
                )
            };
            info!(provider = %trip.provider, error = %truncate(error, 60), "provider returned an error");
            self.logins.count(provider.name(), LoginOutcome::Failed);
            return Err(RequestError::Login {
                status,
                message,
                retry: Some(trip.retry_url()),
            });
        }
        let code = q.require("code")?;
        let identity = provider
            .finish(&trip.login(&self.http, state), Answer::Code(code))
            .await
            .map_err(|e| self.login_error(provider, &e, &trip))?;
        self.complete(state, &trip, provider, identity)
    }

    /// RFC 9207: an `iss` parameter must name the provider's issuer; a provider whose
    /// discovery promises the parameter must send it. Providers without a known issuer
    /// (GitHub, Facebook, plain OAuth2 without `issuer:`) rely on their own callback path.
    async fn check_issuer(
        &self,
        provider: &dyn Provider,
        iss: Option<&str>,
        trip: &RoundTrip,
    ) -> Result<(), RequestError> {
        let expected = provider
            .response_issuer(&self.http)
            .await
            .map_err(|e| self.login_error(provider, &e, trip))?;
        let ok = match (&expected, iss) {
            // RFC 9207 §2.4: simple string comparison, modulo the trailing `/` some issuers
            // are written with in one place and not the other.
            (Some((want, _)), Some(got)) => got.trim_end_matches('/') == want.trim_end_matches('/'),
            (Some((_, true)), None) => false,
            (None, _) | (Some((_, false)), None) => true,
        };
        if ok {
            return Ok(());
        }
        warn!(
            provider = %provider.name(),
            iss = %truncate(iss.unwrap_or("(none)"), 100),
            "the authorization response names another issuer; refused (IdP mix-up?)"
        );
        Err(RequestError::Login {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "This login answer does not come from {}. Start again from the application.",
                provider.config().display_name
            ),
            retry: Some(trip.retry_url()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_callback;

    #[test]
    fn callback_paths() {
        for yes in ["/callback", "/callback/github", "/callback/a-b_1"] {
            assert!(is_callback(yes), "{yes}");
        }
        for no in [
            "/callbacks",
            "/callback/",
            "/callback/a/b",
            "/callbackx/a",
            "/key",
        ] {
            assert!(!is_callback(no), "{no}");
        }
    }
}

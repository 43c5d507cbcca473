//! `/oauth/dev`: the login page of a provider that is its own login page (the dev
//! provider). The page and its answer are only reachable through a round trip this browser
//! started, with a provider that has such a page.

use crate::body::RequestBody;
use http::{Request, Response, StatusCode};

use super::authorize::{no_round_trip, ROUND_TRIPS};
use super::providers::Answer;
use super::Central;
use crate::error::RequestError;
use crate::pages::{self, Body};
use crate::util::Query;

const MAX_FORM: usize = 8 * 1024;

impl Central {
    /// `GET /oauth/dev?state=S`: the form.
    pub(super) fn form(&self, req: &Request<RequestBody>) -> Result<Response<Body>, RequestError> {
        let q = Query::of(req);
        let trip = self.round_trip(req, q.get("state"))?;
        let provider = self.provider(&trip.provider)?;
        let page = provider
            .form(q.get("state").unwrap_or_default())
            .ok_or(RequestError::NotFound)?;
        // The form's answer is a redirect to the client: its origin, and only it, joins
        // `form-action`. Registered redirect URLs are absolute http(s) URLs.
        let origin = url::Url::parse(&trip.redirect_url)
            .map(|u| u.origin().ascii_serialization())
            .ok()
            .filter(|o| o != "null");
        Ok(match origin {
            Some(origin) => pages::html_page_posting_to(StatusCode::OK, &page, &origin),
            None => pages::html_page(StatusCode::OK, &page),
        })
    }

    /// `POST /oauth/dev`: the provider reads who logged in from the form. What costs nothing
    /// is checked before the body is read (a client may trickle it): the round trip named
    /// in the form's action, or, from a form without one, that there is a round trip at all.
    pub(super) async fn submit(
        &self,
        req: Request<RequestBody>,
    ) -> Result<Response<Body>, RequestError> {
        let (parts, body) = req.into_parts();
        let head = Request::from_parts(parts, ());
        let named = Query::of(&head).get("state").map(str::to_owned);
        let early = match &named {
            Some(state) => Some(self.round_trip(&head, Some(state))?),
            None if !ROUND_TRIPS.any_in(head.headers()) => {
                return Err(no_round_trip());
            }
            None => None,
        };
        let form = crate::util::read_form(head.headers(), body, MAX_FORM).await?;
        let state = form.get("state").unwrap_or_default();
        let trip = match early {
            // The body's state must be the one the action named.
            Some(trip) if named.as_deref() == Some(state) => trip,
            Some(_) => return Err(no_round_trip()),
            None => self.round_trip(&head, Some(state))?,
        };
        let provider = self.provider(&trip.provider)?;
        if provider.form(state).is_none() {
            return Err(RequestError::NotFound);
        }
        let identity = provider
            .finish(&trip.login(&self.http, state), Answer::Form(&form))
            .await
            .map_err(|e| self.login_error(provider, &e, &trip))?;
        self.complete(state, &trip, provider, identity)
    }
}

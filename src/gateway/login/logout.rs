//! `/_auth/logout`: a GET shows who is logged in and a form; the POST needs the form's token
//! (derived from the session and the secret) and a same-origin request, and only then clears the
//! session. A cross-site page can neither log a user out nor make the answer clear a cookie.

use crate::body::RequestBody;
use http::header;
use http::{Request, Response, StatusCode};
use subtle::ConstantTimeEq;
use tracing::warn;

use super::{LoginFlow, Session, Site};
use crate::cookies;
use crate::error::RequestError;
use crate::pages::{self, escape, Body};

impl LoginFlow {
    /// The logout form of `session` (the request's, from the cookie or the Redis store; its
    /// token is the session's: see [`crate::gateway::session::Sessions::logout_token`]).
    pub(super) fn logout_form(&self, session: &Session) -> String {
        let token = self.sessions.logout_token(session);
        format!(
            "<form method=\"post\" action=\"{}/logout\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form>",
            escape(&self.auth_prefix),
            escape(&token)
        )
    }

    /// `GET /_auth/logout`: asks for confirmation (a GET never logs out).
    pub(super) async fn logout_page(
        &self,
        req: &Request<RequestBody>,
        site: &Site,
    ) -> Result<Response<Body>, RequestError> {
        let body = match self
            .sessions
            .resolve(req.headers(), site.bound.as_deref())
            .await?
        {
            Some(s) => format!(
                "<p>You are logged in as <strong>{}</strong>.</p>{}",
                escape(&s.session.display_name()),
                self.logout_form(&s.session)
            ),
            None => "<p>You are not logged in.</p><p><a href=\"/\">Continue</a></p>".to_owned(),
        };
        Ok(pages::html_page(
            StatusCode::OK,
            &self.page("Log out", &body),
        ))
    }

    /// Why a logout POST must be refused as cross-site, if it must. Browsers that send
    /// `Sec-Fetch-Site` say where the request comes from: only this origin, or the user
    /// typing the address (`none`), may log a user out. Older ones are judged by `Origin`,
    /// which must be the request's host's (`public_url`'s, or a route host's); `null` is let through to the token check, because our
    /// pages' `Referrer-Policy: no-referrer` makes browsers send `null` for our own form.
    fn cross_site(headers: &http::HeaderMap, origin: &str) -> Option<&'static str> {
        if let Some(site) = headers.get("sec-fetch-site") {
            return (!matches!(site.as_bytes(), b"same-origin" | b"none"))
                .then_some("Sec-Fetch-Site");
        }
        match headers.get(header::ORIGIN) {
            Some(o) if o.as_bytes() != b"null" && o.as_bytes() != origin.as_bytes() => {
                Some("Origin")
            }
            _ => None,
        }
    }

    /// `POST /_auth/logout` with the form's token (bound to this session: CSRF-safe). The
    /// session cookie is cleared only once the token matched; a POST without a session
    /// changes nothing, and a cross-site one is refused before anything else.
    pub(super) async fn logout(
        &self,
        req: Request<RequestBody>,
        site: &Site,
    ) -> Result<Response<Body>, RequestError> {
        let (parts, body) = req.into_parts();
        let refused = |message: &str| RequestError::Login {
            status: StatusCode::FORBIDDEN,
            message: message.to_owned(),
            retry: Some(format!("{}/logout", self.auth_prefix)),
        };
        if let Some(header) = Self::cross_site(&parts.headers, &site.origin) {
            warn!(header, "cross-site logout refused");
            return Err(refused("Log out from this site's own logout page."));
        }
        let found = self
            .sessions
            .resolve(&parts.headers, site.bound.as_deref())
            .await?;
        let Some(session) = found else {
            let body = "<p>You are not logged in.</p><p><a href=\"/\">Continue</a></p>";
            return Ok(pages::html_page(
                StatusCode::OK,
                &self.page("Log out", body),
            ));
        };
        let expected = self.sessions.logout_token(&session.session);
        let form = crate::util::read_form(&parts.headers, body, 4096).await?;
        let given = form.get("token").unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(refused("This logout form is out of date."));
        }
        // Redis: the session ends everywhere, or the logout fails (503) and says so, rather
        // than clear this browser's cookie and leave a copied one working.
        self.sessions.end(&parts.headers).await?;
        let body = format!(
            "<p>You are logged out of {}.</p><p><a class=\"button\" href=\"{}/login\">Log in again</a></p>",
            escape(&self.title),
            escape(&self.auth_prefix)
        );
        let mut res = pages::html_page(StatusCode::OK, &self.page("Logged out", &body));
        res.headers_mut().append(
            header::SET_COOKIE,
            cookies::removal(self.sessions.cookie_name()),
        );
        Ok(res)
    }
}

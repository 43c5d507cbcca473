//! The development provider: a form that asks for a login name and an email, so a login can
//! be completed with no account anywhere. Config validation only allows it on loopback
//! listeners; the form is only reachable through a round trip this browser started.

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::providers::Identity;
use super::Central;
use crate::config::ProviderKind;
use crate::error::RequestError;
use crate::pages::{self, escape, Body};
use crate::util::Query;

const MAX_FORM: usize = 8 * 1024;

/// `GET /oauth/dev?state=S`: the form.
pub fn form(central: &Central, req: &Request<Incoming>) -> Result<Response<Body>, RequestError> {
    let q = Query::of(req);
    let trip = central.round_trip(req, q.get("state"))?;
    let provider = central.provider(&trip.p)?;
    if provider.config.kind != ProviderKind::Dev {
        return Err(RequestError::NotFound);
    }
    let body = format!(
        "<p>{name} accepts <strong>any</strong> login name: it is meant for trying oauthgate \
         out and for development, never for production.</p>\
         <form method=\"post\" action=\"/oauth/dev\">\
         <input type=\"hidden\" name=\"state\" value=\"{state}\">\
         <label for=\"login\">Login name</label>\
         <input id=\"login\" name=\"login\" required maxlength=\"64\" pattern=\"[A-Za-z0-9._\\-]+\" autocomplete=\"username\" autofocus>\
         <label for=\"email\">Email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" maxlength=\"254\" autocomplete=\"email\">\
         <p><button type=\"submit\">Log in</button></p></form>",
        name = escape(&provider.config.display_name),
        state = escape(&trip.s),
    );
    Ok(pages::html_page(
        StatusCode::OK,
        &pages::page("Development login", &body),
    ))
}

/// `POST /oauth/dev`: completes the login as whoever the form names.
pub async fn submit(
    central: &Central,
    req: Request<Incoming>,
) -> Result<Response<Body>, RequestError> {
    let (parts, body) = req.into_parts();
    let bytes = Limited::new(body, MAX_FORM)
        .collect()
        .await
        .map_err(|_| RequestError::Invalid("The form is too large.".into()))?
        .to_bytes();
    let form = Query::parse(&String::from_utf8_lossy(&bytes));
    let head = Request::from_parts(parts, ());
    let trip = central.round_trip(&head, form.get("state"))?;
    let provider = central.provider(&trip.p)?;
    if provider.config.kind != ProviderKind::Dev {
        return Err(RequestError::NotFound);
    }
    let login = form.require("login")?;
    let valid = login.len() <= 64
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(RequestError::Invalid(
            "A login name may use letters, digits, dot, dash and underscore (64 at most).".into(),
        ));
    }
    let mut info = serde_json::Map::new();
    info.insert("login".into(), login.into());
    if let Some(email) = form.get("email").filter(|e| !e.is_empty()) {
        if email.len() > 254 || !email.contains('@') {
            return Err(RequestError::Invalid(
                "That email address is not valid.".into(),
            ));
        }
        info.insert("email".into(), email.into());
    }
    let identity = Identity {
        id: login.to_owned(),
        user: super::providers::keep_fields(&info, &provider.config.user_info_fields),
    };
    central.complete(&trip, provider, identity)
}

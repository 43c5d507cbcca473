//! The development provider: a form that asks for a login name and an email, so a login can
//! be completed with no account anywhere. Config validation only allows it on loopback
//! listeners; the form is only reachable through a round trip this browser started.

use serde_json::Map;

use super::{identity, Answer, Identity, Login, Pending, Provider, ProviderError, Started};
use crate::central::PREFIX;
use crate::config::ProviderConfig;
use crate::pages::{self, escape};
use crate::util::Query;

pub struct Dev {
    config: ProviderConfig,
}

impl Dev {
    pub fn new(config: ProviderConfig) -> Self {
        Dev { config }
    }

    /// Whoever the form names, once the name and address look like one.
    fn identity(&self, form: &Query) -> Result<Identity, ProviderError> {
        let login = form
            .get("login")
            .filter(|l| !l.is_empty())
            .ok_or_else(|| ProviderError::Input("The login parameter is missing.".into()))?;
        let valid = login.len() <= 64
            && login
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(ProviderError::Input(
                "A login name may use letters, digits, dot, dash and underscore (64 at most)."
                    .into(),
            ));
        }
        let mut info = Map::new();
        info.insert("login".into(), login.into());
        if let Some(email) = form.get("email").filter(|e| !e.is_empty()) {
            if email.len() > 254 || !email.contains('@') {
                return Err(ProviderError::Input(
                    "That email address is not valid.".into(),
                ));
            }
            info.insert("email".into(), email.into());
        }
        let mut identity = identity(&info, &["login"], &self.config.user_info_fields)?;
        // Whatever groups the developer types, comma-separated: to try `allow.groups` out.
        let typed = form.get("groups").unwrap_or_default().split(',');
        identity.groups = crate::groups::bounded(typed.map(|g| g.trim().to_owned()));
        Ok(identity)
    }
}

impl Provider for Dev {
    fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The browser goes to this provider's own form, on the central.
    fn start<'a>(&'a self, login: &'a Login<'a>) -> Pending<'a, Started> {
        let started = Started {
            location: format!("{PREFIX}/dev?state={}", login.state),
            pkce_verifier: None,
        };
        Box::pin(async move { Ok(started) })
    }

    /// Only the form answers for this provider; a code at its callback is refused.
    fn finish<'a>(&'a self, _: &'a Login<'a>, answer: Answer<'a>) -> Pending<'a, Identity> {
        let identity = match answer {
            Answer::Form(form) => self.identity(form),
            Answer::Code(_) => Err(ProviderError::BadAnswer(
                "the dev provider answers with its form, not a code".into(),
            )),
        };
        Box::pin(async move { identity })
    }

    fn form(&self, state: &str) -> Option<String> {
        let body = format!(
            "<p>{name} accepts <strong>any</strong> login name: it is meant for trying oauthgate \
             out and for development, never for production.</p>\
             <form method=\"post\" action=\"{PREFIX}/dev?state={query_state}\">\
             <input type=\"hidden\" name=\"state\" value=\"{state}\">\
             <label for=\"login\">Login name</label>\
             <input id=\"login\" name=\"login\" required maxlength=\"64\" pattern=\"[A-Za-z0-9._\\-]+\" autocomplete=\"username\" autofocus>\
             <label for=\"email\">Email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" maxlength=\"254\" autocomplete=\"email\">\
             <label for=\"groups\">Groups (comma-separated)</label>\
             <input id=\"groups\" name=\"groups\" maxlength=\"1000\">\
             <p><button type=\"submit\">Log in</button></p></form>",
            name = escape(&self.config.display_name),
            state = escape(state),
            // Also in the action, so that a post is checked before its body is read.
            query_state = escape(&url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()),
        );
        Some(pages::page("Development login", &body))
    }
}

//! GitHub's OAuth apps: the user from `/user`, and the email address only from
//! `/user/emails`, where GitHub says which one is primary and verified.

use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::warn;

use super::code_flow::{CodeFlow, CodeProvider, Grant};
use super::{Identity, ProviderError};
use crate::util::error_chain;

pub struct GitHub(pub CodeFlow);

/// One entry of `/user/emails`.
#[derive(Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

impl GitHub {
    /// The primary address, when it is verified and an email is among the kept fields.
    async fn verified_email(&self, grant: &Grant<'_>) -> Option<String> {
        let config = &self.0.config;
        if !config.user_info_fields.iter().any(|f| f == "email") {
            return None;
        }
        match grant.get::<Vec<Email>>(config.emails_url.as_ref()?).await {
            Ok(emails) => emails
                .into_iter()
                .find(|m| m.primary && m.verified)
                .map(|m| m.email),
            // Without the user:email scope GitHub refuses the list: log in without an
            // address rather than not at all.
            Err(e) => {
                warn!(provider = %config.name, error = %error_chain(&e), "no verified email from GitHub");
                None
            }
        }
    }
}

impl CodeProvider for GitHub {
    fn flow(&self) -> &CodeFlow {
        &self.0
    }

    async fn user(&self, grant: Grant<'_>) -> Result<Identity, ProviderError> {
        let mut info: Map<String, Value> = grant.get(grant.endpoints.user_info()?).await?;
        // The `email` of `/user` is the public profile address, which the user may set to
        // any address they have added, verified or not: never used.
        info.remove("email");
        if let Some(address) = self.verified_email(&grant).await {
            info.insert("email".into(), Value::String(address));
        }
        // Groups step: organisations and teams (`read:org`) are read here, with this grant.
        self.0.identity(&info, &["id"])
    }
}

//! Who logged in, per provider kind, and which email address may stand for them: only one
//! the provider says it verified (or one from a provider configured with
//! `email_verified: true`). `allow.domains` and `allow.emails` trust the address, so an
//! unverified one would let anyone who types `ceo@example.com` at a sloppy provider in.

use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::warn;

use super::fetch::get_json;
use super::providers::{no_user_info, Endpoints, Identity, Provider, ProviderError, Token};
use oauth2::TokenResponse;

/// Whether a document's `email_verified` says yes. A boolean per OIDC Core §5.1; the string
/// `"true"` too, as some providers (Amazon Cognito) send it.
fn says_verified(doc: &Map<String, Value>) -> bool {
    match doc.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn has_email(doc: &Map<String, Value>) -> bool {
    doc.get("email")
        .and_then(Value::as_str)
        .is_some_and(|e| !e.is_empty())
}

/// Drops `email` from `info` unless this provider is trusted or `info` itself says the
/// address is verified.
pub fn keep_verified_email(info: &mut Map<String, Value>, trust: bool) {
    if !trust && !says_verified(info) {
        info.remove("email");
    }
}

impl Provider {
    /// A plain OAuth2 provider (or Facebook): its user-info document, email checked.
    pub(super) async fn user_info_identity(
        &self,
        http: &reqwest::Client,
        url: &url::Url,
        access: &str,
        id_keys: &[&str],
    ) -> Result<Identity, ProviderError> {
        let mut info: Map<String, Value> = get_json(http, url.as_str(), Some(access)).await?;
        keep_verified_email(&mut info, self.config.trust_email);
        self.identity(&info, id_keys)
    }

    /// OIDC: the verified id_token, completed by userinfo. The email and the
    /// `email_verified` that qualifies it are taken from the same document: the id_token's
    /// when it has an email, else userinfo's.
    pub(super) async fn oidc_identity(
        &self,
        http: &reqwest::Client,
        e: &Endpoints,
        token: &Token,
        nonce: &str,
    ) -> Result<Identity, ProviderError> {
        let oidc = self.oidc.as_ref().ok_or_else(no_user_info)?;
        let id_token =
            token.extra_fields().id_token.as_deref().ok_or_else(|| {
                ProviderError::BadAnswer("the token response has no id_token".into())
            })?;
        let mut claims = oidc
            .verify(http, id_token, &self.config.client_id, nonce)
            .await?;
        keep_verified_email(&mut claims, self.config.trust_email);
        let email_from_token = has_email(&claims);
        if let Some(url) = &e.user_info {
            let access = token.access_token().secret();
            let mut info: Map<String, Value> = get_json(http, url.as_str(), Some(access)).await?;
            if info.get("sub") != claims.get("sub") {
                return Err(ProviderError::BadAnswer(
                    "userinfo is about another subject than the id_token".into(),
                ));
            }
            if email_from_token {
                info.remove("email");
            } else {
                keep_verified_email(&mut info, self.config.trust_email);
            }
            info.remove("email_verified");
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        self.identity(&claims, &["sub"])
    }

    /// GitHub: `/user`, and the address only from `/user/emails`, where GitHub says which is
    /// primary and verified. The `email` of `/user` is the public profile address, which the
    /// user may set to any address they have added, verified or not: never used.
    pub(super) async fn github_identity(
        &self,
        http: &reqwest::Client,
        e: &Endpoints,
        access: &str,
    ) -> Result<Identity, ProviderError> {
        #[derive(Deserialize)]
        struct Email {
            email: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            verified: bool,
        }
        let url = e.user_info.clone().ok_or_else(no_user_info)?;
        let mut info: Map<String, Value> = get_json(http, url.as_str(), Some(access)).await?;
        info.remove("email");
        let wanted = self.config.user_info_fields.iter().any(|f| f == "email");
        if let (true, Some(emails_url)) = (wanted, &self.config.emails_url) {
            match get_json::<Vec<Email>>(http, emails_url.as_str(), Some(access)).await {
                Ok(emails) => {
                    if let Some(primary) = emails.into_iter().find(|m| m.primary && m.verified) {
                        info.insert("email".into(), Value::String(primary.email));
                    }
                }
                // Without the user:email scope GitHub refuses the list: log in without an
                // address rather than not at all.
                Err(e) => {
                    warn!(provider = %self.config.name, error = %e, "no verified email from GitHub")
                }
            }
        }
        self.identity(&info, &["id"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn only_verified_or_trusted_emails_are_kept() {
        let cases = [
            (serde_json::json!({"email": "a@x.org"}), false, false),
            (serde_json::json!({"email": "a@x.org"}), true, true),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": false}),
                false,
                false,
            ),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": true}),
                false,
                true,
            ),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": "true"}),
                false,
                true,
            ),
            (
                serde_json::json!({"email": "a@x.org", "email_verified": "yes"}),
                false,
                false,
            ),
        ];
        for (input, trust, kept) in cases {
            let mut info = doc(input.clone());
            keep_verified_email(&mut info, trust);
            assert_eq!(info.contains_key("email"), kept, "{input} trust={trust}");
        }
    }
}

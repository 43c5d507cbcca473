//! GitHub's OAuth apps: the user from `/user`, the email address only from `/user/emails`,
//! where GitHub says which one is primary and verified, and with `groups: true` the user's
//! organisations and teams (`/user/orgs`, `/user/teams`) as groups `org` and `org/team`.

use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::warn;

use super::super::fetch::get_json_page;
use super::code_flow::{CodeFlow, CodeProvider, Grant};
use super::{Identity, ProviderError};
use crate::groups::bounded;
use crate::util::error_chain;

/// Pages read of each list (100 entries each): a user in more organisations or teams than
/// this keeps the first ones.
const MAX_PAGES: usize = 10;

/// One entry of `/user/orgs`.
#[derive(Deserialize)]
struct Org {
    login: String,
}

/// One entry of `/user/teams`.
#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

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
        let mut identity = self.0.identity(&info, &["id"])?;
        if self.0.config.groups {
            identity.groups = self.groups(&grant).await?;
        }
        Ok(identity)
    }
}

impl GitHub {
    /// `org` for each organisation and `org/team` for each team, lower case (GitHub's names
    /// are case-insensitive). A failure fails the login: these groups were asked for, and a
    /// session without them would be refused by every `allow.groups` for its whole life.
    async fn groups(&self, grant: &Grant<'_>) -> Result<Vec<String>, ProviderError> {
        let user = grant.endpoints.user_info()?;
        let orgs: Vec<Org> = self.list(grant, user, "orgs").await?;
        let teams: Vec<Team> = self.list(grant, user, "teams").await?;
        let mut names: Vec<String> = orgs.into_iter().map(|o| o.login).collect();
        for t in teams {
            names.push(t.organization.login.clone());
            names.push(format!("{}/{}", t.organization.login, t.slug));
        }
        Ok(bounded(names.into_iter().map(|n| n.to_lowercase())))
    }

    /// Every page of `<user_info_url>/<what>` (GitHub's `/user/orgs`, `/user/teams`), up to
    /// [`MAX_PAGES`]. A `next` link is followed only on the API's own origin: the access
    /// token goes with it.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        grant: &Grant<'_>,
        user: &url::Url,
        what: &str,
    ) -> Result<Vec<T>, ProviderError> {
        let mut url = user.clone();
        url.set_path(&format!("{}/{what}", user.path().trim_end_matches('/')));
        url.set_query(Some("per_page=100"));
        let mut all = Vec::new();
        let mut next = Some(url.to_string());
        for _ in 0..MAX_PAGES {
            let Some(page) = next.take() else { break };
            let (items, link): (Vec<T>, _) =
                get_json_page(grant.http, &page, Some(grant.access)).await?;
            all.extend(items);
            next = link.filter(|l| url::Url::parse(l).is_ok_and(|l| l.origin() == user.origin()));
        }
        Ok(all)
    }
}

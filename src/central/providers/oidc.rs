//! OpenID Connect: endpoints from discovery (or the config), a `nonce` in every login, and
//! the identity from the verified `id_token`, completed by userinfo.

mod discovery;

use oauth2::TokenResponse;
use serde_json::{Map, Value};

use super::super::fetch::get_json;
use super::code_flow::{CodeFlow, Endpoints, Token};
use super::email::{has_email, keep_verified_email};
use super::{code, Answer, Identity, Issuer, Login, Pending, Provider, ProviderError, Started};
use crate::config::ProviderConfig;
use discovery::{Discovery, Metadata};

pub struct Oidc {
    flow: CodeFlow,
    metadata: Metadata,
}

impl Oidc {
    pub fn new(config: ProviderConfig) -> Self {
        // Presets such as Google name every endpoint: no discovery needed.
        let fixed = match (
            &config.authorize_url,
            &config.token_url,
            &config.jwks_url,
            &config.issuer,
        ) {
            (Some(a), Some(t), Some(j), Some(iss)) => Some(Discovery {
                issuer: iss.as_str().trim_end_matches('/').to_owned(),
                authorization_endpoint: a.clone(),
                token_endpoint: t.clone(),
                userinfo_endpoint: config.user_info_url.clone(),
                jwks_uri: j.clone(),
                authorization_response_iss_parameter_supported: false,
            }),
            _ => None,
        };
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| config.redirect_url.clone());
        Oidc {
            metadata: Metadata::new(&config.name, issuer, fixed),
            flow: CodeFlow::new(config),
        }
    }

    /// Discovery's endpoints, each overridden by the config when it names one.
    async fn endpoints(&self, http: &reqwest::Client) -> Result<Endpoints, ProviderError> {
        let c = &self.flow.config;
        let d = self.metadata.discovery(http).await?;
        Ok(Endpoints {
            authorize: c.authorize_url.clone().unwrap_or(d.authorization_endpoint),
            token: c.token_url.clone().unwrap_or(d.token_endpoint),
            user_info: c.user_info_url.clone().or(d.userinfo_endpoint),
        })
    }

    async fn identity(&self, login: &Login<'_>, code: &str) -> Result<Identity, ProviderError> {
        let e = self.endpoints(login.http).await?;
        let token = self.flow.exchange(login, &e, code).await?;
        let claims = self.claims(login, &e, &token).await?;
        let mut identity = self.flow.identity(&claims, &["sub"])?;
        if let Some(claim) = &self.flow.config.groups_claim {
            identity.groups = crate::groups::from_claims(&claims, claim);
        }
        Ok(identity)
    }

    /// The verified id_token's claims, completed by userinfo. The email and the
    /// `email_verified` that qualifies it are taken from the same document: the id_token's
    /// when it has an email, else userinfo's.
    async fn claims(
        &self,
        login: &Login<'_>,
        e: &Endpoints,
        token: &Token,
    ) -> Result<Map<String, Value>, ProviderError> {
        let c = &self.flow.config;
        let id_token =
            token.extra_fields().id_token.as_deref().ok_or_else(|| {
                ProviderError::BadAnswer("the token response has no id_token".into())
            })?;
        let mut claims = self
            .metadata
            .verify(login.http, id_token, &c.client_id, login.nonce)
            .await?;
        keep_verified_email(&mut claims, c.trust_email);
        let email_from_token = has_email(&claims);
        if let Some(url) = &e.user_info {
            let access = token.access_token().secret();
            let mut info: Map<String, Value> =
                get_json(login.http, url.as_str(), Some(access)).await?;
            if info.get("sub") != claims.get("sub") {
                return Err(ProviderError::BadAnswer(
                    "userinfo is about another subject than the id_token".into(),
                ));
            }
            if email_from_token {
                info.remove("email");
            } else {
                keep_verified_email(&mut info, c.trust_email);
            }
            info.remove("email_verified");
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        Ok(claims)
    }
}

impl Provider for Oidc {
    fn config(&self) -> &ProviderConfig {
        &self.flow.config
    }

    fn warm_up<'a>(&'a self, http: &'a reqwest::Client) -> Pending<'a, ()> {
        Box::pin(async move {
            match self.metadata.ready() {
                true => Ok(()),
                false => self.metadata.fetch(http).await.map(drop),
            }
        })
    }

    fn ready(&self) -> bool {
        self.metadata.ready()
    }

    /// The discovered issuer, and whether discovery promises the `iss` parameter
    /// (`authorization_response_iss_parameter_supported`).
    fn response_issuer<'a>(&'a self, http: &'a reqwest::Client) -> Pending<'a, Option<Issuer>> {
        Box::pin(async move {
            let d = self.metadata.discovery(http).await?;
            let promised = d.authorization_response_iss_parameter_supported;
            Ok(Some((d.issuer, promised)))
        })
    }

    fn start<'a>(&'a self, login: &'a Login<'a>) -> Pending<'a, Started> {
        Box::pin(async move {
            let e = self.endpoints(login.http).await?;
            Ok(self.flow.start(&e, login, true))
        })
    }

    fn finish<'a>(&'a self, login: &'a Login<'a>, answer: Answer<'a>) -> Pending<'a, Identity> {
        Box::pin(async move { self.identity(login, code(answer)?).await })
    }
}

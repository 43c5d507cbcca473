//! Upstream identity providers: the authorisation URL, the code exchange (the `oauth2` crate,
//! PKCE S256, the secret never in a URL), and the user info with each provider's quirks.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::fetch::{self, FetchError};
use super::oidc::{Discovery, Oidc};
use crate::config::{ClientAuth, ProviderConfig, ProviderKind};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot reach the provider: {0}")]
    Unreachable(String),
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("unexpected answer from the provider: {0}")]
    BadAnswer(String),
}

/// Who logged in: the provider's stable id and the kept fields.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub user: Map<String, Value>,
}

/// The `id_token` an OIDC token response carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

pub(super) type Token = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    Token,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A configured provider at run time.
pub struct Provider {
    pub config: ProviderConfig,
    pub(super) oidc: Option<Oidc>,
}

pub(super) struct Endpoints {
    authorize: Url,
    token: Url,
    pub(super) user_info: Option<Url>,
    pkce: bool,
}

/// What the authorisation step produced, to keep for the callback.
pub struct Started {
    pub url: Url,
    pub pkce_verifier: Option<String>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Self {
        let oidc = (config.kind == ProviderKind::Oidc).then(|| {
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
            Oidc::new(
                &config.name,
                config
                    .issuer
                    .clone()
                    .unwrap_or_else(|| config.redirect_url.clone()),
                fixed,
            )
        });
        Provider { config, oidc }
    }

    /// Fetches OIDC discovery now (at start-up), so the first login does not wait for it.
    pub async fn warm_up(&self, http: &reqwest::Client) -> Result<(), ProviderError> {
        match &self.oidc {
            Some(oidc) => oidc.discovery(http).await.map(drop),
            None => Ok(()),
        }
    }

    /// The issuer an RFC 9207 `iss` authorization-response parameter must name, and whether
    /// the provider promises to send one (OIDC discovery's
    /// `authorization_response_iss_parameter_supported`). `None`: no issuer is known.
    pub async fn response_issuer(
        &self,
        http: &reqwest::Client,
    ) -> Result<Option<(String, bool)>, ProviderError> {
        if let Some(oidc) = &self.oidc {
            let d = oidc.discovery(http).await?;
            return Ok(Some((
                d.issuer,
                d.authorization_response_iss_parameter_supported,
            )));
        }
        Ok(self
            .config
            .issuer
            .as_ref()
            .map(|i| (i.as_str().trim_end_matches('/').to_owned(), false)))
    }

    async fn endpoints(&self, http: &reqwest::Client) -> Result<Endpoints, ProviderError> {
        let c = &self.config;
        if let Some(oidc) = &self.oidc {
            let d = oidc.discovery(http).await?;
            // S256 even when discovery lists only `plain` or nothing: a server that supports
            // PKCE supports S256 (RFC 7636 §4.2), and one that does not ignores it.
            return Ok(Endpoints {
                authorize: c.authorize_url.clone().unwrap_or(d.authorization_endpoint),
                token: c.token_url.clone().unwrap_or(d.token_endpoint),
                user_info: c.user_info_url.clone().or(d.userinfo_endpoint),
                pkce: c.pkce,
            });
        }
        let missing = || ProviderError::BadAnswer("provider endpoints are not configured".into());
        Ok(Endpoints {
            authorize: c.authorize_url.clone().ok_or_else(missing)?,
            token: c.token_url.clone().ok_or_else(missing)?,
            user_info: c.user_info_url.clone(),
            pkce: c.pkce,
        })
    }

    fn client(&self, e: &Endpoints) -> OAuthClient {
        let c = &self.config;
        oauth2::Client::new(ClientId::new(c.client_id.clone()))
            .set_client_secret(ClientSecret::new(c.client_secret.0.clone()))
            .set_auth_uri(AuthUrl::from_url(e.authorize.clone()))
            .set_token_uri(TokenUrl::from_url(e.token.clone()))
            .set_redirect_uri(RedirectUrl::from_url(c.redirect_url.clone()))
            .set_auth_type(match c.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Body => AuthType::RequestBody,
            })
    }

    /// The provider's authorisation URL for a login with our `state` (and OIDC `nonce`).
    pub async fn start(
        &self,
        http: &reqwest::Client,
        state: &str,
        nonce: &str,
    ) -> Result<Started, ProviderError> {
        let e = self.endpoints(http).await?;
        let client = self.client(&e);
        let state = state.to_owned();
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new));
        if self.oidc.is_some() {
            request = request.add_extra_param("nonce", nonce.to_owned());
        }
        let mut pkce_verifier = None;
        if e.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            pkce_verifier = Some(verifier.secret().clone());
        }
        let (url, _) = request.url();
        Ok(Started { url, pkce_verifier })
    }

    /// Exchanges the code and fetches who logged in.
    pub async fn finish(
        &self,
        http: &reqwest::Client,
        code: &str,
        pkce_verifier: Option<&str>,
        nonce: &str,
    ) -> Result<Identity, ProviderError> {
        let e = self.endpoints(http).await?;
        let client = self.client(&e);
        let mut exchange = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(v) = pkce_verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(v.to_owned()));
        }
        let send = |request| fetch::send(http.clone(), request);
        let token = exchange.request_async(&send).await.map_err(token_error)?;
        let access = token.access_token().secret().clone();
        match self.config.kind {
            ProviderKind::Oidc => self.oidc_identity(http, &e, &token, nonce).await,
            ProviderKind::GitHub => self.github_identity(http, &e, &access).await,
            ProviderKind::Facebook => {
                let mut url = e.user_info.clone().ok_or_else(no_user_info)?;
                if !url.query_pairs().any(|(k, _)| k == "fields") {
                    let fields: Vec<&str> = std::iter::once("id")
                        .chain(self.config.user_info_fields.iter().map(String::as_str))
                        .collect();
                    url.query_pairs_mut()
                        .append_pair("fields", &fields.join(","));
                }
                self.user_info_identity(http, &url, &access, &["id"]).await
            }
            ProviderKind::OAuth2 | ProviderKind::Dev => {
                let url = e.user_info.clone().ok_or_else(no_user_info)?;
                self.user_info_identity(http, &url, &access, &["sub", "id"])
                    .await
            }
        }
    }

    /// Picks the stable id (first of `id_keys` present) and the configured fields.
    pub fn identity(
        &self,
        info: &Map<String, Value>,
        id_keys: &[&str],
    ) -> Result<Identity, ProviderError> {
        let id = id_keys
            .iter()
            .find_map(|k| match info.get(*k)? {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                ProviderError::BadAnswer(format!("the user info has no {}", id_keys.join(" or ")))
            })?;
        Ok(Identity {
            id,
            user: keep_fields(info, &self.config.user_info_fields),
        })
    }
}

/// The configured top-level fields, in configured order; null and empty values dropped.
pub fn keep_fields(info: &Map<String, Value>, fields: &[String]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| {
            let v = info.get(f)?;
            let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
            (!empty).then(|| (f.clone(), v.clone()))
        })
        .collect()
}

pub(super) fn no_user_info() -> ProviderError {
    ProviderError::BadAnswer("no user info endpoint is configured".into())
}

fn token_error(e: RequestTokenError<FetchError, BasicErrorResponse>) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => ProviderError::Refused(r.error().to_string()),
        RequestTokenError::Request(e) => e.into(),
        RequestTokenError::Parse(e, _) => ProviderError::BadAnswer(format!("token response: {e}")),
        RequestTokenError::Other(m) => ProviderError::BadAnswer(m),
    }
}

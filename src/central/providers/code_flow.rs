//! The OAuth2 authorization code flow every provider with a site of its own shares: the
//! authorisation URL (the `oauth2` crate, PKCE S256, our `state`), the code exchange (the
//! secret never in a URL, the answer size-capped) and a bearer-token read of the user info.

use std::future::Future;

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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::super::fetch::{self, get_json, FetchError};
use super::{
    code, email, identity, Answer, Identity, Login, Pending, Provider, ProviderError, Started,
};
use crate::config::{ClientAuth, ProviderConfig};

/// The `id_token` an OIDC token response carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

pub type Token = StandardTokenResponse<IdTokenField, BasicTokenType>;
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

/// Where one login talks to the provider.
pub struct Endpoints {
    pub authorize: Url,
    pub token: Url,
    pub user_info: Option<Url>,
}

impl Endpoints {
    /// The user-info endpoint, which every kind but OIDC needs.
    pub fn user_info(&self) -> Result<&Url, ProviderError> {
        self.user_info
            .as_ref()
            .ok_or_else(|| ProviderError::BadAnswer("no user info endpoint is configured".into()))
    }
}

/// One provider's side of the code flow.
pub struct CodeFlow {
    pub config: ProviderConfig,
}

impl CodeFlow {
    pub fn new(config: ProviderConfig) -> Self {
        CodeFlow { config }
    }

    /// The endpoints as configured (validation requires all three for these kinds).
    pub fn configured(&self) -> Result<Endpoints, ProviderError> {
        let c = &self.config;
        let missing = || ProviderError::BadAnswer("provider endpoints are not configured".into());
        Ok(Endpoints {
            authorize: c.authorize_url.clone().ok_or_else(missing)?,
            token: c.token_url.clone().ok_or_else(missing)?,
            user_info: c.user_info_url.clone(),
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

    /// The provider's authorisation URL for `login` (with its `nonce` for OIDC). PKCE is
    /// S256 even when a provider lists only `plain` or nothing: a server that supports PKCE
    /// supports S256 (RFC 7636 §4.2), and one that does not ignores it.
    pub fn start(&self, e: &Endpoints, login: &Login<'_>, send_nonce: bool) -> Started {
        let state = login.state.to_owned();
        let client = self.client(e);
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new));
        if send_nonce {
            request = request.add_extra_param("nonce", login.nonce.to_owned());
        }
        let mut pkce_verifier = None;
        if self.config.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            pkce_verifier = Some(verifier.secret().clone());
        }
        let (url, _) = request.url();
        Started {
            location: url.to_string(),
            pkce_verifier,
        }
    }

    /// Redeems the code of `login`'s answer for a token.
    pub async fn exchange(
        &self,
        login: &Login<'_>,
        e: &Endpoints,
        code: &str,
    ) -> Result<Token, ProviderError> {
        let client = self.client(e);
        let mut exchange = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(v) = login.pkce_verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(v.to_owned()));
        }
        let send = |request| fetch::send(login.http.clone(), request);
        exchange.request_async(&send).await.map_err(token_error)
    }

    /// A plain OAuth2 provider's (or Facebook's) user-info document at `url`, its email
    /// checked, into an identity whose id is the first of `id_keys`.
    pub async fn user_info(
        &self,
        grant: &Grant<'_>,
        url: &Url,
        id_keys: &[&str],
    ) -> Result<Identity, ProviderError> {
        let mut info: Map<String, Value> = grant.get(url).await?;
        email::keep_verified_email(&mut info, self.config.trust_email);
        self.identity(&info, id_keys)
    }

    /// The identity in `info`: its id, and the fields this provider keeps.
    pub fn identity(
        &self,
        info: &Map<String, Value>,
        id_keys: &[&str],
    ) -> Result<Identity, ProviderError> {
        identity(info, id_keys, &self.config.user_info_fields)
    }
}

/// What a redeemed code gives to read the user with.
pub struct Grant<'a> {
    pub http: &'a reqwest::Client,
    pub endpoints: &'a Endpoints,
    pub access: &'a str,
}

impl Grant<'_> {
    /// A JSON document of the provider's, read with the access token.
    pub async fn get<T: DeserializeOwned>(&self, url: &Url) -> Result<T, ProviderError> {
        get_json(self.http, url.as_str(), Some(self.access)).await
    }
}

/// A provider whose endpoints are configured and whose answer is a code redeemed for an
/// access token (GitHub, Facebook, generic OAuth2): it only says how to read the user.
pub trait CodeProvider: Send + Sync {
    fn flow(&self) -> &CodeFlow;

    /// Who the access token belongs to. The groups step (GitHub organisations and teams)
    /// belongs here too, with the same token.
    fn user(
        &self,
        grant: Grant<'_>,
    ) -> impl Future<Output = Result<Identity, ProviderError>> + Send;
}

impl<P: CodeProvider> Provider for P {
    fn config(&self) -> &ProviderConfig {
        &self.flow().config
    }

    fn start<'a>(&'a self, login: &'a Login<'a>) -> Pending<'a, Started> {
        let flow = self.flow();
        let started = flow.configured().map(|e| flow.start(&e, login, false));
        Box::pin(async move { started })
    }

    fn finish<'a>(&'a self, login: &'a Login<'a>, answer: Answer<'a>) -> Pending<'a, Identity> {
        Box::pin(async move {
            let endpoints = self.flow().configured()?;
            let token = self
                .flow()
                .exchange(login, &endpoints, code(answer)?)
                .await?;
            let grant = Grant {
                http: login.http,
                endpoints: &endpoints,
                access: token.access_token().secret(),
            };
            self.user(grant).await
        })
    }
}

fn token_error(e: RequestTokenError<FetchError, BasicErrorResponse>) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => ProviderError::Refused(r.error().to_string()),
        RequestTokenError::Request(e) => e.into(),
        RequestTokenError::Parse(e, _) => ProviderError::unreadable("the token response", e),
        RequestTokenError::Other(m) => ProviderError::BadAnswer(m),
    }
}

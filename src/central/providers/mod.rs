//! Upstream identity providers behind one small trait: start a login (where the browser
//! goes, what to keep for its answer), finish it (the answer into an [`Identity`]). One file
//! per kind; [`build`] is the only place that looks at a provider's `kind`.

mod code_flow;
mod dev;
mod email;
mod facebook;
mod github;
mod oauth2;
mod oidc;

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use crate::config::{ProviderConfig, ProviderKind};
use crate::util::Query;
use code_flow::CodeFlow;

/// Why a login could not be finished (or started) with a provider. The variant decides what
/// the user is told; the details, and the error behind them, go to the log.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer: the connection failed, timed out or was cut.
    #[error("cannot reach the provider")]
    Unreachable(#[from] reqwest::Error),
    /// The provider said no, with an OAuth error code (RFC 6749 §5.2).
    #[error("the provider refused: {0}")]
    Refused(String),
    /// An answer the protocol does not allow.
    #[error("unexpected answer from the provider: {0}")]
    BadAnswer(String),
    /// An answer that could not be read at all.
    #[error("unexpected answer from the provider: {what}")]
    Unreadable {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// What the user typed into a provider's own form was refused (a message for them).
    #[error("{0}")]
    Input(String),
    /// The provider's metadata has not been discovered yet (discovery runs in the
    /// background, with backoff): the login cannot start now, but will shortly.
    #[error("the provider's discovery has not succeeded yet")]
    NotDiscovered,
}

impl ProviderError {
    pub fn unreadable(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ProviderError::Unreadable {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

/// Who logged in: the provider's stable id, the kept fields, and their groups (GitHub
/// organisations and teams, or an OIDC groups claim; empty unless configured).
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub user: Map<String, Value>,
    pub groups: Vec<String>,
}

/// A login in flight as its provider sees it: our `state` there, the OIDC nonce, the PKCE
/// verifier that [`Provider::start`] chose, and the HTTP client to reach the provider with.
pub struct Login<'a> {
    pub http: &'a reqwest::Client,
    pub state: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: Option<&'a str>,
}

/// Where the browser goes to log in, and the PKCE verifier to keep for the answer.
pub struct Started {
    pub location: String,
    pub pkce_verifier: Option<String>,
}

/// How the provider's answer came back.
pub enum Answer<'a> {
    /// At the callback, with an authorization code.
    Code(&'a str),
    /// Posted from the provider's own form (see [`Provider::form`]).
    Form(&'a Query),
}

/// An issuer (no trailing slash), and whether the provider promises to name it in every
/// authorization response (RFC 9207).
pub type Issuer = (String, bool);

/// What the provider methods return: a boxed future, so providers can sit in one list.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// One configured provider. A `finish` runs its steps in order: redeem the answer, read the
/// user, keep a verified email, then the groups step (GitHub organisations and teams, OIDC
/// group claims).
pub trait Provider: Send + Sync {
    fn config(&self) -> &ProviderConfig;

    fn name(&self) -> &str {
        &self.config().name
    }

    /// Fetches what the provider publishes (OIDC discovery). Run at start-up in the
    /// background, again with backoff until it succeeds, so no login waits for it.
    fn warm_up<'a>(&'a self, _: &'a reqwest::Client) -> Pending<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the provider can start logins: its discovery, if it needs one, has succeeded
    /// at least once.
    fn ready(&self) -> bool {
        true
    }

    /// The issuer an RFC 9207 `iss` authorization-response parameter must name. `None`: no
    /// issuer is known (the provider's own callback path is what binds its answers).
    fn response_issuer<'a>(&'a self, _: &'a reqwest::Client) -> Pending<'a, Option<Issuer>> {
        let issuer = self.config().issuer.as_ref();
        let issuer = issuer.map(|i| (i.as_str().trim_end_matches('/').to_owned(), false));
        Box::pin(async move { Ok(issuer) })
    }

    /// Where to send the browser for this login (`pkce_verifier` is not chosen yet).
    fn start<'a>(&'a self, login: &'a Login<'a>) -> Pending<'a, Started>;

    /// The identity behind the provider's answer to this login.
    fn finish<'a>(&'a self, login: &'a Login<'a>, answer: Answer<'a>) -> Pending<'a, Identity>;

    /// The provider's own login page for the login `state`, for providers that are their
    /// own login page (dev); `None` for those with a site of their own.
    fn form(&self, _state: &str) -> Option<String> {
        None
    }
}

/// The provider of a validated config entry.
pub fn build(config: ProviderConfig) -> std::sync::Arc<dyn Provider> {
    match config.kind {
        ProviderKind::GitHub => std::sync::Arc::new(github::GitHub(CodeFlow::new(config))),
        ProviderKind::Facebook => std::sync::Arc::new(facebook::Facebook(CodeFlow::new(config))),
        ProviderKind::OAuth2 => std::sync::Arc::new(oauth2::OAuth2(CodeFlow::new(config))),
        ProviderKind::Oidc => std::sync::Arc::new(oidc::Oidc::new(config)),
        ProviderKind::Dev => std::sync::Arc::new(dev::Dev::new(config)),
    }
}

/// Picks the stable id (first of `id_keys` present) and the configured `fields` of `info`.
pub fn identity(
    info: &Map<String, Value>,
    id_keys: &[&str],
    fields: &[String],
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
        user: keep_fields(info, fields),
        groups: Vec::new(),
    })
}

/// The configured top-level fields, in configured order; null and empty values dropped.
fn keep_fields(info: &Map<String, Value>, fields: &[String]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| {
            let v = info.get(f)?;
            let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
            (!empty).then(|| (f.clone(), v.clone()))
        })
        .collect()
}

/// The code of an answer, for the providers that redeem one (all but dev).
fn code(answer: Answer<'_>) -> Result<&str, ProviderError> {
    match answer {
        Answer::Code(code) => Ok(code),
        Answer::Form(_) => Err(ProviderError::BadAnswer(
            "this provider has no login form".into(),
        )),
    }
}

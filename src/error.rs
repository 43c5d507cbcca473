//! The crate's error types: configuration errors (exit code 64) and per-request errors.
//!
//! A request error carries its status; it becomes a response in exactly one place
//! (`pages::error_response`), so clients see a short, honest page while details go to the log.

use std::path::PathBuf;

use http::StatusCode;

/// Any underlying error kept as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a configuration could not be used. `Display` names the key path first.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not valid YAML: {0}")]
    Syntax(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigError {
    /// An error about the value at `path` (e.g. `gateway.routes[2].upstream`).
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Errors at start-up after the config is valid: files, keys, the listener.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `what` says which file or setting; `source` is the TLS library's error, if any.
    #[error("TLS: {what}")]
    Tls {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("signing key: {0}")]
    Key(String),
    /// `gateway.session.store` could not be set up (the URL was checked with the config).
    #[error("session store: {0}")]
    Store(String),
    #[error("cannot build the HTTP client for providers")]
    Client(#[source] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The cause is printed by whoever prints the chain (`{:#}`, `error_chain`), once.
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StartError {
    /// A TLS error about `what`, keeping the library's error as its cause.
    pub fn tls(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StartError::Tls {
            what: what.into(),
            source: Some(source.into()),
        }
    }
}

/// What went wrong with one request; each kind maps to one status.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("bad request path: {0}")]
    BadPath(&'static str),
    /// A `Host` (or `:authority`) that is not a plain host and port, or two that disagree.
    #[error("bad host: {0}")]
    BadHost(&'static str),
    /// A `Host` this gateway does not serve (RFC 9110 §15.5.20).
    #[error("misdirected request: host not served here")]
    Misdirected,
    #[error("method not allowed here")]
    MethodNotAllowed,
    /// A method outside the route's `methods`; `allow` is the `Allow` header naming them.
    #[error("method not in the route's methods")]
    MethodNotListed { allow: http::HeaderValue },
    #[error("no route for this path")]
    NoRoute,
    #[error("not found")]
    NotFound,
    /// `what` says what failed; `source` is the connection's or hyper's error, if any.
    #[error("upstream unavailable: {what}")]
    Upstream {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The client's request body stopped arriving (`limits.body_idle_timeout`, or a form's
    /// own short limit): 408, as nginx's `client_body_timeout`.
    #[error("the request body stopped arriving")]
    BodyTimeout,
    /// Nobody is logged in and the answer needs someone. `redirect`: a browser navigation
    /// may be sent to `login_url` (a proxied request) rather than get 401 JSON.
    #[error("login required")]
    LoginRequired { login_url: String, redirect: bool },
    /// A bearer token that proves nothing (RFC 6750 §3.1 `invalid_token`): 401, never a
    /// redirect.
    #[error("invalid bearer token")]
    BadBearer,
    /// A route only a bearer token can pass (no login source), and none was sent.
    #[error("bearer token required")]
    BearerRequired,
    /// The request may not go on: `reason` is the JSON `error`, `page` the HTML body shown to
    /// browsers when there is a better one than the plain error page.
    #[error("forbidden: {reason}")]
    Forbidden {
        reason: &'static str,
        page: Option<String>,
    },
    /// A request we refuse with a message the user may read (it names no secret).
    #[error("bad request: {0}")]
    Invalid(String),
    /// A login that could not finish (provider refused, down, or the user said no).
    #[error("login failed: {message}")]
    Login {
        status: StatusCode,
        message: String,
        /// Where to start again.
        retry: Option<String>,
    },
    /// The session store (Redis) failed or did not answer in time: 503, never a pass.
    #[error("session store unavailable")]
    SessionStore,
    /// A fault of ours (a value that should always serialise, a URL validated at start-up);
    /// the details go to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    /// The upstream failed at `what`, because of `source`.
    pub fn upstream(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        RequestError::Upstream {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::BadPath(_) | RequestError::BadHost(_) => StatusCode::BAD_REQUEST,
            RequestError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            RequestError::MethodNotAllowed | RequestError::MethodNotListed { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            RequestError::NoRoute | RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            RequestError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            RequestError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            RequestError::Invalid(_) => StatusCode::BAD_REQUEST,
            RequestError::LoginRequired { .. } => StatusCode::UNAUTHORIZED,
            RequestError::Forbidden { .. } => StatusCode::FORBIDDEN,
            RequestError::BadBearer | RequestError::BearerRequired => StatusCode::UNAUTHORIZED,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::SessionStore => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Login { status, .. } => *status,
        }
    }

    /// The short text a client may see; never internal details.
    pub fn public_message(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(match self {
            RequestError::BadPath(why) | RequestError::BadHost(why) => why,
            RequestError::Misdirected => "This site is not served at this address.",
            RequestError::Invalid(why) => why,
            RequestError::Login { message, .. } => message,
            RequestError::MethodNotAllowed | RequestError::MethodNotListed { .. } => {
                "This method is not allowed here."
            }
            RequestError::LoginRequired { .. } => "Please log in first.",
            RequestError::Forbidden { .. } => "You may not use this page.",
            RequestError::BadBearer => "The bearer token is not valid here.",
            RequestError::BearerRequired => "This needs a bearer token.",
            RequestError::Internal(_) => "Something went wrong on our side.",
            RequestError::SessionStore => {
                "Sessions cannot be checked right now; please try again in a moment."
            }
            RequestError::NoRoute | RequestError::NotFound => "There is nothing at this address.",
            RequestError::Upstream { .. } => {
                "The application behind this gateway is not answering."
            }
            RequestError::UpstreamTimeout => {
                "The application behind this gateway took too long to answer."
            }
            RequestError::BodyTimeout => "The request body stopped arriving.",
        })
    }

    /// An upstream's failure: logged (rate-limited) by the upstream's pool, not per request.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            RequestError::Upstream { .. } | RequestError::UpstreamTimeout
        )
    }

    /// Logged (rate-limited) where it failed, not per request: an upstream's pool, the
    /// session store. A dead Redis under load would otherwise write a line per request.
    pub fn logged_where_it_failed(&self) -> bool {
        self.is_upstream() || matches!(self, RequestError::SessionStore)
    }

    /// A link to start again, for errors that have one.
    pub fn retry(&self) -> Option<&str> {
        match self {
            RequestError::Login { retry, .. } => retry.as_deref(),
            _ => None,
        }
    }
}

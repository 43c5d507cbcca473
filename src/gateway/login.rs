//! The gateway's login endpoints under `/_auth`: `login` (provider chooser), `callback`
//! (assertion → session), `logout`, `userinfo`, and `check` (in `check.rs`) for nginx
//! `auth_request` and forward-auth proxies.

mod check;
mod logout;
mod replay;

pub use check::CheckContext;
#[cfg(feature = "fuzzing")]
pub(crate) use check::{original_path, original_uri};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::body::RequestBody;
use ed25519_dalek::VerifyingKey;
use http::header;
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::hosts::{Site, Sites};
use super::policy::safe_next;
use super::session::{Keys, Session, Sessions};
use crate::assertion::{self, Expected};
use crate::config::{provider_display_name, GatewayConfig, LoginSource, SessionStore};
use crate::cookies::Sealed;
use crate::error::{RequestError, StartError};
use crate::metrics::{LoginOutcome, Logins};
use crate::pages::{self, escape, Body};
use crate::util::{now, random_token, Query};

/// How long a login may take, from the gateway's redirect to its callback.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Logins a browser may have in flight at once; starting another ends the oldest.
const MAX_PENDING_LOGINS: usize = 5;
/// Each login in flight, sealed in a `__Host-oauthgate-login-…` cookie; its state is the
/// nonce sent to the central as `state`, which the assertion must carry.
const PENDING: Sealed<Pending> =
    Sealed::new("__Host-oauthgate-login-", LOGIN_TTL, MAX_PENDING_LOGINS);
/// The largest `Set-Cookie` browsers are sure to keep (RFC 6265 §6.1 asks for 4096 bytes).
const MAX_COOKIE: usize = 4000;

/// What a login in flight remembers besides its state (the nonce) and expiry.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// Where to go afterwards (already checked by `safe_next`).
    next: String,
    /// The provider asked for: the assertion must come from it.
    #[serde(rename = "p")]
    provider: String,
}

/// Everything the login endpoints need, built once.
pub struct LoginFlow {
    central_url: String,
    keys: Vec<VerifyingKey>,
    providers: Vec<String>,
    /// The chooser's name for each of `providers`.
    display_names: Vec<String>,
    /// Each host's origin and callback: a login on a host comes back to that host.
    pub sites: Sites,
    pub auth_prefix: String,
    title: String,
    pub sessions: Sessions,
    trusted_proxies: Vec<IpAddr>,
    /// Login nonces already used at the callback; shared with the flows that reloads build,
    /// so that a reload does not open a window to replay an assertion.
    used: Arc<replay::UsedNonces>,
    /// Where callbacks are counted (`accepted` / `refused`).
    pub logins: Logins,
}

impl LoginFlow {
    pub fn new(
        config: &GatewayConfig,
        source: &LoginSource,
        data_dir: &std::path::Path,
        in_process_key: Option<VerifyingKey>,
    ) -> Result<Self, StartError> {
        let mut keys = source.verify_keys.clone();
        keys.extend(in_process_key);
        if keys.is_empty() {
            return Err(StartError::Key(
                "the gateway has no key to verify logins with".into(),
            ));
        }
        Ok(LoginFlow {
            central_url: source.url.clone(),
            keys,
            providers: source.providers.clone(),
            display_names: source.display_names.clone(),
            sites: Sites::new(config),
            auth_prefix: config.auth_prefix.clone(),
            title: config.title.clone(),
            sessions: Sessions::new(
                Keys {
                    secret: config.session_secret.as_ref(),
                    previous: &config.session_previous_secrets,
                },
                data_dir,
                (config.session_ttl, config.session_idle_timeout),
                &config.session_cookie,
                config.identity.headers.clone(),
                store(config)?,
            )?,
            trusted_proxies: config.trusted_proxies.clone(),
            used: Arc::default(),
            logins: Logins::default(),
        })
    }

    /// Takes over what must outlive a config reload from the flow before it.
    pub fn carry_over(&mut self, previous: Option<&LoginFlow>) {
        if let Some(p) = previous {
            self.used = p.used.clone();
            self.sessions.keep_store(&p.sessions);
        }
    }

    /// Handles `<auth_prefix>/<endpoint>` of the site `check.host` names; `None` when the
    /// endpoint is not a login one.
    pub async fn endpoint(
        &self,
        endpoint: &str,
        req: Request<RequestBody>,
        check: CheckContext<'_>,
    ) -> Option<Result<Response<Body>, RequestError>> {
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        let site = self.sites.of(check.host);
        Some(match endpoint {
            "/login" if get => self.login(&req, &site),
            "/callback" if get => self.counted_callback(&req, &site).await,
            "/logout" if get => self.logout_page(&req, &site).await,
            "/logout" if req.method() == Method::POST => self.logout(req, &site).await,
            "/userinfo" if get => self.userinfo(&req, &site).await,
            "/check" => self.check(&req, check, &site).await,
            "/login" | "/callback" | "/logout" | "/userinfo" => Err(RequestError::MethodNotAllowed),
            _ => return None,
        })
    }

    /// Where to log in and come back to `next`.
    pub fn login_url(&self, next: &str) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        format!("{}/login?{q}", self.auth_prefix)
    }

    /// The 403 page for a logged-in user outside a route's `allow`: who they are, a logout
    /// button, and a way to log in with another account.
    pub fn forbidden_page(&self, session: &Session, next: &str) -> String {
        let body = format!(
            "<p>You are logged in as <strong>{who}</strong> (through {provider}), and this account \
             may not use this page.</p>{logout}\
             <p><a href=\"{again}\">Log in with another account</a></p>",
            who = escape(&session.display_name()),
            provider = escape(&provider_display_name(&session.provider)),
            logout = self.logout_form(session),
            again = escape(&self.login_url(next)),
        );
        self.page("Access denied", &body)
    }

    fn page(&self, title: &str, body: &str) -> String {
        pages::page(&format!("{title} · {}", self.title), body)
    }

    /// `GET /_auth/login?next=/path[&provider=P]`
    fn login(
        &self,
        req: &Request<RequestBody>,
        site: &Site,
    ) -> Result<Response<Body>, RequestError> {
        let q = Query::of(req);
        let next = safe_next(q.get("next").unwrap_or("/"), &self.auth_prefix);
        let provider = match (q.get("provider"), self.providers.as_slice()) {
            (Some(p), _) if self.providers.iter().any(|x| x == p) => p.to_owned(),
            (Some(_), _) => {
                return Err(RequestError::Invalid(
                    "That login provider is not offered here.".into(),
                ))
            }
            (None, [only]) => only.clone(),
            (None, _) => return Ok(self.chooser(&next)),
        };
        let nonce = random_token();
        let pending = Pending { next, provider };
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("provider", &pending.provider)
            .append_pair("state", &nonce)
            .append_pair("redirect_url", &site.callback_url)
            .finish();
        let mut res = pages::redirect(
            StatusCode::FOUND,
            &format!("{}/authorize?{query}", self.central_url),
        )?;
        let cookies = PENDING
            .seal(self.sessions.logins(), req.headers(), &nonce, &pending)
            .map_err(|e| RequestError::Internal(format!("pending login: {e}")))?;
        for cookie in cookies {
            res.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(res)
    }

    fn chooser(&self, next: &str) -> Response<Body> {
        let mut list = String::from("<ul class=\"providers\">");
        for (p, name) in self.providers.iter().zip(&self.display_names) {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .append_pair("provider", p)
                .finish();
            list.push_str(&format!(
                "<li><a class=\"button\" href=\"{}/login?{}\">Continue with {}</a></li>",
                escape(&self.auth_prefix),
                escape(&q),
                escape(name),
            ));
        }
        list.push_str("</ul>");
        let body = format!(
            "<p>Choose how to log in to {}.</p>{list}",
            escape(&self.title)
        );
        pages::html_page(StatusCode::OK, &self.page("Log in", &body))
    }

    /// [`LoginFlow::callback`], counted by the provider the login asked for (`-` before that
    /// is known). That name was sealed into the login cookie by `login`, which took it only
    /// from this gateway's configured providers, so the label stays a bounded set.
    async fn counted_callback(
        &self,
        req: &Request<RequestBody>,
        site: &Site,
    ) -> Result<Response<Body>, RequestError> {
        let mut asked = None;
        let result = self.callback(req, site, &mut asked).await;
        let outcome = match result {
            Ok(_) => LoginOutcome::Accepted,
            Err(_) => LoginOutcome::Refused,
        };
        self.logins.count(asked.as_deref().unwrap_or("-"), outcome);
        result
    }

    /// `GET /_auth/callback?assertion&state`: the central server sends the browser back.
    async fn callback(
        &self,
        req: &Request<RequestBody>,
        site: &Site,
        asked: &mut Option<String>,
    ) -> Result<Response<Body>, RequestError> {
        let q = Query::of(req);
        let restart = |message: &str| RequestError::Login {
            status: StatusCode::BAD_REQUEST,
            message: message.to_owned(),
            retry: Some(format!("{}/login", self.auth_prefix)),
        };
        let state = q
            .get("state")
            .filter(|s| s.len() >= 16)
            .ok_or_else(|| restart("This login link is incomplete."))?;
        let stale = || {
            restart("This login has expired, was already used, or was started in another browser.")
        };
        let pending = PENDING
            .open(self.sessions.logins(), req.headers(), state)
            .ok_or_else(stale)?;
        *asked = Some(pending.provider.clone());
        let token = q
            .get("assertion")
            .ok_or_else(|| restart("The login server sent no assertion."))?;
        let expected = Expected {
            iss: &self.central_url,
            // This host's callback: an assertion made for another host's login is refused.
            aud: &site.callback_url,
            nonce: state,
            now: now(),
        };
        let claims = assertion::verify(token, &self.keys, &expected).map_err(|e| {
            warn!(error = %e, "assertion refused");
            restart("The login could not be verified.")
        })?;
        // Only a provider this gateway offers, and the one this login asked for: someone
        // who swaps `provider=` on the way to the central comes back with another.
        if pending.provider != claims.provider || !self.providers.contains(&claims.provider) {
            warn!(provider = %claims.provider, asked = %pending.provider, "assertion from a provider this login did not ask for");
            return Err(restart("That login provider is not offered here."));
        }
        let until = claims.exp + assertion::LEEWAY;
        if !self.used.first_use(state, until, now())
            || !self.sessions.first_use(state, until).await?
        {
            warn!(sub = %claims.sub, "login nonce used twice; refused");
            return Err(stale());
        }
        let session = Session {
            sub: claims.sub,
            provider: claims.provider,
            user: claims.user,
            groups: claims.groups,
            exp: now() + self.sessions.ttl.as_secs(),
            seen: now(),
            host: site.bound.clone(),
        };
        // With Redis, a session this browser still had is ended, not only replaced: a copy of
        // its cookie must not outlive the new login (the cookie store cannot do this).
        let _ = self.sessions.end(req.headers()).await;
        let session_cookie = self.sessions.start(&session).await?;
        if session_cookie.len() > MAX_COOKIE {
            // Browsers drop larger cookies silently, which would loop the user through logins.
            warn!(sub = %session.sub, bytes = session_cookie.len(), "session too large for a cookie");
            return Err(restart("Your account's details are too large to keep; ask the administrator to keep fewer user_info_fields or groups."));
        }
        info!(sub = %session.sub, "logged in");
        // A fresh session cookie replaces whatever the browser had (no fixation).
        let mut res = pages::redirect(StatusCode::SEE_OTHER, &pending.next)?;
        let h = res.headers_mut();
        h.append(header::SET_COOKIE, session_cookie);
        h.append(header::SET_COOKIE, PENDING.removal(state));
        Ok(res)
    }

    /// `GET /_auth/userinfo`: the object `X-User-Info` carries, plus `exp`; or 401.
    async fn userinfo(
        &self,
        req: &Request<RequestBody>,
        site: &Site,
    ) -> Result<Response<Body>, RequestError> {
        match self
            .sessions
            .resolve(req.headers(), site.bound.as_deref())
            .await?
        {
            Some(s) => {
                let mut info = s.session.info();
                info.insert("exp".into(), s.session.exp.into());
                let mut res = pages::json(StatusCode::OK, &serde_json::Value::Object(info));
                if let Some(renewed) = s.renewal() {
                    res.headers_mut()
                        .append(header::SET_COOKIE, renewed.clone());
                }
                Ok(res)
            }
            None => Err(RequestError::LoginRequired {
                login_url: self.login_url("/"),
                redirect: false,
            }),
        }
    }
}

/// `gateway.session.store: redis://…`: the store sessions live in (connected on first use).
fn store(config: &GatewayConfig) -> Result<Option<Arc<super::session::RedisStore>>, StartError> {
    match &config.session_store {
        SessionStore::Cookie => Ok(None),
        SessionStore::Redis(url) => Ok(Some(Arc::new(super::session::RedisStore::new(
            url,
            config.session_idle_timeout,
        )?))),
    }
}

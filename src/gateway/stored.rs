//! Where a request whose session lives in Redis leaves the common path: the cache did not
//! know its cookie (or knew it too long ago), so Redis is asked (which may wait), then the
//! request is judged and delivered like any other. Redis down or slow: 503, never a pass.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::body::RequestBody;
use http::header::HeaderValue;
use http::{Request, Response};

use super::routes::Routed;
use super::session::{self, Fetch};
use super::{Gateway, Judged, Step};
use crate::config::Login;
use crate::context::LaterUser;
use crate::error::RequestError;
use crate::pages::Body;
use crate::path::NormalPath;

impl Gateway {
    /// The rest of a request once Redis has said whose session its cookie names.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stored_step<'a>(
        &'a self,
        routed: &'a Routed,
        judged: Judged<'a>,
        fetch: Fetch,
        bound: Option<String>,
        req: Request<RequestBody>,
        path: NormalPath,
        peer: SocketAddr,
        request_id: HeaderValue,
    ) -> Step<'a> {
        Step::Later(Box::pin(async move {
            // `session_of` returns a fetch only when there is a login flow.
            let login = self.login.as_ref().ok_or_else(|| {
                RequestError::Internal("a session fetch without a login flow".into())
            })?;
            let session = login.sessions.fetch(fetch, bound.as_deref()).await?;
            let presented = Presented::Cookie(session);
            self.judge_and_deliver(routed, judged, req, path, peer, presented, request_id)
                .await
        }))
    }

    /// The policy phase and the last one, for a request whose session took waiting for (a
    /// bearer token's verification, a Redis read): as on the common path, awaited here.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn judge_and_deliver<'a>(
        &'a self,
        routed: &'a Routed,
        judged: Judged<'a>,
        mut req: Request<RequestBody>,
        path: NormalPath,
        peer: SocketAddr,
        presented: Presented,
        request_id: HeaderValue,
    ) -> Result<Response<Body>, RequestError> {
        let mut who = None;
        let identity = self.policy(judged, &req, &path, peer, presented, &mut who)?;
        let mut step = self.deliver(routed, &mut req, path, peer, identity, request_id);
        let mut res = match step {
            Step::Answer(answer) => answer,
            Step::Forward(ref mut prepared) => prepared.send().await,
            Step::Later(work) => work.await,
        }?;
        // For the edge: the access line's user, and a cookie re-sealed with the current
        // secret (`ctx` is not reachable from this future).
        if let Some(v) = who {
            res.extensions_mut().insert(LaterUser(v));
        }
        Ok(res)
    }

    /// The session phase for a cookie: the request's session (made for `bound`, the route
    /// host the request was routed by: see `Session::host`), `None` when the route needs
    /// none (a `login: none` route never waits on the store, so a Redis outage leaves it
    /// alone), or the Redis read still to do.
    pub(super) fn session_of(
        &self,
        j: Judged<'_>,
        req: &Request<RequestBody>,
        bound: Option<&str>,
    ) -> Result<Option<Arc<session::Verified>>, session::Fetch> {
        match &self.login {
            Some(login) if j.needs_session() => login.sessions.lookup(req.headers(), bound),
            _ => Ok(None),
        }
    }
}

impl Judged<'_> {
    /// Whether a session is read at all: some judged route logs users in.
    pub(super) fn needs_session(&self) -> bool {
        !(self.route.login == Login::None && self.also.iter().all(Option::is_none))
    }
}

/// Where the session the policy judges came from.
pub(super) enum Presented {
    /// The session cookie's (`None`: no valid one, or the route needs none).
    Cookie(Option<Arc<session::Verified>>),
    /// A verified bearer token's, standing for the session.
    Bearer(Arc<session::Verified>),
}

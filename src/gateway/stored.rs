//! Where a request whose session lives in Redis leaves the common path: the cache did not
//! know its cookie (or knew it too long ago), so Redis is asked (which may wait), then the
//! request is judged and delivered like any other. Redis down or slow: 503, never a pass.

use std::net::SocketAddr;

use http::header::HeaderValue;
use http::Request;
use hyper::body::Incoming;

use super::routes::Routed;
use super::session::Fetch;
use super::{Gateway, Judged, Presented, Step};
use crate::error::RequestError;
use crate::path::NormalPath;

impl Gateway {
    /// The rest of a request once Redis has said whose session its cookie names.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stored_step<'a>(
        &'a self,
        routed: &'a Routed,
        judged: Judged<'a>,
        fetch: Fetch,
        req: Request<Incoming>,
        path: NormalPath,
        peer: SocketAddr,
        request_id: HeaderValue,
    ) -> Step<'a> {
        Step::Later(Box::pin(async move {
            // `session_of` returns a fetch only when there is a login flow.
            let login = self.login.as_ref().ok_or_else(|| {
                RequestError::Internal("a session fetch without a login flow".into())
            })?;
            let session = login.sessions.fetch(fetch).await?;
            let mut who = None;
            let identity = self.policy(
                judged,
                &req,
                &path,
                peer,
                Presented::Cookie(session),
                &mut who,
            )?;
            match self.deliver(routed, req, path, peer, identity, request_id) {
                Step::Answer(answer) => answer,
                Step::Forward(prepared) => prepared.send().await,
                Step::Later(work) => work.await,
            }
        }))
    }
}

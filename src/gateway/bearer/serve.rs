//! Where a bearer request leaves the common path: a `bearer: true` route with an
//! `Authorization: Bearer` header is verified (which may wait for the issuer's keys), then
//! judged and delivered like any request, with the token's identity for the session.

use std::net::SocketAddr;

use crate::body::RequestBody;
use http::header::{self, HeaderValue};
use http::Request;
use tracing::warn;

use super::super::routes::Routed;
use super::super::{Gateway, Judged, Presented, Step};
use super::token_of;
use crate::error::RequestError;
use crate::path::NormalPath;

/// What is left of a bearer request once its path is known.
type Continue<'a> = Box<dyn FnOnce(Request<RequestBody>, NormalPath) -> Step<'a> + Send + 'a>;

impl Gateway {
    /// `None` when the request carries no bearer token (the cookie decides), else the rest of
    /// the request: verify, judge (a bad token is 401 `invalid_token`, never a redirect; the
    /// token is not sent upstream), deliver.
    pub(in crate::gateway) fn bearer_step<'a>(
        &'a self,
        routed: &'a Routed,
        judged: Judged<'a>,
        req: &Request<RequestBody>,
        peer: SocketAddr,
        request_id: HeaderValue,
    ) -> Option<Continue<'a>> {
        let bearer = self.bearer.as_ref()?;
        let token = token_of(req.headers())?.to_owned();
        Some(Box::new(move |mut req, path| {
            Step::Later(Box::pin(async move {
                let verified = bearer
                    .verify(&token, crate::util::now())
                    .await
                    .map_err(|e| {
                        warn!(error = %e, peer = %peer.ip(), "bearer token refused");
                        RequestError::BadBearer
                    })?;
                req.headers_mut().remove(header::AUTHORIZATION);
                // A token's client is no browser: no pages, whatever its headers say.
                let judged = Judged {
                    navigation: false,
                    ..judged
                };
                let presented = Presented::Bearer(verified);
                self.judge_and_deliver(routed, judged, req, path, peer, presented, request_id)
                    .await
            }))
        }))
    }
}

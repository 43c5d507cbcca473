//! One request's context: what the phases learn about a request as it goes (who sent it,
//! whether a browser navigates, which route took it, when it started), read at the end by the
//! error edge and the access log. pingora's per-request `CTX` is the model.

use std::net::SocketAddr;
use std::time::Instant;

use http::Request;

use crate::metrics::RouteStats;
use crate::pages;

pub struct RequestCtx<'a> {
    /// The client's address (the TCP peer).
    pub peer: SocketAddr,
    /// A browser navigation (SPEC §4): it may be redirected and gets HTML pages; otherwise an
    /// API call, which gets JSON. Read once from the request's headers.
    pub navigation: bool,
    /// The prefix of the route (or of the role's own endpoints) that took the request: a
    /// bounded label, never the raw path.
    pub route: Option<&'a str>,
    /// That route's counters, when metrics are on.
    pub stats: Option<&'a RouteStats>,
    /// When the request arrived, read only when something (the access log) will use it.
    pub started: Option<Instant>,
}

impl RequestCtx<'_> {
    pub fn new<B>(req: &Request<B>, peer: SocketAddr, timed: bool) -> Self {
        RequestCtx {
            peer,
            navigation: pages::is_navigation(req.headers()),
            route: None,
            stats: None,
            started: timed.then(Instant::now),
        }
    }
}

//! The gateway role: a TLS-terminating reverse proxy in front of unmodified apps.
//!
//! Each request goes through the same phases, in this order (the first and last in `app`):
//! normalise the path → the gateway's own endpoints → route → rewrite headers and forward (or
//! serve files) → access log.

mod files;
mod forward;
pub mod headers;
pub mod path;
pub mod routes;

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::{GatewayConfig, Target};
use crate::error::{RequestError, StartError};
use crate::pages::{self, Body};
use forward::{Upstream, UpstreamClient};
use path::NormalPath;
use routes::RouteTable;

/// Everything the gateway needs per request, built once at start-up.
pub struct Gateway {
    auth_prefix: String,
    health_path: String,
    routes: RouteTable,
    client: UpstreamClient,
    response_timeout: Duration,
}

impl Gateway {
    pub fn new(config: &GatewayConfig) -> Result<Self, StartError> {
        Ok(Gateway {
            health_path: format!("{}/health", config.auth_prefix),
            auth_prefix: config.auth_prefix.clone(),
            routes: RouteTable::new(&config.routes),
            client: forward::client(&config.upstream)?,
            response_timeout: config.upstream.response_timeout,
        })
    }

    /// Serves one request whose path is already normalised; returns the route it took.
    pub async fn serve(
        &self,
        req: Request<Incoming>,
        path: NormalPath,
        peer: SocketAddr,
    ) -> (Result<Response<Body>, RequestError>, Option<&str>) {
        if routes::under(path.as_str(), &self.auth_prefix) {
            return (self.own_endpoint(&req, &path), Some(&self.auth_prefix));
        }
        let Some(route) = self.routes.find(&path) else {
            return (Err(RequestError::NoRoute), None);
        };
        let result = match &route.target {
            Target::Http { scheme, authority } => {
                let to = Upstream {
                    scheme,
                    authority,
                    preserve_host: route.preserve_host,
                    response_timeout: self.response_timeout,
                };
                forward::forward(&self.client, to, req, &path, peer).await
            }
            Target::Files(dir) => files::serve(dir, req.method(), &path).await,
        };
        (result, Some(&route.prefix))
    }

    /// The gateway's endpoints under its own prefix (`/_auth` by default).
    fn own_endpoint(
        &self,
        req: &Request<Incoming>,
        path: &NormalPath,
    ) -> Result<Response<Body>, RequestError> {
        if path.as_str() == self.health_path {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Err(RequestError::MethodNotAllowed);
            }
            return Ok(pages::json(
                StatusCode::OK,
                &serde_json::json!({ "status": "ok" }),
            ));
        }
        Err(RequestError::NotFound)
    }
}

//! The application state shared by every connection, and the first and last request phases
//! common to both roles: normalise the path, dispatch to central or gateway, log one line.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tracing::{info, warn, Level};

use crate::central::{self, Central};
use crate::config::Config;
use crate::context::RequestCtx;
use crate::error::{RequestError, StartError};
use crate::gateway::{Gateway, Prepared};
use crate::pages::{self, Body};
use crate::path::NormalPath;
use crate::step::Step;

/// Built once at start-up; one `Arc` of it is shared by every connection.
pub struct AppState {
    pub central: Option<Central>,
    pub gateway: Option<Gateway>,
}

impl AppState {
    pub async fn new(config: &Config) -> Result<Self, StartError> {
        let central = match &config.central {
            Some(c) => Some(Central::new(c).await?),
            None => None,
        };
        let gateway = match &config.gateway {
            Some(g) => {
                // The central of this process vouches for logins only when the gateway uses it.
                let own_key = central
                    .as_ref()
                    .filter(|c| g.login.as_ref().is_some_and(|l| l.url == c.issuer()))
                    .map(Central::verifying_key);
                let idle = config.limits.tunnel_idle_timeout;
                Some(Gateway::new(g, &config.data_dir, own_key, idle)?)
            }
            None => None,
        };
        Ok(AppState { central, gateway })
    }

    /// Serves one request; never fails (errors become pages here, at the one error edge)
    /// and logs one access line.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        // The clock is read only for the access log.
        let mut ctx = RequestCtx::new(&req, peer, tracing::enabled!(target: "access", Level::INFO));
        let method = req.method().clone();
        // A Uri clone shares its bytes: no copy of the path for the log line.
        let uri = req.uri().clone();
        let result = match self.dispatch(req, &mut ctx) {
            Step::Answer(answer) => answer,
            Step::Forward(prepared) => prepared.send().await,
            Step::Later(work) => work.await,
        };
        let res = result.unwrap_or_else(|e| {
            // An upstream's failures are logged by its pool, rate-limited.
            if e.status().is_server_error() && !e.is_upstream() {
                warn!(error = %crate::util::error_chain(&e), peer = %peer.ip(), path = %uri.path(), "request failed");
            }
            pages::error_response(&e, ctx.navigation)
        });
        info!(
            target: "access",
            peer = %peer.ip(),
            method = %method,
            path = %uri.path(),
            status = res.status().as_u16(),
            route = ctx.route.unwrap_or("-"),
            ms = %Millis(ctx.started.map_or(Duration::ZERO, |s| s.elapsed())),
        );
        res
    }

    /// Normalises the path and hands the request to its role; nothing here waits.
    fn dispatch<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &mut RequestCtx<'a>,
    ) -> Step<'a, Prepared<'a>> {
        if req.method() == Method::CONNECT {
            return Step::Answer(Err(RequestError::MethodNotAllowed));
        }
        let path = match NormalPath::parse(req.uri().path()) {
            Ok(p) => p,
            Err(e) => return Step::Answer(Err(e)),
        };
        if let Some(central) = &self.central {
            if crate::path::under(path.as_str(), central::PREFIX) {
                ctx.route = Some(central::PREFIX);
                return Step::Later(Box::pin(async move { central.handle(req, &path).await }));
            }
        }
        match &self.gateway {
            Some(gateway) => gateway.serve(req, path, ctx),
            None => Step::Answer(Err(RequestError::NoRoute)),
        }
    }
}

/// A duration as milliseconds with three decimals, written with integer arithmetic (float
/// formatting to a fixed precision was a visible share of the access log's cost).
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_have_three_decimals() {
        let ms = |us| Millis(Duration::from_micros(us)).to_string();
        assert_eq!(ms(0), "0.000");
        assert_eq!(ms(83), "0.083");
        assert_eq!(ms(1_234_567), "1234.567");
        assert_eq!(Millis(Duration::from_nanos(999)).to_string(), "0.000");
    }
}

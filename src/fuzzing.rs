//! The parsers and checks the fuzz targets in `fuzz/` drive, reachable only with the `fuzzing`
//! feature. The crate's public API stays as it is: this module re-exports and wraps what the
//! gateway already uses on attacker input, so each target exercises the same code as a request.

use std::sync::OnceLock;

use http::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::config::{Allow, Login, Route, Target};
use crate::gateway::routes::{Destination, RouteTable};

pub use crate::assertion::{sign, verify, AssertionError, Claims, Expected};
pub use crate::config::{Config, ConfigError};
pub use crate::cookies::{CookieCodec, Sealed};
pub use crate::gateway::headers::{
    is_reserved, set_forwarded, set_websocket_upgrade, strip_hop_by_hop, strip_reserved,
    websocket_accept, websocket_accepted, websocket_key, Reserved, RESERVED, X_FORWARDED_FOR,
    X_FORWARDED_HOST, X_FORWARDED_PROTO, X_USER_INFO,
};
pub use crate::gateway::hosts::check_host;
pub use crate::gateway::policy::{safe_next, MAX_NEXT};
pub use crate::gateway::session::{strip_own_cookies, COOKIE_PREFIX};
pub use crate::maps::Kept;
pub use crate::path::NormalPath;
pub use crate::upstream::chunked::{ChunkError, Chunked, Step as ChunkStep};
pub use crate::upstream::h1::{parse_head, Framing, HeadError, Parsed};
pub use crate::util::Query;

/// The route prefixes of [`route`]'s table: nested, a root, and a `case_insensitive` one
/// (the last), so that the longest-prefix and folding rules both get exercised.
pub const ROUTES: [&str; 6] = [
    "/",
    "/public",
    "/private",
    "/private/admin",
    "/api/v1",
    "/node/admin",
];

/// The prefix of the route the gateway's table picks for `path` (see `gateway::routes`).
pub fn route(path: &NormalPath) -> Option<&'static str> {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let routes: Vec<Route> = ROUTES
            .iter()
            .map(|prefix| Route {
                host: None,
                prefix: (*prefix).to_owned(),
                target: Target::Files(prefix.into()),
                login: Login::Required,
                allow: Allow::default(),
                preserve_host: true,
                any_host: false,
                case_insensitive: *prefix == "/node/admin",
                access: Default::default(),
                strip_prefix: false,
                upstream_tls: None,
            })
            .collect();
        // Files destinations: building the table opens no socket and no file.
        RouteTable::new(&routes, |r| Ok(Destination::Files(r.prefix.clone().into())))
            .unwrap_or_else(|e| panic!("the fuzzing route table does not build: {e}"))
    });
    let prefix = table.any().find(path)?.route.prefix.as_str();
    ROUTES.iter().copied().find(|p| *p == prefix)
}

/// `/_auth/check`'s reading of its request headers: the one original URI header (`Err` when
/// there are several), and the normalised path it names (`None` when it is not one).
pub fn check_uri(headers: &HeaderMap) -> Result<Option<Option<NormalPath>>, String> {
    let uri = crate::gateway::login::original_uri(headers).map_err(|e| e.to_string())?;
    Ok(uri.map(check_uri_path))
}

/// The normalised path `/_auth/check` judges for an original URI header value.
pub fn check_uri_path(value: &HeaderValue) -> Option<NormalPath> {
    crate::gateway::login::original_path(value)
}

/// What a sealed login in flight remembers in these targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    #[serde(rename = "r")]
    pub return_to: String,
}

/// Logins in flight as the gateway keeps them (prefix, lifetime and limit of its own).
pub const TRIPS: Sealed<Trip> = Sealed::new(
    "__Host-oauthgate-login-",
    std::time::Duration::from_secs(600),
    5,
);

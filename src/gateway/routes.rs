//! The route table: the longest prefix wins, matched on whole path segments.
//!
//! `/chat` matches `/chat` and `/chat/x`, never `/chatx`. A segment's `;parameters` are ignored
//! for matching (`/private;x` is under `/private`), because servlet-style upstreams ignore them
//! too: matching them literally would let `/private;x` skip the policy of `/private`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Route;
use crate::error::StartError;

use super::path::NormalPath;
use super::upstream::Pool;

#[derive(Debug)]
pub struct RouteTable {
    /// Routes with their prefix segments, longest first.
    routes: Vec<(Vec<String>, Routed)>,
}

/// A route, with where its requests go.
#[derive(Debug)]
pub struct Routed {
    pub route: Route,
    pub to: Destination,
}

#[derive(Debug)]
pub enum Destination {
    /// The connection pool of the route's HTTP(S) origin.
    Upstream(Arc<Pool>),
    /// A directory of static files.
    Files(PathBuf),
}

impl RouteTable {
    /// `destination` says where each route's requests go.
    pub fn new(
        routes: &[Route],
        mut destination: impl FnMut(&Route) -> Result<Destination, StartError>,
    ) -> Result<Self, StartError> {
        let mut table = Vec::with_capacity(routes.len());
        for r in routes {
            let segments = segments(&r.prefix).map(str::to_owned).collect::<Vec<_>>();
            let routed = Routed {
                route: r.clone(),
                to: destination(r)?,
            };
            table.push((segments, routed));
        }
        table.sort_by_key(|(segments, _)| std::cmp::Reverse(segments.len()));
        Ok(RouteTable { routes: table })
    }

    /// The route whose prefix is the longest whole-segment prefix of `path`.
    pub fn find(&self, path: &NormalPath) -> Option<&Routed> {
        self.routes
            .iter()
            .find(|(prefix, _)| starts_with(path.segments(), prefix.iter().map(String::as_str)))
            .map(|(_, routed)| routed)
    }
}

/// Whether `path` is `prefix` or below it, on whole segments (both already normalised).
pub fn under(path: &str, prefix: &str) -> bool {
    starts_with(segments(path), segments(prefix))
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn starts_with<'a, 'b>(
    mut path: impl Iterator<Item = &'a str>,
    prefix: impl Iterator<Item = &'b str>,
) -> bool {
    prefix.into_iter().all(|want| {
        path.next()
            .is_some_and(|got| got.split(';').next() == Some(want))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Allow, Login, Target};

    fn route(prefix: &str) -> Route {
        Route {
            prefix: prefix.to_owned(),
            target: Target::Files(prefix.into()),
            login: Login::None,
            allow: Allow::default(),
            preserve_host: true,
        }
    }

    fn find<'a>(table: &'a RouteTable, path: &str) -> Option<&'a str> {
        table
            .find(&NormalPath::parse(path).unwrap())
            .map(|r| r.route.prefix.as_str())
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let table = RouteTable::new(&[route("/"), route("/chat"), route("/chat/admin")], |r| {
            Ok(Destination::Files(r.prefix.clone().into()))
        })
        .unwrap();
        assert_eq!(find(&table, "/"), Some("/"));
        assert_eq!(find(&table, "/chat"), Some("/chat"));
        assert_eq!(find(&table, "/chat/"), Some("/chat"));
        assert_eq!(find(&table, "/chat/x"), Some("/chat"));
        assert_eq!(find(&table, "/chatx"), Some("/"));
        assert_eq!(find(&table, "/chat/admin/users"), Some("/chat/admin"));
        assert_eq!(find(&table, "/chat/administrator"), Some("/chat"));
        assert_eq!(
            find(&table, "/chat;jsessionid=1/admin"),
            Some("/chat/admin")
        );
    }

    #[test]
    fn no_root_route_means_no_match() {
        let table = RouteTable::new(&[route("/chat")], |r| {
            Ok(Destination::Files(r.prefix.clone().into()))
        })
        .unwrap();
        assert_eq!(find(&table, "/"), None);
        assert_eq!(find(&table, "/other"), None);
    }

    #[test]
    fn under_is_segment_wise() {
        assert!(under("/_auth", "/_auth"));
        assert!(under("/_auth/x", "/_auth"));
        assert!(!under("/_authx", "/_auth"));
        assert!(under("/anything", "/"));
    }
}

//! The route table: the most specific host first (exact, then the longest `*.` wildcard,
//! then the routes without `host:`), and within it the longest prefix, matched on whole path
//! segments. A host with routes of its own never falls through to the host-less routes: a
//! request for `chat.example.com/x` that none of its routes takes is 404, not another app's.
//!
//! `/chat` matches `/chat` and `/chat/x`, never `/chatx`. A segment's `;parameters` are ignored
//! for matching (`/private;x` is under `/private`), because servlet-style upstreams ignore them
//! too: matching them literally would let `/private;x` skip the policy of `/private`.
//!
//! A `case_insensitive` route matches its prefix the way case-insensitive backends read paths
//! (Express by default, IIS, anything on a case-insensitive file system): ignoring case, and
//! trailing dots and spaces of a segment (`/ADMIN./x` and `/admin%20/x` are under `/admin`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Route, RouteHost};
use crate::error::StartError;
use crate::metrics::{Metrics, RouteStats};

use crate::path::{same_folded, segments, starts_with_by, without_params, NormalPath};
use crate::upstream::Pool;

/// Every route, grouped by host.
#[derive(Debug)]
pub struct RouteTable {
    /// The routes without `host:`.
    any: Table,
    /// The routes of each host: exact hosts first, then wildcards, the longest suffix first.
    /// Empty when no route names a host, and then no request pays for host routing.
    hosts: Vec<(RouteHost, Table)>,
}

/// The routes of one host (or of any host), with their prefix segments, longest first.
#[derive(Debug, Default)]
pub struct Table {
    routes: Vec<(Vec<String>, Routed)>,
}

/// A route, with where its requests go.
#[derive(Debug)]
pub struct Routed {
    pub route: Route,
    /// The route's label in metrics and access lines: its prefix, after its host if it has one
    /// (`chat.example.com/api`): a bounded set, never a raw path.
    pub label: Box<str>,
    /// How many leading path segments go unsent upstream (`strip_prefix`): 0 for most.
    pub strip: usize,
    pub to: Destination,
    /// The route's counters, when metrics are on (see [`RouteTable::count_into`]).
    pub stats: Option<Arc<RouteStats>>,
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
        let mut any = Table::default();
        let mut hosts: Vec<(RouteHost, Table)> = Vec::new();
        for r in routes {
            let segments = segments(&r.prefix).map(str::to_owned).collect::<Vec<_>>();
            let routed = Routed {
                route: r.clone(),
                label: match &r.host {
                    Some(h) => format!("{h}{}", r.prefix).into(),
                    None => r.prefix.as_str().into(),
                },
                strip: if r.strip_prefix { segments.len() } else { 0 },
                to: destination(r)?,
                stats: None,
            };
            let table = match &r.host {
                None => &mut any,
                Some(h) => {
                    let i = hosts.iter().position(|(x, _)| x == h).unwrap_or_else(|| {
                        hosts.push((h.clone(), Table::default()));
                        hosts.len() - 1
                    });
                    &mut hosts[i].1
                }
            };
            table.routes.push((segments, routed));
        }
        for table in std::iter::once(&mut any).chain(hosts.iter_mut().map(|(_, t)| t)) {
            table
                .routes
                .sort_by_key(|(segments, _)| std::cmp::Reverse(segments.len()));
        }
        // Exact names before wildcards; among wildcards the longest suffix (the most
        // specific) first.
        hosts.sort_by_key(|(h, _)| match h {
            RouteHost::Exact(_) => (0, 0),
            RouteHost::Wildcard(suffix) => (1, usize::MAX - suffix.len()),
        });
        Ok(RouteTable { any, hosts })
    }

    /// Whether any route names a host: only then is a request's host read to route it.
    pub fn by_host(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// The routes that serve `host` (a name as `Host` carries it, any case, no port or
    /// trailing dot): its own when it has any, else the routes without `host:`.
    pub fn table(&self, host: Option<&str>) -> &Table {
        host.and_then(|name| self.hosts.iter().find(|(h, _)| h.matches(name)))
            .map_or(&self.any, |(_, t)| t)
    }

    /// The routes without `host:` (all of them when no route names a host).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn any(&self) -> &Table {
        &self.any
    }

    /// Gives every route its counters, keyed by label: a reload that keeps a route keeps
    /// its counts.
    pub fn count_into(&mut self, metrics: &Metrics) {
        let tables = std::iter::once(&mut self.any).chain(self.hosts.iter_mut().map(|(_, t)| t));
        for (_, routed) in tables.flat_map(|t| &mut t.routes) {
            routed.stats = Some(metrics.route(&routed.label));
        }
    }
}

impl Table {
    /// The route whose prefix is the longest whole-segment prefix of `path`, each segment
    /// read without its `;parameters`: the route that forwards the request.
    pub fn find(&self, path: &NormalPath) -> Option<&Routed> {
        self.find_by(|| path.segments().map(without_params))
    }

    /// Other routes (of the same host) whose policy a request must also pass. Where a segment carries a `;`,
    /// backends read the path differently: most take `;` as part of the name, and servlet
    /// containers drop `;parameters` only after a raw `;` (an escaped `%3B` is a letter to
    /// them). Either may put the path under another route than [`RouteTable::find`] does:
    /// `/admin/health;x` is under an open `/admin/health` for one reading and under a
    /// protected `/admin` for another. Every route a reading names must let it through.
    pub fn also_judged<'a>(
        &'a self,
        path: &NormalPath,
        routed: &Routed,
    ) -> [Option<&'a Routed>; 2] {
        if !path.as_str().contains(';') {
            return [None, None];
        }
        let servlet: Vec<String> = path.encoded()[1..]
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(without_params(s))
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let other = |r: Option<&'a Routed>| r.filter(|r| !std::ptr::eq(*r, routed));
        let literal = other(self.find_by(|| path.segments()));
        let servlet = other(self.find_by(|| servlet.iter().map(String::as_str)))
            .filter(|s| !literal.is_some_and(|l| std::ptr::eq(*s, l)));
        [literal, servlet]
    }

    /// The longest route whose prefix the segments (as a reading yields them) start with.
    fn find_by<'s, I: Iterator<Item = &'s str>>(
        &self,
        segments: impl Fn() -> I,
    ) -> Option<&Routed> {
        self.routes
            .iter()
            .find(|(prefix, routed)| {
                let prefix = prefix.iter().map(String::as_str);
                if routed.route.case_insensitive {
                    starts_with_by(segments(), prefix, same_folded)
                } else {
                    starts_with_by(segments(), prefix, |got, want| got == want)
                }
            })
            .map(|(_, routed)| routed)
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Allow, Login, Target};

    fn route(prefix: &str) -> Route {
        Route {
            host: None,
            prefix: prefix.to_owned(),
            target: Target::Files(prefix.into()),
            login: Login::None,
            allow: Allow::default(),
            preserve_host: true,
            any_host: false,
            case_insensitive: false,
            access: Default::default(),
            strip_prefix: false,
            upstream_tls: None,
        }
    }

    fn find<'a>(table: &'a RouteTable, path: &str) -> Option<&'a str> {
        table
            .any()
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
    fn case_insensitive_routes_match_as_such_backends_read_paths() {
        let mut admin = route("/node/admin");
        admin.case_insensitive = true;
        let table = RouteTable::new(&[route("/node"), admin, route("/Été")], |r| {
            Ok(Destination::Files(r.prefix.clone().into()))
        })
        .unwrap();
        for path in [
            "/node/admin/secret",
            "/node/ADMIN/secret",
            "/node/Admin",
            "/node/admin./secret",
            "/node/admin%20/secret",
            "/node/aDmIn.%20./x",
            "/node/ADMIN;x=1/secret",
        ] {
            assert_eq!(find(&table, path), Some("/node/admin"), "{path}");
        }
        for path in [
            "/node/administrator",
            "/node/admi",
            "/node/x/admin",
            "/NODE/x",
        ] {
            assert_ne!(find(&table, path), Some("/node/admin"), "{path}");
        }
        // Routes without the option stay exact.
        assert_eq!(find(&table, "/NODE/x"), None);
        assert_eq!(find(&table, "/%C3%A9t%C3%A9"), None);
    }

    fn find_on(table: &RouteTable, host: &str, path: &str) -> Option<String> {
        table
            .table(Some(host))
            .find(&NormalPath::parse(path).unwrap())
            .map(|r| r.label.to_string())
    }

    #[test]
    fn the_most_specific_host_decides_and_never_falls_through() {
        let on = |host: &str, prefix: &str| {
            let mut r = route(prefix);
            r.host = Some(if let Some(suffix) = host.strip_prefix("*.") {
                RouteHost::Wildcard(suffix.to_owned())
            } else {
                RouteHost::Exact(host.to_owned())
            });
            r
        };
        let routes = [
            route("/"),
            route("/shared"),
            on("*.example.com", "/"),
            on("*.apps.example.com", "/"),
            on("chat.apps.example.com", "/api"),
            on("git.example.com", "/"),
            on("git.example.com", "/admin"),
        ];
        let table =
            RouteTable::new(&routes, |r| Ok(Destination::Files(r.prefix.clone().into()))).unwrap();
        assert!(table.by_host());
        let cases = [
            ("git.example.com", "/admin/x", Some("git.example.com/admin")),
            ("GIT.example.com", "/shared", Some("git.example.com/")),
            (
                "chat.apps.example.com",
                "/api/v1",
                Some("chat.apps.example.com/api"),
            ),
            // chat has routes of its own: neither the wildcard nor the host-less `/` take /x.
            ("chat.apps.example.com", "/x", None),
            ("x.apps.example.com", "/x", Some("*.apps.example.com/")),
            ("apps.example.com", "/x", Some("*.example.com/")),
            ("a.b.example.org", "/shared/y", Some("/shared")),
            ("example.com", "/", Some("/")),
        ];
        for (host, path, want) in cases {
            assert_eq!(find_on(&table, host, path).as_deref(), want, "{host}{path}");
        }
        // Without `host:` anywhere, no host table exists and every host gets the same routes.
        let plain = RouteTable::new(&[route("/")], |r| {
            Ok(Destination::Files(r.prefix.clone().into()))
        })
        .unwrap();
        assert!(!plain.by_host());
        assert_eq!(
            find_on(&plain, "any.example.com", "/x").as_deref(),
            Some("/")
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
}

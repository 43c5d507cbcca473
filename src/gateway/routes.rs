//! The route table: the longest prefix wins, matched on whole path segments.
//!
//! `/chat` matches `/chat` and `/chat/x`, never `/chatx`. A segment's `;parameters` are ignored
//! for matching (`/private;x` is under `/private`), because servlet-style upstreams ignore them
//! too: matching them literally would let `/private;x` skip the policy of `/private`.

use crate::config::Route;

use super::path::NormalPath;

#[derive(Debug)]
pub struct RouteTable {
    /// Routes with their prefix segments, longest first.
    routes: Vec<(Vec<String>, Route)>,
}

impl RouteTable {
    pub fn new(routes: &[Route]) -> Self {
        let mut routes: Vec<_> = routes
            .iter()
            .map(|r| {
                (
                    segments(&r.prefix).map(str::to_owned).collect::<Vec<_>>(),
                    r.clone(),
                )
            })
            .collect();
        routes.sort_by_key(|(segments, _)| std::cmp::Reverse(segments.len()));
        RouteTable { routes }
    }

    /// The route whose prefix is the longest whole-segment prefix of `path`.
    pub fn find(&self, path: &NormalPath) -> Option<&Route> {
        self.routes
            .iter()
            .find(|(prefix, _)| starts_with(path.segments(), prefix.iter().map(String::as_str)))
            .map(|(_, route)| route)
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
            .map(|r| r.prefix.as_str())
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let table = RouteTable::new(&[route("/"), route("/chat"), route("/chat/admin")]);
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
        let table = RouteTable::new(&[route("/chat")]);
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

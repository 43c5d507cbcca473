//! Who may pass: the one access decision for a route (used by proxied requests and by
//! `/_auth/check` alike), the `allow` lists, and where a browser may be sent after login.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use super::session::{Session, Verified};
use crate::config::{Allow, AllowEntry, Login, Route};

/// What a route's `login`, `allow` and `cors_preflight` decide for a request.
#[derive(Debug)]
pub enum Decision {
    /// Go on, with the session's identity if there is one.
    Pass(Option<Arc<Verified>>),
    /// Nobody is logged in and the route needs someone.
    Login,
    /// Logged in, but not someone `allow` lets in.
    Forbidden(Arc<Verified>),
    /// The client address is outside `allow.networks`: no login would help.
    Network,
}

/// What the decision knows of a request besides its route.
#[derive(Debug, Default)]
pub struct Facts {
    /// The request's session (or a verified bearer token), if any.
    pub session: Option<Arc<Verified>>,
    /// The client address (see `client::client_addr`); read only where a judged route has
    /// `allow.networks`.
    pub client: Option<IpAddr>,
    /// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub preflight: bool,
}

/// The access decision for a request forwarded by `route` that must also pass the routes in
/// `also` (see `RouteTable::also_judged`): `route`'s pass, unless any of them refuses.
pub fn decide_all(route: &Route, also: [Option<&Route>; 2], facts: &Facts) -> Decision {
    let decision = decide(route, facts);
    if !matches!(decision, Decision::Pass(_)) {
        return decision;
    }
    for other in also.into_iter().flatten() {
        match decide(other, facts) {
            Decision::Pass(_) => {}
            refused => return refused,
        }
    }
    decision
}

/// The access decision for `route`, in this order: `allow.networks` (AND with everything
/// else, on every route), a CORS preflight on a `cors_preflight: allow` route (passes with no
/// identity), then `login` and the identity lists.
pub fn decide(route: &Route, facts: &Facts) -> Decision {
    let nets = &route.allow.networks;
    if !nets.is_empty()
        && !facts
            .client
            .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
    {
        return Decision::Network;
    }
    if facts.preflight && route.access.cors_preflight {
        return Decision::Pass(None);
    }
    match (route.login, &facts.session) {
        (Login::None, _) => Decision::Pass(None),
        (Login::Optional, session) => Decision::Pass(session.clone()),
        (Login::Required, None) => Decision::Login,
        (Login::Required, Some(v)) if allows(&route.allow, &v.session) => {
            Decision::Pass(Some(v.clone()))
        }
        (Login::Required, Some(v)) => Decision::Forbidden(v.clone()),
    }
}

/// Whether `session` may use a route with this `allow`. The identity lists are ORed; all
/// empty allows any logged-in user (`networks` is judged by [`decide`]). Emails, logins and
/// groups compare case-insensitively (but a letter outside ASCII never matches an ASCII one,
/// see `same_folded`); a domain matches the part of the email after its last
/// `@`, exactly. An entry tied to a provider (`github:alice`) matches only sessions from it;
/// a plain entry matches every provider the gateway offers, so `logins: [alice]` admits
/// whoever holds the name `alice` at any of them.
pub fn allows(allow: &Allow, session: &Session) -> bool {
    if !allow.names_anyone() {
        return true;
    }
    let field = |k: &str| session.user.get(k).and_then(Value::as_str);
    let any = |list: &[AllowEntry], value: Option<&str>| {
        value.is_some_and(|v| list.iter().any(|e| e.admits(&session.provider, v)))
    };
    let email = field("email");
    let domain = email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d);
    any(&allow.emails, email)
        || any(&allow.domains, domain)
        || any(&allow.logins, field("login"))
        || allow.providers.contains(&session.provider)
        || in_groups(&allow.groups, session)
}

/// Whether one of the session's groups is one of `entries` (already lower case), ignoring
/// case without allocating.
fn in_groups(entries: &[AllowEntry], session: &Session) -> bool {
    entries.iter().any(|e| {
        session
            .groups
            .iter()
            .any(|g| e.admits(&session.provider, g))
    })
}

/// Whether a request is a CORS preflight (Fetch standard, "CORS-preflight request"): `OPTIONS`
/// with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &http::Method, headers: &http::HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The longest `next` kept (longer ones fall back to `/`): it travels in the login cookie,
/// and a huge one would let a page push a browser's cookies past what servers accept.
pub const MAX_NEXT: usize = 2048;

/// `next` if it is a same-origin path, else `/`. Refused: anything not starting with exactly
/// one `/` (`//e.com`, `/\e.com`, `https:…`, `javascript:`), backslashes, control characters
/// and spaces (`/\t/e.com`, CR/LF), non-ASCII, the gateway's own endpoints (no loops), and
/// anything longer than [`MAX_NEXT`].
pub fn safe_next(next: &str, auth_prefix: &str) -> String {
    let bytes = next.as_bytes();
    let ok = bytes.len() <= MAX_NEXT
        && bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes
            .iter()
            // No `"`: browsers send it escaped, and JSON would double each one in the sealed
            // login cookie, pushing a 2 KiB `next` past what browsers keep.
            .all(|&b| (0x21..0x7f).contains(&b) && b != b'\\' && b != b'"')
        && !own_endpoint(next.split(['?', '#']).next().unwrap_or(""), auth_prefix);
    if ok {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// Whether `path` is under the gateway's own prefix as written, once normalised as the gateway
/// reads it (`/%5Fauth/…`), or once resolved as a browser resolves a `Location` (RFC 3986
/// §5.2.4 keeps empty segments, so `/../_auth/x/..//../login` is `/_auth/login` to it while
/// the gateway, merging `//` first, reads `/login`).
fn own_endpoint(path: &str, auth_prefix: &str) -> bool {
    let under = |p: &str| {
        crate::path::under(p, auth_prefix)
            || crate::path::NormalPath::parse(p)
                .is_ok_and(|p| crate::path::under(p.as_str(), auth_prefix))
    };
    let browser = url::Url::parse("https://gateway.invalid/")
        .and_then(|base| base.join(path))
        .map(|u| u.path().to_owned());
    under(path) || browser.is_ok_and(|p| under(&p))
}

/// The normalised path and original query: where to come back to after logging in.
pub(super) fn target_of(
    req: &http::Request<crate::body::RequestBody>,
    path: &crate::path::NormalPath,
) -> String {
    match req.uri().query() {
        Some(q) => format!("{}?{q}", path.encoded()),
        None => path.encoded().to_owned(),
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn session(email: &str, login: &str, provider: &str) -> Session {
        let mut user = Map::new();
        user.insert("email".into(), email.into());
        user.insert("login".into(), login.into());
        Session {
            sub: format!("{provider}:1"),
            provider: provider.into(),
            user,
            groups: Vec::new(),
            exp: u64::MAX,
            seen: 0,
            host: None,
        }
    }

    fn allow(emails: &[&str], domains: &[&str], logins: &[&str], providers: &[&str]) -> Allow {
        with_groups(emails, domains, logins, providers, &[])
    }

    fn with_groups(
        emails: &[&str],
        domains: &[&str],
        logins: &[&str],
        providers: &[&str],
        groups: &[&str],
    ) -> Allow {
        let v = |x: &[&str]| {
            x.iter()
                .map(|s| match s.split_once(':') {
                    Some((p, v)) => AllowEntry {
                        provider: Some(p.into()),
                        value: v.into(),
                    },
                    None => AllowEntry {
                        provider: None,
                        value: s.to_string(),
                    },
                })
                .collect()
        };
        Allow {
            emails: v(emails),
            domains: v(domains),
            logins: v(logins),
            providers: providers.iter().map(|s| s.to_string()).collect(),
            groups: v(groups),
            networks: Vec::new(),
        }
    }

    #[test]
    fn groups_match_ignoring_case_and_tied_to_their_provider() {
        let mut alice = session("alice@example.com", "alice", "github");
        alice.groups = vec!["Acme".into(), "acme/ops".into()];
        let g = |gs: &[&str]| with_groups(&[], &[], &[], &[], gs);
        assert!(allows(&g(&["acme"]), &alice));
        assert!(allows(&g(&["acme/ops"]), &alice));
        assert!(allows(&g(&["github:acme"]), &alice));
        assert!(!allows(&g(&["gitlab:acme"]), &alice));
        assert!(!allows(&g(&["acme/dev", "acm", "acme/"]), &alice));
        // ORed with the other lists.
        assert!(allows(
            &with_groups(&[], &[], &["bob"], &[], &["acme"]),
            &alice
        ));
        alice.groups.clear();
        assert!(!allows(&g(&["acme"]), &alice));
    }

    #[test]
    fn allow_lists_are_ored_and_exact() {
        let alice = session("Alice@Example.com", "alice", "github");
        assert!(allows(&Allow::default(), &alice));
        assert!(allows(
            &allow(&["alice@example.com"], &[], &[], &[]),
            &alice
        ));
        assert!(allows(&allow(&[], &["example.com"], &[], &[]), &alice));
        assert!(allows(&allow(&[], &[], &["alice"], &[]), &alice));
        assert!(allows(&allow(&[], &[], &[], &["github"]), &alice));
        assert!(allows(
            &allow(&["bob@x.org"], &["example.com"], &[], &[]),
            &alice
        ));
        assert!(!allows(
            &allow(&["bob@x.org"], &["x.org"], &["bob"], &["google"]),
            &alice
        ));
        // Domains are exact: no suffix or look-alike matches.
        let sneaky = session("mallory@evilexample.com", "m", "github");
        assert!(!allows(&allow(&[], &["example.com"], &[], &[]), &sneaky));
        let sub = session("mallory@sub.example.com", "m", "github");
        assert!(!allows(&allow(&[], &["example.com"], &[], &[]), &sub));
        let at = session("mallory@example.com@evil.com", "m", "github");
        assert!(!allows(&allow(&[], &["example.com"], &[], &[]), &at));
    }

    #[test]
    fn entries_tied_to_a_provider_match_only_its_sessions() {
        let gh = session("alice@example.com", "alice", "github");
        let other = session("alice@example.com", "alice", "gitlab");
        let tied = allow(
            &["github:alice@example.com"],
            &["github:example.com"],
            &["github:alice"],
            &[],
        );
        assert!(allows(&tied, &gh));
        assert!(!allows(&tied, &other));
        for one in [
            allow(&["github:alice@example.com"], &[], &[], &[]),
            allow(&[], &["github:example.com"], &[], &[]),
            allow(&[], &[], &["github:alice"], &[]),
        ] {
            assert!(allows(&one, &gh) && !allows(&one, &other), "{one:?}");
        }
        // Plain entries match the value from any provider.
        assert!(allows(&allow(&[], &[], &["alice"], &[]), &other));
    }

    #[test]
    fn next_is_a_same_origin_path_or_root() {
        let longest = format!("/{}", "a".repeat(MAX_NEXT - 1));
        for good in [
            "/",
            "/chat",
            "/chat/room?x=1&y=/z",
            "/a%2Fb",
            "/%09/e.com",
            &longest,
        ] {
            assert_eq!(safe_next(good, "/_auth"), good, "{good}");
        }
        for bad in [
            "//e.com",
            "/\\e.com",
            "\\/e.com",
            "/\t/e.com",
            "%2F%2Fe.com",
            "https:e.com",
            "https://ok@e.com",
            "https://ok.e.com",
            "javascript:alert(1)",
            "data:text/html,x",
            "/x\r\nLocation: https://e.com",
            "/x\nSet-Cookie: a=b",
            "",
            "e.com",
            "/café",
            "/_auth/logout",
            "/_auth/login?next=//e.com",
            // Found by `fuzz/fuzz_targets/next.rs`: the gateway's own endpoints, spelled so
            // that only normalisation shows it.
            "/%5Fauth/logout",
            "/x/../_auth/login?next=/",
            "/%2e%2e/_auth/userinfo",
            "//_auth/login",
            "/./_auth",
            "/../_auth/x/..//../login",
            "/%2e/_auth",
            "/./_auth/logout",
            "/ x",
            "/x\"y",
            &format!("/{}", "a".repeat(MAX_NEXT)),
        ] {
            assert_eq!(safe_next(bad, "/_auth"), "/", "{bad:?}");
        }
    }
}

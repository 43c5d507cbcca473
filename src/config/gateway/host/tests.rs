//! Unit tests of `gateway.routes[].host` and of the host lists certificates are made for.

use super::super::super::Config;
use super::*;

fn config(public_url: &str, routes: &str) -> Result<Config, ConfigError> {
    Config::parse(
        &format!(
            "listen: 127.0.0.1:0\npublic_url: {public_url}\ntls: {{self_signed: true}}\n\
             gateway:\n  routes:\n{routes}"
        ),
        &|_| None,
    )
}

fn host(text: &str) -> Result<RouteHost, String> {
    route_host(text, "gateway.routes[0].host").map_err(|e| e.to_string())
}

#[test]
fn names_are_kept_in_ascii_lower_case_without_the_trailing_dot() {
    let exact = |s: &str| Ok(RouteHost::Exact(s.to_owned()));
    assert_eq!(host("Chat.Example.COM"), exact("chat.example.com"));
    assert_eq!(host("chat.example.com."), exact("chat.example.com"));
    assert_eq!(host("localhost"), exact("localhost"));
    assert_eq!(host("bücher.example"), exact("xn--bcher-kva.example"));
    assert_eq!(
        host("xn--bcher-kva.example"),
        exact("xn--bcher-kva.example")
    );
    assert_eq!(
        host("*.Apps.Example.com"),
        Ok(RouteHost::Wildcard("apps.example.com".to_owned()))
    );
}

#[test]
fn bad_hosts_are_refused_naming_the_key_path() {
    for bad in [
        "",
        ".",
        "chat.example.com:8443",
        "https://chat.example.com",
        "chat.example.com/app",
        "[::1]",
        "10.0.0.1",
        "*",
        "*.",
        "*.com",
        "a.*.example.com",
        "*.*.example.com",
        "x*.example.com",
        "chat..example.com",
        "-chat.example.com",
        "chat_1.example.com",
        "chat example.com",
        "chat.example.com\n",
        &format!("{}.com", "a".repeat(64)),
    ] {
        let e = host(bad).expect_err(bad);
        assert!(e.starts_with("gateway.routes[0].host: `"), "{bad:?}: {e}");
    }
}

#[test]
fn a_wildcard_matches_exactly_one_more_label() {
    let w = host("*.example.com").unwrap();
    assert!(w.matches("a.example.com"));
    assert!(w.matches("xn--bcher-kva.example.com"));
    assert!(w.matches("A.Example.COM") && !w.matches("é.example.com.x"));
    for no in [
        "example.com",
        "a.b.example.com",
        ".example.com",
        "aexample.com",
        "a.example.org",
    ] {
        assert!(!w.matches(no), "{no}");
    }
    let e = host("chat.example.com").unwrap();
    assert!(e.matches("chat.example.com"));
    assert!(!e.matches("a.chat.example.com") && !e.matches("chat.example.co"));
    assert_eq!(w.to_string(), "*.example.com");
}

#[test]
fn routes_parse_their_host_and_one_prefix_may_repeat_on_other_hosts() {
    let c = config(
        "https://auth.example.com",
        "    - {host: chat.example.com, prefix: /, upstream: \"http://127.0.0.1:1\"}\n\
         \x20   - {host: git.example.com, prefix: /, upstream: \"http://127.0.0.1:2\"}\n\
         \x20   - {prefix: /, upstream: \"http://127.0.0.1:3\"}\n",
    )
    .unwrap();
    let routes = &c.gateway.as_ref().unwrap().routes;
    assert_eq!(
        routes[0].host,
        Some(RouteHost::Exact("chat.example.com".into()))
    );
    assert_eq!(routes[2].host, None);

    let e = config(
        "https://auth.example.com",
        "    - {host: chat.example.com, prefix: /a, upstream: \"http://127.0.0.1:1\"}\n\
         \x20   - {host: CHAT.example.com, prefix: /a/, upstream: \"http://127.0.0.1:2\"}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("gateway.routes[1].prefix: `/a` on chat.example.com is already used by gateway.routes[0]"),
        "{e}"
    );
    let e = config(
        "https://auth.example.com",
        "    - {host: \"chat.example.com:443\", prefix: /, upstream: \"http://127.0.0.1:1\"}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("gateway.routes[0].host:"), "{e}");
}

#[test]
fn hosts_list_the_public_host_then_each_exact_route_host_once() {
    let c = config(
        "https://Auth.Example.com:8443",
        "    - {host: chat.example.com, prefix: /, upstream: \"http://127.0.0.1:1\"}\n\
         \x20   - {host: \"*.apps.example.com\", prefix: /, upstream: \"http://127.0.0.1:2\"}\n\
         \x20   - {host: chat.example.com, prefix: /x, upstream: \"http://127.0.0.1:3\"}\n\
         \x20   - {host: auth.example.com, prefix: /, upstream: \"http://127.0.0.1:4\"}\n\
         \x20   - {host: git.example.com, prefix: /, upstream: \"http://127.0.0.1:5\"}\n\
         \x20   - {prefix: /, upstream: \"http://127.0.0.1:6\"}\n",
    )
    .unwrap();
    assert_eq!(
        c.hosts(),
        ["auth.example.com", "chat.example.com", "git.example.com"]
    );
    assert_eq!(c.wildcard_hosts(), ["*.apps.example.com"]);

    // An IP address in public_url needs no certificate by name; without gateway, no routes.
    let c = config(
        "https://127.0.0.1:8443",
        "    - {prefix: /, upstream: \"http://127.0.0.1:6\"}\n",
    )
    .unwrap();
    assert!(c.hosts().is_empty() && c.wildcard_hosts().is_empty());
}

#[test]
fn a_central_in_process_registers_every_exact_hosts_callback() {
    let c = Config::parse(
        "listen: 127.0.0.1:8443\npublic_url: https://localhost:8443\ntls: {self_signed: true}\n\
         central:\n  providers:\n    dev: {kind: dev}\n\
         gateway:\n  routes:\n\
         \x20   - {host: chat.localhost, prefix: /, upstream: \"http://127.0.0.1:1\"}\n\
         \x20   - {host: \"*.apps.localhost\", prefix: /, upstream: \"http://127.0.0.1:2\"}\n",
        &|_| None,
    )
    .unwrap();
    let clients: Vec<&str> = c
        .central
        .as_ref()
        .unwrap()
        .clients
        .iter()
        .map(|c| c.redirect_url.as_str())
        .collect();
    // Wildcard names cannot be known in advance: the central accepts exact URLs only.
    assert_eq!(
        clients,
        [
            "https://localhost:8443/_auth/callback",
            "https://chat.localhost:8443/_auth/callback"
        ]
    );
}

#[test]
fn tls_hsts_is_a_duration_and_zero_takes_it_back() {
    let with = |hsts: &str| {
        Config::parse(
            &format!(
                "listen: 127.0.0.1:0\npublic_url: https://localhost\n\
                 tls: {{self_signed: true, hsts: \"{hsts}\"}}\n\
                 gateway:\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:1\"}}\n"
            ),
            &|_| None,
        )
        .map(|c| c.tls.hsts)
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        with("365d"),
        Ok(Some(std::time::Duration::from_secs(31_536_000)))
    );
    assert_eq!(with("0s"), Ok(Some(std::time::Duration::ZERO)));
    assert!(with("soon").unwrap_err().starts_with("tls.hsts:"));
    let none = config(
        "https://localhost",
        "    - {prefix: /, upstream: \"http://127.0.0.1:1\"}\n",
    );
    assert_eq!(none.unwrap().tls.hsts, None);
}

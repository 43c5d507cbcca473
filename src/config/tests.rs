//! Unit tests of config validation: every error names its key path.

use super::*;

const BASE: &str =
    "listen: 127.0.0.1:0\npublic_url: https://localhost:8443\ntls: {self_signed: true}\n";

fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("{BASE}{extra}"), &|name| {
        (name == "UPSTREAM").then(|| "http://127.0.0.1:9".to_owned())
    })
}

fn err(extra: &str) -> String {
    parse(extra).unwrap_err().to_string()
}

#[test]
fn a_minimal_gateway_is_valid_with_defaults() {
    let c =
        parse("gateway:\n  routes:\n    - {prefix: /chat/, upstream: \"${UPSTREAM}\"}\n").unwrap();
    assert_eq!(c.listen.port(), 0);
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.auth_prefix, "/_auth");
    assert_eq!(g.routes[0].prefix, "/chat");
    assert!(g.routes[0].preserve_host);
    assert_eq!(c.tls.source, TlsSource::SelfSigned);
    assert!(
        matches!(&g.routes[0].target, Target::Http { authority, .. } if authority == "127.0.0.1:9")
    );
}

#[test]
fn errors_name_the_key_path() {
    let cases = [
        ("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n    - {prefix: /x, upstream: \"ftp://a\"}\n", "gateway.routes[1].upstream:"),
        ("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\", colour: red}\n", "gateway.routes[0].colour: unknown field"),
        ("gateway:\n  routes:\n    - {prefix: x, upstream: \"http://a\"}\n", "gateway.routes[0].prefix:"),
        ("gateway:\n  routes:\n    - {prefix: /a/../b, upstream: \"http://a\"}\n", "gateway.routes[0].prefix:"),
        ("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a/path\"}\n", "gateway.routes[0].upstream:"),
        ("gateway:\n  routes:\n    - {prefix: /_auth/x, upstream: \"http://a\"}\n", "gateway.routes[0].prefix:"),
        ("gateway:\n  routes:\n    - {prefix: /a, upstream: \"http://a\"}\n    - {prefix: /a/, upstream: \"http://b\"}\n", "gateway.routes[1].prefix:"),
        ("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\", login: maybe}\n", "gateway.routes[0].login:"),
        ("gateway:\n  routes:\n    - {prefix: /, upstream: \"${NOT_SET_ANYWHERE}\"}\n", "gateway.routes[0].upstream: environment variable NOT_SET_ANYWHERE"),
        ("gateway:\n  upstream: {connect_timeout: soon}\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n", "gateway.upstream.connect_timeout:"),
        ("gateway:\n  routes: []\n", "gateway.routes:"),
        ("central: {}\ngateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n", "central:"),
        ("", "config:"),
    ];
    for (extra, want) in cases {
        let got = err(extra);
        assert!(
            got.starts_with(want),
            "{extra}\n  got:  {got}\n  want: {want}…"
        );
    }
}

/// Found by `fuzz/fuzz_targets/config.rs` (input `?\n>\n`): an empty key at the top printed
/// ": unknown field ``", an error naming no key path.
#[test]
fn an_empty_top_level_key_is_named_as_the_document() {
    for doc in ["\"\": 1\n", "?\n>\n"] {
        let got = err(doc);
        assert!(
            got.starts_with("config: unknown field ``"),
            "{doc:?}: {got}"
        );
    }
}

#[test]
fn top_level_errors_name_their_key() {
    let e = Config::parse(
        "listen: nowhere\npublic_url: https://a\ntls: {self_signed: true}\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("listen:"), "{e}");
    let e = Config::parse(
        "listen: 127.0.0.1:1\npublic_url: http://a\ntls: {self_signed: true}\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("public_url:"), "{e}");
    let e = Config::parse(
        "listen: 127.0.0.1:1\npublic_url: https://a\ntls: {cert: a.pem}\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("tls.key:"), "{e}");
    let e = Config::parse("listen: [\n", &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("not valid YAML"), "{e}");
}

#[test]
fn login_needs_somewhere_to_log_in() {
    let e =
        err("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\", login: required}\n");
    assert!(e.starts_with("gateway.routes[0].login:"), "{e}");
}

const CENTRAL: &str = "central:\n  providers:\n    dev: {kind: dev}\n";

fn routes(lines: &str) -> String {
    format!("gateway:\n  routes:\n{lines}")
}

#[test]
fn routes_require_login_by_default_when_logins_exist() {
    let c = parse(&format!(
        "{CENTRAL}{}",
        routes("    - {prefix: /, upstream: \"http://a\"}\n    - {prefix: /pub, upstream: \"http://a\", login: none}\n")
    ))
    .unwrap();
    let g = c.gateway.unwrap();
    assert_eq!(g.routes[0].login, Login::Required);
    assert_eq!(g.routes[1].login, Login::None);
    // Without any login source, the default is none.
    let c = parse(&routes("    - {prefix: /, upstream: \"http://a\"}\n")).unwrap();
    assert_eq!(c.gateway.unwrap().routes[0].login, Login::None);
}

#[test]
fn a_gateway_with_a_central_in_process_is_its_client() {
    let c = parse(&format!(
        "{CENTRAL}{}",
        routes("    - {prefix: /, upstream: \"http://a\"}\n")
    ))
    .unwrap();
    let g = c.gateway.unwrap();
    assert_eq!(g.callback_url, "https://localhost:8443/_auth/callback");
    let login = g.login.unwrap();
    assert_eq!(login.url, "https://localhost:8443/oauth");
    assert_eq!(login.providers, ["dev"]);
    assert!(c
        .central
        .unwrap()
        .clients
        .iter()
        .any(|cl| cl.redirect_url == g.callback_url));
}

#[test]
fn oauth_proxy_errors_name_their_keys() {
    let key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    let root = "  routes:\n    - {prefix: /, upstream: \"http://a\"}\n";
    let cases = [
        (format!("gateway:\n  oauth_proxy: {{url: \"https://auth.example/oauth\", providers: [github]}}\n{root}"), "gateway.oauth_proxy.verify_key:"),
        (format!("gateway:\n  oauth_proxy: {{url: \"https://auth.example/oauth\", verify_key: [{key}, nothex], providers: [github]}}\n{root}"), "gateway.oauth_proxy.verify_key[1]:"),
        (format!("gateway:\n  oauth_proxy: {{url: \"https://auth.example/oauth\", verify_key: {key}}}\n{root}"), "gateway.oauth_proxy.providers:"),
        (format!("gateway:\n  oauth_proxy: {{verify_key: {key}}}\n{root}"), "gateway.oauth_proxy.url:"),
        (format!("{CENTRAL}gateway:\n  oauth_proxy: {{providers: [github]}}\n{root}"), "gateway.oauth_proxy.providers[0]:"),
        (format!("{CENTRAL}gateway:\n  session: {{secret: short}}\n{root}"), "gateway.session.secret:"),
        (format!("{CENTRAL}{}", routes("    - {prefix: /, upstream: \"http://a\", login: optional, allow: {emails: [a@b]}}\n")), "gateway.routes[0].allow:"),
        (format!("{CENTRAL}{}", routes("    - {prefix: /oauth/x, upstream: \"http://a\"}\n")), "gateway.routes[0].prefix:"),
    ];
    for (extra, want) in cases {
        let got = err(&extra);
        assert!(
            got.starts_with(want),
            "{extra}\n  got:  {got}\n  want: {want}…"
        );
    }
    let ok = parse(&format!(
        "gateway:\n  oauth_proxy: {{url: \"https://auth.example/oauth/\", verify_key: {key}, providers: [github]}}\n{}",
        "  routes:\n    - {prefix: /, upstream: \"http://a\", allow: {domains: [\"@Example.COM\"]}}\n"
    ))
    .unwrap();
    let g = ok.gateway.unwrap();
    assert_eq!(g.login.unwrap().url, "https://auth.example/oauth");
    assert_eq!(
        g.routes[0].allow.domains,
        [AllowEntry {
            provider: None,
            value: "example.com".into()
        }]
    );
    // `<provider>:<value>` ties an entry to one offered provider; another prefix is an error.
    let ok = parse(&format!(
        "gateway:\n  oauth_proxy: {{url: \"https://auth.example/oauth/\", verify_key: {key}, providers: [github, google]}}\n{}",
        "  routes:\n    - {prefix: /, upstream: \"http://a\", allow: {logins: [\"github:Alice\"], domains: [\"google:@Example.com\"]}}\n"
    ))
    .unwrap();
    let allow = &ok.gateway.unwrap().routes[0].allow;
    assert_eq!(
        allow.logins,
        [AllowEntry {
            provider: Some("github".into()),
            value: "alice".into()
        }]
    );
    assert_eq!(allow.domains[0].value, "example.com");
    let e = err(&format!(
        "gateway:\n  oauth_proxy: {{url: \"https://auth.example/oauth/\", verify_key: {key}, providers: [github]}}\n{}",
        "  routes:\n    - {prefix: /, upstream: \"http://a\", allow: {emails: [\"gitlab:a@b.c\"]}}\n"
    ));
    assert!(e.starts_with("gateway.routes[0].allow.emails[0]:"), "{e}");
}

#[test]
fn limits_default_and_parse() {
    let route = routes("    - {prefix: /, upstream: \"http://a\"}\n");
    let l = parse(&route).unwrap().limits;
    assert_eq!(l.max_connections, 10_000);
    assert_eq!(l.max_connections_per_ip, 1_000);
    assert_eq!(l.idle_timeout, Duration::from_secs(180));
    assert_eq!(l.tunnel_idle_timeout, Duration::from_secs(3600));
    let l = parse(&format!(
        "limits: {{max_connections: 15, idle_timeout: 2s, tunnel_idle_timeout: 1m}}\n{route}"
    ))
    .unwrap()
    .limits;
    // The per-address default follows max_connections, rounded up.
    assert_eq!(l.max_connections_per_ip, 2);
    assert_eq!(l.idle_timeout, Duration::from_secs(2));
    assert_eq!(l.tunnel_idle_timeout, Duration::from_secs(60));
    let l = parse(&format!("limits: {{max_connections_per_ip: 0}}\n{route}"))
        .unwrap()
        .limits;
    assert_eq!(l.max_connections_per_ip, 0, "0 turns the cap off");
    for (extra, want) in [
        ("limits: {idle_timeout: 0s}\n", "limits.idle_timeout:"),
        (
            "limits: {tunnel_idle_timeout: soon}\n",
            "limits.tunnel_idle_timeout:",
        ),
        (
            "limits: {max_connections_per_ip: -1}\n",
            "limits.max_connections_per_ip:",
        ),
    ] {
        let got = err(&format!("{extra}{route}"));
        assert!(
            got.starts_with(want),
            "{extra}\n  got:  {got}\n  want: {want}…"
        );
    }
}

/// Issue 20 item 11: `${VAR}` works in any value, numbers and booleans included, and errors
/// keep their key path.
#[test]
fn a_variable_may_fill_a_number_or_a_boolean() {
    let lookup = |n: &str| match n {
        "MAXCONN" => Some("500".to_owned()),
        "SELF" => Some("true".to_owned()),
        "WORD" => Some("many".to_owned()),
        "CLIENT" => Some("1234567890".to_owned()),
        _ => None,
    };
    let text = "listen: 127.0.0.1:0\npublic_url: https://localhost\ntls:\n  self_signed: ${SELF}\n\
                limits:\n  max_connections: ${MAXCONN}\n\
                central:\n  providers:\n    github:\n      client_id: ${CLIENT}\n      client_secret: ${CLIENT}\n";
    let c = Config::parse(text, &lookup).unwrap();
    assert_eq!(c.limits.max_connections, 500);
    assert_eq!(c.tls.source, TlsSource::SelfSigned);
    // A string field keeps the digits as text.
    assert_eq!(c.central.unwrap().providers[0].client_id, "1234567890");
    let bad = text.replace("${MAXCONN}", "${WORD}");
    let err = Config::parse(&bad, &lookup).unwrap_err().to_string();
    assert!(
        err.starts_with("limits.max_connections: invalid type"),
        "{err}"
    );
}

#[test]
fn a_bare_dollar_name_warns_outside_secrets() {
    let c = parse(
        "gateway:\n  title: $HOSTNAME\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n",
    )
    .unwrap();
    assert_eq!(c.gateway.unwrap().title, "$HOSTNAME");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].starts_with("gateway.title: `$HOSTNAME`"));
    let e = err("gateway:\n  session: {secret: $SESSION_SECRET}\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n");
    assert!(
        e.starts_with("gateway.session.secret: the value is a `$NAME` without braces"),
        "{e}"
    );
}

/// Issue 19 items 7, 9 and 10: the cookie name, the port warning, the messages.
#[test]
fn first_run_mistakes_get_messages_that_say_the_fix() {
    let route =
        |up: &str| format!("gateway:\n  routes:\n    - {{prefix: /, upstream: \"{up}\"}}\n");
    let e = err(&route("127.0.0.1:8080"));
    assert_eq!(
        e,
        "gateway.routes[0].upstream: `127.0.0.1:8080` has no scheme: write http://127.0.0.1:8080 (or https://)"
    );
    let e = err(&route("file:/srv/www"));
    assert!(
        e.starts_with(
            "gateway.routes[0].upstream: `file:/srv/www`: write a folder as file:// and its path"
        ),
        "{e}"
    );
    assert!(!e.contains("is not one of"), "{e}");
    let e = err("central:\n  providers:\n    github:\n    client_id: x\n");
    assert!(
        e.starts_with(
            "central.providers.client_id: invalid type: string \"x\", expected a mapping"
        ),
        "{e}"
    );
    assert!(
        e.ends_with("(keys indented below `client_id`: is the indentation right?)"),
        "{e}"
    );
    let e =
        err("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\", preserve_host: [1]}\n");
    assert_eq!(
        e,
        "gateway.routes[0].preserve_host: expected true, false or any"
    );
    assert!(!e.contains("Raw"), "{e}");
    // BASE listens on port 0: no warning; a loopback public_url on another port: a warning.
    let ok = parse(&route("http://a")).unwrap();
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
    let text = format!("listen: 127.0.0.1:9443\npublic_url: https://localhost:8443\ntls: {{self_signed: true}}\n{}", route("http://a"));
    let c = Config::parse(&text, &|_| None).unwrap();
    assert!(
        c.warnings[0].starts_with(
            "public_url: `https://localhost:8443/` names port 8443, but listen is port 9443"
        ),
        "{:?}",
        c.warnings
    );
    let remote = text.replace("localhost:8443", "app.example.com");
    assert!(Config::parse(&remote, &|_| None)
        .unwrap()
        .warnings
        .is_empty());
}

#[test]
fn the_session_cookie_name_keeps_its_prefix() {
    let with = |name: &str| {
        format!("gateway:\n  session: {{cookie_name: \"{name}\"}}\n  routes:\n    - {{prefix: /, upstream: \"http://a\"}}\n")
    };
    let c = parse("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n").unwrap();
    assert_eq!(
        c.gateway.unwrap().session_cookie,
        "__Host-oauthgate-session"
    );
    let c = parse(&with("__Host-oauthgate-session-8444")).unwrap();
    assert_eq!(
        c.gateway.unwrap().session_cookie,
        "__Host-oauthgate-session-8444"
    );
    for bad in [
        "session2",
        "__Host-other",
        "__Host-oauthgate-",
        "__Host-oauthgate-a;b",
        "__Host-oauthgate-login-x",
    ] {
        let e = err(&with(bad));
        assert!(e.starts_with("gateway.session.cookie_name: "), "{bad}: {e}");
    }
}

#[test]
fn metrics_are_optional_and_their_address_is_checked() {
    let routes = "gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n";
    assert_eq!(parse(routes).unwrap().metrics, None);
    let on = parse(&format!(
        "metrics: {{listen: \"127.0.0.1:9464\"}}\n{routes}"
    ))
    .unwrap();
    assert_eq!(
        on.metrics.map(|m| m.listen),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let e = err(&format!("metrics: {{listen: \"localhost\"}}\n{routes}"));
    assert!(
        e.starts_with("metrics.listen: `localhost` is not an address"),
        "{e}"
    );
    let e = err(&format!("metrics: {{}}\n{routes}"));
    assert!(e.contains("metrics") && e.contains("listen"), "{e}");
    let e = err(&format!(
        "metrics: {{listen: \"127.0.0.1:9464\", path: /m}}\n{routes}"
    ));
    assert!(e.starts_with("metrics.path: unknown field"), "{e}");
}
#[test]
fn route_access_keys_and_networks_on_routes_without_login() {
    let g = parse(
        "gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\", login: optional, methods: [GET], cors_preflight: allow, bearer: true, allow: {networks: [10.0.0.0/8]}}\n",
    )
    .unwrap()
    .gateway
    .unwrap();
    let r = &g.routes[0];
    assert!(r.access.cors_preflight && r.access.bearer);
    assert_eq!(r.access.methods.as_ref().unwrap().allow_header, "GET, HEAD");
    assert_eq!(r.allow.networks.len(), 1);
    for (yaml, key) in [
        (
            "login: none, allow: {groups: [ops]}",
            "gateway.routes[0].allow:",
        ),
        (
            "login: none, allow: {networks: [10.0.0.0/8], emails: [a@b.c]}",
            "gateway.routes[0].allow:",
        ),
        (
            "login: none, allow: {networks: [nope]}",
            "gateway.routes[0].allow.networks[0]:",
        ),
        (
            "login: none, methods: [get]",
            "gateway.routes[0].methods[0]:",
        ),
        (
            "login: none, cors_preflight: yes",
            "gateway.routes[0].cors_preflight:",
        ),
    ] {
        let e = err(&format!(
            "gateway:\n  routes:\n    - {{prefix: /, upstream: \"http://a\", {yaml}}}\n"
        ));
        assert!(e.contains(key), "{yaml}: {e}");
    }
}

#[test]
fn trusted_proxies_are_kept_canonical() {
    let c = parse(
        "gateway:\n  trusted_proxies: [\"::ffff:10.0.0.2\", \"::1\"]\n  routes:\n    - {prefix: /, upstream: \"http://127.0.0.1:9\"}\n",
    )
    .unwrap();
    let want: Vec<std::net::IpAddr> = vec!["10.0.0.2".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(c.gateway.unwrap().trusted_proxies, want);
}

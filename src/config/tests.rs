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
fn login_other_than_none_fails_closed_until_supported() {
    let e =
        err("gateway:\n  routes:\n    - {prefix: /, upstream: \"http://a\", login: required}\n");
    assert!(e.starts_with("gateway.routes[0].login:"), "{e}");
}

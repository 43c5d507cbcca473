//! Unit tests of the `central:` section's enums: each spelling the file may use, and errors
//! that name the key path and every allowed value.

use crate::config::{ClientAuth, Config, ConfigError, Protocol, ProviderKind};

const BASE: &str =
    "listen: 127.0.0.1:0\npublic_url: https://localhost:8443\ntls: {self_signed: true}\n";

fn parse(central: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("{BASE}central:\n{central}"), &|_| None)
}

fn provider(fields: &str) -> String {
    format!(
        "  providers:\n    corp: {{client_id: a, client_secret: b, issuer: https://corp.example, \
         authorize_url: https://corp.example/a, access_token_url: https://corp.example/t, \
         user_info_url: https://corp.example/u, {fields}}}\n"
    )
}

#[test]
fn kinds_client_auth_and_protocols_parse_as_written() {
    for (kind, want) in [
        ("github", ProviderKind::GitHub),
        ("facebook", ProviderKind::Facebook),
        ("oauth2", ProviderKind::OAuth2),
        ("oidc", ProviderKind::Oidc),
        ("google", ProviderKind::Oidc),
        ("dev", ProviderKind::Dev),
    ] {
        let c = parse(&provider(&format!("kind: {kind}"))).unwrap();
        assert_eq!(c.central.unwrap().providers[0].kind, want, "{kind}");
    }
    for (auth, want) in [("basic", ClientAuth::Basic), ("body", ClientAuth::Body)] {
        let c = parse(&provider(&format!("kind: oauth2, client_auth: {auth}"))).unwrap();
        assert_eq!(c.central.unwrap().providers[0].client_auth, want, "{auth}");
    }
    let clients = "  clients:\n    - {redirect_url: \"https://a.example/cb\"}\n    - {redirect_url: \"https://b.example/cb\", protocol: jumpscale}\n    - {redirect_url: \"https://c.example/cb\", protocol: assertion}\n";
    let c = parse(&format!("{}{clients}", provider("kind: oauth2"))).unwrap();
    let protocols: Vec<Protocol> = c
        .central
        .unwrap()
        .clients
        .iter()
        .map(|c| c.protocol)
        .collect();
    assert_eq!(
        protocols,
        [
            Protocol::Assertion,
            Protocol::Jumpscale,
            Protocol::Assertion
        ]
    );
}

#[test]
fn an_unknown_value_names_its_key_and_the_allowed_ones() {
    let cases = [
        (
            provider("kind: gitlab"),
            "central.providers.corp.kind:",
            &["`gitlab`", "github", "facebook", "oauth2", "oidc", "dev"][..],
        ),
        (
            provider("kind: GitHub"),
            "central.providers.corp.kind:",
            &["`GitHub`", "github"][..],
        ),
        (
            provider("kind: oauth2, client_auth: post"),
            "central.providers.corp.client_auth:",
            &["`post`", "basic", "body"][..],
        ),
        (
            format!(
                "{}  clients:\n    - {{redirect_url: \"https://a.example/cb\", protocol: jwt}}\n",
                provider("kind: oauth2")
            ),
            "central.clients[0].protocol:",
            &["`jwt`", "assertion", "jumpscale"][..],
        ),
    ];
    for (central, path, words) in cases {
        let e = parse(&central).unwrap_err().to_string();
        assert!(
            e.starts_with(path),
            "{central}\n  got: {e}\n  want: {path}…"
        );
        for word in words {
            assert!(e.contains(word), "{central}\n  got: {e}\n  missing: {word}");
        }
    }
}

#[test]
fn a_name_that_is_no_preset_needs_a_kind() {
    let e = parse("  providers:\n    corp: {client_id: a, client_secret: b}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("central.providers.corp.kind:") && e.contains("oauth2, oidc or dev"),
        "{e}"
    );
}

#[test]
fn groups_only_where_the_provider_has_them() {
    use crate::config::GroupsClaim;
    let gh = parse(&provider("kind: github, groups: true")).unwrap();
    let gh = &gh.central.unwrap().providers[0];
    assert!(gh.groups && gh.scopes.iter().any(|s| s == "read:org"));
    for (claim, want) in [
        ("groups", GroupsClaim::Name("groups".into())),
        (
            "/realm_access/roles",
            GroupsClaim::Pointer("/realm_access/roles".into()),
        ),
    ] {
        let c = parse(&provider(&format!("kind: oidc, groups_claim: \"{claim}\""))).unwrap();
        assert_eq!(c.central.unwrap().providers[0].groups_claim, Some(want));
    }
    for (fields, key) in [
        ("kind: oidc, groups: true", "central.providers.corp.groups"),
        (
            "kind: oauth2, groups: false",
            "central.providers.corp.groups",
        ),
        (
            "kind: github, groups_claim: g",
            "central.providers.corp.groups_claim",
        ),
        (
            "kind: oidc, groups_claim: \"\"",
            "central.providers.corp.groups_claim",
        ),
        (
            "kind: oidc, groups_claim: /",
            "central.providers.corp.groups_claim",
        ),
    ] {
        let e = parse(&provider(fields)).unwrap_err().to_string();
        assert!(e.contains(key), "{fields}: {e}");
    }
}

//! Findings of the session-5 security review, each a test that failed on the code before its
//! fix: what an attacker could make the gateway tell a backend, or let through.

mod common;

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::fakes::jwt_issuer;
use common::{Backend, Gateway};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

const AUD: &str = "review-api";

fn jwt(claims: &Value, key: &SigningKey) -> String {
    let kid = oauthgate::assertion::thumbprint(&key.verifying_key());
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let b64 = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", b64(&header), b64(claims));
    format!(
        "{input}.{}",
        B64.encode(key.sign(input.as_bytes()).to_bytes())
    )
}

/// Finding 1 (medium): `identity.headers` joins a list with commas, and a group name may hold
/// one (an OIDC groups claim of LDAP DNs, `cn=x,ou=groups`, or a group a user may name). A
/// user in the one group `x,admins` must not look to a backend splitting `Remote-Groups` on
/// commas like a member of `admins`.
#[tokio::test]
async fn a_group_with_a_comma_adds_no_group_to_a_comma_joined_header() {
    let backend = Backend::start().await;
    let key = SigningKey::from_bytes(&[7; 32]);
    let idp = jwt_issuer(Arc::new(Mutex::new(vec![key.clone()]))).await;
    let iss = format!("http://{}", idp.addr);
    let gw = Gateway::start(&format!(
        "  bearer:\n    issuers:\n      - {{issuer: \"{iss}\", audience: {AUD}, name: corp, groups_claim: groups}}\n\
         \x20 identity:\n    headers: {{Remote-Groups: groups}}\n\
         \x20 routes:\n    - {{prefix: /, upstream: \"{b}\", bearer: true}}\n",
        b = backend.url()
    ));
    let now = oauthgate::util::now();
    let claims = json!({"iss": iss, "aud": AUD, "sub": "mallory", "iat": now, "exp": now + 300,
        "groups": ["x,admins", "dev", "back\\slash"]});
    let res = gw
        .client()
        .get(gw.url("/x"))
        .header("authorization", format!("Bearer {}", jwt(&claims, &key)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = backend.last();
    let header = seen.headers["remote-groups"].to_str().unwrap().to_owned();
    let split: Vec<&str> = header.split(',').map(str::trim).collect();
    assert!(
        !split.contains(&"admins"),
        "the backend reads the group `admins` in {header:?}"
    );
    assert_eq!(split.len(), 3, "one entry per group: {header:?}");
    assert_eq!(header, r"x\u002cadmins,dev,back\u005cslash");
    // X-User-Info keeps the names exactly.
    let info: Value = serde_json::from_str(seen.headers["x-user-info"].to_str().unwrap()).unwrap();
    assert_eq!(info["groups"], json!(["x,admins", "dev", "back\\slash"]));
}

/// Finding 2 (medium): `allow` compares logins, emails and groups ignoring case with Unicode's
/// lower-casing, which folds some non-ASCII letters into ASCII ones: KELVIN SIGN `K` (U+212A)
/// becomes `k`. An account or group an attacker may name at an issuer (`Kate`, `Kube-admins`
/// spelt with U+212A) must not pass for `kate` or `kube-admins`.
#[tokio::test]
async fn a_non_ascii_letter_never_matches_an_ascii_allow_entry() {
    let backend = Backend::start().await;
    let key = SigningKey::from_bytes(&[8; 32]);
    let idp = jwt_issuer(Arc::new(Mutex::new(vec![key.clone()]))).await;
    let iss = format!("http://{}", idp.addr);
    let gw = Gateway::start(&format!(
        "  bearer:\n    issuers:\n      - {{issuer: \"{iss}\", audience: {AUD}, name: corp, groups_claim: groups}}\n\
         \x20 routes:\n    - {{prefix: /g, upstream: \"{b}\", bearer: true, allow: {{groups: [kube-admins]}}}}\n\
         \x20   - {{prefix: /l, upstream: \"{b}\", bearer: true, allow: {{logins: [kate]}}}}\n\
         \x20   - {{prefix: /e, upstream: \"{b}\", bearer: true, allow: {{emails: [kate@example.com]}}}}\n",
        b = backend.url()
    ));
    let status = |path: &'static str, extra: Value| {
        let now = oauthgate::util::now();
        let mut claims = json!({"iss": iss, "aud": AUD, "sub": "s", "iat": now, "exp": now + 300});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let req = gw
            .client()
            .get(gw.url(path))
            .header("authorization", format!("Bearer {}", jwt(&claims, &key)));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // The real names pass, in any ASCII case: the test can tell a pass from a refusal.
    assert_eq!(
        status("/g/x", json!({"groups": ["Kube-Admins"]})).await,
        200
    );
    assert_eq!(
        status("/l/x", json!({"preferred_username": "KATE"})).await,
        200
    );
    let email = json!({"email": "Kate@Example.com", "email_verified": true});
    assert_eq!(status("/e/x", email).await, 200);
    // U+212A KELVIN SIGN lower-cases to ASCII `k`.
    let kelvin = "\u{212A}";
    let group = json!({"groups": [format!("{kelvin}ube-admins")]});
    assert_eq!(status("/g/x", group).await, 403, "group");
    let login = json!({"preferred_username": format!("{kelvin}ate")});
    assert_eq!(status("/l/x", login).await, 403, "login");
    let email = json!({"email": format!("{kelvin}ate@example.com"), "email_verified": true});
    assert_eq!(status("/e/x", email).await, 403, "email");
}

/// Finding 3 (low): `cors_preflight: allow` lets a CORS preflight reach the upstream without a
/// login. A browser's preflight never has a body; an `OPTIONS` with one is something else (a
/// payload for a handler that does not look at the method, as Go's `HandleFunc` or a PHP
/// script), and is judged like any request.
#[tokio::test]
async fn an_options_request_with_a_body_is_no_preflight() {
    let backend = Backend::start().await;
    let gw = Gateway::start(&format!(
        "  routes:\n    - {{prefix: /, upstream: \"{}\", bearer: true, cors_preflight: allow}}\n",
        backend.url()
    ));
    for client in gw.both_protocols() {
        preflights(&gw, &backend, client).await;
    }
}

async fn preflights(gw: &Gateway, backend: &Backend, client: reqwest::Client) {
    let before = backend.count();
    let options = |body: Option<&'static str>| {
        let mut req = client
            .request(reqwest::Method::OPTIONS, gw.url("/admin/delete?id=5"))
            .header("origin", "https://site.example")
            .header("access-control-request-method", "DELETE");
        if let Some(body) = body {
            req = req.body(body);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // A real preflight passes (so the test can tell a pass from a refusal).
    assert_eq!(options(None).await, 200);
    assert_eq!(backend.count(), before + 1);
    assert_eq!(options(Some("")).await, 200, "an empty body is no body");
    assert_eq!(backend.count(), before + 2);
    assert_eq!(options(Some("confirm=yes")).await, 401);
    let after = backend.count();
    assert_eq!(
        after,
        before + 2,
        "the body reached the upstream without a login"
    );
}

/// Finding 4 (low, fails closed): on a dual-stack listener (`listen: "[::]:443"`) an IPv4 peer
/// is `::ffff:127.0.0.1`. `allow.networks` reads it as `127.0.0.1`, but `/_auth/check`
/// compared it to `trusted_proxies` as it came, so nginx on the same host got 403
/// `untrusted_proxy` for every check.
#[tokio::test]
async fn check_trusts_a_loopback_proxy_on_a_dual_stack_listener() {
    let backend = Backend::start().await;
    let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: \"[::]:0\"\npublic_url: https://localhost\ndata_dir: data\n\
             tls: {{self_signed: true}}\ngateway:\n  oauth_proxy:\n    url: https://localhost:9/oauth\n\
             \x20   verify_key: {hex}\n    providers: [dev]\n  routes:\n\
             \x20   - {{prefix: /, upstream: \"{}\", login: required}}\n",
            backend.url()
        ),
    )
    .unwrap();
    let mut gw = Gateway::spawn(dir.path().to_owned(), Some(dir), &config);
    // Connect over IPv4 to the `[::]` listener: the peer is IPv4-mapped.
    gw.addr = std::net::SocketAddr::from(([127, 0, 0, 1], gw.addr.port()));
    let res = gw
        .client()
        .get(gw.url("/_auth/check"))
        .header("x-original-uri", "/private")
        .send()
        .await
        .unwrap();
    // Not logged in: 401 (a trusted proxy's question), not 403 untrusted_proxy.
    assert_eq!(res.status(), 401, "{}", res.text().await.unwrap());
}

/// Finding 5 (low): a token with an empty `sub` became the identity `corp:`, the same for
/// every such token, so backends keyed on `sub` would merge their holders into one. A `sub`
/// must be a non-empty string (a number or anything else is refused, as it already was).
#[tokio::test]
async fn a_tokens_subject_is_never_lost() {
    let backend = Backend::start().await;
    let key = SigningKey::from_bytes(&[9; 32]);
    let idp = jwt_issuer(Arc::new(Mutex::new(vec![key.clone()]))).await;
    let iss = format!("http://{}", idp.addr);
    let gw = Gateway::start(&format!(
        "  bearer:\n    issuers:\n      - {{issuer: \"{iss}\", audience: {AUD}, name: corp}}\n\
         \x20 routes:\n    - {{prefix: /, upstream: \"{}\", bearer: true}}\n",
        backend.url()
    ));
    let call = |sub: Value| {
        let now = oauthgate::util::now();
        let claims = json!({"iss": iss, "aud": AUD, "sub": sub, "iat": now, "exp": now + 300});
        let req = gw
            .client()
            .get(gw.url("/x"))
            .header("authorization", format!("Bearer {}", jwt(&claims, &key)));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let sub_seen = || {
        let info = backend.last().headers["x-user-info"].clone();
        let info: Value = serde_json::from_str(info.to_str().unwrap()).unwrap();
        info["sub"].as_str().unwrap().to_owned()
    };
    assert_eq!(call(json!("alice")).await, 200);
    assert_eq!(sub_seen(), "corp:alice");
    for bad in [
        json!(42),
        json!(""),
        json!(null),
        json!(["a"]),
        json!({"id": 1}),
        json!(true),
    ] {
        assert_eq!(call(bad.clone()).await, 401, "sub {bad}");
    }
}

//! Bearer tokens on `bearer: true` routes, against the real gateway: tokens minted by
//! `oauthgate token`, tokens of an external issuer found through OIDC discovery and its JWKS
//! (a fake issuer on 127.0.0.1), SPEC §6.4's attack list, the same `allow` as cookies, and
//! never a redirect.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::fakes::{jwt_issuer, Fake};
use common::{Backend, Gateway};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

const AUD: &str = "oauthgate-api";

struct Setup {
    gw: Gateway,
    backend: Backend,
    issuer: Fake,
    iss: String,
    keys: Arc<Mutex<Vec<SigningKey>>>,
}

async fn setup() -> Setup {
    let backend = Backend::start().await;
    let keys = Arc::new(Mutex::new(vec![SigningKey::from_bytes(&[1; 32])]));
    let issuer = jwt_issuer(keys.clone()).await;
    let iss = format!("http://{}", issuer.addr);
    let gw = Gateway::start(&format!(
        "  bearer:\n    issuers:\n      - {{issuer: \"{iss}\", audience: {AUD}, name: corp, groups_claim: /realm/roles}}\n\
         \x20 identity:\n    headers: {{Remote-User: login}}\n\
         \x20 routes:\n    - {{prefix: /api, upstream: \"{b}\", bearer: true, allow: {{groups: [ops]}}}}\n\
         \x20   - {{prefix: /any, upstream: \"{b}\", bearer: true}}\n\
         \x20   - {{prefix: /, upstream: \"{b}\", login: none}}\n",
        b = backend.url()
    ));
    Setup {
        gw,
        backend,
        issuer,
        iss,
        keys,
    }
}

fn mint(gw: &Gateway, sub: &str, groups: &str) -> String {
    let mut cmd = Command::new(common::bin());
    cmd.args([
        "token",
        "--config",
        "config.yaml",
        "--sub",
        sub,
        "--ttl",
        "1h",
    ]);
    if !groups.is_empty() {
        cmd.args(["--groups", groups]);
    }
    let out = cmd.current_dir(&gw.dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "the token alone on stdout: {stdout}"
    );
    stdout.trim().to_owned()
}

fn b64(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

fn jwt(header: Value, claims: Value, key: &SigningKey) -> String {
    let input = format!("{}.{}", b64(&header), b64(&claims));
    format!(
        "{input}.{}",
        B64.encode(key.sign(input.as_bytes()).to_bytes())
    )
}

fn kid(key: &SigningKey) -> String {
    oauthgate::assertion::thumbprint(&key.verifying_key())
}

fn claims(iss: &str, extra: Value) -> Value {
    let now = oauthgate::util::now();
    let mut c = json!({"iss": iss, "aud": AUD, "sub": "svc-1", "iat": now, "exp": now + 300,
        "preferred_username": "svc", "realm": {"roles": ["ops"]}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A request as a browser would send it (a navigation), with `token`: never a redirect.
async fn call(gw: &Gateway, path: &str, token: &str) -> reqwest::Response {
    gw.client()
        .get(gw.url(path))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap()
}

async fn refused(gw: &Gateway, path: &str, token: &str) -> bool {
    let res = call(gw, path, token).await;
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    res.status() == 401
        && res.headers().get("location").is_none()
        && challenge.as_deref() == Some("Bearer error=\"invalid_token\"")
}

#[tokio::test]
async fn minted_tokens_pass_the_same_allow_and_the_token_stays_here() {
    let s = setup().await;
    let ops = mint(&s.gw, "ci-bot", "ops,deploy");
    let res = call(&s.gw, "/api/x", &ops).await;
    assert_eq!(res.status(), 200);
    let seen = s.backend.last();
    let info: Value = serde_json::from_str(seen.headers["x-user-info"].to_str().unwrap()).unwrap();
    assert_eq!(info["sub"], "token:ci-bot");
    assert_eq!(info["provider"], "token");
    assert_eq!(info["groups"], json!(["ops", "deploy"]));
    assert_eq!(seen.headers["remote-user"], "ci-bot");
    assert!(
        !seen.headers.contains_key("authorization"),
        "the token went upstream"
    );
    // The access line names the token's subject, as it names a session's.
    s.gw.log_when("the token's subject in an access line", |log| {
        log.iter()
            .any(|l| l.contains("path=/api/x") && l.contains("user=token:ci-bot"))
    });
    // Outside `allow`: 403 JSON, not a page or a redirect.
    let other = mint(&s.gw, "intern", "");
    let res = call(&s.gw, "/api/x", &other).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    assert_eq!(call(&s.gw, "/any/x", &other).await.status(), 200);
    // No token on a bearer route of a gateway without logins: 401 asking for one.
    let res = s.gw.client().get(s.gw.url("/any/x")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"oauthgate\""
    );
    // A minted token is refused by another gateway (another key, another public_url).
    let s2 = setup().await;
    assert!(refused(&s2.gw, "/any/x", &ops).await);
    // An X-User-Assertion-like token of this gateway (no token_use) is no bearer token.
    assert!(refused(&s.gw, "/any/x", "a.b.c").await);
}

#[tokio::test]
async fn an_external_issuers_tokens_through_discovery_and_jwks() {
    let s = setup().await;
    let key = s.keys.lock().unwrap()[0].clone();
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid(&key)});
    let good = jwt(header.clone(), claims(&s.iss, json!({})), &key);
    assert_eq!(call(&s.gw, "/api/x", &good).await.status(), 200);
    let info: Value =
        serde_json::from_str(s.backend.last().headers["x-user-info"].to_str().unwrap()).unwrap();
    assert_eq!(
        (info["sub"].as_str(), info["provider"].as_str()),
        (Some("corp:svc-1"), Some("corp"))
    );
    assert_eq!(info["groups"], json!(["ops"]));
    // Groups from the claim decide `allow` here too.
    let no_ops = jwt(
        header.clone(),
        claims(&s.iss, json!({"realm": {"roles": ["dev"]}})),
        &key,
    );
    assert_eq!(call(&s.gw, "/api/x", &no_ops).await.status(), 403);

    // A new key is found by re-reading the JWKS (bounded by a rate limit).
    let rotated = SigningKey::from_bytes(&[2; 32]);
    s.keys.lock().unwrap().push(rotated.clone());
    let new = jwt(
        json!({"alg": "EdDSA", "kid": kid(&rotated)}),
        claims(&s.iss, json!({})),
        &rotated,
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    loop {
        let res = call(&s.gw, "/any/x", &new).await;
        if res.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fetches = s.issuer.to("/jwks").len() as u64;
    let bound = 2 + start.elapsed().as_secs() / 5;
    assert!(
        fetches <= bound,
        "{fetches} JWKS fetches, more than {bound}"
    );
}

#[tokio::test]
async fn spec_6_4_attacks_on_bearer_tokens() {
    let s = setup().await;
    let key = s.keys.lock().unwrap()[0].clone();
    let k = kid(&key);
    let now = oauthgate::util::now();
    let eddsa = json!({"alg": "EdDSA", "kid": k});
    // An attacker's own key, offered in the token's header in every way a header can.
    let attacker = SigningKey::from_bytes(&[66; 32]);
    let evil = Fake::start(|_| (200, "application/json", "{}".into())).await;
    let evil_jwk = oauthgate::assertion::jwks(&[attacker.verifying_key()])["keys"][0].clone();
    let hs256 = {
        use hmac::{Hmac, Mac};
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "kid": k})),
            b64(&claims(&s.iss, json!({})))
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.verifying_key().as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none"})),
                b64(&claims(&s.iss, json!({})))
            ),
        ),
        ("HS256 keyed with the public key", hs256),
        (
            "wrong aud",
            jwt(
                eddsa.clone(),
                claims(&s.iss, json!({"aud": "someone-else"})),
                &key,
            ),
        ),
        (
            "unknown iss",
            jwt(
                eddsa.clone(),
                claims("https://evil.example", json!({})),
                &key,
            ),
        ),
        (
            "expired",
            jwt(
                eddsa.clone(),
                claims(&s.iss, json!({"exp": now - 300})),
                &key,
            ),
        ),
        (
            "nbf in the future",
            jwt(
                eddsa.clone(),
                claims(&s.iss, json!({"nbf": now + 600})),
                &key,
            ),
        ),
        (
            "unknown kid",
            jwt(
                json!({"alg": "EdDSA", "kid": "nope"}),
                claims(&s.iss, json!({})),
                &key,
            ),
        ),
        (
            "embedded jwk",
            jwt(
                json!({"alg": "EdDSA", "kid": kid(&attacker), "jwk": evil_jwk}),
                claims(&s.iss, json!({})),
                &attacker,
            ),
        ),
        (
            "jku",
            jwt(
                json!({"alg": "EdDSA", "kid": kid(&attacker), "jku": evil.url("/jwks")}),
                claims(&s.iss, json!({})),
                &attacker,
            ),
        ),
        (
            "x5u",
            jwt(
                json!({"alg": "EdDSA", "kid": kid(&attacker), "x5u": evil.url("/cert")}),
                claims(&s.iss, json!({})),
                &attacker,
            ),
        ),
        (
            "our kid, their signature",
            jwt(eddsa.clone(), claims(&s.iss, json!({})), &attacker),
        ),
        ("garbage", "not-a-jwt".into()),
    ];
    for (what, token) in &cases {
        assert!(
            refused(&s.gw, "/any/x", token).await,
            "{what} was not refused"
        );
    }
    assert!(
        evil.seen().is_empty(),
        "a URL from a token header was fetched"
    );
    // The good token still passes (the attacks broke nothing).
    let good = jwt(eddsa, claims(&s.iss, json!({})), &key);
    assert_eq!(call(&s.gw, "/any/x", &good).await.status(), 200);
    // No token reached the backend.
    assert!(s
        .backend
        .seen()
        .iter()
        .all(|r| !r.headers.contains_key("authorization")));
}

//! Unit tests of bearer-token checks with the gateway's own key: SPEC §6.4's attack list
//! (each refused for its own reason) and minted tokens.

use super::*;
use hmac::{Hmac, Mac};

const URL: &str = "https://gw.example";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn own() -> Jwk {
    let jwks = crate::assertion::jwks(&[key().verifying_key()]);
    serde_json::from_value(jwks["keys"][0].clone()).unwrap()
}

fn b64(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

fn claims(extra: Value) -> Value {
    let now = crate::util::now();
    let mut c = serde_json::json!({"iss": URL, "aud": URL, "sub": "bot", "iat": now, "exp": now + 60, "token_use": "bearer"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn signed(header: Value, claims: &Value, with: &SigningKey) -> String {
    use ed25519_dalek::Signer;
    let input = format!("{}.{}", b64(&header), b64(claims));
    let sig = with.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

fn eddsa(kid: &str) -> Value {
    serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid})
}

#[test]
fn a_minted_token_checks_and_every_attack_is_refused() {
    let jwk = own();
    let kid = jwk.common.key_id.clone().unwrap();
    let good = mint(&key(), URL, "bot", &["ops".into()], Duration::from_secs(60));
    let c = check(&good, &jwk, URL, URL).unwrap();
    let s = session_of(&c, MINTED_PROVIDER, None);
    assert_eq!(
        (s.sub.as_str(), s.groups.as_slice()),
        ("token:bot", &["ops".to_string()][..])
    );
    assert_eq!(s.user["login"], "bot");

    let now = crate::util::now();
    let hmac_with_public_key = {
        let input = format!(
            "{}.{}",
            b64(&serde_json::json!({"alg": "HS256", "kid": kid})),
            b64(&claims(serde_json::json!({})))
        );
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(key().verifying_key().as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none"})),
        b64(&claims(serde_json::json!({})))
    );
    let attacker = SigningKey::from_bytes(&[9; 32]);
    let attacker_jwk = crate::assertion::jwks(&[attacker.verifying_key()])["keys"][0].clone();
    let embedded = serde_json::json!({"alg": "EdDSA", "kid": kid, "jwk": attacker_jwk,
        "jku": "http://127.0.0.1:9/jwks", "x5u": "http://127.0.0.1:9/x5u"});
    let cases = [
        ("alg none", none),
        ("HS256 keyed with the public key", hmac_with_public_key),
        (
            "wrong aud",
            signed(
                eddsa(&kid),
                &claims(serde_json::json!({"aud": "https://other"})),
                &key(),
            ),
        ),
        (
            "wrong iss",
            signed(
                eddsa(&kid),
                &claims(serde_json::json!({"iss": "https://other"})),
                &key(),
            ),
        ),
        (
            "expired",
            signed(
                eddsa(&kid),
                &claims(serde_json::json!({"exp": now - 120})),
                &key(),
            ),
        ),
        (
            "nbf in the future",
            signed(
                eddsa(&kid),
                &claims(serde_json::json!({"nbf": now + 600})),
                &key(),
            ),
        ),
        (
            "no exp",
            signed(
                eddsa(&kid),
                &{
                    let mut c = claims(serde_json::json!({}));
                    c.as_object_mut().unwrap().remove("exp");
                    c
                },
                &key(),
            ),
        ),
        (
            "embedded jwk/jku/x5u, signed by another key",
            signed(embedded, &claims(serde_json::json!({})), &attacker),
        ),
        ("tampered", {
            let mut t = good.clone();
            t.insert(good.len() - 5, 'A');
            t
        }),
    ];
    for (what, token) in cases {
        assert!(
            check(&token, &jwk, URL, URL).is_err(),
            "{what} was accepted"
        );
    }
}

#[test]
fn algorithms_come_from_the_key_never_hmac() {
    let jwk = own();
    assert_eq!(algorithms(&jwk), [Algorithm::EdDSA]);
    let oct: Jwk =
        serde_json::from_value(serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"}))
            .unwrap();
    assert!(algorithms(&oct).is_empty());
    let rsa: Jwk = serde_json::from_value(
        serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS256"}),
    )
    .unwrap();
    assert_eq!(algorithms(&rsa), [Algorithm::RS256]);
}

#[test]
fn only_the_bearer_scheme() {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, "Bearer  abc ".parse().unwrap());
    assert_eq!(token_of(&h), Some("abc"));
    h.insert(header::AUTHORIZATION, "bearer x".parse().unwrap());
    assert_eq!(token_of(&h), Some("x"));
    for other in ["Basic YTpi", "Bearer", "Bearer ", "Bearerx y"] {
        h.insert(header::AUTHORIZATION, other.parse().unwrap());
        assert_eq!(token_of(&h), None, "{other}");
    }
}

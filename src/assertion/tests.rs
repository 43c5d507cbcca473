//! Unit tests of the assertion format: every tampering is refused with its own reason.

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn claims() -> Claims {
    let mut user = Map::new();
    user.insert("email".into(), "alice@example.com".into());
    Claims {
        iss: "https://auth.example.com/oauth".into(),
        aud: "https://app.example.com/_auth/callback".into(),
        sub: "github:42".into(),
        provider: "github".into(),
        nonce: "n0nce".into(),
        iat: 1_000,
        exp: 1_060,
        user,
        groups: Vec::new(),
    }
}

fn want() -> Expected<'static> {
    Expected {
        iss: "https://auth.example.com/oauth",
        aud: "https://app.example.com/_auth/callback",
        nonce: "n0nce",
        now: 1_010,
    }
}

fn forge(header: &str, claims: &Claims, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header),
        B64.encode(serde_json::to_vec(claims).unwrap()),
        B64.encode(sig)
    )
}

#[test]
fn round_trip_and_rotation() {
    let k = key(1);
    let token = sign(&k, &claims());
    assert_eq!(
        verify(&token, &[k.verifying_key()], &want()).unwrap(),
        claims()
    );
    // A list of keys allows rotation: old and new both verify.
    let keys = [key(2).verifying_key(), k.verifying_key()];
    assert!(verify(&token, &keys, &want()).is_ok());
}

#[test]
fn foreign_keys_and_tampering_are_refused() {
    let k = key(1);
    let token = sign(&k, &claims());
    assert_eq!(
        verify(&token, &[key(2).verifying_key()], &want()),
        Err(AssertionError::UnknownKey)
    );
    let mut other = claims();
    other.sub = "github:1".into();
    let (h, rest) = token.split_once('.').unwrap();
    let sig = rest.rsplit_once('.').unwrap().1;
    let tampered = format!(
        "{h}.{}.{sig}",
        B64.encode(serde_json::to_vec(&other).unwrap())
    );
    assert_eq!(
        verify(&tampered, &[k.verifying_key()], &want()),
        Err(AssertionError::Signature)
    );
    for bad in ["", "a.b", "a.b.c.d", "!!.??.**"] {
        assert_eq!(
            verify(bad, &[k.verifying_key()], &want()),
            Err(AssertionError::Malformed)
        );
    }
}

#[test]
fn alg_none_and_hmac_with_the_public_key_are_refused() {
    let k = key(1);
    let none = forge(r#"{"alg":"none"}"#, &claims(), b"");
    assert_eq!(
        verify(&none, &[k.verifying_key()], &want()),
        Err(AssertionError::Algorithm("none".into()))
    );
    let hs = forge(r#"{"alg":"HS256"}"#, &claims(), &[0u8; 32]);
    assert_eq!(
        verify(&hs, &[k.verifying_key()], &want()),
        Err(AssertionError::Algorithm("HS256".into()))
    );
    let lower = forge(r#"{"alg":"eddsa"}"#, &claims(), &[0u8; 64]);
    assert!(matches!(
        verify(&lower, &[k.verifying_key()], &want()),
        Err(AssertionError::Algorithm(_))
    ));
}

#[test]
fn claims_are_checked() {
    let k = key(1);
    let vk = [k.verifying_key()];
    let check = |c: Claims| verify(&sign(&k, &c), &vk, &want());
    assert!(matches!(
        check(Claims {
            iss: "https://evil/oauth".into(),
            ..claims()
        }),
        Err(AssertionError::Issuer(_))
    ));
    assert!(matches!(
        check(Claims {
            aud: "https://evil/_auth/callback".into(),
            ..claims()
        }),
        Err(AssertionError::Audience(_))
    ));
    assert_eq!(
        check(Claims {
            iat: 500,
            exp: 600,
            ..claims()
        }),
        Err(AssertionError::Expired)
    );
    assert_eq!(
        check(Claims {
            iat: 5_000,
            exp: 5_060,
            ..claims()
        }),
        Err(AssertionError::Expired)
    );
    assert_eq!(
        check(Claims {
            exp: 1_000 + 3_600,
            ..claims()
        }),
        Err(AssertionError::Lifetime)
    );
    assert_eq!(
        check(Claims {
            nonce: "other".into(),
            ..claims()
        }),
        Err(AssertionError::Nonce)
    );
    let empty = Expected {
        nonce: "",
        ..want()
    };
    assert_eq!(
        verify(
            &sign(
                &k,
                &Claims {
                    nonce: String::new(),
                    ..claims()
                }
            ),
            &vk,
            &empty
        ),
        Err(AssertionError::Nonce)
    );
}

#[test]
fn thumbprint_matches_rfc_8037_appendix_a3() {
    // RFC 8037 A.3: the thumbprint of the A.2 public key.
    let x = B64
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let vk = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
    assert_eq!(
        thumbprint(&vk),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn hex_keys_round_trip() {
    let vk = key(7).verifying_key();
    assert_eq!(parse_verify_key(&hex(vk.as_bytes())), Some(vk));
    assert_eq!(parse_verify_key("abc"), None);
    assert_eq!(parse_verify_key(&"zz".repeat(32)), None);
}

#[test]
fn legacy_payload_is_python_urlencode() {
    let mut user = Map::new();
    user.insert("email".into(), "a+b@example.com".into());
    user.insert("login".into(), "Zoë Ñ ~x".into());
    user.insert("id".into(), 42.into());
    let q = legacy_query(&key(1), "st/ate", &user);
    let (fields, sig) = q.rsplit_once("&signature=").unwrap();
    // The state is signed but not sent (the Jumpscale client adds its own).
    assert_eq!(
        fields,
        "email=a%2Bb%40example.com&login=Zo%C3%AB+%C3%91+~x&id=42"
    );
    // urllib.parse.urlencode({'state': 'st/ate', 'email': 'a+b@example.com',
    //                         'login': 'Zoë Ñ ~x', 'id': 42})
    let payload = format!("state=st%2Fate&{fields}");
    let sig = Signature::from_slice(
        &(0..64)
            .map(|i| u8::from_str_radix(&sig[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(key(1)
        .verifying_key()
        .verify_strict(payload.as_bytes(), &sig)
        .is_ok());
    // No fields at all: the signature alone, over the state alone.
    let q = legacy_query(&key(1), "s", &Map::new());
    assert!(q.starts_with("signature=") && !q.contains('&'), "{q}");
}

#[test]
fn groups_travel_and_a_missing_groups_claim_reads_as_none() {
    let k = key(1);
    let mut with = claims();
    with.groups = vec!["acme".into(), "acme/ops".into()];
    let back = verify(&sign(&k, &with), &[k.verifying_key()], &want()).unwrap();
    assert_eq!(back.groups, ["acme", "acme/ops"]);
    // An older central sends no `groups`: still accepted, with none.
    let old = sign(&k, &claims());
    assert!(
        !String::from_utf8(B64.decode(old.split('.').nth(1).unwrap()).unwrap())
            .unwrap()
            .contains("groups")
    );
    assert!(verify(&old, &[k.verifying_key()], &want())
        .unwrap()
        .groups
        .is_empty());
}

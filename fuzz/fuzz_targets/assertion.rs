//! The assertion (SPEC §3, §6 class 4): sign → verify round trips for any claims; a change of
//! any one byte of the token, of a header field or of a claim is refused; a token from
//! anywhere else (the input itself) never verifies.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{sign, verify, AssertionError, Claims, Expected};
use serde_json::{Map, Value};

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://login.example.com/oauth";
const AUD: &str = "https://app.example.com/_auth/callback";

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7; 32]);
    let keys = [key.verifying_key()];
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        // Whatever arrives as `assertion=`: never valid, never a panic.
        if let Ok(token) = std::str::from_utf8(rest) {
            let want = Expected {
                iss: ISS,
                aud: AUD,
                nonce: "n",
                now: NOW,
            };
            assert!(verify(token, &keys, &want).is_err(), "{token:?} verified");
        }
        return;
    }
    // The first 3 bytes choose a byte to change and its new value; the rest are claims.
    let (Some(at), Some(&to)) = (rest.get(..2), rest.get(2)) else {
        return;
    };
    let at = usize::from(u16::from_le_bytes([at[0], at[1]]));
    let text = String::from_utf8_lossy(&rest[3..]);
    let mut fields = text.split('\n');
    let mut field = || fields.next().unwrap_or("").to_owned();
    let (sub, provider, nonce, user_key, user_value) =
        (field(), field(), field(), field(), field());
    let nonce = if nonce.is_empty() {
        "n".to_owned()
    } else {
        nonce
    };
    let mut user = Map::new();
    user.insert(user_key, Value::String(user_value));
    let claims = Claims {
        iss: ISS.into(),
        aud: AUD.into(),
        sub,
        provider,
        nonce: nonce.clone(),
        iat: NOW,
        exp: NOW + 60,
        user,
        groups: Vec::new(),
    };
    let token = sign(&key, &claims);
    let want = Expected {
        iss: ISS,
        aud: AUD,
        nonce: &nonce,
        now: NOW,
    };
    assert_eq!(
        verify(&token, &keys, &want).as_ref(),
        Ok(&claims),
        "{token}"
    );

    // Any one byte changed.
    let mut bytes = token.clone().into_bytes();
    let at = at % bytes.len();
    if bytes[at] != to {
        bytes[at] = to;
        if let Ok(changed) = String::from_utf8(bytes) {
            assert!(
                verify(&changed, &keys, &want).is_err(),
                "{token} -> {changed}"
            );
        }
    }
    // Another nonce (another browser), audience or key.
    let other_nonce = format!("{nonce}x");
    let other = Expected {
        nonce: &other_nonce,
        ..want
    };
    assert_eq!(verify(&token, &keys, &other), Err(AssertionError::Nonce));
    let other = Expected {
        aud: "https://evil.example.com/_auth/callback",
        ..want
    };
    assert!(verify(&token, &keys, &other).is_err());
    let stranger = [SigningKey::from_bytes(&[8; 32]).verifying_key()];
    assert!(verify(&token, &stranger, &want).is_err());
    // A claim or header field changed under the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims.clone();
    forged.sub.push('x');
    let body = B64.encode(serde_json::to_vec(&forged).expect("json"));
    let swapped = format!("{}.{body}.{}", parts[0], parts[2]);
    assert_eq!(
        verify(&swapped, &keys, &want),
        Err(AssertionError::Signature)
    );
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"EdDSA","typ":"JWT"}"#,
        r#"{"alg":"EdDSA","kid":"x"}"#,
    ] {
        let swapped = format!("{}.{}.{}", B64.encode(header), parts[1], parts[2]);
        assert!(verify(&swapped, &keys, &want).is_err(), "{header}");
    }
});

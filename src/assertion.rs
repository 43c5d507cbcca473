//! The assertion the central server hands to a gateway (SPEC §3), and the legacy Jumpscale
//! signature. One module creates and verifies both, so the two roles cannot drift apart.
//!
//! The assertion is a compact JWS (RFC 7515) signed with Ed25519, `alg: EdDSA` (RFC 8037),
//! `kid` the key's RFC 7638 thumbprint, so any JWT library verifies it with `/oauth/jwks`.
//! Verification is strict: exactly `EdDSA` (never `none` or an HMAC keyed with the public key),
//! a known key, then `iss`, `aud`, `exp`/`iat` and the `nonce` the gateway expects.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The longest lifetime an assertion may have, in seconds.
pub const MAX_LIFETIME: u64 = 120;
/// Clock skew tolerated between the central server and a gateway, in seconds.
pub const LEEWAY: u64 = 30;

/// The claims of an assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// `<provider>:<stable user id>`.
    pub sub: String,
    pub provider: String,
    /// The gateway's `state`, bound to its own login cookie.
    pub nonce: String,
    pub iat: u64,
    pub exp: u64,
    /// The kept `user_info_fields`.
    pub user: Map<String, Value>,
    /// The user's groups (GitHub `org`, `org/team`; an OIDC groups claim). Omitted when
    /// empty, and a missing one reads as empty: centrals and gateways of either age agree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// What a gateway expects of an assertion it receives.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub nonce: &'a str,
    pub now: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("algorithm {0:?} is not EdDSA")]
    Algorithm(String),
    #[error("signed by an unknown key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("issuer {0:?} is not the expected one")]
    Issuer(String),
    #[error("audience {0:?} is not this gateway")]
    Audience(String),
    #[error("expired or not yet valid")]
    Expired,
    #[error("lifetime longer than {MAX_LIFETIME}s")]
    Lifetime,
    #[error("nonce does not match this browser's login")]
    Nonce,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Signs `claims` into a compact JWS.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    sign_json(key, claims)
}

/// Signs any claims (the gateway's `X-User-Assertion`, bearer tokens it mints) the same way:
/// EdDSA, `kid` the key's thumbprint, `typ: JWT`.
pub fn sign_json<T: Serialize>(key: &SigningKey, claims: &T) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        kid: Some(thumbprint(&key.verifying_key())),
        typ: Some("JWT".into()),
    };
    // Serialising these plain structs cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&B64.encode(signature.to_bytes()));
    token
}

/// Verifies `token` against any of `keys` and the expectations; returns its claims.
pub fn verify(
    token: &str,
    keys: &[VerifyingKey],
    want: &Expected<'_>,
) -> Result<Claims, AssertionError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionError::Malformed);
    };
    let header: Header = decode_json(h)?;
    if header.alg != "EdDSA" {
        return Err(AssertionError::Algorithm(header.alg));
    }
    let signature = B64.decode(s).map_err(|_| AssertionError::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| AssertionError::Malformed)?;
    let signed = &token[..h.len() + 1 + c.len()];
    let candidates: Vec<&VerifyingKey> = match &header.kid {
        Some(kid) => keys.iter().filter(|k| thumbprint(k) == *kid).collect(),
        None => keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(AssertionError::UnknownKey);
    }
    if !candidates
        .iter()
        .any(|k| k.verify_strict(signed.as_bytes(), &signature).is_ok())
    {
        return Err(AssertionError::Signature);
    }
    let claims: Claims = decode_json(c)?;
    if claims.iss != want.iss {
        return Err(AssertionError::Issuer(claims.iss));
    }
    if claims.aud != want.aud {
        return Err(AssertionError::Audience(claims.aud));
    }
    if claims.exp.saturating_add(LEEWAY) <= want.now || claims.iat > want.now.saturating_add(LEEWAY)
    {
        return Err(AssertionError::Expired);
    }
    if claims.exp < claims.iat || claims.exp - claims.iat > MAX_LIFETIME {
        return Err(AssertionError::Lifetime);
    }
    if !bool::from(claims.nonce.as_bytes().ct_eq(want.nonce.as_bytes())) || want.nonce.is_empty() {
        return Err(AssertionError::Nonce);
    }
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AssertionError> {
    let bytes = B64.decode(part).map_err(|_| AssertionError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AssertionError::Malformed)
}

/// The RFC 7638 JWK thumbprint of an Ed25519 key (RFC 8037 §2: members `crv`, `kty`, `x`).
pub fn thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        B64.encode(key.as_bytes())
    );
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// The JWK Set (RFC 7517 §5) publishing `keys`.
pub fn jwks(keys: &[VerifyingKey]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": B64.encode(k.as_bytes()),
                "kid": thumbprint(k),
                "alg": "EdDSA",
                "use": "sig",
            })
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

/// Parses a verify key as `/oauth/key` serves it: 64 hex digits.
pub fn parse_verify_key(hex: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&parse_hex32(hex)?).ok()
}

/// 32 bytes from 64 hex digits (surrounding white space ignored).
pub fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// Lower-case hex of bytes (keys and signatures as the seed serves them).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Legacy Jumpscale wire format: the query string sent back to the client, the user fields
/// as Python's `urlencode(userinfo)` builds them (`quote_plus`, insertion order), then
/// `signature=<hex>`, the Ed25519 signature over `urlencode(dict(state=S, **userinfo))`.
///
/// The state is signed but not sent: the published Jumpscale client rebuilds the payload as
/// `dict(state=<its session's state>, **request.query)`, which raises a `TypeError` when the
/// query carries `state` too. The signature covers the state and the user fields only, not
/// the provider (the format has no field for it).
pub fn legacy_query(key: &SigningKey, state: &str, user: &Map<String, Value>) -> String {
    let mut fields = String::new();
    for (k, v) in user {
        if k == "state" || k == "signature" {
            continue;
        }
        if !fields.is_empty() {
            fields.push('&');
        }
        fields.push_str(&quote_plus(k));
        fields.push('=');
        fields.push_str(&quote_plus(&python_str(v)));
    }
    let mut signed = format!("state={}", quote_plus(state));
    if !fields.is_empty() {
        signed.push('&');
        signed.push_str(&fields);
    }
    let signature = hex(&key.sign(signed.as_bytes()).to_bytes());
    if fields.is_empty() {
        format!("signature={signature}")
    } else {
        format!("{fields}&signature={signature}")
    }
}

/// Python's `str(v)` for the scalars user info holds; arrays and objects as compact JSON.
fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Python's `urllib.parse.quote_plus`: unreserved bytes kept, space as `+`, the rest `%XX`.
pub fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests;

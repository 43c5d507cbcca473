//! Bearer tokens for machine clients on `bearer: true` routes: `Authorization: Bearer <JWT>`
//! from a configured issuer (keys from its JWKS, see `issuers`) or minted by `oauthgate token`
//! (signed with the gateway's own key). A verified token becomes the same identity a session
//! is, so cookies and tokens are judged by the same `allow`.
//!
//! The attack list of SPEC §6.4 applies: the algorithm must be one the key itself allows
//! (its JWK `alg`, else its key type's; never `none`, never HMAC, so a public key can never be
//! used as an HMAC secret), `iss`, `aud` and `exp` are required, `nbf` is checked, an unknown
//! `kid` fails once the JWKS has been re-read, and `jwk`, `jku`, `x5u` and `x5c` in a token's
//! header are never read: keys only ever come from the issuer's JWKS or our own.

mod issuers;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use http::header::{self, HeaderMap, HeaderName};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::session::{Session, Verified};
use crate::config::{GatewayConfig, MINTED_PROVIDER};
use crate::error::StartError;
use crate::util::Memo;
use issuers::Issuer;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY: u64 = 30;
/// Verified tokens remembered, all serving threads together (then a memo starts afresh):
/// fewer than sessions, since a token may be as large as a request head allows.
const MEMO_CAPACITY: usize = 1_000;
/// The claim that marks a token minted by `oauthgate token` (an `X-User-Assertion` never has
/// it, so one can never be replayed as a bearer token).
const TOKEN_USE: &str = "token_use";

/// Why a bearer token was refused (logged; the client only hears `invalid_token`).
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("not a JWT")]
    Malformed,
    #[error("issuer not accepted")]
    Issuer,
    #[error("no key with this kid")]
    UnknownKey,
    #[error("algorithm not allowed for this key")]
    Algorithm,
    #[error("the issuer's keys cannot be fetched: {0}")]
    Keys(String),
    #[error("{0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("not a token minted for bearer use")]
    NotMinted,
    #[error("the sub claim is empty")]
    NoSubject,
}

/// What `bearer: true` routes check tokens with.
pub struct Bearer {
    /// The gateway's own key as a JWK, and `public_url` (the `iss` and `aud` of minted tokens).
    own: (Jwk, String),
    issuers: Vec<Issuer>,
    /// `identity.headers`, worked out for each verified token as for a session.
    identity: Vec<(HeaderName, String)>,
    /// Token → its identity, so a client's repeated requests cost one verification (and share
    /// one `X-User-Assertion`). Only verified tokens are kept; `exp` is checked on every use.
    /// One per serving thread, as the session memo (`session.rs` says why).
    memo: Memo<Verified>,
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), if that is the header's scheme.
pub fn token_of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Bearer {
    pub fn new(config: &GatewayConfig, key: &SigningKey) -> Result<Self, StartError> {
        let jwks = crate::assertion::jwks(&[key.verifying_key()]);
        let own: Jwk = serde_json::from_value(jwks["keys"][0].clone())
            .map_err(|e| StartError::Key(format!("the gateway key as a JWK: {e}")))?;
        let http = match config.bearer_issuers.is_empty() {
            true => None,
            false => Some(issuers::http_client()?),
        };
        Ok(Bearer {
            own: (own, config.public_url.clone()),
            issuers: config
                .bearer_issuers
                .iter()
                .filter_map(|c| Some(Issuer::new(c.clone(), http.clone()?)))
                .collect(),
            identity: config.identity.headers.clone(),
            memo: Memo::new(MEMO_CAPACITY),
        })
    }

    /// Fetches each issuer's keys once at start-up, so the first token does not wait.
    pub fn warm_up(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for i in 0..self.issuers.len() {
            let me = self.clone();
            tokio::spawn(async move { me.issuers[i].refresh_if_due().await });
        }
    }

    /// The identity `token` proves, or why it proves none.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Arc<Verified>, BearerError> {
        if let Some(hit) = self.memo.get(token.as_bytes()) {
            if hit.session.exp > now {
                return Ok(hit);
            }
        }
        let iss = unverified_iss(token)?;
        let session = if iss == self.own.1 {
            let claims = check(token, &self.own.0, &self.own.1, &self.own.1)?;
            if claims.get(TOKEN_USE).and_then(Value::as_str) != Some("bearer") {
                return Err(BearerError::NotMinted);
            }
            session_of(&claims, MINTED_PROVIDER, None)
        } else {
            let issuer = self
                .issuers
                .iter()
                .find(|i| i.config.issuer == iss)
                .ok_or(BearerError::Issuer)?;
            let kid = jsonwebtoken::decode_header(token)?.kid;
            let jwk = issuer.key(kid.as_deref()).await?;
            let c = &issuer.config;
            let claims = check(token, &jwk, &c.issuer, &c.audience)?;
            session_of(&claims, &c.name, c.groups_claim.as_ref())
        };
        let verified = Arc::new(Verified::new(session, &self.identity));
        self.memo.remember(token.as_bytes(), verified.clone());
        Ok(verified)
    }
}

/// The `iss` a token claims, read before any check only to pick the keys to check it with.
fn unverified_iss(token: &str) -> Result<String, BearerError> {
    let payload = token.split('.').nth(1).ok_or(BearerError::Malformed)?;
    let bytes = B64.decode(payload).map_err(|_| BearerError::Malformed)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| BearerError::Malformed)?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(BearerError::Malformed)
}

/// Verifies `token` with `jwk`: an algorithm the key allows, the signature, `iss`, `aud`,
/// `exp` (required), `nbf`, and a `sub` that is a string other than empty.
fn check(token: &str, jwk: &Jwk, iss: &str, aud: &str) -> Result<Map<String, Value>, BearerError> {
    let allowed = algorithms(jwk);
    let alg = jsonwebtoken::decode_header(token)?.alg;
    if !allowed.contains(&alg) {
        return Err(BearerError::Algorithm);
    }
    let key = DecodingKey::from_jwk(jwk)?;
    let mut v = Validation::new(alg);
    v.algorithms = allowed;
    v.leeway = LEEWAY;
    v.validate_nbf = true;
    v.set_issuer(&[iss]);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)?.claims;
    // Every token with an empty `sub` would be one and the same user (`<provider>:`).
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(claims),
        _ => Err(BearerError::NoSubject),
    }
}

/// The algorithms a JWK may verify: its `alg` when it names one, else those of its key type;
/// none for a symmetric (`oct`) key.
fn algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256, Algorithm::ES384],
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => &[],
    };
    let named = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
    match named {
        Some(a) => family.iter().copied().filter(|f| *f == a).collect(),
        None => family.to_vec(),
    }
}

/// The identity of verified claims: `sub` `<provider>:<sub>`, the user fields `login`
/// (minted: the name; else `preferred_username`), `email` (only with `email_verified: true`)
/// and `name`, the groups, and the token's `exp` as the end.
fn session_of(
    claims: &Map<String, Value>,
    provider: &str,
    groups_claim: Option<&crate::config::GroupsClaim>,
) -> Session {
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    let sub = text("sub").unwrap_or_default();
    let mut user = Map::new();
    let login = match provider {
        MINTED_PROVIDER => Some(sub),
        _ => text("preferred_username"),
    };
    if let Some(login) = login {
        user.insert("login".into(), login.into());
    }
    if claims.get("email_verified") == Some(&Value::Bool(true)) {
        if let Some(email) = text("email") {
            user.insert("email".into(), email.into());
        }
    }
    if let Some(name) = text("name") {
        user.insert("name".into(), name.into());
    }
    let groups = match (provider, groups_claim) {
        (MINTED_PROVIDER, _) => {
            crate::groups::from_claims(claims, &crate::config::GroupsClaim::Name("groups".into()))
        }
        (_, Some(claim)) => crate::groups::from_claims(claims, claim),
        (_, None) => Vec::new(),
    };
    Session {
        sub: format!("{provider}:{sub}"),
        provider: provider.to_owned(),
        user,
        groups,
        exp: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
        seen: 0,
        host: None,
    }
}

/// A token for `sub` with `groups`, valid `ttl`, signed with the gateway key `key`; `iss` and
/// `aud` are `public_url` (what `oauthgate token` prints).
pub fn mint(
    key: &SigningKey,
    public_url: &str,
    sub: &str,
    groups: &[String],
    ttl: Duration,
) -> String {
    let now = crate::util::now();
    let claims = serde_json::json!({
        "iss": public_url,
        "aud": public_url,
        "sub": sub,
        "groups": groups,
        "iat": now,
        "exp": now + ttl.as_secs(),
        TOKEN_USE: "bearer",
        "jti": crate::util::random_token(),
    });
    crate::assertion::sign_json(key, &claims)
}

/// `oauthgate token`: a token for `sub` from the gateway key of `config`'s `data_dir`
/// (generated when missing, as the gateway would).
pub fn mint_token(
    config: &crate::Config,
    sub: &str,
    groups: &[String],
    ttl: Duration,
) -> Result<String, StartError> {
    let gateway = config
        .gateway
        .as_ref()
        .ok_or_else(|| StartError::Key("the config has no gateway: section".into()))?;
    let groups = crate::groups::bounded(groups.iter().map(|g| g.trim().to_owned()));
    if sub.is_empty() || ttl.is_zero() {
        return Err(StartError::Key("--sub and --ttl must not be empty".into()));
    }
    let signer = super::signer::Signer::load(&config.data_dir, &gateway.public_url)?;
    Ok(mint(signer.key(), &gateway.public_url, sub, &groups, ttl))
}

#[cfg(test)]
mod tests;

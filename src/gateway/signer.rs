//! The gateway's own Ed25519 key (`data_dir/gateway.key`, generated 0600): it signs
//! `X-User-Assertion` for backends and the tokens `oauthgate token` mints, and is published
//! at `/_auth/jwks`. An assertion is reused per session and audience until half its life has
//! passed, so a logged-in request costs a signature only every [`REUSE`] seconds.

use std::path::Path;

use ed25519_dalek::SigningKey;
use http::header::HeaderValue;
use serde_json::{Map, Value};

use super::session::Verified;
use crate::error::StartError;

/// An assertion's lifetime (SPEC §8: at most 60 s).
pub const LIFETIME: u64 = 60;
/// How long one is reused: half its life, so a backend always gets one valid for 30 s more.
pub const REUSE: u64 = LIFETIME / 2;
/// Audiences remembered per session (each a route's upstream origin); more start afresh.
const MAX_AUDIENCES: usize = 16;
/// Claims the gateway sets itself, or that mark another kind of token (`token_use`, which a
/// bearer token minted by `oauthgate token` carries): user fields of these names are not
/// copied, so no provider's field can make an assertion pass for a bearer token.
const REGISTERED: [&str; 10] = [
    "iss",
    "aud",
    "sub",
    "provider",
    "groups",
    "iat",
    "exp",
    "nbf",
    "jti",
    "token_use",
];

/// One assertion kept in a session's [`Verified`].
#[derive(Debug)]
pub struct Cached {
    aud: Box<str>,
    renew_at: u64,
    value: HeaderValue,
}

pub struct Signer {
    key: SigningKey,
    /// `public_url`: the `iss` of everything signed here.
    iss: String,
}

impl Signer {
    /// The key in `data_dir/gateway.key`, generated when missing.
    pub fn load(data_dir: &Path, iss: &str) -> Result<Self, StartError> {
        Ok(Signer {
            key: crate::keyfile::load_or_generate(&key_path(data_dir))?,
            iss: iss.to_owned(),
        })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The JWK Set served at `/_auth/jwks`.
    pub fn jwks(&self) -> Value {
        crate::assertion::jwks(&[self.key.verifying_key()])
    }

    /// The `X-User-Assertion` of `v` for `aud`: the one signed less than [`REUSE`] seconds
    /// ago, or a fresh one (valid [`LIFETIME`] seconds, never past the session's end).
    pub fn assertion(&self, v: &Verified, aud: &str, now: u64) -> Option<HeaderValue> {
        if let Ok(cache) = v.assertions.lock() {
            if let Some(hit) = cache.iter().find(|c| &*c.aud == aud && c.renew_at > now) {
                return Some(hit.value.clone());
            }
        }
        let exp = (now + LIFETIME).min(v.session.exp);
        let token = crate::assertion::sign_json(&self.key, &self.claims(v, aud, now, exp));
        let value = HeaderValue::from_str(&token).ok()?;
        if let Ok(mut cache) = v.assertions.lock() {
            cache.retain(|c| &*c.aud != aud);
            if cache.len() >= MAX_AUDIENCES {
                cache.clear();
            }
            cache.push(Cached {
                aud: aud.into(),
                renew_at: now + REUSE,
                value: value.clone(),
            });
        }
        Some(value)
    }

    /// `iss`, `aud`, `sub`, `provider`, `groups`, the user fields, `iat`, `exp`.
    fn claims(&self, v: &Verified, aud: &str, iat: u64, exp: u64) -> Map<String, Value> {
        let s = &v.session;
        let mut c = Map::with_capacity(s.user.len() + 7);
        c.insert("iss".into(), self.iss.clone().into());
        c.insert("aud".into(), aud.into());
        c.insert("sub".into(), s.sub.clone().into());
        c.insert("provider".into(), s.provider.clone().into());
        c.insert("groups".into(), s.groups.clone().into());
        for (k, val) in &s.user {
            if !REGISTERED.contains(&k.as_str()) {
                c.insert(k.clone(), val.clone());
            }
        }
        c.insert("iat".into(), iat.into());
        c.insert("exp".into(), exp.into());
        c
    }
}

/// Where the gateway's key lives.
pub fn key_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("gateway.key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::session::Session;

    fn verified(exp: u64) -> Verified {
        let mut user = Map::new();
        user.insert("email".into(), "a@example.com".into());
        user.insert("iss".into(), "spoofed".into());
        user.insert("token_use".into(), "bearer".into());
        let session = Session {
            sub: "dev:a".into(),
            provider: "dev".into(),
            user,
            groups: vec!["ops".into()],
            exp,
            host: None,
        };
        Verified::new(session, &[])
    }

    fn claims_of(token: &HeaderValue) -> Value {
        use base64::Engine;
        let part = token.to_str().unwrap().split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn reused_until_half_life_then_renewed_and_per_audience() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load(dir.path(), "https://gw.example").unwrap();
        let v = verified(10_000);
        let a = signer.assertion(&v, "http://app:1", 1_000).unwrap();
        assert_eq!(
            signer
                .assertion(&v, "http://app:1", 1_000 + REUSE - 1)
                .unwrap(),
            a
        );
        let other = signer.assertion(&v, "http://app:2", 1_000).unwrap();
        assert_ne!(other, a);
        let renewed = signer.assertion(&v, "http://app:1", 1_000 + REUSE).unwrap();
        assert_ne!(renewed, a);
        let c = claims_of(&a);
        assert_eq!(c["iss"], "https://gw.example");
        assert_eq!(c["aud"], "http://app:1");
        assert_eq!(c["sub"], "dev:a");
        assert_eq!(c["groups"], serde_json::json!(["ops"]));
        assert_eq!(c["email"], "a@example.com");
        assert_eq!(
            c.get("token_use"),
            None,
            "a user field made it a bearer token"
        );
        assert_eq!(
            c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
            LIFETIME
        );
        // Never past the session's end.
        let ending = verified(1_010);
        let c = claims_of(&signer.assertion(&ending, "http://app:1", 1_000).unwrap());
        assert_eq!(c["exp"], 1_010);
        // The same key after a restart.
        let again = Signer::load(dir.path(), "https://gw.example").unwrap();
        assert_eq!(again.key().to_bytes(), signer.key().to_bytes());
    }
}

//! A provider the tests control, on top of [`Fake`]: an OAuth2/OIDC authorization server that
//! plays honest (registered redirect URIs, single-use codes bound to their redirect URI and
//! PKCE challenge, RS256 id_tokens), malicious (the mix-up bounce: it sends the browser on to
//! an honest provider with values an attacker gave it, and records every code that reaches
//! its token endpoint), or sloppy (knobs on [`Idp::set`]: unverified emails, huge answers,
//! odd discovery documents, an `iss` response parameter of its choosing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::fakes::{Fake, Recorded, Reply};

/// What an attacker hands the malicious provider for the bounce.
#[derive(Clone, Debug)]
pub struct Bounce {
    /// The honest provider's authorization endpoint.
    pub authorize: String,
    /// The central's client id at the honest provider.
    pub client_id: String,
    /// The callback the central registered at the honest provider.
    pub redirect_uri: String,
    /// The attacker's PKCE challenge from their own pending login.
    pub code_challenge: String,
}

/// The knobs of one provider.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub client_id: String,
    /// Exact redirect URIs this provider accepts.
    pub redirect_uris: Vec<String>,
    /// Who is logged in at this provider (the user-info document; `sub` is the id).
    pub user: Value,
    /// Extra id_token claims (e.g. `aud`, `azp`), replacing the defaults.
    pub id_token_extra: Value,
    /// Members merged into the discovery document.
    pub discovery_extra: Value,
    /// `Some(v)`: authorization responses carry `iss=v`.
    pub iss_param: Option<String>,
    /// Paths answered with a streamed body of this many bytes instead.
    pub huge: Option<(String, usize)>,
    /// Malicious: every authorization request is bounced with these values.
    pub bounce: Option<Bounce>,
}

struct Grant {
    user: Value,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Value>,
    counter: u64,
}

pub struct Idp {
    pub fake: Fake,
    knobs: Arc<Mutex<Knobs>>,
}

impl Idp {
    /// A provider for `client_id`, logging everyone in as `user`.
    pub async fn start(client_id: &str, user: Value) -> Idp {
        let knobs = Arc::new(Mutex::new(Knobs {
            client_id: client_id.to_owned(),
            redirect_uris: Vec::new(),
            user,
            id_token_extra: json!({}),
            discovery_extra: json!({}),
            iss_param: None,
            huge: None,
            bounce: None,
        }));
        let issuer = Arc::new(Mutex::new(String::new()));
        let state = Arc::new(Mutex::new(State::default()));
        let (k, iss) = (knobs.clone(), issuer.clone());
        let fake = Fake::start_with(move |r| {
            let knobs = k.lock().unwrap().clone();
            let issuer = iss.lock().unwrap().clone();
            answer(r, &knobs, &issuer, &mut state.lock().unwrap())
        })
        .await;
        *issuer.lock().unwrap() = fake.url("");
        Idp { fake, knobs }
    }

    /// Changes the knobs.
    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.knobs.lock().unwrap());
    }

    pub fn issuer(&self) -> String {
        self.fake.url("")
    }

    /// The codes that reached this provider's token endpoint.
    pub fn codes_redeemed(&self) -> Vec<String> {
        self.fake
            .to("/token")
            .iter()
            .filter_map(|r| r.param("code"))
            .collect()
    }

    /// The central's `providers:` entry for this provider: `kind: oauth2` with its endpoints,
    /// or `kind: oidc` with discovery; `extra` more keys (each line indented six spaces).
    pub fn provider_yaml(&self, name: &str, kind: &str, extra: &str) -> String {
        let client_id = self.knobs.lock().unwrap().client_id.clone();
        let endpoints = match kind {
            "oidc" => format!("      issuer: {}\n", self.issuer()),
            _ => format!(
                "      authorize_url: {}\n      access_token_url: {}\n      user_info_url: {}\n",
                self.fake.url("/authorize"),
                self.fake.url("/token"),
                self.fake.url("/userinfo")
            ),
        };
        format!(
            "    {name}:\n      kind: {kind}\n      client_id: {client_id}\n      client_secret: s3cret\n\
             \x20     user_info_fields: [email, name]\n{endpoints}{extra}"
        )
    }
}

fn json_reply(status: u16, v: Value) -> Reply {
    (status, "application/json", v.to_string()).into()
}

fn answer(r: &Recorded, k: &Knobs, issuer: &str, st: &mut State) -> Reply {
    if let Some((path, bytes)) = &k.huge {
        if *path == r.path {
            return Reply::huge(*bytes);
        }
    }
    match r.path.as_str() {
        "/authorize" => authorize(r, k, st),
        "/token" => token(r, k, issuer, st),
        "/userinfo" => {
            let bearer = r
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "));
            match bearer.and_then(|t| st.tokens.get(t)) {
                Some(user) => json_reply(200, user.clone()),
                None => json_reply(401, json!({"error": "invalid_token"})),
            }
        }
        "/.well-known/openid-configuration" => {
            let mut doc = json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "userinfo_endpoint": format!("{issuer}/userinfo"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            });
            for (key, v) in k.discovery_extra.as_object().into_iter().flatten() {
                doc[key] = v.clone();
            }
            json_reply(200, doc)
        }
        "/jwks" => (
            200,
            "application/json",
            include_str!("../fixtures/google-test-jwks.json").to_owned(),
        )
            .into(),
        _ => (404, "text/plain", "not found".into()).into(),
    }
}

fn authorize(r: &Recorded, k: &Knobs, st: &mut State) -> Reply {
    let state = r.param("state").unwrap_or_default();
    if let Some(b) = &k.bounce {
        // The mix-up: on to the honest provider, with the victim's state (so the central
        // accepts the answer in the victim's browser) and the attacker's PKCE challenge.
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &b.client_id)
            .append_pair("redirect_uri", &b.redirect_uri)
            .append_pair("state", &state)
            .append_pair("code_challenge", &b.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        return Reply::redirect(&format!("{}?{q}", b.authorize));
    }
    let redirect_uri = r.param("redirect_uri").unwrap_or_default();
    if r.param("client_id").as_deref() != Some(k.client_id.as_str())
        || !k.redirect_uris.contains(&redirect_uri)
    {
        return (400, "text/plain", "unregistered redirect_uri".into()).into();
    }
    st.counter += 1;
    let code = format!("code-{}-{}", k.client_id, st.counter);
    st.codes.insert(
        code.clone(),
        Grant {
            user: k.user.clone(),
            redirect_uri: redirect_uri.clone(),
            challenge: r.param("code_challenge"),
            nonce: r.param("nonce"),
        },
    );
    let mut back = url::Url::parse(&redirect_uri).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    if let Some(iss) = &k.iss_param {
        back.query_pairs_mut().append_pair("iss", iss);
    }
    Reply::redirect(back.as_str())
}

fn token(r: &Recorded, k: &Knobs, issuer: &str, st: &mut State) -> Reply {
    let refuse = |why: &str| {
        json_reply(
            400,
            json!({"error": "invalid_grant", "error_description": why}),
        )
    };
    if k.bounce.is_some() {
        return refuse("the malicious provider only collects codes");
    }
    let Some(grant) = r.param("code").and_then(|c| st.codes.remove(&c)) else {
        return refuse("unknown or used code");
    };
    if r.param("redirect_uri").as_deref() != Some(grant.redirect_uri.as_str()) {
        return refuse("redirect_uri differs");
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = r.param("code_verifier").unwrap_or_default();
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        if computed != *challenge {
            return refuse("PKCE verification failed");
        }
    }
    st.counter += 1;
    let access = format!("at-{}", st.counter);
    st.tokens.insert(access.clone(), grant.user.clone());
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": 300});
    if let Some(nonce) = grant.nonce {
        body["id_token"] = Value::String(id_token(k, issuer, &grant.user, &nonce));
    }
    json_reply(200, body)
}

/// An RS256 id_token with the test key the JWKS publishes.
pub fn id_token(k: &Knobs, issuer: &str, user: &Value, nonce: &str) -> String {
    let now = oauthgate::util::now();
    let mut claims = json!({
        "iss": issuer, "aud": k.client_id, "sub": user["sub"], "iat": now, "exp": now + 300,
        "nonce": nonce,
    });
    for (key, v) in k.id_token_extra.as_object().into_iter().flatten() {
        claims[key] = v.clone();
    }
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../fixtures/google-test-rsa.pem"))
            .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-rsa-1".into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

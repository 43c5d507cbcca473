//! Provider-shaped fakes for what no local real peer can play: GitHub's, Google's and
//! Facebook's own API quirks. A fake is a real HTTP server on 127.0.0.1:0 that records every
//! request and answers through a closure the test gives it: a plain [`Answer`], or a
//! [`Reply`] with headers (redirects) or a streamed body of any size.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    /// A parameter of the query string or of a form body.
    pub fn param(&self, key: &str) -> Option<String> {
        let from = |text: &str| {
            url::form_urlencoded::parse(text.as_bytes())
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        from(&self.query).or_else(|| from(&self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a fake answers: status, content type, body.
pub type Answer = (u16, &'static str, String);
type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A full answer: status, headers, and a body given whole or streamed.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
}

pub enum ReplyBody {
    Text(String),
    /// This many bytes of JSON-looking filler (`[0,0,…`), in 64 KiB chunks, with no
    /// `Content-Length`: the reader only learns the size by reading.
    Stream(usize),
}

impl Reply {
    pub fn redirect(location: &str) -> Reply {
        Reply {
            status: 302,
            headers: vec![("location", location.to_owned())],
            body: ReplyBody::Text(String::new()),
        }
    }

    pub fn huge(bytes: usize) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: ReplyBody::Stream(bytes),
        }
    }
}

impl From<Answer> for Reply {
    fn from((status, content_type, body): Answer) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            body: ReplyBody::Text(body),
        }
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Fake {
    pub async fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Fake {
        Self::start_with(move |r| handler(r).into()).await
    }

    /// A fake whose closure answers with a [`Reply`].
    pub async fn start_with(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (log, handler) = (log.clone(), handler.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, log.clone(), handler.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Fake { addr, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests made to `path`.
    pub fn to(&self, path: &str) -> Vec<Recorded> {
        self.seen().into_iter().filter(|r| r.path == path).collect()
    }
}

async fn answer(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Handler>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().unwrap().push(recorded.clone());
    let reply = handler(&recorded);
    let body = match reply.body {
        ReplyBody::Text(text) => Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
        ReplyBody::Stream(total) => {
            let chunk = Bytes::from(vec![b'0'; 64 * 1024]);
            let chunks = (0..total.div_ceil(chunk.len())).map(move |i| {
                let left = total - i * chunk.len();
                Ok::<_, Infallible>(Frame::data(chunk.slice(..left.min(chunk.len()))))
            });
            let first = std::iter::once(Ok(Frame::data(Bytes::from_static(b"["))));
            StreamBody::new(futures_util::stream::iter(first.chain(chunks))).boxed()
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::from_u16(reply.status).expect("status");
    for (name, value) in reply.headers {
        res.headers_mut()
            .append(name, value.parse().expect("header value"));
    }
    Ok(res)
}

/// A GitHub-shaped provider for `groups: true`: the token `gho_token` for the code
/// `good-code`, `/user` (octocat), `/user/emails`, and `/user/orgs` and `/user/teams`
/// paginated two entries a page with GitHub's `Link` header. The last page of teams links on
/// to another origin (`localhost` for `127.0.0.1`), which a client must not follow with the
/// token: such requests show up in [`Fake::seen`] with that `Host`.
pub async fn github_with_groups(
    orgs: &'static [&'static str],
    teams: &'static [(&'static str, &'static str)],
) -> Fake {
    Fake::start_with(move |r: &Recorded| {
        let json = |v: serde_json::Value| Reply::from((200, "application/json", v.to_string()));
        let authorized = r.header("authorization") == Some("Bearer gho_token");
        let page: usize = r.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let host = r.header("host").unwrap_or_default().to_owned();
        let paged = |items: Vec<serde_json::Value>, path: &str| {
            let chunk: Vec<_> = items.iter().skip((page - 1) * 2).take(2).cloned().collect();
            let mut reply = json(serde_json::Value::Array(chunk));
            if page * 2 < items.len() {
                let link = format!("<http://{host}{path}?per_page=100&page={}>; rel=\"next\"", page + 1);
                reply.headers.push(("link", link));
            } else if path == "/user/teams" {
                let port = host.rsplit(':').next().unwrap_or_default();
                let link = format!("<http://localhost:{port}{path}?page=99>; rel=\"next\"");
                reply.headers.push(("link", link));
            }
            reply
        };
        match r.path.as_str() {
            "/login/oauth/access_token" if r.param("code").as_deref() == Some("good-code") => {
                json(serde_json::json!({"access_token": "gho_token", "token_type": "bearer"}))
            }
            "/login/oauth/access_token" => json(serde_json::json!({"error": "bad_verification_code"})),
            _ if !authorized => (401, "application/json", "{}".to_owned()).into(),
            "/user" => json(serde_json::json!({"login": "octocat", "id": 583231})),
            "/user/emails" => json(serde_json::json!([{"email": "octocat@github.com", "primary": true, "verified": true}])),
            "/user/orgs" => paged(orgs.iter().map(|o| serde_json::json!({"login": o})).collect(), "/user/orgs"),
            "/user/teams" => paged(
                teams.iter().map(|(o, t)| serde_json::json!({"slug": t, "organization": {"login": o}})).collect(),
                "/user/teams",
            ),
            _ => (404, "text/plain", "not found".to_owned()).into(),
        }
    })
    .await
}

/// A bearer-token issuer as an OIDC provider publishes one: discovery (`issuer` is
/// `http://<its address>`) and a JWKS of the public halves of `keys`, which a test may change
/// while it runs (a key rotation).
pub async fn jwt_issuer(keys: Arc<Mutex<Vec<ed25519_dalek::SigningKey>>>) -> Fake {
    Fake::start_with(move |r: &Recorded| {
        let host = r.header("host").unwrap_or_default().to_owned();
        let body = match r.path.as_str() {
            "/.well-known/openid-configuration" => serde_json::json!({
                "issuer": format!("http://{host}"),
                "jwks_uri": format!("http://{host}/jwks"),
            }),
            "/jwks" => {
                let keys: Vec<_> = keys
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|k| k.verifying_key())
                    .collect();
                oauthgate::assertion::jwks(&keys)
            }
            _ => return (404, "text/plain", String::new()).into(),
        };
        Reply::from((200, "application/json", body.to_string()))
    })
    .await
}

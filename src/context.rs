//! One request's context: what the phases learn about a request as it goes (who sent it,
//! its request id, whether a browser navigates, which route took it, who the user is, what
//! was decided and why, when it started), read at the end by the error edge and the access
//! log. pingora's per-request `CTX` is the model.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::Request;
use rand::RngCore;

use crate::error::RequestError;
use crate::metrics::RouteStats;
use crate::pages;

/// `X-Request-Id` (SPEC §7): set on every proxied request, echoed in every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What was decided about a request: the access line's `decision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Login,
    Deny,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Login => "login",
            Verdict::Deny => "deny",
            Verdict::Error => "error",
        }
    }
}

/// The logged-in user, as far as the context needs it (kept behind the role's own type).
pub trait User: Send + Sync {
    /// The provider's stable id of the user (`sub`).
    fn sub(&self) -> &str;

    /// A `Set-Cookie` the response must carry: the session's cookie, renewed.
    fn renewal(&self) -> Option<&HeaderValue> {
        None
    }
}

/// The user of a request whose session was read by waiting (a Redis read, a bearer token):
/// the role's future cannot reach the context, so it leaves the user in the response's
/// extensions, and the edge moves it to [`RequestCtx::user`] (for the access line and a
/// renewed cookie).
#[derive(Clone)]
pub struct LaterUser(pub Arc<dyn User>);

pub struct RequestCtx<'a> {
    /// The client's address (the TCP peer).
    pub peer: SocketAddr,
    /// The TLS server name (SNI) the client asked for, if it sent one.
    pub sni: Option<&'a str>,
    /// `X-Request-Id`: a trusted proxy's, or ours.
    pub request_id: HeaderValue,
    /// A browser navigation (SPEC §4): it may be redirected and gets HTML pages; otherwise an
    /// API call, which gets JSON. Read once from the request's headers.
    pub navigation: bool,
    /// The prefix of the route (or of the role's own endpoints) that took the request: a
    /// bounded label, never the raw path.
    pub route: Option<&'a str>,
    /// That route's counters, when metrics are on.
    pub stats: Option<&'a RouteStats>,
    /// Who the session says the user is, once the policy phase has read it.
    pub user: Option<Arc<dyn User>>,
    /// What the phase that decided said, and for `deny` and `error` why (a short, fixed word).
    /// `None` until a phase decides; the error edge decides for the rest.
    pub verdict: Option<(Verdict, Option<&'static str>)>,
    /// When the request arrived, read only when something (the access log) will use it.
    pub started: Option<Instant>,
}

impl<'a> RequestCtx<'a> {
    /// `trusted` are the peers whose `X-Request-Id` is kept (`gateway.trusted_proxies`).
    pub fn new<B>(
        req: &Request<B>,
        peer: SocketAddr,
        sni: Option<&'a str>,
        timed: bool,
        trusted: &[IpAddr],
    ) -> Self {
        // One pass over the headers for both (three lookups cost more).
        let mut navigation = pages::Navigation::default();
        let mut sent_ids = (None, 0);
        for (name, value) in req.headers() {
            if *name == X_REQUEST_ID {
                sent_ids = (sent_ids.0.or(Some(value)), sent_ids.1 + 1);
            } else {
                navigation.see(name, value);
            }
        }
        let sent_id = match sent_ids {
            (Some(v), 1) => Some(v),
            _ => None,
        };
        RequestCtx {
            peer,
            sni,
            request_id: request_id(sent_id, peer.ip(), trusted),
            navigation: navigation.is(),
            route: None,
            stats: None,
            user: None,
            verdict: None,
            started: timed.then(Instant::now),
        }
    }

    /// Records the decision, unless an earlier phase made one.
    pub fn decide(&mut self, verdict: Verdict, reason: Option<&'static str>) {
        self.verdict.get_or_insert((verdict, reason));
    }

    /// Records what a failed request's error says was decided: a login that is needed,
    /// a refusal (4xx) or an error (5xx), with the error's kind as the reason. A refusal by
    /// an earlier phase stands; a pass does not, once what came after it failed.
    pub fn failed(&mut self, e: &RequestError) {
        if let Some((Verdict::Pass, _)) = self.verdict {
            self.verdict = None;
        }
        let reason = match e {
            RequestError::LoginRequired { .. } => return self.decide(Verdict::Login, None),
            // `allow` refused (`/_auth/check`'s answer says `forbidden`): the word of the
            // proxied path's decision, so one query finds both.
            RequestError::Forbidden {
                reason: "forbidden",
                ..
            } => "not_allowed",
            RequestError::Forbidden { reason, .. } => reason,
            RequestError::BadPath(_) => "bad_path",
            RequestError::BadHost(_) => "bad_host",
            RequestError::Misdirected => "misdirected",
            RequestError::MethodNotAllowed | RequestError::MethodNotListed { .. } => {
                "method_not_allowed"
            }
            RequestError::BodyTimeout => "body_timeout",
            RequestError::BadBearer => "invalid_token",
            RequestError::BearerRequired => "token_required",
            RequestError::NoRoute => "no_route",
            RequestError::NotFound => "not_found",
            RequestError::Upstream { .. } => "upstream_unavailable",
            RequestError::UpstreamTimeout => "upstream_timeout",
            RequestError::Invalid(_) => "invalid",
            RequestError::Login { .. } => "login_failed",
            RequestError::Internal(_) => "internal",
            RequestError::SessionStore => "session_store",
        };
        let verdict = if e.status().is_server_error() {
            Verdict::Error
        } else {
            Verdict::Deny
        };
        self.decide(verdict, Some(reason));
    }
}

/// The request's id: the one a trusted proxy sent (`sent`, when it sent exactly one) when it
/// is sane (1 to 200 visible ASCII characters), else a new one.
fn request_id(sent: Option<&HeaderValue>, peer: IpAddr, trusted: &[IpAddr]) -> HeaderValue {
    if let Some(v) = sent {
        let sane = (1..=200).contains(&v.len()) && v.as_bytes().iter().all(u8::is_ascii_graphic);
        if sane && trusted.contains(&peer) {
            let mut v = v.clone();
            v.set_sensitive(true);
            return v;
        }
    }
    new_request_id()
}

/// The length of an id of ours: 16 random bytes in unpadded base64url.
pub const ID_LEN: usize = 22;

thread_local! {
    /// Ids are cut from a shared 1 KiB block: one allocation per 46 ids instead of one each.
    static IDS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// 16 bytes in unpadded base64url (RFC 4648 §5): the `base64` crate's general engine cost
/// more to set up than these 22 characters take to write.
fn id_text(raw: &[u8; 16]) -> [u8; ID_LEN] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = [0u8; ID_LEN];
    // Five groups of three bytes make twenty characters; the last byte makes two.
    for (group, out) in raw.chunks(3).zip(text.chunks_mut(4)) {
        let at = |i: usize| u32::from(group.get(i).copied().unwrap_or(0));
        let bits = at(0) << 16 | at(1) << 8 | at(2);
        for (k, c) in out.iter_mut().enumerate() {
            *c = ALPHABET[(bits >> (18 - 6 * k)) as usize & 63];
        }
    }
    text
}

/// A new id: 128 bits from the thread's ChaCha generator (seeded from the OS, no system call
/// per id). Marked sensitive so that HTTP/2 never indexes it in HPACK: each is used once,
/// and an indexed one would keep its whole block alive for the connection's life.
pub fn new_request_id() -> HeaderValue {
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    let text = id_text(&raw);
    let bytes = IDS
        .try_with(|ids| {
            let mut ids = ids.borrow_mut();
            if ids.capacity() - ids.len() < ID_LEN {
                *ids = BytesMut::with_capacity(1024);
            }
            ids.extend_from_slice(&text);
            ids.split().freeze()
        })
        .unwrap_or_else(|_| bytes::Bytes::copy_from_slice(&text));
    let mut v = HeaderValue::from_maybe_shared(bytes).unwrap_or(HeaderValue::from_static("-"));
    v.set_sensitive(true);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// An id's text is the `base64` crate's unpadded base64url of its bytes.
        #[test]
        fn id_text_is_base64url(raw: [u8; 16]) {
            use base64::Engine as _;
            let text = id_text(&raw);
            let crate_says = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            proptest::prop_assert_eq!(std::str::from_utf8(&text).unwrap(), crate_says);
        }
    }

    fn ctx_for(id: Option<&str>, peer: &str, trusted: &[IpAddr]) -> HeaderValue {
        let mut req = Request::builder();
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let peer: SocketAddr = format!("{peer}:1234").parse().unwrap();
        RequestCtx::new(&req.body(()).unwrap(), peer, None, false, trusted).request_id
    }

    #[test]
    fn ids_are_22_base64url_characters_and_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = new_request_id();
            assert_eq!(id.len(), ID_LEN);
            assert!(id
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn a_client_id_is_kept_only_from_a_trusted_proxy_and_only_when_sane() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(ctx_for(Some("abc-1"), "10.0.0.1", &[proxy]), "abc-1");
        assert_ne!(ctx_for(Some("abc-1"), "10.0.0.2", &[proxy]), "abc-1");
        let long = "a".repeat(201);
        for bad in [long.as_str(), "a b", "", "caf\u{e9}", "a\tb"] {
            let got = ctx_for(Some(bad), "10.0.0.1", &[proxy]);
            assert_eq!(got.len(), ID_LEN, "{bad:?} was kept");
        }
        assert_eq!(ctx_for(None, "10.0.0.1", &[proxy]).len(), ID_LEN);
        // Two ids, even from a trusted proxy: neither is kept.
        let two = Request::builder()
            .header("x-request-id", "abc-1")
            .header("x-request-id", "abc-2")
            .body(())
            .unwrap();
        let peer: SocketAddr = "10.0.0.1:1234".parse().unwrap();
        let got = RequestCtx::new(&two, peer, None, false, &[proxy]).request_id;
        assert!(got != "abc-1" && got != "abc-2" && got.len() == ID_LEN);
    }

    #[test]
    fn errors_decide_by_their_kind() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let req = Request::new(());
        let verdict = |e: RequestError| {
            let mut ctx = RequestCtx::new(&req, peer, None, false, &[]);
            ctx.failed(&e);
            ctx.verdict.unwrap()
        };
        assert_eq!(
            verdict(RequestError::NoRoute),
            (Verdict::Deny, Some("no_route"))
        );
        assert_eq!(
            verdict(RequestError::UpstreamTimeout),
            (Verdict::Error, Some("upstream_timeout"))
        );
        let login = RequestError::LoginRequired {
            login_url: "/x".into(),
            redirect: true,
        };
        assert_eq!(verdict(login), (Verdict::Login, None));
        let refused = |reason| RequestError::Forbidden { reason, page: None };
        assert_eq!(
            verdict(refused("forbidden")),
            (Verdict::Deny, Some("not_allowed"))
        );
        assert_eq!(
            verdict(refused("untrusted_proxy")),
            (Verdict::Deny, Some("untrusted_proxy"))
        );
        let mut ctx = RequestCtx::new(&req, peer, None, false, &[]);
        ctx.decide(Verdict::Deny, Some("not_allowed"));
        ctx.failed(&RequestError::NotFound);
        assert_eq!(ctx.verdict, Some((Verdict::Deny, Some("not_allowed"))));
        let mut ctx = RequestCtx::new(&req, peer, None, false, &[]);
        ctx.decide(Verdict::Pass, None);
        ctx.failed(&RequestError::UpstreamTimeout);
        assert_eq!(
            ctx.verdict,
            Some((Verdict::Error, Some("upstream_timeout")))
        );
    }
}

//! Small helpers shared across the crate: the hop-by-hop header names, query strings, Unix
//! time, random tokens, error chains, two pieces of the proxy path (a lazily moved timer, the
//! end of a body), and the plain HTTP/1.1 listener of short answers (metrics, `http_listen`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::LocalKey;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http::Request;
use hyper::body::{Body, Frame};
use rand::RngCore;
use tokio::time::{Instant, Sleep};

use crate::error::RequestError;

/// Keeps `spare` on this thread's `list` of at most `most` (a full list drops it; so does a
/// thread being torn down): the per-thread spares of the hot path (buffers, header maps).
pub fn keep_spare<T>(list: &'static LocalKey<RefCell<Vec<T>>>, spare: T, most: usize) {
    let _ = list.try_with(|l| {
        let mut spares = l.borrow_mut();
        if spares.len() < most {
            if spares.capacity() == 0 {
                spares.reserve_exact(most);
            }
            spares.push(spare);
        }
    });
}

/// Whether a `Connection` value lists no option but `keep-alive` (empty items aside), read as
/// bytes: every keep-alive response's, which the hot path looks at twice.
pub fn only_keep_alive(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .all(|t| t.is_empty() || t.eq_ignore_ascii_case(b"keep-alive"))
}

/// Whether `name` (lower case) is a hop-by-hop header, which the gateway never forwards and
/// an identity header may not be named: RFC 9110 §7.6.1 (and `Proxy-Connection`,
/// `Keep-Alive` from RFC 2068 practice; the proxy credentials of RFC 9110 §11.7 belong to this
/// hop only; `HTTP2-Settings` is hop-by-hop by RFC 7540 §3.2.1). One match on the text (a
/// length switch, then one comparison): it runs for every header of every message.
pub fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "http2-settings"
    )
}

/// 24 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// 32 random bytes as 64 hex digits: a generated secret (session keys).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    crate::assertion::hex(&bytes)
}

/// An error and its sources, joined with ": ", for logs and error details.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

thread_local! {
    /// This thread's number among the serving threads (`server/threads.rs`).
    static SERVING_THREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// This thread's number among the serving threads: 0 for the first, and for a thread that is
/// none of them (the blocking pool, tests). State kept per serving thread is indexed by it.
pub fn serving_thread() -> usize {
    SERVING_THREAD.with(std::cell::Cell::get)
}

/// Numbers this thread among the serving threads.
pub fn set_serving_thread(index: usize) {
    SERVING_THREAD.with(|i| i.set(index));
}

/// One value per serving thread, each on cache lines of its own: state that every request
/// writes (a lock, a stack's length) must not share a line with another thread's, or the two
/// cores hand the line back and forth on every request (false sharing).
pub struct PerThread<T>(Box<[OwnLines<T>]>);

/// Values verified once (a session cookie opened, a token checked), by the text they came
/// from: a map per serving thread, so that no lock or reference count it hands out is written
/// by two cores. Hashed with foldhash: only texts that verified are kept, so no client can
/// choose keys to collide. At most `capacity` values, all threads together; a full map starts
/// afresh.
pub struct Memo<V> {
    maps: PerThread<Mutex<MemoMap<V>>>,
    /// Each thread's share of the capacity (at least 1).
    each: usize,
}

type MemoMap<V> = HashMap<Box<[u8]>, Arc<V>, foldhash::fast::RandomState>;

impl<V> Memo<V> {
    /// An empty memo for at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        let maps = PerThread::new(Default::default);
        let each = (capacity / maps.0.len()).max(1);
        Memo { maps, each }
    }

    /// What `key` verified to, if this thread remembers it. Bytes: a key read from a header
    /// is looked up before any check of it (only keys that verified are ever remembered).
    pub fn get(&self, key: &[u8]) -> Option<Arc<V>> {
        self.maps.mine().lock().ok()?.get(key).cloned()
    }

    /// Remembers what `key` verified to, on this thread.
    pub fn remember(&self, key: &[u8], value: Arc<V>) {
        if let Ok(mut map) = self.maps.mine().lock() {
            if map.len() >= self.each {
                map.clear();
            }
            map.insert(key.into(), value);
        }
    }
}

/// 128 bytes: x86 prefetches lines in pairs, so two neighbours 64 bytes apart still collide.
#[repr(align(128))]
struct OwnLines<T>(T);

impl<T> PerThread<T> {
    /// One value for each serving thread, made by `make`.
    pub fn new(make: impl Fn() -> T) -> Self {
        PerThread((0..serving_threads()).map(|_| OwnLines(make())).collect())
    }

    /// This thread's value (the first one's on a thread that does not serve).
    pub fn mine(&self) -> &T {
        // A division (one of the slowest instructions) only for a number past the count,
        // which no serving thread has unless the count changed: then they wrap around.
        let (i, n) = (serving_thread(), self.0.len());
        &self.0[if i < n { i } else { i % n }].0
    }

    /// Every thread's value.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|v| &v.0)
    }
}

/// How many threads serve: `TOKIO_WORKER_THREADS` when set (the knob tokio's own runtime
/// read before), else one per core the process may use.
pub fn serving_threads() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<std::num::NonZeroUsize>().ok())
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, std::num::NonZeroUsize::get)
}

/// Whether `bytes` (what was read since the last look, with the three bytes before it) could
/// end an HTTP/1.1 head: `\n\n`, or `\n\r\n` as in `\r\n\r\n`. Both HTTP/1.1 parsers parse a
/// head again only then: a parse reads the whole buffer, so parsing after every read would
/// cost a head dribbled a byte at a time its length squared (hyper looks the same way).
pub fn may_end_head(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The tokens of every `Connection` header (RFC 9110 §7.6.1). Split as bytes, so that one
/// non-UTF-8 token does not hide the others.
pub fn connection_tokens(headers: &http::HeaderMap) -> impl Iterator<Item = &str> {
    tokens(&headers.get_all(http::header::CONNECTION))
}

/// The comma-separated tokens of `values`, trimmed, empty and non-UTF-8 ones left out.
pub fn tokens<'a>(
    values: &http::header::GetAll<'a, http::HeaderValue>,
) -> impl Iterator<Item = &'a str> {
    values
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t.trim_ascii()).ok())
        .filter(|t| !t.is_empty())
}

/// How long a form we serve may take to arrive once its request head has. Our forms are a
/// few hundred bytes, sent at once by any browser; a client that trickles one holds a
/// connection slot (and an HTTP/2 connection's idle timer) meanwhile.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a small `application/x-www-form-urlencoded` body (a form we serve): at most `max`
/// bytes, within [`FORM_TIMEOUT`]. The content type and a declared length are checked
/// before any byte of the body is waited for.
pub async fn read_form(
    headers: &http::HeaderMap,
    body: crate::body::RequestBody,
    max: usize,
) -> Result<Query, RequestError> {
    use http_body_util::{BodyExt, Limited};
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(RequestError::Invalid(
            "The form must be sent as application/x-www-form-urlencoded.".into(),
        ));
    }
    let too_large = || RequestError::Invalid("The form is too large.".into());
    if body.size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    let bytes = tokio::time::timeout(FORM_TIMEOUT, Limited::new(body, max).collect())
        .await
        .map_err(|_| RequestError::BodyTimeout)?
        .map_err(|_| too_large())?
        .to_bytes();
    Ok(Query::parse(&String::from_utf8_lossy(&bytes)))
}

/// A request's query parameters (first value wins).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn of<B>(req: &Request<B>) -> Self {
        Self::parse(req.uri().query().unwrap_or(""))
    }

    pub fn parse(text: &str) -> Self {
        Query(
            url::form_urlencoded::parse(text.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, key: &str) -> Result<&str, RequestError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| RequestError::Invalid(format!("The {key} parameter is missing.")))
    }
}

/// Whether `deadline` has passed; if not, `timer` wakes the task by then. The timer is moved
/// only when it goes off early (armed for an earlier deadline that was met), so a deadline
/// that moves later with every request costs a timer-wheel update at most once per period.
pub fn deadline_passed(
    timer: &mut Pin<Box<Sleep>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    while timer.as_mut().poll(cx).is_ready() {
        if Instant::now() >= deadline {
            return true;
        }
        timer.as_mut().reset(deadline);
    }
    false
}

/// What `Body::poll_frame` returns.
pub type PolledFrame<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

/// Whether `frame`, just polled from `body`, is the last one hyper will ask for: the end, the
/// trailers, or a data frame after which the body says it has ended.
pub fn ends_body<B: Body>(frame: &PolledFrame<B>, body: &B) -> bool {
    match frame {
        Poll::Ready(None) => true,
        Poll::Ready(Some(Ok(f))) => f.is_trailers() || body.is_end_stream(),
        _ => false,
    }
}

/// Serves `listener` with plain HTTP/1.1, each request answered at once by `answer`, until the
/// task is aborted. At most `max_connections` are open (more are closed at accept): all these
/// listeners send are short answers, so a cap costs no real client anything. `name` goes into
/// the log lines.
pub async fn serve_plain<F>(listener: tokio::net::TcpListener, name: &'static str, answer: F)
where
    F: Fn(&Request<hyper::body::Incoming>) -> http::Response<http_body_util::Full<bytes::Bytes>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    const MAX_CONNECTIONS: usize = 1024;
    let room = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, listener = name, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = room.clone().try_acquire_owned() else {
            tracing::debug!(peer = %peer, listener = name, "connection refused at the cap");
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let res = answer(&req);
                async move { Ok::<_, std::convert::Infallible>(res) }
            });
            let mut h1 = hyper::server::conn::http1::Builder::new();
            h1.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .max_buf_size(16 * 1024);
            let io = hyper_util::rt::TokioIo::new(tcp);
            if let Err(e) = h1.serve_connection(io, service).await {
                tracing::debug!(error = %e, peer = %peer, listener = name, "connection ended");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn each_serving_thread_has_its_value_on_lines_of_its_own() {
        let values = PerThread(
            (0..3)
                .map(|i| OwnLines(std::sync::atomic::AtomicUsize::new(i)))
                .collect(),
        );
        let at: Vec<usize> = values.all().map(|v| v as *const _ as usize).collect();
        assert!(at.windows(2).all(|w| w[1] - w[0] >= 128), "{at:?}");
        // A thread that does not serve gets the first; a serving thread its own.
        assert_eq!(values.mine().load(Relaxed), 0);
        set_serving_thread(2);
        assert_eq!(values.mine().load(Relaxed), 2);
        set_serving_thread(4);
        assert_eq!(
            values.mine().load(Relaxed),
            1,
            "wraps around past the count"
        );
        set_serving_thread(0);
    }

    #[test]
    fn a_memo_keeps_its_thread_share_of_the_capacity_then_starts_afresh() {
        let memo: Memo<u32> = Memo::new(2 * serving_threads());
        memo.remember(b"a", Arc::new(1));
        memo.remember(b"b", Arc::new(2));
        assert_eq!(memo.get(b"a").as_deref(), Some(&1));
        assert_eq!(memo.get(b"b").as_deref(), Some(&2));
        // A third value on this thread: its share (2) was full.
        memo.remember(b"c", Arc::new(3));
        assert!(memo.get(b"a").is_none() && memo.get(b"b").is_none());
        assert_eq!(memo.get(b"c").as_deref(), Some(&3));
    }
}

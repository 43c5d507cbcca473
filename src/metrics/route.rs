//! One route's counters: requests by status code, their durations, upstream failures by kind.
//! Resolved once per route when a config is built, so counting a request is a few relaxed
//! atomic additions on memory the route already owns: no lock, no map lookup, no allocation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::histogram::Histogram;
use crate::error::RequestError;

/// Status codes a response can have (RFC 9110 §15: three digits, 100 to 599).
const CODES: usize = 500;
const FIRST_CODE: u16 = 100;

/// How a request to an upstream failed: a small fixed set, so the label stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// No connection could be opened (refused, unreachable, TLS handshake failed).
    Connect,
    /// No response head within `upstream.response_timeout` (or no connection within
    /// `connect_timeout`).
    Timeout,
    /// The connection was reset or closed before a whole response head came.
    Reset,
    /// Anything else: an answer that is not HTTP, a bad `101`, …
    Protocol,
    /// The response body brought nothing for `limits.upstream_body_idle_timeout` and was cut
    /// (counted after the request's status, which the client had already received).
    BodyStalled,
}

impl UpstreamError {
    pub const ALL: [UpstreamError; 5] = [
        UpstreamError::Connect,
        UpstreamError::Timeout,
        UpstreamError::Reset,
        UpstreamError::Protocol,
        UpstreamError::BodyStalled,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Reset => "reset",
            UpstreamError::Protocol => "protocol",
            UpstreamError::BodyStalled => "body_stalled",
        }
    }

    /// The kind of an upstream failure, `None` for any other error. Only failed requests
    /// come here, so walking the error's causes is off the fast path.
    pub fn of(e: &RequestError) -> Option<Self> {
        match e {
            RequestError::UpstreamTimeout => Some(UpstreamError::Timeout),
            RequestError::Upstream { what, source } => {
                Some(classify(what, source.as_ref().map(|e| &**e as _)))
            }
            _ => None,
        }
    }
}

fn classify(what: &str, source: Option<&(dyn std::error::Error + 'static)>) -> UpstreamError {
    use std::io::ErrorKind;
    let mut cause = source;
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused
                | ErrorKind::AddrNotAvailable
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable => return UpstreamError::Connect,
                ErrorKind::TimedOut => return UpstreamError::Timeout,
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof => return UpstreamError::Reset,
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                return UpstreamError::Reset;
            }
            if h.is_timeout() {
                return UpstreamError::Timeout;
            }
        }
        cause = e.source();
    }
    // upstream.rs words every failure to open a connection (TCP or TLS) this way.
    if what.starts_with("connecting to") {
        UpstreamError::Connect
    } else {
        UpstreamError::Protocol
    }
}

/// The counters of one route (or of `-`, requests no route took).
#[derive(Debug)]
pub struct RouteStats {
    codes: Box<[AtomicU64]>,
    pub(super) duration: Histogram,
    upstream: [AtomicU64; UpstreamError::ALL.len()],
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            codes: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
            duration: Histogram::default(),
            upstream: Default::default(),
        }
    }
}

impl RouteStats {
    /// Counts one answered request.
    pub fn record(&self, code: u16, took: Duration, failed: Option<UpstreamError>) {
        let i = usize::from(code.saturating_sub(FIRST_CODE)).min(CODES - 1);
        self.codes[i].fetch_add(1, Relaxed);
        self.duration.observe(took);
        if let Some(kind) = failed {
            self.upstream[kind as usize].fetch_add(1, Relaxed);
        }
    }

    /// Counts an upstream failure noticed after the request was counted (a stalled body).
    pub fn count_upstream_error(&self, kind: UpstreamError) {
        self.upstream[kind as usize].fetch_add(1, Relaxed);
    }

    /// Status codes seen so far, with their counts.
    pub(super) fn codes(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.codes.iter().zip(FIRST_CODE..).filter_map(|(n, code)| {
            let n = n.load(Relaxed);
            (n > 0).then_some((code, n))
        })
    }

    /// Upstream failures so far, by kind (kinds never seen are left out).
    pub(super) fn upstream_errors(&self) -> impl Iterator<Item = (UpstreamError, u64)> + '_ {
        UpstreamError::ALL.into_iter().filter_map(|k| {
            let n = self.upstream[k as usize].load(Relaxed);
            (n > 0).then_some((k, n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_counted_apart() {
        let s = RouteStats::default();
        for code in [200, 200, 404, 599, 100] {
            s.record(code, Duration::ZERO, None);
        }
        let codes: Vec<_> = s.codes().collect();
        assert_eq!(codes, [(100, 1), (200, 2), (404, 1), (599, 1)]);
    }

    #[test]
    fn upstream_failures_are_classified() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = RequestError::upstream("connecting to 127.0.0.1:1", refused);
        assert_eq!(UpstreamError::of(&e), Some(UpstreamError::Connect));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = RequestError::upstream("the request failed", reset);
        assert_eq!(UpstreamError::of(&e), Some(UpstreamError::Reset));
        assert_eq!(
            UpstreamError::of(&RequestError::UpstreamTimeout),
            Some(UpstreamError::Timeout)
        );
        assert_eq!(UpstreamError::of(&RequestError::NotFound), None);
        let s = RouteStats::default();
        s.record(502, Duration::ZERO, Some(UpstreamError::Reset));
        let kinds: Vec<_> = s.upstream_errors().collect();
        assert_eq!(kinds, [(UpstreamError::Reset, 1)]);
    }
}

//! An upstream's failures by kind: counted (what `oauthgate_upstream_errors_total{route,kind}`
//! exports) and logged at warn, at most one line per kind per period with the number of
//! similar ones folded into it, so that a dead backend under load does not flood the log.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::warn;

use crate::error::RequestError;
use crate::warnlimit::WarnLimit;

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No connection: refused, unreachable, TLS failed.
    Connect,
    /// No response head in time (connect or `response_timeout`), or the upstream stopped
    /// reading the request body.
    Timeout,
    /// A response body that brought nothing for `limits.upstream_body_idle_timeout`.
    BodyStalled,
    /// Anything else: the connection reset, an answer that is not HTTP.
    Failed,
}

impl Kind {
    #[cfg(test)]
    pub const ALL: [Kind; 4] = [
        Kind::Connect,
        Kind::Timeout,
        Kind::BodyStalled,
        Kind::Failed,
    ];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Timeout => "timeout",
            Kind::BodyStalled => "body_stalled",
            Kind::Failed => "failed",
        }
    }

    /// The kind of an upstream's request error; `None` for errors that are not the
    /// upstream's (a client's stalled upload).
    pub fn of(e: &RequestError) -> Option<Kind> {
        match e {
            RequestError::UpstreamTimeout => Some(Kind::Timeout),
            RequestError::Upstream { what, .. } if what.starts_with(super::CONNECTING) => {
                Some(Kind::Connect)
            }
            RequestError::Upstream { .. } => Some(Kind::Failed),
            _ => None,
        }
    }
}

/// One upstream origin's error counts and warning limits.
#[derive(Debug, Default)]
pub struct Errors {
    counts: [AtomicU64; 4],
    warnings: [WarnLimit; 4],
}

impl Errors {
    /// How many failures of `kind` so far (Prometheus counts per route instead, in
    /// `metrics::RouteStats`; this one is for the tests of the warning's folding).
    #[cfg(test)]
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts[kind as usize].load(Ordering::Relaxed)
    }

    /// Counts a failure and logs it unless a line for the same kind was written lately.
    pub fn note(&self, upstream: &str, kind: Kind, error: &dyn std::error::Error) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
        let Some(folded) = self.warnings[kind as usize].check() else {
            return;
        };
        let error = crate::util::error_chain(error);
        let kind = kind.as_str();
        if folded == 0 {
            warn!(upstream, kind, error, "upstream error");
        } else {
            warn!(
                upstream,
                kind, error, folded, "upstream error ({folded} similar warnings folded)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_index_their_slots() {
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i);
        }
        let errors = Errors::default();
        let e = std::io::Error::other("reset");
        errors.note("127.0.0.1:1", Kind::BodyStalled, &e);
        errors.note("127.0.0.1:1", Kind::BodyStalled, &e);
        assert_eq!(errors.count(Kind::BodyStalled), 2);
        assert_eq!(errors.count(Kind::Connect), 0);
        assert_eq!(
            Kind::of(&RequestError::upstream(
                format!("{} 127.0.0.1:1", super::super::CONNECTING),
                e
            )),
            Some(Kind::Connect)
        );
        assert_eq!(Kind::of(&RequestError::BodyTimeout), None);
    }
}

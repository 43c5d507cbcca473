//! The Redis session store (`gateway.session.store: redis://…`): the cookie holds only a
//! sealed random id; the session lives in Redis under `oauthgate:session:<id>` with its TTL,
//! and a set per user (`oauthgate:sub:<sub>`) lets `sessions revoke --sub` find theirs
//! without a SCAN. A small in-process cache answers most requests without waiting on Redis:
//! an entry is believed for at most [`FRESH`], which is the revocation bound.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::RedisResult;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tracing::warn;

use super::{Session, Verified};
use crate::config::Secret;
use crate::error::StartError;
use crate::metrics::Metrics;
use crate::util::now;
use crate::warnlimit::{WarnLimit, PERIOD};

/// How long a session read from Redis is believed without asking again: a revoked session
/// stops working on every replica within this (plus the request in flight).
pub const FRESH: Duration = Duration::from_secs(2);
/// Sessions (and refused ids) remembered per process; past this, stale entries go first.
const CAPACITY: usize = 10_000;
/// Each connection attempt and each answer is bounded, so a dead or slow Redis costs a
/// request at most [`OP_TIMEOUT`] (then a 503), never a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
const OP_TIMEOUT: Duration = Duration::from_millis(2500);
/// A session's `last_used` (and so its idle expiry) is written back at most this often.
const TOUCH_EVERY: u64 = 60;

/// Keys: one record per session, one set of session ids per user.
pub const SESSION_KEY: &str = "oauthgate:session:";
pub const SUB_KEY: &str = "oauthgate:sub:";
/// Sets KEYS[1]'s expiry to ARGV[1] seconds unless it already lives longer (`EXPIRE … GT`
/// needs Redis 7; this runs on any version with scripting).
const LONGER_EXPIRY: &str = "if redis.call('TTL', KEYS[1]) < tonumber(ARGV[1]) then \
    return redis.call('EXPIRE', KEYS[1], ARGV[1]) end return 0";
/// Login nonces used at a callback, shared by the replicas (see `first_use`).
const NONCE_KEY: &str = "oauthgate:nonce:";

/// What Redis keeps for one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub session: Session,
    pub created: u64,
    pub last_used: u64,
}

impl Record {
    /// Seconds left: to `exp`, or to `last_used + idle` when that comes first; 0 when over.
    pub fn ttl(&self, now: u64, idle: Option<Duration>) -> u64 {
        let absolute = self.session.exp.saturating_sub(now);
        match idle {
            Some(idle) => absolute.min((self.last_used + idle.as_secs()).saturating_sub(now)),
            None => absolute,
        }
    }
}

/// Why the store could not answer. Its text names no key, id or URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A sealed cookie that opened to an id the cache does not know (yet): Redis must be asked.
pub struct Fetch {
    raw: Box<str>,
    pub(super) id: String,
    /// Sealed with one of `previous_secrets`: the id is re-sealed with the current secret.
    pub(super) old_key: bool,
}

struct Cached {
    verified: Option<Arc<Verified>>,
    at: Instant,
}

pub struct RedisStore {
    url: Secret,
    idle: Option<Duration>,
    client: ::redis::Client,
    /// Connected on first use: building a gateway never waits on Redis, nor fails without it.
    conn: OnceCell<ConnectionManager>,
    /// Sealed cookie value → the session it named (or `None`: revoked, expired), and when
    /// Redis said so. Keyed like the cookie store's memo (foldhash: only cookies that opened
    /// with our secret get here, so nobody chooses colliding keys).
    cache: Mutex<HashMap<Box<str>, Cached, foldhash::fast::RandomState>>,
    metrics: OnceLock<Arc<Metrics>>,
    warned: WarnLimit,
}

impl RedisStore {
    pub fn new(url: &Secret, idle: Option<Duration>) -> Result<Self, StartError> {
        let client = ::redis::Client::open(url.0.as_str())
            .map_err(|e| StartError::Store(format!("gateway.session.store: {e}")))?;
        Ok(RedisStore {
            url: url.clone(),
            idle,
            client,
            conn: OnceCell::new(),
            cache: Mutex::new(HashMap::default()),
            metrics: OnceLock::new(),
            warned: WarnLimit::new(PERIOD),
        })
    }

    /// Whether a reload may keep this store (and its connection and cache).
    pub fn same(&self, other: &RedisStore) -> bool {
        self.url == other.url && self.idle == other.idle
    }

    /// `idle_timeout`, as the store applies it.
    pub fn idle(&self) -> Option<Duration> {
        self.idle
    }

    /// Where failures are counted; set once (a reload that keeps the store keeps it).
    pub fn count_into(&self, metrics: Option<&Arc<Metrics>>) {
        if let Some(m) = metrics {
            let _ = self.metrics.set(m.clone());
        }
    }

    /// The session of sealed cookie `raw` when the cache knows it and is fresh; else what to
    /// ask Redis (`open` unseals the id, and says whether with a previous secret). A cookie
    /// that does not open is no session.
    pub fn lookup(
        &self,
        raw: &str,
        open: impl FnOnce() -> Option<(String, bool)>,
    ) -> Result<Option<Arc<Verified>>, Fetch> {
        if let Some(hit) = lock(&self.cache).get(raw) {
            if hit.at.elapsed() < FRESH {
                let now = now();
                return Ok(hit.verified.clone().filter(|v| v.session.exp > now));
            }
        }
        match open() {
            Some((id, old_key)) => Err(Fetch {
                raw: raw.into(),
                id,
                old_key,
            }),
            None => Ok(None),
        }
    }

    /// Reads the session `f` names, slides its idle expiry at most every [`TOUCH_EVERY`]
    /// seconds, and remembers the answer for [`FRESH`].
    pub async fn fetch(
        &self,
        f: Fetch,
        build: impl FnOnce(Session) -> Verified,
    ) -> Result<Option<Arc<Verified>>, StoreError> {
        let key = format!("{SESSION_KEY}{}", f.id);
        // The answer is as old as the question: a revocation just after the GET was sent is
        // then believed at most `FRESH` later, however long Redis took to answer.
        let asked = Instant::now();
        let text: Option<String> = self.run(::redis::cmd("GET").arg(&key)).await?;
        let now = now();
        let record = text.and_then(|t| serde_json::from_str::<Record>(&t).ok());
        let verified = match record {
            Some(mut r) if r.ttl(now, self.idle) > 0 => {
                let every = self.idle.map_or(TOUCH_EVERY, |i| (i.as_secs() / 4).max(1));
                if now.saturating_sub(r.last_used) >= every.min(TOUCH_EVERY) {
                    r.last_used = now;
                    // XX: a session revoked meanwhile is not brought back.
                    let json = serde_json::to_string(&r).unwrap_or_default();
                    let set = ::redis::cmd("SET")
                        .arg(&key)
                        .arg(json)
                        .arg("EX")
                        .arg(r.ttl(now, self.idle))
                        .arg("XX")
                        .clone();
                    // The session is valid either way; a failed touch is counted and logged.
                    let _ = self.run::<Option<String>>(&set).await;
                }
                Some(Arc::new(build(r.session)))
            }
            _ => None,
        };
        self.remember(f.raw, verified.clone(), asked);
        Ok(verified)
    }

    /// Stores a new session; returns its id (to be sealed into the cookie).
    pub async fn create(&self, session: Session) -> Result<String, StoreError> {
        let id = crate::util::random_token();
        let now = now();
        let record = Record {
            session,
            created: now,
            last_used: now,
        };
        let ttl = record.ttl(now, self.idle).max(1);
        let index = format!("{SUB_KEY}{}", record.session.sub);
        let json = serde_json::to_string(&record).unwrap_or_default();
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(format!("{SESSION_KEY}{id}"))
            .arg(json)
            .arg("EX")
            .arg(ttl)
            .ignore()
            .cmd("SADD")
            .arg(&index)
            .arg(&id)
            .ignore()
            // The index lives as long as its longest session could (a shorter `ttl` after a
            // config change must not end it before older sessions); members that outlive
            // their record are skipped by `revoke`.
            .cmd("EVAL")
            .arg(LONGER_EXPIRY)
            .arg(1)
            .arg(&index)
            .arg(record.session.exp.saturating_sub(now).max(1))
            .ignore();
        self.run_pipe::<()>(&pipe).await?;
        Ok(id)
    }

    /// Records login nonce `nonce` as used for `ttl` seconds; false when some replica already
    /// did. A gateway's own memory of used nonces does not see the other replicas' callbacks.
    pub async fn first_use(&self, nonce: &str, ttl: u64) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .run(
                ::redis::cmd("SET")
                    .arg(format!("{NONCE_KEY}{nonce}"))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl.max(1)),
            )
            .await?;
        Ok(set.is_some())
    }

    /// Ends session `id` of `sub` in Redis (so on every replica) and in this process at once.
    pub async fn delete(&self, raw: &str, id: &str, sub: Option<&str>) -> Result<(), StoreError> {
        lock(&self.cache).remove(raw);
        let mut pipe = ::redis::pipe();
        pipe.cmd("DEL").arg(format!("{SESSION_KEY}{id}")).ignore();
        if let Some(sub) = sub {
            pipe.cmd("SREM")
                .arg(format!("{SUB_KEY}{sub}"))
                .arg(id)
                .ignore();
        }
        self.run_pipe::<()>(&pipe).await
    }

    fn remember(&self, raw: Box<str>, verified: Option<Arc<Verified>>, at: Instant) {
        let mut cache = lock(&self.cache);
        if cache.len() >= CAPACITY {
            cache.retain(|_, c| c.at.elapsed() < FRESH);
            if cache.len() >= CAPACITY {
                cache.clear();
            }
        }
        cache.insert(raw, Cached { verified, at });
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let client = self.client.clone();
        let conn = self
            .conn
            .get_or_try_init(
                || async move { ConnectionManager::new_lazy_with_config(client, config) },
            )
            .await?;
        Ok(conn.clone())
    }

    /// One command, bounded by [`OP_TIMEOUT`]; a failure is counted and logged (rate-limited).
    pub(super) async fn run<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        self.bounded(async move { cmd.query_async(&mut conn).await })
            .await
    }

    pub(super) async fn run_pipe<T: ::redis::FromRedisValue>(
        &self,
        pipe: &::redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        self.bounded(async move { pipe.query_async(&mut conn).await })
            .await
    }

    async fn bounded<T>(&self, op: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(OP_TIMEOUT, op).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(OP_TIMEOUT)),
        };
        if let Err(e) = &result {
            if let Some(m) = self.metrics.get() {
                m.session_store_failed();
            }
            if let Some(folded) = self.warned.check() {
                warn!(error = %e, folded, "session store (Redis) failed: sessions cannot be read or changed until it answers");
            }
        }
        result
    }
}

/// A lock whose holder panicked is still usable: every update is one insert or removal.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_lives_to_its_exp_or_its_idle_end_whichever_is_first() {
        let session = Session {
            sub: "u".into(),
            provider: "dev".into(),
            user: Default::default(),
            groups: Vec::new(),
            exp: 1_000,
            seen: 0,
            host: None,
        };
        let r = Record {
            session,
            created: 100,
            last_used: 500,
        };
        assert_eq!(r.ttl(600, None), 400);
        assert_eq!(r.ttl(600, Some(Duration::from_secs(200))), 100);
        assert_eq!(r.ttl(900, Some(Duration::from_secs(200))), 0);
        assert_eq!(r.ttl(950, Some(Duration::from_secs(1000))), 50);
        assert_eq!(r.ttl(2_000, None), 0);
    }
}

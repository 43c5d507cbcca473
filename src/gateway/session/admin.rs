//! `oauthgate sessions list | revoke`: the Redis store seen from the command line, from any
//! machine with the config. Revocation deletes the records: every gateway refuses their
//! cookies within [`FRESH`](super::FRESH) (its cache), wherever the user is.

use std::time::Duration;

use super::redis::{Record, RedisStore, StoreError, SESSION_KEY, SUB_KEY};
use crate::config::{Config, SessionStore};

/// Keys asked for per SCAN round and deleted per DEL.
const BATCH: usize = 500;
/// SCAN rounds at most: far more than any store holds (it ends when the cursor is 0).
const MAX_ROUNDS: usize = 1_000_000;

/// Which sessions `revoke` ends.
#[derive(Debug, Clone)]
pub enum Revoke {
    Sub(String),
    All,
}

/// Why a `sessions` command could not run. Nothing here names a session id or the URL.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("gateway.session.store is `cookie`: cookie sessions live only in browsers and cannot be listed or revoked (set store: redis://… to have sessions that can be ended)")]
    CookieStore,
    #[error("the config has no gateway: section, so no sessions")]
    NoGateway,
    #[error("{0}")]
    Start(#[from] crate::error::StartError),
    #[error("Redis (gateway.session.store): {0}")]
    Store(#[from] StoreError),
}

impl AdminError {
    /// A problem with the config (exit 64), not with Redis.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            AdminError::CookieStore | AdminError::NoGateway | AdminError::Start(_)
        )
    }
}

/// One session as `sessions list` prints it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub record: Record,
    /// When it ends: `exp`, or its idle end when that comes first (Unix seconds).
    pub expires: u64,
}

fn store_of(config: &Config) -> Result<RedisStore, AdminError> {
    let gateway = config.gateway.as_ref().ok_or(AdminError::NoGateway)?;
    match &gateway.session_store {
        SessionStore::Cookie => Err(AdminError::CookieStore),
        SessionStore::Redis(url) => Ok(RedisStore::new(url, gateway.session_idle_timeout)?),
    }
}

/// For `oauthgate check`: a warning when the configured Redis store does not answer a PING
/// (down, wrong address or password); `None` when it does, or sessions live in cookies.
pub async fn ping(config: &Config) -> Option<String> {
    let store = match store_of(config) {
        Ok(store) => store,
        Err(AdminError::Start(e)) => return Some(e.to_string()),
        Err(_) => return None,
    };
    match store.run::<String>(&::redis::cmd("PING")).await {
        Ok(_) => None,
        Err(e) => Some(format!(
            "gateway.session.store: Redis does not answer ({e}): requests that need a session will get 503 until it does"
        )),
    }
}

/// Every live session of the store, by `sub` then creation time.
pub async fn list(config: &Config) -> Result<Vec<Listed>, AdminError> {
    let store = store_of(config)?;
    let now = crate::util::now();
    let mut out = Vec::new();
    for keys in scan(&store, SESSION_KEY).await?.chunks(BATCH) {
        let texts: Vec<Option<String>> = store.run(::redis::cmd("MGET").arg(keys)).await?;
        for r in texts.iter().flatten() {
            // A record that does not parse is not a session this version can use.
            let Ok(record) = serde_json::from_str::<Record>(r) else {
                continue;
            };
            let left = record.ttl(now, store.idle());
            if left > 0 {
                out.push(Listed {
                    record,
                    expires: now + left,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.record.session.sub, a.record.created).cmp(&(&b.record.session.sub, b.record.created))
    });
    Ok(out)
}

/// Ends sessions at once: a user's (through their index, no SCAN), or all. Returns how many
/// session records were deleted.
pub async fn revoke(config: &Config, which: &Revoke) -> Result<usize, AdminError> {
    let store = store_of(config)?;
    let deleted = match which {
        Revoke::Sub(sub) => {
            let index = format!("{SUB_KEY}{sub}");
            let ids: Vec<String> = store.run(::redis::cmd("SMEMBERS").arg(&index)).await?;
            let keys: Vec<String> = ids.iter().map(|id| format!("{SESSION_KEY}{id}")).collect();
            let n = delete(&store, &keys).await?;
            // Only the ids read: a login meanwhile keeps its entry, so a later revoke finds it.
            if !ids.is_empty() {
                store
                    .run::<()>(::redis::cmd("SREM").arg(&index).arg(&ids))
                    .await?;
            }
            n
        }
        Revoke::All => {
            let n = delete(&store, &scan(&store, SESSION_KEY).await?).await?;
            delete(&store, &scan(&store, SUB_KEY).await?).await?;
            n
        }
    };
    Ok(deleted)
}

/// Every key under `prefix` (SCAN, so Redis keeps serving meanwhile).
async fn scan(store: &RedisStore, prefix: &str) -> Result<Vec<String>, StoreError> {
    let pattern = format!("{prefix}*");
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    for _ in 0..MAX_ROUNDS {
        let (next, batch): (u64, Vec<String>) = store
            .run(
                ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(BATCH),
            )
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key twice.
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Deletes `keys` in batches; returns how many existed.
async fn delete(store: &RedisStore, keys: &[String]) -> Result<usize, StoreError> {
    let mut n = 0;
    for batch in keys.chunks(BATCH) {
        n += store.run::<usize>(::redis::cmd("DEL").arg(batch)).await?;
    }
    Ok(n)
}

/// `2026-11-30T09:30:00Z` for Unix seconds `t`.
pub fn time(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

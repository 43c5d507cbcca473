//! The session phase's side that may wait: [`Sessions::lookup`] answers from the cookie (or
//! the Redis store's cache) without waiting, and says when Redis must be asked; starting and
//! ending a session go to Redis when sessions live there.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};

use super::redis::{Fetch, RedisStore};
use super::{made_for, session_cookie_value, Session, Sessions, Verified};
use crate::cookies::SealedWith;
use crate::error::RequestError;
use crate::util::now;

impl Sessions {
    /// Takes over `previous`'s store (its connection and cache) when it is the same one: a
    /// reload then keeps serving from the cache.
    pub fn keep_store(&mut self, previous: &Sessions) {
        if let (Some(new), Some(old)) = (&self.store, &previous.store) {
            if old.same(new) {
                self.store = Some(old.clone());
            }
        }
    }

    /// The Redis store, when sessions live there.
    pub fn store(&self) -> Option<&Arc<RedisStore>> {
        self.store.as_ref()
    }

    /// The request's session for route host `host` (see [`Session::host`]) when it is known
    /// without waiting (always, for the cookie store: this is [`Sessions::current`]); else
    /// the Redis read to do ([`Sessions::fetch`]).
    pub fn lookup(
        &self,
        headers: &HeaderMap,
        host: Option<&str>,
    ) -> Result<Option<Arc<Verified>>, Fetch> {
        let Some(store) = &self.store else {
            return Ok(self.current(headers, host));
        };
        Ok(self
            .lookup_stored(store, headers)?
            .filter(|v| made_for(&v.session, host)))
    }

    /// [`Sessions::lookup`] in the Redis store, whatever host the session was made for.
    fn lookup_stored(
        &self,
        store: &RedisStore,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Verified>>, Fetch> {
        let Some(raw) = session_cookie_value(headers, &self.finder) else {
            return Ok(None);
        };
        store.lookup(raw, || {
            let (id, with) = self.sessions.open_value(&self.cookie, raw)?;
            Some((id, with == SealedWith::Previous))
        })
    }

    /// Asks Redis what [`Sessions::lookup`] could not answer, for route host `host`; 503 when
    /// it cannot say.
    pub async fn fetch(
        &self,
        f: Fetch,
        host: Option<&str>,
    ) -> Result<Option<Arc<Verified>>, RequestError> {
        Ok(self
            .fetch_any(f)
            .await?
            .filter(|v| made_for(&v.session, host)))
    }

    /// [`Sessions::fetch`], whatever host the session was made for.
    async fn fetch_any(&self, f: Fetch) -> Result<Option<Arc<Verified>>, RequestError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        // An id sealed with a previous secret is sealed again with `secret`: the renewal rides
        // on the answers of the requests that use it (the id and the record stay).
        let reseal = f.old_key.then(|| f.id.clone());
        let build = |s: Session| {
            let left = Duration::from_secs(s.exp.saturating_sub(now()).max(1));
            let v = Verified::new(s, &self.identity);
            if let Some(id) = &reseal {
                let _ = v.renewal.set(self.sessions.seal(&self.cookie, id, left));
            }
            v
        };
        store
            .fetch(f, build)
            .await
            .map_err(|_| RequestError::SessionStore)
    }

    /// The request's session for route host `host`, asking Redis when needed.
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        host: Option<&str>,
    ) -> Result<Option<Arc<Verified>>, RequestError> {
        match self.lookup(headers, host) {
            Ok(known) => Ok(known),
            Err(f) => self.fetch(f, host).await,
        }
    }

    /// The `Set-Cookie` value that starts `session`: the session itself, sealed, or (Redis)
    /// the sealed id of its new record.
    pub async fn start(&self, session: &Session) -> Result<HeaderValue, RequestError> {
        let Some(store) = &self.store else {
            return Ok(self.issue(session));
        };
        let id = store
            .create(session.clone())
            .await
            .map_err(|_| RequestError::SessionStore)?;
        Ok(self.sessions.seal(&self.cookie, &id, self.ttl))
    }

    /// Ends the request's session in the store (a logout): every replica refuses its cookie
    /// from then on. The cookie store has nothing to end (the cookie is cleared by the caller).
    pub async fn end(&self, headers: &HeaderMap) -> Result<(), RequestError> {
        let (Some(store), Some(raw)) = (&self.store, session_cookie_value(headers, &self.finder))
        else {
            return Ok(());
        };
        let Some((id, _)) = self.sessions.open_value(&self.cookie, raw) else {
            return Ok(());
        };
        // Whichever host it was made for: the record goes, and so does its index entry.
        let session = match self.lookup_stored(store, headers) {
            Ok(known) => known,
            Err(f) => self.fetch_any(f).await?,
        };
        let sub = session.map(|v| v.session.sub.clone());
        store
            .delete(raw, &id, sub.as_deref())
            .await
            .map_err(|_| RequestError::SessionStore)
    }

    /// With the Redis store, whether login nonce `nonce` is used here first among all the
    /// replicas (it is then remembered until `until`, Unix seconds); always true otherwise.
    pub async fn first_use(&self, nonce: &str, until: u64) -> Result<bool, RequestError> {
        let Some(store) = &self.store else {
            return Ok(true);
        };
        let ttl = until.saturating_sub(now());
        store
            .first_use(nonce, ttl)
            .await
            .map_err(|_| RequestError::SessionStore)
    }
}

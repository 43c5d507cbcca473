//! Login nonces already used at the callback, kept in memory until their assertion expires:
//! a second callback with the same nonce (someone holding a copy of the victim's login
//! cookie and the assertion) is refused even though the cookie itself still opens.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Nonces remembered at most; past it the oldest are forgotten first (they are the ones
/// closest to expiring anyway).
const CAPACITY: usize = 65_536;

#[derive(Default)]
pub struct UsedNonces {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashSet<String>,
    /// In insertion order, with the time each may be forgotten.
    order: VecDeque<(u64, String)>,
}

impl UsedNonces {
    /// Records `nonce` as used until `until` (Unix seconds); false when it already was.
    pub fn first_use(&self, nonce: &str, until: u64, now: u64) -> bool {
        // A poisoned lock only means another request panicked mid-insert: the set is usable.
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((expiry, _)) = inner.order.front() {
            if *expiry >= now && inner.order.len() < CAPACITY {
                break;
            }
            if let Some((_, old)) = inner.order.pop_front() {
                inner.seen.remove(&old);
            }
        }
        if !inner.seen.insert(nonce.to_owned()) {
            return false;
        }
        inner.order.push_back((until, nonce.to_owned()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_until_it_expires() {
        let used = UsedNonces::default();
        assert!(used.first_use("a", 100, 10));
        assert!(!used.first_use("a", 100, 50));
        assert!(used.first_use("b", 100, 50));
        // Once expired it is forgotten (its assertion can no longer be used anyway).
        assert!(used.first_use("a", 300, 150));
    }

    #[test]
    fn the_set_is_bounded() {
        let used = UsedNonces::default();
        for i in 0..CAPACITY + 10 {
            assert!(used.first_use(&i.to_string(), u64::MAX, 0));
        }
        let inner = used.inner.lock().unwrap();
        assert!(inner.order.len() <= CAPACITY && inner.seen.len() == inner.order.len());
    }
}

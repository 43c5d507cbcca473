//! Connection slots: `limits.max_connections` in all, `limits.max_connections_per_ip` per
//! client address. A slot is taken at accept and given back when the client's socket closes.
//!
//! The per-address counts sit in one map behind a mutex, touched only at accept and close:
//! never while a connection serves requests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::warnlimit::WarnLimit;

/// The slots of one listener.
pub(super) struct Slots {
    all: Arc<Semaphore>,
    max: usize,
    /// `None` when there is no per-address cap.
    per_ip: Option<Arc<PerIp>>,
    /// Addresses the per-address cap does not count (the gateway's trusted proxies: every
    /// connection through a proxy in front comes from its address).
    exempt: Vec<IpAddr>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Full {
    All,
    ThisAddress,
}

impl Slots {
    pub(super) fn new(max: usize, max_per_ip: usize, exempt: Vec<IpAddr>) -> Self {
        Slots {
            all: Arc::new(Semaphore::new(max)),
            max,
            per_ip: (max_per_ip > 0).then(|| {
                Arc::new(PerIp {
                    max: max_per_ip,
                    open: Mutex::new(HashMap::new()),
                })
            }),
            exempt: exempt.into_iter().map(|ip| ip.to_canonical()).collect(),
        }
    }

    /// A slot for a connection from `ip`, or why there is none.
    pub(super) fn take(&self, ip: IpAddr) -> Result<Slot, Full> {
        let ip = ip.to_canonical();
        let per_ip = match &self.per_ip {
            Some(per_ip) if !self.exempt.contains(&ip) => {
                let key = key(ip);
                let mut open = per_ip.lock();
                let n = open.entry(key).or_insert(0);
                // `max` is at least 1, so a full address already has an entry to keep.
                if *n >= per_ip.max {
                    return Err(Full::ThisAddress);
                }
                *n += 1;
                Some((per_ip.clone(), key))
            }
            _ => None,
        };
        // Built before the global permit is asked for: if there is none, dropping it gives
        // the address's count back.
        let mut slot = Slot { per_ip, all: None };
        slot.all = Some(
            self.all
                .clone()
                .try_acquire_owned()
                .map_err(|_| Full::All)?,
        );
        Ok(slot)
    }

    /// How many connections hold a slot.
    pub(super) fn open(&self) -> usize {
        self.max - self.all.available_permits()
    }

    /// [`Slots::open`] for someone who outlives `self` (the metrics).
    pub(super) fn open_count(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let (all, max) = (self.all.clone(), self.max);
        move || max - all.available_permits()
    }

    /// The cap a refusal of `full` hit.
    pub(super) fn max(&self, full: Full) -> usize {
        match (full, &self.per_ip) {
            (Full::ThisAddress, Some(per_ip)) => per_ip.max,
            _ => self.max,
        }
    }
}

/// Connections refused because a limit was reached: counted (what
/// `oauthgate_connections_refused_total{limit}` exports) and logged at warn, at most one line
/// per limit per period with the number folded into it.
#[derive(Debug, Default)]
pub struct Refused {
    all: AtomicU64,
    per_ip: AtomicU64,
    warn_all: WarnLimit,
    warn_per_ip: WarnLimit,
}

impl Refused {
    /// Refusals so far as (limit, count): `max_connections` and `max_connections_per_ip`.
    pub fn counts(&self) -> [(&'static str, u64); 2] {
        [
            ("max_connections", self.all.load(Ordering::Relaxed)),
            (
                "max_connections_per_ip",
                self.per_ip.load(Ordering::Relaxed),
            ),
        ]
    }

    /// Counts a refusal of `peer` and logs it unless a line for that limit was written lately.
    pub(super) fn note(&self, full: Full, peer: SocketAddr, max: usize) {
        let (count, limit, key) = match full {
            Full::All => (&self.all, &self.warn_all, "limits.max_connections"),
            Full::ThisAddress => (
                &self.per_ip,
                &self.warn_per_ip,
                "limits.max_connections_per_ip",
            ),
        };
        count.fetch_add(1, Ordering::Relaxed);
        match limit.check() {
            None => {}
            Some(0) => {
                warn!(peer = %peer.ip(), limit = key, max, "connection refused: {key} ({max}) reached")
            }
            Some(folded) => warn!(
                peer = %peer.ip(),
                limit = key,
                max,
                folded,
                "connection refused: {key} ({max}) reached ({folded} similar warnings folded)"
            ),
        }
    }
}

/// One connection's place; dropping it frees the place.
pub(super) struct Slot {
    all: Option<OwnedSemaphorePermit>,
    per_ip: Option<(Arc<PerIp>, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((per_ip, key)) = self.per_ip.take() {
            let mut open = per_ip.lock();
            if let Some(n) = open.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    // Only addresses with open connections are kept.
                    open.remove(&key);
                }
            }
        }
    }
}

struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// The map, even if a thread panicked holding it: counts stay usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the per-address cap counts: an IPv4 address, or an IPv6 /64 (one host or one LAN
/// usually gets a whole /64, and could otherwise take a new address for every connection).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_gets_its_share_and_gives_it_back() {
        let slots = Slots::new(10, 2, vec![]);
        let a1 = slots.take(ip("10.0.0.1")).unwrap();
        let _a2 = slots.take(ip("10.0.0.1")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.1")).err(), Some(Full::ThisAddress));
        // The same address written as IPv4-mapped IPv6 is the same address.
        assert_eq!(
            slots.take(ip("::ffff:10.0.0.1")).err(),
            Some(Full::ThisAddress)
        );
        let _b = slots.take(ip("10.0.0.2")).unwrap();
        assert_eq!(slots.open(), 3);
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _a3 = slots.take(ip("10.0.0.1")).unwrap();
    }

    #[test]
    fn ipv6_counts_per_64() {
        let slots = Slots::new(10, 1, vec![]);
        let _a = slots.take(ip("2001:db8:1:2::1")).unwrap();
        assert!(slots.take(ip("2001:db8:1:2:ffff::9")).is_err());
        let _b = slots.take(ip("2001:db8:1:3::1")).unwrap();
    }

    #[test]
    fn the_global_cap_and_the_exempt() {
        let slots = Slots::new(2, 1, vec![ip("127.0.0.1")]);
        let _p1 = slots.take(ip("127.0.0.1")).unwrap();
        let _p2 = slots.take(ip("127.0.0.1")).unwrap();
        assert_eq!(slots.take(ip("127.0.0.1")).err(), Some(Full::All));
        // Refused by the global cap: the address's count is given back at once.
        assert_eq!(slots.take(ip("10.0.0.1")).err(), Some(Full::All));
        assert!(slots.per_ip.as_ref().unwrap().lock().is_empty());
        drop(_p1);
        let _c = slots.take(ip("10.0.0.1")).unwrap();
        let off = Slots::new(3, 0, vec![]);
        let _all: Vec<Slot> = (0..3).map(|_| off.take(ip("10.0.0.1")).unwrap()).collect();
    }
}

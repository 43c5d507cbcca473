//! When a session is over and when its cookie is re-sealed: `ttl` is the absolute limit,
//! `idle_timeout` ends a session unused that long, and a used session's cookie is renewed at
//! most once per [`Lifetime::renew_every`] (a minute), never per request.

use std::time::Duration;

use super::Session;

/// The longest a used session waits for its cookie to be renewed.
const RENEW_AT_MOST_EVERY: u64 = 60;

/// How far replicas' clocks may disagree: a session made on one whose clock is ahead still
/// opens on the others.
const CLOCK_SKEW: u64 = 60;

/// `gateway.session.ttl` and `idle_timeout`, in whole seconds (config checks both).
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub ttl: u64,
    pub idle: Option<u64>,
}

/// What a session's times say at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Valid; nothing to do (the common request).
    Fresh,
    /// Valid, and its cookie should be re-sealed with `seen` moved to now.
    Renew,
    /// Past `exp` or idle too long: log in again.
    Over,
}

impl Lifetime {
    pub fn new(ttl: Duration, idle: Option<Duration>) -> Self {
        Lifetime {
            ttl: ttl.as_secs(),
            idle: idle.map(|d| d.as_secs()),
        }
    }

    /// How often a used session is renewed: once a minute, or at half the idle timeout when
    /// that is shorter (an idle timeout under two minutes, which tests use), so that a
    /// session in use never idles out between two renewals.
    pub fn renew_every(&self) -> Option<u64> {
        self.idle.map(|i| (i / 2).clamp(1, RENEW_AT_MOST_EVERY))
    }

    /// Judges `s` at `now` (Unix seconds): only integer comparisons, no allocation. A
    /// session with more time left than `ttl` gives is over too: no login made it (or `ttl`
    /// was lowered since, and it is the absolute limit). Else a cookie forged with a leaked
    /// old secret during a rotation, `exp` far ahead, would be re-sealed with the new secret
    /// and outlive the rotation.
    pub fn judge(&self, s: &Session, now: u64) -> Life {
        let longest = now.saturating_add(self.ttl).saturating_add(CLOCK_SKEW);
        if s.exp <= now || s.exp > longest {
            return Life::Over;
        }
        let (Some(idle), Some(every)) = (self.idle, self.renew_every()) else {
            return Life::Fresh;
        };
        let seen = self.seen(s);
        if now >= seen.saturating_add(idle) {
            Life::Over
        } else if now >= seen.saturating_add(every) {
            Life::Renew
        } else {
            Life::Fresh
        }
    }

    /// When `s` was last sealed. Cookies sealed before `seen` existed count from their
    /// login (`exp - ttl`), so turning the idle timeout on ends sessions idle since then.
    fn seen(&self, s: &Session) -> u64 {
        match s.seen {
            0 => s.exp.saturating_sub(self.ttl),
            seen => seen,
        }
    }
}

/// `s` as its renewed cookie holds it: used `now`, ending when it always did.
pub fn renewed(s: &Session, now: u64) -> Session {
    Session {
        seen: now,
        ..s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn a_session_with_more_time_left_than_ttl_gives_is_over() {
        for idle in [None, Some(hours(2))] {
            let life = Lifetime::new(hours(12), idle);
            let ttl = 12 * 3600;
            assert_eq!(life.judge(&session(T0 + ttl, T0), T0), Life::Fresh);
            // A replica whose clock is a minute ahead made it.
            assert_eq!(life.judge(&session(T0 + ttl + 60, T0), T0), Life::Fresh);
            assert_eq!(life.judge(&session(T0 + ttl + 61, T0), T0), Life::Over);
            // Forged far ahead (`seen` 0: before `seen` existed, counted from exp - ttl).
            assert_eq!(life.judge(&session(4_102_444_800, 0), T0), Life::Over);
        }
    }

    fn session(exp: u64, seen: u64) -> Session {
        Session {
            sub: "dev:alice".into(),
            provider: "dev".into(),
            user: serde_json::Map::new(),
            groups: Vec::new(),
            exp,
            seen,
            host: None,
        }
    }

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * 3600)
    }

    #[test]
    fn without_an_idle_timeout_only_exp_counts() {
        let life = Lifetime::new(hours(12), None);
        let s = session(T0 + 100, T0);
        assert_eq!(life.judge(&s, T0 + 99), Life::Fresh);
        assert_eq!(life.judge(&s, T0 + 100), Life::Over);
        assert_eq!(life.renew_every(), None);
    }

    /// A session used every 30 s for 3 h under `idle_timeout: 2h`, following each renewal
    /// the way a browser does: renewed once a minute, never twice in one, never past `ttl`.
    #[test]
    fn a_session_in_use_is_renewed_once_a_minute_and_ends_at_its_ttl() {
        let life = Lifetime::new(hours(2), Some(Duration::from_secs(600)));
        let mut s = session(T0 + 7200, T0);
        let mut renewals = Vec::new();
        let mut now = T0;
        while life.judge(&s, now) != Life::Over {
            if life.judge(&s, now) == Life::Renew {
                renewals.push(now);
                s = renewed(&s, now);
            }
            now += 30;
            assert!(now < T0 + 3 * 3600, "never ended");
        }
        assert_eq!(now, T0 + 7200, "ended at its ttl, not later or earlier");
        assert_eq!(s.exp, T0 + 7200, "renewal never moves exp");
        assert_eq!(renewals.len(), 119, "{renewals:?}");
        assert!(
            renewals.windows(2).all(|w| w[1] - w[0] == 60),
            "{renewals:?}"
        );
    }

    #[test]
    fn an_unused_session_ends_at_its_idle_timeout() {
        let life = Lifetime::new(hours(12), Some(hours(2)));
        let s = session(T0 + 12 * 3600, T0);
        assert_eq!(life.judge(&s, T0 + 59), Life::Fresh);
        assert_eq!(life.judge(&s, T0 + 60), Life::Renew);
        assert_eq!(life.judge(&s, T0 + 7199), Life::Renew);
        assert_eq!(life.judge(&s, T0 + 7200), Life::Over);
        // Renewed just before: another two hours from then, within the ttl.
        let r = renewed(&s, T0 + 7199);
        assert_eq!(life.judge(&r, T0 + 7200), Life::Fresh);
        assert_eq!(life.judge(&r, T0 + 7199 + 7200), Life::Over);
    }

    #[test]
    fn short_idle_timeouts_renew_at_half_and_old_cookies_count_from_login() {
        let life = Lifetime::new(Duration::from_secs(30), Some(Duration::from_secs(4)));
        assert_eq!(life.renew_every(), Some(2));
        let s = session(T0 + 30, T0);
        assert_eq!(life.judge(&s, T0 + 1), Life::Fresh);
        assert_eq!(life.judge(&s, T0 + 2), Life::Renew);
        assert_eq!(life.judge(&s, T0 + 4), Life::Over);
        assert_eq!(
            Lifetime::new(hours(1), Some(Duration::from_secs(1))).renew_every(),
            Some(1)
        );
        // A cookie from before `seen` existed: logged in at exp - ttl.
        let old = session(T0 + 30, 0);
        assert_eq!(life.judge(&old, T0 + 3), Life::Renew);
        assert_eq!(life.judge(&old, T0 + 4), Life::Over);
    }
}

//! The open-file limit (`RLIMIT_NOFILE`): raised to the hard limit at start, and the number
//! of client connections it can carry, which caps `limits.max_connections`.
//!
//! Each client connection takes a descriptor, and a proxied request about one more for its
//! upstream connection. Past the limit, `accept` and `connect` fail with "Too many open
//! files": clients got 502s while `max_connections` said 10,000. Refusing the excess at
//! accept instead keeps every admitted client served.

use tracing::{info, warn};

/// Descriptors kept for everything but client and upstream connections: the listener, the
/// runtime's, log and certificate files, the providers' HTTP client, DNS.
const RESERVE_MIN: u64 = 64;

/// What the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// The soft limit in force.
    pub nofile: u64,
    /// Client connections it can carry, each with an upstream connection.
    pub connections: usize,
}

impl Capacity {
    /// The connections `nofile` descriptors carry: a reserve (64, or a sixteenth of a large
    /// limit) set aside, two descriptors per client.
    pub fn of(nofile: u64) -> Self {
        let reserve = RESERVE_MIN.max(nofile / 16);
        let connections = nofile.saturating_sub(reserve) / 2;
        Capacity {
            nofile,
            connections: usize::try_from(connections).unwrap_or(usize::MAX).max(1),
        }
    }
}

/// Raises the soft limit to the hard limit, as nginx's `worker_rlimit_nofile` and Go's
/// runtime do (systemd's default soft limit is 1,024 under a hard limit of 524,288), and
/// returns what it allows; `None` where there is no such limit.
pub fn raise() -> Option<Capacity> {
    if !rlimit::Resource::NOFILE.is_supported() {
        return None;
    }
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "cannot raise the open-file limit");
            rlimit::Resource::NOFILE.get_soft().ok()?
        }
    };
    Some(Capacity::of(nofile))
}

/// `max_connections` as the open-file limit allows it: lowered, with a warning, when it
/// is more than the limit can carry. Lowered rather than refused: the service stays up, and
/// clients beyond it are refused at accept instead of failing with 502 once admitted.
pub fn connections_allowed(max_connections: usize) -> usize {
    let Some(capacity) = raise() else {
        return max_connections;
    };
    info!(
        nofile = capacity.nofile,
        capacity = capacity.connections,
        "open-file limit: room for {} client connections",
        capacity.connections
    );
    if max_connections <= capacity.connections {
        return max_connections;
    }
    warn!(
        max_connections,
        capacity = capacity.connections,
        nofile = capacity.nofile,
        "limits.max_connections is more than the open-file limit can carry; lowered to {}: \
         raise the limit (ulimit -n, systemd LimitNOFILE=) to serve more",
        capacity.connections
    );
    capacity.connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_client_after_the_reserve() {
        assert_eq!(Capacity::of(256).connections, 96);
        assert_eq!(Capacity::of(1024).connections, 480);
        assert_eq!(Capacity::of(1_048_576).connections, 491_520);
        // Even a tiny limit admits one connection rather than none.
        assert_eq!(Capacity::of(10).connections, 1);
    }
}

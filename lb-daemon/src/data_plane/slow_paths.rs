//! Endpoints known to answer slowly (long polls, reports, exports): their own try
//! timeout, and no suspicion or hedge from their slowness, like HAProxy's
//! `http-request set-timeout server … if { path_beg … }` or a per-route timeout in
//! Envoy. A request on such a path still moves at once when its replica leaves rotation.

use std::time::Duration;

/// One `[[upstream.slow_paths]]` entry: requests whose path starts with `prefix`
/// wait up to `try_timeout` per try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowPath {
    /// Path prefix, starting with `/` (`/reports/`).
    pub prefix: String,
    /// Per-try deadline for the response headers on this path.
    pub try_timeout: Duration,
}

/// How long one request may wait for response headers per try, and whether its
/// slowness may suspect its replica or hedge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryLimits {
    /// Per-try deadline.
    pub try_timeout: Duration,
    /// On a slow path: never suspects its replica, never hedged.
    pub slow: bool,
}

/// The limits of a request for `path`: the first entry of `slow_paths` whose prefix
/// it starts with, else `try_timeout` and not slow.
pub fn limits_for(slow_paths: &[SlowPath], path: &str, try_timeout: Duration) -> TryLimits {
    slow_paths
        .iter()
        .find(|slow| path.starts_with(slow.prefix.as_str()))
        .map_or(
            TryLimits {
                try_timeout,
                slow: false,
            },
            |slow| TryLimits {
                try_timeout: slow.try_timeout,
                slow: true,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_prefix_sets_the_limits() {
        let paths = [
            SlowPath {
                prefix: "/reports/".into(),
                try_timeout: Duration::from_secs(300),
            },
            SlowPath {
                prefix: "/".into(),
                try_timeout: Duration::from_secs(60),
            },
        ];
        let default = Duration::from_secs(15);
        let report = limits_for(&paths, "/reports/2026", default);
        assert_eq!(report.try_timeout, Duration::from_secs(300));
        assert!(report.slow);
        assert_eq!(
            limits_for(&paths, "/home", default).try_timeout,
            Duration::from_secs(60)
        );
        let none = limits_for(&paths[..1], "/home", default);
        assert_eq!((none.try_timeout, none.slow), (default, false));
    }
}

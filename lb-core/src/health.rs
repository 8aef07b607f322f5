//! Per-node health: a hysteresis state machine with rise/fall thresholds.
//!
//! A node goes Down after `fall` failed checks in a row and comes back Up after
//! `rise` successful checks in a row; a lone result against the current state
//! changes nothing. Defaults are HAProxy's (`rise 2`, `fall 3`; see the HAProxy
//! configuration manual, section 5.2, `rise` and `fall`).
//!
//! The machine reads no clock: the caller passes `now` with every observation, so it
//! runs the same in a proxy, a test or a simulation.

use std::time::Instant;

use crate::Error;

/// Whether a node takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Status {
    /// In rotation.
    Up,
    /// Out of rotation: lookups walk past it.
    Down,
}

/// The result of one health check (or one proxied request, for passive checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Outcome {
    /// The node answered as expected.
    Success,
    /// The node failed: refused, reset, timed out or answered wrongly.
    Failure,
}

/// A change of [`Status`], returned by [`HealthState::observe`] and [`HealthState::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The status before.
    pub from: Status,
    /// The status now.
    pub to: Status,
    /// When the change happened (the `now` passed in).
    pub at: Instant,
}

/// Rise and fall thresholds, each a count of consecutive checks in `1..=1000`.
///
/// With feature `serde` it is `{"rise": 2, "fall": 3}`, checked as by
/// [`HealthConfig::new`] when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "Thresholds")
)]
pub struct HealthConfig {
    rise: u32,
    fall: u32,
}

/// The unchecked shape [`HealthConfig`] is read from.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Thresholds {
    rise: u32,
    fall: u32,
}

#[cfg(feature = "serde")]
impl TryFrom<Thresholds> for HealthConfig {
    type Error = Error;

    fn try_from(t: Thresholds) -> Result<Self, Error> {
        Self::new(t.rise, t.fall)
    }
}

impl HealthConfig {
    /// The largest threshold accepted.
    pub const MAX_THRESHOLD: u32 = 1000;

    /// Thresholds of `rise` successes to come Up and `fall` failures to go Down.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when either is 0 or above [`Self::MAX_THRESHOLD`].
    pub fn new(rise: u32, fall: u32) -> Result<Self, Error> {
        let check = |name, value: u32| {
            if (1..=Self::MAX_THRESHOLD).contains(&value) {
                Ok(())
            } else {
                Err(Error::InvalidSetting {
                    name,
                    reason: "must be between 1 and 1000 consecutive checks",
                })
            }
        };
        check("rise", rise)?;
        check("fall", fall)?;
        Ok(Self { rise, fall })
    }

    /// Consecutive successes that bring a Down node Up.
    pub fn rise(&self) -> u32 {
        self.rise
    }

    /// Consecutive failures that take an Up node Down.
    pub fn fall(&self) -> u32 {
        self.fall
    }
}

impl Default for HealthConfig {
    /// `rise 2`, `fall 3`, as HAProxy.
    fn default() -> Self {
        Self { rise: 2, fall: 3 }
    }
}

/// The health of one node: rise/fall hysteresis over check results (HAProxy's
/// `rise`/`fall`). lb-core reads no clock: the caller passes `now` with each result.
///
/// ```
/// use std::time::{Duration, Instant};
/// use lb_core::{HealthConfig, HealthState, Outcome, Status};
///
/// # fn main() -> Result<(), lb_core::Error> {
/// let start = Instant::now();
/// let mut health = HealthState::new(HealthConfig::new(2, 3)?, Status::Up, start);
/// // Two failures are not enough to fall; a success in between resets the streak.
/// health.observe(Outcome::Failure, start);
/// health.observe(Outcome::Failure, start);
/// health.observe(Outcome::Success, start);
/// assert_eq!(health.status(), Status::Up);
/// // Three in a row are.
/// let later = start + Duration::from_secs(3);
/// let mut last = None;
/// for _ in 0..3 {
///     last = health.observe(Outcome::Failure, later);
/// }
/// assert_eq!(last.map(|t| t.to), Some(Status::Down));
/// assert_eq!(health.since(), later);
/// // Two successes bring it back.
/// health.observe(Outcome::Success, later);
/// assert!(health.observe(Outcome::Success, later).is_some());
/// assert!(health.is_up());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    config: HealthConfig,
    status: Status,
    /// Consecutive outcomes that disagree with `status`.
    streak: u32,
    since: Instant,
}

impl HealthState {
    /// A node in `initial` status since `now`.
    pub fn new(config: HealthConfig, initial: Status, now: Instant) -> Self {
        Self {
            config,
            status: initial,
            streak: 0,
            since: now,
        }
    }

    /// Feeds one check result; returns the transition if this result completed a
    /// `rise` (Down → Up) or `fall` (Up → Down) streak.
    pub fn observe(&mut self, outcome: Outcome, now: Instant) -> Option<Transition> {
        let (agrees, threshold) = match (self.status, outcome) {
            (Status::Up, Outcome::Success) | (Status::Down, Outcome::Failure) => (true, 0),
            (Status::Up, Outcome::Failure) => (false, self.config.fall),
            (Status::Down, Outcome::Success) => (false, self.config.rise),
        };
        if agrees {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < threshold {
            return None;
        }
        let to = match self.status {
            Status::Up => Status::Down,
            Status::Down => Status::Up,
        };
        self.set(to, now)
    }

    /// Sets the status at once (a process that exited, an operator's command), resetting
    /// the streak. Returns the transition, or `None` if the status was already `status`.
    pub fn set(&mut self, status: Status, now: Instant) -> Option<Transition> {
        self.streak = 0;
        if self.status == status {
            return None;
        }
        let from = self.status;
        self.status = status;
        self.since = now;
        Some(Transition {
            from,
            to: status,
            at: now,
        })
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the node is Up.
    pub fn is_up(&self) -> bool {
        self.status == Status::Up
    }

    /// When the current status began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// The thresholds in use.
    pub fn config(&self) -> HealthConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(state: &mut HealthState, outcomes: &[Outcome], t0: Instant) -> Vec<(usize, Status)> {
        outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                state
                    .observe(*o, t0 + Duration::from_secs(i as u64))
                    .map(|t| (i, t.to))
            })
            .collect()
    }

    #[test]
    fn falls_after_fall_failures_in_a_row_and_rises_after_rise_successes() {
        use Outcome::{Failure as F, Success as S};
        let t0 = Instant::now();
        let mut state = HealthState::new(HealthConfig::default(), Status::Up, t0);
        // Two failures, a success (resets), then three failures: Down at index 5.
        // Then one success, a failure (resets), two successes: Up at index 9.
        let got = run(&mut state, &[F, F, S, F, F, F, S, F, S, S], t0);
        assert_eq!(got, vec![(5, Status::Down), (9, Status::Up)]);
        assert_eq!(state.since(), t0 + Duration::from_secs(9));
    }

    #[test]
    fn set_is_immediate_and_idempotent() {
        let t0 = Instant::now();
        let mut state = HealthState::new(HealthConfig::new(1, 1).unwrap(), Status::Up, t0);
        let t = state.set(Status::Down, t0).unwrap();
        assert_eq!((t.from, t.to), (Status::Up, Status::Down));
        assert_eq!(state.set(Status::Down, t0), None);
        assert_eq!(
            state.observe(Outcome::Success, t0).map(|t| t.to),
            Some(Status::Up)
        );
    }

    #[test]
    fn thresholds_are_validated() {
        assert!(HealthConfig::new(0, 3).is_err());
        assert!(HealthConfig::new(2, 1001).is_err());
        assert_eq!(HealthConfig::new(1000, 1).unwrap().rise(), 1000);
    }
}

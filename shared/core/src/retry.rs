//! Retry policy per step, in the Step Functions shape, except that
//! `max_attempts` counts every call, the first one included.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Retry-After values above this are capped, so a hostile or broken peer
/// cannot park a run for days.
pub const MAX_RETRY_AFTER_S: f64 = 3600.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_interval")]
    pub initial_interval_s: f64,
    #[serde(default = "default_backoff_rate")]
    pub backoff_rate: f64,
    #[serde(default = "default_max_interval")]
    pub max_interval_s: f64,
    #[serde(default)]
    pub jitter: Jitter,
    /// Which failures are retried; the rest go straight to `on_failure`.
    #[serde(default = "RetryOn::all")]
    pub retry_on: Vec<RetryOn>,
}

fn default_max_attempts() -> u32 {
    3
}
fn default_initial_interval() -> f64 {
    1.0
}
fn default_backoff_rate() -> f64 {
    2.0
}
fn default_max_interval() -> f64 {
    300.0
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_interval_s: default_initial_interval(),
            backoff_rate: default_backoff_rate(),
            max_interval_s: default_max_interval(),
            jitter: Jitter::default(),
            retry_on: RetryOn::all(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// A uniformly random delay between zero and the backoff interval (AWS's
    /// "full jitter"), so retries of many runs do not arrive together.
    #[default]
    Full,
    None,
}

/// Classes of failure a policy may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryOn {
    #[serde(rename = "network")]
    Network,
    #[serde(rename = "timeout")]
    Timeout,
    #[serde(rename = "5xx")]
    ServerError,
    #[serde(rename = "429")]
    TooManyRequests,
}

impl RetryOn {
    pub fn all() -> Vec<RetryOn> {
        vec![Self::Network, Self::Timeout, Self::ServerError, Self::TooManyRequests]
    }
}

impl RetryPolicy {
    /// Whether another attempt follows attempt number `attempt` (1-based).
    pub fn allows_another_attempt(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Problems with the numbers, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![];
        if !(1..=100).contains(&self.max_attempts) {
            out.push(("max_attempts", "must be between 1 and 100".into()));
        }
        if !self.initial_interval_s.is_finite() || self.initial_interval_s < 0.0 {
            out.push(("initial_interval_s", "must be a number >= 0".into()));
        }
        if !self.backoff_rate.is_finite() || self.backoff_rate < 1.0 {
            out.push(("backoff_rate", "must be a number >= 1.0".into()));
        }
        if !self.max_interval_s.is_finite() || self.max_interval_s < self.initial_interval_s {
            out.push(("max_interval_s", "must be a number >= initial_interval_s".into()));
        }
        if self.max_interval_s > 86_400.0 {
            out.push(("max_interval_s", "must be at most 86400 (one day)".into()));
        }
        out
    }

    /// How long to wait before the attempt after `failed_attempt` (1-based).
    /// `jitter_seed` makes full jitter deterministic per (run, step, attempt),
    /// so a replayed decision waits the same time. A `Retry-After` from the
    /// peer is a floor: we never come back sooner than asked.
    pub fn delay_after(&self, failed_attempt: u32, retry_after_s: Option<f64>, jitter_seed: u64) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(64) as i32;
        let backoff = (self.initial_interval_s * self.backoff_rate.powi(exponent)).min(self.max_interval_s);
        let backoff = match self.jitter {
            Jitter::None => backoff,
            Jitter::Full => backoff * unit_fraction(jitter_seed),
        };
        let floor = retry_after_s.unwrap_or(0.0).clamp(0.0, MAX_RETRY_AFTER_S);
        Duration::from_secs_f64(backoff.max(floor).max(0.0))
    }
}

/// Maps a seed to [0, 1) with a splitmix64 finaliser.
fn unit_fraction(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_interval_s: 2.0,
            backoff_rate: 2.0,
            max_interval_s: 5.0,
            jitter,
            retry_on: RetryOn::all(),
        }
    }

    #[test]
    fn exponential_backoff_is_capped() {
        let p = policy(Jitter::None);
        let secs: Vec<f64> = (1..=4).map(|a| p.delay_after(a, None, 0).as_secs_f64()).collect();
        assert_eq!(secs, vec![2.0, 4.0, 5.0, 5.0]);
    }

    #[test]
    fn full_jitter_stays_within_the_interval_and_is_deterministic() {
        let p = policy(Jitter::Full);
        let mut distinct = std::collections::BTreeSet::new();
        for seed in 0..200u64 {
            let d = p.delay_after(2, None, seed).as_secs_f64();
            assert!((0.0..=4.0).contains(&d), "{d}");
            assert_eq!(d, p.delay_after(2, None, seed).as_secs_f64());
            distinct.insert((d * 1000.0) as u64);
        }
        assert!(distinct.len() > 150, "jitter should spread retries");
    }

    #[test]
    fn retry_after_is_a_floor_and_capped() {
        let p = policy(Jitter::None);
        assert_eq!(p.delay_after(1, Some(30.0), 0), Duration::from_secs(30));
        assert_eq!(p.delay_after(3, Some(1.0), 0), Duration::from_secs(5));
        assert_eq!(p.delay_after(1, Some(1e9), 0), Duration::from_secs(3600));
    }

    #[test]
    fn max_attempts_counts_the_first_call() {
        let once = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert!(!once.allows_another_attempt(1));
        let four = RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        assert!(four.allows_another_attempt(3));
        assert!(!four.allows_another_attempt(4));
        assert_eq!(RetryPolicy::default().max_attempts, 3);
    }

    #[test]
    fn bad_values_are_reported() {
        let bad = RetryPolicy {
            max_attempts: 0,
            initial_interval_s: -1.0,
            backoff_rate: 0.5,
            max_interval_s: f64::NAN,
            ..RetryPolicy::default()
        };
        let fields: Vec<_> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            vec!["max_attempts", "initial_interval_s", "backoff_rate", "max_interval_s"]
        );
        assert!(RetryPolicy::default().problems().is_empty());
    }
}

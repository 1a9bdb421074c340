//! When to try again, by what failed: exponential backoff with jitter and a cap per kind of
//! failure. A write that lost a race is retried within milliseconds, an outage in growing
//! steps up to minutes, a throttled caller waits longer from the start, and a rejection that
//! only a person can fix (credentials, permissions, an invalid object) does not hammer anyone.
//! One fixed delay for everything retried conflicts too slowly and outages too often.

use crate::providers::error::Failure;
use rand::Rng;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A failure this long after the last one of the same object starts its backoff over, so that
/// an object that failed now and then over days is not held at the cap (and no caller has to
/// remember to reset).
pub const FORGET_AFTER: Duration = Duration::from_secs(1800);

/// `base · 2^attempt`, capped at `cap`; each wait is drawn between half that and all of it, so
/// that objects (and replicas) failing together do not come back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exponential {
    pub base: Duration,
    pub cap: Duration,
}

impl Exponential {
    /// The longest wait after `attempt` failures (0: the first).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(2u32.saturating_pow(attempt.min(31))).min(self.cap)
    }

    /// A jittered wait after `attempt` failures.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
    }
}

/// What failed, as far as the wait before the next attempt is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trouble {
    /// A write lost a race (409): the next attempt works on fresh state and usually succeeds.
    Conflict,
    /// The API server or a provider is unreachable, timed out or answered 5xx.
    Outage,
    /// Throttled (429, a provider's rate limit) with no hint left to honour.
    Throttled,
    /// Refused until someone acts: credentials rejected, permission denied, an invalid object,
    /// a configuration error, an identity conflict.
    Rejected,
}

impl Trouble {
    /// The backoff of this kind of failure between reconciles.
    pub fn backoff(self) -> Exponential {
        let (base, cap) = match self {
            Trouble::Conflict => (Duration::from_millis(200), Duration::from_secs(10)),
            Trouble::Outage => (Duration::from_secs(2), Duration::from_secs(300)),
            Trouble::Throttled => (Duration::from_secs(10), Duration::from_secs(300)),
            Trouble::Rejected => (Duration::from_secs(30), Duration::from_secs(600)),
        };
        Exponential { base, cap }
    }

    /// Whether trying the same call again soon may succeed.
    pub fn is_transient(self) -> bool {
        self != Trouble::Rejected
    }

    /// The kind of a Kubernetes API error.
    pub fn of_kube(error: &kube::Error) -> Trouble {
        match error {
            kube::Error::Api(status) => match status.code {
                409 => Trouble::Conflict,
                429 => Trouble::Throttled,
                // 0: no code (a Status without one); 5xx: the apiserver or etcd is struggling.
                0 | 500..=599 => Trouble::Outage,
                _ => Trouble::Rejected,
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => Trouble::Outage,
            _ => Trouble::Rejected,
        }
    }

    /// The kind of a failure known only by its metric category (a sweep report's
    /// `error_category`, [`Failure::category`]). `rejected` covers every HTTP error status, 5xx
    /// included, so it backs off like an outage rather than wait as long as a rejection.
    pub fn of_category(category: &str) -> Trouble {
        match category {
            "rate_limited" => Trouble::Throttled,
            // A user store behind the provider that could not be read mends like an outage.
            "unreachable" | "timeout" | "rejected" | "malformed" | "list" | "owners_unknown" => Trouble::Outage,
            _ => Trouble::Rejected,
        }
    }

    /// The kind of a provider failure.
    pub fn of_failure(failure: &Failure) -> Trouble {
        match failure {
            Failure::RateLimited { .. } => Trouble::Throttled,
            Failure::Unreachable { .. } | Failure::Timeout(_) => Trouble::Outage,
            Failure::Status { status, .. } if *status >= 500 => Trouble::Outage,
            Failure::Status { status: 409, .. } => Trouble::Conflict,
            Failure::OwnersUnknown(_) => Trouble::Outage,
            _ => Trouble::Rejected,
        }
    }
}

/// Consecutive failures per object: each object backs off on its own, and a success (or
/// [`FORGET_AFTER`] without a failure) starts it over.
#[derive(Default, Debug)]
pub struct Attempts(Mutex<HashMap<String, Failures>>);

#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Attempts {
    /// The wait before retrying `key` after `trouble`; counts the failure.
    pub fn next(&self, key: &str, trouble: Trouble) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let failures = map.entry(key.to_string()).or_insert(Failures { count: 0, last: now });
        if now.duration_since(failures.last) > FORGET_AFTER {
            failures.count = 0;
        }
        let wait = trouble.backoff().delay(failures.count);
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        wait
    }

    /// `key` succeeded: its next failure waits the shortest time again.
    pub fn reset(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Runs `call` again while it fails transiently, at most `attempts` times in all, waiting
/// `schedule(trouble)` between tries. A rejection is returned at once.
pub async fn retry_transient<T, E, F, Fut>(
    attempts: u32,
    classify: impl Fn(&E) -> Trouble,
    schedule: impl Fn(Trouble) -> Exponential,
    mut call: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures = 0;
    loop {
        match call().await {
            Err(e) if failures + 1 < attempts && classify(&e).is_transient() => {
                tokio::time::sleep(schedule(classify(&e)).delay(failures)).await;
                failures += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("x", "y").with_code(code).boxed())
    }

    #[test]
    fn each_kind_backs_off_on_its_own_scale_with_jitter_and_a_cap() {
        for trouble in [Trouble::Conflict, Trouble::Outage, Trouble::Throttled, Trouble::Rejected] {
            let b = trouble.backoff();
            for attempt in 0..40 {
                let wait = b.delay(attempt);
                assert!(wait <= b.cap && wait >= b.ceiling(attempt) / 2 - Duration::from_millis(1), "{trouble:?}");
            }
            assert_eq!(b.ceiling(30), b.cap);
        }
        assert!(Trouble::Conflict.backoff().ceiling(0) < Duration::from_secs(1), "a lost race is retried at once");
        assert!(Trouble::Outage.backoff().cap > Duration::from_secs(30), "a long outage is not polled every 30 s");
        assert!(Trouble::Rejected.backoff().base > Trouble::Outage.backoff().base);
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| Trouble::Outage.backoff().delay(3)).collect();
        assert!(draws.len() > 1, "jittered");
    }

    #[test]
    fn errors_map_to_kinds() {
        assert_eq!(Trouble::of_kube(&api(409)), Trouble::Conflict);
        assert_eq!(Trouble::of_kube(&api(429)), Trouble::Throttled);
        assert_eq!(Trouble::of_kube(&api(503)), Trouble::Outage);
        assert_eq!(Trouble::of_kube(&api(403)), Trouble::Rejected);
        assert_eq!(Trouble::of_kube(&api(422)), Trouble::Rejected);
        let unreachable = Failure::Unreachable { url: "u".into(), detail: "refused".into() };
        assert_eq!(Trouble::of_failure(&unreachable), Trouble::Outage);
        assert_eq!(Trouble::of_failure(&Failure::RateLimited { retry_after: None }), Trouble::Throttled);
        assert_eq!(Trouble::of_failure(&Failure::Unauthorized("no".into())), Trouble::Rejected);
        assert_eq!(Trouble::of_failure(&Failure::IdentityConflict("two".into())), Trouble::Rejected);
        assert_eq!(Trouble::of_category("unreachable"), Trouble::Outage);
        assert_eq!(Trouble::of_category("rate_limited"), Trouble::Throttled);
        assert_eq!(Trouble::of_category("configuration"), Trouble::Rejected);
    }

    #[test]
    fn attempts_grow_per_object_and_reset_on_success() {
        let attempts = Attempts::default();
        let outage = Trouble::Outage.backoff();
        let waits: Vec<Duration> = (0..4).map(|_| attempts.next("acme/corp", Trouble::Outage)).collect();
        for (i, wait) in waits.iter().enumerate() {
            assert!(*wait >= outage.ceiling(i as u32) / 2 && *wait <= outage.ceiling(i as u32), "{i}: {wait:?}");
        }
        assert!(attempts.next("acme/other", Trouble::Outage) <= outage.ceiling(0), "another object starts over");
        attempts.reset("acme/corp");
        assert!(attempts.next("acme/corp", Trouble::Outage) <= outage.ceiling(0));
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_rejections_are_not() {
        let quick = |_| Exponential { base: Duration::from_millis(1), cap: Duration::from_millis(2) };
        let mut calls = 0;
        let result: Result<(), kube::Error> = retry_transient(4, Trouble::of_kube, quick, || {
            calls += 1;
            let fail = calls < 3;
            async move { if fail { Err(api(503)) } else { Ok(()) } }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let result: Result<(), kube::Error> = retry_transient(4, Trouble::of_kube, quick, || {
            calls += 1;
            async { Err(api(422)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}

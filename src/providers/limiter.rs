//! The per-provider request pace: at most `policy.maxRequestsPerSecond` request starts per
//! second, and a pause when the provider says its quota is (nearly) spent.
//!
//! One `Limiter` serves every request of one provider client, concurrent revocations included,
//! so the cap holds for the provider as a whole and not per task.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Limiter {
    /// Time between two request starts; `None`: no cap.
    interval: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The earliest start of the next request.
    next: Instant,
}

impl Limiter {
    pub fn new(max_per_second: Option<u32>) -> Self {
        let interval = max_per_second.filter(|n| *n > 0).map(|n| Duration::from_secs(1) / n);
        Limiter { interval, state: Mutex::new(State { next: Instant::now() }) }
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Waits for this request's slot. Slots are handed out in call order, one interval apart.
    pub async fn acquire(&self) {
        let slot = {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = state.next.max(Instant::now());
            state.next = slot + self.interval.unwrap_or_default();
            slot
        };
        // The timer rounds up to whole milliseconds: only sleep when there is a wait.
        if slot > Instant::now() {
            tokio::time::sleep_until(slot.into()).await;
        }
    }

    /// No request starts before `until` (a quota reset announced by the provider).
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if until > state.next {
            state.next = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_request_starts() {
        let limiter = Limiter::new(Some(50)); // 20 ms apart
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await;
        }
        // The first slot is immediate, the next five 20 ms apart each.
        assert!(start.elapsed() >= Duration::from_millis(100), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_pace() {
        let limiter = std::sync::Arc::new(Limiter::new(Some(40))); // 25 ms apart
        let start = Instant::now();
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire().await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert!(start.elapsed() >= Duration::from_millis(100), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn no_cap_means_no_wait_and_pause_holds_everyone() {
        let limiter = Limiter::new(None);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(50));
        limiter.pause_until(Instant::now() + Duration::from_millis(80));
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(80));
    }
}

//! The per-provider request pace: at most `policy.maxRequestsPerSecond` request starts per
//! second, and a pause when the provider says its quota is (nearly) spent.
//!
//! One `Limiter` serves every request of one provider client, concurrent revocations included,
//! so the cap holds for the provider as a whole and not per task.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How late a request start may be (a timer, the scheduler, the way to the socket) without
/// two of them crowding one second at the provider's end.
const SLACK: Duration = Duration::from_millis(25);

#[derive(Debug)]
pub struct Limiter {
    /// Time between two request starts; `None`: no cap.
    interval: Option<Duration>,
    state: Mutex<State>,
    /// One request at a time takes its turn, in call order: the next start is measured from
    /// when the previous one actually started, not from when it was due.
    turn: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    /// The earliest start of the next request.
    next: Instant,
}

impl Limiter {
    pub fn new(max_per_second: Option<u32>) -> Self {
        // Slots exactly N to a second put N + 1 starts in one second as soon as one start is
        // late and the next on time. Starts are spaced from the previous *actual* start, and N
        // of them span a second and SLACK, so a start up to SLACK late on its way out still
        // leaves no second with more than N (the benchmark measures it at the provider's end).
        let interval = max_per_second.filter(|n| *n > 0).map(|n| (Duration::from_secs(1) + SLACK) / n);
        Limiter { interval, state: Mutex::new(State { next: Instant::now() }), turn: tokio::sync::Mutex::new(()) }
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for this request's turn: requests start one at a time in call order, each at
    /// least an interval after the previous one started, and none before a pause ends.
    pub async fn acquire(&self) {
        let _turn = self.turn.lock().await;
        let slot = self.state().next.max(Instant::now());
        // The timer rounds up to whole milliseconds: only sleep when there is a wait.
        if slot > Instant::now() {
            tokio::time::sleep_until(slot.into()).await;
        }
        let started = Instant::now();
        let mut state = self.state();
        state.next = state.next.max(started + self.interval.unwrap_or_default());
    }

    /// No request starts before `until` (a quota reset announced by the provider).
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.state();
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

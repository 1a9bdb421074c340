//! The HTTP layer every provider client shares: timeouts, request counting, transport-error
//! mapping, and one retry loop that backs off with jitter and honours the server's hints.

use super::error::Failure;
use rand::Rng;
use reqwest::header::HeaderMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A response read in full.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// `Retry-After` in seconds (the only form the providers keyward speaks to send).
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    }
}

pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    requests: AtomicU64,
    pub retry: RetryPolicy,
}

impl HttpClient {
    pub fn new(timeout: Duration) -> Result<Self, Failure> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Not a privacyIDEA plugin name: those are metered by its subscription check.
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Configuration(format!("cannot build HTTP client: {e}")))?;
        Ok(HttpClient { client, timeout, requests: AtomicU64::new(0), retry: RetryPolicy::default() })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one request and reads the whole body. Any HTTP status is a `Response`; only
    /// transport failures are errors.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.transport(e))?.to_vec();
        Ok(Response { status, headers, body })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn transport(&self, e: reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure::Timeout(self.timeout);
        }
        let url = e.url().map(|u| u.to_string()).unwrap_or_default();
        // The innermost cause says "connection refused" or "dns error"; reqwest's own text
        // only says "error sending request".
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            detail = cause.to_string();
            source = cause.source();
        }
        Failure::Unreachable { url, detail }
    }
}

/// Retry of transient failures: exponential backoff with full jitter, or the server's own
/// `Retry-After`/reset hint when it gave one.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 3, base: Duration::from_millis(200), cap: Duration::from_secs(8) }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`.
    pub fn delay(&self, attempt: u32, failure: &Failure) -> Duration {
        if let Failure::RateLimited { retry_after: Some(hint) } = failure {
            // Spread clients that got the same hint so they do not return in lockstep.
            let spread = rand::rng().random_range(0..=250);
            return (*hint + Duration::from_millis(spread)).min(self.cap.max(*hint));
        }
        crate::retry::Exponential { base: self.base, cap: self.cap }.delay(attempt)
    }

    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(failure) if failure.is_transient() && attempt + 1 < self.attempts => {
                    tokio::time::sleep(self.delay(attempt, &failure)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy { attempts: 5, base: Duration::from_millis(100), cap: Duration::from_millis(300) };
        let failure = Failure::Timeout(Duration::from_secs(1));
        for _ in 0..50 {
            let first = policy.delay(0, &failure);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            assert!(policy.delay(6, &failure) <= Duration::from_millis(300));
        }
    }

    #[test]
    fn server_hint_wins_over_backoff() {
        let policy = RetryPolicy::default();
        let failure = Failure::RateLimited { retry_after: Some(Duration::from_secs(3)) };
        let delay = policy.delay(0, &failure);
        assert!(delay >= Duration::from_secs(3) && delay <= Duration::from_millis(3250));
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let policy = RetryPolicy { attempts: 3, base: Duration::from_millis(1), cap: Duration::from_millis(2) };
        let mut calls = 0;
        let result: Result<(), Failure> = policy
            .run(|| {
                calls += 1;
                async { Err(Failure::Status { status: 503, code: None, message: "busy".into() }) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<(), Failure> = policy
            .run(|| {
                calls += 1;
                async { Err(Failure::Unauthorized("no".into())) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}

//! Paged listings, and resuming one where a failure stopped it.
//!
//! Listing a large directory (Okta, Entra ID, Google Workspace) takes minutes. When a page
//! still fails after the request's own retries, the listing fails as a whole — a partial
//! listing never reaches the planner, since the users on the missing pages would read as
//! "no enrolments". But the pages read so far and the cursor of the failed page are kept, and
//! the next listing (the next sweep, after its backoff) goes on from that page instead of page
//! 1, provided it is the same listing and the saved part is recent. A provider that no longer
//! accepts the saved cursor is listed again from the start, in the same call.

use super::error::Failure;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the pages of a failed listing are worth resuming from. Older ones would let a
/// sweep decide on an observation that is mostly stale, and cursors expire.
pub const RESUME_WITHIN: Duration = Duration::from_secs(600);

/// One page: its items and the cursor of the next one (`None`: the last page).
pub type Page<C, T> = (Vec<T>, Option<C>);

/// What a listing that stopped had read.
struct Progress<C, T> {
    cursor: C,
    items: Vec<T>,
    pages: usize,
}

/// Reads pages from `progress` on until the last one. On a failure, returns it with the
/// progress made, so that a caller can keep it.
async fn drive<C, T, F, Fut>(
    mut progress: Progress<C, T>,
    max_pages: usize,
    what: &str,
    page: &mut F,
) -> Result<Vec<T>, (Failure, Progress<C, T>)>
where
    C: Clone,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<C, T>, Failure>>,
{
    while progress.pages < max_pages {
        match page(progress.cursor.clone()).await {
            Ok((batch, next)) => {
                progress.items.extend(batch);
                progress.pages += 1;
                match next {
                    Some(next) => progress.cursor = next,
                    None => return Ok(progress.items),
                }
            }
            Err(failure) => return Err((failure, progress)),
        }
    }
    Err((Failure::Malformed(format!("{what} did not end after {max_pages} pages")), progress))
}

/// Every item of a listing that starts at `first`, without resuming (short listings: one
/// user's factors).
pub async fn all<C, T, F, Fut>(first: C, max_pages: usize, what: &str, mut page: F) -> Result<Vec<T>, Failure>
where
    C: Clone,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<C, T>, Failure>>,
{
    let start = Progress { cursor: first, items: Vec::new(), pages: 0 };
    drive(start, max_pages, what, &mut page).await.map_err(|(failure, _)| failure)
}

/// The progress of a failed listing, kept for the next attempt.
struct Saved<C, T> {
    /// Which listing (its first URL, its query).
    key: String,
    at: Instant,
    progress: Progress<C, T>,
}

/// A listing that resumes where its last attempt failed.
pub struct Resumable<C, T> {
    saved: Mutex<Option<Saved<C, T>>>,
    within: Duration,
}

impl<C: Clone, T> Default for Resumable<C, T> {
    fn default() -> Self {
        Resumable { saved: Mutex::new(None), within: RESUME_WITHIN }
    }
}

impl<C: Clone, T> Resumable<C, T> {
    /// A listing whose saved progress is kept for `within` (tests).
    pub fn within(within: Duration) -> Self {
        Resumable { saved: Mutex::new(None), within }
    }

    /// Every item of the listing `key` (what identifies it: its first URL), from `first` or
    /// from where the last attempt of the same listing failed.
    pub async fn list<F, Fut>(
        &self,
        key: &str,
        first: C,
        max_pages: usize,
        what: &str,
        mut page: F,
    ) -> Result<Vec<T>, Failure>
    where
        F: FnMut(C) -> Fut,
        Fut: Future<Output = Result<Page<C, T>, Failure>>,
    {
        let saved = self.take(key);
        let resumed = saved.is_some();
        let start = saved.unwrap_or_else(|| Progress { cursor: first.clone(), items: Vec::new(), pages: 0 });
        let pages_before = start.pages;
        match drive(start, max_pages, what, &mut page).await {
            Ok(items) => Ok(items),
            // The saved cursor itself was refused (expired, or the provider forgot it): list
            // again from the start rather than fail every sweep on it.
            Err((failure, progress)) if resumed && progress.pages == pages_before && !failure.is_transient() => {
                tracing::info!(listing = what, %failure, "saved page cursor refused; listing from the start");
                let start = Progress { cursor: first, items: Vec::new(), pages: 0 };
                drive(start, max_pages, what, &mut page)
                    .await
                    .map_err(|(failure, progress)| self.keep(key, failure, progress))
            }
            Err((failure, progress)) => Err(self.keep(key, failure, progress)),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Saved<C, T>>> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, key: &str) -> Option<Progress<C, T>> {
        let saved = self.slot().take()?;
        (saved.key == key && saved.at.elapsed() < self.within).then_some(saved.progress)
    }

    /// Keeps the progress of a listing that failed on a page worth trying again.
    fn keep(&self, key: &str, failure: Failure, progress: Progress<C, T>) -> Failure {
        if failure.is_transient() && progress.pages > 0 {
            tracing::info!(pages = progress.pages, %failure, "listing failed mid-way; the next one resumes from this page");
            *self.slot() = Some(Saved { key: key.to_string(), at: Instant::now(), progress });
        }
        failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn outage() -> Failure {
        Failure::Status { status: 503, code: None, message: "busy".into() }
    }

    /// Pages 0..5 of two items each; `fail_at` fails once at that page.
    async fn page(
        requested: &Mutex<Vec<u32>>,
        fail_at: &Mutex<Option<u32>>,
        cursor: u32,
    ) -> Result<Page<u32, u32>, Failure> {
        requested.lock().expect("log").push(cursor);
        if fail_at.lock().expect("fail").take_if(|p| *p == cursor).is_some() {
            return Err(outage());
        }
        Ok((vec![cursor * 2, cursor * 2 + 1], (cursor < 4).then_some(cursor + 1)))
    }

    #[tokio::test]
    async fn a_listing_that_failed_mid_way_resumes_from_the_failed_page() {
        let listing: Resumable<u32, u32> = Resumable::default();
        let requested = Mutex::new(Vec::new());
        let fail_at = Mutex::new(Some(3));
        let first = listing.list("users", 0, 100, "user listing", |c| page(&requested, &fail_at, c)).await;
        assert_eq!(first, Err(outage()), "a partial listing is never returned");
        let second = listing.list("users", 0, 100, "user listing", |c| page(&requested, &fail_at, c)).await;
        assert_eq!(second, Ok((0..10).collect::<Vec<_>>()), "every item once, in order");
        assert_eq!(*requested.lock().expect("log"), [0, 1, 2, 3, 3, 4], "pages 0-2 were not read again");
        // Done: the next listing starts over.
        let third = listing.list("users", 0, 100, "user listing", |c| page(&requested, &fail_at, c)).await;
        assert_eq!(third.map(|v| v.len()), Ok(10));
        assert_eq!(requested.lock().expect("log").len(), 6 + 5);
    }

    #[tokio::test]
    async fn another_listing_an_old_save_or_a_refused_cursor_start_over() {
        let requested = Mutex::new(Vec::new());
        let fail_at = Mutex::new(Some(2));
        let listing: Resumable<u32, u32> = Resumable::default();
        let _ = listing.list("group-a", 0, 100, "listing", |c| page(&requested, &fail_at, c)).await;
        let other = listing.list("group-b", 0, 100, "listing", |c| page(&requested, &fail_at, c)).await;
        assert_eq!(other.map(|v| v.len()), Ok(10));
        assert_eq!(requested.lock().expect("log")[3], 0, "group-b started at page 0");

        let stale: Resumable<u32, u32> = Resumable::within(Duration::ZERO);
        *fail_at.lock().expect("fail") = Some(2);
        let _ = stale.list("users", 0, 100, "listing", |c| page(&requested, &fail_at, c)).await;
        requested.lock().expect("log").clear();
        let _ = stale.list("users", 0, 100, "listing", |c| page(&requested, &fail_at, c)).await;
        assert_eq!(requested.lock().expect("log")[0], 0, "too old to resume");

        // A cursor the provider no longer accepts (400): listed again from page 0 at once.
        let listing: Resumable<u32, u32> = Resumable::default();
        *fail_at.lock().expect("fail") = Some(2);
        let _ = listing.list("users", 0, 100, "listing", |c| page(&requested, &fail_at, c)).await;
        let calls = AtomicUsize::new(0);
        let refused = listing
            .list("users", 0, 100, "listing", |c| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                let requested = &requested;
                let fail_at = &fail_at;
                async move {
                    if first {
                        return Err(Failure::Status { status: 400, code: None, message: "bad skiptoken".into() });
                    }
                    page(requested, fail_at, c).await
                }
            })
            .await;
        assert_eq!(refused.map(|v| v.len()), Ok(10));
    }

    #[tokio::test]
    async fn all_reads_every_page_and_stops_at_the_limit() {
        let requested = Mutex::new(Vec::new());
        let fail_at = Mutex::new(None);
        assert_eq!(all(0, 100, "listing", |c| page(&requested, &fail_at, c)).await.map(|v| v.len()), Ok(10));
        let endless = all(0u32, 3, "endless listing", |c| async move { Ok((vec![c], Some(c + 1))) }).await;
        assert!(matches!(endless, Err(Failure::Malformed(m)) if m.contains("did not end after 3 pages")));
    }
}

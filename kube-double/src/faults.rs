//! Fault knobs and the request log.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::store::Store;

/// One request as the server saw it, with the Kubernetes verb and resource it maps to (what an
/// RBAC rule would have to allow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for
    /// non-resource paths (`/api`, `/version`, …) the lower-case HTTP method.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    /// Empty for non-resource requests.
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub user_agent: String,
    pub content_type: String,
    /// The HTTP status answered (200 for a watch that started).
    pub status: u16,
}

impl RecordedRequest {
    /// Whether this was a request for a resource (as opposed to discovery, `/version`, …).
    pub fn is_resource_request(&self) -> bool {
        !self.resource.is_empty()
    }
}

#[derive(Debug, Clone)]
struct FailRule {
    method: String,
    pattern: String,
    status: u16,
    remaining: usize,
}

#[derive(Debug, Clone)]
struct DelayRule {
    method: String,
    pattern: String,
    delay: Duration,
}

#[derive(Debug, Default)]
struct FaultState {
    fail: Vec<FailRule>,
    delay: Vec<DelayRule>,
}

/// Fault injection for tests; cheap to clone, shared with the server.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    drops: Arc<tokio::sync::watch::Sender<u64>>,
    store: Arc<Store>,
}

/// `*` matches any run of characters; everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(idx) => rest = &rest[idx + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// `method` matches an HTTP method or a Kubernetes verb, case-insensitively; `*` matches all.
fn method_matches(rule: &str, method: &str, verb: &str) -> bool {
    rule == "*" || rule.eq_ignore_ascii_case(method) || rule.eq_ignore_ascii_case(verb)
}

impl Faults {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        let (drops, _) = tokio::sync::watch::channel(0);
        Self { state: Arc::default(), drops: Arc::new(drops), store }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Answers the next `n` requests whose method (HTTP method or Kubernetes verb, e.g. `PATCH`,
    /// `watch`, or `*`) and path (glob, `*` = any characters, e.g.
    /// `/apis/keyward.dev/v1alpha1/namespaces/*/employees/*`) match with `status` (409, 410,
    /// 429 with `Retry-After: 1`, 500, 503, …) instead of serving them. A 410 for a watch is
    /// answered as kube-apiserver does it: a 200 stream with one ERROR event (Status 410).
    pub fn fail_next(&self, n: usize, method: &str, path_pattern: &str, status: u16) {
        self.lock().fail.push(FailRule {
            method: method.to_string(),
            pattern: path_pattern.to_string(),
            status,
            remaining: n,
        });
    }

    /// Delays every matching request by `delay` until [`Faults::clear`].
    pub fn delay(&self, method: &str, path_pattern: &str, delay: Duration) {
        self.lock().delay.push(DelayRule { method: method.to_string(), pattern: path_pattern.to_string(), delay });
    }

    /// Ends every open watch stream (the connection closes as if a proxy dropped it).
    pub fn drop_watches(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    /// Forgets the change history: resuming a watch, or continuing a list, from any version
    /// before now answers 410 Gone (kube-rs's watcher then re-lists).
    pub fn expire_history(&self) {
        self.store.expire_history();
    }

    /// Removes all pending failures and delays.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.fail.clear();
        st.delay.clear();
    }

    pub(crate) fn watch_drops(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// The status to fail this request with, consuming one use of the matching rule.
    pub(crate) fn take_failure(&self, method: &str, verb: &str, path: &str) -> Option<u16> {
        let mut st = self.lock();
        let rule = st
            .fail
            .iter_mut()
            .find(|r| r.remaining > 0 && method_matches(&r.method, method, verb) && glob_match(&r.pattern, path))?;
        rule.remaining -= 1;
        let status = rule.status;
        st.fail.retain(|r| r.remaining > 0);
        Some(status)
    }

    pub(crate) fn delay_for(&self, method: &str, verb: &str, path: &str) -> Option<Duration> {
        self.lock()
            .delay
            .iter()
            .filter(|r| method_matches(&r.method, method, verb) && glob_match(&r.pattern, path))
            .map(|r| r.delay)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("/apis/*/employees/*", "/apis/keyward.dev/v1alpha1/namespaces/a/employees/b"));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match("/api/v1/namespaces", "/api/v1/namespaces"));
        assert!(!glob_match("/api/v1/namespaces", "/api/v1/namespaces/x"));
        assert!(!glob_match("/apis/*/leases", "/apis/coordination.k8s.io/v1/namespaces/a/leases/b"));
    }
}

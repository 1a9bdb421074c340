//! The operator's view of the cluster: one reflector per kind and namespace, and whether all
//! of them hold a complete, current list (docs/contract.md, rule 7: no revocation before the
//! caches are synced, after every relist and after a leadership change).

use futures::{Stream, StreamExt, TryStreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_fn};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The reflected objects of one kind across the watched namespaces.
pub struct Cache<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    stores: Vec<Store<K>>,
    /// True from a watcher's (re)start until its list completed.
    relisting: Vec<Arc<AtomicBool>>,
    kind: &'static str,
}

impl<K> Clone for Cache<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Cache { stores: self.stores.clone(), relisting: self.relisting.clone(), kind: self.kind }
    }
}

impl<K> Cache<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    /// One view over the caches of several namespaces.
    pub fn merge(parts: Vec<Cache<K>>) -> Self {
        let kind = parts.first().map(|c| c.kind).unwrap_or("objects");
        let mut merged = Cache { stores: Vec::new(), relisting: Vec::new(), kind };
        for part in parts {
            merged.stores.extend(part.stores);
            merged.relisting.extend(part.relisting);
        }
        merged
    }

    /// The single store of a cache made by [`watch`] (a controller's reader).
    pub fn store(&self) -> Option<Store<K>> {
        self.stores.first().cloned()
    }

    pub fn state(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|s| s.state()).collect()
    }

    /// The objects of one namespace, shared with the cache: a sweep reads them without a copy
    /// (a deep copy of 10,000 Employees per sweep was most of the operator's peak memory).
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.stores
            .iter()
            .flat_map(|s| s.state())
            .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
            .collect()
    }

    /// One object by namespace and name.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>>
    where
        K::DynamicType: Default,
    {
        let key = reflector::ObjectRef::new_with(name, Default::default()).within(namespace);
        self.stores.iter().find_map(|s| s.get(&key))
    }

    pub fn synced(&self) -> Result<(), String> {
        if self.relisting.iter().any(|r| r.load(Ordering::SeqCst)) {
            return Err(format!("{} cache is (re)listing", self.kind));
        }
        Ok(())
    }
}

#[cfg(test)]
impl<K> Cache<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    /// A synced cache holding `objects`, as a completed list would leave it.
    pub fn holding(kind: &'static str, objects: impl IntoIterator<Item = K>) -> Self {
        let (reader, mut writer) = reflector::store();
        for object in objects {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        Cache { stores: vec![reader], relisting: vec![Arc::new(AtomicBool::new(false))], kind }
    }
}

/// Keeps only the events that matter to a sweep: an object whose fingerprint changed, and
/// every deletion. Our own status writes do not change a fingerprint, so they do not trigger
/// the sweep that wrote them.
pub struct ChangeFilter<K> {
    seen: Mutex<HashMap<String, String>>,
    fingerprint: fn(&K) -> String,
}

impl<K: Resource> ChangeFilter<K> {
    pub fn new(fingerprint: fn(&K) -> String) -> Self {
        ChangeFilter { seen: Mutex::new(HashMap::new()), fingerprint }
    }

    fn key(obj: &K) -> String {
        obj.uid().unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
    }

    /// Whether `obj`, just applied, differs from what was last seen.
    pub fn applied(&self, obj: &K) -> bool {
        let print = (self.fingerprint)(obj);
        let mut seen = super::context::locked(&self.seen);
        seen.insert(Self::key(obj), print.clone()).as_deref() != Some(print.as_str())
    }

    pub fn deleted(&self, obj: &K) {
        super::context::locked(&self.seen).remove(&Self::key(obj));
    }
}

/// The annotation `kubectl apply` (client-side) keeps: a second copy of the whole object,
/// which keyward never reads.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Which objects of a kind the operator lists and watches, and what of them it keeps.
pub trait Watched: Resource {
    /// Every object of the kind, by default.
    fn selection() -> watcher::Config {
        watcher::Config::default()
    }

    /// Drops, before the object is cached, what keyward never reads: `managedFields` (a JSON
    /// tree per field manager) and kubectl's last-applied annotation (a second copy of the
    /// object). Every cached Employee pays for them, for the life of the process.
    fn slim(&mut self) {
        let meta = self.meta_mut();
        meta.managed_fields = None;
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.remove(LAST_APPLIED);
        }
    }
}

impl Watched for crate::crd::MfaProvider {
    /// Kept whole: an approval's audit record names the field manager that set the approval
    /// annotation, which only `managedFields` tells; there are few providers.
    fn slim(&mut self) {}
}
impl Watched for crate::crd::RevocationApproval {
    /// `managedFields` kept: the approval's audit records name the field manager that created
    /// it; approvals are few.
    fn slim(&mut self) {
        if let Some(annotations) = self.metadata.annotations.as_mut() {
            annotations.remove(LAST_APPLIED);
        }
    }
}
impl Watched for crate::crd::Employee {}
impl Watched for crate::crd::AccessGrant {}

impl Watched for k8s_openapi::api::core::v1::Secret {
    /// Only the Secrets labelled as provider credentials: the rest of a namespace's Secrets are
    /// none of keyward's business, and a cache of them is one more copy of every key in the
    /// cluster. The API server filters, so the others never reach the process.
    fn selection() -> watcher::Config {
        watcher::Config::default().labels(crate::crd::CREDENTIALS_LABEL)
    }
}

/// How a watch retries after an error: from 250 ms, doubling up to 5 s, jittered by up to a
/// fifth; back to the start after a success or a quiet minute. kube-runtime's default is
/// client-go's (800 ms doubling up to 30 s, reset after two quiet minutes), kind to a
/// struggling API server — but every decision here waits for a relist, and a restart of the
/// API server (connection errors all through its downtime, then 410 Gone on resuming) left
/// the backoff at its 30 s cap: revocations waited 46 s (median) behind each restart in
/// tests/chaos.rs's apiserver-restart scenario. Five kinds retrying every 5 s is no burden.
struct WatchBackoff {
    next: std::time::Duration,
}

impl WatchBackoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(250);
    const CAP: std::time::Duration = std::time::Duration::from_secs(5);

    fn new() -> kube::runtime::utils::ResetTimerBackoff<WatchBackoff> {
        kube::runtime::utils::ResetTimerBackoff::new(
            WatchBackoff { next: Self::FIRST },
            std::time::Duration::from_secs(60),
        )
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<std::time::Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::CAP);
        // Jitter, so that replicas and kinds do not retry in step.
        Some(delay + delay.mul_f64(rand::random::<f64>() / 5.0))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Starts watching `K` through `api` (one namespace, or cluster-wide) and returns the cache
/// plus the stream of changed objects, which must be polled (the controllers do).
pub fn watch<K>(
    api: Api<K>,
    kind: &'static str,
    filter: Arc<ChangeFilter<K>>,
    relisted: futures::channel::mpsc::UnboundedSender<()>,
) -> (Cache<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource + Watched + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    {
        let (reader, writer) = reflector::store();
        let flag = Arc::new(AtomicBool::new(true));
        let relist = flag.clone();
        let filter = filter.clone();
        let relisted = relisted.clone();
        let stream = watch_fn(api, K::selection())
            .backoff(WatchBackoff::new())
            .modify(K::slim)
            // After `reflect`, so the store already holds the complete list when the flag drops.
            .reflect(writer)
            // A watch error is worth a line: it is followed by a resume or, on 410 Gone (the
            // resume point left etcd's history), a full relist that holds every decision.
            .inspect_err(move |e| tracing::warn!(kind, error = %e, "watch failed; resuming or relisting"))
            // ... and goes no further: the watcher has backed off already, and an error that
            // reaches a Controller engages its trigger backoff, which pauses *every* stream it
            // merges and grows with each error (18 s after four errors, measured against a
            // real apiserver) — a change made during a relist would wait that long.
            .filter(|event| futures::future::ready(event.is_ok()))
            .inspect_ok(move |event| match event {
                Event::Init => {
                    // Nothing is decided until it is done: worth a line at both ends, so that
                    // a sweep held back by an unfinished relist can be told from a quiet one.
                    tracing::info!(kind, "listing (every decision waits for it)");
                    relist.store(true, Ordering::SeqCst)
                }
                Event::InitDone => {
                    tracing::info!(kind, "listed");
                    relist.store(false, Ordering::SeqCst);
                    // A relist shows no deletions that happened while the watch was down:
                    // every provider is swept again so that none is missed.
                    let _ = relisted.unbounded_send(());
                }
                _ => {}
            })
            .try_filter_map(move |event| {
                let changed = match event {
                    Event::Apply(obj) | Event::InitApply(obj) => filter.applied(&obj).then_some(obj),
                    Event::Delete(obj) => {
                        filter.deleted(&obj);
                        Some(obj)
                    }
                    Event::Init | Event::InitDone => None,
                };
                futures::future::ready(Ok(changed))
            })
            .boxed();
        (Cache { stores: vec![reader], relisting: vec![flag], kind }, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::WatchBackoff;
    use kube::runtime::utils::Backoff;
    use std::time::Duration;

    #[test]
    fn watch_retries_double_up_to_five_seconds_and_start_over_after_a_success() {
        let mut backoff = WatchBackoff { next: WatchBackoff::FIRST };
        let delays: Vec<Duration> = backoff.by_ref().take(8).collect();
        let floors = [250, 500, 1000, 2000, 4000, 5000, 5000, 5000].map(Duration::from_millis);
        for (delay, floor) in delays.iter().zip(floors) {
            assert!(*delay >= floor && *delay <= floor + floor / 5, "{delay:?} for {floor:?}: {delays:?}");
        }
        backoff.reset();
        assert!(backoff.next().expect("a delay") < Duration::from_millis(301));
    }
}

//! Routing: which change wakes which reconcile. The reflectors of each scope, the change
//! filters that keep our own status writes from waking the sweep that made them, the mapping
//! of Employee, AccessGrant, Secret and RevocationApproval changes onto the MfaProviders they
//! concern, and the three controllers of a scope.

use super::caches::{self, Cache, ChangeFilter};
use super::context::{Context, locked};
use super::{employee, error, grant, provider, targets};
use crate::crd::{APPROVE_REVOCATIONS_ANNOTATION, AccessGrant, Employee, MfaProvider, ProviderKey, RevocationApproval};
use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn provider_fingerprint(p: &MfaProvider) -> String {
    format!(
        "{:?}|{:?}|{}",
        p.metadata.generation,
        p.annotations().get(APPROVE_REVOCATIONS_ANNOTATION),
        p.metadata.deletion_timestamp.is_some()
    )
}

/// What decides an Employee's entitlement: its spec (generation) and deletion. Our own
/// status and finalizer writes do not, and must not trigger the sweep that made them.
fn employee_spec_fingerprint(e: &Employee) -> String {
    format!("{:?}|{}", e.metadata.generation, e.metadata.deletion_timestamp.is_some())
}

/// What the Employee controller acts on: the spec and deletion, and the status too, so that
/// a status someone else overwrote is written back (its reconcile compares before writing,
/// so our own writes come back as one reconcile each and no write).
fn employee_fingerprint(e: &Employee) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&e.status).unwrap_or_default().hash(&mut hasher);
    format!("{}|{:x}", employee_spec_fingerprint(e), hasher.finish())
}

/// An approval's spec cannot change; its creation and deletion matter, our own status write
/// (consumed) does not.
fn approval_fingerprint(a: &RevocationApproval) -> String {
    format!("{:?}|{}", a.metadata.generation, a.metadata.deletion_timestamp.is_some())
}

fn grant_fingerprint(g: &AccessGrant) -> String {
    format!("{:?}", g.metadata.generation)
}

fn secret_fingerprint(s: &Secret) -> String {
    s.resource_version().unwrap_or_default()
}

/// The APIs for one scope: a namespace, or the whole cluster.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

pub(super) type Changes = Arc<Mutex<HashMap<ProviderKey, Instant>>>;
type Events<K> = futures::stream::BoxStream<'static, Result<K, kube::runtime::watcher::Error>>;

/// Reconciles in flight at once, per controller of a scope. A sweep's status updates queue
/// one reconcile per concerned Employee; unbounded, 10,000 of them ran at once, each with its
/// request buffers, and a SIGTERM waited for all of them.
const SWEEPS_AT_ONCE: u16 = 4;
const EMPLOYEES_AT_ONCE: u16 = 16;
const GRANTS_AT_ONCE: u16 = 4;

/// The key of the MfaProvider a reference names.
fn key_of(r: &ObjectRef<MfaProvider>) -> ProviderKey {
    ProviderKey::new(r.namespace.as_deref().unwrap_or_default(), &r.name)
}

/// Notes that a change concerning these providers was observed (for the latency metric).
fn observed(changes: &Changes, refs: &[ObjectRef<MfaProvider>]) {
    if let Ok(mut changes) = changes.lock() {
        for r in refs {
            changes.entry(key_of(r)).or_insert_with(Instant::now);
        }
    }
}

/// The caches and change streams of one scope (a namespace, or the cluster).
pub(super) struct Scope {
    pub(super) namespace: Option<String>,
    pub(super) providers: (Cache<MfaProvider>, Events<MfaProvider>),
    pub(super) employees: (Cache<Employee>, Events<Employee>),
    pub(super) grants: (Cache<AccessGrant>, Events<AccessGrant>),
    pub(super) approvals: (Cache<RevocationApproval>, Events<RevocationApproval>),
    pub(super) secrets: (Cache<Secret>, Events<Secret>),
    pub(super) employee_trigger:
        (UnboundedSender<ObjectRef<Employee>>, futures::channel::mpsc::UnboundedReceiver<ObjectRef<Employee>>),
    pub(super) provider_trigger:
        (UnboundedSender<ObjectRef<MfaProvider>>, futures::channel::mpsc::UnboundedReceiver<ObjectRef<MfaProvider>>),
}

/// Starts the reflectors of every scope. Each change filter is shared by the scopes.
pub(super) fn watch_scopes(client: &Client, scopes: &[Option<String>], relisted: &UnboundedSender<()>) -> Vec<Scope> {
    let provider_filter = Arc::new(ChangeFilter::new(provider_fingerprint));
    let employee_filter = Arc::new(ChangeFilter::new(employee_fingerprint));
    let grant_filter = Arc::new(ChangeFilter::new(grant_fingerprint));
    let secret_filter = Arc::new(ChangeFilter::new(secret_fingerprint));
    let approval_filter = Arc::new(ChangeFilter::new(approval_fingerprint));
    scopes
        .iter()
        .map(|ns| {
            let ns_ref = ns.as_deref();
            let (pc, ps) = caches::watch(api(client, ns_ref), "MfaProvider", provider_filter.clone(), relisted.clone());
            let (ec, es) = caches::watch(api(client, ns_ref), "Employee", employee_filter.clone(), relisted.clone());
            let (gc, gs) = caches::watch(api(client, ns_ref), "AccessGrant", grant_filter.clone(), relisted.clone());
            let (sc, ss) = caches::watch(api(client, ns_ref), "Secret", secret_filter.clone(), relisted.clone());
            let (ac, as_) =
                caches::watch(api(client, ns_ref), "RevocationApproval", approval_filter.clone(), relisted.clone());
            Scope {
                namespace: ns.clone(),
                providers: (pc, ps.boxed()),
                employees: (ec, es.boxed()),
                grants: (gc, gs.boxed()),
                approvals: (ac, as_.boxed()),
                secrets: (sc, ss.boxed()),
                employee_trigger: unbounded(),
                provider_trigger: unbounded(),
            }
        })
        .collect()
}

/// Provider sweeps call the Employee controller of the right scope back through the sender
/// returned here.
pub(super) fn route_employee_triggers(scopes: &[Scope]) -> UnboundedSender<ObjectRef<Employee>> {
    route(scopes.iter().map(|s| (s.namespace.clone(), s.employee_trigger.0.clone())).collect())
}

/// The event-log follower asks for provider sweeps through the sender returned here.
pub(super) fn route_provider_triggers(scopes: &[Scope]) -> UnboundedSender<ObjectRef<MfaProvider>> {
    route(scopes.iter().map(|s| (s.namespace.clone(), s.provider_trigger.0.clone())).collect())
}

/// One sender that passes each reference on to the controller of its namespace's scope.
fn route<K>(routes: Vec<(Option<String>, UnboundedSender<ObjectRef<K>>)>) -> UnboundedSender<ObjectRef<K>>
where
    K: Resource + 'static,
    K::DynamicType: Send + Sync,
{
    let (router_tx, mut router_rx) = unbounded::<ObjectRef<K>>();
    tokio::spawn(async move {
        while let Some(r) = router_rx.next().await {
            if let Some((_, tx)) = routes.iter().find(|(ns, _)| ns.is_none() || *ns == r.namespace) {
                let _ = tx.unbounded_send(r);
            }
        }
    });
    router_tx
}

/// The three controllers of one scope (a namespace, or the cluster): the MfaProvider
/// controller, fed by changes of the kinds a sweep depends on, and the Employee and
/// AccessGrant controllers that keep finalizers and status.
pub(super) fn scope_controllers(
    scope: Scope,
    ctx: Arc<Context>,
    all_tx: &tokio::sync::broadcast::Sender<()>,
    changes: &Changes,
    mut shutdown_rx: watch::Receiver<bool>,
) -> Vec<futures::future::BoxFuture<'static, ()>> {
    let shutdown_signal = async move {
        let _ = shutdown_rx.changed().await;
    }
    .shared();
    let Scope { providers, employees, grants, secrets, approvals, employee_trigger, provider_trigger, .. } = scope;
    let (Some(provider_store), Some(employee_store), Some(grant_store)) =
        (providers.0.store(), employees.0.store(), grants.0.store())
    else {
        return Vec::new();
    };
    // Employee and grant changes feed their own controllers (by reference: the object itself
    // is in the cache) and the provider sweeps.
    let (employee_events_tx, employee_events_rx) = unbounded::<ObjectRef<Employee>>();
    let (grant_events_tx, grant_events_rx) = unbounded::<ObjectRef<AccessGrant>>();
    let employee_stream = employees.1.inspect(move |e| {
        if let Ok(e) = e {
            let _ = employee_events_tx.unbounded_send(ObjectRef::from_obj(e));
        }
    });
    let grant_stream = grants.1.inspect(move |g| {
        if let Ok(g) = g {
            let _ = grant_events_tx.unbounded_send(ObjectRef::from_obj(g));
        }
    });
    let maps = ProviderMaps {
        store: provider_store.clone(),
        employees: employee_store.clone(),
        grants: grant_store.clone(),
        employee_specs: Arc::new(ChangeFilter::new(employee_spec_fingerprint)),
        changes: changes.clone(),
        targets: ctx.sweep.targets.clone(),
        usernames: Default::default(),
        grants_seen: Default::default(),
    };
    // A lagged receiver still means "sweep everything"; only a closed channel ends it.
    let reconcile_all = futures::stream::unfold(all_tx.subscribe(), |mut rx| async move {
        match rx.recv().await {
            Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });

    let provider_controller = Controller::for_stream(providers.1, provider_store)
        .with_config(controller_config(SWEEPS_AT_ONCE))
        .watches_stream(employee_stream, maps.clone().of_employee())
        .watches_stream(grant_stream, maps.clone().of_grant())
        .watches_stream(secrets.1, maps.clone().of_secret())
        .watches_stream(approvals.1, maps.of_approval())
        .reconcile_on(provider_trigger.1)
        .reconcile_all_on(reconcile_all)
        .graceful_shutdown_on(shutdown_signal.clone())
        .run(provider::reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "provider controller");
            }
            futures::future::ready(())
        })
        .boxed();

    let employee_triggers = futures::stream::select(employee_events_rx, employee_trigger.1);
    let employee_controller = Controller::for_stream(futures::stream::empty::<Result<Employee, _>>(), employee_store)
        .with_config(controller_config(EMPLOYEES_AT_ONCE))
        .reconcile_on(employee_triggers)
        .graceful_shutdown_on(shutdown_signal.clone())
        .run(employee::reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()))
        .boxed();

    let grant_controller = Controller::for_stream(futures::stream::empty::<Result<AccessGrant, _>>(), grant_store)
        .with_config(controller_config(GRANTS_AT_ONCE))
        .reconcile_on(grant_events_rx)
        .graceful_shutdown_on(shutdown_signal)
        .run(grant::reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .boxed();
    vec![provider_controller, employee_controller, grant_controller]
}

fn controller_config(concurrency: u16) -> ControllerConfig {
    ControllerConfig::default().debounce(Duration::from_millis(100)).concurrency(concurrency)
}

/// (provider key, user name on that provider).
type ProviderUser = (ProviderKey, String);

/// Which MfaProviders a change of an Employee, an AccessGrant or a Secret concerns.
#[derive(Clone)]
struct ProviderMaps {
    store: kube::runtime::reflector::Store<MfaProvider>,
    /// The Employee cache, which already reflects the event being mapped: an Employee missing
    /// from it was deleted.
    employees: kube::runtime::reflector::Store<Employee>,
    /// Employee changes reach the mapping when their status changed too; only spec and
    /// deletion changes concern the providers.
    employee_specs: Arc<ChangeFilter<Employee>>,
    changes: Changes,
    /// The grant cache, which already reflects the event being mapped.
    grants: kube::runtime::reflector::Store<AccessGrant>,
    /// Where the users each change concerns are noted for the providers' targeted sweeps.
    targets: targets::Targets,
    /// Each Employee's user name per provider key, as last seen: a changed identity or
    /// mapping concerns the old user as well as the new one.
    usernames: Arc<Mutex<HashMap<String, Vec<ProviderUser>>>>,
    /// Each grant as last seen: a change concerns the people it selected before and after.
    grants_seen: Arc<Mutex<HashMap<String, Arc<AccessGrant>>>>,
}

impl ProviderMaps {
    fn matching(&self, keep: impl Fn(&MfaProvider) -> bool) -> Vec<ObjectRef<MfaProvider>> {
        self.store.state().iter().filter(|p| keep(p)).map(|p| ObjectRef::from_obj(p.as_ref())).collect()
    }

    /// Every provider of the Employee's namespace (any of them may map it to a user), when its
    /// spec changed or it is gone.
    fn of_employee(self) -> impl Fn(Employee) -> Vec<ObjectRef<MfaProvider>> {
        move |e| {
            let gone = self.employees.get(&ObjectRef::from_obj(&e)).is_none();
            if gone {
                self.employee_specs.deleted(&e);
            } else if !self.employee_specs.applied(&e) {
                return Vec::new();
            }
            let refs = self.matching(|p| p.namespace() == e.namespace());
            observed(&self.changes, &refs);
            self.target_employee(&e, gone);
            refs
        }
    }

    /// Notes the Employee's user on each provider of its namespace (and the user it mapped to
    /// before, if that differs) for the providers' targeted sweeps.
    fn target_employee(&self, e: &Employee, gone: bool) {
        let key = format!("{}/{}", e.namespace().unwrap_or_default(), e.name_any());
        let now: Vec<ProviderUser> = self
            .store
            .state()
            .iter()
            .filter(|p| p.namespace() == e.namespace())
            .map(|p| (ProviderKey::of(p), crate::engine::identity::username(e, p)))
            .collect();
        let before = {
            let mut known = locked(&self.usernames);
            if gone { known.remove(&key) } else { known.insert(key, now.clone()) }
        };
        for (provider, name) in now.iter().chain(before.iter().flatten()) {
            targets::add_users(&self.targets, provider, [name.as_str()]);
        }
    }

    /// The provider the grant names (and the one it named before).
    fn of_grant(self) -> impl Fn(AccessGrant) -> Vec<ObjectRef<MfaProvider>> {
        move |g| {
            let key = format!("{}/{}", g.namespace().unwrap_or_default(), g.name_any());
            let gone = self.grants.get(&ObjectRef::from_obj(&g)).is_none();
            let g = Arc::new(g);
            let before = {
                let mut seen = locked(&self.grants_seen);
                if gone { seen.remove(&key) } else { seen.insert(key, g.clone()) }
            };
            let named = |p: &MfaProvider| {
                p.name_any() == g.spec.provider || before.as_ref().is_some_and(|b| p.name_any() == b.spec.provider)
            };
            let refs = self.matching(|p| p.namespace() == g.namespace() && named(p));
            observed(&self.changes, &refs);
            self.target_grant(&g, before.as_deref());
            refs
        }
    }

    /// Notes the users of the people the grant selects, now or before, on the providers it
    /// names, for the providers' targeted sweeps.
    fn target_grant(&self, g: &AccessGrant, before: Option<&AccessGrant>) {
        let namespace = g.namespace();
        let people: Vec<Arc<Employee>> = self
            .employees
            .state()
            .into_iter()
            .filter(|e| e.namespace() == namespace)
            .filter(|e| selects(g, e) || before.is_some_and(|b| selects(b, e)))
            .collect();
        for provider in self.store.state().iter().filter(|p| p.namespace() == namespace) {
            let name = provider.name_any();
            if name != g.spec.provider && before.is_none_or(|b| b.spec.provider != name) {
                continue;
            }
            let users: Vec<String> = people.iter().map(|e| crate::engine::identity::username(e, provider)).collect();
            targets::add_users(&self.targets, &ProviderKey::of(provider), users.iter().map(String::as_str));
        }
    }

    /// The provider an approval names: created, it may let the held plan through (which only
    /// a full sweep makes).
    fn of_approval(self) -> impl Fn(RevocationApproval) -> Vec<ObjectRef<MfaProvider>> {
        move |a| {
            let refs = self.matching(|p| p.namespace() == a.namespace() && p.name_any() == a.spec.provider);
            self.require_full(&refs, "a RevocationApproval changed");
            refs
        }
    }

    /// The providers whose credentials the Secret holds.
    fn of_secret(self) -> impl Fn(Secret) -> Vec<ObjectRef<MfaProvider>> {
        move |s| {
            let refs = self.matching(|p| {
                p.namespace() == s.namespace() && crate::providers::secret_names(p).contains(&s.name_any())
            });
            self.require_full(&refs, "its credentials Secret changed");
            refs
        }
    }

    fn require_full(&self, refs: &[ObjectRef<MfaProvider>], why: &'static str) {
        for r in refs {
            targets::require_full(&self.targets, &key_of(r), why);
        }
    }
}

fn selects(grant: &AccessGrant, employee: &Employee) -> bool {
    crate::engine::entitlement::selects(grant, employee)
}

fn error_policy<K>(obj: Arc<K>, error: &error::ControllerError, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    tracing::warn!(object = %obj.name_any(), category = error.category(), error = %error, "reconcile failed");
    // Backoff by what failed, per object, jittered: a lost race again within a second, an API
    // outage in growing steps, a refused write (RBAC, an invalid object) rarely.
    let key = format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any());
    Action::requeue(ctx.sweep.retries.next(&key, error.trouble()))
}

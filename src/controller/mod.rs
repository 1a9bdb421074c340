//! `keyward run`: the in-cluster operator.
//!
//! Per watched namespace (or once cluster-wide): reflectors for the three kinds and Secrets,
//! and three controllers. The MfaProvider controller sweeps a provider whenever something it
//! depends on changes (an Employee, an AccessGrant, its Secret, its own spec or approval) and
//! every `resyncInterval`; the Employee controller owns the finalizer and Employee status; the
//! AccessGrant controller its status. Only the Lease holder acts.

pub mod caches;
pub mod config;
pub mod context;
pub mod employee;
pub mod error;
pub mod grant;
pub mod leader;
pub mod provider;
pub mod status;

use crate::crd::{APPROVE_REVOCATIONS_ANNOTATION, AccessGrant, Employee, MfaProvider};
use caches::{Cache, ChangeFilter};
use config::RunArgs;
use context::Context;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("connect to the Kubernetes API: {0}")]
    Connect(#[source] kube::Error),
    #[error("listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
}

fn provider_fingerprint(p: &MfaProvider) -> String {
    format!(
        "{:?}|{:?}|{}",
        p.metadata.generation,
        p.annotations().get(APPROVE_REVOCATIONS_ANNOTATION),
        p.metadata.deletion_timestamp.is_some()
    )
}

fn employee_fingerprint(e: &Employee) -> String {
    // The spec (generation) and deletion decide entitlement; our own status and finalizer
    // writes do not, and must not trigger the sweep that made them.
    format!("{:?}|{}", e.metadata.generation, e.metadata.deletion_timestamp.is_some())
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

type Changes = Arc<Mutex<HashMap<String, Instant>>>;

/// Notes that a change concerning these providers was observed (for the latency metric).
fn observed(changes: &Changes, refs: &[ObjectRef<MfaProvider>]) {
    if let Ok(mut changes) = changes.lock() {
        for r in refs {
            changes
                .entry(format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name))
                .or_insert_with(Instant::now);
        }
    }
}

struct Scope {
    providers:
        (Cache<MfaProvider>, futures::stream::BoxStream<'static, Result<MfaProvider, kube::runtime::watcher::Error>>),
    employees: (Cache<Employee>, futures::stream::BoxStream<'static, Result<Employee, kube::runtime::watcher::Error>>),
    grants:
        (Cache<AccessGrant>, futures::stream::BoxStream<'static, Result<AccessGrant, kube::runtime::watcher::Error>>),
    secrets: (Cache<Secret>, futures::stream::BoxStream<'static, Result<Secret, kube::runtime::watcher::Error>>),
    employee_trigger:
        (UnboundedSender<ObjectRef<Employee>>, futures::channel::mpsc::UnboundedReceiver<ObjectRef<Employee>>),
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Connect)?;
    let namespaces = args.namespaces();
    let scopes: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.iter().cloned().map(Some).collect() };
    let identity = args.identity();
    tracing::info!(?namespaces, %identity, "starting keyward operator");

    let (relisted_tx, relisted_rx) = unbounded::<()>();
    let provider_filter = Arc::new(ChangeFilter::new(provider_fingerprint));
    let employee_filter = Arc::new(ChangeFilter::new(employee_fingerprint));
    let grant_filter = Arc::new(ChangeFilter::new(grant_fingerprint));
    let secret_filter = Arc::new(ChangeFilter::new(secret_fingerprint));
    let mut built: Vec<(Option<String>, Scope)> = Vec::new();
    for ns in &scopes {
        let ns_ref = ns.as_deref();
        let (pc, ps) = caches::watch(api(&client, ns_ref), "MfaProvider", provider_filter.clone(), relisted_tx.clone());
        let (ec, es) = caches::watch(api(&client, ns_ref), "Employee", employee_filter.clone(), relisted_tx.clone());
        let (gc, gs) = caches::watch(api(&client, ns_ref), "AccessGrant", grant_filter.clone(), relisted_tx.clone());
        let (sc, ss) = caches::watch(api(&client, ns_ref), "Secret", secret_filter.clone(), relisted_tx.clone());
        built.push((
            ns.clone(),
            Scope {
                providers: (pc, ps.boxed()),
                employees: (ec, es.boxed()),
                grants: (gc, gs.boxed()),
                secrets: (sc, ss.boxed()),
                employee_trigger: unbounded(),
            },
        ));
    }

    let (leader_tx, leader_rx) = watch::channel(false);
    let leadership = leader::Leadership::default();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (audit_tx, audit_rx) = tokio::sync::mpsc::unbounded_channel();
    let audit_writer = tokio::spawn(crate::audit::write_from(audit_rx, args.audit_log.clone()));
    let changes: Changes = Arc::new(Mutex::new(HashMap::new()));

    // Provider sweeps call the Employee controller of the right scope back.
    let (employee_router_tx, mut employee_router_rx) = unbounded::<ObjectRef<Employee>>();
    let routes: Vec<(Option<String>, UnboundedSender<ObjectRef<Employee>>)> =
        built.iter().map(|(ns, s)| (ns.clone(), s.employee_trigger.0.clone())).collect();
    tokio::spawn(async move {
        while let Some(r) = employee_router_rx.next().await {
            if let Some((_, tx)) = routes.iter().find(|(ns, _)| ns.is_none() || *ns == r.namespace) {
                let _ = tx.unbounded_send(r);
            }
        }
    });

    let ctx = Arc::new(Context {
        client: client.clone(),
        providers: Cache::merge(built.iter().map(|(_, s)| s.providers.0.clone()).collect()),
        employees: Cache::merge(built.iter().map(|(_, s)| s.employees.0.clone()).collect()),
        grants: Cache::merge(built.iter().map(|(_, s)| s.grants.0.clone()).collect()),
        secrets: Cache::merge(built.iter().map(|(_, s)| s.secrets.0.clone()).collect()),
        leader: leader_rx.clone(),
        leadership: leadership.clone(),
        metrics: crate::metrics::Metrics::new(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "keyward".into(), instance: Some(identity.clone()) },
        ),
        audit: crate::audit::Channel(audit_tx),
        backends: Mutex::new(HashMap::new()),
        sweeps: Mutex::new(Default::default()),
        changes: changes.clone(),
        retries: Default::default(),
        employee_trigger: employee_router_tx,
        ledgers: Mutex::new(HashMap::new()),
        args: args.clone(),
    });

    // Health and metrics.
    let listener =
        crate::http::bind(args.listen).await.map_err(|source| RunError::Listen { addr: args.listen, source })?;
    let health: Arc<dyn crate::http::Health> = Arc::new(HealthView(ctx.clone()));
    let mut http_shutdown = shutdown_rx.clone();
    let http = tokio::spawn(crate::http::serve(listener, health, async move {
        let _ = http_shutdown.changed().await;
    }));

    // Leadership.
    let elector = Arc::new(leader::Elector::new(
        Api::<Lease>::namespaced(client.clone(), &args.lease_namespace()),
        args.lease_name.clone(),
        identity.clone(),
        args.lease_duration,
        leadership,
    ));
    let election = tokio::spawn(elector.clone().run(leader_tx, shutdown_rx.clone()));
    {
        let ctx = ctx.clone();
        let mut leader = leader_rx.clone();
        tokio::spawn(async move {
            while leader.changed().await.is_ok() {
                let is = *leader.borrow();
                ctx.metrics.leader.set(i64::from(is));
                tracing::info!(leader = is, "leadership changed");
            }
        });
    }

    // Every provider is swept again on gaining leadership and after every relist.
    let (all_tx, _) = tokio::sync::broadcast::channel::<()>(16);
    {
        let on_leadership = all_tx.clone();
        let mut leader = leader_rx.clone();
        tokio::spawn(async move {
            while leader.changed().await.is_ok() {
                if *leader.borrow() {
                    let _ = on_leadership.send(());
                }
            }
        });
        let on_relist = all_tx.clone();
        tokio::spawn(relisted_rx.for_each(move |()| {
            let _ = on_relist.send(());
            futures::future::ready(())
        }));
    }

    let controllers: Vec<_> = built
        .into_iter()
        .flat_map(|(_, scope)| scope_controllers(scope, ctx.clone(), &all_tx, &changes, shutdown_rx.clone()))
        .collect();

    let signals = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => futures::future::pending::<()>().await } } => {}
        }
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    };
    tokio::join!(futures::future::join_all(controllers), signals);
    let _ = election.await;
    // Only now, with every sweep finished, may another replica take over.
    elector.release().await;
    let _ = http.await;
    drop(ctx);
    let _ = audit_writer.await;
    Ok(())
}

/// The three controllers of one scope (a namespace, or the cluster): the MfaProvider
/// controller, fed by changes of the kinds a sweep depends on, and the Employee and
/// AccessGrant controllers that keep finalizers and status.
fn scope_controllers(
    scope: Scope,
    ctx: Arc<Context>,
    all_tx: &tokio::sync::broadcast::Sender<()>,
    changes: &Changes,
    mut shutdown_rx: watch::Receiver<bool>,
) -> Vec<futures::future::BoxFuture<'static, ()>> {
    let config = ControllerConfig::default().debounce(Duration::from_millis(100));
    let shutdown_signal = async move {
        let _ = shutdown_rx.changed().await;
    }
    .shared();
    let Scope { providers, employees, grants, secrets, employee_trigger } = scope;
    let (Some(provider_store), Some(employee_store), Some(grant_store)) =
        (providers.0.store(), employees.0.store(), grants.0.store())
    else {
        return Vec::new();
    };
    // Employee and grant events feed their own controllers and the provider sweeps.
    let (employee_events_tx, employee_events_rx) = unbounded::<Employee>();
    let (grant_events_tx, grant_events_rx) = unbounded::<AccessGrant>();
    let employee_stream = employees.1.inspect(move |e| {
        if let Ok(e) = e {
            let _ = employee_events_tx.unbounded_send(e.clone());
        }
    });
    let grant_stream = grants.1.inspect(move |g| {
        if let Ok(g) = g {
            let _ = grant_events_tx.unbounded_send(g.clone());
        }
    });

    let to_providers_of_ns = {
        let store = provider_store.clone();
        move |namespace: Option<String>| -> Vec<ObjectRef<MfaProvider>> {
            store
                .state()
                .iter()
                .filter(|p| p.namespace() == namespace)
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect()
        }
    };
    let employee_map = {
        let f = to_providers_of_ns.clone();
        let changes = changes.clone();
        move |e: Employee| {
            let refs = f(e.namespace());
            observed(&changes, &refs);
            refs
        }
    };
    let grant_map = {
        let store = provider_store.clone();
        let changes = changes.clone();
        move |g: AccessGrant| {
            let refs: Vec<ObjectRef<MfaProvider>> = store
                .state()
                .iter()
                .filter(|p| p.namespace() == g.namespace() && p.name_any() == g.spec.provider)
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect();
            observed(&changes, &refs);
            refs
        }
    };
    let secret_map = {
        let store = provider_store.clone();
        move |s: Secret| {
            store
                .state()
                .iter()
                .filter(|p| p.namespace() == s.namespace() && crate::providers::secret_names(p).contains(&s.name_any()))
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    // A lagged receiver still means "sweep everything"; only a closed channel ends it.
    let reconcile_all = futures::stream::unfold(all_tx.subscribe(), |mut rx| async move {
        match rx.recv().await {
            Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });

    let provider_controller = Controller::for_stream(providers.1, provider_store)
        .with_config(config.clone())
        .watches_stream(employee_stream, employee_map)
        .watches_stream(grant_stream, grant_map)
        .watches_stream(secrets.1, secret_map)
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

    let employee_triggers =
        futures::stream::select(employee_events_rx.map(|e| ObjectRef::from_obj(&e)), employee_trigger.1);
    let employee_controller = Controller::for_stream(
        futures::stream::empty::<Result<Employee, kube::runtime::watcher::Error>>(),
        employee_store,
    )
    .with_config(config.clone())
    .reconcile_on(employee_triggers)
    .graceful_shutdown_on(shutdown_signal.clone())
    .run(employee::reconcile, error_policy, ctx.clone())
    .for_each(|_| futures::future::ready(()))
    .boxed();

    let grant_controller = Controller::for_stream(
        futures::stream::empty::<Result<AccessGrant, kube::runtime::watcher::Error>>(),
        grant_store,
    )
    .with_config(config.clone())
    .reconcile_on(grant_events_rx.map(|g| ObjectRef::from_obj(&g)))
    .graceful_shutdown_on(shutdown_signal.clone())
    .run(grant::reconcile, error_policy, ctx.clone())
    .for_each(|_| futures::future::ready(()))
    .boxed();
    vec![provider_controller, employee_controller, grant_controller]
}

fn error_policy<K>(obj: Arc<K>, error: &error::ControllerError, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    tracing::warn!(object = %obj.name_any(), category = error.category(), error = %error, "reconcile failed");
    // Backoff by what failed, per object, jittered: a lost race again within a second, an API
    // outage in growing steps, a refused write (RBAC, an invalid object) rarely.
    let key = format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any());
    Action::requeue(ctx.retries.next(&key, error.trouble()))
}

struct HealthView(Arc<Context>);

impl crate::http::Health for HealthView {
    fn metrics(&self) -> String {
        self.0.metrics.encode()
    }
    fn ready(&self) -> Result<(), String> {
        self.0.synced()
    }
}

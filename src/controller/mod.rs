//! `keyward run`: the in-cluster operator.
//!
//! Per watched namespace (or once cluster-wide): reflectors for the four kinds and the
//! labelled Secrets, and three controllers. The MfaProvider controller sweeps a provider
//! whenever something it depends on changes (an Employee, an AccessGrant, its Secret, its own
//! spec or approval) and every `resyncInterval`; the Employee controller owns the finalizer
//! and Employee status; the AccessGrant controller its status. Only the Lease holder acts, and
//! on an MfaProvider only when its installation holds the provider's claim (`claim`).

pub mod caches;
pub mod checkpoint;
pub mod claim;
pub mod config;
pub mod context;
pub mod employee;
pub mod error;
pub mod events;
pub mod grant;
pub mod leader;
pub mod provider;
pub mod settings;
pub mod status;
pub mod targets;

use crate::audit::cloudevents::{CollectorDelivery, DeliveryError, Endpoint};
use crate::audit::spool::Spool;
use crate::crd::{APPROVE_REVOCATIONS_ANNOTATION, AccessGrant, Employee, MfaProvider, ProviderKey, RevocationApproval};
use caches::{Cache, ChangeFilter};
use config::RunArgs;
use context::{Context, locked};
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
    #[error("audit signing key: {0}")]
    SigningKey(String),
    #[error("--audit-endpoint needs --audit-log FILE: the delivery spool is kept beside that file")]
    EndpointWithoutFile,
    #[error("--audit-endpoint: {0}")]
    Endpoint(String),
    #[error("start the audit delivery: {0}")]
    AuditDelivery(#[source] DeliveryError),
    #[error("start the notifications: {0}")]
    Notifier(#[source] crate::notify::NotifyError),
}

/// The audit trail of this replica: its records name it and its ServiceAccount (the chart
/// sets `KEYWARD_SERVICE_ACCOUNT`), and its checkpoints are signed when a key is given.
/// With `--audit-endpoint`, the file's lines are spooled for delivery (returned).
type OpenedAudit = (Arc<dyn crate::audit::AuditSink>, Option<Spool>);

fn open_audit(args: &RunArgs, identity: &str, metrics: &crate::metrics::Metrics) -> Result<OpenedAudit, RunError> {
    let stamp = crate::audit::Stamp {
        replica: Some(identity.to_string()),
        service_account: std::env::var("KEYWARD_SERVICE_ACCOUNT").ok().filter(|s| !s.is_empty()),
    };
    let signer = args.audit_signing_key.as_deref().map(read_signer).transpose().map_err(RunError::SigningKey)?;
    let spool = audit_spool(args, metrics)?;
    let rotate = Some(args.audit_rotate_size);
    let peers = args.audit_peer_logs.clone();
    Ok((crate::audit::open_log(&args.audit_log, stamp, signer.map(Arc::new), spool.clone(), rotate, peers), spool))
}

/// The delivery spool beside the audit file, when records go to a collector too.
fn audit_spool(args: &RunArgs, metrics: &crate::metrics::Metrics) -> Result<Option<Spool>, RunError> {
    if args.audit_endpoint.is_none() {
        return Ok(None);
    }
    if args.audit_log.as_os_str() == "-" {
        return Err(RunError::EndpointWithoutFile);
    }
    if let Some(endpoint) = &args.audit_endpoint {
        // The installer chose it, so no host list applies; the scheme and address rules do.
        let url = url::Url::parse(endpoint).map_err(|e| RunError::Endpoint(format!("not a URL: {e}")))?;
        crate::outbound::check_with(&url, &crate::providers::allowlist::HostAllowlist::any())
            .map_err(RunError::Endpoint)?;
    }
    let (backlog, failures) = (metrics.audit_delivery_backlog.clone(), metrics.audit_delivery_failures.clone());
    Ok(Some(Spool::beside(&args.audit_log, backlog, failures)))
}

/// The delivery of the spool to `--audit-endpoint`, when there is one; built before anything
/// starts, so that a delivery that cannot be built stops the start.
fn audit_delivery(args: &RunArgs, spool: Option<Spool>) -> Result<Option<CollectorDelivery>, RunError> {
    let (Some(url), Some(spool)) = (args.audit_endpoint.clone(), spool) else { return Ok(None) };
    let endpoint = Endpoint { url, token_file: args.audit_endpoint_token_file.clone() };
    CollectorDelivery::new(spool, endpoint).map(Some).map_err(RunError::AuditDelivery)
}

/// Delivers the spool to `--audit-endpoint` until shutdown. On every replica: only the leader
/// writes records, and a former leader still sends what it spooled.
fn deliver_audit(
    delivery: Option<CollectorDelivery>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    Some(tokio::spawn(delivery?.run(async move {
        let _ = shutdown.changed().await;
    })))
}

/// The notifier of `spec.notifications`: its spool, the audit trail its deliveries are
/// recorded in, and the Secret cache its URLs and keys come from.
fn start_notifier(
    args: &RunArgs,
    audit: Arc<dyn crate::audit::AuditSink>,
    secrets: &Cache<Secret>,
    metrics: &crate::metrics::Metrics,
    shutdown: watch::Receiver<bool>,
) -> Result<crate::notify::Notifier, RunError> {
    let settings = crate::notify::Settings {
        spool: args.notification_spool(),
        audit,
        secrets: Arc::new(secrets.clone()),
        backoff: crate::notify::Settings::backoff(),
        backlog: metrics.notification_backlog.clone(),
        failures: metrics.notification_failures.clone(),
    };
    crate::notify::Notifier::start(settings, shutdown).map_err(RunError::Notifier)
}

/// The signer key in `path` (`keyward audit keygen`'s first line).
pub fn read_signer(path: &std::path::Path) -> Result<crate::audit::Signer, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    crate::audit::Signer::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

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

type Changes = Arc<Mutex<HashMap<ProviderKey, Instant>>>;
type Events<K> = futures::stream::BoxStream<'static, Result<K, kube::runtime::watcher::Error>>;

/// How long a shutdown may take from SIGTERM: in-flight reconciles finish within it or are
/// abandoned. Below the chart's `terminationGracePeriodSeconds` (30 s), with room left for
/// releasing the Lease (at most a third of its duration). Audit records are on disk before
/// each sweep goes on, so there is no trail left to flush.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(20);

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
struct Scope {
    namespace: Option<String>,
    providers: (Cache<MfaProvider>, Events<MfaProvider>),
    employees: (Cache<Employee>, Events<Employee>),
    grants: (Cache<AccessGrant>, Events<AccessGrant>),
    approvals: (Cache<RevocationApproval>, Events<RevocationApproval>),
    secrets: (Cache<Secret>, Events<Secret>),
    employee_trigger:
        (UnboundedSender<ObjectRef<Employee>>, futures::channel::mpsc::UnboundedReceiver<ObjectRef<Employee>>),
    provider_trigger:
        (UnboundedSender<ObjectRef<MfaProvider>>, futures::channel::mpsc::UnboundedReceiver<ObjectRef<MfaProvider>>),
}

/// Starts the reflectors of every scope. Each change filter is shared by the scopes.
fn watch_scopes(client: &Client, scopes: &[Option<String>], relisted: &UnboundedSender<()>) -> Vec<Scope> {
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
fn route_employee_triggers(scopes: &[Scope]) -> UnboundedSender<ObjectRef<Employee>> {
    route(scopes.iter().map(|s| (s.namespace.clone(), s.employee_trigger.0.clone())).collect())
}

/// The event-log follower asks for provider sweeps through the sender returned here.
fn route_provider_triggers(scopes: &[Scope]) -> UnboundedSender<ObjectRef<MfaProvider>> {
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

/// What `run` starts besides the controllers, to be stopped in order on shutdown.
struct Background {
    elector: Arc<leader::Elector>,
    election: tokio::task::JoinHandle<()>,
    http: tokio::task::JoinHandle<()>,
    /// The copy of the signed audit checkpoint, which makes one last copy on the way out.
    checkpoint_copy: Option<tokio::task::JoinHandle<()>>,
    /// The delivery of audit records to a collector.
    delivery: Option<tokio::task::JoinHandle<()>>,
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Connect)?;
    let namespaces = args.namespaces();
    let scopes: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.iter().cloned().map(Some).collect() };
    let identity = args.identity();
    tracing::info!(?namespaces, %identity, "starting keyward operator");

    let (relisted_tx, relisted_rx) = unbounded::<()>();
    let built = watch_scopes(&client, &scopes, &relisted_tx);
    let (leader_tx, leader_rx) = watch::channel(false);
    let leadership = leader::Leadership::default();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = crate::metrics::Metrics::new();
    let (audit, spool) = open_audit(&args, &identity, &metrics)?;
    let audit_delivery = audit_delivery(&args, spool)?;
    let changes: Changes = Arc::new(Mutex::new(HashMap::new()));
    let targets: targets::Targets = Default::default();
    let secrets = Cache::merge(built.iter().map(|s| s.secrets.0.clone()).collect());
    let notifier = start_notifier(&args, audit.clone(), &secrets, &metrics, shutdown_rx.clone())?;

    let ctx = Arc::new(Context {
        client: client.clone(),
        providers: Cache::merge(built.iter().map(|s| s.providers.0.clone()).collect()),
        employees: Cache::merge(built.iter().map(|s| s.employees.0.clone()).collect()),
        grants: Cache::merge(built.iter().map(|s| s.grants.0.clone()).collect()),
        secrets,
        approvals: Cache::merge(built.iter().map(|s| s.approvals.0.clone()).collect()),
        leader: leader_rx.clone(),
        leadership: leadership.clone(),
        metrics,
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "keyward".into(), instance: Some(identity.clone()) },
        ),
        audit,
        connected: Mutex::new(HashMap::new()),
        sweeps: Mutex::new(Default::default()),
        leadership_epoch: Default::default(),
        changes: changes.clone(),
        targets: targets.clone(),
        cursors: Default::default(),
        retries: Default::default(),
        employee_trigger: route_employee_triggers(&built),
        provider_trigger: route_provider_triggers(&built),
        ledgers: Mutex::new(HashMap::new()),
        recorded_settings: Mutex::new(HashMap::new()),
        claims: claim::Claims::new(format!("{}/{}", args.lease_namespace(), args.lease_name), args.lease_duration),
        notifier,
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

    let elector = Arc::new(leader::Elector::new(
        Api::<Lease>::namespaced(client.clone(), &args.lease_namespace()),
        args.lease_name.clone(),
        identity.clone(),
        args.lease_duration,
        leadership,
    ));
    report_leadership(ctx.clone(), leader_rx.clone());
    let all_tx = sweep_all_on_leadership_and_relist(ctx.clone(), leader_rx, relisted_rx);
    let controllers: Vec<_> = built
        .into_iter()
        .flat_map(|scope| scope_controllers(scope, ctx.clone(), &all_tx, &changes, shutdown_rx.clone()))
        .collect();
    // Only now: the controllers above have subscribed to the sweep of everything that gaining
    // leadership sends; a Lease won before that would be a sweep nobody hears.
    let election = tokio::spawn(elector.clone().run(leader_tx, shutdown_rx.clone()));
    if !args.event_poll_interval.is_zero() {
        // Ends with the process: it only asks for sweeps, which the controllers make.
        tokio::spawn(events::follow(ctx.clone(), args.event_poll_interval));
    }
    tokio::spawn(claim::keep(ctx.clone(), all_tx.clone(), shutdown_rx.clone()));
    let checkpoint_copy = copy_checkpoint(&args, &client, &identity, &ctx, shutdown_rx.clone());
    let delivery = deliver_audit(audit_delivery, shutdown_rx.clone());
    let background = Background { elector, election, http, checkpoint_copy, delivery };
    shut_down_on_signal(controllers, shutdown_tx, ctx, background).await;
    Ok(())
}

/// Copies the signed audit checkpoint to its ConfigMap until shutdown, when it is signed
/// and written to a file.
fn copy_checkpoint(
    args: &RunArgs,
    client: &Client,
    identity: &str,
    ctx: &Context,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    // The key was read (and refused if unreadable) when the audit log was opened.
    let verifier = args.audit_signing_key.as_deref().and_then(|path| read_signer(path).ok())?.verifier();
    tracing::info!(verifier = %verifier, "audit checkpoints are signed; auditors check them with this verifier key");
    (args.audit_log.as_os_str() != "-").then(|| {
        tokio::spawn(checkpoint::copy_until_shutdown(
            Api::namespaced(client.clone(), &args.lease_namespace()),
            checkpoint::config_map_name(&args.lease_name),
            identity.to_string(),
            verifier,
            args.audit_log.clone(),
            ctx.leader.clone(),
            shutdown,
        ))
    })
}

/// Logs leadership transitions and publishes them as the `keyward_leader` metric.
fn report_leadership(ctx: Arc<Context>, mut leader: watch::Receiver<bool>) {
    tokio::spawn(async move {
        while leader.changed().await.is_ok() {
            let is = *leader.borrow();
            ctx.metrics.leader.set(i64::from(is));
            tracing::info!(leader = is, "leadership changed");
        }
    });
}

/// Every provider is swept again on gaining leadership and after every relist.
fn sweep_all_on_leadership_and_relist(
    ctx: Arc<Context>,
    mut leader: watch::Receiver<bool>,
    relisted: futures::channel::mpsc::UnboundedReceiver<()>,
) -> tokio::sync::broadcast::Sender<()> {
    let (all_tx, _) = tokio::sync::broadcast::channel::<()>(16);
    let ctx_relist = ctx.clone();
    let on_leadership = all_tx.clone();
    tokio::spawn(async move {
        while leader.changed().await.is_ok() {
            if *leader.borrow() {
                // Before the sweeps it triggers read it (see `LastSweep::concerns`).
                ctx.leadership_epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                require_full_everywhere(&ctx, "leadership gained");
                if !ctx.args.event_poll_interval.is_zero() {
                    events::start_term(&ctx).await;
                }
                let _ = on_leadership.send(());
            }
        }
    });
    let on_relist = all_tx.clone();
    tokio::spawn(relisted.for_each(move |()| {
        // Events may have been missed while the watch was down: no change list is complete.
        require_full_everywhere(&ctx_relist, "a watch relisted");
        let _ = on_relist.send(());
        futures::future::ready(())
    }));
    all_tx
}

/// Every provider's next sweep is a full one.
fn require_full_everywhere(ctx: &Context, why: &'static str) {
    for provider in ctx.providers.state() {
        targets::require_full(&ctx.targets, &ProviderKey::of(&provider), why);
    }
}

/// Runs the controllers until SIGTERM or Ctrl-C, then stops within [`SHUTDOWN_BOUND`]:
/// leadership ends at once (nothing new is acted on), in-flight reconciles get the rest of
/// the bound to finish, and the Lease is handed over only when they all did. Abandoned work
/// keeps the Lease: a standby takes over only when it expires, after this process has gone,
/// so that no two replicas ever act at once.
async fn shut_down_on_signal(
    controllers: Vec<futures::future::BoxFuture<'static, ()>>,
    shutdown_tx: watch::Sender<bool>,
    ctx: Arc<Context>,
    background: Background,
) {
    // Boxed, so that abandoned reconciles can be dropped at the end.
    let mut controllers = Box::pin(futures::future::join_all(controllers));
    let signal = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => futures::future::pending::<()>().await } } => {}
        }
    };
    tokio::select! {
        _ = &mut controllers => {}
        () = signal => {}
    }
    tracing::info!(bound = ?SHUTDOWN_BOUND, "shutting down");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BOUND;
    let _ = shutdown_tx.send(true);
    let finished = tokio::time::timeout_at(deadline, &mut controllers).await.is_ok();
    let Background { elector, election, http, checkpoint_copy, delivery } = background;
    let _ = tokio::time::timeout_at(deadline, election).await;
    if finished {
        // Only now, with every sweep finished, may another replica take over.
        elector.release().await;
    } else {
        tracing::warn!("in-flight work did not finish within the shutdown bound; abandoned, the Lease left to expire");
    }
    let _ = tokio::time::timeout_at(deadline, http).await;
    if let Some(copy) = checkpoint_copy {
        let _ = tokio::time::timeout_at(deadline, copy).await;
    }
    if let Some(delivery) = delivery {
        let _ = tokio::time::timeout_at(deadline, delivery).await;
    }
    // An abandoned sweep stops here, between two records: an intent it wrote stays open and
    // the next leader's sweep resolves it from the provider.
    drop(controllers);
    drop(ctx);
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
        targets: ctx.targets.clone(),
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

//! Start-up wiring of `keyward run`: the audit trail and its delivery, the notifier, the
//! shared [`Context`], leader election, the health endpoint and an orderly shutdown. Which
//! change wakes which reconcile is [`super::routing`]'s.

use super::caches::Cache;
use super::config::RunArgs;
use super::context::{Caches, Context, Leading, Outputs, SweepState};
use super::routing::{self, Changes};
use super::{checkpoint, claim, events, leader, targets};
use crate::audit::cloudevents::{CollectorDelivery, DeliveryError, Endpoint};
use crate::audit::spool::Spool;
use crate::crd::ProviderKey;
use futures::StreamExt;
use futures::channel::mpsc::unbounded;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

/// How long a shutdown may take from SIGTERM: in-flight reconciles finish within it or are
/// abandoned. Below the chart's `terminationGracePeriodSeconds` (30 s), with room left for
/// releasing the Lease (at most a third of its duration). Audit records are on disk before
/// each sweep goes on, so there is no trail left to flush.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(20);

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
    let built = routing::watch_scopes(&client, &scopes, &relisted_tx);
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

    let caches = Caches {
        providers: Cache::merge(built.iter().map(|s| s.providers.0.clone()).collect()),
        employees: Cache::merge(built.iter().map(|s| s.employees.0.clone()).collect()),
        grants: Cache::merge(built.iter().map(|s| s.grants.0.clone()).collect()),
        secrets,
        approvals: Cache::merge(built.iter().map(|s| s.approvals.0.clone()).collect()),
    };
    let leading = Leading {
        leader: leader_rx.clone(),
        lease: leadership.clone(),
        epoch: Default::default(),
        claims: claim::Claims::new(format!("{}/{}", args.lease_namespace(), args.lease_name), args.lease_duration),
    };
    let sweep = SweepState { changes: changes.clone(), targets: targets.clone(), ..Default::default() };
    let outputs = Outputs {
        metrics,
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "keyward".into(), instance: Some(identity.clone()) },
        ),
        audit,
        notifier,
        employee_trigger: routing::route_employee_triggers(&built),
        provider_trigger: routing::route_provider_triggers(&built),
    };
    let ctx = Arc::new(Context { client: client.clone(), args: args.clone(), caches, leading, sweep, outputs });

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
        .flat_map(|scope| routing::scope_controllers(scope, ctx.clone(), &all_tx, &changes, shutdown_rx.clone()))
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
            ctx.leading.leader.clone(),
            shutdown,
        ))
    })
}

/// Logs leadership transitions and publishes them as the `keyward_leader` metric.
fn report_leadership(ctx: Arc<Context>, mut leader: watch::Receiver<bool>) {
    tokio::spawn(async move {
        while leader.changed().await.is_ok() {
            let is = *leader.borrow();
            ctx.outputs.metrics.leader.set(i64::from(is));
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
                ctx.leading.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
    for provider in ctx.caches.providers.state() {
        targets::require_full(&ctx.sweep.targets, &ProviderKey::of(&provider), why);
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

struct HealthView(Arc<Context>);

impl crate::http::Health for HealthView {
    fn metrics(&self) -> String {
        self.0.outputs.metrics.encode()
    }
    fn ready(&self) -> Result<(), String> {
        self.0.synced()
    }
}

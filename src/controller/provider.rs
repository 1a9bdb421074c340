//! The MfaProvider reconciler: one sweep of the provider per change or resync.

use super::claim::Standing;
use super::context::{Context, LastSweep, locked};
use super::error::ControllerError;
use super::status;
use super::targets;
use crate::crd::mfa_provider::Mode;
use crate::crd::{AccessGrant, Employee, MfaProvider, ProviderKey};
use crate::engine::{ActionKind, budget, entitlement};
use crate::metrics::{ErrorLabels, ProviderLabels, ReasonLabels, RevocationLabels};
use crate::providers::Provider;
use crate::sweep::{self, ActionResult, Declared, DeclaredNow, Execution, Guard, SweepReport};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub const FIELD_MANAGER: &str = "keyward";
/// How long after an active window's or a grant's edge the sweep runs: enough for the edge
/// to be in the past on this clock when the planner evaluates it.
const BOUNDARY_SLACK: Duration = Duration::from_millis(500);
/// Caches not synced yet: look again shortly; nothing is decided meanwhile.
const RETRY_UNSYNCED: Duration = Duration::from_secs(1);

#[tracing::instrument(skip_all, fields(provider = %ProviderKey::of(&provider)))]
pub async fn reconcile(provider: Arc<MfaProvider>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if let Some(action) = nothing_to_decide(&provider, &ctx) {
        return Ok(action);
    }
    let key = ProviderKey::of(&provider);
    match claim_standing(&ctx, &key) {
        Standing::Holds => {}
        // The claim rounds reconcile every provider when they settle it.
        Standing::Unsettled => return Ok(Action::requeue(RETRY_UNSYNCED)),
        Standing::HeldElsewhere { holder } => return claimed_elsewhere(&ctx, &provider, &holder).await,
    }
    // On record before acting on it: a suspension, a protected user, Observe or a new budget
    // is an audit record and a notification first.
    super::settings::record_changes(&ctx, &provider).await?;
    if let Some(why) = suspension(&provider, &ctx) {
        return suspended(&ctx, &provider, why).await;
    }
    let namespace = provider.namespace().unwrap_or_default();
    let employees = ctx.caches.employees.in_namespace(&namespace);
    let grants = ctx.caches.grants.in_namespace(&namespace);
    let now = chrono::Utc::now();
    let connected = match ctx.connect(&provider) {
        Ok(connected) => connected,
        Err(e) => return credentials_unavailable(&ctx, &provider, &key, e, now).await,
    };

    let window = provider.spec.policy.budget.window();
    let ledger = ctx.sweep.ledger(&provider);
    let declared = Declared { provider: &provider, employees: &employees, grants: &grants };
    let used = budget::used(&ledger, now, window);
    let pending = pending_changes(&ctx, &declared, now);
    let previous = locked(&ctx.sweep.last).get(&key).cloned();
    let choice = targets::choose(
        &pending,
        previous.as_ref().and_then(|p| p.last_full.as_ref()),
        &targets::Now {
            time: now,
            generation: provider.metadata.generation,
            epoch: ctx.leading.epoch.load(std::sync::atomic::Ordering::SeqCst),
            resync: provider.spec.policy.resync_interval(),
        },
    );
    match (&choice, &previous) {
        (targets::Choice::Targeted(users), Some(previous)) => {
            let targeted = Targeted { users, previous, pending: &pending, used, now };
            if let Some(action) = sweep_targeted(&ctx, &connected, &declared, targeted).await? {
                return Ok(action);
            }
            tracing::debug!("the targeted sweep left the decision to a full sweep");
        }
        (targets::Choice::Full(why), _) => tracing::debug!(why, "full sweep"),
        _ => {}
    }
    let report = sweep_once(&ctx, &connected, &declared, used, now).await;
    report_full_sweep(&ctx, &declared, &report, &ledger, now).await
}

/// This installation's standing on the provider's claim, also published as the
/// `claimed_elsewhere` metric once settled.
fn claim_standing(ctx: &Context, key: &ProviderKey) -> Standing {
    let standing = ctx.leading.claims.standing(key);
    if !matches!(standing, Standing::Unsettled) {
        let claimed = i64::from(matches!(standing, Standing::HeldElsewhere { .. }));
        ctx.outputs.metrics.claimed_elsewhere.get_or_create(&ProviderLabels { provider: key.to_string() }).set(claimed);
    }
    standing
}

/// After a full sweep: the budget ledger, metrics, Events, notifications, the sweep kept for
/// the Employee reconcilers, the statuses, and when to sweep next.
async fn report_full_sweep(
    ctx: &Context,
    declared: &Declared<'_, Arc<Employee>, Arc<AccessGrant>>,
    report: &SweepReport,
    ledger: &[crate::crd::mfa_provider::RevocationTally],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Action, ControllerError> {
    let provider = declared.provider;
    let key = ProviderKey::of(provider);
    let namespace = provider.namespace().unwrap_or_default();
    let window = provider.spec.policy.budget.window();
    // Counted before anything else can fail: the next sweep must see these revocations.
    let made = report.results.iter().filter(|r| r.result == ActionResult::Revoked).count();
    let ledger = budget::tally(ledger, chrono::Utc::now(), made, window);
    locked(&ctx.sweep.ledgers).insert(key.clone(), ledger.clone());
    record_metrics(ctx, &key, report);
    if report.deferred {
        tracing::info!("leadership or cache sync lost during the sweep; the rest is left to the leader");
        targets::require_full(&ctx.sweep.targets, &key, "the last sweep was deferred");
        return Ok(Action::requeue(RETRY_UNSYNCED));
    }
    publish_events(ctx, declared.employees, report).await;
    ctx.outputs.notifier.notify(provider, report, ctx.args.revocation_sla).await;
    remember_sweep(ctx, &key, &namespace, declared.employees, report, provider.metadata.generation);
    write_statuses(ctx, declared, report, ledger, now).await?;
    Ok(Action::requeue(next_sweep(ctx, declared, report, now)))
}

/// Why this replica decides nothing about the provider now, and when to look again.
fn nothing_to_decide(provider: &MfaProvider, ctx: &Context) -> Option<Action> {
    if !ctx.is_leader() {
        // Leadership gained later triggers a sweep of every provider.
        return Some(Action::await_change());
    }
    if let Err(why) = ctx.synced() {
        tracing::info!(%why, "caches not synced; deciding nothing");
        return Some(Action::requeue(RETRY_UNSYNCED));
    }
    // Deleting an MfaProvider stops management and revokes nothing.
    provider.meta().deletion_timestamp.is_some().then(Action::await_change)
}

/// Why keyward leaves the provider alone, if it does: `spec.suspend`, or the operator-wide
/// `--paused`.
fn suspension(provider: &MfaProvider, ctx: &Context) -> Option<String> {
    if ctx.args.paused {
        return Some("the operator runs with --paused (chart value `paused`): no sweep, no revocation".into());
    }
    provider.spec.suspend.then(|| "spec.suspend is true: no sweep, no revocation until it is false".into())
}

/// Another installation holds the provider: nothing is swept, and its conditions say who
/// holds it. Only the conditions are written (a merge patch): the rest of the status is the
/// holder's, and a copy from this cache could be older than the holder's last write. The
/// holder's next status overwrites them, so they are looked at again every lease duration.
async fn claimed_elsewhere(ctx: &Context, provider: &MfaProvider, holder: &str) -> Result<Action, ControllerError> {
    let generation = provider.metadata.generation;
    let old = provider.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let mut conditions = old.clone();
    let message = super::claim::message(holder, &ctx.leading.claims.installation, &provider.name_any());
    let readiness = status::Readiness::Stalled { reason: super::claim::CLAIMED_ELSEWHERE, message };
    status::set_readiness(&mut conditions, readiness, chrono::Utc::now(), generation);
    if !status::same_conditions(&old, &conditions) {
        let namespace = provider.namespace().unwrap_or_default();
        let api: Api<MfaProvider> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({ "status": { "conditions": conditions } });
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        api.patch_status(&provider.name_any(), &params, &Patch::Merge(&patch)).await.map_err(|source| {
            ControllerError::WriteStatus { kind: "MfaProvider", namespace, name: provider.name_any(), source }
        })?;
    }
    Ok(Action::requeue(ctx.args.lease_duration))
}

/// A suspended provider: not listed, nothing revoked, and its status says so (written only
/// when it does not already). Resuming changes the spec or restarts the operator, either of
/// which sweeps it again.
async fn suspended(ctx: &Context, provider: &MfaProvider, why: String) -> Result<Action, ControllerError> {
    let now = chrono::Utc::now();
    let generation = provider.metadata.generation;
    let new = status::suspended_status(provider.status.as_ref(), generation, why, now);
    let unchanged = provider.status.as_ref().is_some_and(|old| {
        old.observed_generation == generation && status::same_conditions(&old.conditions, &new.conditions)
    });
    if !unchanged {
        write_status(ctx, provider, json!(new)).await?;
    }
    Ok(Action::await_change())
}

/// The provider's client could not be made (a Secret or key missing, credentials unusable):
/// `Stalled` in its status, and a backoff, since that stays so until someone acts.
async fn credentials_unavailable(
    ctx: &Context,
    provider: &MfaProvider,
    key: &ProviderKey,
    error: crate::providers::ProviderError,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Action, ControllerError> {
    tracing::warn!(%error, "configure provider");
    ctx.outputs
        .metrics
        .provider_errors
        .get_or_create(&ErrorLabels { provider: key.to_string(), category: error.category().into() })
        .inc();
    let mut status = provider.status.clone().unwrap_or_default();
    status.observed_generation = provider.metadata.generation;
    status::set_readiness(
        &mut status.conditions,
        status::Readiness::Stalled { reason: "CredentialsUnavailable", message: error.to_string() },
        now,
        provider.metadata.generation,
    );
    write_status(ctx, provider, json!(status)).await?;
    let wait = ctx.sweep.retries.next(&format!("MfaProvider/{key}"), crate::retry::Trouble::Rejected);
    Ok(Action::requeue(wait))
}

/// One guarded sweep, timed and with its provider requests counted.
async fn sweep_once(
    ctx: &Context,
    connected: &Provider,
    declared: &Declared<'_, Arc<Employee>, Arc<AccessGrant>>,
    revoked_in_window: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> SweepReport {
    let key = ProviderKey::of(declared.provider);
    let _timer = ctx.outputs.metrics.sweep_timer(key.as_str());
    let requests_before = connected.requests();
    let namespace = declared.provider.namespace().unwrap_or_default();
    let mut approvals = budget::object_offers(declared.provider, &ctx.caches.approvals.in_namespace(&namespace));
    if ctx.args.approval_annotation {
        approvals.extend(budget::annotation_offer(declared.provider));
    }
    let guard = OperatorGuard {
        ctx,
        key: key.clone(),
        namespace,
        name: declared.provider.name_any(),
        revoked_in_window,
        approvals,
    };
    let report =
        sweep::sweep_guarded(connected, declared, now, Execution::Apply, ctx.outputs.audit.as_ref(), &guard).await;
    ctx.outputs
        .metrics
        .provider_requests
        .get_or_create(&ProviderLabels { provider: key.into() })
        .inc_by(connected.requests().saturating_sub(requests_before));
    report
}

/// The changes a sweep starting now covers: the users watch events named, and those whose
/// active window opened or closed since the last sweep (a timer, not an event, brings that
/// sweep about). A grant whose validity began or ended concerns everyone it selects: full.
fn pending_changes(
    ctx: &Context,
    declared: &Declared<'_, Arc<Employee>, Arc<AccessGrant>>,
    now: chrono::DateTime<chrono::Utc>,
) -> targets::Pending {
    let provider = declared.provider;
    let key = ProviderKey::of(provider);
    let mut pending = targets::take(&ctx.sweep.targets, &key);
    let Some(since) = locked(&ctx.sweep.last).get(&key).map(|s| s.time - chrono::Duration::seconds(1)) else {
        return pending;
    };
    let passed = |t: &Option<chrono::DateTime<chrono::Utc>>| t.is_some_and(|t| since < t && t <= now);
    for e in declared.employees.iter().filter(|e| passed(&e.spec.active_from) || passed(&e.spec.active_until)) {
        pending.add_user(&crate::engine::identity::username(e, provider));
    }
    let name = provider.name_any();
    if declared
        .grants
        .iter()
        .filter(|g| g.spec.provider == name)
        .any(|g| passed(&g.spec.valid_from) || passed(&g.spec.valid_until))
    {
        pending.full.get_or_insert("a grant's validity began or ended");
    }
    pending
}

/// A targeted sweep's inputs beside the declared state.
struct Targeted<'a> {
    /// Provider user names to read.
    users: &'a [String],
    previous: &'a LastSweep,
    /// What the sweep covers: put back if it is deferred.
    pending: &'a targets::Pending,
    used: usize,
    now: chrono::DateTime<chrono::Utc>,
}

/// Sweeps the changed users alone, when [`sweep::sweep_targeted`] can decide for them; `None`
/// when a full sweep must (nothing was done then). A targeted sweep updates the verdicts and
/// the budget ledger; the provider's status otherwise stays the last full sweep's, and any
/// failure makes the next sweep a full one, which reports it.
async fn sweep_targeted(
    ctx: &Context,
    connected: &Provider,
    declared: &Declared<'_, Arc<Employee>, Arc<AccessGrant>>,
    targeted: Targeted<'_>,
) -> Result<Option<Action>, ControllerError> {
    let provider = declared.provider;
    let key = ProviderKey::of(provider);
    let namespace = provider.namespace().unwrap_or_default();
    let guard = OperatorGuard {
        ctx,
        key: key.clone(),
        namespace: namespace.clone(),
        name: provider.name_any(),
        revoked_in_window: targeted.used,
        approvals: Vec::new(),
    };
    let requests_before = connected.requests();
    let report = {
        let _timer = ctx.outputs.metrics.sweep_timer(key.as_str());
        let listing = &targeted.previous.listing;
        sweep::sweep_targeted(
            connected,
            declared,
            targeted.users,
            listing,
            targeted.now,
            ctx.outputs.audit.as_ref(),
            &guard,
        )
        .await
    };
    ctx.outputs
        .metrics
        .provider_requests
        .get_or_create(&ProviderLabels { provider: key.to_string() })
        .inc_by(connected.requests().saturating_sub(requests_before));
    let Some(report) = report else { return Ok(None) };
    let window = provider.spec.policy.budget.window();
    let made = report.results.iter().filter(|r| r.result == ActionResult::Revoked).count();
    let ledger = budget::tally(&ctx.sweep.ledger(provider), chrono::Utc::now(), made, window);
    locked(&ctx.sweep.ledgers).insert(key.clone(), ledger.clone());
    record_metrics(ctx, &key, &report);
    if report.deferred {
        targets::put_back(&ctx.sweep.targets, &key, targeted.pending.clone());
        return Ok(Some(Action::requeue(RETRY_UNSYNCED)));
    }
    publish_events(ctx, declared.employees, &report).await;
    ctx.outputs.notifier.notify(provider, &report, ctx.args.revocation_sla).await;
    let keys: HashSet<String> = targeted.users.iter().map(|u| crate::engine::identity::user_key(u)).collect();
    let concerned: Vec<Arc<Employee>> = declared
        .employees
        .iter()
        .filter(|e| keys.contains(&crate::engine::identity::user_key(&crate::engine::identity::username(e, provider))))
        .cloned()
        .collect();
    let this = last_sweep(&namespace, &concerned, &report, targeted.previous.epoch);
    let names: HashSet<String> = concerned.iter().map(|e| e.name_any()).collect();
    let merged = Arc::new(targeted.previous.with_targeted(&names, this));
    locked(&ctx.sweep.last).insert(key.clone(), merged.clone());
    for employee in concerned.iter().filter(|e| merged.concerns(e, Some(targeted.previous))) {
        let _ = ctx.outputs.employee_trigger.unbounded_send(ObjectRef::from_obj(employee.as_ref()));
    }
    if made > 0 {
        // Another replica counts these against the budget from the status.
        let mut status = provider.status.clone().unwrap_or_default();
        status.recent_revocations = ledger;
        write_status(ctx, provider, json!(status)).await?;
    }
    if report.failed() {
        targets::require_full(&ctx.sweep.targets, &key, "a targeted revocation failed");
        return Ok(Some(Action::requeue(RETRY_UNSYNCED)));
    }
    let last_full = targeted.previous.last_full.as_ref();
    let mut next = last_full.map_or(Duration::ZERO, |l| {
        targets::until_resync(l, chrono::Utc::now(), provider.spec.policy.resync_interval())
    });
    let grants_here = declared.grants.iter().filter(|g| g.spec.provider == provider.name_any()).map(AsRef::as_ref);
    if let Some(edge) =
        entitlement::next_boundary(declared.employees.iter().map(AsRef::as_ref), grants_here, targeted.now)
    {
        next = next.min((edge - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO) + BOUNDARY_SLACK);
    }
    Ok(Some(Action::requeue(next)))
}

/// Keeps the sweep for the Employee reconcilers and re-queues the Employees it concerns.
fn remember_sweep(
    ctx: &Context,
    key: &ProviderKey,
    namespace: &str,
    employees: &[Arc<Employee>],
    report: &SweepReport,
    generation: Option<i64>,
) {
    let epoch = ctx.leading.epoch.load(std::sync::atomic::Ordering::SeqCst);
    let mut last = last_sweep(namespace, employees, report, epoch);
    let clean = report.plan.error.is_none()
        && report.plan.hold.is_none()
        && report.plan.conflicts.is_empty()
        && report.plan.mode == Mode::Enforce
        && !report.failed();
    last.last_full = Some(targets::LastFull { time: last.time, generation, epoch, clean, requests: report.requests });
    last.listing = crate::sweep::FullListing {
        managed_enrolments: report.plan.managed_enrolments,
        duplicates: report.listing_duplicates.clone(),
    };
    let last = Arc::new(last);
    // Only the Employees whose part of this provider's verdicts changed are reconciled again:
    // re-triggering everyone after every sweep made each sweep cost O(Employees) status reads
    // and, with each of those scanning all verdicts, O(Employees²) in all.
    let previous = locked(&ctx.sweep.last).insert(key.clone(), last.clone());
    for employee in employees.iter().filter(|e| last.concerns(e, previous.as_deref())) {
        let _ = ctx.outputs.employee_trigger.unbounded_send(ObjectRef::from_obj(employee.as_ref()));
    }
}

/// The provider's status (with the budget ledger and a consumed approval) and its grants'.
async fn write_statuses(
    ctx: &Context,
    declared: &Declared<'_, Arc<Employee>, Arc<AccessGrant>>,
    report: &SweepReport,
    ledger: Vec<crate::crd::mfa_provider::RevocationTally>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ControllerError> {
    let provider = declared.provider;
    let mut provider_status =
        status::provider_status(report, provider.metadata.generation, now, provider.status.as_ref());
    provider_status.recent_revocations = ledger;
    // Targets keyward would refuse to post to show here, not only as `undeliverable` records.
    let refused = crate::notify::targets::refused(provider, &ctx.caches.secrets, &crate::outbound::allowed_hosts());
    let condition = if refused.is_empty() {
        crate::crd::conditions::Condition::new(
            "NotificationTargetsRefused",
            false,
            "AllAccepted",
            "",
            now,
            provider.metadata.generation,
        )
    } else {
        let message = refused.join("; ");
        publish_provider_event(
            ctx,
            provider,
            EventType::Warning,
            "NotificationTargetRefused",
            "Notify".into(),
            message.clone(),
        )
        .await;
        crate::crd::conditions::Condition::new(
            "NotificationTargetsRefused",
            true,
            "TargetRefused",
            message,
            now,
            provider.metadata.generation,
        )
    };
    if !provider.spec.notifications.is_empty() || provider_status.conditions.iter().any(|c| c.type_ == condition.type_)
    {
        crate::crd::conditions::upsert(&mut provider_status.conditions, condition);
    }
    let carried_out = report.results.iter().any(|r| {
        r.action.action == ActionKind::Revoke
            && matches!(r.result, ActionResult::Revoked | ActionResult::AlreadyGone | ActionResult::Failed(_))
    });
    if report.plan.approved && carried_out {
        // Consumed: the approval (object or annotation) lets this plan through no more.
        provider_status.consumed_approval = Some(report.plan.digest.clone());
        if let Some(name) = &report.plan.approval_object {
            consume_approval(ctx, provider, name, report, now).await?;
        }
    }
    if let Some(summary) = status::observe_summary(&report.plan, provider.status.as_ref()) {
        // The digest is part of the action: the recorder folds events with equal (reason,
        // action, object) into one series, and each changed plan must stay visible.
        let action = format!("Plan/{}", report.plan.digest);
        publish_provider_event(ctx, provider, EventType::Normal, "WouldRevoke", action, summary).await;
    }
    if let Some(error) = &report.plan.error {
        // The category is the action: repeats of one failure fold into one series, and a
        // different failure shows as its own.
        let action = format!("Read/{}", report.error_category.unwrap_or("failed"));
        publish_provider_event(ctx, provider, EventType::Warning, "ReadFailed", action, error.clone()).await;
    }
    write_status(ctx, provider, json!(provider_status)).await?;
    for grant in declared.grants.iter().filter(|g| g.spec.provider == provider.name_any()) {
        write_grant_status(ctx, grant, declared.employees, Some(provider)).await?;
    }
    Ok(())
}

/// Marks the RevocationApproval that let the plan through as consumed, with what it let
/// through. Written before the provider's status, which also names the digest as consumed:
/// whichever a later sweep sees first, the approval is not used twice.
async fn consume_approval(
    ctx: &Context,
    provider: &MfaProvider,
    name: &str,
    report: &SweepReport,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ControllerError> {
    let namespace = provider.namespace().unwrap_or_default();
    let made =
        report.results.iter().filter(|r| matches!(r.result, ActionResult::Revoked | ActionResult::AlreadyGone)).count();
    let status = crate::crd::RevocationApprovalStatus {
        consumed: true,
        consumed_at: Some(now),
        revocations: u32::try_from(made).unwrap_or(u32::MAX),
    };
    let api: Api<crate::crd::RevocationApproval> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({ "apiVersion": "keyward.dev/v1alpha1", "kind": "RevocationApproval", "metadata": { "name": name }, "status": status });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    status::write_retrying(|| async { api.patch_status(name, &params, &Patch::Apply(&patch)).await.map(|_| ()) })
        .await
        .map_err(|source| ControllerError::WriteStatus {
            kind: "RevocationApproval",
            namespace,
            name: name.to_string(),
            source,
        })
}

/// An Event on the MfaProvider (`kubectl describe mfaprovider`, `kubectl get events`).
pub(super) async fn publish_provider_event(
    ctx: &Context,
    provider: &MfaProvider,
    type_: EventType,
    reason: &str,
    action: String,
    note: String,
) {
    let event = KubeEvent { type_, reason: reason.into(), note: Some(note), action, secondary: None };
    if let Err(e) = ctx.outputs.recorder.publish(&event, &provider.object_ref(&())).await {
        tracing::warn!(error = %e, provider = %provider.name_any(), "publish event");
    }
}

/// When to sweep again: the drift sweep, sooner after a failed read (backing off by what
/// failed), and right after the next window or grant edge.
fn next_sweep(
    ctx: &Context,
    declared: &Declared<'_, Arc<Employee>, Arc<AccessGrant>>,
    report: &SweepReport,
    now: chrono::DateTime<chrono::Utc>,
) -> Duration {
    let provider = declared.provider;
    let resync = provider.spec.policy.resync_interval();
    // A provider that could not be read is tried again sooner than the drift sweep, backing
    // off by what failed (an outage from 2 s up to 5 min, a rate limit from 10 s).
    let retry_key = format!("MfaProvider/{}", ProviderKey::of(provider));
    let mut next = match report.error_category.filter(|_| report.plan.error.is_some()) {
        Some(category) => ctx.sweep.retries.next(&retry_key, crate::retry::Trouble::of_category(category)).min(resync),
        None => {
            ctx.sweep.retries.reset(&retry_key);
            resync
        }
    };
    let grants_here = declared.grants.iter().filter(|g| g.spec.provider == provider.name_any()).map(AsRef::as_ref);
    if let Some(edge) = entitlement::next_boundary(declared.employees.iter().map(AsRef::as_ref), grants_here, now) {
        // Already past (the sweep took a while): at once.
        let until = (edge - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
        next = next.min(until + BOUNDARY_SLACK);
    }
    next
}

/// What the operator vouches for during a sweep: leadership, the provider's claim and synced
/// caches before every provider call, the budget window's ledger, and the declared state as the caches hold it
/// at the moment of each call.
struct OperatorGuard<'a> {
    ctx: &'a Context,
    key: ProviderKey,
    namespace: String,
    name: String,
    revoked_in_window: usize,
    /// Unconsumed RevocationApprovals naming the provider (and its annotation with
    /// `--approval-annotation`), as the cache held them when the sweep began.
    approvals: Vec<crate::engine::ApprovalOffer>,
}

impl Guard for OperatorGuard<'_> {
    fn approvals(&self) -> Vec<crate::engine::ApprovalOffer> {
        self.approvals.clone()
    }

    fn may_act(&self) -> bool {
        self.ctx.is_leader() && self.ctx.synced().is_ok() && self.ctx.leading.claims.holds(&self.key)
    }

    fn revoked_in_window(&self) -> usize {
        self.revoked_in_window
    }

    fn change_observed(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let observed = *locked(&self.ctx.sweep.changes).get(&self.key)?;
        Some(chrono::Utc::now() - chrono::Duration::from_std(observed.elapsed()).ok()?)
    }

    fn declared_now(&self) -> DeclaredNow {
        match self.ctx.caches.providers.get(&self.namespace, &self.name) {
            Some(provider) if provider.metadata.deletion_timestamp.is_none() => DeclaredNow::Current {
                provider,
                employees: self.ctx.caches.employees.in_namespace(&self.namespace),
                grants: self.ctx.caches.grants.in_namespace(&self.namespace),
                now: chrono::Utc::now(),
            },
            _ => DeclaredNow::ProviderGone,
        }
    }
}

fn record_metrics(ctx: &Context, key: &ProviderKey, report: &SweepReport) {
    if let Some(error) = &report.plan.error {
        let category = if error.contains("cannot reach") { "unreachable" } else { "list" };
        ctx.outputs
            .metrics
            .provider_errors
            .get_or_create(&ErrorLabels { provider: key.to_string(), category: category.into() })
            .inc();
    }
    if report.plan.hold.is_some() {
        ctx.outputs.metrics.blocked_plans.get_or_create(&ProviderLabels { provider: key.to_string() }).inc();
    }
    let mut revoked_any = false;
    for r in report.results.iter().filter(|r| r.action.action == ActionKind::Revoke) {
        let outcome = match &r.result {
            ActionResult::Revoked => "revoked",
            ActionResult::AlreadyGone => "already_gone",
            ActionResult::Blocked => "blocked",
            ActionResult::Failed(_) => "failed",
            _ => continue,
        };
        revoked_any |= matches!(r.result, ActionResult::Revoked | ActionResult::AlreadyGone);
        ctx.outputs
            .metrics
            .revocations
            .get_or_create(&RevocationLabels {
                provider: key.to_string(),
                reason: r.action.reason.to_string(),
                outcome: outcome.into(),
            })
            .inc();
    }
    for (reason, seconds) in &report.latencies {
        let labels = ReasonLabels { provider: key.to_string(), reason: reason.to_string() };
        ctx.outputs.metrics.revocation_latency_seconds.get_or_create(&labels).observe(*seconds);
        if *seconds > ctx.args.revocation_sla.as_secs_f64() {
            ctx.outputs.metrics.sla_breaches.get_or_create(&labels).inc();
        }
    }
    if !report.audit_errors.is_empty() {
        let failures = report.audit_errors.len() as u64;
        ctx.outputs
            .metrics
            .audit_write_failures
            .get_or_create(&ProviderLabels { provider: key.to_string() })
            .inc_by(failures);
    }
    // The latency that matters to an auditor: from the change keyward saw to the revocation.
    if report.plan.error.is_none()
        && let Some(observed) = locked(&ctx.sweep.changes).remove(key)
        && revoked_any
    {
        ctx.outputs
            .metrics
            .change_to_revocation_seconds
            .get_or_create(&ProviderLabels { provider: key.to_string() })
            .observe(observed.elapsed().as_secs_f64());
    }
}

/// A Kubernetes Event on the Employee for every revocation, blocked and failed one.
async fn publish_events(ctx: &Context, employees: &[Arc<Employee>], report: &SweepReport) {
    let revocations: Vec<&crate::sweep::ActionReport> =
        report.results.iter().filter(|r| r.action.action == ActionKind::Revoke).collect();
    if revocations.is_empty() {
        return;
    }
    let by_name: HashMap<String, &Employee> = employees.iter().map(|e| (e.name_any(), e.as_ref())).collect();
    for r in revocations {
        let Some(employee) = r.action.employee.as_ref().and_then(|n| by_name.get(n)) else {
            continue;
        };
        let a = &r.action;
        let (type_, reason, note) = match &r.result {
            ActionResult::Revoked | ActionResult::AlreadyGone => (
                EventType::Normal,
                "EnrolmentRevoked",
                format!("revoked {} {} of {} on {}: {}", a.kind, a.enrolment, a.user, report.plan.provider, a.reason),
            ),
            ActionResult::Blocked => (
                EventType::Warning,
                "RevocationBlocked",
                format!(
                    "{} {} of {} on {} not revoked ({}): {}",
                    a.kind,
                    a.enrolment,
                    a.user,
                    report.plan.provider,
                    a.reason,
                    crate::engine::planner::hold_message(&report.plan).unwrap_or_default()
                ),
            ),
            ActionResult::Failed(e) => (EventType::Warning, "RevocationFailed", e.clone()),
            _ => continue,
        };
        // The enrolment is part of the action: the recorder folds events with equal
        // (reason, action, object) into one series, and each revocation must stay visible.
        let action: String = format!("Revoke/{}", a.enrolment).chars().take(128).collect();
        let event = KubeEvent { type_, reason: reason.into(), note: Some(note), action, secondary: None };
        if let Err(e) = ctx.outputs.recorder.publish(&event, &employee.object_ref(&())).await {
            tracing::warn!(error = %e, employee = %employee.name_any(), "publish event");
        }
    }
}

fn last_sweep(namespace: &str, employees: &[Arc<Employee>], report: &SweepReport, epoch: u64) -> LastSweep {
    let verdicts = status::executed_verdicts(report);
    let mut revoked = HashSet::new();
    let mut unsettled = HashSet::new();
    for r in report.results.iter().filter(|r| r.action.action == ActionKind::Revoke) {
        let Some(name) = r.action.employee.clone() else { continue };
        match r.result {
            ActionResult::Revoked | ActionResult::AlreadyGone => {
                revoked.insert(name);
            }
            _ => {
                unsettled.insert(name);
            }
        }
    }
    for v in verdicts.iter().filter(|v| !v.conflicts_with.is_empty()) {
        unsettled.insert(v.employee.clone());
    }
    // Observe changes nothing; it must not hold deletions hostage either.
    let observe = report.plan.mode == Mode::Observe;
    // Only an Employee that was already deleting when this sweep read the caches can be
    // settled by it: a sweep that saw it Active revoked nothing on its behalf.
    let settled = if report.plan.error.is_some() && !observe {
        HashSet::new()
    } else {
        employees
            .iter()
            .filter(|e| e.metadata.deletion_timestamp.is_some())
            .filter(|e| observe || !unsettled.contains(&e.name_any()))
            .filter_map(|e| e.uid())
            .collect()
    };
    LastSweep::new(namespace, verdicts, settled, revoked, chrono::Utc::now(), epoch)
}

pub async fn write_status(
    ctx: &Context,
    provider: &MfaProvider,
    status: serde_json::Value,
) -> Result<(), ControllerError> {
    let namespace = provider.namespace().unwrap_or_default();
    let api: Api<MfaProvider> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = status;
    // Another field manager's (controller/settings.rs): this apply neither owns nor removes it.
    if let Some(fields) = status.as_object_mut() {
        fields.remove("guardedSettings");
    }
    let patch = json!({ "apiVersion": "keyward.dev/v1alpha1", "kind": "MfaProvider", "metadata": { "name": provider.name_any() }, "status": status });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = provider.name_any();
    // The sweep behind this status has acted: a failed write is retried alone.
    status::write_retrying(|| async { api.patch_status(&name, &params, &Patch::Apply(&patch)).await.map(|_| ()) })
        .await
        .map_err(|source| ControllerError::WriteStatus {
            kind: "MfaProvider",
            namespace,
            name: provider.name_any(),
            source,
        })
}

/// Writes an AccessGrant's status when it changed.
pub async fn write_grant_status(
    ctx: &Context,
    grant: &AccessGrant,
    employees: &[Arc<Employee>],
    provider: Option<&MfaProvider>,
) -> Result<(), ControllerError> {
    let now = chrono::Utc::now();
    let new = status::grant_status(grant, employees, provider, now);
    if let Some(old) = &grant.status
        && old.matched_employees == new.matched_employees
        && old.observed_generation == new.observed_generation
        && status::same_conditions(&old.conditions, &new.conditions)
    {
        return Ok(());
    }
    let namespace = grant.namespace().unwrap_or_default();
    let api: Api<AccessGrant> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({ "apiVersion": "keyward.dev/v1alpha1", "kind": "AccessGrant", "metadata": { "name": grant.name_any() }, "status": new });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = grant.name_any();
    status::write_retrying(|| async { api.patch_status(&name, &params, &Patch::Apply(&patch)).await.map(|_| ()) })
        .await
        .map_err(|source| ControllerError::WriteStatus {
            kind: "AccessGrant",
            namespace,
            name: grant.name_any(),
            source,
        })
}

#[cfg(test)]
mod scripted_tests {
    use super::*;
    use crate::controller::fixtures::{APPLY, Exchange, MERGE, World, condition, scripted};
    use crate::engine::guarded::GuardedSettings;
    use serde_json::Value;

    const STATUS: &str = "/apis/keyward.dev/v1alpha1/namespaces/acme/mfaproviders/corp-pi/status";

    /// The fixtures' privacyIDEA provider (credentials in the Secret `pi-admin`), at
    /// generation 2, with its guarded settings already on record: no settings write.
    fn provider(suspend: bool) -> MfaProvider {
        let mut p = crate::engine::fixtures::provider();
        p.spec.suspend = suspend;
        p.metadata.uid = Some("uid-corp-pi".into());
        p.metadata.generation = Some(2);
        let status = crate::crd::MfaProviderStatus {
            guarded_settings: Some(GuardedSettings::of(&p.spec).to_status()),
            ..Default::default()
        };
        p.status = Some(status);
        p
    }

    fn reason(status: &Value, type_: &str) -> (String, String) {
        let c = condition(status, type_);
        (c["status"].as_str().unwrap_or_default().into(), c["reason"].as_str().unwrap_or_default().into())
    }

    /// `spec.suspend: true`: nothing connected or swept, and one status apply that says
    /// Suspended (Ready False, Stalled True), without the settings manager's field.
    #[tokio::test]
    async fn a_suspended_provider_is_not_swept_and_its_status_says_so() {
        let p = provider(true);
        let server = scripted(World { providers: vec![p.clone()], ..Default::default() });
        server.claim(&p, None);
        let write = Exchange::patch(
            format!("{STATUS}?&force=true&fieldManager=keyward"),
            APPLY,
            |body| {
                assert_eq!(
                    (body["kind"].as_str(), body["metadata"]["name"].as_str()),
                    (Some("MfaProvider"), Some("corp-pi"))
                );
                let status = &body["status"];
                assert_eq!(reason(status, "Ready"), ("False".into(), "Suspended".into()));
                assert_eq!(reason(status, "Stalled"), ("True".into(), "Suspended".into()));
                assert_eq!(reason(status, "Reconciling"), ("False".into(), "Suspended".into()));
                let message = condition(status, "Ready")["message"].as_str().unwrap_or_default();
                assert!(message.starts_with("spec.suspend is true"), "{message}");
                assert_eq!(status["observedGeneration"], 2);
                assert!(status.get("guardedSettings").is_none(), "another field manager's field: {status}");
            },
            &p,
        );
        let (action, connected) = server
            .run(vec![write], |ctx| async move {
                let action = reconcile(Arc::new(p), ctx.clone()).await;
                (action, locked(&ctx.sweep.connected).len())
            })
            .await;
        assert_eq!(action.expect("reconciled"), Action::await_change());
        assert_eq!(connected, 0, "no provider client was made");
    }

    /// A suspended provider whose status already says so: no request at all.
    #[tokio::test]
    async fn an_unchanged_status_is_not_written() {
        let mut p = provider(true);
        let server = scripted(World { providers: vec![p.clone()], ..Default::default() });
        server.claim(&p, None);
        let why = suspension(&p, &server.ctx).expect("suspended");
        let earlier = chrono::Utc::now() - chrono::Duration::hours(1);
        p.status = Some(status::suspended_status(p.status.as_ref(), p.metadata.generation, why, earlier));
        let action = server.run(vec![], |ctx| reconcile(Arc::new(p), ctx)).await;
        assert_eq!(action.expect("reconciled"), Action::await_change());
    }

    /// Held by another installation: nothing recorded or swept; a merge patch of the
    /// conditions alone says who holds it, and the claim is looked at again in a lease duration.
    #[tokio::test]
    async fn a_provider_claimed_elsewhere_is_left_alone_and_says_by_whom() {
        let p = provider(false);
        let server = scripted(World { providers: vec![p.clone()], ..Default::default() });
        server.claim(&p, Some("other/keyward-leader"));
        let lease = server.ctx.args.lease_duration;
        let write = Exchange::patch(
            format!("{STATUS}?&fieldManager=keyward"),
            MERGE,
            |body| {
                let fields: Vec<&String> = body["status"].as_object().expect("a status").keys().collect();
                assert_eq!(fields, ["conditions"], "only the conditions: the rest is the holder's");
                let status = &body["status"];
                assert_eq!(reason(status, "Ready"), ("False".into(), super::super::claim::CLAIMED_ELSEWHERE.into()));
                assert_eq!(reason(status, "Stalled"), ("True".into(), "ClaimedByAnotherInstallation".into()));
                let message = condition(status, "Ready")["message"].as_str().unwrap_or_default();
                assert!(message.contains("other/keyward-leader"), "{message}");
            },
            &p,
        );
        let action = server.run(vec![write], |ctx| reconcile(Arc::new(p), ctx)).await;
        assert_eq!(action.expect("reconciled"), Action::requeue(lease));
    }

    /// The credentials Secret is not there: no provider client, and the status says
    /// CredentialsUnavailable (Ready False, Stalled True) naming the Secret.
    #[tokio::test]
    async fn missing_credentials_stall_the_provider_without_calling_it() {
        let p = provider(false);
        let server = scripted(World { providers: vec![p.clone()], ..Default::default() });
        server.claim(&p, None);
        let write = Exchange::patch(
            format!("{STATUS}?&force=true&fieldManager=keyward"),
            APPLY,
            |body| {
                let status = &body["status"];
                assert_eq!(reason(status, "Ready"), ("False".into(), "CredentialsUnavailable".into()));
                assert_eq!(reason(status, "Stalled"), ("True".into(), "CredentialsUnavailable".into()));
                let message = condition(status, "Ready")["message"].as_str().unwrap_or_default();
                assert!(message.contains("pi-admin"), "{message}");
                assert_eq!(status["observedGeneration"], 2);
            },
            &p,
        );
        let (action, connected) = server
            .run(vec![write], |ctx| async move {
                let action = reconcile(Arc::new(p), ctx.clone()).await;
                (action, locked(&ctx.sweep.connected).len())
            })
            .await;
        assert_ne!(action.expect("reconciled"), Action::await_change(), "looked at again after a backoff");
        assert_eq!(connected, 0, "no provider client was made");
    }
}

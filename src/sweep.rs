//! One sweep of one provider: list, plan, and (when asked and allowed) carry the plan out.
//! The same code serves `keyward plan`, `keyward apply` and the operator.

use crate::audit::{AuditRecord, AuditSink, Event, Outcome};
use crate::crd::mfa_provider::{Mode, Scope};
use crate::crd::{AccessGrant, Employee, MfaProvider, ProviderKey, SOURCE_REVISION_ANNOTATION};
use crate::engine::{self, Action, ActionKind, Capabilities, Enrolment, Inventory, Plan, PlanInput, identity};
use crate::providers::{Provider, ProviderError, UserQuery};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::ResourceExt;
use std::borrow::Borrow;
use std::sync::Arc;

/// How many revocations run at once on one provider: enough to finish a leaver's handful of
/// factors in one round trip, few enough not to hammer a small privacyIDEA.
const CONCURRENT_REVOCATIONS: usize = 4;

/// The declared side of one provider: owned objects (manifests) or shared ones (`Arc`, the
/// operator's cache).
pub struct Declared<'a, E = Employee, G = AccessGrant> {
    pub provider: &'a MfaProvider,
    pub employees: &'a [E],
    pub grants: &'a [G],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Execution {
    /// Plan only (`keyward plan`).
    PlanOnly,
    /// Carry out the plan when the mode and the budget allow (`keyward apply`, the operator).
    Apply,
}

/// What became of one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionResult {
    /// Not executed: plan only, or `Observe` mode.
    Planned,
    Revoked,
    AlreadyGone,
    Invited,
    /// A pending enrolment: nothing keyward can do but report it.
    Pending,
    Blocked,
    Failed(String),
    /// Re-checked immediately before its provider call and no longer wanted: the declared
    /// state changed while the provider was listed (say, a bad commit was reverted).
    Withdrawn(String),
    /// Not carried out: leadership or cache sync was lost before its provider call. The next
    /// leader plans it again.
    Deferred,
}

#[derive(Clone, Debug)]
pub struct ActionReport {
    pub action: Action,
    pub result: ActionResult,
}

#[derive(Clone, Debug)]
pub struct SweepReport {
    pub plan: Plan,
    pub results: Vec<ActionReport>,
    /// Provider requests made during the sweep.
    pub requests: u64,
    /// Audit records that could not be written (the revocations themselves happened).
    pub audit_errors: Vec<String>,
    /// `category()` of the provider error that stopped the sweep, if any.
    pub error_category: Option<&'static str>,
    /// Planned, but `may_act` said no before anything was carried out.
    pub deferred: bool,
    /// User keys the listing showed more than one user under (identity conflicts a targeted
    /// sweep's per-user read may not see).
    pub listing_duplicates: std::collections::BTreeSet<String>,
    /// Seconds from each revocation's trigger (see `audit::AuditRecord::trigger`) to its
    /// completion, by reason, for the revocations made that have a trigger.
    pub latencies: Vec<(crate::engine::Reason, f64)>,
}

impl SweepReport {
    pub fn failed(&self) -> bool {
        self.plan.error.is_some()
            || !self.audit_errors.is_empty()
            || self.results.iter().any(|r| matches!(r.result, ActionResult::Failed(_)))
    }
    pub fn blocked(&self) -> bool {
        self.plan.blocked()
    }

    /// Whether the provider error is one that retrying will not cure: credentials rejected,
    /// permission denied, a configuration that does not match the provider.
    pub fn error_needs_person(&self) -> bool {
        matches!(self.error_category, Some("unauthorized" | "forbidden" | "configuration" | "redirected"))
    }
}

/// The users a provider needs to list for this declared state.
pub fn user_query<E: Borrow<Employee>, G>(declared: &Declared<E, G>) -> UserQuery {
    let namespace = declared.provider.namespace();
    let mut users: Vec<String> = declared
        .employees
        .iter()
        .map(Borrow::borrow)
        .filter(|e| e.namespace() == namespace)
        .map(|e| identity::username(e, declared.provider))
        .collect();
    users.sort();
    users.dedup();
    UserQuery { declared: users, all: declared.provider.spec.scope == Scope::All }
}

/// What the caller vouches for while a sweep runs. The CLI has nothing to add
/// ([`Unguarded`]); the operator answers from its leadership and its watch caches.
pub trait Guard: Sync {
    /// Still allowed to act (the leader, caches synced). Asked between planning and carrying
    /// out, and again immediately before every provider call.
    fn may_act(&self) -> bool {
        true
    }
    /// Revocations already made on this provider within its budget window.
    fn revoked_in_window(&self) -> usize {
        0
    }
    /// Approvals on offer for this provider's held plan (RevocationApprovals, the annotation
    /// where the caller honours it): none unless the caller has some.
    fn approvals(&self) -> Vec<engine::ApprovalOffer> {
        Vec::new()
    }
    /// The declared state as it is now, to re-check each revocation against immediately
    /// before its provider call: listing a large tenant takes minutes, during which an
    /// Employee may be re-entitled.
    fn declared_now(&self) -> DeclaredNow {
        DeclaredNow::Unchanged
    }
    /// When the change that this sweep answers was first observed (the operator's watch),
    /// for the audit records' `trigger`.
    fn change_observed(&self) -> Option<DateTime<Utc>> {
        None
    }
}

/// The declared state at the moment of a provider call.
pub enum DeclaredNow {
    /// Cannot have changed since the sweep began (manifests read from disk).
    Unchanged,
    Current {
        provider: Arc<MfaProvider>,
        /// Shared with the caller's cache: asked once per provider call, so never a deep copy.
        employees: Vec<Arc<Employee>>,
        grants: Vec<Arc<AccessGrant>>,
        /// The time to judge windows and grant validity at: a grant that became valid while
        /// the provider was listed entitles already.
        now: DateTime<Utc>,
    },
    /// The MfaProvider is gone or being deleted: management has stopped.
    ProviderGone,
}

/// No guard: `keyward plan` and `keyward apply`.
pub struct Unguarded;
impl Guard for Unguarded {}

pub async fn sweep<E, G>(
    provider: &Provider,
    declared: &Declared<'_, E, G>,
    now: DateTime<Utc>,
    execution: Execution,
    audit: &dyn AuditSink,
) -> SweepReport
where
    E: Borrow<Employee> + Sync,
    G: Borrow<AccessGrant> + Sync,
{
    sweep_guarded(provider, declared, now, execution, audit, &Unguarded).await
}

/// [`sweep`] under a [`Guard`]. When the guard says no before anything is carried out,
/// nothing is carried out or recorded and the report says `deferred`.
pub async fn sweep_guarded<E, G>(
    provider: &Provider,
    declared: &Declared<'_, E, G>,
    now: DateTime<Utc>,
    execution: Execution,
    audit: &dyn AuditSink,
    guard: &dyn Guard,
) -> SweepReport
where
    E: Borrow<Employee> + Sync,
    G: Borrow<AccessGrant> + Sync,
{
    let start_requests = provider.requests();
    let key = ProviderKey::of(declared.provider);
    // Intents a crash left open are resolved by this read: their users are read too. A full
    // sweep also closes those a dead peer left (a targeted one never waits on peer logs).
    let interrupted = if execution == Execution::Apply {
        let mut open = audit.unresolved(key.as_str());
        open.extend(audit.abandoned(key.as_str()));
        open
    } else {
        Vec::new()
    };
    let mut query = user_query(declared);
    query.declared.extend(interrupted.iter().map(|i| i.user.clone()));
    query.declared.sort();
    query.declared.dedup();
    let inventory = provider.inventory(&query).await;
    let error_category = inventory.as_ref().err().map(ProviderError::category);
    let inventory = inventory.map_err(|e| e.to_string());
    let capabilities = provider.capabilities();
    let plan = engine::plan(&PlanInput {
        provider: declared.provider,
        employees: declared.employees,
        grants: declared.grants,
        inventory: inventory.as_ref().map_err(Clone::clone),
        capabilities: &capabilities,
        now,
        revoked_in_window: guard.revoked_in_window(),
        approvals: &guard.approvals(),
    });
    let run = Run { provider, declared, audit, guard, execution, capabilities, start_requests };
    carry_out(&run, inventory.ok().as_ref(), plan, error_category, &interrupted).await
}

/// What the last full sweep of a provider knew that a targeted sweep cannot read itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FullListing {
    /// Enrolments under management: the base of the budget's `maxPercent`.
    pub managed_enrolments: usize,
    /// User keys listed more than once: identity conflicts.
    pub duplicates: std::collections::BTreeSet<String>,
}

/// A targeted sweep: the provider users `users` (as the provider names them) read one by one,
/// planned against the whole declared state, and the plan carried out under the same guard,
/// write-ahead records and re-checks as a full sweep's. `None` when a full sweep must decide
/// instead: the provider has no per-user read for this configuration, the read failed, a crash
/// left intents to resolve, the provider is not in Enforce mode, or the targeted plan is held,
/// has an identity conflict or an error — everything a full sweep reports in the provider's
/// status and an approval names. Nothing is carried out or recorded then.
pub async fn sweep_targeted<E, G>(
    provider: &Provider,
    declared: &Declared<'_, E, G>,
    users: &[String],
    last_full: &FullListing,
    now: DateTime<Utc>,
    audit: &dyn AuditSink,
    guard: &dyn Guard,
) -> Option<SweepReport>
where
    E: Borrow<Employee> + Sync,
    G: Borrow<AccessGrant> + Sync,
{
    let key = ProviderKey::of(declared.provider);
    if declared.provider.spec.policy.mode != Mode::Enforce || !audit.unresolved(key.as_str()).is_empty() {
        return None;
    }
    let start_requests = provider.requests();
    let inventory = match provider.inventory_of(users).await {
        Ok(Some(inventory)) => inventory,
        Ok(None) => return None,
        Err(e) => {
            tracing::info!(error = %e, "per-user read failed; a full sweep decides");
            return None;
        }
    };
    let capabilities = provider.capabilities();
    let target = engine::Target {
        users: users.iter().map(|u| identity::user_key(u)).collect(),
        managed_enrolments: last_full.managed_enrolments,
        duplicates: last_full.duplicates.clone(),
    };
    let plan = engine::plan_targeted(
        &PlanInput {
            provider: declared.provider,
            employees: declared.employees,
            grants: declared.grants,
            inventory: Ok(&inventory),
            capabilities: &capabilities,
            now,
            revoked_in_window: guard.revoked_in_window(),
            approvals: &[],
        },
        &target,
    );
    if plan.hold.is_some() || plan.error.is_some() || !plan.conflicts.is_empty() {
        return None;
    }
    let run = Run { provider, declared, audit, guard, execution: Execution::Apply, capabilities, start_requests };
    Some(carry_out(&run, Some(&inventory), plan, None, &[]).await)
}

/// One sweep's parts, from its listing to its report.
struct Run<'r, 'd, E, G> {
    provider: &'r Provider,
    declared: &'r Declared<'d, E, G>,
    audit: &'r dyn AuditSink,
    guard: &'r dyn Guard,
    execution: Execution,
    capabilities: Capabilities,
    start_requests: u64,
}

/// Carries out a plan made from `listed` (none: the listing failed): resolves the intents a
/// crash left open, then revokes, or records the held plan, and sends invitations.
async fn carry_out<E, G>(
    run: &Run<'_, '_, E, G>,
    listed: Option<&Inventory>,
    plan: Plan,
    error_category: Option<&'static str>,
    interrupted: &[AuditRecord],
) -> SweepReport
where
    E: Borrow<Employee> + Sync,
    G: Borrow<AccessGrant> + Sync,
{
    let Run { provider, declared, audit, guard, execution, .. } = *run;
    let mut report = SweepReport {
        plan,
        results: Vec::new(),
        requests: 0,
        audit_errors: Vec::new(),
        error_category,
        deferred: false,
        latencies: Vec::new(),
        listing_duplicates: listed.map(Inventory::duplicate_names).unwrap_or_default(),
    };
    if execution == Execution::Apply && !guard.may_act() {
        report.deferred = true;
        report.requests = provider.requests() - run.start_requests;
        return report;
    }
    if let Some(listed) = listed {
        resolve_interrupted(audit, listed, interrupted, declared.provider, &mut report.audit_errors).await;
    }
    let act = execution == Execution::Apply && report.plan.mode == Mode::Enforce && report.plan.error.is_none();
    let hold = engine::planner::hold_message(&report.plan);

    let mut results: Vec<ActionReport> = Vec::with_capacity(report.plan.actions.len());
    if act && hold.is_none() && report.plan.approved && report.plan.revocation_count() > 0 {
        // The approval's own record, before the first revocation it lets through.
        let record = approval_record(declared, &report.plan, guard);
        report.audit_errors.extend(write(audit, record).await);
    }
    if act && hold.is_none() {
        revoke_all(provider, declared, audit, guard, listed, &run.capabilities, &mut report, &mut results).await;
    } else {
        // Held (over budget, or Observe, or a plan-only run): each revocation reported as such,
        // and recorded when the run was meant to act.
        let result = if act { ActionResult::Blocked } else { ActionResult::Planned };
        for action in report.plan.revocations() {
            let r = ActionReport { action: action.clone(), result: result.clone() };
            // Observe and plan-only runs leave no record; a held plan does, once per digest.
            if r.result == ActionResult::Blocked {
                let record =
                    audit_record(declared, &report.plan, action, Event::Outcome, Outcome::Blocked, hold.clone(), guard);
                if let Some(e) = write(audit, record).await {
                    report.audit_errors.push(e);
                }
            }
            results.push(r);
        }
    }
    invite_or_report(run, &report.plan, act, &mut results, &mut report.audit_errors).await;
    report.results = results;
    report.requests = provider.requests() - run.start_requests;
    report
}

/// Carries out the plan's revocations, a few at a time, each checked against the guard and the
/// current declared state immediately before its provider call. Each call is announced by an
/// `intent` record on disk before it is made and followed by its outcome record: a crash at
/// any point leaves either no call, or an intent that the next sweep resolves.
#[allow(clippy::too_many_arguments)]
async fn revoke_all<E, G>(
    provider: &Provider,
    declared: &Declared<'_, E, G>,
    audit: &dyn AuditSink,
    guard: &dyn Guard,
    listed: Option<&Inventory>,
    capabilities: &Capabilities,
    report: &mut SweepReport,
    results: &mut Vec<ActionReport>,
) where
    E: Borrow<Employee> + Sync,
    G: Borrow<AccessGrant> + Sync,
{
    let revocation = declared.provider.spec.policy.revocation;
    let plan = &report.plan;
    // Owned actions: a closure over `&Action` makes the sweep future non-`Send`-general,
    // which the operator's controller needs.
    let owned: Vec<Action> = plan.revocations().cloned().collect();
    let mut done = futures::stream::iter(owned)
        .map(|action| async move {
            if !guard.may_act() {
                return (ActionReport { action, result: ActionResult::Deferred }, None, None);
            }
            if let Some(why) = listed.and_then(|l| withdrawn(guard, l, capabilities, &action)) {
                let record =
                    audit_record(declared, plan, &action, Event::Outcome, Outcome::Withdrawn, Some(why.clone()), guard);
                return (
                    ActionReport { action, result: ActionResult::Withdrawn(why) },
                    write(audit, record).await,
                    None,
                );
            }
            let intent = audit_record(declared, plan, &action, Event::Intent, Outcome::Intended, None, guard);
            if let Some(error) = write(audit, intent.clone()).await {
                // Not made: a revocation without its record is what an auditor must never find.
                let why = format!("not revoked: its write-ahead audit record could not be written ({error})");
                return (ActionReport { action, result: ActionResult::Failed(why) }, Some(error), None);
            }
            // Asked again once the intent is on disk: the write syncs, and a process paused
            // before or during it (SIGSTOP, a frozen node) may wake after another replica took
            // over and is revoking the same enrolment. Not made, then: the intent is closed
            // here and the leader plans the enrolment again.
            if !guard.may_act() {
                let outcome = intent.ended(
                    Outcome::Interrupted,
                    Some("leadership lapsed before the call: not made; the leader plans it again".into()),
                );
                return (ActionReport { action, result: ActionResult::Deferred }, write(audit, outcome).await, None);
            }
            let enrolment =
                Enrolment::new(action.enrolment.clone(), action.kind.clone(), true).providing(action.also.clone());
            let (result, outcome) = match provider.revoke(&action.user, &enrolment, revocation).await {
                Ok(crate::providers::Revoked::Done) => (ActionResult::Revoked, intent.ended(Outcome::Revoked, None)),
                Ok(crate::providers::Revoked::AlreadyGone) => {
                    (ActionResult::AlreadyGone, intent.ended(Outcome::AlreadyGone, None))
                }
                Err(e) => (ActionResult::Failed(e.to_string()), intent.ended(Outcome::Failed, Some(e.to_string()))),
            };
            // Leadership lapsed during the call (the process paused, a renewal hung): the new
            // leader may have closed this intent meanwhile, and its record is then the final one.
            let lapsed = matches!(outcome.outcome, Outcome::Revoked | Outcome::AlreadyGone) && !guard.may_act();
            let outcome = match lapsed.then(|| audit.settled_elsewhere(&intent)).flatten() {
                Some(by) => intent.ended(
                    Outcome::Interrupted,
                    Some(format!("carried out while leadership lapsed; another replica's record is final ({by})")),
                ),
                None => outcome,
            };
            let latency = outcome.latency_seconds.filter(|_| result == ActionResult::Revoked);
            let audit_error = write(audit, outcome).await;
            (ActionReport { action, result }, audit_error, latency)
        })
        .buffered(CONCURRENT_REVOCATIONS);
    while let Some((r, audit_error, latency)) = done.next().await {
        report.audit_errors.extend(audit_error);
        report.latencies.extend(latency.map(|l| (r.action.reason, l)));
        report.deferred |= r.result == ActionResult::Deferred;
        results.push(r);
    }
}

/// Resolves the intents a crash left without an outcome, from the provider's listing: an
/// enrolment no longer there (or disabled, when the policy disables) was revoked; one still
/// there is recorded `interrupted` and the plan decides about it again like any other.
async fn resolve_interrupted(
    audit: &dyn AuditSink,
    listed: &Inventory,
    intents: &[AuditRecord],
    provider: &MfaProvider,
    errors: &mut Vec<String>,
) {
    let disables = provider.spec.policy.revocation == crate::crd::mfa_provider::RevocationMode::Disable;
    for intent in intents {
        // Under its user, else under any name: privacyIDEA lists the tokens of a user since
        // removed from the user store under another name, and a token still there must never
        // be recorded as revoked.
        let enrolments = || listed.users.iter().flat_map(|u| u.enrolments.iter().map(move |e| (u, e)));
        let held = enrolments()
            .find(|(u, e)| u.name == intent.user && e.id == intent.enrolment)
            .or_else(|| enrolments().find(|(_, e)| e.id == intent.enrolment))
            .map(|(_, e)| e);
        let outcome = match held {
            Some(e) if e.active || !disables => intent.ended(
                Outcome::Interrupted,
                Some("no outcome known (a crash, or a call that failed without saying whether it was carried out); still enrolled, planned again".into()),
            ),
            // Gone; but another replica may have revoked it while this one was down: then
            // its record is the final one and this intent only closes.
            _ => match audit.settled_elsewhere(intent) {
                Some(by) => intent.ended(
                    Outcome::Interrupted,
                    Some(format!("no outcome known (a crash, or a failed call); gone, revoked by another replica ({by}), whose record is final")),
                ),
                None => intent.ended(
                    Outcome::Revoked,
                    Some("confirmed when the provider was read again: gone (the call's answer was lost to a crash or a failure)".into()),
                ),
            },
        };
        // Written by this replica, whichever wrote the intent (a peer that died mid-call).
        let mut outcome = outcome;
        if let (Some(writer), Some(detail)) = (outcome.replica.take(), outcome.detail.as_mut()) {
            detail.push_str(&format!("; the intent is {writer}'s"));
        }
        errors.extend(write(audit, outcome).await);
    }
}

/// The plan's other actions: invitations sent when acting, each with its record; pending
/// enrolments reported.
async fn invite_or_report<E, G>(
    run: &Run<'_, '_, E, G>,
    plan: &Plan,
    act: bool,
    results: &mut Vec<ActionReport>,
    audit_errors: &mut Vec<String>,
) where
    E: Borrow<Employee> + Sync,
    G: Borrow<AccessGrant> + Sync,
{
    for action in plan.actions.iter().filter(|a| a.action != ActionKind::Revoke) {
        let result = match action.action {
            ActionKind::Invite if act => {
                let (result, outcome, detail) = match run.provider.invite(&action.user, &action.kind).await {
                    Ok(()) => (ActionResult::Invited, Outcome::Invited, None),
                    Err(e) => (ActionResult::Failed(e.to_string()), Outcome::Failed, Some(e.to_string())),
                };
                let record = audit_record(run.declared, plan, action, Event::Invitation, outcome, detail, run.guard);
                audit_errors.extend(write(run.audit, record).await);
                result
            }
            ActionKind::Invite => ActionResult::Planned,
            _ => ActionResult::Pending,
        };
        results.push(ActionReport { action: action.clone(), result });
    }
}

/// The record of an approval letting `plan` through: who approved (`approval`), the plan's
/// digest, and how many revocations it lets through.
fn approval_record<E: Borrow<Employee>, G: Borrow<AccessGrant>>(
    declared: &Declared<E, G>,
    plan: &Plan,
    guard: &dyn Guard,
) -> AuditRecord {
    let detail = Some(format!("lets {} held revocations through", plan.revocation_count()));
    AuditRecord {
        endpoint: declared.provider.spec.block().ok().and_then(|b| b.spec().endpoint()),
        source_revision: declared.provider.annotations().get(SOURCE_REVISION_ANNOTATION).cloned(),
        plan_digest: Some(plan.digest.clone()),
        approval: plan.approval.clone(),
        trigger: guard.change_observed(),
        ..AuditRecord::about_provider(&plan.provider, Event::Approval, Outcome::Approved, detail)
    }
}

/// Why a planned revocation is no longer wanted by the declared state as it is now, if it is
/// not: the user's enrolments are planned again against it (budget aside: the plan being
/// carried out already passed it).
fn withdrawn(guard: &dyn Guard, listed: &Inventory, capabilities: &Capabilities, action: &Action) -> Option<String> {
    let (provider, employees, grants, now) = match guard.declared_now() {
        DeclaredNow::Unchanged => return None,
        DeclaredNow::ProviderGone => return Some("the MfaProvider is gone or being deleted".into()),
        DeclaredNow::Current { provider, employees, grants, now } => (provider, employees, grants, now),
    };
    if provider.spec.policy.mode != Mode::Enforce {
        return Some("the MfaProvider is in Observe mode now".into());
    }
    let user = listed.users.iter().find(|u| u.name == action.user)?;
    let single = Inventory { users: vec![user.clone()] };
    let replanned = engine::plan(&PlanInput {
        provider: &provider,
        employees: &employees,
        grants: &grants,
        inventory: Ok(&single),
        capabilities,
        now,
        revoked_in_window: 0,
        approvals: &[],
    });
    let still = replanned.revocations().any(|a| a.enrolment == action.enrolment && a.user == action.user);
    (!still).then(|| "the current declared state no longer revokes it".into())
}

/// Writes a record; the error, named, if it could not be.
async fn write(audit: &dyn AuditSink, record: AuditRecord) -> Option<String> {
    let error = audit.record(&record).await.err()?;
    Some(format!("write audit record ({:?}) for {} {}: {error}", record.event, record.user, record.enrolment))
}

fn audit_record<E: Borrow<Employee>, G: Borrow<AccessGrant>>(
    declared: &Declared<E, G>,
    plan: &Plan,
    action: &Action,
    event: Event,
    outcome: Outcome,
    detail: Option<String>,
    guard: &dyn Guard,
) -> AuditRecord {
    let namespace = declared.provider.namespace();
    let employee = action.employee.as_ref().and_then(|name| {
        declared.employees.iter().map(Borrow::borrow).find(|e| e.namespace() == namespace && &e.name_any() == name)
    });
    let source_revision = employee
        .and_then(|e| e.annotations().get(SOURCE_REVISION_ANNOTATION))
        .or_else(|| declared.provider.annotations().get(SOURCE_REVISION_ANNOTATION))
        .cloned();
    let time = Utc::now();
    let grants: Vec<&AccessGrant> = declared.grants.iter().map(Borrow::borrow).collect();
    let trigger = crate::engine::trigger::of(action, employee, &grants, time).or_else(|| guard.change_observed());
    AuditRecord {
        time,
        event,
        provider: plan.provider.clone(),
        endpoint: declared.provider.spec.block().ok().and_then(|b| b.spec().endpoint()),
        user: action.user.clone(),
        enrolment: action.enrolment.clone(),
        kind: action.kind.to_string(),
        reason: action.reason.to_string(),
        employee: action.employee.clone(),
        employee_uid: employee.and_then(|e| e.uid()),
        grants: action.grants.clone(),
        source_revision,
        outcome,
        detail,
        plan_digest: Some(plan.digest.clone()),
        approval: plan.approval.clone(),
        trigger,
        latency_seconds: crate::audit::latency(trigger, time),
        replica: None,
        service_account: None,
        notification: None,
    }
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;

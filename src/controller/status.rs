//! Status of the three kinds, computed from sweep reports (pure; the reconcilers write it).

use crate::crd::conditions::{Condition, upsert};
use crate::crd::employee::{EnrolmentVerdict, ProviderEnrolments};
use crate::crd::mfa_provider::Mode;
use crate::crd::mfa_provider::PlannedRevocation;
use crate::crd::{AccessGrant, AccessGrantStatus, Employee, EmployeeStatus, MfaProviderStatus};
use crate::engine::entitlement::{Validity, selects, validity};
use crate::engine::plan::{EmployeeVerdict, Verdict};
use crate::sweep::{ActionResult, SweepReport};
use chrono::{DateTime, Utc};
use kube::ResourceExt;

/// Where an object stands, as the Ready / Reconciling / Stalled triple of docs/gitops.md
/// ("The condition contract") tells GitOps tools.
pub enum Readiness {
    /// Declared state in effect.
    Ready { reason: &'static str, message: String },
    /// keyward is getting there by itself (revocations under way, retrying a provider).
    Reconciling { reason: &'static str, message: String },
    /// A person must act (approve a plan, fix credentials or a conflict).
    Stalled { reason: &'static str, message: String },
}

/// Sets Ready, Reconciling and Stalled consistently: exactly one story, same reason.
pub fn set_readiness(
    conditions: &mut Vec<Condition>,
    readiness: Readiness,
    now: DateTime<Utc>,
    generation: Option<i64>,
) {
    let (ready, reconciling, stalled, reason, message) = match readiness {
        Readiness::Ready { reason, message } => (true, false, false, reason, message),
        Readiness::Reconciling { reason, message } => (false, true, false, reason, message),
        Readiness::Stalled { reason, message } => (false, false, true, reason, message),
    };
    let cond = |type_: &str, on: bool| {
        Condition::new(
            type_,
            on,
            reason,
            if on || type_ == "Ready" { message.clone() } else { String::new() },
            now,
            generation,
        )
    };
    upsert(conditions, cond("Ready", ready));
    upsert(conditions, cond("Reconciling", reconciling));
    upsert(conditions, cond("Stalled", stalled));
}

/// The verdicts of a sweep after it was carried out: a planned revocation that succeeded is
/// `Revoked`, one that failed or was only observed is still pending.
pub fn executed_verdicts(report: &SweepReport) -> Vec<EmployeeVerdict> {
    let mut verdicts = report.plan.employees.clone();
    let observe = report.plan.mode == Mode::Observe;
    // By (user, enrolment): a held plan of thousands of revocations is looked up, not scanned
    // once per enrolment. The first result of a pair wins, as a scan would find it.
    let mut results: std::collections::HashMap<(&str, &str), &ActionResult> = std::collections::HashMap::new();
    for r in &report.results {
        results.entry((r.action.user.as_str(), r.action.enrolment.as_str())).or_insert(&r.result);
    }
    for verdict in &mut verdicts {
        for enrolment in &mut verdict.enrolments {
            if enrolment.verdict != Verdict::RevocationPlanned {
                continue;
            }
            let result = results.get(&(verdict.user.as_str(), enrolment.id.as_str())).copied();
            enrolment.verdict = match result {
                Some(ActionResult::Revoked | ActionResult::AlreadyGone) => Verdict::Revoked,
                Some(ActionResult::Blocked) => Verdict::RevocationBlocked,
                _ if observe => Verdict::RevocationObserved,
                _ => Verdict::RevocationPlanned,
            };
        }
    }
    verdicts
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Kept => "Kept",
        Verdict::Revoked => "Revoked",
        Verdict::RevocationPlanned => "RevocationPending",
        Verdict::RevocationObserved => "WouldRevoke",
        Verdict::RevocationBlocked => "RevocationBlocked",
        Verdict::CascadeWithheld => "CascadeWithheld",
        Verdict::IdentityConflict => "IdentityConflict",
        Verdict::EnrolmentPending => "EnrolmentPending",
    }
}

pub fn provider_status(
    report: &SweepReport,
    generation: Option<i64>,
    now: DateTime<Utc>,
    previous: Option<&MfaProviderStatus>,
) -> MfaProviderStatus {
    let plan = &report.plan;
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let budget = match &plan.hold {
        Some(hold) => {
            let reason = match hold {
                crate::engine::Hold::RevocationBudgetExceeded { .. } => "BudgetExceeded",
                crate::engine::Hold::EmptyDeclaredState { .. } => "EmptyDeclaredState",
            };
            Condition::new("RevocationBudgetExceeded", true, reason, hold.message(&plan.digest), now, generation)
        }
        None => Condition::new("RevocationBudgetExceeded", false, "WithinBudget", "", now, generation),
    };
    upsert(&mut status.conditions, budget);
    let conflict = if plan.conflicts.is_empty() {
        Condition::new("IdentityConflict", false, "NoConflict", "", now, generation)
    } else {
        let users: Vec<String> =
            plan.conflicts.iter().map(|c| format!("{} ({})", c.user, c.employees.join(", "))).collect();
        Condition::new(
            "IdentityConflict",
            true,
            "IdentityConflict",
            format!("left alone until resolved: {}", users.join("; ")),
            now,
            generation,
        )
    };
    upsert(&mut status.conditions, conflict);
    let failed = report.results.iter().filter(|r| matches!(r.result, ActionResult::Failed(_))).count();
    let readiness = match (&plan.error, &plan.hold) {
        (Some(error), _) if report.error_needs_person() => {
            Readiness::Stalled { reason: "CredentialsUnavailable", message: error.clone() }
        }
        (Some(error), _) => Readiness::Reconciling { reason: "ProviderUnavailable", message: error.clone() },
        (None, Some(hold)) => {
            Readiness::Stalled { reason: "RevocationBudgetExceeded", message: hold.message(&plan.digest) }
        }
        (None, None) if !plan.conflicts.is_empty() => {
            Readiness::Stalled { reason: "IdentityConflict", message: "see the IdentityConflict condition".into() }
        }
        (None, None) if failed > 0 => Readiness::Reconciling {
            reason: "RevocationFailed",
            message: format!("{failed} revocations failed; retrying"),
        },
        (None, None) if plan.mode == Mode::Observe => Readiness::Ready {
            reason: "Observing",
            message: format!("Observe mode: {} revocations planned, none made", plan.revocation_count()),
        },
        (None, None) => Readiness::Ready {
            reason: "Reachable",
            message: format!("listed {} enrolments of {} managed users", plan.managed_enrolments, plan.managed_users),
        },
    };
    set_readiness(&mut status.conditions, readiness, now, generation);
    if plan.error.is_none() {
        status.managed_users = plan.managed_users as u32;
        status.managed_enrolments = plan.managed_enrolments as u32;
    }
    let not_done = report
        .results
        .iter()
        .filter(|r| r.action.action == crate::engine::ActionKind::Revoke)
        .filter(|r| matches!(r.result, ActionResult::Planned | ActionResult::Failed(_)))
        .count();
    status.pending_revocations = if plan.mode == Mode::Observe { plan.revocation_count() } else { not_done } as u32;
    status.blocked_revocations = if plan.hold.is_some() { plan.revocation_count() as u32 } else { 0 };
    status.blocked_plan_digest = plan.hold.as_ref().map(|_| plan.digest.clone());
    if plan.error.is_none() {
        publish_plan(&mut status, plan);
    }
    status.last_sweep_time = Some(now);
    status
}

/// How many revocations not carried out the status lists: enough to read a plan in
/// `kubectl get -o yaml`, bounded so a plan of thousands keeps the object small.
pub const PLANNED_LISTED: usize = 20;

/// The plan's digest, its undeclared users, and — when its revocations are not carried out
/// (Observe, or held for approval) — the first of them.
fn publish_plan(status: &mut MfaProviderStatus, plan: &crate::engine::Plan) {
    use crate::engine::Reason;
    status.plan_digest = Some(plan.digest.clone());
    let undeclared: std::collections::BTreeSet<&str> =
        plan.revocations().filter(|a| a.reason == Reason::UndeclaredUser).map(|a| a.user.as_str()).collect();
    status.undeclared_users = undeclared.len() as u32;
    let not_carried_out = plan.mode == Mode::Observe || plan.hold.is_some();
    status.planned_revocations = if not_carried_out {
        let mut listed: Vec<PlannedRevocation> = plan
            .revocations()
            .map(|a| PlannedRevocation {
                user: a.user.clone(),
                enrolment: a.enrolment.clone(),
                kind: a.kind.to_string(),
                reason: a.reason.to_string(),
                employee: a.employee.clone(),
            })
            .collect();
        listed.sort_by(|a, b| (&a.user, &a.enrolment).cmp(&(&b.user, &b.enrolment)));
        listed.truncate(PLANNED_LISTED);
        listed
    } else {
        Vec::new()
    };
}

/// One line on what the plan would do, for the provider's Event: None when there is nothing
/// to tell (not Observe, or nothing to revoke and nothing was to be revoked before).
pub fn observe_summary(plan: &crate::engine::Plan, previous: Option<&MfaProviderStatus>) -> Option<String> {
    if plan.mode != Mode::Observe || plan.error.is_some() {
        return None;
    }
    // Only when the plan changed: the same plan every resync is no news.
    if previous.and_then(|p| p.plan_digest.as_ref()) == Some(&plan.digest) {
        return None;
    }
    let count = plan.revocation_count();
    let users: std::collections::BTreeSet<&str> = plan.revocations().map(|a| a.user.as_str()).collect();
    let undeclared = plan.revocations().filter(|a| a.reason == crate::engine::Reason::UndeclaredUser).count();
    Some(format!(
        "Observe mode: would revoke {count} enrolments of {} users ({undeclared} of users with no Employee); plan {}",
        users.len(),
        plan.digest
    ))
}

/// The status of a provider keyward leaves alone (`spec.suspend`, or `keyward run --paused`):
/// Stalled until a person resumes it, the last sweep's figures kept.
pub fn suspended_status(
    previous: Option<&MfaProviderStatus>,
    generation: Option<i64>,
    message: String,
    now: DateTime<Utc>,
) -> MfaProviderStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    set_readiness(&mut status.conditions, Readiness::Stalled { reason: "Suspended", message }, now, generation);
    status
}

/// An Employee's status from the verdicts of every provider of its namespace.
/// `swept`: every provider of the namespace has been swept at least once since start.
pub fn employee_status(
    employee: &Employee,
    verdicts: &[(String, EmployeeVerdict)],
    swept: bool,
    revoked_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> EmployeeStatus {
    let generation = employee.metadata.generation;
    let mut status = employee.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.providers = provider_enrolments(verdicts);
    if let Some(at) = revoked_at {
        // Never backwards: another replica's later sweep may have written a later one.
        status.last_revocation_time = status.last_revocation_time.max(Some(at));
    }
    let findings = Findings::of(verdicts);
    findings.flag(&mut status.conditions, now, generation);
    let deleting = employee.metadata.deletion_timestamp.is_some();
    set_readiness(&mut status.conditions, findings.readiness(deleting, swept), now, generation);
    status
}

/// `status.providers`: per provider, the user, entitled kinds and each enrolment's verdict.
fn provider_enrolments(verdicts: &[(String, EmployeeVerdict)]) -> Vec<ProviderEnrolments> {
    let mut providers: Vec<ProviderEnrolments> = verdicts
        .iter()
        .map(|(provider, v)| ProviderEnrolments {
            provider: provider.clone(),
            username: v.user.clone(),
            entitled_factors: v.entitled.clone(),
            enrolments: v
                .enrolments
                .iter()
                .map(|e| EnrolmentVerdict {
                    id: e.id.clone(),
                    kind: e.kind.clone(),
                    other_kinds: e.also.clone(),
                    verdict: verdict_name(e.verdict).to_string(),
                    reason: e.reason.map(|r| r.to_string()),
                })
                .collect(),
        })
        .collect();
    providers.sort_by(|a, b| a.provider.cmp(&b.provider));
    providers
}

/// What an Employee's verdicts across its providers amount to, for its conditions.
struct Findings {
    conflicts: Vec<String>,
    blocked: Vec<String>,
    pending_revocations: usize,
    observed: Vec<String>,
    pending_enrolments: Vec<String>,
}

impl Findings {
    fn of(verdicts: &[(String, EmployeeVerdict)]) -> Self {
        let all = || verdicts.iter().flat_map(|(p, v)| v.enrolments.iter().map(move |e| (p, e)));
        let named = |verdict: Verdict| -> Vec<String> {
            all().filter(|(_, e)| e.verdict == verdict).map(|(p, e)| format!("{} {} on {p}", e.kind, e.id)).collect()
        };
        Findings {
            conflicts: verdicts
                .iter()
                .filter(|(_, v)| {
                    !v.conflicts_with.is_empty() || v.enrolments.iter().any(|e| e.verdict == Verdict::IdentityConflict)
                })
                .map(|(p, v)| match v.conflicts_with.as_slice() {
                    [] => format!("more than one user on {p} goes by {}", v.user),
                    others => format!("user {} on {p} is also claimed by {}", v.user, others.join(", ")),
                })
                .collect(),
            blocked: named(Verdict::RevocationBlocked),
            pending_revocations: all().filter(|(_, e)| e.verdict == Verdict::RevocationPlanned).count(),
            observed: named(Verdict::RevocationObserved),
            pending_enrolments: all()
                .filter(|(_, e)| e.verdict == Verdict::EnrolmentPending)
                .map(|(p, e)| format!("{} on {p}", e.kind))
                .collect(),
        }
    }

    /// The `IdentityConflict`, `RevocationBlocked`, `WouldRevoke` and `EnrolmentPending`
    /// conditions.
    fn flag(&self, conditions: &mut Vec<Condition>, now: DateTime<Utc>, generation: Option<i64>) {
        let flag = |type_: &str, on: bool, reason: &str, message: String| {
            Condition::new(
                type_,
                on,
                if on { reason } else { "None" },
                if on { message } else { String::new() },
                now,
                generation,
            )
        };
        let blocked = format!("waiting for approval of the provider's plan: {}", self.blocked.join(", "));
        let observed = format!("Observe mode; would revoke: {}", self.observed.join(", "));
        let pending = format!("required but not enrolled: {}", self.pending_enrolments.join(", "));
        for condition in [
            flag("IdentityConflict", !self.conflicts.is_empty(), "IdentityConflict", self.conflicts.join("; ")),
            flag("RevocationBlocked", !self.blocked.is_empty(), "RevocationBudgetExceeded", blocked),
            flag("WouldRevoke", !self.observed.is_empty(), "ObserveMode", observed),
            flag("EnrolmentPending", !self.pending_enrolments.is_empty(), "EnrolmentRequired", pending),
        ] {
            upsert(conditions, condition);
        }
    }

    fn readiness(&self, deleting: bool, swept: bool) -> Readiness {
        if !self.conflicts.is_empty() {
            Readiness::Stalled { reason: "IdentityConflict", message: self.conflicts.join("; ") }
        } else if !self.blocked.is_empty() {
            Readiness::Stalled { reason: "RevocationBudgetExceeded", message: self.blocked.join(", ") }
        } else if deleting {
            Readiness::Reconciling {
                reason: "RevokingBeforeDeletion",
                message: "revoking every enrolment before the Employee goes".into(),
            }
        } else if self.pending_revocations > 0 {
            Readiness::Reconciling {
                reason: "RevocationPending",
                message: format!("{} revocations pending", self.pending_revocations),
            }
        } else if !swept {
            Readiness::Reconciling {
                reason: "Sweeping",
                message: "waiting for the first sweep of its providers".into(),
            }
        } else if !self.observed.is_empty() {
            // Observe mode is the declared policy: keyward has done all it was asked to.
            Readiness::Ready {
                reason: "Observing",
                message: format!("Observe mode; would revoke: {}", self.observed.join(", ")),
            }
        } else {
            Readiness::Ready { reason: "Reconciled", message: "every enrolment matches the declared state".into() }
        }
    }
}

pub fn grant_status(
    grant: &AccessGrant,
    employees: &[std::sync::Arc<Employee>],
    provider: Option<&crate::crd::MfaProvider>,
    now: DateTime<Utc>,
) -> AccessGrantStatus {
    let provider_exists = provider.is_some();
    let generation = grant.metadata.generation;
    let mut status = grant.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.matched_employees =
        employees.iter().filter(|e| e.namespace() == grant.namespace() && selects(grant, e.as_ref())).count() as u32;
    let readiness = if !provider_exists {
        Readiness::Stalled {
            reason: "ProviderNotFound",
            message: format!("no MfaProvider {:?} in this namespace; the grant entitles nobody", grant.spec.provider),
        }
    } else {
        // An expired or future grant entitling nobody is its declared meaning, not a fault.
        match validity(grant, now) {
            Validity::Valid => Readiness::Ready { reason: "Valid", message: String::new() },
            Validity::NotYet => {
                Readiness::Ready { reason: "NotYetValid", message: "validFrom is in the future".into() }
            }
            Validity::Expired => Readiness::Ready {
                reason: "Expired",
                message: "validUntil has passed; enrolments held only through this grant are revoked".into(),
            },
        }
    };
    set_readiness(&mut status.conditions, readiness, now, generation);
    // Kinds the provider never reports entitle nobody: named on the grant, so its author sees it.
    match provider {
        Some(provider) => upsert(&mut status.conditions, super::grant::factor_kinds_condition(grant, provider, now)),
        None => status.conditions.retain(|c| c.type_ != super::grant::FACTOR_KINDS_REPORTED),
    }
    status
}

/// Status equality without the timestamps that every computation refreshes.
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    let key =
        |c: &Condition| (c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone(), c.observed_generation);
    let mut x: Vec<_> = a.iter().map(key).collect();
    let mut y: Vec<_> = b.iter().map(key).collect();
    x.sort();
    y.sort();
    x == y
}

/// Runs one status write (a server-side apply) and retries that write alone while the API
/// server is briefly unavailable, throttles or reports a conflict: the sweep that computed the
/// status has acted already, and running it again only to store its report would read every
/// provider anew. Five tries over about 3 s at most (100 ms doubling, capped at 2 s, jittered),
/// so a reconcile is not held long; a rejection (403, 404, 422) is returned at once.
pub async fn write_retrying<F, Fut>(write: F) -> Result<(), kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    use crate::retry::{Exponential, Trouble, retry_transient};
    let schedule =
        |_| Exponential { base: std::time::Duration::from_millis(100), cap: std::time::Duration::from_secs(2) };
    retry_transient(5, Trouble::of_kube, schedule, write).await
}

#[cfg(test)]
mod write_tests {
    use super::write_retrying;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("x", "y").with_code(code).boxed())
    }

    #[tokio::test]
    async fn a_failed_status_write_retries_the_write_not_the_sweep() {
        let mut calls = 0;
        let result = write_retrying(|| {
            calls += 1;
            let code = [503, 409, 0][calls.min(3) - 1];
            async move { if code == 0 { Ok(()) } else { Err(api(code)) } }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls, 3, "the write alone was tried again");
        let mut calls = 0;
        let result = write_retrying(|| {
            calls += 1;
            async { Err(api(422)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "an invalid status is not retried");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EmployeeState;
    use crate::engine::fixtures::*;
    use crate::engine::{PlanInput, plan};
    use crate::sweep::SweepReport;

    fn report(
        p: &crate::crd::MfaProvider,
        inventory: Result<&crate::engine::Inventory, String>,
        category: Option<&'static str>,
    ) -> SweepReport {
        let employees =
            vec![employee("dave", &[], EmployeeState::Offboarded), employee("al", &["sre"], EmployeeState::Active)];
        let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
        let plan = plan(&PlanInput {
            provider: p,
            employees: &employees,
            grants: &grants,
            inventory,
            capabilities: &capabilities(),
            now: now(),
            revoked_in_window: 0,
            approvals: &[],
        });
        SweepReport {
            plan,
            results: vec![],
            requests: 0,
            audit_errors: vec![],
            error_category: category,
            deferred: false,
            latencies: Vec::new(),
            listing_duplicates: Default::default(),
        }
    }

    fn get<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn provider_readiness_follows_the_condition_contract() {
        let inv = inventory(&[("dave", &[("1", "totp", true), ("2", "totp", true)])]);
        let mut p = provider();
        let ok = provider_status(&report(&p, Ok(&inv), None), Some(3), now(), None);
        assert_eq!(get(&ok.conditions, "Ready").status, "True");
        assert_eq!(get(&ok.conditions, "Stalled").status, "False");
        assert!(ok.conditions.iter().all(|c| c.observed_generation == Some(3)));

        p.spec.policy.budget.max_revocations = 1;
        let held = provider_status(&report(&p, Ok(&inv), None), Some(3), now(), Some(&ok));
        assert_eq!(get(&held.conditions, "Ready").status, "False");
        assert_eq!(get(&held.conditions, "Stalled").reason, "RevocationBudgetExceeded");
        assert_eq!(get(&held.conditions, "RevocationBudgetExceeded").status, "True");
        assert_eq!(held.blocked_revocations, 2);
        assert!(held.blocked_plan_digest.is_some());
        // A transition keeps no stale timestamp; an unchanged status keeps its own.
        assert_eq!(
            get(&held.conditions, "Reconciling").last_transition_time,
            get(&ok.conditions, "Reconciling").last_transition_time
        );

        let down = provider_status(&report(&p, Err("cannot reach".into()), Some("unreachable")), Some(3), now(), None);
        assert_eq!(get(&down.conditions, "Reconciling").reason, "ProviderUnavailable");
        let denied = provider_status(
            &report(&p, Err("credentials rejected".into()), Some("unauthorized")),
            Some(3),
            now(),
            None,
        );
        assert_eq!(get(&denied.conditions, "Stalled").reason, "CredentialsUnavailable");
    }

    /// Observe mode in the status: the provider lists what it would revoke (undeclared users
    /// included) and tells it once per changed plan; the Employee says `WouldRevoke`.
    #[test]
    fn observe_mode_is_published_on_the_provider_and_the_employee() {
        let inv = inventory(&[
            ("dave", &[("1", "totp", true), ("2", "totp", true)]),
            ("ghost", &[("3", "totp", true)]),
            ("al", &[("4", "totp", true)]),
        ]);
        let mut p = provider();
        p.spec.policy.mode = Mode::Observe;
        p.spec.scope = crate::crd::mfa_provider::Scope::All;
        let observed = report(&p, Ok(&inv), None);
        let status = provider_status(&observed, Some(1), now(), None);
        let listed: Vec<(&str, &str, Option<&str>)> = status
            .planned_revocations
            .iter()
            .map(|r| (r.user.as_str(), r.reason.as_str(), r.employee.as_deref()))
            .collect();
        assert_eq!(
            listed,
            [
                ("dave", "EmployeeOffboarded", Some("dave")),
                ("dave", "EmployeeOffboarded", Some("dave")),
                ("ghost", "UndeclaredUser", None)
            ]
        );
        assert_eq!((status.pending_revocations, status.undeclared_users), (3, 1));
        assert_eq!(get(&status.conditions, "Ready").reason, "Observing");
        let summary = observe_summary(&observed.plan, None).expect("a first plan is news");
        assert!(summary.contains("would revoke 3 enrolments of 2 users (1 of users with no Employee)"), "{summary}");
        assert_eq!(observe_summary(&observed.plan, Some(&status)), None, "the same plan again is not");

        // Enforcing within budget: nothing listed, nothing to tell.
        p.spec.policy.mode = Mode::Enforce;
        let enforced = report(&p, Ok(&inv), None);
        assert!(provider_status(&enforced, Some(2), now(), Some(&status)).planned_revocations.is_empty());
        assert_eq!(observe_summary(&enforced.plan, None), None);

        let mut long = provider();
        long.spec.policy.mode = Mode::Observe;
        let many: Vec<(String, String)> = (0..30).map(|i| (format!("{i}"), "totp".to_string())).collect();
        let enrolments: Vec<(&str, &str, bool)> = many.iter().map(|(id, k)| (id.as_str(), k.as_str(), true)).collect();
        let big = inventory(&[("dave", enrolments.as_slice())]);
        let listed = provider_status(&report(&long, Ok(&big), None), Some(1), now(), None);
        assert_eq!((listed.planned_revocations.len(), listed.pending_revocations), (PLANNED_LISTED, 30));

        let verdict = daves_totp;
        let leaver = employee("dave", &[], EmployeeState::Offboarded);
        let observing =
            employee_status(&leaver, &[("corp-pi".into(), verdict(Verdict::RevocationObserved))], true, None, now());
        let would = get(&observing.conditions, "WouldRevoke");
        assert_eq!((would.status.as_str(), would.reason.as_str()), ("True", "ObserveMode"));
        assert!(would.message.contains("totp T1 on corp-pi"), "{}", would.message);
        let done = employee_status(&leaver, &[("corp-pi".into(), verdict(Verdict::Revoked))], true, None, now());
        assert_eq!(get(&done.conditions, "WouldRevoke").status, "False");
    }

    /// dave's verdicts: one TOTP (T1), with `verdict`.
    fn daves_totp(verdict: Verdict) -> EmployeeVerdict {
        EmployeeVerdict {
            employee: "dave".into(),
            user: "dave".into(),
            entitled: vec![],
            enrolments: vec![crate::engine::EnrolmentDecision {
                id: "T1".into(),
                kind: crate::crd::FactorKind::new("totp"),
                also: vec![],
                verdict,
                reason: None,
            }],
            conflicts_with: vec![],
        }
    }

    #[test]
    fn a_suspended_provider_is_stalled_with_reason_suspended_and_keeps_its_figures() {
        let inv = inventory(&[("dave", &[("1", "totp", true)])]);
        let before = provider_status(&report(&provider(), Ok(&inv), None), Some(1), now(), None);
        let suspended = suspended_status(Some(&before), Some(2), "spec.suspend is true".into(), now());
        let ready = get(&suspended.conditions, "Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Suspended"));
        assert_eq!(get(&suspended.conditions, "Stalled").status, "True");
        assert_eq!(get(&suspended.conditions, "Reconciling").status, "False");
        assert_eq!(suspended.observed_generation, Some(2));
        assert_eq!(suspended.managed_users, before.managed_users);
    }

    #[test]
    fn employee_and_grant_readiness() {
        let mut e = employee("dave", &[], EmployeeState::Offboarded);
        e.metadata.generation = Some(2);
        let fresh = employee_status(&e, &[], false, None, now());
        assert_eq!(get(&fresh.conditions, "Reconciling").status, "True");
        let done = employee_status(&e, &[], true, None, now());
        assert_eq!(get(&done.conditions, "Ready").status, "True");
        e.metadata.deletion_timestamp = Some(k8s_time(now()));
        let deleting = employee_status(&e, &[], true, None, now());
        assert_eq!(get(&deleting.conditions, "Reconciling").reason, "RevokingBeforeDeletion");

        let observed = daves_totp(Verdict::RevocationObserved);
        let leaver = employee("dave", &[], EmployeeState::Offboarded);
        let observing = employee_status(&leaver, &[("acme/corp-pi".into(), observed)], true, None, now());
        assert_eq!(get(&observing.conditions, "Ready").reason, "Observing");
        assert_eq!(observing.providers[0].enrolments[0].verdict, "WouldRevoke");

        let mut g = grant("old", &["sre"], &[], &["totp"]);
        g.spec.valid_until = Some(now() - chrono::Duration::days(1));
        let expired = grant_status(&g, &[], Some(&provider()), now());
        assert_eq!(
            (get(&expired.conditions, "Ready").status.as_str(), get(&expired.conditions, "Ready").reason.as_str()),
            ("True", "Expired")
        );
        let orphan = grant_status(&g, &[], None, now());
        assert_eq!(get(&orphan.conditions, "Stalled").reason, "ProviderNotFound");
        assert!(orphan.conditions.iter().all(|c| c.type_ != "FactorKindsReported"));

        // A grant for a kind its provider never reports says so in its status.
        let google: crate::crd::MfaProvider = serde_yaml::from_str(
            "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {name: corp-pi, namespace: acme}\nspec:\n  googleWorkspace:\n    adminEmail: admin@acme.example\n    credentials: {secretRef: {name: g}}\n",
        )
        .expect("provider");
        let totp = grant_status(&grant("otp", &["sre"], &[], &["totp"]), &[], Some(&google), now());
        let kinds = get(&totp.conditions, "FactorKindsReported");
        assert_eq!((kinds.status.as_str(), kinds.reason.as_str()), ("False", "NeverReported"));
        assert!(kinds.message.contains("Google Workspace never reports the factor kind `totp`"), "{}", kinds.message);
        let two_sv = grant_status(&grant("2sv", &["sre"], &[], &["2sv"]), &[], Some(&google), now());
        assert_eq!(get(&two_sv.conditions, "FactorKindsReported").status, "True");
    }
}

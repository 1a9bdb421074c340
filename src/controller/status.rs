//! Status of the three kinds, computed from sweep reports (pure; the reconcilers write it).

use crate::crd::conditions::{Condition, upsert};
use crate::crd::employee::{EnrolmentVerdict, ProviderEnrolments};
use crate::crd::mfa_provider::Mode;
use crate::crd::{AccessGrant, AccessGrantStatus, Employee, EmployeeStatus, MfaProviderStatus};
use crate::engine::entitlement::{Validity, selects, validity};
use crate::engine::plan::{EmployeeVerdict, Verdict};
use crate::sweep::{ActionResult, SweepReport};
use chrono::{DateTime, Utc};
use kube::ResourceExt;

/// The verdicts of a sweep after it was carried out: a planned revocation that succeeded is
/// `Revoked`, one that failed or was only observed is still pending.
pub fn executed_verdicts(report: &SweepReport) -> Vec<EmployeeVerdict> {
    let mut verdicts = report.plan.employees.clone();
    for verdict in &mut verdicts {
        for (id, _, v, _) in &mut verdict.enrolments {
            if *v != Verdict::RevocationPlanned {
                continue;
            }
            let result = report.results.iter().find(|r| &r.action.enrolment == id && r.action.user == verdict.user);
            *v = match result.map(|r| &r.result) {
                Some(ActionResult::Revoked | ActionResult::AlreadyGone) => Verdict::Revoked,
                Some(ActionResult::Blocked) => Verdict::RevocationBlocked,
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
        Verdict::RevocationBlocked => "RevocationBlocked",
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
    let ready = match &plan.error {
        None => Condition::new(
            "Ready",
            true,
            "Reachable",
            format!("listed {} enrolments of {} managed users", plan.managed_enrolments, plan.managed_users),
            now,
            generation,
        ),
        Some(error) => Condition::new("Ready", false, "ProviderUnavailable", error.clone(), now, generation),
    };
    upsert(&mut status.conditions, ready);
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
    status.last_sweep_time = Some(now);
    status
}

/// An Employee's status from the verdicts of every provider of its namespace.
pub fn employee_status(
    employee: &Employee,
    verdicts: &[(String, EmployeeVerdict)],
    revoked_now: bool,
    now: DateTime<Utc>,
) -> EmployeeStatus {
    let generation = employee.metadata.generation;
    let mut status = employee.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let mut providers: Vec<ProviderEnrolments> = verdicts
        .iter()
        .map(|(provider, v)| ProviderEnrolments {
            provider: provider.clone(),
            username: v.user.clone(),
            entitled_factors: v.entitled.clone(),
            enrolments: v
                .enrolments
                .iter()
                .map(|(id, kind, verdict, reason)| EnrolmentVerdict {
                    id: id.clone(),
                    kind: kind.clone(),
                    verdict: verdict_name(*verdict).to_string(),
                    reason: reason.map(|r| r.to_string()),
                })
                .collect(),
        })
        .collect();
    providers.sort_by(|a, b| a.provider.cmp(&b.provider));
    status.providers = providers;
    if revoked_now {
        status.last_revocation_time = Some(now);
    }
    let all = || verdicts.iter().flat_map(|(p, v)| v.enrolments.iter().map(move |e| (p, e)));
    let conflicts: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| !v.conflicts_with.is_empty())
        .map(|(p, v)| format!("user {} on {p} is also claimed by {}", v.user, v.conflicts_with.join(", ")))
        .collect();
    let blocked: Vec<String> = all()
        .filter(|(_, e)| e.2 == Verdict::RevocationBlocked)
        .map(|(p, e)| format!("{} {} on {p}", e.1, e.0))
        .collect();
    let pending_revocations = all().filter(|(_, e)| e.2 == Verdict::RevocationPlanned).count();
    let pending_enrolments: Vec<String> =
        all().filter(|(_, e)| e.2 == Verdict::EnrolmentPending).map(|(p, e)| format!("{} on {p}", e.1)).collect();

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
    upsert(
        &mut status.conditions,
        flag("IdentityConflict", !conflicts.is_empty(), "IdentityConflict", conflicts.join("; ")),
    );
    upsert(
        &mut status.conditions,
        flag(
            "RevocationBlocked",
            !blocked.is_empty(),
            "RevocationBudgetExceeded",
            format!("waiting for approval of the provider's plan: {}", blocked.join(", ")),
        ),
    );
    upsert(
        &mut status.conditions,
        flag(
            "EnrolmentPending",
            !pending_enrolments.is_empty(),
            "EnrolmentRequired",
            format!("required but not enrolled: {}", pending_enrolments.join(", ")),
        ),
    );
    let deleting = employee.metadata.deletion_timestamp.is_some();
    let ready = if !conflicts.is_empty() {
        Condition::new("Ready", false, "IdentityConflict", conflicts.join("; "), now, generation)
    } else if !blocked.is_empty() {
        Condition::new("Ready", false, "RevocationBlocked", blocked.join(", "), now, generation)
    } else if pending_revocations > 0 {
        Condition::new(
            "Ready",
            false,
            "RevocationPending",
            format!("{pending_revocations} revocations pending"),
            now,
            generation,
        )
    } else if deleting {
        Condition::new("Ready", false, "Terminating", "enrolments revoked; removing the finalizer", now, generation)
    } else {
        Condition::new("Ready", true, "Reconciled", "every enrolment matches the declared state", now, generation)
    };
    upsert(&mut status.conditions, ready);
    status
}

pub fn grant_status(
    grant: &AccessGrant,
    employees: &[Employee],
    provider_exists: bool,
    now: DateTime<Utc>,
) -> AccessGrantStatus {
    let generation = grant.metadata.generation;
    let mut status = grant.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.matched_employees =
        employees.iter().filter(|e| e.namespace() == grant.namespace() && selects(grant, e)).count() as u32;
    let ready = if !provider_exists {
        Condition::new(
            "Ready",
            false,
            "ProviderNotFound",
            format!("no MfaProvider {:?} in this namespace; the grant entitles nobody", grant.spec.provider),
            now,
            generation,
        )
    } else {
        match validity(grant, now) {
            Validity::Valid => Condition::new("Ready", true, "Valid", "", now, generation),
            Validity::NotYet => {
                Condition::new("Ready", false, "NotYetValid", "validFrom is in the future", now, generation)
            }
            Validity::Expired => Condition::new(
                "Ready",
                false,
                "Expired",
                "validUntil has passed; enrolments held only through this grant are revoked",
                now,
                generation,
            ),
        }
    };
    upsert(&mut status.conditions, ready);
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

//! The revocation budget over its sliding window, the plan digest and approval.

use super::plan::{Action, ActionKind, Approval, ApprovalOffer, Hold};
use crate::crd::mfa_provider::{Budget, RevocationTally};
use crate::crd::{APPROVE_REVOCATIONS_ANNOTATION, APPROVED_BY_ANNOTATION, MfaProvider, RevocationApproval};
use chrono::{DateTime, Utc};
use kube::ResourceExt;
use sha2::{Digest, Sha256};
use std::borrow::Borrow;

/// A short, stable digest of the revocations of a plan. It names exactly the set of
/// (user, enrolment, kind, reason) revocations on this provider, so an approval cannot be
/// reused for a different plan.
pub fn digest(provider: &str, actions: &[Action]) -> String {
    let mut lines: Vec<String> = actions
        .iter()
        .filter(|a| a.action == ActionKind::Revoke)
        .map(|a| format!("{}\t{}\t{}\t{}", a.user, a.enrolment, a.kind, a.reason))
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    hasher.update(provider.as_bytes());
    for line in lines {
        hasher.update(b"\n");
        hasher.update(line.as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}

/// The largest number of revocations the budget allows out of `managed_enrolments`.
pub fn limit(budget: &Budget, managed_enrolments: usize) -> usize {
    let absolute = budget.max_revocations as usize;
    match budget.max_percent {
        // Rounded down: a percentage must never allow more than it says.
        Some(pct) => absolute.min(managed_enrolments * pct as usize / 100),
        None => absolute,
    }
}

/// Whether the revocations must wait for approval: when, with the `used` revocations already
/// made within the window, they would go over the budget.
pub fn hold(
    budget: &Budget,
    revocations: usize,
    managed_enrolments: usize,
    declared_empty: bool,
    used: usize,
) -> Option<Hold> {
    if revocations == 0 {
        return None;
    }
    if declared_empty {
        return Some(Hold::EmptyDeclaredState { revocations });
    }
    let limit = limit(budget, managed_enrolments);
    (used + revocations > limit).then(|| Hold::RevocationBudgetExceeded {
        revocations,
        limit,
        used,
        window: humantime::format_duration(budget.window()).to_string(),
    })
}

/// The approval annotation on the provider as an offer, with the field manager that last set
/// it and when, read from the object's managed fields. `keyward apply` honours it; the
/// operator only with `--approval-annotation` (anyone who may edit the MfaProvider may set it).
pub fn annotation_offer(provider: &MfaProvider) -> Option<ApprovalOffer> {
    let digest = provider.annotations().get(APPROVE_REVOCATIONS_ANNOTATION)?;
    let annotation = format!("f:{APPROVE_REVOCATIONS_ANNOTATION}");
    let writer = provider
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry.fields_v1.as_ref().is_some_and(|f| f.0["f:metadata"]["f:annotations"].get(&annotation).is_some())
        })
        .max_by_key(|entry| entry.time.as_ref().map(|t| t.0));
    let approval = Approval {
        digest: digest.clone(),
        manager: writer.and_then(|e| e.manager.clone()),
        time: writer.and_then(|e| e.time.as_ref()).and_then(|t| utc(&t.0)),
        object: None,
    };
    Some(ApprovalOffer { approval, object: None })
}

/// The RevocationApprovals on offer for this provider: those of its namespace that name it,
/// not yet consumed and not being deleted. Who approved: the `keyward.dev/approved-by`
/// annotation, else the field manager that created the object (the first managed-fields
/// entry); when: the object's creation.
pub fn object_offers<A: Borrow<RevocationApproval>>(provider: &MfaProvider, approvals: &[A]) -> Vec<ApprovalOffer> {
    let namespace = provider.namespace();
    let name = provider.name_any();
    approvals
        .iter()
        .map(Borrow::borrow)
        .filter(|a| a.namespace() == namespace && a.spec.provider == name)
        .filter(|a| !a.status.as_ref().is_some_and(|s| s.consumed) && a.metadata.deletion_timestamp.is_none())
        .map(|a| {
            let creator = a.metadata.managed_fields.iter().flatten().next().and_then(|e| e.manager.clone());
            let approval = Approval {
                digest: a.spec.digest.clone(),
                manager: a.annotations().get(APPROVED_BY_ANNOTATION).cloned().or(creator),
                time: a.metadata.creation_timestamp.as_ref().and_then(|t| utc(&t.0)),
                object: Some(a.name_any()),
            };
            ApprovalOffer { approval, object: Some(a.name_any()) }
        })
        .collect()
}

fn utc(t: &k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs())
}

/// The offer that approves the plan `digest`, if any: a RevocationApproval before the
/// annotation, and among objects the oldest (then by name), so that the same one is consumed
/// whichever replica decides.
pub fn approving<'a>(offers: &'a [ApprovalOffer], digest: &str) -> Option<&'a ApprovalOffer> {
    offers
        .iter()
        .filter(|o| o.approval.digest == digest)
        .min_by_key(|o| (o.object.is_none(), o.approval.time, o.object.clone()))
}

/// Revocations made within the window that ends at `now`.
pub fn used(ledger: &[RevocationTally], now: DateTime<Utc>, window: std::time::Duration) -> usize {
    ledger.iter().filter(|t| within(t, now, window)).map(|t| t.count as usize).sum()
}

/// The ledger with `count` revocations made at `now` added and what left the window dropped.
pub fn tally(
    ledger: &[RevocationTally],
    now: DateTime<Utc>,
    count: usize,
    window: std::time::Duration,
) -> Vec<RevocationTally> {
    let mut kept: Vec<RevocationTally> = ledger.iter().filter(|t| within(t, now, window)).cloned().collect();
    if count > 0 {
        kept.push(RevocationTally { time: now, count: u32::try_from(count).unwrap_or(u32::MAX) });
    }
    kept
}

fn within(tally: &RevocationTally, now: DateTime<Utc>, window: std::time::Duration) -> bool {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    // A tally from the future (a skewed clock wrote it) counts: it errs on holding back.
    tally.time > now - window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u32, pct: Option<u32>) -> Budget {
        Budget { max_revocations: max, max_percent: pct, window: None }
    }

    #[test]
    fn within_and_over_the_absolute_limit() {
        assert_eq!(hold(&budget(2, None), 2, 10, false, 0), None);
        assert_eq!(
            hold(&budget(2, None), 3, 10, false, 0),
            Some(Hold::RevocationBudgetExceeded { revocations: 3, limit: 2, used: 0, window: "1h".into() })
        );
    }

    #[test]
    fn percent_is_rounded_down_and_the_stricter_limit_wins() {
        assert_eq!(limit(&budget(25, Some(10)), 19), 1);
        assert_eq!(limit(&budget(1, Some(50)), 100), 1);
        assert!(hold(&budget(25, Some(10)), 2, 19, false, 0).is_some());
    }

    #[test]
    fn empty_declared_state_holds_even_one_revocation() {
        assert_eq!(hold(&budget(25, None), 1, 10, true, 0), Some(Hold::EmptyDeclaredState { revocations: 1 }));
        assert_eq!(hold(&budget(25, None), 0, 10, true, 0), None);
    }

    #[test]
    fn zero_budget_holds_every_revocation() {
        assert!(hold(&budget(0, None), 1, 10, false, 0).is_some());
    }

    fn at(minutes_ago: i64, count: u32) -> RevocationTally {
        RevocationTally { time: now() - chrono::Duration::minutes(minutes_ago), count }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn small_plans_in_one_window_add_up_to_a_hold() {
        // A bad commit applied object by object: 24 revocations already made this hour, so two
        // more go over 25 although the plan itself is small.
        let hour = std::time::Duration::from_secs(3600);
        let ledger = vec![at(50, 10), at(20, 14)];
        assert_eq!(used(&ledger, now(), hour), 24);
        assert_eq!(hold(&budget(25, None), 1, 1000, false, 24), None);
        assert_eq!(
            hold(&budget(25, None), 2, 1000, false, 24),
            Some(Hold::RevocationBudgetExceeded { revocations: 2, limit: 25, used: 24, window: "1h".into() })
        );
    }

    #[test]
    fn revocations_leave_the_window_and_the_ledger() {
        let hour = std::time::Duration::from_secs(3600);
        let ledger = vec![at(61, 20), at(59, 3)];
        assert_eq!(used(&ledger, now(), hour), 3);
        let next = tally(&ledger, now(), 2, hour);
        assert_eq!(next, vec![at(59, 3), at(0, 2)]);
        assert_eq!(tally(&next, now(), 0, hour), next, "nothing revoked: no new entry");
    }

    #[test]
    fn a_tally_from_the_future_still_counts() {
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(used(&[at(-10, 5)], now(), hour), 5);
    }
}

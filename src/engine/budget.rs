//! The revocation budget, the plan digest and approval.

use super::plan::{Action, ActionKind, Hold};
use crate::crd::mfa_provider::Budget;
use sha2::{Digest, Sha256};

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

/// Whether the revocations must wait for approval.
pub fn hold(budget: &Budget, revocations: usize, managed_enrolments: usize, declared_empty: bool) -> Option<Hold> {
    if revocations == 0 {
        return None;
    }
    if declared_empty {
        return Some(Hold::EmptyDeclaredState { revocations });
    }
    let limit = limit(budget, managed_enrolments);
    (revocations > limit).then_some(Hold::RevocationBudgetExceeded { revocations, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u32, pct: Option<u32>) -> Budget {
        Budget { max_revocations: max, max_percent: pct }
    }

    #[test]
    fn within_and_over_the_absolute_limit() {
        assert_eq!(hold(&budget(2, None), 2, 10, false), None);
        assert_eq!(
            hold(&budget(2, None), 3, 10, false),
            Some(Hold::RevocationBudgetExceeded { revocations: 3, limit: 2 })
        );
    }

    #[test]
    fn percent_is_rounded_down_and_the_stricter_limit_wins() {
        assert_eq!(limit(&budget(25, Some(10)), 19), 1);
        assert_eq!(limit(&budget(1, Some(50)), 100), 1);
        assert!(hold(&budget(25, Some(10)), 2, 19, false).is_some());
    }

    #[test]
    fn empty_declared_state_holds_even_one_revocation() {
        assert_eq!(hold(&budget(25, None), 1, 10, true), Some(Hold::EmptyDeclaredState { revocations: 1 }));
        assert_eq!(hold(&budget(25, None), 0, 10, true), None);
    }

    #[test]
    fn zero_budget_holds_every_revocation() {
        assert!(hold(&budget(0, None), 1, 10, false).is_some());
    }
}

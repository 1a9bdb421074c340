//! When an enrolment stopped being entitled, as far as the declared objects tell: the audit
//! record's `trigger`, from which auditors measure the time to revoke.

use super::plan::{Action, Reason};
use crate::crd::{AccessGrant, Employee};
use chrono::{DateTime, Utc};
use kube::ResourceExt;

/// The time in the objects that made `action` due, if they hold one: the deletion of the
/// Employee, the `activeUntil` that passed, the latest `validUntil` that passed among the
/// grants named. Offboarding and role changes carry no time of their own: the operator's
/// observation of the change stands in for them.
pub fn of(
    action: &Action,
    employee: Option<&Employee>,
    grants: &[&AccessGrant],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match action.reason {
        Reason::EmployeeDeleted => {
            let deleted = employee?.metadata.deletion_timestamp.as_ref()?;
            DateTime::from_timestamp(deleted.0.as_second(), deleted.0.subsec_nanosecond().unsigned_abs())
        }
        Reason::EmployeeOutsideActiveWindow => employee?.spec.active_until.filter(|until| *until <= now),
        Reason::GrantExpired => grants
            .iter()
            .filter(|g| action.grants.contains(&g.name_any()))
            .filter_map(|g| g.spec.valid_until)
            .filter(|until| *until <= now)
            .max(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EmployeeState, FactorKind};
    use crate::engine::fixtures::{employee, grant, k8s_time, now};
    use crate::engine::plan::ActionKind;

    fn action(reason: Reason, grants: &[&str]) -> Action {
        Action {
            action: ActionKind::Revoke,
            user: "bob".into(),
            enrolment: "B1".into(),
            kind: FactorKind::new("totp"),
            also: Vec::new(),
            reason,
            employee: Some("bob".into()),
            grants: grants.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn the_time_in_the_objects_that_made_the_revocation_due() {
        let hour = chrono::Duration::hours(1);
        let mut bob = employee("bob", &["dev"], EmployeeState::Active);
        bob.spec.active_until = Some(now() - hour);
        assert_eq!(of(&action(Reason::EmployeeOutsideActiveWindow, &[]), Some(&bob), &[], now()), Some(now() - hour));
        // A window that has not begun has no trigger in the past.
        bob.spec.active_until = Some(now() + hour);
        assert_eq!(of(&action(Reason::EmployeeOutsideActiveWindow, &[]), Some(&bob), &[], now()), None);

        bob.metadata.deletion_timestamp = Some(k8s_time(now() - hour * 2));
        assert_eq!(of(&action(Reason::EmployeeDeleted, &[]), Some(&bob), &[], now()), Some(now() - hour * 2));

        let mut old = grant("old", &["dev"], &[], &["totp"]);
        old.spec.valid_until = Some(now() - hour * 3);
        let mut older = grant("older", &["dev"], &[], &["totp"]);
        older.spec.valid_until = Some(now() - hour * 5);
        let mut unnamed = grant("unnamed", &["dev"], &[], &["totp"]);
        unnamed.spec.valid_until = Some(now() - hour);
        let grants = [&old, &older, &unnamed];
        let expired = action(Reason::GrantExpired, &["old", "older"]);
        assert_eq!(of(&expired, Some(&bob), &grants, now()), Some(now() - hour * 3), "the latest of the grants named");

        assert_eq!(of(&action(Reason::EmployeeOffboarded, &[]), Some(&bob), &grants, now()), None);
    }
}

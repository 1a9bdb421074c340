//! Entitlement: which factor kinds an Employee may hold on one provider at a given time.

use super::plan::Reason;
use crate::crd::{AccessGrant, Employee, EmployeeState, EnrolmentPolicy, FactorKind};
use chrono::{DateTime, Utc};
use kube::ResourceExt;
use std::collections::{BTreeSet, HashMap};

/// Where an Employee stands, before looking at grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Active,
    /// Not entitled to anything; every enrolment is revoked with this reason.
    Revoked(Reason),
}

pub fn standing(employee: &Employee, now: DateTime<Utc>) -> Standing {
    // Deletion wins over every declared state: the finalizer is waiting on these revocations.
    if employee.metadata.deletion_timestamp.is_some() {
        return Standing::Revoked(Reason::EmployeeDeleted);
    }
    match employee.spec.state {
        EmployeeState::Offboarded => return Standing::Revoked(Reason::EmployeeOffboarded),
        EmployeeState::Suspended => return Standing::Revoked(Reason::EmployeeSuspended),
        EmployeeState::Active => {}
    }
    let before = employee.spec.active_from.is_some_and(|from| now < from);
    let after = employee.spec.active_until.is_some_and(|until| now >= until);
    if before || after {
        return Standing::Revoked(Reason::EmployeeOutsideActiveWindow);
    }
    Standing::Active
}

/// The first moment after `now` at which an entitlement changes by the clock alone: an
/// Employee's active window opens or closes, a grant becomes valid or expires. The operator
/// sweeps then, so that a contract's end is enforced within seconds of its time rather than
/// at the next drift sweep.
pub fn next_boundary<'a>(
    employees: impl IntoIterator<Item = &'a Employee>,
    grants: impl IntoIterator<Item = &'a AccessGrant>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let of_employees = employees.into_iter().flat_map(|e| [e.spec.active_from, e.spec.active_until]);
    let of_grants = grants.into_iter().flat_map(|g| [g.spec.valid_from, g.spec.valid_until]);
    of_employees.chain(of_grants).flatten().filter(|t| *t > now).min()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    NotYet,
    Valid,
    Expired,
}

pub fn validity(grant: &AccessGrant, now: DateTime<Utc>) -> Validity {
    if grant.spec.valid_from.is_some_and(|from| now < from) {
        Validity::NotYet
    } else if grant.spec.valid_until.is_some_and(|until| now >= until) {
        Validity::Expired
    } else {
        Validity::Valid
    }
}

pub fn selects(grant: &AccessGrant, employee: &Employee) -> bool {
    let name = employee.name_any();
    grant.spec.subjects.employees.contains(&name)
        || grant.spec.subjects.roles.iter().any(|r| employee.spec.roles.contains(r))
}

/// The grants of one provider by the roles and Employee names they select, so that finding an
/// Employee's grants costs its roles, not the number of grants (200 grants × 100,000 people
/// must not be 20 million comparisons per sweep).
pub struct GrantIndex<'a> {
    grants: Vec<&'a AccessGrant>,
    by_role: HashMap<&'a str, Vec<usize>>,
    by_employee: HashMap<&'a str, Vec<usize>>,
}

impl<'a> GrantIndex<'a> {
    pub fn new(grants: Vec<&'a AccessGrant>) -> Self {
        let mut by_role: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_employee: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, grant) in grants.iter().enumerate() {
            for role in &grant.spec.subjects.roles {
                by_role.entry(role.as_str()).or_default().push(i);
            }
            for name in &grant.spec.subjects.employees {
                by_employee.entry(name.as_str()).or_default().push(i);
            }
        }
        GrantIndex { grants, by_role, by_employee }
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The grants that select `employee` (as [`selects`] says), in their original order.
    pub fn selecting(&self, employee: &Employee) -> Vec<&'a AccessGrant> {
        let name = employee.name_any();
        let mut hits: Vec<usize> = employee
            .spec
            .roles
            .iter()
            .filter_map(|r| self.by_role.get(r.as_str()))
            .chain(self.by_employee.get(name.as_str()))
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|i| self.grants[i]).collect()
    }
}

/// The entitlement of one Employee on one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entitlement {
    /// Kinds the Employee may hold.
    pub allowed: BTreeSet<FactorKind>,
    /// Kinds the Employee is expected to hold (Required grants).
    pub required: BTreeSet<FactorKind>,
    /// Valid grants selecting the Employee, by name.
    pub grants: BTreeSet<String>,
    /// Kinds once granted by a grant that has expired, with that grant's name.
    expired: Vec<(FactorKind, String)>,
}

impl Entitlement {
    /// Computes the entitlement from the grants of the provider (already filtered to it).
    pub fn of(employee: &Employee, grants: &[&AccessGrant], now: DateTime<Utc>) -> Self {
        let mut ent = Entitlement::default();
        let active = standing(employee, now) == Standing::Active;
        for grant in grants.iter().filter(|g| selects(g, employee)) {
            match validity(grant, now) {
                Validity::Valid if active => {
                    ent.grants.insert(grant.name_any());
                    ent.allowed.extend(grant.spec.factors.iter().cloned());
                    if grant.spec.enrolment == EnrolmentPolicy::Required {
                        ent.required.extend(grant.spec.factors.iter().cloned());
                    }
                }
                Validity::Expired => {
                    for kind in &grant.spec.factors {
                        ent.expired.push((kind.clone(), grant.name_any()));
                    }
                }
                Validity::Valid | Validity::NotYet => {}
            }
        }
        ent
    }

    /// Why an enrolment of `kind` held by an Active Employee is not entitled, and the grants
    /// that explain it: an expired grant that gave this kind, or else the grants still held.
    pub fn revocation_reason(&self, kind: &FactorKind) -> (Reason, Vec<String>) {
        let mut expired: Vec<String> = self.expired.iter().filter(|(k, _)| k == kind).map(|(_, g)| g.clone()).collect();
        expired.sort();
        expired.dedup();
        if expired.is_empty() {
            (Reason::NotEntitled, self.grants.iter().cloned().collect())
        } else {
            (Reason::GrantExpired, expired)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::{employee, grant, now};

    #[test]
    fn the_next_boundary_is_the_earliest_window_or_validity_edge_still_ahead() {
        let at = |minutes: i64| now() + chrono::Duration::minutes(minutes);
        let mut ending = employee("erin", &["contractor"], EmployeeState::Active);
        ending.spec.active_from = Some(at(-60));
        ending.spec.active_until = Some(at(30));
        let mut starting = employee("gus", &[], EmployeeState::Active);
        starting.spec.active_from = Some(at(45));
        let mut expiring = grant("otp", &["contractor"], &[], &["totp"]);
        expiring.spec.valid_until = Some(at(20));
        let employees = [ending.clone(), starting];
        assert_eq!(next_boundary(&employees, &[expiring.clone()], now()), Some(at(20)));
        assert_eq!(next_boundary(&employees, &[], now()), Some(at(30)));
        // Edges in the past change nothing any more.
        assert_eq!(next_boundary(&[ending], &[], at(31)), None);
        assert_eq!(next_boundary(&[], &[expiring], at(20)), None);
    }
}

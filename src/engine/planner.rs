//! The planning algorithm. docs/contract.md, "Reconciliation contract", has the rules it
//! implements.

use super::budget;
use super::entitlement::{Entitlement, GrantIndex, Standing, standing};
use super::identity;
use super::inventory::{Capabilities, Enrolment, Inventory, ProviderUser, UNLISTED_KIND};
use super::plan::{
    Action, ActionKind, ApprovalOffer, EmployeeVerdict, EnrolmentDecision, Hold, IdentityConflict, Plan, Reason,
    Verdict,
};
use crate::crd::mfa_provider::{RevocationMode, Scope};
use crate::crd::{AccessGrant, Employee, FactorKind, MfaProvider, ProviderKey};
use chrono::{DateTime, Utc};
use kube::ResourceExt;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

/// Everything the planner looks at. Employees and grants may span namespaces; only those in
/// the provider's namespace (and grants naming this provider) count. They are taken as owned
/// objects or as shared ones (`Arc`, the operator's cache) alike: the operator plans on its
/// cache without copying it.
pub struct PlanInput<'a, E = Employee, G = AccessGrant> {
    pub provider: &'a MfaProvider,
    pub employees: &'a [E],
    pub grants: &'a [G],
    /// The provider's listing, or why it could not be read. A failed read decides nothing:
    /// an error is never taken for "no enrolments".
    pub inventory: Result<&'a Inventory, String>,
    pub capabilities: &'a Capabilities,
    pub now: DateTime<Utc>,
    /// Revocations already made on this provider within the budget window.
    pub revoked_in_window: usize,
    /// Approvals on offer for this provider's held plan ([`budget::object_offers`],
    /// [`budget::annotation_offer`]): one naming the plan's digest lets it through.
    pub approvals: &'a [ApprovalOffer],
}

/// The declared side of one provider, indexed once per plan: every lookup below is by key,
/// so planning stays linear in people × enrolments (plus sorting) however many grants there are.
struct DeclaredSide<'a> {
    employees: Vec<&'a Employee>,
    grants: GrantIndex<'a>,
    protected: BTreeSet<String>,
    /// Employees by the provider user they map to (more than one: an identity conflict).
    claimants: BTreeMap<String, Vec<&'a Employee>>,
    now: DateTime<Utc>,
}

impl<'a> DeclaredSide<'a> {
    fn of<E: Borrow<Employee>, G: Borrow<AccessGrant>>(input: &'a PlanInput<'a, E, G>) -> Self {
        let provider = input.provider;
        let namespace = provider.namespace();
        let provider_name = provider.name_any();
        let employees: Vec<&Employee> =
            input.employees.iter().map(Borrow::borrow).filter(|e| e.namespace() == namespace).collect();
        let grants: Vec<&AccessGrant> = input
            .grants
            .iter()
            .map(Borrow::borrow)
            .filter(|g| g.namespace() == namespace && g.spec.provider == provider_name)
            .collect();
        let protected = provider.spec.protected_users.iter().map(|u| identity::user_key(u)).collect();
        let claimants = identity::index(&employees, provider);
        DeclaredSide { employees, grants: GrantIndex::new(grants), protected, claimants, now: input.now }
    }

    fn entitlement(&self, employee: &Employee) -> Entitlement {
        Entitlement::of(employee, &self.grants.selecting(employee), self.now)
    }
}

pub fn plan<E: Borrow<Employee>, G: Borrow<AccessGrant>>(input: &PlanInput<E, G>) -> Plan {
    plan_with(input, None)
}

/// The plan for the provider users in `target` alone, from a listing of just those users
/// (read one by one). Everything else is decided as [`plan`] decides it, on the same declared
/// state: a targeted plan holds exactly the actions and verdicts a full plan at the same
/// moment holds for those users (a property test keeps it so). Its budget is counted against
/// the full listing's enrolments, and names the full listing showed twice stay conflicts.
pub fn plan_targeted<E: Borrow<Employee>, G: Borrow<AccessGrant>>(input: &PlanInput<E, G>, target: &Target) -> Plan {
    plan_with(input, Some(target))
}

fn plan_with<E: Borrow<Employee>, G: Borrow<AccessGrant>>(input: &PlanInput<E, G>, target: Option<&Target>) -> Plan {
    let provider = input.provider;
    let key = ProviderKey::of(provider);
    let mut plan = empty_plan(&key, provider);
    let inventory = match usable_inventory(input) {
        Ok(inventory) => inventory,
        Err(error) => {
            plan.error = Some(error);
            return plan;
        }
    };
    let declared = DeclaredSide::of(input);
    let mut planner =
        Planner { plan: &mut plan, revocation: provider.spec.policy.revocation, capabilities: input.capabilities };
    plan_listed_users(&mut planner, &declared, provider, inventory, target);
    plan_unlisted_claimants(&mut planner, &declared, provider, inventory, target);
    finish(&mut plan, &key, provider, &declared, input, target);
    plan
}

/// The users a targeted plan is for, and what it keeps from the provider's last full listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Provider user keys ([`identity::user_key`]).
    pub users: BTreeSet<String>,
    /// Enrolments the last full listing held under management: the base of `maxPercent`.
    /// (The targeted listing's own count would make one leaver 100 % of the budget.)
    pub managed_enrolments: usize,
    /// User keys the last full listing showed more than one user under: a per-user read may
    /// return only one of them, and they stay conflicts until a full listing says otherwise.
    pub duplicates: BTreeSet<String>,
}

impl Target {
    fn includes(target: Option<&Target>, user_key: &str) -> bool {
        target.is_none_or(|t| t.users.contains(user_key))
    }
}

fn empty_plan(key: &ProviderKey, provider: &MfaProvider) -> Plan {
    Plan {
        provider: key.to_string(),
        mode: provider.spec.policy.mode,
        actions: Vec::new(),
        digest: budget::digest(key.as_str(), &[]),
        hold: None,
        approved: false,
        approval: None,
        approval_object: None,
        error: None,
        conflicts: Vec::new(),
        employees: Vec::new(),
        managed_users: 0,
        managed_enrolments: 0,
    }
}

/// The listing to plan on, or why nothing can be decided.
fn usable_inventory<'a, E, G>(input: &PlanInput<'a, E, G>) -> Result<&'a Inventory, String> {
    let inventory = match &input.inventory {
        Ok(inventory) => *inventory,
        Err(error) => return Err(format!("provider could not be read, nothing decided: {error}")),
    };
    if input.provider.spec.policy.revocation == RevocationMode::Disable && !input.capabilities.disable {
        return Err("policy.revocation is Disable, but this provider cannot disable enrolments".into());
    }
    Ok(inventory)
}

/// Users the provider lists: declared, conflicting, protected or undeclared.
fn plan_listed_users(
    planner: &mut Planner,
    declared: &DeclaredSide,
    provider: &MfaProvider,
    inventory: &Inventory,
    target: Option<&Target>,
) {
    let observed: BTreeMap<String, &ProviderUser> = inventory
        .users
        .iter()
        .map(|u| (identity::user_key(&u.name), u))
        .filter(|(key, _)| Target::includes(target, key))
        .collect();
    // Names the provider listed more than one user under (`observed` keeps only one of them).
    let mut duplicates = inventory.duplicate_names();
    duplicates.extend(target.iter().flat_map(|t| t.duplicates.iter().cloned()));
    for (user_key, user) in &observed {
        // Protected under any of its names: the name keyward picked depends on which one an
        // Employee maps to, and an Employee sharing the break-glass account's e-mail must not
        // turn its protection off.
        if user.names().any(|n| declared.protected.contains(&identity::user_key(n))) {
            continue;
        }
        if duplicates.contains(user_key) {
            // Which of them an Employee is, or whether one is undeclared, cannot be told: none
            // of them is touched until only one user goes by the name.
            let listed: Vec<&ProviderUser> =
                inventory.users.iter().filter(|u| identity::user_key(&u.name) == *user_key).collect();
            let claimed = declared.claimants.get(user_key).map(Vec::as_slice).unwrap_or_default();
            planner.duplicate(&user.name, &listed, claimed);
            continue;
        }
        match declared.claimants.get(user_key).map(Vec::as_slice) {
            Some([employee]) => {
                let entitlement = declared.entitlement(employee);
                planner.employee(employee, &user.name, Some(user), &entitlement, declared.now);
            }
            Some(many) => planner.conflict(&user.name, user, many),
            None if provider.spec.scope == Scope::All => planner.undeclared(user),
            None => {}
        }
    }
}

/// Declared users the provider does not list (no enrolments yet): only Required enrolments
/// concern them.
fn plan_unlisted_claimants(
    planner: &mut Planner,
    declared: &DeclaredSide,
    provider: &MfaProvider,
    inventory: &Inventory,
    target: Option<&Target>,
) {
    let listed: BTreeSet<String> = inventory.users.iter().map(|u| identity::user_key(&u.name)).collect();
    for (user_key, claimed) in &declared.claimants {
        if listed.contains(user_key) || declared.protected.contains(user_key) || !Target::includes(target, user_key) {
            continue;
        }
        if target.is_some_and(|t| t.duplicates.contains(user_key)) {
            // The full listing showed several users under this name and the per-user read
            // none: still a conflict, never an unlisted user to invite.
            plan_conflict_without_user(planner.plan, user_key, claimed);
            continue;
        }
        match claimed.as_slice() {
            [employee] => {
                let entitlement = declared.entitlement(employee);
                let name = identity::username(employee, provider);
                planner.employee(employee, &name, None, &entitlement, declared.now);
            }
            many => plan_conflict_without_user(planner.plan, user_key, many),
        }
    }
}

/// Sorted actions and their digest; the budget's hold and an approval that lifts it.
fn finish<E, G>(
    plan: &mut Plan,
    key: &ProviderKey,
    provider: &MfaProvider,
    declared: &DeclaredSide,
    input: &PlanInput<E, G>,
    target: Option<&Target>,
) {
    plan.actions.sort();
    plan.employees.sort_by(|a, b| a.employee.cmp(&b.employee));
    plan.conflicts.sort_by(|a, b| a.user.cmp(&b.user));
    plan.digest = budget::digest(key.as_str(), &plan.actions);

    // An empty declared side with users on the provider is far more likely a bad commit or an
    // unsynced cache than a company that let everyone go.
    let declared_empty = declared.employees.is_empty() || declared.grants.is_empty();
    plan.hold = budget::hold(
        &provider.spec.policy.budget,
        plan.revocation_count(),
        target.map_or(plan.managed_enrolments, |t| t.managed_enrolments),
        declared_empty,
        input.revoked_in_window,
    );
    // An approval lets its plan through once: a digest already carried out stays held.
    let consumed = provider.status.as_ref().and_then(|s| s.consumed_approval.as_ref()) == Some(&plan.digest);
    if plan.hold.is_some()
        && !consumed
        && let Some(offer) = budget::approving(input.approvals, &plan.digest)
    {
        plan.hold = None;
        plan.approved = true;
        plan.approval = Some(offer.approval.clone());
        plan.approval_object = offer.object.clone();
    }
    if plan.hold.is_some() {
        for verdict in &mut plan.employees {
            for enrolment in &mut verdict.enrolments {
                if enrolment.verdict == Verdict::RevocationPlanned {
                    enrolment.verdict = Verdict::RevocationBlocked;
                }
            }
        }
    }
}

/// Whether a non-entitled enrolment still needs an action: under `Disable`, a disabled
/// enrolment is already revoked.
fn needs_revocation(revocation: RevocationMode, enrolment: &Enrolment) -> bool {
    enrolment.active || revocation == RevocationMode::Delete
}

fn plan_conflict_without_user(plan: &mut Plan, user: &str, many: &[&Employee]) {
    plan.conflicts
        .push(IdentityConflict { user: user.to_string(), employees: many.iter().map(|e| e.name_any()).collect() });
}

struct Planner<'p> {
    plan: &'p mut Plan,
    revocation: RevocationMode,
    capabilities: &'p Capabilities,
}

impl Planner<'_> {
    fn employee(
        &mut self,
        employee: &Employee,
        user: &str,
        observed: Option<&ProviderUser>,
        entitlement: &Entitlement,
        now: DateTime<Utc>,
    ) {
        let employee_name = employee.name_any();
        let standing = standing(employee, now);
        let mut verdict = EmployeeVerdict {
            employee: employee_name.clone(),
            user: user.to_string(),
            entitled: entitlement.allowed.iter().cloned().collect(),
            enrolments: Vec::new(),
            conflicts_with: Vec::new(),
        };
        let enrolments = observed.map(|u| u.enrolments.as_slice()).unwrap_or_default();
        if observed.is_some() {
            self.plan.managed_users += 1;
            self.plan.managed_enrolments += enrolments.len();
        }
        // Unlisted factors of a user entitled to something are left alone: which ones they are
        // is unknown, and revoking them revokes everything (docs/contract.md, rule 7). One device
        // with several factors is kept when any of them is entitled (a push-only grant must not
        // delete the phone that also receives the entitled SMS codes).
        let kept = |e: &Enrolment| {
            (e.kind.as_str() == UNLISTED_KIND && !entitlement.allowed.is_empty())
                || e.kinds().any(|k| entitlement.allowed.contains(k))
        };
        let kept_ids: BTreeSet<&str> = enrolments.iter().filter(|e| kept(e)).map(|e| e.id.as_str()).collect();
        for enrolment in enrolments {
            if kept(enrolment) {
                verdict.enrolments.push(decision(enrolment, Verdict::Kept, None));
                continue;
            }
            // Its removal would take an entitled enrolment along: withheld, and said so. (Its
            // cascade's unentitled enrolments are planned on their own, each with its record.)
            if enrolment.cascades.iter().any(|id| kept_ids.contains(id.as_str())) {
                verdict.enrolments.push(decision(enrolment, Verdict::CascadeWithheld, None));
                continue;
            }
            let (reason, grants) = match standing {
                Standing::Revoked(reason) => (reason, Vec::new()),
                Standing::Active => entitlement.revocation_reason(&enrolment.kind),
            };
            if !needs_revocation(self.revocation, enrolment) {
                verdict.enrolments.push(decision(enrolment, Verdict::Revoked, Some(reason)));
                continue;
            }
            verdict.enrolments.push(decision(enrolment, Verdict::RevocationPlanned, Some(reason)));
            self.plan.actions.push(Action {
                action: ActionKind::Revoke,
                user: user.to_string(),
                enrolment: enrolment.id.clone(),
                kind: enrolment.kind.clone(),
                also: enrolment.also.clone(),
                reason,
                employee: Some(employee_name.clone()),
                grants,
            });
        }
        self.required_enrolments(&mut verdict, enrolments, entitlement);
        self.plan.employees.push(verdict);
    }

    /// Required kinds with no usable enrolment of that kind: an invitation where the provider
    /// has one, else a pending enrolment.
    fn required_enrolments(
        &mut self,
        verdict: &mut EmployeeVerdict,
        enrolments: &[Enrolment],
        entitlement: &Entitlement,
    ) {
        for kind in &entitlement.required {
            if enrolments.iter().any(|e| e.active && e.provides(kind)) {
                continue;
            }
            verdict.enrolments.push(EnrolmentDecision {
                id: String::new(),
                kind: kind.clone(),
                also: Vec::new(),
                verdict: Verdict::EnrolmentPending,
                reason: None,
            });
            self.plan.actions.push(Action {
                action: if self.can_invite(kind) { ActionKind::Invite } else { ActionKind::Pending },
                user: verdict.user.clone(),
                enrolment: String::new(),
                kind: kind.clone(),
                also: Vec::new(),
                reason: Reason::EnrolmentRequired,
                employee: Some(verdict.employee.clone()),
                grants: entitlement.grants.iter().cloned().collect(),
            });
        }
    }

    fn can_invite(&self, kind: &FactorKind) -> bool {
        self.capabilities.invite.contains(kind)
    }

    /// More than one Employee maps to this user: it is left alone until that is resolved,
    /// because revoking on the word of one claimant could lock out the other.
    fn conflict(&mut self, user: &str, observed: &ProviderUser, claimants: &[&Employee]) {
        let names: Vec<String> = claimants.iter().map(|e| e.name_any()).collect();
        for employee in claimants {
            self.plan.employees.push(EmployeeVerdict {
                employee: employee.name_any(),
                user: user.to_string(),
                entitled: Vec::new(),
                enrolments: observed.enrolments.iter().map(|e| decision(e, Verdict::IdentityConflict, None)).collect(),
                conflicts_with: names.iter().filter(|n| **n != employee.name_any()).cloned().collect(),
            });
        }
        self.plan.conflicts.push(IdentityConflict { user: user.to_string(), employees: names });
    }

    /// More than one provider user goes by this name: all of them are left alone, and every
    /// Employee that maps to the name gets the conflict.
    fn duplicate(&mut self, user: &str, listed: &[&ProviderUser], claimants: &[&Employee]) {
        let names: Vec<String> = claimants.iter().map(|e| e.name_any()).collect();
        let enrolments: Vec<_> = listed
            .iter()
            .flat_map(|u| u.enrolments.iter())
            .map(|e| decision(e, Verdict::IdentityConflict, None))
            .collect();
        for employee in claimants {
            self.plan.employees.push(EmployeeVerdict {
                employee: employee.name_any(),
                user: user.to_string(),
                entitled: Vec::new(),
                enrolments: enrolments.clone(),
                conflicts_with: names.iter().filter(|n| **n != employee.name_any()).cloned().collect(),
            });
        }
        self.plan.conflicts.push(IdentityConflict { user: user.to_string(), employees: names });
    }

    /// `scope: All` and no Employee maps to this user.
    fn undeclared(&mut self, user: &ProviderUser) {
        self.plan.managed_users += 1;
        self.plan.managed_enrolments += user.enrolments.len();
        let revocation = self.revocation;
        for enrolment in user.enrolments.iter().filter(|e| needs_revocation(revocation, e)) {
            self.plan.actions.push(Action {
                action: ActionKind::Revoke,
                user: user.name.clone(),
                enrolment: enrolment.id.clone(),
                kind: enrolment.kind.clone(),
                also: enrolment.also.clone(),
                reason: Reason::UndeclaredUser,
                employee: None,
                grants: Vec::new(),
            });
        }
    }
}

fn decision(enrolment: &Enrolment, verdict: Verdict, reason: Option<Reason>) -> EnrolmentDecision {
    EnrolmentDecision {
        id: enrolment.id.clone(),
        kind: enrolment.kind.clone(),
        also: enrolment.also.clone(),
        verdict,
        reason,
    }
}

/// Convenience for callers that only need to know why revocations wait.
pub fn hold_message(plan: &Plan) -> Option<String> {
    plan.hold.as_ref().map(|h: &Hold| h.message(&plan.digest))
}

#[cfg(test)]
mod duplicate_tests {
    use super::super::fixtures::*;
    use super::super::plan::Verdict;
    use crate::crd::EmployeeState;
    use crate::crd::mfa_provider::Scope;

    /// Two provider users under one name: a conflict, never a guess — neither is revoked from,
    /// whether an Employee maps to the name (offboarded here) or none does (`scope: All`).
    #[test]
    fn two_provider_users_with_one_name_are_an_identity_conflict() {
        let employees = vec![employee("dave", &["sre"], EmployeeState::Offboarded)];
        let grants = vec![grant("sre-otp", &["sre"], &[], &["totp"])];
        let inv = inventory(&[
            ("dave", &[("D1", "totp", true)]),
            ("dave", &[("D2", "totp", true)]),
            ("ghost", &[("G1", "totp", true)]),
            ("Ghost", &[("G2", "totp", true)]),
        ]);
        let mut p = provider();
        p.spec.scope = Scope::All;
        let plan = planned(&p, &employees, &grants, &inv);
        assert_eq!(plan.revocations().count(), 0, "{:?}", plan.actions);
        let users: Vec<&str> = plan.conflicts.iter().map(|c| c.user.as_str()).collect();
        assert_eq!(users, ["Ghost", "dave"]);
        let dave = plan.employees.iter().find(|v| v.employee == "dave").expect("dave");
        let verdicts: Vec<(&str, Verdict)> = dave.enrolments.iter().map(|e| (e.id.as_str(), e.verdict)).collect();
        assert_eq!(verdicts, [("D1", Verdict::IdentityConflict), ("D2", Verdict::IdentityConflict)]);
    }
}

#[cfg(test)]
mod unlisted_tests {
    use super::super::fixtures::*;
    use super::super::plan::{Reason, Verdict};
    use super::UNLISTED_KIND;
    use crate::crd::EmployeeState;

    #[test]
    fn unlisted_factors_are_revoked_only_from_users_entitled_to_nothing() {
        let employees = vec![
            employee("alice", &["sre"], EmployeeState::Active),
            employee("dave", &["sre"], EmployeeState::Offboarded),
            employee("frank", &["support"], EmployeeState::Active),
        ];
        let grants = vec![grant("sre-otp", &["sre"], &[], &["totp"])];
        let inv = inventory(&[
            ("alice", &[("A1", "totp", true), ("reset", UNLISTED_KIND, true)]),
            ("dave", &[("reset", UNLISTED_KIND, true)]),
            ("frank", &[("reset", UNLISTED_KIND, true)]),
        ]);
        let p = planned(&provider(), &employees, &grants, &inv);
        let revoked: Vec<(&str, Reason)> = p.revocations().map(|a| (a.user.as_str(), a.reason)).collect();
        assert_eq!(revoked, [("dave", Reason::EmployeeOffboarded), ("frank", Reason::NotEntitled)]);
        let alice = p.employees.iter().find(|v| v.employee == "alice").expect("alice");
        assert!(alice.enrolments.iter().all(|e| e.verdict == Verdict::Kept), "{alice:?}");
    }
}

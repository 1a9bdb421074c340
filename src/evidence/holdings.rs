//! Current holdings — the access review itself: who holds which factor on a provider and the
//! grant that entitles it — and the enrolments held without one (nobody declared the user,
//! a protected break-glass account, an Employee holding what no grant gives, an identity
//! conflict). Computed from one live listing and the engine's plan for it; nothing here acts.

use crate::crd::mfa_provider::{Mode, Scope};
use crate::crd::{AccessGrant, Employee, MfaProvider};
use crate::engine::entitlement::{Validity, selects, validity};
use crate::engine::identity::user_key;
use crate::engine::inventory::UNLISTED_KIND;
use crate::engine::plan::{EmployeeVerdict, Verdict};
use crate::engine::{Enrolment, Inventory, Plan, ProviderUser};
use chrono::{DateTime, Utc};
use kube::ResourceExt;
use serde::Serialize;
use std::collections::BTreeMap;

/// One entitled enrolment and the grants behind it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Holding {
    pub provider: String,
    pub employee: String,
    pub user: String,
    /// The kind and the further kinds the enrolment provides: `push+sms`.
    pub kind: String,
    pub enrolment: String,
    /// Valid AccessGrants that select the Employee and give one of the enrolment's kinds.
    pub grants: Vec<String>,
    pub note: Option<String>,
}

/// Why an enrolment is held without a grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// No Employee maps to the provider user.
    #[default]
    UndeclaredUser,
    /// `protectedUsers`: never revoked (break-glass accounts); reviewed here instead.
    ProtectedUser,
    /// An Employee holds a kind no valid grant gives them.
    NotEntitled,
    /// More than one Employee (or provider user) goes by the name: left alone.
    IdentityConflict,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::UndeclaredUser => "undeclared-user",
            Category::ProtectedUser => "protected-user",
            Category::NotEntitled => "not-entitled",
            Category::IdentityConflict => "identity-conflict",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Unentitled {
    pub provider: String,
    pub category: Category,
    pub user: String,
    /// The Employee(s) the user maps to, if any.
    pub employee: Option<String>,
    pub kind: String,
    pub enrolment: String,
    /// The revocation reason the engine gives, where it revokes.
    pub reason: Option<String>,
    /// What keyward does about it.
    pub status: String,
}

/// One provider's live read: the declared state, the listing and the plan made from both.
pub struct LiveRead<'a> {
    pub provider: &'a MfaProvider,
    pub employees: &'a [Employee],
    pub grants: &'a [AccessGrant],
    pub inventory: &'a Inventory,
    pub plan: &'a Plan,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Review {
    pub holdings: Vec<Holding>,
    pub unentitled: Vec<Unentitled>,
}

/// Every enrolment the provider listed, as a holding or as held without a grant.
pub fn review(read: &LiveRead) -> Review {
    let mut verdicts: BTreeMap<String, Vec<&EmployeeVerdict>> = BTreeMap::new();
    for verdict in &read.plan.employees {
        verdicts.entry(user_key(&verdict.user)).or_default().push(verdict);
    }
    let protected: Vec<String> = read.provider.spec.protected_users.iter().map(|u| user_key(u)).collect();
    let mut review = Review::default();
    let mut users: Vec<&ProviderUser> = read.inventory.users.iter().collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    for user in users {
        let key = user_key(&user.name);
        for enrolment in &user.enrolments {
            if protected.contains(&key) {
                review.unentitled.push(unentitled(
                    read,
                    user,
                    enrolment,
                    Category::ProtectedUser,
                    None,
                    None,
                    "never revoked: protected user",
                ));
                continue;
            }
            match verdicts.get(&key).map(Vec::as_slice) {
                Some([verdict]) => declared(read, user, enrolment, verdict, &mut review),
                Some(many) => {
                    let names = many.iter().map(|v| v.employee.as_str()).collect::<Vec<_>>().join(", ");
                    review.unentitled.push(conflict(read, user, enrolment, Some(names)));
                }
                None if read.plan.conflicts.iter().any(|c| user_key(&c.user) == key) => {
                    review.unentitled.push(conflict(read, user, enrolment, None));
                }
                None => review.unentitled.push(undeclared(read, user, enrolment)),
            }
        }
    }
    review
}

/// An enrolment of a user one Employee maps to, by the engine's verdict on it.
fn declared(
    read: &LiveRead,
    user: &ProviderUser,
    enrolment: &Enrolment,
    verdict: &EmployeeVerdict,
    review: &mut Review,
) {
    let Some(decision) = verdict.enrolments.iter().find(|d| d.id == enrolment.id) else { return };
    let employee = Some(verdict.employee.clone());
    let reason = decision.reason.map(|r| r.to_string());
    let status = match decision.verdict {
        Verdict::Kept => {
            review.holdings.push(holding(read, user, enrolment, verdict));
            return;
        }
        // Disabled already under `revocation: Disable`: revoked, not held.
        Verdict::Revoked | Verdict::EnrolmentPending => return,
        Verdict::RevocationPlanned if read.plan.mode == Mode::Observe => "Observe mode: would be revoked".to_string(),
        Verdict::RevocationPlanned => "revocation planned".to_string(),
        Verdict::RevocationObserved => "Observe mode: would be revoked".to_string(),
        Verdict::RevocationBlocked => format!("revocation held: plan {} waits for approval", read.plan.digest),
        Verdict::CascadeWithheld => "kept: removing it would take an entitled enrolment along".to_string(),
        Verdict::IdentityConflict => {
            review.unentitled.push(conflict(read, user, enrolment, employee));
            return;
        }
    };
    review.unentitled.push(unentitled(read, user, enrolment, Category::NotEntitled, employee, reason, &status));
}

fn conflict(read: &LiveRead, user: &ProviderUser, enrolment: &Enrolment, employees: Option<String>) -> Unentitled {
    let status = "left alone until the identity conflict is resolved";
    unentitled(read, user, enrolment, Category::IdentityConflict, employees, None, status)
}

fn undeclared(read: &LiveRead, user: &ProviderUser, enrolment: &Enrolment) -> Unentitled {
    let planned = read.plan.revocations().find(|a| a.user == user.name && a.enrolment == enrolment.id);
    let status = match planned {
        Some(_) if read.plan.mode == Mode::Observe => "Observe mode: would be revoked".to_string(),
        Some(_) if read.plan.blocked() => format!("revocation held: plan {} waits for approval", read.plan.digest),
        Some(_) => "revocation planned".to_string(),
        None if read.provider.spec.scope == Scope::Declared => "not managed (scope: Declared)".to_string(),
        None => "not revoked: already disabled".to_string(),
    };
    let reason = planned.map(|a| a.reason.to_string());
    unentitled(read, user, enrolment, Category::UndeclaredUser, None, reason, &status)
}

fn unentitled(
    read: &LiveRead,
    user: &ProviderUser,
    enrolment: &Enrolment,
    category: Category,
    employee: Option<String>,
    reason: Option<String>,
    status: &str,
) -> Unentitled {
    Unentitled {
        provider: read.plan.provider.clone(),
        category,
        user: user.name.clone(),
        employee,
        kind: kinds(enrolment),
        enrolment: enrolment.id.clone(),
        reason,
        status: with_notes(status.to_string(), user, enrolment),
    }
}

fn holding(read: &LiveRead, user: &ProviderUser, enrolment: &Enrolment, verdict: &EmployeeVerdict) -> Holding {
    let namespace = read.provider.namespace();
    let provider_name = read.provider.name_any();
    let employee = read.employees.iter().find(|e| e.namespace() == namespace && e.name_any() == verdict.employee);
    let mut grants: Vec<String> = read
        .grants
        .iter()
        .filter(|g| g.namespace() == namespace && g.spec.provider == provider_name)
        .filter(|g| employee.is_some_and(|e| selects(g, e)) && validity(g, read.now) == Validity::Valid)
        .filter(|g| g.spec.factors.iter().any(|k| enrolment.provides(k)))
        .map(|g| g.name_any())
        .collect();
    grants.sort();
    let note = (enrolment.kind.as_str() == UNLISTED_KIND).then(|| {
        let entitled = verdict.entitled.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ");
        format!("factors the provider does not itemize, kept for a user entitled to {entitled}")
    });
    let note = match (note, notes(user, enrolment)) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    Holding {
        provider: read.plan.provider.clone(),
        employee: verdict.employee.clone(),
        user: user.name.clone(),
        kind: kinds(enrolment),
        enrolment: enrolment.id.clone(),
        grants,
        note,
    }
}

/// `totp`, or `push+sms` for an enrolment that provides several kinds.
fn kinds(enrolment: &Enrolment) -> String {
    enrolment.kinds().map(|k| k.to_string()).collect::<Vec<_>>().join("+")
}

/// What the listing says besides the kind: a disabled enrolment, a user gone from the
/// directory whose enrolments remain.
fn notes(user: &ProviderUser, enrolment: &Enrolment) -> Option<String> {
    let mut notes = Vec::new();
    if !enrolment.active {
        notes.push("disabled at the provider");
    }
    if !user.in_directory {
        notes.push("user no longer in the directory");
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

fn with_notes(status: String, user: &ProviderUser, enrolment: &Enrolment) -> String {
    match notes(user, enrolment) {
        Some(notes) => format!("{status} ({notes})"),
        None => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EmployeeState;
    use crate::engine::fixtures::{employee, grant, inventory, now, planned, provider};

    fn review_of(provider: &MfaProvider, employees: &[Employee], grants: &[AccessGrant], inv: &Inventory) -> Review {
        let plan = planned(provider, employees, grants, inv);
        review(&LiveRead { provider, employees, grants, inventory: inv, plan: &plan, now: now() })
    }

    #[test]
    fn kept_enrolments_are_holdings_with_the_grants_that_give_their_kind() {
        let employees = vec![
            employee("alice", &["sre", "dev"], EmployeeState::Active),
            employee("bob", &["dev"], EmployeeState::Active),
        ];
        let mut expired = grant("old-otp", &["dev"], &[], &["hotp"]);
        expired.spec.valid_until = Some(now() - chrono::Duration::days(1));
        let grants = vec![
            grant("sre-otp", &["sre"], &[], &["totp", "hotp"]),
            grant("dev-totp", &["dev"], &[], &["totp"]),
            grant("bob-hotp", &[], &["bob"], &["hotp"]),
            expired,
        ];
        let inv = inventory(&[
            ("alice", &[("A1", "totp", true), ("A2", "hotp", true)]),
            ("bob", &[("B1", "totp", true), ("B2", "hotp", false)]),
        ]);
        let got = review_of(&provider(), &employees, &grants, &inv);
        assert!(got.unentitled.is_empty(), "{:?}", got.unentitled);
        let rows: Vec<(&str, &str, Vec<&str>, Option<&str>)> = got
            .holdings
            .iter()
            .map(|h| {
                (h.user.as_str(), h.kind.as_str(), h.grants.iter().map(String::as_str).collect(), h.note.as_deref())
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("alice", "totp", vec!["dev-totp", "sre-otp"], None),
                ("alice", "hotp", vec!["sre-otp"], None),
                ("bob", "totp", vec!["dev-totp"], None),
                ("bob", "hotp", vec!["bob-hotp"], Some("disabled at the provider")),
            ]
        );
    }

    #[test]
    fn enrolments_without_a_grant_say_why_and_what_keyward_does() {
        let employees = vec![
            employee("bob", &["dev"], EmployeeState::Active),
            employee("dave", &["dev"], EmployeeState::Offboarded),
        ];
        let grants = vec![grant("dev-totp", &["dev"], &[], &["totp"])];
        let mut inv = inventory(&[
            ("bob", &[("B1", "totp", true), ("B2", "hotp", true)]),
            ("dave", &[("D1", "totp", true)]),
            ("breakglass", &[("G1", "totp", true)]),
            ("mallory", &[("M1", "totp", true)]),
        ]);
        inv.users[1].in_directory = false;
        let mut p = provider();
        p.spec.protected_users = vec!["breakglass".into()];
        let rows = |got: &Review| -> Vec<(String, Category, String)> {
            got.unentitled.iter().map(|u| (u.user.clone(), u.category, u.status.clone())).collect()
        };

        let declared = review_of(&p, &employees, &grants, &inv);
        assert_eq!(declared.holdings.len(), 1, "{:?}", declared.holdings);
        assert_eq!(
            rows(&declared),
            [
                ("bob".into(), Category::NotEntitled, "revocation planned".into()),
                ("breakglass".into(), Category::ProtectedUser, "never revoked: protected user".into()),
                ("dave".into(), Category::NotEntitled, "revocation planned (user no longer in the directory)".into()),
                ("mallory".into(), Category::UndeclaredUser, "not managed (scope: Declared)".into()),
            ]
        );
        let reasons: Vec<Option<&str>> = declared.unentitled.iter().map(|u| u.reason.as_deref()).collect();
        assert_eq!(reasons, [Some("NotEntitled"), None, Some("EmployeeOffboarded"), None]);

        p.spec.scope = Scope::All;
        let all = review_of(&p, &employees, &grants, &inv);
        assert_eq!(all.unentitled[3].status, "revocation planned");
        assert_eq!(all.unentitled[3].reason.as_deref(), Some("UndeclaredUser"));

        p.spec.policy.mode = Mode::Observe;
        let observed = review_of(&p, &employees, &grants, &inv);
        assert!(
            observed
                .unentitled
                .iter()
                .filter(|u| u.category != Category::ProtectedUser)
                .all(|u| u.status.starts_with("Observe mode"))
        );

        p.spec.policy.mode = Mode::Enforce;
        p.spec.policy.budget.max_revocations = 1;
        let held = review_of(&p, &employees, &grants, &inv);
        assert!(held.unentitled[0].status.starts_with("revocation held: plan "), "{:?}", held.unentitled[0]);
    }

    #[test]
    fn a_user_two_employees_claim_is_an_identity_conflict_for_both() {
        let mut twin = employee("frank-two", &["dev"], EmployeeState::Active);
        twin.spec.identities = vec![crate::crd::Identity { provider: "corp-pi".into(), username: "frank".into() }];
        let employees = vec![employee("frank", &["dev"], EmployeeState::Active), twin];
        let grants = vec![grant("dev-totp", &["dev"], &[], &["totp"])];
        let inv = inventory(&[("frank", &[("F1", "totp", true)])]);
        let got = review_of(&provider(), &employees, &grants, &inv);
        assert!(got.holdings.is_empty());
        let [row] = got.unentitled.as_slice() else { panic!("one row: {:?}", got.unentitled) };
        assert_eq!((row.category, row.employee.as_deref()), (Category::IdentityConflict, Some("frank, frank-two")));
    }
}

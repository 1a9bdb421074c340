//! Property tests for the planner's invariants over random declared states and inventories.

use super::entitlement::Entitlement;
use super::fixtures::*;
use super::plan::{ActionKind, Plan};
use super::{Inventory, ProviderUser};
use crate::crd::mfa_provider::{RevocationMode, Scope};
use crate::crd::*;
use chrono::Duration;
use proptest::prelude::*;
use proptest::sample::subsequence;

const ROLES: &[&str] = &["sre", "dev", "finance"];
const KINDS: &[&str] = &["totp", "hotp", "webauthn", "sms"];
const USERS: &[&str] = &["e0", "e1", "e2", "e3", "e4", "stranger", "breakglass"];

fn window() -> impl Strategy<Value = (Option<i64>, Option<i64>)> {
    prop_oneof![
        Just((None, None)),
        Just((Some(-10), None)),
        Just((None, Some(-1))),
        Just((Some(1), Some(5))),
        Just((None, Some(3)))
    ]
}

fn state() -> impl Strategy<Value = EmployeeState> {
    prop_oneof![
        4 => Just(EmployeeState::Active),
        1 => Just(EmployeeState::Suspended),
        1 => Just(EmployeeState::Offboarded)
    ]
}

fn employees() -> impl Strategy<Value = Vec<Employee>> {
    prop::collection::vec((subsequence(ROLES, 0..=2), state(), window(), any::<bool>(), any::<bool>()), 5).prop_map(
        |specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (roles, state, (from, until), deleting, alias))| {
                    let mut e = employee(&format!("e{i}"), &roles, state);
                    e.spec.active_from = from.map(|d| now() + Duration::days(d));
                    e.spec.active_until = until.map(|d| now() + Duration::days(d));
                    if deleting && i == 4 {
                        e.metadata.deletion_timestamp = Some(k8s_time(now()));
                    }
                    // e3 sometimes claims e2's user: an identity conflict.
                    if alias && i == 3 {
                        e.spec.identities = vec![Identity { provider: "corp-pi".into(), username: "e2".into() }];
                    }
                    e
                })
                .collect()
        },
    )
}

fn grants() -> impl Strategy<Value = Vec<AccessGrant>> {
    let one = (
        subsequence(ROLES, 0..=2),
        subsequence(&["e0", "e1", "e2", "e3", "e4"][..], 0..=2),
        subsequence(KINDS, 1..=3),
        window(),
        any::<bool>(),
    );
    prop::collection::vec(one, 0..4).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (roles, names, kinds, (from, until), required))| {
                let mut g = grant(&format!("g{i}"), &roles, &names, &kinds);
                g.spec.valid_from = from.map(|d| now() + Duration::days(d));
                g.spec.valid_until = until.map(|d| now() + Duration::days(d));
                if required {
                    g.spec.enrolment = EnrolmentPolicy::Required;
                }
                g
            })
            .collect()
    })
}

fn inventories() -> impl Strategy<Value = Inventory> {
    let enrolments = prop::collection::vec((prop::sample::select(KINDS), any::<bool>()), 0..4);
    (subsequence(USERS, 0..=USERS.len()), prop::collection::vec(enrolments, USERS.len())).prop_map(
        |(users, enrolments)| {
            let mut serial = 0;
            Inventory {
                users: users
                    .into_iter()
                    .zip(enrolments)
                    .map(|(user, list)| ProviderUser {
                        aliases: Vec::new(),
                        name: user.to_string(),
                        in_directory: true,
                        enrolments: list
                            .into_iter()
                            .map(|(kind, active)| {
                                serial += 1;
                                super::Enrolment::new(format!("S{serial:03}"), FactorKind::new(kind), active)
                            })
                            .collect(),
                    })
                    .collect(),
            }
        },
    )
}

fn providers() -> impl Strategy<Value = MfaProvider> {
    (any::<bool>(), any::<bool>(), any::<bool>(), 0u32..30).prop_map(|(all, disable, protect_e0, budget)| {
        let mut p = provider();
        p.spec.scope = if all { Scope::All } else { Scope::Declared };
        p.spec.policy.revocation = if disable { RevocationMode::Disable } else { RevocationMode::Delete };
        p.spec.protected_users =
            if protect_e0 { vec!["breakglass".into(), "E0".into()] } else { vec!["breakglass".into()] };
        p.spec.policy.budget.max_revocations = budget;
        p
    })
}

/// What the provider looks like after the plan's revocations were carried out.
fn carry_out(plan: &Plan, inv: &Inventory, mode: RevocationMode) -> Inventory {
    let revoked: Vec<&str> = plan.revocations().map(|a| a.enrolment.as_str()).collect();
    let mut after = inv.clone();
    for user in &mut after.users {
        match mode {
            RevocationMode::Delete => user.enrolments.retain(|e| !revoked.contains(&e.id.as_str())),
            RevocationMode::Disable => {
                for e in user.enrolments.iter_mut().filter(|e| revoked.contains(&e.id.as_str())) {
                    e.active = false;
                }
            }
        }
    }
    after
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_entitled_enrolment_is_ever_revoked(p in providers(), es in employees(), gs in grants(), inv in inventories()) {
        let plan = planned(&p, &es, &gs, &inv);
        let grant_refs: Vec<&AccessGrant> = gs.iter().collect();
        for action in plan.revocations() {
            let Some(name) = &action.employee else { continue };
            let e = es.iter().find(|e| e.metadata.name.as_deref() == Some(name.as_str())).unwrap();
            let ent = Entitlement::of(e, &grant_refs, now());
            prop_assert!(!ent.allowed.contains(&action.kind), "{action:?} is entitled");
        }
        // And no user that an Employee claims is revoked as undeclared.
        for action in plan.revocations().filter(|a| a.employee.is_none()) {
            prop_assert!(!es.iter().any(|e| super::identity::username(e, &p).eq_ignore_ascii_case(&action.user)), "{action:?}");
        }
    }

    #[test]
    fn protected_users_are_never_touched(p in providers(), es in employees(), gs in grants(), inv in inventories()) {
        let plan = planned(&p, &es, &gs, &inv);
        for action in &plan.actions {
            prop_assert!(!p.spec.protected_users.iter().any(|u| u.eq_ignore_ascii_case(&action.user)), "{action:?}");
        }
    }

    #[test]
    fn the_plan_is_deterministic(p in providers(), es in employees(), gs in grants(), inv in inventories()) {
        let plan = planned(&p, &es, &gs, &inv);
        let mut es2 = es.clone();
        es2.reverse();
        let mut gs2 = gs.clone();
        gs2.reverse();
        let mut inv2 = inv.clone();
        inv2.users.reverse();
        for u in &mut inv2.users {
            u.enrolments.reverse();
        }
        let again = planned(&p, &es2, &gs2, &inv2);
        prop_assert_eq!(&plan.actions, &again.actions);
        prop_assert_eq!(&plan.digest, &again.digest);
        prop_assert_eq!(&plan.hold, &again.hold);
        prop_assert_eq!(plan, planned(&p, &es, &gs, &inv));
    }

    #[test]
    fn applying_a_plan_then_planning_again_revokes_nothing(p in providers(), es in employees(), gs in grants(), inv in inventories()) {
        let first = planned(&p, &es, &gs, &inv);
        let after = carry_out(&first, &inv, p.spec.policy.revocation);
        let second = planned(&p, &es, &gs, &after);
        prop_assert_eq!(second.revocation_count(), 0, "{:?}", second.actions);
        // Invitations and pending enrolments are not revocations and may remain.
        prop_assert!(second.actions.iter().all(|a| a.action != ActionKind::Revoke));
    }

    #[test]
    fn conflicting_users_are_left_alone(p in providers(), es in employees(), gs in grants(), inv in inventories()) {
        let plan = planned(&p, &es, &gs, &inv);
        for conflict in &plan.conflicts {
            prop_assert!(plan.actions.iter().all(|a| !a.user.eq_ignore_ascii_case(&conflict.user)));
        }
    }

    /// The index the planner finds an Employee's grants with selects exactly the grants
    /// `selects` does, in the same order.
    #[test]
    fn the_grant_index_selects_what_selects_does(es in employees(), gs in grants()) {
        let index = super::entitlement::GrantIndex::new(gs.iter().collect());
        for e in &es {
            let indexed: Vec<&str> = index.selecting(e).iter().map(|g| g.metadata.name.as_deref().unwrap_or_default()).collect();
            let scanned: Vec<&str> = gs
                .iter()
                .filter(|g| super::entitlement::selects(g, e))
                .map(|g| g.metadata.name.as_deref().unwrap_or_default())
                .collect();
            prop_assert_eq!(indexed, scanned);
        }
    }

    /// The operator plans on shared objects (its cache), the CLI on owned ones: same plan.
    #[test]
    fn shared_and_owned_objects_plan_alike(p in providers(), es in employees(), gs in grants(), inv in inventories()) {
        let shared_es: Vec<std::sync::Arc<crate::crd::Employee>> = es.iter().cloned().map(std::sync::Arc::new).collect();
        let shared_gs: Vec<std::sync::Arc<AccessGrant>> = gs.iter().cloned().map(std::sync::Arc::new).collect();
        let shared = super::plan(&super::PlanInput {
            provider: &p,
            employees: &shared_es,
            grants: &shared_gs,
            inventory: Ok(&inv),
            capabilities: &super::fixtures::capabilities(),
            now: now(),
            revoked_in_window: 0,
            approvals: &[],
        });
        prop_assert_eq!(shared, planned(&p, &es, &gs, &inv));
    }

    /// A targeted sweep plans the users it targets from their own listing, exactly
    /// as a full sweep at the same moment plans them — the same revocations and verdicts for
    /// them, never one the full plan would not make, and no hold the full plan would not have
    /// (a held full plan is what an approval names).
    #[test]
    fn a_targeted_plan_agrees_with_the_full_plan_on_its_users(
        p in providers(),
        es in employees(),
        gs in grants(),
        inv in inventories(),
        targeted in subsequence(USERS, 0..=USERS.len()),
        used in 0usize..10,
    ) {
        let capabilities = super::fixtures::capabilities();
        let input = |inventory| super::PlanInput {
            provider: &p,
            employees: &es,
            grants: &gs,
            inventory: Ok(inventory),
            capabilities: &capabilities,
            now: now(),
            revoked_in_window: used,
            approvals: &[],
        };
        let full = super::plan(&input(&inv));
        let users: std::collections::BTreeSet<String> = targeted.iter().map(|u| super::identity::user_key(u)).collect();
        // What a per-user read of those users returns.
        let listed = Inventory {
            users: inv.users.iter().filter(|u| users.contains(&super::identity::user_key(&u.name))).cloned().collect(),
        };
        let target = super::Target { users: users.clone(), managed_enrolments: full.managed_enrolments, duplicates: inv.duplicate_names() };
        let part = super::plan_targeted(&input(&listed), &target);

        let mine = |plan: &Plan| -> Vec<super::Action> {
            plan.actions.iter().filter(|a| users.contains(&super::identity::user_key(&a.user))).cloned().collect()
        };
        prop_assert_eq!(&part.actions, &mine(&full), "the targeted plan's actions are the full plan's for its users");
        prop_assert!(part.actions.iter().all(|a| users.contains(&super::identity::user_key(&a.user))));
        if full.hold.is_none() {
            prop_assert_eq!(&part.hold, &None, "held where the full plan is not");
        }
        let verdicts = |plan: &Plan| -> Vec<super::plan::EmployeeVerdict> {
            plan.employees.iter().filter(|v| users.contains(&super::identity::user_key(&v.user))).cloned().collect()
        };
        // Held verdicts differ only by the hold itself (planned vs blocked).
        if part.hold.is_none() && full.hold.is_none() {
            prop_assert_eq!(verdicts(&part), verdicts(&full));
        }
        let conflicts = |plan: &Plan| -> Vec<super::plan::IdentityConflict> {
            plan.conflicts.iter().filter(|c| users.contains(&super::identity::user_key(&c.user))).cloned().collect()
        };
        prop_assert_eq!(conflicts(&part), conflicts(&full));
    }
}

//! One test per rule of the reconciliation contract (docs/contract.md, rules 1–7).

use super::fixtures::*;
use super::plan::{ActionKind, Hold, Plan, Reason, Verdict};
use super::{Capabilities, Enrolment, Inventory, PlanInput, ProviderUser, plan};
use crate::crd::mfa_provider::{Mode, RevocationMode, Scope};
use crate::crd::*;
use chrono::Duration;

/// `(user, enrolment, reason)` of every revocation.
fn revoked(plan: &Plan) -> Vec<(String, String, Reason)> {
    plan.revocations().map(|a| (a.user.clone(), a.enrolment.clone(), a.reason)).collect()
}

fn r(user: &str, id: &str, reason: Reason) -> (String, String, Reason) {
    (user.into(), id.into(), reason)
}

fn team() -> (Vec<Employee>, Vec<AccessGrant>) {
    (
        vec![employee("alice", &["sre"], EmployeeState::Active), employee("bob", &["dev"], EmployeeState::Active)],
        vec![grant("sre-otp", &["sre"], &[], &["totp", "hotp"]), grant("bob-key", &[], &["bob"], &["webauthn"])],
    )
}

#[test]
fn entitlement_is_the_union_over_roles_and_names() {
    let (employees, grants) = team();
    let inv = inventory(&[
        ("alice", &[("A1", "totp", true), ("A2", "hotp", true), ("A3", "webauthn", true)]),
        ("bob", &[("B1", "webauthn", true), ("B2", "totp", true)]),
    ]);
    let p = planned(&provider(), &employees, &grants, &inv);
    assert_eq!(revoked(&p), vec![r("alice", "A3", Reason::NotEntitled), r("bob", "B2", Reason::NotEntitled)]);
    let alice = p.employees.iter().find(|v| v.employee == "alice").unwrap();
    assert_eq!(alice.entitled, vec![FactorKind::new("hotp"), FactorKind::new("totp")]);
    assert_eq!(p.managed_users, 2);
    assert_eq!(p.managed_enrolments, 5);
}

#[test]
fn each_state_revokes_everything_with_its_reason() {
    let grants = vec![grant("all-otp", &["sre"], &[], &["totp"])];
    let mut windowed_past = employee("dora", &["sre"], EmployeeState::Active);
    windowed_past.spec.active_until = Some(now() - Duration::days(1));
    let mut windowed_future = employee("erin", &["sre"], EmployeeState::Active);
    windowed_future.spec.active_from = Some(now() + Duration::days(1));
    let mut deleted = employee("fred", &["sre"], EmployeeState::Active);
    deleted.metadata.deletion_timestamp = Some(k8s_time(now()));
    let employees = vec![
        employee("bea", &["sre"], EmployeeState::Offboarded),
        employee("cal", &["sre"], EmployeeState::Suspended),
        windowed_past,
        windowed_future,
        deleted,
    ];
    let inv = inventory(&[
        ("bea", &[("1", "totp", true)]),
        ("cal", &[("2", "totp", true)]),
        ("dora", &[("3", "totp", true)]),
        ("erin", &[("4", "totp", true)]),
        ("fred", &[("5", "totp", true)]),
    ]);
    let p = planned(&provider(), &employees, &grants, &inv);
    assert_eq!(
        revoked(&p),
        vec![
            r("bea", "1", Reason::EmployeeOffboarded),
            r("cal", "2", Reason::EmployeeSuspended),
            r("dora", "3", Reason::EmployeeOutsideActiveWindow),
            r("erin", "4", Reason::EmployeeOutsideActiveWindow),
            r("fred", "5", Reason::EmployeeDeleted),
        ]
    );
}

#[test]
fn the_window_end_is_exclusive_and_the_start_inclusive() {
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let mut starts_now = employee("a", &["sre"], EmployeeState::Active);
    starts_now.spec.active_from = Some(now());
    let mut ends_now = employee("b", &["sre"], EmployeeState::Active);
    ends_now.spec.active_until = Some(now());
    let inv = inventory(&[("a", &[("1", "totp", true)]), ("b", &[("2", "totp", true)])]);
    let p = planned(&provider(), &[starts_now, ends_now], &grants, &inv);
    assert_eq!(revoked(&p), vec![r("b", "2", Reason::EmployeeOutsideActiveWindow)]);
}

#[test]
fn an_expired_grant_revokes_as_grant_expired_and_a_future_one_entitles_nothing_yet() {
    let mut expired = grant("contractor-otp", &["contractor"], &[], &["totp"]);
    expired.spec.valid_until = Some(now() - Duration::hours(1));
    let mut future = grant("future-key", &["contractor"], &[], &["webauthn"]);
    future.spec.valid_from = Some(now() + Duration::hours(1));
    let employees = vec![employee("carl", &["contractor"], EmployeeState::Active)];
    let inv = inventory(&[("carl", &[("T1", "totp", true), ("W1", "webauthn", true)])]);
    let p = planned(&provider(), &employees, &[expired, future], &inv);
    assert_eq!(revoked(&p), vec![r("carl", "T1", Reason::GrantExpired), r("carl", "W1", Reason::NotEntitled)]);
    let t1 = p.revocations().next().unwrap();
    assert_eq!(t1.grants, vec!["contractor-otp".to_string()]);
}

#[test]
fn a_removed_role_is_not_entitled() {
    let grants = vec![grant("sre-otp", &["sre"], &[], &["totp"])];
    let employees = vec![employee("alice", &["marketing"], EmployeeState::Active)];
    let inv = inventory(&[("alice", &[("A1", "totp", true)])]);
    assert_eq!(revoked(&planned(&provider(), &employees, &grants, &inv)), vec![r("alice", "A1", Reason::NotEntitled)]);
}

#[test]
fn scope_declared_leaves_unknown_users_and_scope_all_revokes_them() {
    let (employees, grants) = team();
    let inv =
        inventory(&[("alice", &[("A1", "totp", true)]), ("mallory", &[("M1", "totp", true), ("M2", "sms", false)])]);
    let declared = planned(&provider(), &employees, &grants, &inv);
    assert!(revoked(&declared).is_empty());
    assert_eq!(declared.managed_users, 1);

    let mut all = provider();
    all.spec.scope = Scope::All;
    let p = planned(&all, &employees, &grants, &inv);
    assert_eq!(
        revoked(&p),
        vec![r("mallory", "M1", Reason::UndeclaredUser), r("mallory", "M2", Reason::UndeclaredUser)]
    );
    assert!(p.revocations().all(|a| a.employee.is_none()));
}

#[test]
fn protected_users_are_never_revoked() {
    let employees = vec![employee("breakglass", &[], EmployeeState::Offboarded)];
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let mut p = provider();
    p.spec.scope = Scope::All;
    p.spec.protected_users = vec!["BreakGlass".into(), "root".into()];
    let inv = inventory(&[("breakglass", &[("X", "totp", true)]), ("root", &[("R", "hotp", true)])]);
    let plan = planned(&p, &employees, &grants, &inv);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.managed_users, 0);
}

/// The provider lists the break-glass account under the name an Employee maps to (its
/// e-mail, since an Employee declares that address), while `protectedUsers` names its login.
/// Protection holds under any of the user's names, not only the name picked.
#[test]
fn protected_users_are_protected_under_any_of_their_names() {
    let mut intruder = employee("intruder", &[], EmployeeState::Offboarded);
    intruder.spec.email = "breakglass@acme.example".into();
    let mut p = provider();
    p.spec.user_mapping = crate::crd::mfa_provider::UserMapping::Email;
    p.spec.scope = Scope::All;
    p.spec.protected_users = vec!["breakglass".into(), "José".into()];
    let mut inv = inventory(&[
        ("breakglass@acme.example", &[("X", "totp", true)]),
        // The same name, typed with a combining accent: one user after NFC.
        ("jose\u{301}@acme.example", &[("J", "totp", true)]),
        ("mallory@acme.example", &[("M", "totp", true)]),
    ]);
    inv.users[0].aliases = vec!["breakglass".into(), "00u1".into()];
    inv.users[1].aliases = vec!["Jose\u{301}".into()];
    let plan = planned(&p, &[intruder], &[], &inv);
    let revoked: Vec<&str> = plan.revocations().map(|a| a.enrolment.as_str()).collect();
    assert_eq!(revoked, ["M"], "{:?}", plan.actions);
}

#[test]
fn user_names_compare_in_one_normal_form() {
    use crate::engine::identity::user_key;
    assert_eq!(user_key("Jos\u{e9}@Acme.Example"), user_key("jose\u{301}@acme.example"));
    assert_ne!(user_key("jose@acme.example"), user_key("jos\u{e9}@acme.example"));
}

#[test]
fn two_employees_on_one_user_are_a_conflict_and_that_user_is_left_alone() {
    let mut a = employee("alice", &[], EmployeeState::Offboarded);
    a.spec.identities = vec![Identity { provider: "corp-pi".into(), username: "shared".into() }];
    let mut b = employee("alicia", &["sre"], EmployeeState::Active);
    b.spec.identities = vec![Identity { provider: "corp-pi".into(), username: "Shared".into() }];
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let inv = inventory(&[("shared", &[("S1", "totp", true), ("S2", "sms", true)])]);
    let p = planned(&provider(), &[a, b], &grants, &inv);
    assert!(p.actions.is_empty());
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(p.conflicts[0].employees, vec!["alice".to_string(), "alicia".to_string()]);
    assert!(p.employees.iter().all(|v| v.enrolments.iter().all(|e| e.verdict == Verdict::IdentityConflict)));
}

#[test]
fn identities_override_the_mapping_and_email_mapping_ignores_case() {
    let mut alice = employee("alice", &["sre"], EmployeeState::Offboarded);
    alice.spec.identities = vec![Identity { provider: "corp-pi".into(), username: "asmith".into() }];
    let mut by_email = provider();
    by_email.spec.user_mapping = crate::crd::mfa_provider::UserMapping::Email;
    let bob = employee("bob", &["sre"], EmployeeState::Offboarded);
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let inv = inventory(&[
        ("asmith", &[("A", "totp", true)]),
        ("Bob@ACME.example", &[("B", "totp", true)]),
        ("alice", &[("X", "totp", true)]),
    ]);
    let p = planned(&by_email, &[alice, bob], &grants, &inv);
    assert_eq!(
        revoked(&p),
        vec![r("Bob@ACME.example", "B", Reason::EmployeeOffboarded), r("asmith", "A", Reason::EmployeeOffboarded)]
    );
}

#[test]
fn objects_of_other_namespaces_and_grants_of_other_providers_do_not_count() {
    let mut stranger = employee("alice", &["sre"], EmployeeState::Active);
    stranger.metadata.namespace = Some("other".into());
    let mut other_ns_grant = grant("sre-otp", &["sre"], &[], &["totp"]);
    other_ns_grant.metadata.namespace = Some("other".into());
    let mut other_provider_grant = grant("okta-otp", &["sre"], &[], &["totp"]);
    other_provider_grant.spec.provider = "corp-okta".into();
    let local = employee("alice", &["sre"], EmployeeState::Active);
    let keep = grant("keep", &["sre"], &[], &["sms"]);
    let inv = inventory(&[("alice", &[("A1", "totp", true)])]);
    let p = planned(&provider(), &[stranger, local], &[other_ns_grant, other_provider_grant, keep], &inv);
    assert_eq!(revoked(&p), vec![r("alice", "A1", Reason::NotEntitled)]);
}

#[test]
fn a_failed_read_decides_nothing() {
    let (employees, grants) = team();
    let p = plan(&PlanInput {
        provider: &provider(),
        employees: &employees,
        grants: &grants,
        inventory: Err("connection refused".into()),
        capabilities: &capabilities(),
        now: now(),
        revoked_in_window: 0,
        approvals: &[],
    });
    assert!(p.actions.is_empty());
    assert!(p.error.as_deref().unwrap().contains("connection refused"));
}

#[test]
fn over_budget_holds_with_a_digest_that_only_the_same_plan_can_use() {
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let employees =
        vec![employee("keeper", &["sre"], EmployeeState::Active), employee("gone", &[], EmployeeState::Offboarded)];
    let inv = inventory(&[("gone", &[("1", "totp", true), ("2", "hotp", true), ("3", "sms", true)])]);
    let mut p = provider();
    p.spec.policy.budget.max_revocations = 2;
    let held = planned(&p, &employees, &grants, &inv);
    assert_eq!(
        held.hold,
        Some(Hold::RevocationBudgetExceeded { revocations: 3, limit: 2, used: 0, window: "1h".into() })
    );
    assert!(held.employees.iter().flat_map(|v| &v.enrolments).all(|e| e.verdict == Verdict::RevocationBlocked));

    p.metadata.annotations = Some([(APPROVE_REVOCATIONS_ANNOTATION.to_string(), "0000".to_string())].into());
    assert!(planned(&p, &employees, &grants, &inv).blocked(), "a wrong digest approves nothing");

    p.metadata.annotations = Some([(APPROVE_REVOCATIONS_ANNOTATION.to_string(), held.digest.clone())].into());
    let approved = planned(&p, &employees, &grants, &inv);
    assert!(!approved.blocked() && approved.approved);
    assert_eq!(approved.revocation_count(), 3);

    // One more enrolment makes a different plan: the old approval does not carry over.
    let bigger =
        inventory(&[("gone", &[("1", "totp", true), ("2", "hotp", true), ("3", "sms", true), ("4", "sms", true)])]);
    let changed = planned(&p, &employees, &grants, &bigger);
    assert!(changed.blocked());
    assert_ne!(changed.digest, held.digest);

    // Once carried out, the same approval lets the same plan through no more (say the
    // enrolments were restored from a backup and the annotation is still there).
    p.status = Some(crate::crd::mfa_provider::MfaProviderStatus {
        consumed_approval: Some(held.digest.clone()),
        ..Default::default()
    });
    let again = planned(&p, &employees, &grants, &inv);
    assert!(again.blocked() && !again.approved, "an approval is consumed once");
}

fn approval_object(name: &str, provider: &str, digest: &str) -> RevocationApproval {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    let mut a = RevocationApproval::new(
        name,
        RevocationApprovalSpec { provider: provider.into(), digest: digest.into(), reason: "reviewed".into() },
    );
    a.metadata.namespace = Some("acme".into());
    a.metadata.creation_timestamp = Some(k8s_time(now()));
    a.metadata.managed_fields = Some(vec![
        ManagedFieldsEntry { manager: Some("kubectl-create".into()), ..Default::default() },
        ManagedFieldsEntry { manager: Some("keyward".into()), ..Default::default() },
    ]);
    a
}

/// A held plan goes through with a RevocationApproval naming its provider and its exact
/// digest, once; one naming another digest, another provider, or already consumed does
/// nothing, and the annotation counts only where the caller offers it.
#[test]
fn a_revocation_approval_lets_exactly_its_plan_through_once() {
    use super::budget::{annotation_offer, object_offers};
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let employees =
        vec![employee("keeper", &["sre"], EmployeeState::Active), employee("gone", &[], EmployeeState::Offboarded)];
    let inv = inventory(&[("gone", &[("1", "totp", true), ("2", "hotp", true)])]);
    let mut p = provider();
    p.spec.policy.budget.max_revocations = 1;
    let with = |p: &MfaProvider, offers: &[super::ApprovalOffer]| {
        plan(&PlanInput {
            provider: p,
            employees: &employees,
            grants: &grants,
            inventory: Ok(&inv),
            capabilities: &capabilities(),
            now: now(),
            revoked_in_window: 0,
            approvals: offers,
        })
    };
    let held = with(&p, &[]);
    assert!(held.blocked());

    let wrong = [
        approval_object("other-digest", "corp-pi", "0123456789abcdef"),
        approval_object("other-provider", "corp-okta", &held.digest),
        {
            let mut consumed = approval_object("consumed", "corp-pi", &held.digest);
            consumed.status = Some(RevocationApprovalStatus { consumed: true, ..Default::default() });
            consumed
        },
        {
            let mut elsewhere = approval_object("elsewhere", "corp-pi", &held.digest);
            elsewhere.metadata.namespace = Some("beta".into());
            elsewhere
        },
    ];
    let offers = object_offers(&p, &wrong);
    assert_eq!(offers.len(), 1, "only the unconsumed one of this provider is on offer: {offers:?}");
    assert!(with(&p, &offers).blocked(), "a different digest approves nothing");

    let right = [approval_object("approve-gone", "corp-pi", &held.digest)];
    let approved = with(&p, &object_offers(&p, &right));
    assert!(!approved.blocked() && approved.approved);
    assert_eq!(approved.approval_object.as_deref(), Some("approve-gone"));
    let approval = approved.approval.expect("the approval, for the audit records");
    assert_eq!(approval.manager.as_deref(), Some("kubectl-create"), "the creator: the first field manager");
    assert_eq!(approval.time, Some(now()), "when it was created");
    let mut named = right[0].clone();
    named.metadata.annotations = Some([(APPROVED_BY_ANNOTATION.to_string(), "jane@acme.example".into())].into());
    let by = with(&p, &object_offers(&p, &[named])).approval.and_then(|a| a.manager);
    assert_eq!(by.as_deref(), Some("jane@acme.example"));

    // Carried out once (the provider's status says so): the same approval lets it through no more.
    let mut after = p.clone();
    after.status = Some(MfaProviderStatus { consumed_approval: Some(held.digest.clone()), ..Default::default() });
    assert!(with(&after, &object_offers(&after, &right)).blocked(), "consumed once");

    // The annotation approves only where the caller offers it (`keyward apply`; the operator
    // with --approval-annotation).
    p.metadata.annotations = Some([(APPROVE_REVOCATIONS_ANNOTATION.to_string(), held.digest.clone())].into());
    assert!(with(&p, &[]).blocked());
    let offered: Vec<_> = annotation_offer(&p).into_iter().collect();
    let by_annotation = with(&p, &offered);
    assert!(by_annotation.approved && by_annotation.approval_object.is_none());
}

#[test]
fn percent_budget_counts_managed_enrolments() {
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let employees =
        vec![employee("a", &["sre"], EmployeeState::Active), employee("b", &["sre"], EmployeeState::Offboarded)];
    let inv = inventory(&[
        ("a", &[("1", "totp", true), ("2", "totp", true), ("3", "totp", true)]),
        ("b", &[("4", "totp", true)]),
    ]);
    let mut p = provider();
    p.spec.policy.budget.max_percent = Some(20);
    assert_eq!(
        planned(&p, &employees, &grants, &inv).hold,
        Some(Hold::RevocationBudgetExceeded { revocations: 1, limit: 0, used: 0, window: "1h".into() })
    );
    p.spec.policy.budget.max_percent = Some(25);
    assert_eq!(planned(&p, &employees, &grants, &inv).hold, None);
}

#[test]
fn an_empty_declared_state_is_held_like_an_over_budget_plan() {
    let inv = inventory(&[("alice", &[("A1", "totp", true)])]);
    let mut all = provider();
    all.spec.scope = Scope::All;
    let no_employees = planned(&all, &[], &[grant("otp", &["sre"], &[], &["totp"])], &inv);
    assert_eq!(no_employees.hold, Some(Hold::EmptyDeclaredState { revocations: 1 }));
    let employees = vec![employee("alice", &["sre"], EmployeeState::Active)];
    let no_grants = planned(&provider(), &employees, &[], &inv);
    assert_eq!(no_grants.hold, Some(Hold::EmptyDeclaredState { revocations: 1 }));
}

#[test]
fn observe_mode_plans_the_same_actions() {
    let (employees, grants) = team();
    let inv = inventory(&[("alice", &[("A3", "webauthn", true)])]);
    let enforce = planned(&provider(), &employees, &grants, &inv);
    let mut observe = provider();
    observe.spec.policy.mode = Mode::Observe;
    let observed = planned(&observe, &employees, &grants, &inv);
    assert_eq!(observed.mode, Mode::Observe);
    assert_eq!(observed.actions, enforce.actions);
    assert_eq!(observed.digest, enforce.digest);
}

#[test]
fn disable_mode_skips_disabled_enrolments_and_delete_mode_removes_them() {
    let employees = vec![employee("gone", &[], EmployeeState::Offboarded)];
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let inv = inventory(&[("gone", &[("on", "totp", true), ("off", "totp", false)])]);
    let mut disable = provider();
    disable.spec.policy.revocation = RevocationMode::Disable;
    let p = planned(&disable, &employees, &grants, &inv);
    assert_eq!(revoked(&p), vec![r("gone", "on", Reason::EmployeeOffboarded)]);
    let delete = planned(&provider(), &employees, &grants, &inv);
    assert_eq!(revoked(&delete).len(), 2);

    let no_disable = plan(&PlanInput {
        provider: &disable,
        employees: &employees,
        grants: &grants,
        inventory: Ok(&inv),
        capabilities: &Capabilities { disable: false, invite: vec![] },
        now: now(),
        revoked_in_window: 0,
        approvals: &[],
    });
    assert!(no_disable.actions.is_empty() && no_disable.error.is_some());
}

#[test]
fn required_enrolment_is_pending_or_invited() {
    let mut required = grant("sre-required", &["sre"], &[], &["totp"]);
    required.spec.enrolment = EnrolmentPolicy::Required;
    let employees = vec![
        employee("has", &["sre"], EmployeeState::Active),
        employee("lacks", &["sre"], EmployeeState::Active),
        employee("unseen", &["sre"], EmployeeState::Active),
        employee("left", &["sre"], EmployeeState::Offboarded),
    ];
    let inv = inventory(&[("has", &[("H", "totp", true)]), ("lacks", &[("L", "totp", false)])]);
    let p = planned(&provider(), &employees, std::slice::from_ref(&required), &inv);
    let pending: Vec<(&str, ActionKind)> = p.actions.iter().map(|a| (a.user.as_str(), a.action)).collect();
    assert_eq!(pending, vec![("lacks", ActionKind::Pending), ("unseen", ActionKind::Pending)]);
    assert!(!p.has_changes(), "pending enrolments are not changes keyward makes");

    let invites = plan(&PlanInput {
        provider: &provider(),
        employees: &employees,
        grants: &[required],
        inventory: Ok(&inv),
        capabilities: &Capabilities { disable: true, invite: vec![FactorKind::new("totp")] },
        now: now(),
        revoked_in_window: 0,
        approvals: &[],
    });
    assert!(invites.actions.iter().all(|a| a.action == ActionKind::Invite && a.reason == Reason::EnrolmentRequired));
    assert!(invites.has_changes());
}

/// A Duo phone that takes pushes and receives SMS codes is one enrolment with two kinds: an
/// SMS-only grant keeps it (it is not revoked as a `push` device), a Required `sms` is
/// satisfied by it, and when nothing is entitled it goes with all its kinds shown.
#[test]
fn an_enrolment_with_several_kinds_is_kept_when_any_is_entitled() {
    let employees = vec![
        employee("alice", &["support"], EmployeeState::Active),
        employee("dave", &["support"], EmployeeState::Offboarded),
    ];
    let mut grants = vec![grant("sms", &["support"], &[], &["sms"])];
    grants[0].spec.enrolment = crate::crd::EnrolmentPolicy::Required;
    let phone = |id: &str| Enrolment::new(id, FactorKind::new("push"), true).providing(vec![FactorKind::new("sms")]);
    let inv = Inventory {
        users: vec![
            ProviderUser {
                name: "alice".into(),
                in_directory: true,
                enrolments: vec![phone("DPA")],
                aliases: Vec::new(),
            },
            ProviderUser {
                name: "dave".into(),
                in_directory: true,
                enrolments: vec![phone("DPD")],
                aliases: Vec::new(),
            },
        ],
    };
    let p = planned(&provider(), &employees, &grants, &inv);
    let revoked: Vec<&str> = p.revocations().map(|a| a.enrolment.as_str()).collect();
    assert_eq!(revoked, ["DPD"], "{:?}", p.actions);
    assert!(!p.actions.iter().any(|a| a.action != ActionKind::Revoke), "the phone satisfies Required sms");
    let dave = p.revocations().next().unwrap();
    assert_eq!(dave.also, vec![FactorKind::new("sms")], "the plan shows every kind the device takes with it");
    let alice = p.employees.iter().find(|v| v.employee == "alice").unwrap();
    assert_eq!(alice.enrolments[0].verdict, Verdict::Kept);
    assert_eq!(alice.enrolments[0].also, vec![FactorKind::new("sms")]);
}

/// A removal the provider cascades to other enrolments: withheld when it would take an
/// entitled one along, planned when everything it takes is revoked anyway.
#[test]
fn a_removal_that_would_cascade_to_an_entitled_enrolment_is_withheld() {
    let employees =
        vec![employee("alice", &["dev"], EmployeeState::Active), employee("dave", &["dev"], EmployeeState::Offboarded)];
    let grants = vec![grant("otp", &["dev"], &[], &["totp"])];
    let verify = |push: &str, totp: &str| {
        vec![
            Enrolment::new(push, FactorKind::new("push"), true).cascading(vec![totp.to_string(), push.to_string()]),
            Enrolment::new(totp, FactorKind::new("totp"), true),
        ]
    };
    let inv = Inventory {
        users: vec![
            ProviderUser {
                name: "alice".into(),
                in_directory: true,
                enrolments: verify("PA", "TA"),
                aliases: Vec::new(),
            },
            ProviderUser {
                name: "dave".into(),
                in_directory: true,
                enrolments: verify("PD", "TD"),
                aliases: Vec::new(),
            },
        ],
    };
    let p = planned(&provider(), &employees, &grants, &inv);
    let revoked: Vec<&str> = p.revocations().map(|a| a.enrolment.as_str()).collect();
    assert_eq!(revoked, ["PD", "TD"], "dave's both go; alice's push would take her TOTP");
    let alice = p.employees.iter().find(|v| v.employee == "alice").unwrap();
    let push = alice.enrolments.iter().find(|e| e.id == "PA").unwrap();
    assert_eq!(push.verdict, Verdict::CascadeWithheld);
}

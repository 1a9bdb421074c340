//! The sweep against the fake provider: what is executed, held, recorded.

use crate::audit::{AuditRecord, AuditSink, Event, Memory, Outcome};
use crate::crd::ProviderKey;
use crate::crd::mfa_provider::Mode;
use crate::crd::{EmployeeState, FactorKind};
use crate::engine::fixtures::*;
use crate::providers::Failure;
use crate::providers::fake::FakeProvider;
use crate::sweep::{ActionResult, Declared, DeclaredNow, Execution, Guard, Unguarded, sweep, sweep_guarded};
use std::sync::Arc;

fn leaver_setup()
-> (crate::crd::MfaProvider, Vec<crate::crd::Employee>, Vec<crate::crd::AccessGrant>, Arc<FakeProvider>) {
    let employees =
        vec![employee("alice", &["sre"], EmployeeState::Active), employee("dave", &[], EmployeeState::Offboarded)];
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let fake = FakeProvider::new(
        ProviderKey::new("acme", "corp-pi"),
        inventory(&[("alice", &[("A1", "totp", true)]), ("dave", &[("D1", "totp", true), ("D2", "hotp", true)])]),
    );
    (provider(), employees, grants, fake)
}

#[tokio::test]
async fn apply_revokes_and_records_each_revocation() {
    let (p, es, gs, fake) = leaver_setup();
    let audit = Memory::default();
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &audit,
    )
    .await;
    assert_eq!(fake.revoked_ids(), vec!["D1".to_string(), "D2".to_string()]);
    assert!(!report.failed());
    assert_eq!(audit.outcomes().len(), 2);
    assert!(audit.outcomes().iter().all(|r| r.outcome == Outcome::Revoked && r.employee.as_deref() == Some("dave")));

    // The next sweep finds nothing to do.
    let audit = Memory::default();
    let again = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &audit,
    )
    .await;
    assert_eq!(again.plan.revocation_count(), 0);
    assert!(audit.outcomes().is_empty());
}

#[tokio::test]
async fn plan_only_and_observe_change_nothing() {
    let (mut p, es, gs, fake) = leaver_setup();
    let audit = Memory::default();
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::PlanOnly,
        &audit,
    )
    .await;
    assert_eq!(report.plan.revocation_count(), 2);
    assert!(report.results.iter().all(|r| r.result == ActionResult::Planned));
    p.spec.policy.mode = Mode::Observe;
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &audit,
    )
    .await;
    assert_eq!(report.plan.revocation_count(), 2);
    assert!(fake.revoked_ids().is_empty());
    assert!(audit.outcomes().is_empty());
}

#[tokio::test]
async fn a_held_plan_records_blocked_revocations_and_revokes_nothing() {
    let (mut p, es, gs, fake) = leaver_setup();
    p.spec.policy.budget.max_revocations = 1;
    let audit = Memory::default();
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &audit,
    )
    .await;
    assert!(report.blocked());
    assert!(fake.revoked_ids().is_empty());
    assert_eq!(audit.outcomes().len(), 2);
    assert!(
        audit
            .outcomes()
            .iter()
            .all(|r| r.outcome == Outcome::Blocked && r.detail.as_deref().unwrap_or("").contains(&report.plan.digest))
    );
}

#[tokio::test]
async fn one_failed_revocation_does_not_stop_the_others_and_is_recorded() {
    let (p, es, gs, fake) = leaver_setup();
    fake.failing_enrolments.lock().unwrap().push("D1".into());
    let audit = Memory::default();
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &audit,
    )
    .await;
    assert!(report.failed());
    assert_eq!(fake.revoked_ids(), vec!["D2".to_string()]);
    let failed = audit.outcomes().into_iter().find(|r| r.enrolment == "D1").unwrap();
    assert_eq!(failed.outcome, Outcome::Failed);
    assert!(failed.detail.as_deref().unwrap().contains("revoke enrolment D1 of dave"));
}

#[tokio::test]
async fn a_failed_listing_revokes_nothing() {
    let (p, es, gs, fake) = leaver_setup();
    *fake.list_failure.lock().unwrap() = Some(Failure::Timeout(std::time::Duration::from_secs(10)));
    let audit = Memory::default();
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &audit,
    )
    .await;
    assert!(report.failed());
    assert!(report.plan.actions.is_empty());
    assert!(fake.revoked_ids().is_empty());
    assert!(audit.outcomes().is_empty());
}

#[tokio::test]
async fn invitations_are_sent_where_the_provider_has_them() {
    let (p, es, mut gs, fake) = leaver_setup();
    gs[0].spec.enrolment = crate::crd::EnrolmentPolicy::Required;
    gs[0].spec.factors.push(FactorKind::new("webauthn"));
    *fake.capabilities.lock().unwrap() =
        Some(crate::engine::Capabilities { disable: true, invite: vec![FactorKind::new("webauthn")] });
    let audit = Memory::default();
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &audit,
    )
    .await;
    assert_eq!(*fake.invited.lock().unwrap(), vec![("alice".to_string(), FactorKind::new("webauthn"))]);
    assert!(report.results.iter().any(|r| r.result == ActionResult::Invited));
    // The invitation has a record of its own.
    let invitations: Vec<AuditRecord> = audit.records().into_iter().filter(|r| r.event == Event::Invitation).collect();
    assert_eq!(invitations.len(), 1, "{invitations:?}");
    assert_eq!((invitations[0].user.as_str(), invitations[0].kind.as_str()), ("alice", "webauthn"));
    assert_eq!((invitations[0].outcome, invitations[0].reason.as_str()), (Outcome::Invited, "EnrolmentRequired"));
}

/// A held plan let through by an approval leaves a record of the approval — who,
/// which plan, how many revocations — before the first revocation it lets through.
#[tokio::test]
async fn an_approval_has_its_own_record_before_the_revocations_it_lets_through() {
    let (mut p, es, gs, fake) = leaver_setup();
    p.spec.policy.budget.max_revocations = 1;
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    let held = sweep(&fake.provider(), &declared, now(), Execution::PlanOnly, &Memory::default()).await;
    assert!(held.blocked());
    struct Approving(String);
    impl Guard for Approving {
        fn approvals(&self) -> Vec<crate::engine::ApprovalOffer> {
            let approval = crate::engine::Approval {
                digest: self.0.clone(),
                manager: Some("kubectl-create".into()),
                time: None,
                object: Some("let-dave-go".into()),
            };
            vec![crate::engine::ApprovalOffer { approval, object: Some("let-dave-go".into()) }]
        }
    }
    let audit = Memory::default();
    let report = sweep_guarded(
        &fake.provider(),
        &declared,
        now(),
        Execution::Apply,
        &audit,
        &Approving(held.plan.digest.clone()),
    )
    .await;
    assert!(report.plan.approved);
    let records = audit.records();
    assert_eq!(records[0].event, Event::Approval, "{records:?}");
    assert_eq!(records[0].outcome, Outcome::Approved);
    assert_eq!(records[0].plan_digest.as_deref(), Some(held.plan.digest.as_str()));
    assert_eq!(records[0].approval.as_ref().and_then(|a| a.object.as_deref()), Some("let-dave-go"));
    assert_eq!(records.iter().filter(|r| r.event == Event::Approval).count(), 1);
    assert_eq!(fake.revoked_ids(), ["D1", "D2"]);
}

/// A guard as the operator's: leadership (for a number of calls), a window's ledger, and a
/// declared state that may have moved on since the sweep began.
struct TestGuard {
    /// How many more times `may_act` says yes.
    leader_for: std::sync::atomic::AtomicUsize,
    revoked_in_window: usize,
    now: Option<(crate::crd::MfaProvider, Vec<crate::crd::Employee>, Vec<crate::crd::AccessGrant>)>,
    provider_gone: bool,
    /// The guard's clock, when it differs from the sweep's start.
    at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TestGuard {
    fn leader() -> Self {
        TestGuard { leader_for: usize::MAX.into(), revoked_in_window: 0, now: None, provider_gone: false, at: None }
    }
}

impl Guard for TestGuard {
    fn may_act(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.leader_for.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
    fn revoked_in_window(&self) -> usize {
        self.revoked_in_window
    }
    fn declared_now(&self) -> DeclaredNow {
        match (&self.now, self.provider_gone) {
            (_, true) => DeclaredNow::ProviderGone,
            (Some((p, es, gs)), _) => DeclaredNow::Current {
                provider: std::sync::Arc::new(p.clone()),
                employees: es.iter().cloned().map(std::sync::Arc::new).collect(),
                grants: gs.iter().cloned().map(std::sync::Arc::new).collect(),
                now: self.at.unwrap_or_else(now),
            },
            (None, _) => DeclaredNow::Unchanged,
        }
    }
}

async fn guarded(guard: &TestGuard) -> (crate::sweep::SweepReport, Arc<FakeProvider>, Memory) {
    let (p, es, gs, fake) = leaver_setup();
    let audit = Memory::default();
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    let report = sweep_guarded(&fake.provider(), &declared, now(), Execution::Apply, &audit, guard).await;
    (report, fake, audit)
}

#[tokio::test]
async fn a_guard_that_says_no_defers_everything() {
    let guard = TestGuard { leader_for: 0.into(), ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert!(report.deferred);
    assert_eq!(report.plan.revocation_count(), 2, "planned");
    assert!(fake.revoked_ids().is_empty(), "but not carried out");
    assert!(audit.outcomes().is_empty() && report.results.is_empty());
}

#[tokio::test]
async fn leadership_is_asked_again_before_every_provider_call() {
    // Yes before acting and for the first call (before and after its intent), then lost: the
    // second call is not made.
    let guard = TestGuard { leader_for: 3.into(), ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert_eq!(fake.revoked_ids().len(), 1, "one call made while leading");
    assert!(report.deferred);
    assert_eq!(report.results.iter().filter(|r| r.result == ActionResult::Deferred).count(), 1);
    assert_eq!(audit.outcomes().len(), 1, "only the revocation made is recorded");
}

/// A replica paused while it wrote the intent (the write syncs to disk) wakes without the
/// Lease: it makes no call and closes its own intent, which the new leader then does not have
/// to adopt; the enrolment is the leader's to revoke, with the one final record.
#[tokio::test]
async fn leadership_lost_while_the_intent_was_written_makes_no_call() {
    let guard = TestGuard { leader_for: 2.into(), ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert!(fake.revoked_ids().is_empty(), "no provider call: {:?}", fake.revoked_ids());
    assert!(report.deferred);
    let records = audit.records();
    let intents: Vec<_> = records.iter().filter(|r| r.event == Event::Intent).collect();
    assert_eq!(intents.len(), 1, "{records:?}");
    let closed: Vec<_> = records.iter().filter(|r| r.event == Event::Outcome).collect();
    assert_eq!(closed.len(), 1, "{records:?}");
    assert_eq!(
        (closed[0].enrolment.as_str(), closed[0].outcome),
        (intents[0].enrolment.as_str(), Outcome::Interrupted)
    );
    assert!(closed[0].detail.as_deref().is_some_and(|d| d.contains("leadership lapsed before the call")));
}

#[tokio::test]
async fn a_re_entitlement_during_the_listing_withdraws_what_it_entitles() {
    // While the provider was listed, dave's offboarding was reverted: he is an Active sre
    // again, entitled to TOTP (D1) but not to HOTP (D2).
    let (p, mut es, gs, _) = leaver_setup();
    es[1] = employee("dave", &["sre"], EmployeeState::Active);
    let guard = TestGuard { now: Some((p, es, gs)), ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert_eq!(fake.revoked_ids(), vec!["D2".to_string()]);
    let d1 = report.results.iter().find(|r| r.action.enrolment == "D1").unwrap();
    assert!(matches!(d1.result, ActionResult::Withdrawn(_)), "{d1:?}");
    assert!(audit.outcomes().iter().any(|r| r.enrolment == "D1" && r.outcome == Outcome::Withdrawn));
}

#[tokio::test]
async fn a_grant_that_becomes_valid_during_the_listing_is_honoured_at_the_call() {
    // dave is an Active sre again, but the sre grant only starts a minute after the sweep
    // began; by the time of the provider call that minute has passed.
    let (p, mut es, mut gs, _) = leaver_setup();
    es[1] = employee("dave", &["sre"], EmployeeState::Active);
    gs[0].spec.valid_from = Some(now() + chrono::Duration::minutes(1));
    let guard =
        TestGuard { now: Some((p, es, gs)), at: Some(now() + chrono::Duration::minutes(2)), ..TestGuard::leader() };
    let (report, fake, _) = guarded(&guard).await;
    assert_eq!(fake.revoked_ids(), vec!["D2".to_string()], "TOTP is entitled by the time of the call");
    let d1 = report.results.iter().find(|r| r.action.enrolment == "D1").unwrap();
    assert!(matches!(d1.result, ActionResult::Withdrawn(_)), "{d1:?}");
}

#[tokio::test]
async fn a_provider_deleted_or_set_to_observe_during_the_listing_revokes_nothing() {
    let guard = TestGuard { provider_gone: true, ..TestGuard::leader() };
    let (report, fake, _) = guarded(&guard).await;
    assert!(fake.revoked_ids().is_empty());
    assert!(report.results.iter().all(|r| matches!(r.result, ActionResult::Withdrawn(_))));

    let (mut p, es, gs, _) = leaver_setup();
    p.spec.policy.mode = Mode::Observe;
    let guard = TestGuard { now: Some((p, es, gs)), ..TestGuard::leader() };
    let (_, fake, _) = guarded(&guard).await;
    assert!(fake.revoked_ids().is_empty());
}

#[tokio::test]
async fn revocations_already_made_in_the_window_count_against_the_budget() {
    // Budget 25: 23 made this hour leave room for dave's two, 24 do not.
    let guard = TestGuard { revoked_in_window: 23, ..TestGuard::leader() };
    let (report, fake, _) = guarded(&guard).await;
    assert!(report.plan.hold.is_none());
    assert_eq!(fake.revoked_ids().len(), 2);

    let guard = TestGuard { revoked_in_window: 24, ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert!(report.blocked());
    assert!(fake.revoked_ids().is_empty());
    assert!(audit.outcomes().iter().all(|r| r.outcome == Outcome::Blocked));
    let message = crate::engine::planner::hold_message(&report.plan).unwrap();
    assert!(message.contains("24 already made in the window"), "{message}");
}

/// A sink that notes, for every record, whether the provider had already been called for
/// its enrolment when the record was written.
struct Witness<'a> {
    fake: &'a FakeProvider,
    memory: Memory,
    seen: std::sync::Mutex<Vec<(Event, String, bool)>>,
    /// Intents cannot be written (a full disk, say).
    refuse_intents: bool,
}

#[async_trait::async_trait]
impl AuditSink for Witness<'_> {
    async fn record(&self, record: &AuditRecord) -> std::io::Result<()> {
        if self.refuse_intents && record.event == Event::Intent {
            return Err(std::io::Error::other("no space left on device"));
        }
        let called = self.fake.revoked_ids().contains(&record.enrolment);
        self.seen.lock().unwrap().push((record.event, record.enrolment.clone(), called));
        self.memory.record(record).await
    }
}

#[tokio::test]
async fn each_provider_call_is_announced_on_disk_before_it_is_made() {
    let (p, es, gs, fake) = leaver_setup();
    let witness = Witness { fake: &fake, memory: Memory::default(), seen: Default::default(), refuse_intents: false };
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    sweep(&fake.provider(), &declared, now(), Execution::Apply, &witness).await;
    let seen = witness.seen.lock().unwrap().clone();
    for id in ["D1", "D2"] {
        let of: Vec<(Event, bool)> = seen.iter().filter(|(_, e, _)| e == id).map(|(ev, _, c)| (*ev, *c)).collect();
        assert_eq!(of, [(Event::Intent, false), (Event::Outcome, true)], "{id}: intent before the call, outcome after");
    }
    let records = witness.memory.records();
    let intent = records.iter().find(|r| r.event == Event::Intent).expect("intent");
    assert_eq!(intent.outcome, Outcome::Intended);
    assert!(intent.plan_digest.as_deref().is_some_and(|d| !d.is_empty()), "the plan's digest");
    assert!(witness.memory.unresolved("acme/corp-pi").is_empty(), "every intent has its outcome");
}

#[tokio::test]
async fn an_intent_that_cannot_be_written_means_no_provider_call() {
    let (p, es, gs, fake) = leaver_setup();
    let witness = Witness { fake: &fake, memory: Memory::default(), seen: Default::default(), refuse_intents: true };
    let report = sweep(
        &fake.provider(),
        &Declared { provider: &p, employees: &es, grants: &gs },
        now(),
        Execution::Apply,
        &witness,
    )
    .await;
    assert!(fake.revoked_ids().is_empty(), "no call without its write-ahead record");
    assert!(report.failed());
    assert!(report.results.iter().all(|r| matches!(&r.result, ActionResult::Failed(e) if e.contains("write-ahead"))));
}

fn intent(user: &str, enrolment: &str) -> AuditRecord {
    serde_json::from_value(serde_json::json!({
        "time": "2026-11-30T11:00:00Z", "event": "intent", "provider": "acme/corp-pi", "user": user,
        "enrolment": enrolment, "kind": "totp", "reason": "EmployeeOffboarded", "employee": user, "grants": [],
        "source_revision": null, "outcome": "intended", "trigger": "2026-11-30T10:59:00Z"
    }))
    .expect("an intent record")
}

/// A crash between intent and outcome: the next sweep reads the provider again. An enrolment
/// gone was revoked (recorded now, once); one still there is `interrupted` and planned again.
#[tokio::test]
async fn intents_a_crash_left_open_are_resolved_by_reading_the_provider_again() {
    let (p, es, gs, fake) = leaver_setup();
    let audit = Memory::after(vec![intent("dave", "D1"), intent("dave", "D0-gone")]);
    assert_eq!(audit.unresolved("acme/corp-pi").len(), 2);
    sweep(&fake.provider(), &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit)
        .await;
    let outcomes: Vec<(String, Outcome)> = audit.outcomes().iter().map(|r| (r.enrolment.clone(), r.outcome)).collect();
    assert_eq!(outcomes[..2], [("D1".into(), Outcome::Interrupted), ("D0-gone".into(), Outcome::Revoked)]);
    let confirmed = audit.outcomes().into_iter().find(|r| r.enrolment == "D0-gone").expect("confirmed");
    assert!(confirmed.detail.as_deref().unwrap_or("").contains("confirmed when the provider was read again"));
    assert!(confirmed.latency_seconds.is_some_and(|l| l > 60.0), "measured from the intent's trigger");
    // D1 was still enrolled: planned again, revoked, recorded once more with its own intent.
    assert_eq!(fake.revoked_ids(), vec!["D1".to_string(), "D2".to_string()]);
    assert!(outcomes.contains(&("D1".into(), Outcome::Revoked)));
    assert!(audit.unresolved("acme/corp-pi").is_empty());
}

#[tokio::test]
async fn a_held_plan_is_recorded_once_per_digest_not_per_sweep() {
    let (mut p, es, gs, fake) = leaver_setup();
    p.spec.policy.budget.max_revocations = 1;
    let audit = Memory::default();
    for _ in 0..3 {
        sweep(
            &fake.provider(),
            &Declared { provider: &p, employees: &es, grants: &gs },
            now(),
            Execution::Apply,
            &audit,
        )
        .await;
    }
    assert_eq!(audit.outcomes().len(), 2, "one blocked record per revocation of the held plan");
}

/// An intent's enrolment still listed under another name (privacyIDEA lists a removed user's
/// tokens under a name of its own) is still there: `interrupted`, never `revoked`.
#[tokio::test]
async fn an_open_intent_whose_enrolment_moved_to_another_name_is_not_called_revoked() {
    let (p, es, gs, _) = leaver_setup();
    let fake = FakeProvider::new(
        ProviderKey::new("acme", "corp-pi"),
        inventory(&[("removed-user-7", &[("D9", "totp", true)])]),
    );
    let audit = Memory::after(vec![intent("dave", "D9")]);
    sweep(&fake.provider(), &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit)
        .await;
    let outcome = audit.outcomes().into_iter().find(|r| r.enrolment == "D9").expect("resolved");
    assert_eq!(outcome.outcome, Outcome::Interrupted);
}

/// A targeted sweep reads only the users it is for, one request each, and revokes
/// exactly what a full sweep would for them — with its write-ahead records — leaving the
/// others untouched even where they have something to revoke.
#[tokio::test]
async fn a_targeted_sweep_reads_and_revokes_its_users_alone() {
    let (p, mut es, gs, fake) = leaver_setup();
    es.push(employee("erin", &[], EmployeeState::Offboarded));
    fake.inventory.lock().unwrap().users.push(inventory(&[("erin", &[("E1", "totp", true)])]).users.remove(0));
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    let audit = Memory::default();
    let full = crate::sweep::FullListing { managed_enrolments: 4, duplicates: Default::default() };
    let report =
        crate::sweep::sweep_targeted(&fake.provider(), &declared, &["dave".into()], &full, now(), &audit, &Unguarded)
            .await
            .expect("decided by the targeted sweep");
    assert_eq!(report.requests, 1 + 2, "one read for one user, one call per revocation");
    assert_eq!(fake.revoked_ids(), ["D1", "D2"], "erin is left to her own change");
    let records = audit.records();
    assert_eq!(records.iter().filter(|r| r.event == Event::Intent).count(), 2);
    assert!(audit.outcomes().iter().all(|r| r.outcome == Outcome::Revoked && r.employee.as_deref() == Some("dave")));

    // Alice is entitled: her targeted sweep revokes nothing.
    let report =
        crate::sweep::sweep_targeted(&fake.provider(), &declared, &["alice".into()], &full, now(), &audit, &Unguarded)
            .await
            .expect("decided");
    assert_eq!(report.plan.revocation_count(), 0);
}

/// What a targeted sweep cannot decide is left to a full sweep, untouched: Observe mode, a
/// plan over budget (counted against the full listing's enrolments), intents a crash left open.
#[tokio::test]
async fn a_targeted_sweep_leaves_holds_observe_and_open_intents_to_a_full_sweep() {
    let (mut p, es, gs, fake) = leaver_setup();
    let audit = Memory::default();
    let full = crate::sweep::FullListing { managed_enrolments: 3, duplicates: Default::default() };
    let dave = ["dave".to_string()];

    p.spec.policy.budget.max_percent = Some(50); // 50 % of 3: one revocation, and dave has two
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    assert!(
        crate::sweep::sweep_targeted(&fake.provider(), &declared, &dave, &full, now(), &audit, &Unguarded)
            .await
            .is_none()
    );
    p.spec.policy.budget.max_percent = None;

    p.spec.policy.mode = Mode::Observe;
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    assert!(
        crate::sweep::sweep_targeted(&fake.provider(), &declared, &dave, &full, now(), &audit, &Unguarded)
            .await
            .is_none()
    );
    p.spec.policy.mode = Mode::Enforce;

    let audit = Memory::after(vec![intent("dave", "D1")]);
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    assert!(
        crate::sweep::sweep_targeted(&fake.provider(), &declared, &dave, &full, now(), &audit, &Unguarded)
            .await
            .is_none()
    );
    assert!(fake.revoked_ids().is_empty(), "nothing carried out by a sweep that did not decide");
}

/// Failover: replica A died between an intent and its call; replica B revoked the
/// enrolment meanwhile. When A resolves its intent it finds the enrolment gone: with B's log
/// among its peers it closes the intent as `interrupted` (B's record stays the only final
/// one); without, it records the revocation as confirmed.
#[tokio::test]
async fn an_intent_another_replica_settled_meanwhile_is_not_recorded_revoked_twice() {
    let (p, es, gs, fake) = leaver_setup();
    fake.inventory.lock().unwrap().users.iter_mut().for_each(|u| u.enrolments.retain(|e| e.id != "D1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (own, peer) = (dir.path().join("audit-a.jsonl"), dir.path().join("audit-b.jsonl"));
    let mut by_b = intent("dave", "D1").ended(Outcome::Revoked, None);
    by_b.replica = Some("replica-b".into());
    std::fs::write(&peer, chained(&[by_b])).expect("peer log");
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    for (peers, expected) in
        [(vec![dir.path().join("audit-*.jsonl")], Outcome::Interrupted), (vec![], Outcome::Revoked)]
    {
        let _ = std::fs::remove_file(&own);
        let log = crate::audit::JsonLinesFile::open(&own).expect("open");
        log.record(&intent("dave", "D1")).await.expect("the intent");
        drop(log);
        let mut log = crate::audit::JsonLinesFile::open(&own).expect("open again");
        if !peers.is_empty() {
            log = log.with_peers(crate::audit::peers::PeerLogs::new(peers, &own));
        }
        sweep(&fake.provider(), &declared, now(), Execution::Apply, &log).await;
        let text = std::fs::read_to_string(&own).expect("log");
        let d1: Vec<AuditRecord> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok())
            .filter(|r| r.enrolment == "D1" && r.event == Event::Outcome)
            .collect();
        assert_eq!(d1.len(), 1, "{text}");
        assert_eq!(d1[0].outcome, expected, "{:?}", d1[0].detail);
        if expected == Outcome::Interrupted {
            assert!(d1[0].detail.as_deref().unwrap_or_default().contains("replica-b"), "{:?}", d1[0].detail);
        }
    }
}

/// `records` as a writer chains them: a peer's log counts only when it verifies.
fn chained(records: &[AuditRecord]) -> String {
    let mut chain = crate::audit::Chain::default();
    records.iter().map(|r| String::from_utf8(chain.seal(r).expect("seal")).expect("utf-8") + "\n").collect()
}

fn log_records(path: &std::path::Path) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok()).collect()
}

/// Replica a dies after its call reached the provider and before the outcome was written,
/// and never leads again. The leader, b, closes a's intent from its sweep's read: one final
/// record, in b's log, naming a's intent; and only once.
#[tokio::test]
async fn the_leader_closes_the_intent_a_dead_replica_left_open() {
    let (p, es, gs, fake) = leaver_setup();
    fake.inventory.lock().unwrap().users.iter_mut().for_each(|u| u.enrolments.retain(|e| e.id != "D1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("audit-a.jsonl"), dir.path().join("audit-b.jsonl"));
    let mut by_a = intent("dave", "D1");
    by_a.replica = Some("replica-a".into());
    std::fs::write(&a, chained(&[by_a])).expect("a's log");
    let stamp = crate::audit::Stamp { replica: Some("replica-b".into()), service_account: None };
    let log = crate::audit::JsonLinesFile::open(&b)
        .expect("open")
        .with_peers(crate::audit::peers::PeerLogs::new(vec![dir.path().join("audit-*.jsonl")], &b))
        .stamped(stamp);
    assert_eq!(log.abandoned("acme/corp-pi").len(), 1, "a's open intent is the leader's to close");
    assert!(log.unresolved("acme/corp-pi").is_empty(), "not its own: a targeted sweep does not wait on it");
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    sweep(&fake.provider(), &declared, now(), Execution::Apply, &log).await;
    let closed: Vec<AuditRecord> = log_records(&b).into_iter().filter(|r| r.enrolment == "D1").collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!((closed[0].event, closed[0].outcome), (Event::Outcome, Outcome::Revoked));
    assert_eq!(closed[0].replica.as_deref(), Some("replica-b"), "written by the leader");
    assert!(closed[0].detail.as_deref().unwrap_or_default().contains("replica-a"), "{:?}", closed[0].detail);
    assert!(log.abandoned("acme/corp-pi").is_empty());
    sweep(&fake.provider(), &declared, now(), Execution::Apply, &log).await;
    assert_eq!(log_records(&b).iter().filter(|r| r.enrolment == "D1").count(), 1, "closed once");
}

/// The other half: a replica paused mid-call wakes after the new leader closed its intent.
/// Its own answer then only closes the intent: one final record across the logs.
#[tokio::test]
async fn a_call_answered_after_leadership_lapsed_defers_to_the_record_another_replica_made() {
    // One enrolment to revoke, so that the guard's answers follow one call's checks (with two,
    // their intents' writes interleave).
    let (p, es, gs, _) = leaver_setup();
    let fake = FakeProvider::new(
        ProviderKey::new("acme", "corp-pi"),
        inventory(&[("alice", &[("A1", "totp", true)]), ("dave", &[("D1", "totp", true)])]),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (own, peer) = (dir.path().join("audit-a.jsonl"), dir.path().join("audit-b.jsonl"));
    let mut by_b = intent("dave", "D1").ended(Outcome::Revoked, None);
    by_b.replica = Some("replica-b".into());
    // b's record is from a moment after the sweep's intent will be.
    by_b.time = chrono::Utc::now() + chrono::Duration::minutes(5);
    std::fs::write(&peer, chained(&[by_b])).expect("peer log");
    let log = crate::audit::JsonLinesFile::open(&own)
        .expect("open")
        .with_peers(crate::audit::peers::PeerLogs::new(vec![dir.path().join("audit-*.jsonl")], &own));
    // Leading for the sweep and the first call's checks (before and after its intent); lapsed
    // by the time its answer came.
    let guard = TestGuard { leader_for: 3.into(), ..TestGuard::leader() };
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    sweep_guarded(&fake.provider(), &declared, now(), Execution::Apply, &log, &guard).await;
    let finals: Vec<AuditRecord> =
        log_records(&own).into_iter().filter(|r| r.event == Event::Outcome && r.enrolment == "D1").collect();
    assert_eq!(fake.revoked_ids(), vec!["D1".to_string()], "the call was made while leading");
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(finals[0].outcome, Outcome::Interrupted, "{:?}", finals[0].detail);
    assert!(finals[0].detail.as_deref().unwrap_or_default().contains("replica-b"));
}

/// A revocation whose answer was lost (a body cut short, a reset) fails, though the provider
/// carried it out. Its intent stays open, and the
/// next sweep records it revoked once it finds the enrolment gone — never `failed` alone.
#[tokio::test]
async fn a_failed_call_that_was_carried_out_still_ends_with_a_final_record() {
    let (p, es, gs, fake) = leaver_setup();
    fake.failing_enrolments.lock().unwrap().push("D1".into());
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    let audit = Memory::default();
    sweep(&fake.provider(), &declared, now(), Execution::Apply, &audit).await;
    assert_eq!(audit.unresolved("acme/corp-pi").len(), 1, "the failed call's intent stays open");
    // The call had in fact been carried out.
    fake.failing_enrolments.lock().unwrap().clear();
    fake.inventory.lock().unwrap().users.iter_mut().for_each(|u| u.enrolments.retain(|e| e.id != "D1"));
    sweep(&fake.provider(), &declared, now(), Execution::Apply, &audit).await;
    let d1: Vec<(Outcome, Event)> =
        audit.records().iter().filter(|r| r.enrolment == "D1").map(|r| (r.outcome, r.event)).collect();
    assert_eq!(
        d1,
        [(Outcome::Intended, Event::Intent), (Outcome::Failed, Event::Outcome), (Outcome::Revoked, Event::Outcome)]
    );
    assert!(audit.unresolved("acme/corp-pi").is_empty());
}

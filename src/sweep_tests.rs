//! The sweep against the fake provider: what is executed, held, recorded.

use crate::audit::{AuditRecord, AuditSink, Event, Memory, Outcome};
use crate::crd::mfa_provider::Mode;
use crate::crd::{EmployeeState, FactorKind};
use crate::engine::fixtures::*;
use crate::providers::Failure;
use crate::providers::fake::FakeProvider;
use crate::sweep::{ActionResult, Declared, DeclaredNow, Execution, Guard, sweep, sweep_guarded};

fn leaver_setup() -> (crate::crd::MfaProvider, Vec<crate::crd::Employee>, Vec<crate::crd::AccessGrant>, FakeProvider) {
    let employees =
        vec![employee("alice", &["sre"], EmployeeState::Active), employee("dave", &[], EmployeeState::Offboarded)];
    let grants = vec![grant("otp", &["sre"], &[], &["totp"])];
    let fake = FakeProvider::new(
        "acme/corp-pi",
        inventory(&[("alice", &[("A1", "totp", true)]), ("dave", &[("D1", "totp", true), ("D2", "hotp", true)])]),
    );
    (provider(), employees, grants, fake)
}

#[tokio::test]
async fn apply_revokes_and_records_each_revocation() {
    let (p, es, gs, fake) = leaver_setup();
    let audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    assert_eq!(fake.revoked_ids(), vec!["D1".to_string(), "D2".to_string()]);
    assert!(!report.failed());
    assert_eq!(audit.outcomes().len(), 2);
    assert!(audit.outcomes().iter().all(|r| r.outcome == Outcome::Revoked && r.employee.as_deref() == Some("dave")));

    // The next sweep finds nothing to do.
    let audit = Memory::default();
    let again =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    assert_eq!(again.plan.revocation_count(), 0);
    assert!(audit.outcomes().is_empty());
}

#[tokio::test]
async fn plan_only_and_observe_change_nothing() {
    let (mut p, es, gs, fake) = leaver_setup();
    let audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::PlanOnly, &audit).await;
    assert_eq!(report.plan.revocation_count(), 2);
    assert!(report.results.iter().all(|r| r.result == ActionResult::Planned));
    p.spec.policy.mode = Mode::Observe;
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    assert_eq!(report.plan.revocation_count(), 2);
    assert!(fake.revoked_ids().is_empty());
    assert!(audit.outcomes().is_empty());
}

#[tokio::test]
async fn a_held_plan_records_blocked_revocations_and_revokes_nothing() {
    let (mut p, es, gs, fake) = leaver_setup();
    p.spec.policy.budget.max_revocations = 1;
    let audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
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
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
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
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    assert!(report.failed());
    assert!(report.plan.actions.is_empty());
    assert!(fake.revoked_ids().is_empty());
    assert!(audit.outcomes().is_empty());
}

#[tokio::test]
async fn invitations_are_sent_where_the_provider_has_them() {
    let (p, es, mut gs, mut fake) = leaver_setup();
    gs[0].spec.enrolment = crate::crd::EnrolmentPolicy::Required;
    gs[0].spec.factors.push(FactorKind::new("webauthn"));
    fake.capabilities = Some(crate::engine::Capabilities { disable: true, invite: vec![FactorKind::new("webauthn")] });
    let audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    assert_eq!(*fake.invited.lock().unwrap(), vec![("alice".to_string(), FactorKind::new("webauthn"))]);
    assert!(report.results.iter().any(|r| r.result == ActionResult::Invited));
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

async fn guarded(guard: &TestGuard) -> (crate::sweep::SweepReport, FakeProvider, Memory) {
    let (p, es, gs, fake) = leaver_setup();
    let audit = Memory::default();
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    let report = sweep_guarded(&fake, &declared, now(), Execution::Apply, &audit, guard).await;
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
    // Yes before acting and for the first call, then lost: the second call is not made.
    let guard = TestGuard { leader_for: 2.into(), ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert_eq!(fake.revoked_ids().len(), 1, "one call made while leading");
    assert!(report.deferred);
    assert_eq!(report.results.iter().filter(|r| r.result == ActionResult::Deferred).count(), 1);
    assert_eq!(audit.outcomes().len(), 1, "only the revocation made is recorded");
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
    sweep(&fake, &declared, now(), Execution::Apply, &witness).await;
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
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &witness).await;
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
    sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    let outcomes: Vec<(String, Outcome)> = audit.outcomes().iter().map(|r| (r.enrolment.clone(), r.outcome)).collect();
    assert_eq!(outcomes[..2], [("D1".into(), Outcome::Interrupted), ("D0-gone".into(), Outcome::Revoked)]);
    let confirmed = audit.outcomes().into_iter().find(|r| r.enrolment == "D0-gone").expect("confirmed");
    assert!(confirmed.detail.as_deref().unwrap_or("").contains("confirmed after a restart"));
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
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    }
    assert_eq!(audit.outcomes().len(), 2, "one blocked record per revocation of the held plan");
}

/// An intent's enrolment still listed under another name (privacyIDEA lists a removed user's
/// tokens under a name of its own) is still there: `interrupted`, never `revoked`.
#[tokio::test]
async fn an_open_intent_whose_enrolment_moved_to_another_name_is_not_called_revoked() {
    let (p, es, gs, _) = leaver_setup();
    let fake = FakeProvider::new("acme/corp-pi", inventory(&[("removed-user-7", &[("D9", "totp", true)])]));
    let audit = Memory::after(vec![intent("dave", "D9")]);
    sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &audit).await;
    let outcome = audit.outcomes().into_iter().find(|r| r.enrolment == "D9").expect("resolved");
    assert_eq!(outcome.outcome, Outcome::Interrupted);
}

//! The sweep against the fake provider: what is executed, held, recorded.

use crate::audit::{Memory, Outcome};
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
    let mut audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &mut audit)
            .await;
    assert_eq!(fake.revoked_ids(), vec!["D1".to_string(), "D2".to_string()]);
    assert!(!report.failed());
    assert_eq!(audit.0.len(), 2);
    assert!(audit.0.iter().all(|r| r.outcome == Outcome::Revoked && r.employee.as_deref() == Some("dave")));

    // The next sweep finds nothing to do.
    let mut audit = Memory::default();
    let again =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &mut audit)
            .await;
    assert_eq!(again.plan.revocation_count(), 0);
    assert!(audit.0.is_empty());
}

#[tokio::test]
async fn plan_only_and_observe_change_nothing() {
    let (mut p, es, gs, fake) = leaver_setup();
    let mut audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::PlanOnly, &mut audit)
            .await;
    assert_eq!(report.plan.revocation_count(), 2);
    assert!(report.results.iter().all(|r| r.result == ActionResult::Planned));
    p.spec.policy.mode = Mode::Observe;
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &mut audit)
            .await;
    assert_eq!(report.plan.revocation_count(), 2);
    assert!(fake.revoked_ids().is_empty());
    assert!(audit.0.is_empty());
}

#[tokio::test]
async fn a_held_plan_records_blocked_revocations_and_revokes_nothing() {
    let (mut p, es, gs, fake) = leaver_setup();
    p.spec.policy.budget.max_revocations = 1;
    let mut audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &mut audit)
            .await;
    assert!(report.blocked());
    assert!(fake.revoked_ids().is_empty());
    assert_eq!(audit.0.len(), 2);
    assert!(
        audit
            .0
            .iter()
            .all(|r| r.outcome == Outcome::Blocked && r.detail.as_deref().unwrap_or("").contains(&report.plan.digest))
    );
}

#[tokio::test]
async fn one_failed_revocation_does_not_stop_the_others_and_is_recorded() {
    let (p, es, gs, fake) = leaver_setup();
    fake.failing_enrolments.lock().unwrap().push("D1".into());
    let mut audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &mut audit)
            .await;
    assert!(report.failed());
    assert_eq!(fake.revoked_ids(), vec!["D2".to_string()]);
    let failed = audit.0.iter().find(|r| r.enrolment == "D1").unwrap();
    assert_eq!(failed.outcome, Outcome::Failed);
    assert!(failed.detail.as_deref().unwrap().contains("revoke enrolment D1 of dave"));
}

#[tokio::test]
async fn a_failed_listing_revokes_nothing() {
    let (p, es, gs, fake) = leaver_setup();
    *fake.list_failure.lock().unwrap() = Some(Failure::Timeout(std::time::Duration::from_secs(10)));
    let mut audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &mut audit)
            .await;
    assert!(report.failed());
    assert!(report.plan.actions.is_empty());
    assert!(fake.revoked_ids().is_empty());
    assert!(audit.0.is_empty());
}

#[tokio::test]
async fn invitations_are_sent_where_the_provider_has_them() {
    let (p, es, mut gs, mut fake) = leaver_setup();
    gs[0].spec.enrolment = crate::crd::EnrolmentPolicy::Required;
    gs[0].spec.factors.push(FactorKind::new("webauthn"));
    fake.capabilities = Some(crate::engine::Capabilities { disable: true, invite: vec![FactorKind::new("webauthn")] });
    let mut audit = Memory::default();
    let report =
        sweep(&fake, &Declared { provider: &p, employees: &es, grants: &gs }, now(), Execution::Apply, &mut audit)
            .await;
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
    let mut audit = Memory::default();
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    let report = sweep_guarded(&fake, &declared, now(), Execution::Apply, &mut audit, guard).await;
    (report, fake, audit)
}

#[tokio::test]
async fn a_guard_that_says_no_defers_everything() {
    let guard = TestGuard { leader_for: 0.into(), ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert!(report.deferred);
    assert_eq!(report.plan.revocation_count(), 2, "planned");
    assert!(fake.revoked_ids().is_empty(), "but not carried out");
    assert!(audit.0.is_empty() && report.results.is_empty());
}

#[tokio::test]
async fn leadership_is_asked_again_before_every_provider_call() {
    // Yes before acting and for the first call, then lost: the second call is not made.
    let guard = TestGuard { leader_for: 2.into(), ..TestGuard::leader() };
    let (report, fake, audit) = guarded(&guard).await;
    assert_eq!(fake.revoked_ids().len(), 1, "one call made while leading");
    assert!(report.deferred);
    assert_eq!(report.results.iter().filter(|r| r.result == ActionResult::Deferred).count(), 1);
    assert_eq!(audit.0.len(), 1, "only the revocation made is recorded");
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
    assert!(audit.0.iter().any(|r| r.enrolment == "D1" && r.outcome == Outcome::Withdrawn));
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
    assert!(audit.0.iter().all(|r| r.outcome == Outcome::Blocked));
    let message = crate::engine::planner::hold_message(&report.plan).unwrap();
    assert!(message.contains("24 already made in the window"), "{message}");
}

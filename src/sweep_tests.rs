//! The sweep against the fake provider: what is executed, held, recorded.

use crate::audit::{Memory, Outcome};
use crate::crd::mfa_provider::Mode;
use crate::crd::{EmployeeState, FactorKind};
use crate::engine::fixtures::*;
use crate::providers::Failure;
use crate::providers::fake::FakeProvider;
use crate::sweep::{ActionResult, Declared, Execution, sweep};

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

#[tokio::test]
async fn a_guard_that_says_no_defers_everything() {
    let (p, es, gs, fake) = leaver_setup();
    let mut audit = Memory::default();
    let declared = Declared { provider: &p, employees: &es, grants: &gs };
    let report = crate::sweep::sweep_guarded(&fake, &declared, now(), Execution::Apply, &mut audit, &|| false).await;
    assert!(report.deferred);
    assert_eq!(report.plan.revocation_count(), 2, "planned");
    assert!(fake.revoked_ids().is_empty(), "but not carried out");
    assert!(audit.0.is_empty() && report.results.is_empty());
}

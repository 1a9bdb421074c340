//! The Employee reconciler: the finalizer that makes deletion revoke first, and the status
//! assembled from every provider's last sweep.

use super::context::{Context, locked};
use super::error::ControllerError;
use super::provider::FIELD_MANAGER;
use super::status;
use crate::crd::{Employee, ProviderKey};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub const FINALIZER: &str = "keyward.dev/revoke-enrolments";

#[tracing::instrument(skip_all, fields(employee = %format!("{}/{}", employee.namespace().unwrap_or_default(), employee.name_any())))]
pub async fn reconcile(employee: Arc<Employee>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if let Some(action) = not_now(&ctx) {
        return Ok(action);
    }
    let providers = match providers_held(&ctx, &employee) {
        Ok(providers) => providers,
        Err(action) => return Ok(action),
    };
    let found = standing(&ctx, &employee, &providers);
    let step = decide(&employee, found.settled);
    act(&ctx, &employee, step, &found).await
}

/// Why this replica decides nothing about Employees now, and when to look again.
fn not_now(ctx: &Context) -> Option<Action> {
    if !ctx.is_leader() {
        // A standby waits: gaining leadership re-checks every Employee (`LastSweep::concerns`).
        // A leader whose Lease lapsed between two renewals (no leadership change published)
        // looks again shortly, or this change would be lost.
        let leading = *ctx.leading.leader.borrow();
        return Some(if leading { Action::requeue(Duration::from_secs(1)) } else { Action::await_change() });
    }
    ctx.synced().is_err().then(|| Action::requeue(Duration::from_secs(1)))
}

/// The namespace's providers (not being deleted), when this installation holds every one.
fn providers_held(ctx: &Context, employee: &Employee) -> Result<Vec<ProviderKey>, Action> {
    let namespace = employee.namespace().unwrap_or_default();
    let providers: Vec<ProviderKey> = ctx
        .caches
        .providers
        .in_namespace(&namespace)
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| ProviderKey::of(p))
        .collect();
    // Another installation holds one of the namespace's providers: it writes what its sweeps
    // found, and only its sweeps can settle a deletion (the finalizer is one for all).
    match providers.iter().map(|key| ctx.leading.claims.standing(key)).find(|s| *s != super::claim::Standing::Holds) {
        Some(super::claim::Standing::HeldElsewhere { .. }) => Err(Action::await_change()),
        Some(_) => Err(Action::requeue(Duration::from_secs(1))),
        None => Ok(providers),
    }
}

/// What the reconcile does with the Employee.
#[derive(Debug, PartialEq)]
enum Step {
    /// Being deleted, and our finalizer is gone already.
    Nothing,
    /// Being deleted, and every provider has revoked its enrolments (or had none): our
    /// finalizer, at this index, goes and the Employee with it.
    Release(usize),
    /// Being deleted, revocations outstanding: status, and a look again later.
    Wait,
    /// Not being deleted: our finalizer added if missing, then status.
    Keep { add_finalizer: bool },
}

fn decide(employee: &Employee, settled: bool) -> Step {
    let index = employee.finalizers().iter().position(|f| f == FINALIZER);
    match (employee.metadata.deletion_timestamp.is_some(), index) {
        (true, None) => Step::Nothing,
        (true, Some(index)) if settled => Step::Release(index),
        (true, Some(_)) => Step::Wait,
        (false, index) => Step::Keep { add_finalizer: index.is_none() },
    }
}

async fn act(ctx: &Context, employee: &Employee, step: Step, found: &Standing) -> Result<Action, ControllerError> {
    let api: Api<Employee> = Api::namespaced(ctx.client.clone(), &employee.namespace().unwrap_or_default());
    let Standing { verdicts, revoked_at, swept, .. } = found;
    match step {
        Step::Nothing => Ok(Action::await_change()),
        Step::Release(index) => {
            remove_finalizer(&api, employee, index).await?;
            Ok(Action::await_change())
        }
        Step::Wait => {
            write_status(&api, employee, verdicts, *swept, *revoked_at).await?;
            // The provider sweeps that the deletion triggered call back; this is the safety net.
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        Step::Keep { add_finalizer } => {
            if add_finalizer {
                self::add_finalizer(&api, employee).await?;
            }
            write_status(&api, employee, verdicts, *swept, *revoked_at).await?;
            Ok(Action::await_change())
        }
    }
}

/// Removes our finalizer at `index`; the test op makes the patch fail rather than remove
/// another finalizer should the list have changed since the cache saw it.
async fn remove_finalizer(api: &Api<Employee>, employee: &Employee, index: usize) -> Result<(), ControllerError> {
    let patch = json!([
        { "op": "test", "path": format!("/metadata/finalizers/{index}"), "value": FINALIZER },
        { "op": "remove", "path": format!("/metadata/finalizers/{index}") },
    ]);
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap_or_default();
    api.patch(&employee.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch)).await.map(|_| ()).map_err(
        |source| ControllerError::RemoveFinalizer {
            namespace: employee.namespace().unwrap_or_default(),
            name: employee.name_any(),
            source,
        },
    )
}

async fn add_finalizer(api: &Api<Employee>, employee: &Employee) -> Result<(), ControllerError> {
    let patch = if employee.metadata.finalizers.is_none() {
        json!([{ "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] }])
    } else {
        json!([{ "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER }])
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap_or_default();
    api.patch(&employee.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch)).await.map(|_| ()).map_err(
        |source| ControllerError::AddFinalizer {
            namespace: employee.namespace().unwrap_or_default(),
            name: employee.name_any(),
            source,
        },
    )
}

/// What the last sweeps of the namespace's providers say about one Employee.
struct Standing {
    /// (MfaProvider name, verdict) per provider that manages it.
    verdicts: Vec<(String, crate::engine::plan::EmployeeVerdict)>,
    /// When a sweep last revoked from it.
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Every provider has revoked its enrolments (or had none): a deleted Employee may go.
    settled: bool,
    /// Every provider has been swept since start.
    swept: bool,
}

fn standing(ctx: &Context, employee: &Employee, providers: &[ProviderKey]) -> Standing {
    let name = employee.name_any();
    let sweeps = locked(&ctx.sweep.last);
    let mut verdicts = Vec::new();
    let mut revoked_at = None;
    for key in providers {
        if let Some(sweep) = sweeps.get(key) {
            // Status names the MfaProvider as the spec does: by name, in the Employee's own
            // namespace.
            let provider = key.name().to_string();
            verdicts.extend(sweep.verdicts_of(&name).iter().map(|v| (provider.clone(), v.clone())));
            if sweep.revoked.contains(&name) {
                revoked_at = revoked_at.max(Some(sweep.time));
            }
        }
    }
    // By UID: an Employee deleted and re-created under the same name is another person's
    // record, and the old one's settlement must not release the new one's finalizer.
    let uid = employee.uid().unwrap_or_default();
    let settled = providers.iter().all(|key| sweeps.get(key).is_some_and(|s| s.settled.contains(&uid)));
    let swept = providers.iter().all(|key| sweeps.contains_key(key));
    Standing { verdicts, revoked_at, settled, swept }
}

async fn write_status(
    api: &Api<Employee>,
    employee: &Employee,
    verdicts: &[(String, crate::engine::plan::EmployeeVerdict)],
    swept: bool,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), ControllerError> {
    let now = chrono::Utc::now();
    let new = status::employee_status(employee, verdicts, swept, revoked_at, now);
    if let Some(old) = &employee.status
        && old.providers == new.providers
        && old.observed_generation == new.observed_generation
        && status::same_conditions(&old.conditions, &new.conditions)
        && old.last_revocation_time == new.last_revocation_time
    {
        return Ok(());
    }
    let patch = json!({ "apiVersion": "keyward.dev/v1alpha1", "kind": "Employee", "metadata": { "name": employee.name_any() }, "status": new });
    api.patch_status(&employee.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map(|_| ())
        .map_err(|source| ControllerError::WriteStatus {
            kind: "Employee",
            namespace: employee.namespace().unwrap_or_default(),
            name: employee.name_any(),
            source,
        })
}

#[cfg(test)]
mod scripted_tests {
    use super::*;
    use crate::controller::context::LastSweep;
    use crate::controller::fixtures::{JSON_PATCH, World, scripted};
    use crate::crd::EmployeeState;
    use crate::engine::fixtures::{employee, k8s_time, now, provider};
    use crate::engine::plan::EmployeeVerdict;
    use std::collections::HashSet;

    fn alice() -> Employee {
        let mut e = employee("alice", &["sre"], EmployeeState::Active);
        e.metadata.uid = Some("uid-alice".into());
        e.metadata.generation = Some(1);
        e.metadata.finalizers = Some(vec!["example.com/keep".into(), FINALIZER.into()]);
        e
    }

    fn swept(verdicts: Vec<EmployeeVerdict>, settled: &[&str]) -> Arc<LastSweep> {
        let settled = settled.iter().map(|s| s.to_string()).collect();
        Arc::new(LastSweep::new("acme", verdicts, settled, HashSet::new(), now(), 1))
    }

    /// A deleting Employee that every provider has settled: its finalizer (and only ours,
    /// at its index, guarded by a test op) is removed.
    #[tokio::test]
    async fn a_settled_deletion_releases_the_finalizer() {
        let p = provider();
        let mut e = alice();
        e.metadata.deletion_timestamp = Some(k8s_time(now()));
        let server = scripted(World { providers: vec![p.clone()], employees: vec![e.clone()], ..Default::default() });
        server.claim(&p, None);
        locked(&server.ctx.sweep.last).insert(ProviderKey::of(&p), swept(vec![], &["uid-alice"]));
        let mut released = e.clone();
        released.metadata.finalizers = Some(vec!["example.com/keep".into()]);
        let patch = crate::controller::fixtures::Exchange::patch(
            "/apis/keyward.dev/v1alpha1/namespaces/acme/employees/alice?",
            JSON_PATCH,
            |body| {
                let expected = json!([
                    { "op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER },
                    { "op": "remove", "path": "/metadata/finalizers/1" },
                ]);
                assert_eq!(body, expected);
            },
            &released,
        );
        let action = server.run(vec![patch], |ctx| reconcile(Arc::new(e), ctx)).await;
        assert_eq!(action.expect("reconciled"), Action::await_change());
    }

    /// An Employee whose status already says what the sweeps found: no request at all.
    #[tokio::test]
    async fn an_unchanged_status_is_not_written() {
        let p = provider();
        let mut e = alice();
        let verdict = EmployeeVerdict {
            employee: "alice".into(),
            user: "alice".into(),
            entitled: vec![crate::crd::FactorKind::new("totp")],
            enrolments: Vec::new(),
            conflicts_with: Vec::new(),
        };
        let server = scripted(World { providers: vec![p.clone()], employees: vec![e.clone()], ..Default::default() });
        server.claim(&p, None);
        locked(&server.ctx.sweep.last).insert(ProviderKey::of(&p), swept(vec![verdict], &[]));
        let Standing { verdicts, revoked_at, swept, .. } = standing(&server.ctx, &e, &[ProviderKey::of(&p)]);
        assert_eq!(verdicts.len(), 1, "the sweep's verdict on alice");
        let earlier = chrono::Utc::now() - chrono::Duration::hours(1);
        e.status = Some(status::employee_status(&e, &verdicts, swept, revoked_at, earlier));
        let action = server.run(vec![], |ctx| reconcile(Arc::new(e), ctx)).await;
        assert_eq!(action.expect("reconciled"), Action::await_change());
    }
}

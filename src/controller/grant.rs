//! The AccessGrant reconciler: matched Employees and whether the grant can take effect.

use super::context::Context;
use super::error::ControllerError;
use super::provider::write_grant_status;
use crate::crd::AccessGrant;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use std::sync::Arc;
use std::time::Duration;

pub async fn reconcile(grant: Arc<AccessGrant>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if !ctx.is_leader() {
        return Ok(Action::await_change());
    }
    if ctx.synced().is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = grant.namespace().unwrap_or_default();
    let provider_exists = ctx.providers.in_namespace(&namespace).iter().any(|p| p.name_any() == grant.spec.provider);
    let employees = ctx.employees.in_namespace(&namespace);
    write_grant_status(&ctx, &grant, &employees, provider_exists).await?;
    // Validity changes with time alone: look again at the next boundary (or in 5 minutes).
    let now = chrono::Utc::now();
    let next = [grant.spec.valid_from, grant.spec.valid_until]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min()
        .and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(300));
    Ok(Action::requeue(next.min(Duration::from_secs(300)) + Duration::from_secs(1)))
}

//! The AccessGrant reconciler: matched Employees and whether the grant can take effect.

use super::context::Context;
use super::error::ControllerError;
use super::provider::write_grant_status;
use crate::crd::conditions::Condition;
use crate::crd::{AccessGrant, MfaProvider};
use crate::providers::kinds::Reported;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// Condition type on an AccessGrant: whether its provider can report every kind it grants.
pub const FACTOR_KINDS_REPORTED: &str = "FactorKindsReported";

/// Why an AccessGrant names factor kinds its provider never reports (`None`: it names none,
/// or the provider's block is unreadable — the MfaProvider reports that itself).
pub fn unreported_kinds(grant: &AccessGrant, provider: &MfaProvider) -> Option<String> {
    let block = provider.spec.block().ok()?;
    let reported = Reported::of(&block);
    let never = reported.never_reported(&grant.spec.factors);
    (!never.is_empty()).then(|| reported.message(&block, &never))
}

/// The `FactorKindsReported` condition of `grant` on `provider`: True when every kind it
/// grants is one the provider reports, False naming the others. Merged with
/// [`crate::crd::conditions::upsert`] like the others.
pub fn factor_kinds_condition(
    grant: &AccessGrant,
    provider: &MfaProvider,
    now: chrono::DateTime<chrono::Utc>,
) -> Condition {
    match unreported_kinds(grant, provider) {
        Some(message) => {
            Condition::new(FACTOR_KINDS_REPORTED, false, "NeverReported", message, now, grant.metadata.generation)
        }
        None => Condition::new(FACTOR_KINDS_REPORTED, true, "AllReported", "", now, grant.metadata.generation),
    }
}

pub async fn reconcile(grant: Arc<AccessGrant>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if !ctx.is_leader() {
        return Ok(Action::await_change());
    }
    if ctx.synced().is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = grant.namespace().unwrap_or_default();
    let provider = ctx.caches.providers.get(&namespace, &grant.spec.provider);
    let employees = ctx.caches.employees.in_namespace(&namespace);
    write_grant_status(&ctx, &grant, &employees, provider.as_deref()).await?;
    if let Some(message) = provider.as_deref().and_then(|p| unreported_kinds(&grant, p)) {
        warn_unreported(&ctx, &grant, message).await;
    }
    Ok(Action::requeue(next_look(&grant, chrono::Utc::now())))
}

/// Names factor kinds the provider never reports where an operator looks: the log and a
/// Warning Event on the grant (the recorder folds repeats into one series).
async fn warn_unreported(ctx: &Context, grant: &AccessGrant, message: String) {
    let namespace = grant.namespace().unwrap_or_default();
    tracing::warn!(grant = %grant.name_any(), %namespace, %message, "grant names factor kinds its provider never reports");
    let event = Event {
        type_: EventType::Warning,
        reason: "UnreportedFactorKinds".into(),
        note: Some(message),
        action: "Validate".into(),
        secondary: None,
    };
    if let Err(e) = ctx.outputs.recorder.publish(&event, &grant.object_ref(&())).await {
        tracing::warn!(error = %e, grant = %grant.name_any(), "publish event");
    }
}

/// Validity changes with time alone: look again just after the next boundary (at most five
/// minutes away).
fn next_look(grant: &AccessGrant, now: chrono::DateTime<chrono::Utc>) -> Duration {
    let next = [grant.spec.valid_from, grant.spec.valid_until]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min()
        .and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(300));
    next.min(Duration::from_secs(300)) + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_totp_grant_on_google_is_named_in_its_condition() {
        let provider: MfaProvider = serde_yaml::from_str(
            "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {name: g, namespace: acme}\nspec:\n  googleWorkspace:\n    adminEmail: admin@acme.example\n    credentials: {secretRef: {name: g}}\n",
        )
        .expect("provider");
        let grant = |factors: &str| -> AccessGrant {
            serde_yaml::from_str(&format!(
                "apiVersion: keyward.dev/v1alpha1\nkind: AccessGrant\nmetadata: {{name: staff, namespace: acme, generation: 3}}\nspec: {{provider: g, subjects: {{roles: [sre]}}, factors: [{factors}]}}\n"
            ))
            .expect("grant")
        };
        let now = chrono::Utc::now();
        let wrong = factor_kinds_condition(&grant("totp, 2sv"), &provider, now);
        assert_eq!((wrong.status.as_str(), wrong.reason.as_str()), ("False", "NeverReported"));
        assert!(wrong.message.contains("Google Workspace never reports the factor kind `totp`"), "{}", wrong.message);
        assert_eq!(wrong.observed_generation, Some(3));
        let right = factor_kinds_condition(&grant("2sv"), &provider, now);
        assert_eq!((right.status.as_str(), right.reason.as_str(), right.message.as_str()), ("True", "AllReported", ""));
    }
}

//! Changes to the MfaProvider settings that can stop revocations (suspend, protectedUsers,
//! policy.mode, policy.budget) go on record before keyward acts on them: an audit record, a
//! Warning Event, a notification to the provider's targets, and the settings as recorded in
//! the provider's `status.guardedSettings` — so that a change made while no replica led, or
//! across a restart, is still found by comparing with what was last recorded
//! (docs/contract.md, rule 7).

use super::context::{Context, locked};
use super::error::ControllerError;
use crate::audit::{AuditRecord, Event, Outcome};
use crate::crd::{MfaProvider, ProviderKey};
use crate::engine::guarded::{GuardedSettings, changes};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

/// The field manager of `status.guardedSettings`: apart from the rest of the status, which
/// keyward's other manager applies whole and would otherwise remove.
const SETTINGS_MANAGER: &str = "keyward-settings";

/// Records a change to the guarded settings, if there is one. The first sight of a provider
/// (nothing recorded yet) records the settings as they are, with no audit record: there is
/// no "before" to compare with.
pub async fn record_changes(ctx: &Context, provider: &MfaProvider) -> Result<(), ControllerError> {
    let key = ProviderKey::of(provider);
    let now = GuardedSettings::of(&provider.spec);
    let now_text = now.to_status();
    let stored = provider.status.as_ref().and_then(|s| s.guarded_settings.clone());
    if stored.as_deref() == Some(now_text.as_str()) {
        locked(&ctx.sweep.recorded_settings).remove(&key);
        return Ok(());
    }
    // Recorded by this process already (the cache has not caught up with the status write, or
    // that write failed): only the status is written again, never a second record.
    let recorded_here = locked(&ctx.sweep.recorded_settings).get(&key) == Some(&now_text);
    let recorded = stored.as_deref().and_then(GuardedSettings::from_status).filter(|_| !recorded_here);
    if let Some(recorded) = recorded {
        let lines = changes(&recorded, &now);
        if !lines.is_empty() {
            let detail = lines.join("; ");
            let record = AuditRecord {
                source_revision: provider.annotations().get(crate::crd::SOURCE_REVISION_ANNOTATION).cloned(),
                ..AuditRecord::about_provider(
                    key.as_str(),
                    Event::SettingsChanged,
                    Outcome::Changed,
                    Some(detail.clone()),
                )
            };
            ctx.outputs
                .audit
                .record(&record)
                .await
                .map_err(|source| ControllerError::RecordSettings { provider: key.to_string(), source })?;
            tracing::warn!(provider = %key, changes = %detail, "a setting that can stop revocations changed");
            super::provider::publish_provider_event(
                ctx,
                provider,
                EventType::Warning,
                "GuardedSettingsChanged",
                "RecordSettings".into(),
                format!("changed: {detail}"),
            )
            .await;
            ctx.outputs.notifier.notify_settings(provider, &lines).await;
        }
    }
    locked(&ctx.sweep.recorded_settings).insert(key, now_text.clone());
    write_recorded(ctx, provider, &now_text).await
}

/// `status.guardedSettings`, under its own field manager.
async fn write_recorded(ctx: &Context, provider: &MfaProvider, now_text: &str) -> Result<(), ControllerError> {
    let api: Api<MfaProvider> = Api::namespaced(ctx.client.clone(), &provider.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "keyward.dev/v1alpha1", "kind": "MfaProvider",
        "metadata": {"name": provider.name_any()},
        "status": {"guardedSettings": now_text},
    });
    let params = PatchParams::apply(SETTINGS_MANAGER).force();
    let name = provider.name_any();
    super::status::write_retrying(|| async {
        api.patch_status(&name, &params, &Patch::Apply(&patch)).await.map(|_| ())
    })
    .await
    .map_err(|source| ControllerError::WriteStatus {
        kind: "MfaProvider",
        namespace: provider.namespace().unwrap_or_default(),
        name: provider.name_any(),
        source,
    })
}

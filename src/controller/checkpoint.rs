//! Copies the audit log's signed checkpoint out of the operator's volume, into a ConfigMap
//! beside the Lease: whoever can rewrite the volume (and so the log and the checkpoint next to
//! it) cannot also rewrite this copy without RBAC on it, and a log cut short then no longer
//! matches the last copy. Each replica writes its own log (only while it leads), so each has
//! its own key in the ConfigMap, named by its identity and owned by its own field manager
//! (`kubectl get configmap … -o jsonpath='{.data.<pod>}'` gives `keyward audit verify
//! --checkpoint` its file). Beside them, `verifier` holds the verifier key of the signing
//! key, so that auditors can take it from where the operator publishes it (`--key`); a
//! verifier that changes between two copies is itself evidence of a key swap.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// How often the checkpoint is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(60);
/// A copy at least this often, even when nothing was written since (it shows the log was
/// unchanged until then).
const COPY_AT_LEAST_EVERY: Duration = Duration::from_secs(3600);
/// A copy whenever this many records were added since the last.
const COPY_EVERY_RECORDS: u64 = 100;

/// The ConfigMap key of the verifier key.
pub const VERIFIER_KEY: &str = "verifier";

/// The ConfigMap that holds the copy, for a Lease named `lease`.
pub fn config_map_name(lease: &str) -> String {
    format!("{lease}-audit-checkpoint")
}

/// Whether to copy now: `count` records in the log, `copied` at the last copy (none yet),
/// `since` the last copy.
pub fn due(count: u64, copied: Option<u64>, since: Duration) -> bool {
    match copied {
        None => true,
        Some(copied) => count >= copied + COPY_EVERY_RECORDS || (since >= COPY_AT_LEAST_EVERY && count >= copied),
    }
}

/// Runs until `shutdown`, copying while this replica leads (only the leader writes the log),
/// and once more on the way out.
pub async fn copy_until_shutdown(
    api: Api<ConfigMap>,
    name: String,
    identity: String,
    verifier: String,
    log: PathBuf,
    leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let checkpoint = crate::audit::checkpoint_path(&log);
    let mut copied: Option<(u64, tokio::time::Instant)> = None;
    let mut stopping = false;
    loop {
        if let Ok(note) = std::fs::read_to_string(&checkpoint)
            && let Some(at) = crate::audit::Checkpoint::parse(&note)
        {
            let since = copied.map_or(Duration::MAX, |(_, when)| when.elapsed());
            // On the way out, leadership has already ended: copy if this process wrote since.
            let wrote_since = copied.is_none_or(|(n, _)| at.count > n);
            let copy =
                if stopping { wrote_since } else { *leader.borrow() && due(at.count, copied.map(|(n, _)| n), since) };
            if copy {
                match write(&api, &name, &identity, &verifier, &note).await {
                    Ok(()) => copied = Some((at.count, tokio::time::Instant::now())),
                    Err(e) => tracing::warn!(error = %e, configmap = %name, "copy the audit checkpoint"),
                }
            }
        }
        if stopping {
            return;
        }
        stopping = tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => false,
            _ = shutdown.changed() => true,
        };
    }
}

/// The ConfigMap key (and field manager suffix) of a replica: its identity, with what a key
/// may not hold replaced.
pub fn key_of(identity: &str) -> String {
    let key: String = identity
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '_' })
        .take(100)
        .collect();
    // A replica named `verifier` must not overwrite the verifier key.
    if key == VERIFIER_KEY { format!("{key}_") } else { key }
}

async fn write(
    api: &Api<ConfigMap>,
    name: &str,
    identity: &str,
    verifier: &str,
    note: &str,
) -> Result<(), kube::Error> {
    let key = key_of(identity);
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "keyward"}},
        "data": {key.clone(): note, VERIFIER_KEY: verifier},
    });
    // A field manager of its own: another replica's apply leaves this key alone.
    let manager = format!("{}-{key}", super::provider::FIELD_MANAGER);
    api.patch(name, &PatchParams::apply(&manager).force(), &Patch::Apply(body)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_first_then_every_hundred_records_and_hourly() {
        let minute = Duration::from_secs(60);
        assert!(due(0, None, Duration::MAX), "the first look copies");
        assert!(!due(150, Some(100), minute), "fewer than a hundred new records, within the hour");
        assert!(due(200, Some(100), minute));
        assert!(due(100, Some(100), COPY_AT_LEAST_EVERY), "hourly even when unchanged");
        assert!(!due(100, Some(100), minute));
    }

    #[test]
    fn each_replica_has_a_key_of_its_own() {
        assert_eq!(key_of("keyward-7d9f6c-abcde"), "keyward-7d9f6c-abcde");
        assert_eq!(key_of("host:name/x"), "host_name_x");
        assert_eq!(key_of("verifier"), "verifier_", "never the verifier key's own");
    }
}

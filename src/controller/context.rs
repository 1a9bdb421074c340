//! Shared state of the reconcilers, built once at start.

use super::caches::Cache;
use super::config::RunArgs;
use crate::audit::Channel;
use crate::crd::mfa_provider::RevocationTally;
use crate::crd::{AccessGrant, Employee, MfaProvider};
use crate::engine::plan::EmployeeVerdict;
use crate::metrics::Metrics;
use crate::providers::{self, MfaBackend, ProviderError};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Locks a mutex of the operator's shared state. A panic while it was held leaves plain maps
/// that are still consistent (every update is a single insert or remove), so the data is
/// used rather than the operator stopped.
pub fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The last sweep of one provider, as the Employee and grant reconcilers need it.
#[derive(Clone, Debug, Default)]
pub struct LastSweep {
    pub namespace: String,
    pub verdicts: Vec<EmployeeVerdict>,
    /// Deleting Employees (by UID) that have nothing left to revoke on this provider: it no
    /// longer holds their finalizer.
    pub settled: HashSet<String>,
    /// Employees with a revocation carried out in that sweep.
    pub revoked: HashSet<String>,
}

/// Provider clients by provider key, with the fingerprint they were built from.
type Backends = HashMap<String, (String, Arc<dyn MfaBackend>)>;

pub struct Context {
    pub client: Client,
    pub args: RunArgs,
    pub providers: Cache<MfaProvider>,
    pub employees: Cache<Employee>,
    pub grants: Cache<AccessGrant>,
    pub secrets: Cache<Secret>,
    /// Leadership as transitions (logs, metrics, the sweep of everything on gaining it).
    pub leader: watch::Receiver<bool>,
    /// Whether this replica may act right now: lapses on its own when renewals stop.
    pub leadership: super::leader::Leadership,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub audit: Channel,
    /// Provider clients, kept across sweeps so their sessions (JWTs, tokens) are reused;
    /// rebuilt when the MfaProvider's spec or its Secret changes.
    pub backends: Mutex<Backends>,
    pub sweeps: Mutex<BTreeMap<String, LastSweep>>,
    /// When a change that concerns a provider was first observed and not yet swept.
    pub changes: Arc<Mutex<HashMap<String, Instant>>>,
    pub employee_trigger: futures::channel::mpsc::UnboundedSender<kube::runtime::reflector::ObjectRef<Employee>>,
    /// Revocations made per provider within its budget window, as this process knows them;
    /// merged with the MfaProvider's status, where another replica's revocations show.
    pub ledgers: Mutex<HashMap<String, Vec<RevocationTally>>>,
    /// Consecutive failures per object, for backoff by what failed.
    pub retries: crate::retry::Attempts,
}

impl Context {
    pub fn is_leader(&self) -> bool {
        self.leadership.holds()
    }

    /// The provider's budget ledger: what this process recorded, plus what its status says
    /// (written by this or another replica; the cached status may lag our own last write).
    pub fn ledger(&self, provider: &MfaProvider) -> Vec<RevocationTally> {
        let key = crate::engine::planner::provider_key(provider);
        let mut ledger = locked(&self.ledgers).get(&key).cloned().unwrap_or_default();
        for tally in provider.status.iter().flat_map(|s| s.recent_revocations.iter()) {
            if !ledger.contains(tally) {
                ledger.push(tally.clone());
            }
        }
        ledger.sort_by_key(|t| t.time);
        ledger
    }

    /// Whether every cache holds a complete list.
    pub fn synced(&self) -> Result<(), String> {
        self.providers.synced()?;
        self.employees.synced()?;
        self.grants.synced()?;
        self.secrets.synced()
    }

    fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let secret = self
            .secrets
            .state()
            .into_iter()
            .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == name)?;
        if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.clone());
        }
        let bytes = secret.data.as_ref()?.get(key)?;
        String::from_utf8(bytes.0.clone()).ok()
    }

    fn secret_version(&self, namespace: &str, provider: &MfaProvider) -> String {
        let names = crate::providers::secret_names(provider);
        let mut versions: Vec<String> = self
            .secrets
            .state()
            .into_iter()
            .filter(|s| s.namespace().as_deref() == Some(namespace) && names.contains(&s.name_any()))
            .map(|s| format!("{}@{}", s.name_any(), s.resource_version().unwrap_or_default()))
            .collect();
        versions.sort();
        versions.join(",")
    }

    /// The client for a provider, reused while its spec and Secret are unchanged.
    pub fn backend(&self, provider: &MfaProvider) -> Result<Arc<dyn MfaBackend>, ProviderError> {
        let key = crate::engine::planner::provider_key(provider);
        let namespace = provider.namespace().unwrap_or_default();
        let fingerprint = format!(
            "{}|{}|{}",
            provider.uid().unwrap_or_default(),
            provider.metadata.generation.unwrap_or_default(),
            self.secret_version(&namespace, provider)
        );
        if let Some((print, backend)) = locked(&self.backends).get(&key)
            && *print == fingerprint
        {
            return Ok(backend.clone());
        }
        let lookup = |secret: &str, field: &str| self.secret_value(&namespace, secret, field);
        let backend: Arc<dyn MfaBackend> = Arc::from(providers::connect(provider, &lookup)?);
        locked(&self.backends).insert(key, (fingerprint, backend.clone()));
        Ok(backend)
    }
}

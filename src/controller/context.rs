//! Shared state of the reconcilers, built once at start.

use super::caches::Cache;
use super::config::RunArgs;
use crate::crd::mfa_provider::RevocationTally;
use crate::crd::{AccessGrant, Employee, MfaProvider, ProviderKey, RevocationApproval};
use crate::engine::plan::EmployeeVerdict;
use crate::metrics::Metrics;
use crate::providers::{self, Provider, ProviderError};
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

/// The last sweep of one provider, as the Employee and grant reconcilers need it. Shared
/// (`Arc`) between the sweep that made it and every reconciler that reads it.
#[derive(Clone, Debug, Default)]
pub struct LastSweep {
    pub namespace: String,
    /// The verdicts by Employee name: an Employee's reconcile looks up its own, instead of
    /// scanning every verdict (which made a sweep's status updates O(Employees²)).
    verdicts: HashMap<String, Vec<EmployeeVerdict>>,
    /// Deleting Employees (by UID) that have nothing left to revoke on this provider: it no
    /// longer holds their finalizer.
    pub settled: HashSet<String>,
    /// Employees with a revocation carried out in that sweep.
    pub revoked: HashSet<String>,
    /// When the sweep finished, to the second: an Employee's `lastRevocationTime` when it
    /// revoked from them. Fixed per sweep, so that writing it again changes nothing.
    pub time: chrono::DateTime<chrono::Utc>,
    /// The [`Leading::epoch`] it was made in.
    pub epoch: u64,
    /// The last full sweep behind these verdicts (targeted sweeps since updated some of them).
    pub last_full: Option<super::targets::LastFull>,
    /// What that full sweep's listing showed, for the targeted sweeps after it.
    pub listing: crate::sweep::FullListing,
}

impl LastSweep {
    pub fn new(
        namespace: &str,
        verdicts: Vec<EmployeeVerdict>,
        settled: HashSet<String>,
        revoked: HashSet<String>,
        time: chrono::DateTime<chrono::Utc>,
        epoch: u64,
    ) -> Self {
        let mut by_employee: HashMap<String, Vec<EmployeeVerdict>> = HashMap::new();
        for verdict in verdicts {
            by_employee.entry(verdict.employee.clone()).or_default().push(verdict);
        }
        use chrono::SubsecRound;
        LastSweep {
            namespace: namespace.to_string(),
            verdicts: by_employee,
            settled,
            revoked,
            time: time.trunc_subsecs(0),
            epoch,
            last_full: None,
            listing: Default::default(),
        }
    }

    /// This sweep with a targeted sweep's results laid over it: the verdicts of `employees`
    /// (the Employees the targeted users map to) replaced by `targeted`'s, its settled
    /// Employees added, its revocations the ones to report. The last full sweep stays.
    pub fn with_targeted(&self, employees: &HashSet<String>, targeted: LastSweep) -> LastSweep {
        let mut verdicts = self.verdicts.clone();
        verdicts.retain(|name, _| !employees.contains(name));
        verdicts.extend(targeted.verdicts);
        let mut settled = self.settled.clone();
        settled.extend(targeted.settled);
        LastSweep {
            namespace: self.namespace.clone(),
            verdicts,
            settled,
            revoked: targeted.revoked,
            time: targeted.time,
            epoch: self.epoch,
            last_full: self.last_full.clone(),
            listing: self.listing.clone(),
        }
    }

    /// This provider's verdicts on the Employee named `employee`.
    pub fn verdicts_of(&self, employee: &str) -> &[EmployeeVerdict] {
        self.verdicts.get(employee).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether `employee`'s status may read differently after this sweep than after
    /// `previous` (none: the provider's first sweep; or one made before this replica last
    /// gained leadership, since a replica that does not lead ignores every Employee change):
    /// its verdicts changed, something was revoked from it, or it is being deleted (this sweep
    /// may release its finalizer).
    pub fn concerns(&self, employee: &Employee, previous: Option<&LastSweep>) -> bool {
        let name = employee.name_any();
        previous.is_none_or(|p| p.epoch != self.epoch || p.verdicts_of(&name) != self.verdicts_of(&name))
            || self.revoked.contains(&name)
            || employee.metadata.deletion_timestamp.is_some()
    }
}

/// Connected providers by key, with the fingerprint each was connected from.
type Connected = HashMap<ProviderKey, (String, Arc<Provider>)>;

/// What the reconcilers share: the cluster as the caches hold it, whether this replica may
/// act, what earlier sweeps left for later ones, and where decisions are reported. Built once
/// by `start::run`; in tests from a scripted API server's client (`fixtures`).
pub struct Context {
    pub client: Client,
    pub args: RunArgs,
    pub caches: Caches,
    pub leading: Leading,
    pub sweep: SweepState,
    pub outputs: Outputs,
}

/// The reflected objects of the kinds a sweep reads.
pub struct Caches {
    pub providers: Cache<MfaProvider>,
    pub employees: Cache<Employee>,
    pub grants: Cache<AccessGrant>,
    pub secrets: Cache<Secret>,
    /// RevocationApprovals. Not part of [`Caches::synced`]: an approval not yet listed only
    /// holds a plan a little longer, and its arrival sweeps the provider it names.
    pub approvals: Cache<RevocationApproval>,
}

impl Caches {
    /// Whether every cache holds a complete list.
    pub fn synced(&self) -> Result<(), String> {
        self.providers.synced()?;
        self.employees.synced()?;
        self.grants.synced()?;
        self.secrets.synced()
    }
}

/// Whether, and on which providers, this replica may act.
pub struct Leading {
    /// Leadership as transitions (logs, metrics, the sweep of everything on gaining it).
    pub leader: watch::Receiver<bool>,
    /// Whether this replica may act right now: lapses on its own when renewals stop.
    pub lease: super::leader::Leadership,
    /// Counts the times this replica gained leadership. Changes seen while it did not lead
    /// were ignored, so the first sweep of each provider in a new epoch re-checks the status
    /// of every Employee (see [`LastSweep::concerns`]).
    pub epoch: std::sync::atomic::AtomicU64,
    /// Which MfaProviders this installation holds, and who holds the others.
    pub claims: super::claim::Claims,
}

/// What one reconcile leaves for the next: connected providers, last sweeps, pending
/// changes, budget ledgers, recorded settings and retry counts.
#[derive(Default)]
pub struct SweepState {
    /// Connected providers, kept across sweeps so their sessions (JWTs, tokens) are reused;
    /// connected anew when the MfaProvider's spec or its Secret changes.
    pub connected: Mutex<Connected>,
    /// Each provider's last sweep, for the Employee and grant reconcilers.
    pub last: Mutex<BTreeMap<ProviderKey, Arc<LastSweep>>>,
    /// Where each provider's event log was read up to, in this leadership term.
    pub cursors: Mutex<super::events::Cursors>,
    /// The users whose declared state changed since each provider's last sweep.
    pub targets: super::targets::Targets,
    /// When a change that concerns a provider was first observed and not yet swept.
    pub changes: Arc<Mutex<HashMap<ProviderKey, Instant>>>,
    /// Revocations made per provider within its budget window, as this process knows them;
    /// merged with the MfaProvider's status, where another replica's revocations show.
    pub ledgers: Mutex<HashMap<ProviderKey, Vec<RevocationTally>>>,
    /// Per MfaProvider, the guarded settings this process last recorded (audit record and
    /// status), until the provider cache shows the status it wrote: a reconcile in between
    /// records nothing twice.
    pub recorded_settings: Mutex<HashMap<ProviderKey, String>>,
    /// Consecutive failures per object, for backoff by what failed.
    pub retries: crate::retry::Attempts,
}

/// Where decisions go besides the API server's objects: metrics, Events, the audit trail,
/// notifications, and the reconciles a sweep asks for.
pub struct Outputs {
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// The audit trail, shared by every sweep: a record is durable when `record` returns.
    pub audit: Arc<dyn crate::audit::AuditSink>,
    /// Sends each sweep's news to the MfaProvider's notification targets.
    pub notifier: crate::notify::Notifier,
    /// Asks for an Employee's reconcile (a sweep that changed what its status says).
    pub employee_trigger: futures::channel::mpsc::UnboundedSender<kube::runtime::reflector::ObjectRef<Employee>>,
    /// Asks for a provider's reconcile (the event-log follower).
    pub provider_trigger: futures::channel::mpsc::UnboundedSender<kube::runtime::reflector::ObjectRef<MfaProvider>>,
}

impl SweepState {
    /// The provider's budget ledger: what this process recorded, plus what its status says
    /// (written by this or another replica; the cached status may lag our own last write).
    pub fn ledger(&self, provider: &MfaProvider) -> Vec<RevocationTally> {
        let key = ProviderKey::of(provider);
        let mut ledger = locked(&self.ledgers).get(&key).cloned().unwrap_or_default();
        for tally in provider.status.iter().flat_map(|s| s.recent_revocations.iter()) {
            if !ledger.contains(tally) {
                ledger.push(tally.clone());
            }
        }
        ledger.sort_by_key(|t| t.time);
        ledger
    }
}

impl Context {
    pub fn is_leader(&self) -> bool {
        self.leading.lease.holds()
    }

    /// Whether every cache holds a complete list.
    pub fn synced(&self) -> Result<(), String> {
        self.caches.synced()
    }

    fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        crate::notify::delivery::SecretSource::value(&self.caches.secrets, namespace, name, key)
    }

    fn secret_version(&self, namespace: &str, provider: &MfaProvider) -> String {
        let names = crate::providers::secret_names(provider);
        let mut versions: Vec<String> = self
            .caches
            .secrets
            .state()
            .into_iter()
            .filter(|s| s.namespace().as_deref() == Some(namespace) && names.contains(&s.name_any()))
            .map(|s| format!("{}@{}", s.name_any(), s.resource_version().unwrap_or_default()))
            .collect();
        versions.sort();
        versions.join(",")
    }

    /// The provider an MfaProvider declares, connected once and reused while its spec and
    /// Secret are unchanged.
    pub fn connect(&self, provider: &MfaProvider) -> Result<Arc<Provider>, ProviderError> {
        let key = ProviderKey::of(provider);
        let namespace = provider.namespace().unwrap_or_default();
        let fingerprint = format!(
            "{}|{}|{}",
            provider.uid().unwrap_or_default(),
            provider.metadata.generation.unwrap_or_default(),
            self.secret_version(&namespace, provider)
        );
        if let Some((print, connected)) = locked(&self.sweep.connected).get(&key)
            && *print == fingerprint
        {
            return Ok(connected.clone());
        }
        let lookup = |secret: &str, field: &str| self.secret_value(&namespace, secret, field);
        let connected = Arc::new(providers::connect(provider, &lookup)?);
        locked(&self.sweep.connected).insert(key, (fingerprint, connected.clone()));
        Ok(connected)
    }
}

/// A key of a Secret the cache holds (the ones labelled `keyward.dev/credentials`).
impl crate::notify::delivery::SecretSource for Cache<Secret> {
    fn value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let secret =
            self.state().into_iter().find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == name)?;
        if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.clone());
        }
        let bytes = secret.data.as_ref()?.get(key)?;
        String::from_utf8(bytes.0.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EmployeeState;
    use crate::engine::fixtures::{employee, k8s_time, now};
    use crate::engine::plan::EmployeeVerdict;

    fn verdict(employee: &str, entitled: &[&str]) -> EmployeeVerdict {
        EmployeeVerdict {
            employee: employee.into(),
            user: employee.into(),
            entitled: entitled.iter().map(|k| crate::crd::FactorKind::new(k)).collect(),
            enrolments: Vec::new(),
            conflicts_with: Vec::new(),
        }
    }

    fn sweep(verdicts: Vec<EmployeeVerdict>, revoked: &[&str]) -> LastSweep {
        LastSweep::new("acme", verdicts, HashSet::new(), revoked.iter().map(|n| n.to_string()).collect(), now(), 1)
    }

    /// A sweep reconciles again only the Employees whose status it may change: everyone after
    /// the provider's first sweep, then those whose verdicts changed, lost something, or are
    /// being deleted.
    #[test]
    fn a_sweep_concerns_only_the_employees_it_changed() {
        let alice = employee("alice", &["sre"], EmployeeState::Active);
        let bob = employee("bob", &["sre"], EmployeeState::Active);
        let mut carol = employee("carol", &["sre"], EmployeeState::Active);
        let first = sweep(vec![verdict("alice", &["totp"]), verdict("bob", &["totp"]), verdict("carol", &[])], &[]);
        assert!([&alice, &bob, &carol].iter().all(|e| first.concerns(e, None)), "first sweep: everyone");

        let same = sweep(vec![verdict("alice", &["totp"]), verdict("bob", &["totp"]), verdict("carol", &[])], &[]);
        assert!(![&alice, &bob, &carol].iter().any(|e| same.concerns(e, Some(&first))), "nothing changed");

        let bob_lost = sweep(vec![verdict("alice", &["totp"]), verdict("bob", &[]), verdict("carol", &[])], &["bob"]);
        assert!(!bob_lost.concerns(&alice, Some(&same)));
        assert!(bob_lost.concerns(&bob, Some(&same)));
        assert_eq!(bob_lost.verdicts_of("bob"), [verdict("bob", &[])]);

        carol.metadata.deletion_timestamp = Some(k8s_time(now()));
        assert!(bob_lost.concerns(&carol, Some(&bob_lost)), "a deleting Employee may be released");

        // Leadership lost and regained: everyone once more.
        let mut regained = sweep(vec![verdict("alice", &["totp"]), verdict("bob", &[]), verdict("carol", &[])], &[]);
        regained.epoch = 2;
        assert!(regained.concerns(&alice, Some(&bob_lost)));
    }
}

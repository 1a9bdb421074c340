//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder acts; another replica
//! takes over once the holder stops renewing for a lease duration.
//!
//! The semantics are client-go's: a follower judges a lease expired by how long *it* has seen
//! the lease record unchanged (its own monotonic clock), never by comparing its clock with the
//! holder's `renewTime`, which a skewed clock would break. The holder acts only until its
//! last successful renewal, counted from when that renewal *started*, plus two thirds of the
//! duration: a follower cannot take over before the renewal's start plus a whole duration, so
//! a renewal that hangs ends leadership on its own, without waiting for the call to fail.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What to do with the Lease as it stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Create,
    /// We hold it: renew.
    Renew,
    /// Held by someone who stopped renewing (or released it): take it over.
    TakeOver,
    /// Held by someone else, still valid.
    Follow {
        holder: String,
    },
}

/// `unchanged_for`: how long this replica has seen the lease record as it is now.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = spec else { return Decision::Create };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15));
    if unchanged_for >= duration { Decision::TakeOver } else { Decision::Follow { holder } }
}

/// The parts of a lease record whose change shows that its holder is alive.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    renewed: Option<MicroTime>,
    acquired: Option<MicroTime>,
    transitions: Option<i32>,
    duration: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Record {
            holder: spec.holder_identity.clone(),
            renewed: spec.renew_time.clone(),
            acquired: spec.acquire_time.clone(),
            transitions: spec.lease_transitions,
            duration: spec.lease_duration_seconds,
        }
    }
}

/// Until when this replica may act as the leader; None: it may not. Shared between the
/// elector, which extends it on each renewal, and the reconcilers, which ask it before every
/// provider call.
#[derive(Clone, Default)]
pub struct Leadership(Arc<Mutex<Option<Instant>>>);

impl Leadership {
    pub fn holds(&self) -> bool {
        self.get().is_some_and(|until| Instant::now() < until)
    }

    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn set(&self, until: Option<Instant>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = until;
    }
}

pub struct Elector {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub leadership: Leadership,
    /// The object whose deletion takes the Lease with it (a provider's claim, see `claim`).
    owner: Option<OwnerReference>,
    /// The lease record as last seen, and when it was first seen so.
    observed: Mutex<Option<(Record, Instant)>>,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: String, identity: String, duration: Duration, leadership: Leadership) -> Self {
        Elector { api, name, identity, duration, leadership, owner: None, observed: Mutex::new(None) }
    }

    /// The Lease is created owned by `owner`, and goes when it goes.
    pub fn owned_by(mut self, owner: OwnerReference) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Who held the Lease when this replica last read it (None: not read, or not held).
    pub fn seen_holder(&self) -> Option<String> {
        let observed = self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        observed.as_ref().and_then(|(record, _)| record.holder.clone()).filter(|h| !h.is_empty())
    }

    fn spec(&self, now: Timestamp, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// How long the record has looked like `record` to this replica.
    fn unchanged_for(&self, record: Option<Record>) -> Duration {
        let mut observed = self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(record) = record else {
            *observed = None;
            return Duration::ZERO;
        };
        match observed.as_ref() {
            Some((seen, since)) if *seen == record => since.elapsed(),
            _ => {
                *observed = Some((record, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// One round: returns whether we hold the Lease afterwards.
    pub async fn round(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.identity, self.unchanged_for(spec.map(Record::of)));
        match (decision, current) {
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        owner_references: self.owner.clone().map(|o| vec![o]),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, 0, None)),
                };
                Ok(self.api.create(&PostParams::default(), &lease).await.is_ok())
            }
            (Decision::Follow { .. }, _) => Ok(false),
            (decision, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let (transitions, acquired) = match decision {
                    Decision::Renew => (old.lease_transitions.unwrap_or(0), old.acquire_time),
                    _ => (old.lease_transitions.unwrap_or(0) + 1, None),
                };
                lease.spec = Some(self.spec(now, transitions, acquired));
                // The resourceVersion we read makes this a compare-and-swap: of two replicas
                // taking over at once, one gets 409 Conflict and stays a follower.
                match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            (_, None) => Ok(false),
        }
    }

    /// Gives the Lease up so that another replica takes over at once. Called on shutdown
    /// only after every sweep has finished: a replica still carrying out revocations must not
    /// hand over while it does.
    pub async fn release(&self) {
        self.leadership.set(None);
        // Some(answered): we held it and asked to give it up; None: not ours to give.
        let release = async {
            if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
                && let Some(spec) = lease.spec.as_mut()
                && spec.holder_identity.as_deref() == Some(self.identity.as_str())
            {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                return Some(self.api.replace(&self.name, &PostParams::default(), &lease).await.is_ok());
            }
            None
        };
        // A hung API server must not keep the process from exiting: the Lease then simply
        // expires. The line tells whoever reads a shutdown whether a standby could take over
        // at once or had to wait the Lease out.
        match tokio::time::timeout(self.duration / 3, release).await {
            Ok(Some(true)) => {
                tracing::info!(lease = %self.name, identity = %self.identity, "released the leader Lease")
            }
            Ok(None) => {}
            Ok(Some(false)) | Err(_) => {
                tracing::warn!(lease = %self.name, "could not release the leader Lease; a standby takes over when it expires")
            }
        }
    }

    /// Campaigns until `shutdown` fires, publishing leadership on `leader` (for logs, metrics
    /// and the sweep of everything on gaining it); whether a revocation may be made is
    /// [`Leadership::holds`], which lapses by itself when renewals stop succeeding.
    pub async fn run(self: Arc<Self>, leader: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let interval = self.duration / 3;
        let valid_for = self.duration * 2 / 3;
        loop {
            let started = Instant::now();
            // Every call is bounded: kube's client retries some errors at length, and a
            // renewal that never returns must not keep this loop from noticing.
            let outcome = tokio::time::timeout(interval.max(Duration::from_millis(500)), self.round()).await;
            match outcome {
                Ok(Ok(true)) => self.leadership.set(Some(started + valid_for)),
                Ok(Ok(false)) => self.leadership.set(None),
                Ok(Err(e)) => tracing::warn!(error = %e, lease = %self.name, "renew leader lease"),
                Err(_) => tracing::warn!(lease = %self.name, "renew leader lease: no answer in time"),
            }
            publish(&leader, self.leadership.holds());
            // Until the next round, and at the moment leadership lapses if that comes first:
            // a lapse and a regain between two rounds must both be published, or what the
            // reconcilers left undecided while it lapsed would wait for a change that never
            // comes (regaining triggers the sweep of everything).
            let next_round = started + interval;
            while Instant::now() < next_round {
                let lapse = self.leadership.get().filter(|until| *until > Instant::now());
                let wake = lapse.map_or(next_round, |until| until.min(next_round));
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => publish(&leader, self.leadership.holds()),
                    _ = shutdown.changed() => {
                        // Stop acting now; the Lease itself is released once the sweeps in
                        // flight have finished (see `release`).
                        self.leadership.set(None);
                        publish(&leader, false);
                        return;
                    }
                }
            }
        }
    }
}

/// Tells the watchers of `leader` when leadership changed (and only then).
fn publish(leader: &watch::Sender<bool>, holds: bool) {
    leader.send_if_modified(|l| std::mem::replace(l, holds) != holds);
}

#[cfg(test)]
impl Elector {
    /// As if a round had just read the Lease held by `holder`.
    pub(super) fn saw(&self, holder: &str) {
        let record = Record {
            holder: Some(holder.to_string()),
            renewed: None,
            acquired: None,
            transitions: None,
            duration: None,
        };
        *self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((record, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let s = Duration::from_secs;
        assert_eq!(decide(None, "a", s(0)), Decision::Create);
        assert_eq!(decide(Some(&spec("a", "2020-01-01T00:00:00Z")), "a", s(100)), Decision::Renew);
        assert_eq!(
            decide(Some(&spec("b", "2020-01-01T00:00:00Z")), "a", s(5)),
            Decision::Follow { holder: "b".into() }
        );
        assert_eq!(decide(Some(&spec("b", "2020-01-01T00:00:00Z")), "a", s(15)), Decision::TakeOver);
        assert_eq!(decide(Some(&spec("", "2020-01-01T00:00:00Z")), "a", s(0)), Decision::TakeOver);
    }

    /// The holder's clock runs years behind (or ahead of) ours: what counts is only whether
    /// its record keeps changing.
    #[test]
    fn a_skewed_clock_neither_steals_nor_keeps_a_lease() {
        let s = Duration::from_secs;
        // Renewed "years ago" by the holder's clock, but seen changing a second ago: valid.
        assert_eq!(
            decide(Some(&spec("b", "2001-01-01T00:00:00Z")), "a", s(1)),
            Decision::Follow { holder: "b".into() }
        );
        // Renewed "in the future" by the holder's clock, but not seen changing for a whole
        // duration: expired.
        assert_eq!(decide(Some(&spec("b", "2099-01-01T00:00:00Z")), "a", s(16)), Decision::TakeOver);
    }

    #[tokio::test]
    async fn the_record_is_timed_from_its_last_change_as_seen_here() {
        let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let elector = Elector::new(
            Api::namespaced(client, "x"),
            "lease".into(),
            "a".into(),
            Duration::from_secs(15),
            Leadership::default(),
        );
        let first = Record::of(&spec("b", "2020-01-01T00:00:00Z"));
        assert_eq!(elector.unchanged_for(Some(first.clone())), Duration::ZERO, "first sight starts the clock");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(elector.unchanged_for(Some(first.clone())) >= Duration::from_millis(60));
        let renewed = Record::of(&spec("b", "2020-01-01T00:00:05Z"));
        assert_eq!(elector.unchanged_for(Some(renewed)), Duration::ZERO, "a renewal restarts it");
    }

    #[test]
    fn leadership_lapses_on_its_own() {
        let leadership = Leadership::default();
        assert!(!leadership.holds());
        leadership.set(Some(Instant::now() + Duration::from_millis(60)));
        assert!(leadership.holds());
        // No renewal succeeds (or returns) in time: no longer the leader, whatever the
        // elector's loop is doing.
        std::thread::sleep(Duration::from_millis(70));
        assert!(!leadership.holds());
    }
}

#[cfg(test)]
mod lapse_tests {
    use super::*;

    /// Renewals fail (nothing listens): the leadership the replica held lapses between two
    /// rounds, and the lapse is published when it happens, not at the next round — so that
    /// regaining it later is a change the sweep of everything hears.
    #[tokio::test]
    async fn a_lapse_between_rounds_is_published_when_it_happens() {
        let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let leadership = Leadership::default();
        let elector = Arc::new(Elector::new(
            Api::namespaced(client, "x"),
            "lease".into(),
            "a".into(),
            Duration::from_secs(30),
            leadership.clone(),
        ));
        leadership.set(Some(Instant::now() + Duration::from_millis(300)));
        let (leader_tx, mut leader_rx) = watch::channel(false);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let started = Instant::now();
        tokio::spawn(elector.run(leader_tx, shutdown_rx));
        leader_rx.changed().await.expect("published");
        assert!(*leader_rx.borrow_and_update(), "held after the first (failed) round");
        tokio::time::timeout(Duration::from_secs(5), leader_rx.changed()).await.expect("in time").expect("published");
        assert!(!*leader_rx.borrow(), "lapsed");
        assert!(started.elapsed() < Duration::from_secs(5), "long before the next round (10 s)");
    }
}

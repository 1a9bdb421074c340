//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder acts; another replica
//! takes over once the holder stops renewing for a lease duration.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::time::Duration;
use tokio::sync::watch;

/// What to do with the Lease as it stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Create,
    /// We hold it: renew.
    Renew,
    /// Held by someone whose lease ran out (or released): take it over.
    TakeOver,
    /// Held by someone else, still valid.
    Follow {
        holder: String,
    },
}

pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else { return Decision::Create };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    match renewed {
        Some(renewed) if renewed + duration > now => Decision::Follow { holder },
        _ => Decision::TakeOver,
    }
}

pub struct Elector {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

impl Elector {
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

    /// One round: returns whether we hold the Lease afterwards.
    pub async fn round(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(current.as_ref().and_then(|l| l.spec.as_ref()), &self.identity, now);
        match (decision, current) {
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
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

    /// Gives the Lease up on shutdown so that the other replica takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            let _ = self.api.replace(&self.name, &PostParams::default(), &lease).await;
        }
    }

    /// Campaigns until `shutdown` fires, publishing leadership on `leader`. Leadership is
    /// given up as soon as renewals have failed for two thirds of the lease duration, before
    /// another replica may take over.
    pub async fn run(self, leader: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let interval = self.duration / 3;
        let deadline = self.duration * 2 / 3;
        let mut last_renewal: Option<tokio::time::Instant> = None;
        loop {
            match self.round().await {
                Ok(true) => {
                    last_renewal = Some(tokio::time::Instant::now());
                    leader.send_if_modified(|l| !std::mem::replace(l, true));
                }
                Ok(false) => {
                    last_renewal = None;
                    leader.send_if_modified(|l| std::mem::replace(l, false));
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.name, "renew leader lease");
                    if last_renewal.is_none_or(|t| t.elapsed() >= deadline) {
                        leader.send_if_modified(|l| std::mem::replace(l, false));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {
                    leader.send_if_modified(|l| std::mem::replace(l, false));
                    self.release().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::now() - SignedDuration::from_secs(renewed_secs_ago))),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&spec("a", 100)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&spec("b", 5)), "a", now), Decision::Follow { holder: "b".into() });
        assert_eq!(decide(Some(&spec("b", 16)), "a", now), Decision::TakeOver);
        assert_eq!(decide(Some(&spec("", 0)), "a", now), Decision::TakeOver);
    }
}

//! One installation per MfaProvider: next to each provider, a claim Lease
//! (`keyward-claim-<provider>`) that names the installation acting on it. Two releases (or two
//! clusters) watching the same objects elect their leaders on Leases of their own, so leader
//! election alone lets both act; the claim lets only one.
//!
//! An installation is named by its leader Lease, `<lease-namespace>/<lease-name>`: every
//! replica of one release shares it, so a new leader of the same release keeps the claim. The
//! claim is renewed while the installation leads and taken over only when its record has not
//! changed for a lease duration, as this replica observes it ([`super::leader`]'s rules and
//! compare-and-swap). A claim whose renewals stop succeeding lapses on its own, and every
//! provider call is preceded by a check of it (the sweep's guard).

use super::context::{Context, locked};
use super::leader::{Elector, Leadership};
use crate::crd::{MfaProvider, ProviderKey};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// The reason on an MfaProvider that another installation holds.
pub const CLAIMED_ELSEWHERE: &str = "ClaimedByAnotherInstallation";
const PREFIX: &str = "keyward-claim-";
/// A Lease name is a DNS subdomain of at most 253 characters.
const MAX_NAME: usize = 253;

/// What this installation may do with a provider, as its last claim round left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It holds the claim: it sweeps and revokes.
    Holds,
    /// Another installation holds it: nothing is swept or revoked here.
    HeldElsewhere { holder: String },
    /// Not known yet (no round since leadership was gained) or lapsed (renewals failing):
    /// nothing is decided until a round settles it.
    Unsettled,
}

/// The standing from a round's outcome: whether the claim is held and valid, and whose
/// name the Lease bore when it was last read.
pub fn standing(holds: bool, seen_holder: Option<&str>, me: &str) -> Standing {
    match seen_holder {
        _ if holds => Standing::Holds,
        Some(holder) if holder != me => Standing::HeldElsewhere { holder: holder.to_string() },
        _ => Standing::Unsettled,
    }
}

/// Whether the providers must be reconciled after a round: one became ours (sweep it) or
/// another's (say so in its status). A lapse decides nothing and needs no reconcile.
pub fn settled_anew<K: Eq + std::hash::Hash>(before: &HashMap<K, Standing>, after: &HashMap<K, Standing>) -> bool {
    after.iter().any(|(key, now)| *now != Standing::Unsettled && before.get(key) != Some(now))
}

/// The name of the claim Lease of the MfaProvider named `provider` (in its namespace). A
/// name too long for the prefix keeps its start and ends with a hash of the whole.
pub fn lease_name(provider: &str) -> String {
    let name = format!("{PREFIX}{provider}");
    if name.len() <= MAX_NAME {
        return name;
    }
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(provider.as_bytes()));
    format!("{}-{}", name[..MAX_NAME - 17].trim_end_matches(['-', '.']), &digest[..16])
}

/// The condition message on a provider another installation holds.
pub fn message(holder: &str, me: &str, provider: &str) -> String {
    format!(
        "claimed by the keyward installation {holder} (Lease {}); this installation ({me}) sweeps and revokes \
         nothing here. Two installations watch this MfaProvider: uninstall one or narrow its watched namespaces",
        lease_name(provider)
    )
}

/// The claims of this installation, one elector per provider.
pub struct Claims {
    /// `<lease-namespace>/<lease-name>` of the installation's leader Lease.
    pub installation: String,
    duration: Duration,
    electors: Mutex<HashMap<ProviderKey, Arc<Elector>>>,
}

impl Claims {
    pub fn new(installation: String, duration: Duration) -> Self {
        Claims { installation, duration, electors: Mutex::new(HashMap::new()) }
    }

    /// The standing on the provider with this key.
    pub fn standing(&self, key: &ProviderKey) -> Standing {
        match locked(&self.electors).get(key) {
            Some(elector) => standing(elector.leadership.holds(), elector.seen_holder().as_deref(), &self.installation),
            None => Standing::Unsettled,
        }
    }

    pub fn holds(&self, key: &ProviderKey) -> bool {
        self.standing(key) == Standing::Holds
    }

    fn elector(&self, client: &kube::Client, provider: &MfaProvider) -> Arc<Elector> {
        let mut electors = locked(&self.electors);
        let elector = electors.entry(ProviderKey::of(provider)).or_insert_with(|| {
            let api: Api<Lease> = Api::namespaced(client.clone(), &provider.namespace().unwrap_or_default());
            let elector = Elector::new(
                api,
                lease_name(&provider.name_any()),
                self.installation.clone(),
                self.duration,
                Leadership::default(),
            );
            Arc::new(match provider.owner_ref(&()) {
                Some(owner) => elector.owned_by(owner),
                None => elector,
            })
        });
        elector.clone()
    }

    /// One bounded round on the provider's claim; the claim stays valid until two thirds of
    /// a duration after the round started, as the leader Lease does.
    async fn renew(&self, client: &kube::Client, provider: &MfaProvider) {
        let elector = self.elector(client, provider);
        let started = Instant::now();
        let bound = (self.duration / 3).max(Duration::from_millis(500));
        match tokio::time::timeout(bound, elector.round()).await {
            Ok(Ok(true)) => elector.leadership.set(Some(started + self.duration * 2 / 3)),
            Ok(Ok(false)) => elector.leadership.set(None),
            Ok(Err(e)) => tracing::warn!(error = %e, provider = %ProviderKey::of(provider), "renew provider claim"),
            Err(_) => tracing::warn!(provider = %ProviderKey::of(provider), "renew provider claim: no answer in time"),
        }
    }

    /// Forgets the claims of providers no longer watched (their Leases go with them).
    fn retain(&self, keys: &[ProviderKey]) {
        locked(&self.electors).retain(|key, _| keys.contains(key));
    }
}

/// Renews the claims while this replica leads, every third of a lease duration and at once
/// on gaining leadership; sends on `sweep_all` when a provider became ours or another's.
pub async fn keep(ctx: Arc<Context>, sweep_all: broadcast::Sender<()>, mut shutdown: watch::Receiver<bool>) {
    let mut leader = ctx.leading.leader.clone();
    let mut before: HashMap<ProviderKey, Standing> = HashMap::new();
    let interval = ctx.args.lease_duration / 3;
    loop {
        if ctx.is_leader() {
            let providers: Vec<_> =
                ctx.caches.providers.state().into_iter().filter(|p| p.meta().deletion_timestamp.is_none()).collect();
            let keys: Vec<ProviderKey> = providers.iter().map(|p| ProviderKey::of(p)).collect();
            ctx.leading.claims.retain(&keys);
            futures::future::join_all(providers.iter().map(|p| ctx.leading.claims.renew(&ctx.client, p))).await;
            let after: HashMap<ProviderKey, Standing> =
                keys.into_iter().map(|key| (key.clone(), ctx.leading.claims.standing(&key))).collect();
            if settled_anew(&before, &after) {
                let _ = sweep_all.send(());
            }
            before = after;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = leader.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
impl Claims {
    /// Settles the claim on `provider` as a round would: held by this installation (`None`),
    /// or by the installation `holder`. Makes no request: the elector's API is never called.
    pub(super) fn settle(&self, client: &kube::Client, provider: &MfaProvider, holder: Option<&str>) {
        let elector = self.elector(client, provider);
        match holder {
            None => elector.leadership.set(Some(Instant::now() + Duration::from_secs(3600))),
            Some(holder) => {
                elector.leadership.set(None);
                elector.saw(holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standing_follows_the_round() {
        assert_eq!(standing(true, Some("ns/a"), "ns/a"), Standing::Holds);
        // Just created by us: not read back yet.
        assert_eq!(standing(true, None, "ns/a"), Standing::Holds);
        assert_eq!(standing(false, Some("ns/b"), "ns/a"), Standing::HeldElsewhere { holder: "ns/b".into() });
        // Ours by name, but the renewal failed: decide nothing until a round succeeds.
        assert_eq!(standing(false, Some("ns/a"), "ns/a"), Standing::Unsettled);
        assert_eq!(standing(false, None, "ns/a"), Standing::Unsettled);
    }

    #[test]
    fn only_a_settled_change_reconciles() {
        let of = |pairs: &[(&str, Standing)]| pairs.iter().map(|(k, s)| (k.to_string(), s.clone())).collect();
        let other = Standing::HeldElsewhere { holder: "ns/b".into() };
        let none = HashMap::new();
        assert!(settled_anew(&none, &of(&[("x/p", Standing::Holds)])), "first held");
        assert!(settled_anew(&none, &of(&[("x/p", other.clone())])), "first seen held elsewhere");
        assert!(!settled_anew(&none, &of(&[("x/p", Standing::Unsettled)])), "nothing known yet");
        assert!(!settled_anew(&of(&[("x/p", Standing::Holds)]), &of(&[("x/p", Standing::Holds)])), "renewed");
        assert!(!settled_anew(&of(&[("x/p", Standing::Holds)]), &of(&[("x/p", Standing::Unsettled)])), "lapsed");
        assert!(settled_anew(&of(&[("x/p", other.clone())]), &of(&[("x/p", Standing::Holds)])), "taken over");
        let third = Standing::HeldElsewhere { holder: "ns/c".into() };
        assert!(settled_anew(&of(&[("x/p", other)]), &of(&[("x/p", third)])), "another holder");
    }

    #[test]
    fn claim_names_are_valid_lease_names() {
        assert_eq!(lease_name("corp-pi"), "keyward-claim-corp-pi");
        let long = "p".repeat(253);
        let name = lease_name(&long);
        assert!(name.len() <= MAX_NAME, "{}", name.len());
        assert_ne!(name, lease_name(&"p".repeat(252)), "distinct providers, distinct claims");
        assert!(name.starts_with("keyward-claim-ppp"));
    }

    #[test]
    fn the_message_names_the_holder_and_the_claim() {
        let text = message("keyward/release-a", "keyward/release-b", "corp-pi");
        assert!(text.contains("keyward/release-a") && text.contains("keyward-claim-corp-pi"), "{text}");
        assert!(text.contains("keyward/release-b"), "{text}");
    }
}

//! Which sweep a provider gets next: a targeted one, for the users whose declared state
//! changed, or a full one (docs/contract.md, rule 8: work grows with changes, not with people).
//!
//! Watch events name the users they concern ([`Pending`]); the provider's reconcile takes them
//! and [`choose`]s. A full sweep is the rule whenever something a per-user read cannot see may
//! have changed: the first sweep, a new leadership term, a relist (events may have been
//! missed), a changed MfaProvider or Secret, an approval, a timer with no change behind it
//! (the resync, a retry), and a last full sweep that did not end cleanly — that sweep's status
//! (a hold, a conflict, an error) is only ever replaced by another full sweep's.

use super::context::locked;
use crate::crd::ProviderKey;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Changes not yet swept, per provider.
pub type Targets = Arc<Mutex<HashMap<ProviderKey, Pending>>>;

/// What the next sweep of one provider must cover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Provider user names by user key: the users whose declared state changed.
    pub users: BTreeMap<String, String>,
    /// Why the next sweep must be a full one, if it must.
    pub full: Option<&'static str>,
}

impl Pending {
    pub fn add_user(&mut self, name: &str) {
        if !name.is_empty() {
            self.users.insert(crate::engine::identity::user_key(name), name.to_string());
        }
    }

    /// Puts back what a sweep took and did not get to (deferred, or interrupted by an error).
    pub fn merge(&mut self, other: Pending) {
        self.users.extend(other.users);
        self.full = self.full.or(other.full);
    }
}

/// Records changed users for a provider.
pub fn add_users<'a>(targets: &Targets, provider: &ProviderKey, names: impl IntoIterator<Item = &'a str>) {
    let mut targets = locked(targets);
    let pending = targets.entry(provider.clone()).or_default();
    for name in names {
        pending.add_user(name);
    }
}

/// Records that a provider's next sweep must be full, and why.
pub fn require_full(targets: &Targets, provider: &ProviderKey, why: &'static str) {
    locked(targets).entry(provider.clone()).or_default().full.get_or_insert(why);
}

/// Takes what is pending for a provider: a sweep starting now covers it.
pub fn take(targets: &Targets, provider: &ProviderKey) -> Pending {
    locked(targets).remove(provider).unwrap_or_default()
}

/// Puts back what a sweep did not cover.
pub fn put_back(targets: &Targets, provider: &ProviderKey, pending: Pending) {
    locked(targets).entry(provider.clone()).or_default().merge(pending);
}

/// What the last full sweep of a provider was, as the choice needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastFull {
    pub time: DateTime<Utc>,
    /// The MfaProvider's generation it swept.
    pub generation: Option<i64>,
    /// The leadership term it ran in.
    pub epoch: u64,
    /// It read the provider, acted in Enforce mode, and ended without a hold, a conflict, an
    /// error or a failed revocation.
    pub clean: bool,
    /// Provider requests it made: above this many users, listing everything is cheaper.
    pub requests: u64,
}

/// What the provider is now.
pub struct Now {
    pub time: DateTime<Utc>,
    pub generation: Option<i64>,
    pub epoch: u64,
    pub resync: std::time::Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    Full(&'static str),
    /// Provider user names to read one by one.
    Targeted(Vec<String>),
}

/// The sweep that covers `pending`.
pub fn choose(pending: &Pending, last: Option<&LastFull>, now: &Now) -> Choice {
    if let Some(why) = pending.full {
        return Choice::Full(why);
    }
    let Some(last) = last else { return Choice::Full("the provider's first sweep") };
    if last.epoch != now.epoch {
        return Choice::Full("leadership gained");
    }
    if last.generation != now.generation {
        return Choice::Full("the MfaProvider changed");
    }
    if !last.clean {
        return Choice::Full("the last full sweep did not end cleanly");
    }
    let resync = chrono::Duration::from_std(now.resync).unwrap_or(chrono::Duration::MAX);
    if now.time >= last.time + resync {
        return Choice::Full("resync");
    }
    if pending.users.is_empty() {
        return Choice::Full("no change names a user");
    }
    if pending.users.len() as u64 > last.requests.max(1) {
        return Choice::Full("more users changed than a full listing costs requests");
    }
    Choice::Targeted(pending.users.values().cloned().collect())
}

/// How long until the resync that the last full sweep owes.
pub fn until_resync(last: &LastFull, now: DateTime<Utc>, resync: std::time::Duration) -> std::time::Duration {
    let due = last.time + chrono::Duration::from_std(resync).unwrap_or(chrono::Duration::MAX);
    (due - now).to_std().unwrap_or(std::time::Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::now;
    use std::time::Duration;

    fn last() -> LastFull {
        LastFull { time: now(), generation: Some(3), epoch: 1, clean: true, requests: 12 }
    }

    fn at(minutes: i64) -> Now {
        Now {
            time: now() + chrono::Duration::minutes(minutes),
            generation: Some(3),
            epoch: 1,
            resync: Duration::from_secs(600),
        }
    }

    fn pending(users: &[&str]) -> Pending {
        let mut p = Pending::default();
        for u in users {
            p.add_user(u);
        }
        p
    }

    #[test]
    fn a_change_naming_users_is_targeted_at_them() {
        assert_eq!(
            choose(&pending(&["Bob", "alice", "bob"]), Some(&last()), &at(1)),
            Choice::Targeted(vec!["alice".into(), "bob".into()]),
            "one read per user key, as the provider names the user"
        );
    }

    #[test]
    fn anything_a_per_user_read_cannot_see_is_swept_in_full() {
        let users = pending(&["alice"]);
        assert_eq!(choose(&users, None, &at(1)), Choice::Full("the provider's first sweep"));
        let mut other_term = at(1);
        other_term.epoch = 2;
        assert_eq!(choose(&users, Some(&last()), &other_term), Choice::Full("leadership gained"));
        let mut edited = at(1);
        edited.generation = Some(4);
        assert_eq!(choose(&users, Some(&last()), &edited), Choice::Full("the MfaProvider changed"));
        let held = LastFull { clean: false, ..last() };
        assert_eq!(choose(&users, Some(&held), &at(1)), Choice::Full("the last full sweep did not end cleanly"));
        assert_eq!(choose(&users, Some(&last()), &at(10)), Choice::Full("resync"));
        assert_eq!(choose(&pending(&[]), Some(&last()), &at(1)), Choice::Full("no change names a user"));
        let mut relisted = users.clone();
        relisted.full = Some("relist");
        assert_eq!(choose(&relisted, Some(&last()), &at(1)), Choice::Full("relist"));
        let many: Vec<String> = (0..13).map(|i| format!("u{i}")).collect();
        let many = pending(&many.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            choose(&many, Some(&last()), &at(1)),
            Choice::Full("more users changed than a full listing costs requests")
        );
    }

    #[test]
    fn what_a_sweep_did_not_cover_is_kept_for_the_next() {
        let targets: Targets = Default::default();
        let pi = ProviderKey::new("acme", "pi");
        add_users(&targets, &pi, ["alice"]);
        let taken = take(&targets, &pi);
        assert_eq!(take(&targets, &pi), Pending::default());
        add_users(&targets, &pi, ["bob"]);
        require_full(&targets, &pi, "relist");
        put_back(&targets, &pi, taken);
        let back = take(&targets, &pi);
        assert_eq!(back.users.values().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(back.full, Some("relist"));
        assert_eq!(
            until_resync(&last(), now() + chrono::Duration::minutes(4), Duration::from_secs(600)).as_secs(),
            360
        );
    }
}

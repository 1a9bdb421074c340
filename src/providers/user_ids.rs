//! Provider user ids by the names keyward knows users by, for the providers whose API
//! addresses users by an id (Entra ID, Keycloak).
//!
//! The cache is rebuilt from every full listing and an entry is dropped when the provider
//! answers 404 for it: a user deleted and re-created under the same name has a new id, and a
//! stale one would make the new user's enrolments invisible (its listing 404s) and every
//! revocation read as "already gone". A name that more than one user goes by is kept with all
//! its ids and resolves to an [`Failure::IdentityConflict`], never to one of them.

use super::Revoked;
use super::error::Failure;
use std::collections::HashMap;
use std::sync::Mutex;

/// Lower-cased name → the distinct ids of the users that go by it.
#[derive(Default, Debug, Clone)]
pub struct Names(HashMap<String, Vec<String>>);

impl Names {
    /// Records that the user `id` goes by each of `names` (empty ones are skipped).
    pub fn add(&mut self, names: &[&str], id: &str) {
        for name in names.iter().filter(|n| !n.is_empty()) {
            let ids = self.0.entry(name.to_lowercase()).or_default();
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
    }

    /// The ids recorded for `name` (empty when none).
    pub fn ids(&self, name: &str) -> Vec<String> {
        self.0.get(&name.to_lowercase()).cloned().unwrap_or_default()
    }
}

/// The one user `name` stands for, `None` when no user goes by it, an
/// [`Failure::IdentityConflict`] when several do.
pub fn one(name: &str, ids: &[String]) -> Result<Option<String>, Failure> {
    match ids {
        [] => Ok(None),
        [id] => Ok(Some(id.clone())),
        many => Err(Failure::IdentityConflict(format!(
            "{} users go by {name:?} (ids {}); keyward acts on none of them until only one does",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// The cache shared by a provider client's sweeps and revocations: what is known of each user
/// by the lower-cased names keyward knows it by. `V` is the distinct ids of the users that go
/// by a name (the default), or a provider's richer record of the one user (Okta).
pub struct UserIds<V = Vec<String>>(Mutex<HashMap<String, V>>);

impl<V> Default for UserIds<V> {
    fn default() -> Self {
        UserIds(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> UserIds<V> {
    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is cached for `name`; `None` when the name is not cached.
    pub fn get(&self, name: &str) -> Option<V> {
        self.names().get(&name.to_lowercase()).cloned()
    }

    /// Caches `value` for each of `names` (empty ones are skipped), replacing what was cached.
    pub fn set_all(&self, names: &[&str], value: &V) {
        let mut cached = self.names();
        for name in names.iter().filter(|n| !n.is_empty()) {
            cached.insert(name.to_lowercase(), value.clone());
        }
    }

    /// Caches `value` for `name` (a lookup's result), replacing what was cached for it.
    pub fn set(&self, name: &str, value: V) {
        self.names().insert(name.to_lowercase(), value);
    }

    /// Drops `name`: the provider no longer knows its cached id.
    pub fn forget(&self, name: &str) {
        self.names().remove(&name.to_lowercase());
    }
}

impl UserIds {
    /// Replaces the whole cache with what a full listing found.
    pub fn replace(&self, fresh: Names) {
        *self.names() = fresh.0;
    }

    /// Updates the cache for `read` alone with what a per-user read of them found: a name no
    /// user goes by any more is dropped; every other name keeps its entry.
    pub fn refresh(&self, read: &[String], fresh: Names) {
        let mut cached = self.names();
        for name in read {
            cached.remove(&name.to_lowercase());
        }
        cached.extend(fresh.0);
    }

    /// The one user `name` stands for: from the cache, else `fetch`ed from the provider and
    /// cached.
    pub async fn resolve(
        &self,
        name: &str,
        fetch: impl AsyncFnOnce() -> Result<Vec<String>, Failure>,
    ) -> Result<Option<String>, Failure> {
        let ids = match self.get(name) {
            Some(ids) => ids,
            None => {
                let ids = fetch().await?;
                self.set(name, ids.clone());
                ids
            }
        };
        one(name, &ids)
    }

    /// Removes an enrolment of `name` through `remove_from(user id)`, the id from `lookup`
    /// (which resolves through this cache). A 404 under a cached id may come from a stale id
    /// (the user deleted and re-created under the same name): the id is asked again before
    /// the enrolment is called gone.
    // Plain closures returning futures rather than async closures: the callers' futures must
    // be `Send` for `async_trait`, which async closures over borrowed ids do not prove.
    pub async fn remove_fresh<Lookup, Found, Remove, Removed>(
        &self,
        name: &str,
        lookup: Lookup,
        remove_from: Remove,
    ) -> Result<Revoked, Failure>
    where
        Lookup: Fn() -> Found,
        Found: Future<Output = Result<Option<String>, Failure>>,
        Remove: Fn(String) -> Removed,
        Removed: Future<Output = Result<Revoked, Failure>>,
    {
        let Some(user_id) = lookup().await? else {
            return Ok(Revoked::AlreadyGone); // a deleted user's enrolments went with it
        };
        match remove_from(user_id.clone()).await? {
            Revoked::AlreadyGone => {
                self.forget(name);
                match lookup().await? {
                    Some(fresh) if fresh != user_id => remove_from(fresh).await,
                    _ => Ok(Revoked::AlreadyGone),
                }
            }
            done => Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_of_two_users_is_a_conflict_not_a_guess() {
        let mut names = Names::default();
        names.add(&["alice@acme.example", "alice"], "u-1");
        names.add(&["Alice@acme.example", ""], "u-2");
        names.add(&["alice@acme.example"], "u-2");
        assert_eq!(one("alice", &names.ids("alice")), Ok(Some("u-1".into())));
        assert_eq!(one("nobody", &names.ids("nobody")), Ok(None));
        let conflict = one("alice@acme.example", &names.ids("ALICE@acme.example")).expect_err("two users");
        assert!(conflict.to_string().contains("2 users go by \"alice@acme.example\" (ids u-1, u-2)"), "{conflict}");

        let cache = UserIds::default();
        cache.replace(names);
        assert_eq!(cache.get("alice").as_deref(), Some(&["u-1".to_string()][..]));
        cache.forget("ALICE");
        assert_eq!(cache.get("alice"), None);
        cache.set("bob", vec![]);
        assert_eq!(cache.get("bob"), Some(vec![]));
        cache.replace(Names::default());
        assert_eq!(cache.get("bob"), None, "a full listing drops what it did not find");
    }
}

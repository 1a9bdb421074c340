//! An in-memory provider for tests of the sweep and the operator: it holds an inventory,
//! records every call, and can be told to fail.

use super::error::Failure;
use super::{EnrolmentEvents, Provider, ProviderApi, Revoked, UserQuery};
use crate::crd::mfa_provider::RevocationMode;
use crate::crd::{FactorKind, ProviderKey};
use crate::engine::{Capabilities, Enrolment, Inventory};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct FakeProvider {
    /// The MfaProvider it stands for.
    pub key: ProviderKey,
    pub inventory: Mutex<Inventory>,
    /// `(user, enrolment id, mode)` of every revocation carried out.
    pub revoked: Mutex<Vec<(String, String, RevocationMode)>>,
    pub invited: Mutex<Vec<(String, FactorKind)>>,
    /// The listing fails with this.
    pub list_failure: Mutex<Option<Failure>>,
    /// Revocations of these enrolment ids fail.
    pub failing_enrolments: Mutex<Vec<String>>,
    pub capabilities: Mutex<Option<Capabilities>>,
    calls: AtomicU64,
}

impl FakeProvider {
    pub fn new(key: ProviderKey, inventory: Inventory) -> Arc<Self> {
        Arc::new(FakeProvider {
            key,
            inventory: Mutex::new(inventory),
            revoked: Mutex::default(),
            invited: Mutex::default(),
            list_failure: Mutex::default(),
            failing_enrolments: Mutex::default(),
            capabilities: Mutex::default(),
            calls: AtomicU64::default(),
        })
    }

    /// The fake as the sweep calls it; the fake still sees every call.
    pub fn provider(self: &Arc<Self>) -> Provider {
        Provider::shared(self.key.clone(), self.clone())
    }

    pub fn revoked_ids(&self) -> Vec<String> {
        self.revoked.lock().map(|r| r.iter().map(|(_, id, _)| id.clone()).collect()).unwrap_or_default()
    }
}

fn poisoned() -> Failure {
    Failure::Configuration("fake provider state poisoned".into())
}

#[async_trait]
impl ProviderApi for FakeProvider {
    fn capabilities(&self) -> Capabilities {
        let set = self.capabilities.lock().map(|c| c.clone()).unwrap_or_default();
        set.unwrap_or(Capabilities { disable: true, invite: Vec::new() })
    }

    async fn check(&self) -> Result<(), Failure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.list_failure.lock().map_err(|_| poisoned())?.clone() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    async fn inventory(&self, _query: &UserQuery) -> Result<Inventory, Failure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(failure) = self.list_failure.lock().map_err(|_| poisoned())?.clone() {
            return Err(failure);
        }
        Ok(self.inventory.lock().map_err(|_| poisoned())?.clone())
    }

    /// One call per user, like the per-user reads it stands for.
    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, Failure> {
        self.calls.fetch_add(users.len() as u64, Ordering::Relaxed);
        if let Some(failure) = self.list_failure.lock().map_err(|_| poisoned())?.clone() {
            return Err(failure);
        }
        let wanted: std::collections::BTreeSet<String> =
            users.iter().map(|u| crate::engine::identity::user_key(u)).collect();
        let inventory = self.inventory.lock().map_err(|_| poisoned())?;
        let users = inventory
            .users
            .iter()
            .filter(|u| wanted.contains(&crate::engine::identity::user_key(&u.name)))
            .cloned()
            .collect();
        Ok(Some(Inventory { users }))
    }

    async fn enrolment_events(&self, _after: Option<&str>) -> Result<Option<EnrolmentEvents>, Failure> {
        Ok(None)
    }

    async fn revoke(&self, user: &str, enrolment: &Enrolment, mode: RevocationMode) -> Result<Revoked, Failure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.failing_enrolments.lock().map_err(|_| poisoned())?.contains(&enrolment.id) {
            return Err(Failure::Status { status: 500, code: None, message: "injected".into() });
        }
        let mut inventory = self.inventory.lock().map_err(|_| poisoned())?;
        let mut found = false;
        for u in inventory.users.iter_mut().filter(|u| u.name == user) {
            match mode {
                RevocationMode::Delete => {
                    let before = u.enrolments.len();
                    u.enrolments.retain(|e| e.id != enrolment.id);
                    found |= u.enrolments.len() != before;
                }
                RevocationMode::Disable => {
                    for e in u.enrolments.iter_mut().filter(|e| e.id == enrolment.id && e.active) {
                        e.active = false;
                        found = true;
                    }
                }
            }
        }
        self.revoked.lock().map_err(|_| poisoned())?.push((user.to_string(), enrolment.id.clone(), mode));
        Ok(if found { Revoked::Done } else { Revoked::AlreadyGone })
    }

    async fn invite(&self, user: &str, kind: &FactorKind) -> Result<(), Failure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.invited.lock().map_err(|_| poisoned())?.push((user.to_string(), kind.clone()));
        Ok(())
    }

    fn requests(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

//! An in-memory provider for tests of the sweep and the operator: it holds an inventory,
//! records every call, and can be told to fail.

use super::error::{Failure, ProviderError};
use super::{EnrolmentEvents, MfaBackend, Revoked, UserQuery};
use crate::crd::FactorKind;
use crate::crd::mfa_provider::RevocationMode;
use crate::engine::{Capabilities, Enrolment, Inventory};
use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct FakeProvider {
    pub name: String,
    pub inventory: Mutex<Inventory>,
    /// `(user, enrolment id, mode)` of every revocation carried out.
    pub revoked: Mutex<Vec<(String, String, RevocationMode)>>,
    pub invited: Mutex<Vec<(String, FactorKind)>>,
    /// The listing fails with this.
    pub list_failure: Mutex<Option<Failure>>,
    /// Revocations of these enrolment ids fail.
    pub failing_enrolments: Mutex<Vec<String>>,
    pub capabilities: Option<Capabilities>,
    calls: AtomicU64,
}

impl FakeProvider {
    pub fn new(name: &str, inventory: Inventory) -> Self {
        FakeProvider { name: name.to_string(), inventory: Mutex::new(inventory), ..Default::default() }
    }

    pub fn revoked_ids(&self) -> Vec<String> {
        self.revoked.lock().map(|r| r.iter().map(|(_, id, _)| id.clone()).collect()).unwrap_or_default()
    }
}

fn poisoned(provider: &str) -> ProviderError {
    ProviderError::Configure { provider: provider.to_string(), message: "fake provider state poisoned".into() }
}

#[async_trait]
impl MfaBackend for FakeProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone().unwrap_or(Capabilities { disable: true, invite: Vec::new() })
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.list_failure.lock().map_err(|_| poisoned(&self.name))?.clone() {
            Some(failure) => Err(ProviderError::Check { provider: self.name.clone(), failure }),
            None => Ok(()),
        }
    }

    async fn inventory(&self, _query: &UserQuery) -> Result<Inventory, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(failure) = self.list_failure.lock().map_err(|_| poisoned(&self.name))?.clone() {
            return Err(ProviderError::ListEnrolments { provider: self.name.clone(), failure });
        }
        Ok(self.inventory.lock().map_err(|_| poisoned(&self.name))?.clone())
    }

    /// One call per user, like the per-user reads it stands for.
    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, ProviderError> {
        self.calls.fetch_add(users.len() as u64, Ordering::Relaxed);
        if let Some(failure) = self.list_failure.lock().map_err(|_| poisoned(&self.name))?.clone() {
            return Err(ProviderError::ListEnrolments { provider: self.name.clone(), failure });
        }
        let wanted: std::collections::BTreeSet<String> =
            users.iter().map(|u| crate::engine::identity::user_key(u)).collect();
        let inventory = self.inventory.lock().map_err(|_| poisoned(&self.name))?;
        let users = inventory
            .users
            .iter()
            .filter(|u| wanted.contains(&crate::engine::identity::user_key(&u.name)))
            .cloned()
            .collect();
        Ok(Some(Inventory { users }))
    }

    async fn enrolment_events(&self, _after: Option<&str>) -> Result<Option<EnrolmentEvents>, ProviderError> {
        Ok(None)
    }

    async fn revoke(&self, user: &str, enrolment: &Enrolment, mode: RevocationMode) -> Result<Revoked, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.failing_enrolments.lock().map_err(|_| poisoned(&self.name))?.contains(&enrolment.id) {
            return Err(ProviderError::RevokeEnrolment {
                provider: self.name.clone(),
                user: user.to_string(),
                enrolment: enrolment.id.clone(),
                failure: Failure::Status { status: 500, code: None, message: "injected".into() },
            });
        }
        let mut inventory = self.inventory.lock().map_err(|_| poisoned(&self.name))?;
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
        self.revoked.lock().map_err(|_| poisoned(&self.name))?.push((user.to_string(), enrolment.id.clone(), mode));
        Ok(if found { Revoked::Done } else { Revoked::AlreadyGone })
    }

    async fn invite(&self, user: &str, kind: &FactorKind) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.invited.lock().map_err(|_| poisoned(&self.name))?.push((user.to_string(), kind.clone()));
        Ok(())
    }

    fn requests(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

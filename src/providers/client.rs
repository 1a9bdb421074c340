//! What a provider module writes, and what keyward adds to every provider in one place.
//!
//! A provider implements [`Client`]: its reads, revocations and invitations in its own API's
//! terms, failing with a bare [`Failure`]. [`Managed`] makes it an [`MfaBackend`]: it names the
//! provider, the user and the enrolment in every error, and refuses what the provider's
//! [`Capabilities`] say it cannot do (the planner never plans it; this is the last guard).

use super::error::{Failure, ProviderError};
use super::{EnrolmentEvents, MfaBackend, Revoked, UserQuery};
use crate::crd::FactorKind;
use crate::crd::mfa_provider::RevocationMode;
use crate::engine::{Capabilities, Enrolment, Inventory};
use async_trait::async_trait;

#[async_trait]
pub trait Client: Send + Sync {
    fn capabilities(&self) -> Capabilities;

    /// A cheap authenticated read: the provider answers and the credentials work.
    async fn check(&self) -> Result<(), Failure>;

    /// The enrolments of the users in `query` (see [`MfaBackend::inventory`]).
    async fn read(&self, query: &UserQuery) -> Result<Inventory, Failure>;

    /// The enrolments of just these users (see [`MfaBackend::inventory_of`]); `None` where
    /// the provider has no per-user read that agrees with its full listing.
    async fn read_targeted(&self, users: &[String]) -> Result<Option<Inventory>, Failure> {
        let _ = users;
        Ok(None)
    }

    /// See [`MfaBackend::enrolment_events`]; `None` where the log is not followed.
    async fn enrolment_events(&self, after: Option<&str>) -> Result<Option<EnrolmentEvents>, Failure> {
        let _ = after;
        Ok(None)
    }

    /// Revokes one enrolment of `user`; `mode` is `Disable` only when the capabilities allow
    /// it. "Not found" is [`Revoked::AlreadyGone`].
    async fn revoke(&self, user: &str, enrolment: &Enrolment, mode: RevocationMode) -> Result<Revoked, Failure>;

    /// Invites `user` to enrol `kind`; only called for kinds in `capabilities().invite`.
    async fn invite(&self, user: &str, kind: &FactorKind) -> Result<(), Failure> {
        let _ = user;
        Err(Failure::Configuration(format!("no invitation for {kind}")))
    }

    /// HTTP requests made so far.
    fn requests(&self) -> u64;

    /// The writes `keyward conformance` makes on a live tenant; `None` where the provider's
    /// admin API cannot make them.
    fn test_users(&self) -> Option<&dyn TestUsers> {
        None
    }
}

/// A disposable user and one second factor on it, made through the provider's admin API, for
/// `keyward conformance` to read, revoke and read again through the operator's own code paths.
/// Each call touches the user named and nothing else.
#[async_trait]
pub trait TestUsers: Send + Sync {
    /// Creates the user `name`, under which keyward's reads will list it. A user of that name
    /// that already exists is an error, never reused.
    async fn create_user(&self, name: &str) -> Result<(), Failure>;
    /// Enrols one second factor for `name` through the admin API; the kind keyward lists it as.
    async fn enrol(&self, name: &str) -> Result<FactorKind, Failure>;
    /// Deletes the user `name` and whatever it still holds.
    async fn delete_user(&self, name: &str) -> Result<(), Failure>;
}

/// A [`Client`] as keyward uses it.
pub struct Managed<C> {
    /// `<namespace>/<name>` of the MfaProvider.
    name: String,
    client: C,
}

impl<C: Client> Managed<C> {
    pub fn boxed(name: &str, client: C) -> Box<dyn MfaBackend>
    where
        C: 'static,
    {
        Box::new(Managed { name: name.to_string(), client })
    }
}

#[async_trait]
impl<C: Client> MfaBackend for Managed<C> {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.client.capabilities()
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.client.check().await.map_err(|failure| ProviderError::Check { provider: self.name.clone(), failure })
    }

    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, ProviderError> {
        self.client
            .read(query)
            .await
            .map_err(|failure| ProviderError::ListEnrolments { provider: self.name.clone(), failure })
    }

    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, ProviderError> {
        self.client
            .read_targeted(users)
            .await
            .map_err(|failure| ProviderError::ListEnrolments { provider: self.name.clone(), failure })
    }

    async fn enrolment_events(&self, after: Option<&str>) -> Result<Option<EnrolmentEvents>, ProviderError> {
        self.client
            .enrolment_events(after)
            .await
            .map_err(|failure| ProviderError::ReadEvents { provider: self.name.clone(), failure })
    }

    async fn revoke(&self, user: &str, enrolment: &Enrolment, mode: RevocationMode) -> Result<Revoked, ProviderError> {
        let error = ProviderError::revoking(&self.name, user, &enrolment.id);
        if mode == RevocationMode::Disable && !self.client.capabilities().disable {
            return Err(error(Failure::Configuration(
                "enrolments on this provider cannot be disabled, only deleted".into(),
            )));
        }
        self.client.revoke(user, enrolment, mode).await.map_err(error)
    }

    async fn invite(&self, user: &str, kind: &FactorKind) -> Result<(), ProviderError> {
        let error = ProviderError::inviting(&self.name, user, kind.as_str());
        if !self.client.capabilities().invite.contains(kind) {
            return Err(error(Failure::Configuration(format!("this provider has no invitation for {kind}"))));
        }
        self.client.invite(user, kind).await.map_err(error)
    }

    fn requests(&self) -> u64 {
        self.client.requests()
    }

    fn test_users(&self) -> Option<&dyn TestUsers> {
        self.client.test_users()
    }
}

//! What a provider module writes, and what keyward adds to every provider in one place.
//!
//! A provider module implements [`ProviderApi`]: its reads, revocations and invitations in its
//! own API's terms, failing with a bare [`Failure`]. Everything else calls it through a
//! [`Provider`], which has the same operations under the same names: it carries the
//! MfaProvider's [`ProviderKey`], names the provider, the user and the enrolment in every
//! error, and refuses what the provider's [`Capabilities`] say it cannot do (the planner never
//! plans it; this is the last guard). The naming and the guard are not left to each module,
//! so no provider can leave them out.

use super::error::{Failure, ProviderError};
use super::{EnrolmentEvents, Revoked, UserQuery};
use crate::crd::mfa_provider::RevocationMode;
use crate::crd::{FactorKind, ProviderKey};
use crate::engine::{Capabilities, Enrolment, Inventory};
use async_trait::async_trait;
use std::sync::Arc;

/// One provider's API, as a provider module implements it. [`Provider`] documents what each
/// operation means to the caller.
#[async_trait]
pub trait ProviderApi: Send + Sync {
    fn capabilities(&self) -> Capabilities;

    /// A cheap authenticated read: the provider answers and the credentials work.
    async fn check(&self) -> Result<(), Failure>;

    /// See [`Provider::inventory`].
    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, Failure>;

    /// See [`Provider::inventory_of`]; `None` where the provider has no per-user read that
    /// agrees with its full listing.
    async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, Failure> {
        let _ = users;
        Ok(None)
    }

    /// See [`Provider::enrolment_events`]; `None` where the log is not followed.
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

/// An MfaProvider's [`ProviderApi`] as keyward calls it.
pub struct Provider {
    key: ProviderKey,
    api: Arc<dyn ProviderApi>,
}

impl Provider {
    pub fn new(key: ProviderKey, api: impl ProviderApi + 'static) -> Self {
        Self::shared(key, Arc::new(api))
    }

    /// A provider whose API the caller keeps a handle on as well (a test's fake, to look at
    /// the calls made).
    pub fn shared(key: ProviderKey, api: Arc<dyn ProviderApi>) -> Self {
        Provider { key, api }
    }

    /// The MfaProvider this is, for errors and audit.
    pub fn key(&self) -> &ProviderKey {
        &self.key
    }

    pub fn capabilities(&self) -> Capabilities {
        self.api.capabilities()
    }

    /// Proves that the provider answers and the credentials work (the `Ready` condition).
    pub async fn check(&self) -> Result<(), ProviderError> {
        self.api.check().await.map_err(|failure| ProviderError::Check { provider: self.key.to_string(), failure })
    }

    /// Lists the enrolments of the users in `query` through the provider's bulk endpoints.
    /// Any failed page fails the whole listing: a partial listing would read as "no
    /// enrolments" for the users on the missing pages.
    pub async fn inventory(&self, query: &UserQuery) -> Result<Inventory, ProviderError> {
        self.api
            .inventory(query)
            .await
            .map_err(|failure| ProviderError::ListEnrolments { provider: self.key.to_string(), failure })
    }

    /// Lists the enrolments of just these users, with the provider's per-user reads (a
    /// targeted sweep). `None` when this provider, or its configuration, has no per-user read
    /// that sees exactly what its full listing sees for those users (a group filter, a user the
    /// provider no longer knows by name): the caller then lists everything.
    pub async fn inventory_of(&self, users: &[String]) -> Result<Option<Inventory>, ProviderError> {
        self.api
            .inventory_of(users)
            .await
            .map_err(|failure| ProviderError::ListEnrolments { provider: self.key.to_string(), failure })
    }

    /// The users whose enrolments changed after `after` (none: where the log stands now),
    /// from the provider's event log; `None` when keyward does not follow this provider's log.
    pub async fn enrolment_events(&self, after: Option<&str>) -> Result<Option<EnrolmentEvents>, ProviderError> {
        self.api
            .enrolment_events(after)
            .await
            .map_err(|failure| ProviderError::ReadEvents { provider: self.key.to_string(), failure })
    }

    /// Revokes one enrolment of `user`. "Not found" is [`Revoked::AlreadyGone`].
    pub async fn revoke(
        &self,
        user: &str,
        enrolment: &Enrolment,
        mode: RevocationMode,
    ) -> Result<Revoked, ProviderError> {
        let error = ProviderError::revoking(self.key.as_str(), user, &enrolment.id);
        if mode == RevocationMode::Disable && !self.api.capabilities().disable {
            return Err(error(Failure::Configuration(
                "enrolments on this provider cannot be disabled, only deleted".into(),
            )));
        }
        self.api.revoke(user, enrolment, mode).await.map_err(error)
    }

    /// Sends a provider-native invitation to enrol `kind`; only for kinds listed in
    /// [`Capabilities::invite`].
    pub async fn invite(&self, user: &str, kind: &FactorKind) -> Result<(), ProviderError> {
        let error = ProviderError::inviting(self.key.as_str(), user, kind.as_str());
        if !self.api.capabilities().invite.contains(kind) {
            return Err(error(Failure::Configuration(format!("this provider has no invitation for {kind}"))));
        }
        self.api.invite(user, kind).await.map_err(error)
    }

    /// HTTP requests made so far (metrics, benchmarks).
    pub fn requests(&self) -> u64 {
        self.api.requests()
    }

    /// The admin writes of `keyward conformance` (a disposable user and a factor on it);
    /// `None` where the provider cannot make them.
    pub fn test_users(&self) -> Option<&dyn TestUsers> {
        self.api.test_users()
    }
}

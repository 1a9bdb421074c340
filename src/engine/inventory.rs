//! What a provider reported: its users and their enrolments, normalized.

use crate::crd::FactorKind;
use serde::{Deserialize, Serialize};

/// One second factor a user holds on a provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// Provider-side id: privacyIDEA serial, Okta factor id, …
    pub id: String,
    /// Normalized kind: the strongest the enrolment provides.
    pub kind: FactorKind,
    /// Further kinds the same enrolment provides — a Duo phone that takes pushes and receives
    /// SMS passcodes, Microsoft Authenticator that does push and TOTP codes. It is kept when
    /// any of its kinds is entitled; revoking it takes them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<FactorKind>,
    /// Ids of the user's other enrolments that the provider removes along with this one (Okta
    /// unenrolls every Okta Verify factor with push or FastPass): it is revoked only when
    /// none of them is entitled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cascades: Vec<String>,
    /// False when the enrolment is disabled or revoked at the provider: it can no longer be
    /// used, so under `revocation: Disable` it needs nothing more.
    pub active: bool,
}

impl Enrolment {
    pub fn new(id: impl Into<String>, kind: FactorKind, active: bool) -> Self {
        Enrolment { id: id.into(), kind, also: Vec::new(), cascades: Vec::new(), active }
    }

    /// The same enrolment, providing `also` besides its kind.
    pub fn providing(mut self, also: Vec<FactorKind>) -> Self {
        self.also = also.into_iter().filter(|k| *k != self.kind).collect();
        self
    }

    /// The same enrolment, taking the enrolments `cascades` with it when removed.
    pub fn cascading(mut self, cascades: Vec<String>) -> Self {
        self.cascades = cascades.into_iter().filter(|id| *id != self.id).collect();
        self
    }

    /// Every kind the enrolment provides, its own first.
    pub fn kinds(&self) -> impl Iterator<Item = &FactorKind> {
        std::iter::once(&self.kind).chain(self.also.iter())
    }

    pub fn provides(&self, kind: &FactorKind) -> bool {
        self.kinds().any(|k| k == kind)
    }
}

/// The kind a provider reports for second factors it knows a user holds but will not itemize
/// (Okta shows an admin only the factors under the user's enrolment policy, yet says whether
/// any factor is enrolled at all). Revoking it revokes every enrolment of the user at once, so
/// the planner revokes it only from users entitled to nothing: for anyone else it could take
/// an entitled factor along.
pub const UNLISTED_KIND: &str = "unlisted";

/// A provider user and the enrolments listed for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderUser {
    /// User name as the provider names it (what Employees map to).
    pub name: String,
    /// False when the user was removed from the provider's user store while its enrolments
    /// remain (a leaver's orphaned tokens).
    pub in_directory: bool,
    pub enrolments: Vec<Enrolment>,
    /// Every other name the provider knows the user by (login, e-mail, aliases, UPN, id): a
    /// protected user is protected under any of them, whichever name `name` is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl ProviderUser {
    /// `names` but `name` and the empty ones, as [`ProviderUser::aliases`].
    pub fn aliases_of(name: &str, names: &[&str]) -> Vec<String> {
        let mut aliases: Vec<String> =
            names.iter().filter(|n| !n.is_empty() && **n != name).map(|n| n.to_string()).collect();
        aliases.sort();
        aliases.dedup();
        aliases
    }

    /// `name` and every alias.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// Everything one bulk listing returned for the provider's realm.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub users: Vec<ProviderUser>,
}

impl Inventory {
    pub fn enrolment_count(&self) -> usize {
        self.users.iter().map(|u| u.enrolments.len()).sum()
    }

    /// The user keys ([`super::identity::user_key`]) the provider listed more than one user
    /// under: a provider with duplicate e-mails, or one user's login equal to another's
    /// address. The planner treats each as an identity conflict: which of them an Employee is
    /// cannot be told, and a guess could revoke the wrong person or keep a leaver.
    pub fn duplicate_names(&self) -> std::collections::BTreeSet<String> {
        let mut seen = std::collections::BTreeSet::new();
        self.users.iter().map(|u| super::identity::user_key(&u.name)).filter(|key| !seen.insert(key.clone())).collect()
    }
}

/// What a provider can do; the planner never plans an action the provider cannot carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Enrolments can be disabled instead of deleted (`revocation: Disable`).
    pub disable: bool,
    /// Factor kinds for which the provider has a native invitation (Required enrolment).
    pub invite: Vec<FactorKind>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_listed_twice_are_duplicates() {
        let user = |name: &str| ProviderUser {
            name: name.into(),
            in_directory: true,
            enrolments: Vec::new(),
            aliases: Vec::new(),
        };
        let inventory = Inventory { users: vec![user("a@x"), user("b@x"), user("A@x"), user("a@x")] };
        assert_eq!(inventory.duplicate_names().into_iter().collect::<Vec<_>>(), ["a@x"]);
        assert!(Inventory { users: vec![user("a"), user("b")] }.duplicate_names().is_empty());
    }
}

//! Which provider user each Employee is, and which users more than one Employee claims.

use crate::crd::mfa_provider::UserMapping;
use crate::crd::{Employee, MfaProvider};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// The user name of an Employee on a provider: an explicit identity for that provider, else
/// the field chosen by the provider's `userMapping`.
pub fn username(employee: &Employee, provider: &MfaProvider) -> String {
    let provider_name = provider.name_any();
    if let Some(identity) = employee.spec.identities.iter().find(|i| i.provider == provider_name) {
        return identity.username.clone();
    }
    match provider.spec.user_mapping {
        UserMapping::Email => employee.spec.email.clone(),
        UserMapping::Name => employee.name_any(),
    }
}

/// Users are matched case-insensitively (e-mail addresses are, and no provider keyward
/// supports lets two users differ only by case) and in Unicode NFC: `José` typed with a
/// combining accent in YAML and stored precomposed by the provider is one user. The one
/// normalisation for every comparison of user names: Employees, protected users, listings.
pub fn user_key(name: &str) -> String {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(name).to_lowercase()
}

/// Employees indexed by the provider user they map to. A key with more than one Employee is
/// an identity conflict.
pub fn index<'a>(employees: &[&'a Employee], provider: &MfaProvider) -> BTreeMap<String, Vec<&'a Employee>> {
    let mut by_user: BTreeMap<String, Vec<&'a Employee>> = BTreeMap::new();
    for employee in employees {
        by_user.entry(user_key(&username(employee, provider))).or_default().push(employee);
    }
    for claimants in by_user.values_mut() {
        claimants.sort_by_key(|e| e.name_any());
    }
    by_user
}

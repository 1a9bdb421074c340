//! The key an MfaProvider goes by everywhere keyward names it: `namespace/name`.

use super::MfaProvider;
use kube::ResourceExt;
use std::borrow::Borrow;
use std::fmt;

/// `namespace/name` of an MfaProvider. MfaProviders are namespaced, so the name alone can
/// stand for two of them; every map, lock, metric label and record of a provider goes by
/// this key, and its text is the one audit records, statuses and plans carry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderKey(String);

impl ProviderKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        ProviderKey(format!("{namespace}/{name}"))
    }

    /// The key of `provider`; an object without a namespace (read from a file that gave
    /// none) has the empty one.
    pub fn of(provider: &MfaProvider) -> Self {
        Self::new(&provider.namespace().unwrap_or_default(), &provider.name_any())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The MfaProvider's name, without its namespace (neither can hold a `/`).
    pub fn name(&self) -> &str {
        self.0.rsplit_once('/').map_or(self.0.as_str(), |(_, name)| name)
    }
}

impl From<&MfaProvider> for ProviderKey {
    fn from(provider: &MfaProvider) -> Self {
        Self::of(provider)
    }
}

impl From<ProviderKey> for String {
    fn from(key: ProviderKey) -> Self {
        key.0
    }
}

impl fmt::Display for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ProviderKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by [`ProviderKey`] are looked up by the text too (a key read back from a
/// record); the hash and order are the text's.
impl Borrow<str> for ProviderKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ProviderKey {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ProviderKey {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_namespace_slash_name() {
        let key = ProviderKey::new("acme", "corp-pi");
        assert_eq!(key.to_string(), "acme/corp-pi");
        assert_eq!(key.as_str(), "acme/corp-pi");
        assert_eq!(key.name(), "corp-pi");
        assert_eq!(String::from(key.clone()), "acme/corp-pi");
        let provider = crate::engine::fixtures::provider();
        assert_eq!(ProviderKey::of(&provider).as_str(), "acme/corp-pi");
        assert_eq!(ProviderKey::from(&provider), ProviderKey::of(&provider));
    }

    #[test]
    fn without_a_namespace_the_key_starts_with_the_slash() {
        let mut provider = crate::engine::fixtures::provider();
        provider.metadata.namespace = None;
        assert_eq!(ProviderKey::of(&provider).as_str(), "/corp-pi");
    }

    #[test]
    fn maps_of_keys_are_looked_up_by_text() {
        let map: std::collections::HashMap<ProviderKey, u8> = [(ProviderKey::new("a", "b"), 1)].into();
        assert_eq!(map.get("a/b"), Some(&1));
        let mut keys = [ProviderKey::new("b", "a"), ProviderKey::new("a", "z"), ProviderKey::new("a", "b")];
        keys.sort();
        assert_eq!(keys.iter().map(ProviderKey::as_str).collect::<Vec<_>>(), ["a/b", "a/z", "b/a"]);
    }
}

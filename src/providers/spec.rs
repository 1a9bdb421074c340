//! A provider block (`spec.privacyidea`, `spec.okta`, …): what keyward needs of each provider
//! besides its API — its Secret and the keys its credential method reads, the factor kinds
//! it can report, its product name, and how to connect to it. Each provider implements
//! [`ProviderSpec`] for its block's spec type in its own folder (`providers/<name>/spec.rs`);
//! `crd::mfa_provider::ProviderBlock` is the one list of blocks, and everything that differs
//! per provider goes through it (docs/adding-a-provider.md).

use super::Provider;
use super::error::ProviderError;
use super::kinds::Reported;
use super::rest::Backoff;

/// One key a credential method reads from the block's Secret, and the spec field that names
/// it (`secretRef.name` when the key is fixed, `secretRef.passwordKey` when configurable):
/// where `validate` reports a missing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretKey {
    pub key: String,
    pub field: &'static str,
}

impl SecretKey {
    /// A key fixed by the block (reported at `secretRef.name`).
    pub fn fixed(key: &str) -> Self {
        SecretKey { key: key.to_string(), field: "name" }
    }
}

/// What a provider is connected with.
pub struct Connect<'a> {
    /// The MfaProvider, named in every error.
    pub key: &'a crate::crd::ProviderKey,
    pub namespace: &'a str,
    /// A key of the block's Secret, or `None` when it (or the Secret) is missing.
    pub secret: &'a dyn Fn(&str) -> Option<String>,
    /// The pace and the trusted authorities of the provider's transport.
    pub transport: super::rest::TransportSettings,
    pub backoff: Backoff,
}

impl Connect<'_> {
    /// A key the credential method needs.
    pub fn key(&self, secret_name: &str, key: &str) -> Result<String, ProviderError> {
        (self.secret)(key).ok_or_else(|| {
            self.configure(format!(
                "Secret {}/{secret_name} has no key {key:?} (or does not exist; the operator sees only Secrets labelled {})",
                self.namespace,
                crate::crd::CREDENTIALS_LABEL
            ))
        })
    }

    /// A key that may be absent or blank.
    pub fn optional(&self, key: &str) -> Option<String> {
        (self.secret)(key).filter(|v| !v.trim().is_empty())
    }

    pub fn configure(&self, message: String) -> ProviderError {
        ProviderError::Configure { provider: self.key.to_string(), message }
    }
}

/// The parts of a provider that are not its API: the spec type of its block.
pub trait ProviderSpec: Sync {
    /// The product, for messages (`Okta`, `Entra ID`).
    fn product(&self) -> &'static str;
    /// The Secret holding the credentials.
    fn secret(&self) -> &str;
    /// The URLs the block sends credentials to (defaults included), for the host allowlist.
    fn urls(&self) -> Vec<&str>;
    /// The tenant within the endpoint, where the URL does not name it (a realm, a tenant id).
    fn tenant(&self) -> Option<&str> {
        None
    }
    /// Where the calls go, for audit records: the first URL, and the tenant within it.
    fn endpoint(&self) -> Option<String> {
        let url = self.urls().first().map(|u| u.to_string())?;
        Some(match self.tenant() {
            Some(tenant) => format!("{url} ({tenant})"),
            None => url,
        })
    }
    /// The keys the configured credential method reads from it.
    fn secret_keys(&self) -> Vec<SecretKey>;
    /// The factor kinds the provider can report at all.
    fn reported(&self) -> Reported;
    /// The provider, with its API's client built.
    fn connect(&self, connect: &Connect<'_>) -> Result<Provider, ProviderError>;
}

/// The [`ProviderSpec`] methods that a block with a `url` field and `credentials.secretRef`
/// spells the same way (privacyIDEA, Keycloak, Okta, Duo); `tenant:` names the field that says
/// which tenant of that URL the block means (a realm).
macro_rules! url_and_secret {
    ($product:literal) => {
        fn product(&self) -> &'static str {
            $product
        }
        fn secret(&self) -> &str {
            &self.credentials.secret_ref.name
        }
        fn urls(&self) -> Vec<&str> {
            vec![&self.url]
        }
    };
    ($product:literal, tenant: $field:ident) => {
        $crate::providers::spec::url_and_secret!($product);
        fn tenant(&self) -> Option<&str> {
            Some(&self.$field)
        }
    };
}
pub(crate) use url_and_secret;

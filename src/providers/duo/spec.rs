//! The `duo` block of an MfaProvider: its spec (part of the CRD schema) and what keyward
//! needs of it besides its API ([`ProviderSpec`]).

use crate::crd::mfa_provider::SecretCredentials;
use crate::providers::Provider;
use crate::providers::error::ProviderError;
use crate::providers::kinds::Reported;
use crate::providers::spec::{Connect, ProviderSpec, SecretKey};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Duo Admin API connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuoSpec {
    /// The account's API hostname as a URL, e.g. `https://api-1a2b3c4d.duosecurity.com`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(crate::crd::URL_RULE).message("url must be https (http only for loopback), with no user name or password, query, fragment or white space"))]
    pub url: String,
    /// Duo group name: under `scope: All`, only its members are managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The Admin API application's keys: Secret keys `integrationKey` and `secretKey`. The
    /// application needs "Grant read resource" and "Grant write resource".
    pub credentials: SecretCredentials,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

impl ProviderSpec for DuoSpec {
    crate::providers::spec::url_and_secret!("Duo");

    fn secret_keys(&self) -> Vec<SecretKey> {
        vec![SecretKey::fixed("integrationKey"), SecretKey::fixed("secretKey")]
    }

    fn reported(&self) -> Reported {
        Reported::Only { kinds: super::KINDS, prefixes: super::KIND_PREFIXES }
    }

    fn connect(&self, c: &Connect<'_>) -> Result<Provider, ProviderError> {
        let (ikey, skey) = (c.key(self.secret(), "integrationKey")?, c.key(self.secret(), "secretKey")?);
        Ok(Provider::new(
            c.key.clone(),
            super::Duo::new(c.key.as_str(), self, &c.transport, ikey, skey, c.backoff.clone())?,
        ))
    }
}

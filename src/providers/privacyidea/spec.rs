//! The `privacyidea` block of an MfaProvider: its spec (part of the CRD schema) and what keyward
//! needs of it besides its API ([`ProviderSpec`]).

use crate::crd::mfa_provider::Credentials;
use crate::providers::Provider;
use crate::providers::error::ProviderError;
use crate::providers::kinds::Reported;
use crate::providers::spec::{Connect, ProviderSpec, SecretKey};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// privacyIDEA connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivacyIdeaSpec {
    /// Base URL of the privacyIDEA server, e.g. `https://pi.acme.example`. Plain `http` is
    /// accepted only for loopback addresses (tests).
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(crate::crd::URL_RULE).message("url must be https (http only for loopback), with no user name or password, query, fragment or white space"))]
    pub url: String,
    /// The privacyIDEA realm whose users and tokens keyward manages.
    #[schemars(length(min = 1))]
    pub realm: String,
    /// Admin credentials: a Secret in the same namespace with keys `username` and `password`.
    pub credentials: Credentials,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

impl ProviderSpec for PrivacyIdeaSpec {
    crate::providers::spec::url_and_secret!("privacyIDEA", tenant: realm);

    fn secret_keys(&self) -> Vec<SecretKey> {
        let secret_ref = &self.credentials.secret_ref;
        let key = |key: &str, explicit: bool, field| SecretKey {
            key: key.to_string(),
            field: if explicit { field } else { "name" },
        };
        vec![
            key(secret_ref.username_key(), secret_ref.username_key.is_some(), "usernameKey"),
            key(secret_ref.password_key(), secret_ref.password_key.is_some(), "passwordKey"),
        ]
    }

    /// Any kind: privacyIDEA names kinds after its token types, plugins included.
    fn reported(&self) -> Reported {
        Reported::Any
    }

    fn connect(&self, c: &Connect<'_>) -> Result<Provider, ProviderError> {
        let secret_ref = &self.credentials.secret_ref;
        let username = c.key(&secret_ref.name, secret_ref.username_key())?;
        let password = c.key(&secret_ref.name, secret_ref.password_key())?;
        let client =
            super::PrivacyIdea::new(c.key.as_str(), self, &c.transport, username, password, c.backoff.clone())?;
        Ok(Provider::new(c.key.clone(), client))
    }
}

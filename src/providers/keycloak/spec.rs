//! The `keycloak` block of an MfaProvider: its spec (part of the CRD schema) and what keyward
//! needs of it besides its API ([`ProviderSpec`]).

use crate::crd::mfa_provider::SecretName;
use crate::providers::Provider;
use crate::providers::error::ProviderError;
use crate::providers::kinds::Reported;
use crate::providers::spec::{Connect, ProviderSpec, SecretKey};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Keycloak connection (Admin REST API).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeycloakSpec {
    /// Base URL of the server, e.g. `https://sso.acme.example` (add `/auth` for Keycloak
    /// before 17).
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(crate::crd::URL_RULE).message("url must be https (http only for loopback), with no user name or password, query, fragment or white space"))]
    pub url: String,
    /// The realm whose users and credentials keyward manages.
    #[schemars(length(min = 1))]
    pub realm: String,
    /// The realm the credentials authenticate against (default `master`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_realm: Option<String>,
    /// How keyward authenticates to Keycloak.
    pub credentials: KeycloakCredentials,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Keycloak credentials, from a Secret in the MfaProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeycloakCredentials {
    /// `ClientCredentials` (default): a confidential client whose service account holds the
    /// `realm-management` roles `view-users` and `manage-users`; Secret keys `clientId` and
    /// `clientSecret`. `Password`: an admin user; Secret keys `username`, `password` and,
    /// optionally, `clientId` (default `admin-cli`).
    #[serde(default)]
    pub method: KeycloakAuthMethod,
    /// The Secret holding the keys.
    pub secret_ref: SecretName,
}

/// How keyward authenticates to Keycloak.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeycloakAuthMethod {
    #[default]
    ClientCredentials,
    Password,
}

impl ProviderSpec for KeycloakSpec {
    crate::providers::spec::url_and_secret!("Keycloak", tenant: realm);

    fn secret_keys(&self) -> Vec<SecretKey> {
        match self.credentials.method {
            KeycloakAuthMethod::ClientCredentials => {
                vec![SecretKey::fixed("clientId"), SecretKey::fixed("clientSecret")]
            }
            KeycloakAuthMethod::Password => vec![SecretKey::fixed("username"), SecretKey::fixed("password")],
        }
    }

    fn reported(&self) -> Reported {
        Reported::Only { kinds: super::KINDS, prefixes: &[] }
    }

    fn connect(&self, c: &Connect<'_>) -> Result<Provider, ProviderError> {
        let secret = self.secret();
        let auth = match self.credentials.method {
            KeycloakAuthMethod::ClientCredentials => super::KeycloakAuth::ClientCredentials {
                client_id: c.key(secret, "clientId")?,
                client_secret: c.key(secret, "clientSecret")?,
            },
            KeycloakAuthMethod::Password => super::KeycloakAuth::Password {
                client_id: c.optional("clientId").unwrap_or_else(|| "admin-cli".into()),
                username: c.key(secret, "username")?,
                password: c.key(secret, "password")?,
            },
        };
        Ok(Provider::new(
            c.key.clone(),
            super::Keycloak::new(c.key.as_str(), self, &c.transport, auth, c.backoff.clone())?,
        ))
    }
}

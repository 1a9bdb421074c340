//! The `entra` block of an MfaProvider: its spec (part of the CRD schema) and what keyward
//! needs of it besides its API ([`ProviderSpec`]).

use crate::crd::mfa_provider::SecretName;
use crate::providers::Provider;
use crate::providers::error::ProviderError;
use crate::providers::kinds::Reported;
use crate::providers::spec::{Connect, ProviderSpec, SecretKey};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Microsoft Entra ID connection (Microsoft Graph authentication methods API).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntraIdSpec {
    /// The directory (tenant) id or a verified domain of the tenant.
    #[schemars(length(min = 1))]
    pub tenant_id: String,
    /// Group object id: under `scope: All`, only its members are managed, nested groups' members
    /// included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The app registration's credentials; it needs the application permission
    /// `UserAuthenticationMethod.ReadWrite.All` (and `User.Read.All`), admin-consented.
    pub credentials: EntraCredentials,
    /// Token authority (default `https://login.microsoftonline.com`; national clouds differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(crate::crd::URL_RULE).message("authorityUrl must be https (http only for loopback), with no user name or password, query, fragment or white space"))]
    pub authority_url: Option<String>,
    /// Microsoft Graph endpoint (default `https://graph.microsoft.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(crate::crd::URL_RULE).message("graphUrl must be https (http only for loopback), with no user name or password, query, fragment or white space"))]
    pub graph_url: Option<String>,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Entra ID app credentials, from a Secret in the MfaProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntraCredentials {
    /// `ClientSecret` (default): Secret keys `clientId` and `clientSecret`. `Certificate`:
    /// Secret keys `clientId`, `certificate` (PEM) and `privateKey` (PEM, RSA).
    #[serde(default)]
    pub method: EntraAuthMethod,
    /// The Secret holding the keys.
    pub secret_ref: SecretName,
}

/// How keyward authenticates to Entra ID.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntraAuthMethod {
    #[default]
    ClientSecret,
    Certificate,
}

impl ProviderSpec for EntraIdSpec {
    fn product(&self) -> &'static str {
        "Entra ID"
    }

    fn secret(&self) -> &str {
        &self.credentials.secret_ref.name
    }

    fn urls(&self) -> Vec<&str> {
        vec![
            self.authority_url.as_deref().unwrap_or(super::DEFAULT_AUTHORITY),
            self.graph_url.as_deref().unwrap_or(super::DEFAULT_GRAPH),
        ]
    }

    fn tenant(&self) -> Option<&str> {
        Some(&self.tenant_id)
    }

    fn secret_keys(&self) -> Vec<SecretKey> {
        match self.credentials.method {
            EntraAuthMethod::ClientSecret => vec![SecretKey::fixed("clientId"), SecretKey::fixed("clientSecret")],
            EntraAuthMethod::Certificate => {
                vec![SecretKey::fixed("clientId"), SecretKey::fixed("certificate"), SecretKey::fixed("privateKey")]
            }
        }
    }

    fn reported(&self) -> Reported {
        Reported::Only { kinds: super::KINDS, prefixes: &[] }
    }

    fn connect(&self, c: &Connect<'_>) -> Result<Provider, ProviderError> {
        let secret = self.secret();
        let auth = match self.credentials.method {
            EntraAuthMethod::ClientSecret => super::EntraAuth::ClientSecret {
                client_id: c.key(secret, "clientId")?,
                client_secret: c.key(secret, "clientSecret")?,
            },
            EntraAuthMethod::Certificate => super::EntraAuth::Certificate {
                client_id: c.key(secret, "clientId")?,
                certificate: c.key(secret, "certificate")?,
                private_key: c.key(secret, "privateKey")?,
            },
        };
        Ok(Provider::new(
            c.key.clone(),
            super::Entra::new(c.key.as_str(), self, &c.transport, auth, c.backoff.clone())?,
        ))
    }
}

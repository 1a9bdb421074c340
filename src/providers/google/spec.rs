//! The `google` block of an MfaProvider: its spec (part of the CRD schema) and what keyward
//! needs of it besides its API ([`ProviderSpec`]).

use crate::crd::mfa_provider::SecretCredentials;
use crate::providers::Provider;
use crate::providers::error::ProviderError;
use crate::providers::kinds::Reported;
use crate::providers::spec::{Connect, ProviderSpec, SecretKey};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Google Workspace connection (Admin SDK Directory API).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoogleWorkspaceSpec {
    /// The administrator the service account acts as (domain-wide delegation subject).
    #[schemars(length(min = 3))]
    pub admin_email: String,
    /// Customer id (default `my_customer`, the admin's own account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Organizational unit path, e.g. `/Engineering`: only users in it (and below) are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_unit_path: Option<String>,
    /// The service account's JSON key: Secret key `serviceAccountKey`. Its client id must be
    /// granted the scopes `https://www.googleapis.com/auth/admin.directory.user.security` and
    /// `https://www.googleapis.com/auth/admin.directory.user.readonly` in the Admin console.
    pub credentials: SecretCredentials,
    /// Directory API endpoint (default `https://admin.googleapis.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(crate::crd::URL_RULE).message("url must be https (http only for loopback), with no user name or password, query, fragment or white space"))]
    pub url: Option<String>,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

impl ProviderSpec for GoogleWorkspaceSpec {
    fn product(&self) -> &'static str {
        "Google Workspace"
    }

    fn secret(&self) -> &str {
        &self.credentials.secret_ref.name
    }

    /// The service account key's `token_uri` is checked when it is called.
    fn urls(&self) -> Vec<&str> {
        vec![self.url.as_deref().unwrap_or(super::DEFAULT_URL)]
    }

    fn tenant(&self) -> Option<&str> {
        self.customer.as_deref()
    }

    fn secret_keys(&self) -> Vec<SecretKey> {
        vec![SecretKey::fixed("serviceAccountKey")]
    }

    fn reported(&self) -> Reported {
        Reported::Only { kinds: &[super::KIND], prefixes: &[] }
    }

    fn connect(&self, c: &Connect<'_>) -> Result<Provider, ProviderError> {
        let json = c.key(self.secret(), "serviceAccountKey")?;
        let account: super::ServiceAccountKey = serde_json::from_str(&json).map_err(|e| {
            c.configure(format!(
                "Secret {}/{}: serviceAccountKey is not a service account JSON key: {e}",
                c.namespace,
                self.secret()
            ))
        })?;
        Ok(Provider::new(
            c.key.clone(),
            super::Google::new(c.key.as_str(), self, &c.transport, account, c.backoff.clone())?,
        ))
    }
}

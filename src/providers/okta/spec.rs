//! The `okta` block of an MfaProvider: its spec (part of the CRD schema) and what keyward
//! needs of it besides its API ([`ProviderSpec`]).

use crate::crd::mfa_provider::SecretName;
use crate::providers::Provider;
use crate::providers::error::ProviderError;
use crate::providers::kinds::Reported;
use crate::providers::spec::{Connect, ProviderSpec, SecretKey};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Okta connection (Factors API, `/api/v1`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OktaSpec {
    /// The Okta org URL, e.g. `https://acme.okta.com`. Plain `http` only for loopback (tests).
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(crate::crd::URL_RULE).message("url must be https (http only for loopback), with no user name or password, query, fragment or white space"))]
    pub url: String,
    /// Okta group id (`00g…`): under `scope: All`, only its members are managed. Without it,
    /// every user of the org is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// How keyward authenticates to Okta.
    pub credentials: OktaCredentials,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Okta credentials, from a Secret in the MfaProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OktaCredentials {
    /// `ApiToken` (default): Secret key `apiToken`, sent as `Authorization: SSWS …`.
    /// `PrivateKeyJwt`: an OAuth 2.0 service app granted `okta.users.read` and
    /// `okta.users.manage`; Secret keys `clientId`, `privateKey` (PEM, RSA or EC P-256) and,
    /// optionally, `keyId`.
    #[serde(default)]
    pub method: OktaAuthMethod,
    /// The Secret holding the keys.
    pub secret_ref: SecretName,
}

/// How keyward authenticates to Okta.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OktaAuthMethod {
    /// An API token (`SSWS`).
    #[default]
    ApiToken,
    /// OAuth 2.0 client credentials with a signed JWT client assertion.
    PrivateKeyJwt,
}

impl ProviderSpec for OktaSpec {
    crate::providers::spec::url_and_secret!("Okta");

    fn secret_keys(&self) -> Vec<SecretKey> {
        match self.credentials.method {
            OktaAuthMethod::ApiToken => vec![SecretKey::fixed("apiToken")],
            OktaAuthMethod::PrivateKeyJwt => vec![SecretKey::fixed("clientId"), SecretKey::fixed("privateKey")],
        }
    }

    fn reported(&self) -> Reported {
        Reported::Only { kinds: super::KINDS, prefixes: &[] }
    }

    fn connect(&self, c: &Connect<'_>) -> Result<Provider, ProviderError> {
        let secret = self.secret();
        let auth = match self.credentials.method {
            OktaAuthMethod::ApiToken => super::OktaAuth::ApiToken(c.key(secret, "apiToken")?),
            OktaAuthMethod::PrivateKeyJwt => super::OktaAuth::PrivateKeyJwt {
                client_id: c.key(secret, "clientId")?,
                private_key: c.key(secret, "privateKey")?,
                key_id: c.optional("keyId"),
            },
        };
        Ok(Provider::new(c.key.clone(), super::Okta::new(c.key.as_str(), self, &c.transport, auth, c.backoff.clone())?))
    }
}

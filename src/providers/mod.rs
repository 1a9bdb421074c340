//! MFA providers: one trait, one module per provider.
//!
//! A provider lists enrolments in bulk, revokes one enrolment, and reports what it can do
//! ([`Capabilities`]). Decisions are the engine's; a provider only carries them out.

pub mod dpop;
pub mod duo;
pub mod entra;
pub mod error;
pub mod fake;
pub mod google;
pub mod http;
pub mod jwt;
pub mod keycloak;
pub mod kinds;
pub mod limiter;
pub mod oauth;
pub mod okta;
pub mod paging;
pub mod privacyidea;
pub mod rest;
pub mod user_ids;

pub use error::{Failure, ProviderError};

use crate::crd::FactorKind;
use crate::crd::mfa_provider::RevocationMode;
use crate::engine::{Capabilities, Enrolment, Inventory};
use async_trait::async_trait;

/// Builds the client for an MfaProvider's block. `secret` looks up a key of a Secret in the
/// provider's namespace; credentials never come from anywhere else.
pub fn connect(
    provider: &crate::crd::MfaProvider,
    secret: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<Box<dyn MfaBackend>, ProviderError> {
    connect_with(provider, secret, rest::Backoff::default())
}

/// [`connect`] with the retry timing of the SaaS provider clients (tests shorten it).
pub fn connect_with(
    provider: &crate::crd::MfaProvider,
    secret: &dyn Fn(&str, &str) -> Option<String>,
    backoff: rest::Backoff,
) -> Result<Box<dyn MfaBackend>, ProviderError> {
    use crate::crd::mfa_provider::{EntraAuthMethod, KeycloakAuthMethod, OktaAuthMethod};
    use kube::ResourceExt;
    let name = crate::engine::planner::provider_key(provider);
    let configure = |message: String| ProviderError::Configure { provider: name.clone(), message };
    let namespace = provider.namespace().unwrap_or_default();
    let missing = |secret_name: &str, key: &str| {
        configure(format!(
            "Secret {namespace}/{secret_name} has no key {key:?} (or does not exist; the operator sees only Secrets labelled {})",
            crate::crd::CREDENTIALS_LABEL
        ))
    };
    let read = |secret_ref: &crate::crd::mfa_provider::SecretRef, key: &str| {
        secret(&secret_ref.name, key).ok_or_else(|| missing(&secret_ref.name, key))
    };
    // Keys of the new blocks' Secrets are fixed per block (see the CRD field docs).
    let key = |secret_name: &crate::crd::mfa_provider::SecretName, key: &str| {
        secret(&secret_name.name, key).ok_or_else(|| missing(&secret_name.name, key))
    };
    let optional = |secret_name: &crate::crd::mfa_provider::SecretName, key: &str| {
        secret(&secret_name.name, key).filter(|v| !v.trim().is_empty())
    };
    let spec = &provider.spec;
    let rps = spec.policy.max_requests_per_second;
    use crate::crd::mfa_provider::ProviderBlock;
    match spec.block() {
        Err(count) => Err(configure(format!(
            "exactly one provider block must be set (privacyidea, okta, duo, entraId, googleWorkspace, keycloak), found {count}"
        ))),
        Ok(ProviderBlock::PrivacyIdea(spec)) => {
            let secret_ref = &spec.credentials.secret_ref;
            let username = read(secret_ref, secret_ref.username_key())?;
            let password = read(secret_ref, secret_ref.password_key())?;
            Ok(Box::new(privacyidea::PrivacyIdea::new(&name, spec, rps, username, password, backoff)?))
        }
        Ok(ProviderBlock::Okta(spec)) => {
            let s = &spec.credentials.secret_ref;
            let auth = match spec.credentials.method {
                OktaAuthMethod::ApiToken => okta::OktaAuth::ApiToken(key(s, "apiToken")?),
                OktaAuthMethod::PrivateKeyJwt => okta::OktaAuth::PrivateKeyJwt {
                    client_id: key(s, "clientId")?,
                    private_key: key(s, "privateKey")?,
                    key_id: optional(s, "keyId"),
                },
            };
            Ok(Box::new(okta::Okta::new(&name, spec, rps, auth, backoff)?))
        }
        Ok(ProviderBlock::Duo(spec)) => {
            let s = &spec.credentials.secret_ref;
            let (ikey, skey) = (key(s, "integrationKey")?, key(s, "secretKey")?);
            Ok(Box::new(duo::Duo::new(&name, spec, rps, ikey, skey, backoff)?))
        }
        Ok(ProviderBlock::EntraId(spec)) => {
            let s = &spec.credentials.secret_ref;
            let auth = match spec.credentials.method {
                EntraAuthMethod::ClientSecret => entra::EntraAuth::ClientSecret {
                    client_id: key(s, "clientId")?,
                    client_secret: key(s, "clientSecret")?,
                },
                EntraAuthMethod::Certificate => entra::EntraAuth::Certificate {
                    client_id: key(s, "clientId")?,
                    certificate: key(s, "certificate")?,
                    private_key: key(s, "privateKey")?,
                },
            };
            Ok(Box::new(entra::Entra::new(&name, spec, rps, auth, backoff)?))
        }
        Ok(ProviderBlock::GoogleWorkspace(spec)) => {
            let s = &spec.credentials.secret_ref;
            let json = key(s, "serviceAccountKey")?;
            let account: google::ServiceAccountKey = serde_json::from_str(&json).map_err(|e| {
                configure(format!(
                    "Secret {namespace}/{}: serviceAccountKey is not a service account JSON key: {e}",
                    s.name
                ))
            })?;
            Ok(Box::new(google::Google::new(&name, spec, rps, account, backoff)?))
        }
        Ok(ProviderBlock::Keycloak(spec)) => {
            let s = &spec.credentials.secret_ref;
            let auth = match spec.credentials.method {
                KeycloakAuthMethod::ClientCredentials => keycloak::KeycloakAuth::ClientCredentials {
                    client_id: key(s, "clientId")?,
                    client_secret: key(s, "clientSecret")?,
                },
                KeycloakAuthMethod::Password => keycloak::KeycloakAuth::Password {
                    client_id: optional(s, "clientId").unwrap_or_else(|| "admin-cli".into()),
                    username: key(s, "username")?,
                    password: key(s, "password")?,
                },
            };
            Ok(Box::new(keycloak::Keycloak::new(&name, spec, rps, auth, backoff)?))
        }
    }
}

/// The Secrets an MfaProvider reads its credentials from (to rebuild its client when they
/// change).
pub fn secret_names(provider: &crate::crd::MfaProvider) -> Vec<String> {
    provider.spec.block().map(|b| vec![b.secret_name().to_string()]).unwrap_or_default()
}

/// How a revocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    Done,
    /// The enrolment was already gone (or already disabled): counts as revoked.
    AlreadyGone,
}

impl Revoked {
    pub fn as_str(self) -> &'static str {
        match self {
            Revoked::Done => "revoked",
            Revoked::AlreadyGone => "already-gone",
        }
    }
}

/// Which users the caller needs listed. Providers with a realm-wide bulk listing may ignore
/// `declared` and list everything; providers that can only list per user use it.
#[derive(Clone, Debug, Default)]
pub struct UserQuery {
    /// Provider user names mapped from Employees.
    pub declared: Vec<String>,
    /// `scope: All`: every user of the realm is needed.
    pub all: bool,
}

#[async_trait]
pub trait MfaBackend: Send + Sync {
    /// `<namespace>/<name>` of the MfaProvider, for errors and audit.
    fn name(&self) -> &str;

    fn capabilities(&self) -> Capabilities;

    /// Proves that the provider answers and the credentials work (the `Ready` condition).
    async fn check(&self) -> Result<(), ProviderError>;

    /// Lists the enrolments of the users in `query` through the provider's bulk endpoints.
    /// Any failed page fails the whole listing: a partial listing would read as "no
    /// enrolments" for the users on the missing pages.
    async fn inventory(&self, query: &UserQuery) -> Result<Inventory, ProviderError>;

    /// Revokes one enrolment of `user`. "Not found" is [`Revoked::AlreadyGone`].
    async fn revoke(&self, user: &str, enrolment: &Enrolment, mode: RevocationMode) -> Result<Revoked, ProviderError>;

    /// Sends a provider-native invitation to enrol `kind`; only called for kinds listed in
    /// [`Capabilities::invite`].
    async fn invite(&self, user: &str, kind: &FactorKind) -> Result<(), ProviderError>;

    /// HTTP requests made so far (metrics, benchmarks).
    fn requests(&self) -> u64;
}

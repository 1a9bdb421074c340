//! MFA providers: one trait, one module per provider.
//!
//! A provider lists enrolments in bulk, revokes one enrolment, and reports what it can do
//! ([`Capabilities`](crate::engine::Capabilities)). Decisions are the engine's; a provider
//! only carries them out. Each provider module implements [`ProviderApi`] for its client and
//! [`ProviderSpec`] for its block's spec type; everything else calls a [`Provider`].

pub mod allowlist;
pub mod api;
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
pub mod spec;
pub mod totp;
pub mod user_ids;

pub use api::{Provider, ProviderApi, TestUsers};
pub use error::{Failure, ProviderError};
pub use spec::ProviderSpec;

/// The [`Provider`] an MfaProvider's block declares. `secret` looks up a key of a Secret in the
/// provider's namespace; credentials never come from anywhere else.
pub fn connect(
    provider: &crate::crd::MfaProvider,
    secret: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<Provider, ProviderError> {
    connect_with(provider, secret, rest::Backoff::default())
}

/// [`connect`] with the retry timing of the provider clients (tests shorten it).
pub fn connect_with(
    provider: &crate::crd::MfaProvider,
    secret: &dyn Fn(&str, &str) -> Option<String>,
    backoff: rest::Backoff,
) -> Result<Provider, ProviderError> {
    use kube::ResourceExt;
    let key = crate::crd::ProviderKey::of(provider);
    let block = provider.spec.block().map_err(|count| ProviderError::Configure {
        provider: key.to_string(),
        message: format!(
            "exactly one provider block must be set ({}), found {count}",
            crate::crd::mfa_provider::BLOCK_NAMES.join(", ")
        ),
    })?;
    let spec = block.spec();
    // A URL off the allowlist is refused here, with the reason in the MfaProvider's status,
    // before any client (or credential) is made; requests are checked again as they go.
    let allowed = allowlist::current();
    for url in spec.urls() {
        if let Ok(parsed) = url::Url::parse(url)
            && !allowed.allows(&parsed)
        {
            let refusal = allowlist::HostAllowlist::refusal(&parsed);
            return Err(ProviderError::Configure {
                provider: key.to_string(),
                message: format!("{}: {refusal}", block.name()),
            });
        }
    }
    let namespace = provider.namespace().unwrap_or_default();
    let read = |field: &str| secret(spec.secret(), field);
    spec.connect(&spec::Connect {
        key: &key,
        namespace: &namespace,
        secret: &read,
        transport: rest::TransportSettings {
            max_requests_per_second: provider.spec.policy.max_requests_per_second,
            ca_bundle: provider.spec.ca_bundle.clone(),
        },
        backoff,
    })
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

/// What a provider's event log said since a cursor: drift found in seconds, not at the resync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnrolmentEvents {
    /// Where the next read goes on from (the provider's own position: an audit entry number,
    /// a published time).
    pub cursor: String,
    /// Users named by enrolment events after the previous cursor (none on the first read,
    /// which only finds where the log stands).
    pub users: Vec<String>,
    /// The log moved further than one read follows: events may have been skipped, so the
    /// caller sweeps everything.
    pub overflowed: bool,
}

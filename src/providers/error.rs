//! Provider errors: which action failed on which object, and why.

use std::time::Duration;
use thiserror::Error;

/// The cause of a failed provider call.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Failure {
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("credentials rejected: {0}")]
    Unauthorized(String),
    #[error("permission denied: {0}")]
    Forbidden(String),
    #[error("rate limited{}", .retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("HTTP {status}{}: {message}", .code.map(|c| format!(" (error code {c})")).unwrap_or_default())]
    Status { status: u16, code: Option<i64>, message: String },
    #[error("unexpected response: {0}")]
    Malformed(String),
    #[error("{0}")]
    Configuration(String),
    /// More than one provider user goes by the name keyward addresses: none is acted on.
    #[error("identity conflict: {0}")]
    IdentityConflict(String),
    /// The provider answered with a redirect, which keyward never follows: the credentials
    /// go only to the URL the MfaProvider names. `to` is the scheme, host and port it named.
    #[error(
        "HTTP {status}: redirected to {to}, and keyward follows no redirect (set the MfaProvider's URL to where the provider is)"
    )]
    Redirected { status: u16, to: String },
    /// The listing answered, but the provider could not say whose some enrolments are (a user
    /// store it could not read): read as "these users have nothing", it would revoke them all.
    #[error("owners not named: {0}")]
    OwnersUnknown(String),
}

impl Failure {
    /// Whether trying again may help (the server may recover, the limit may reset).
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Unreachable { .. } | Failure::Timeout(_) | Failure::RateLimited { .. } => true,
            Failure::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// A small fixed label for metrics and Events.
    pub fn category(&self) -> &'static str {
        match self {
            Failure::Unreachable { .. } => "unreachable",
            Failure::Timeout(_) => "timeout",
            Failure::Unauthorized(_) => "unauthorized",
            Failure::Forbidden(_) => "forbidden",
            Failure::RateLimited { .. } => "rate_limited",
            Failure::Status { .. } => "rejected",
            Failure::Malformed(_) => "malformed",
            Failure::Configuration(_) => "configuration",
            Failure::IdentityConflict(_) => "identity_conflict",
            Failure::OwnersUnknown(_) => "owners_unknown",
            Failure::Redirected { .. } => "redirected",
        }
    }
}

/// A provider action that failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProviderError {
    #[error("authenticate to {provider}: {failure}")]
    Authenticate { provider: String, failure: Failure },
    #[error("check {provider}: {failure}")]
    Check { provider: String, failure: Failure },
    #[error("list enrolments on {provider}: {failure}")]
    ListEnrolments { provider: String, failure: Failure },
    #[error("read the enrolment events of {provider}: {failure}")]
    ReadEvents { provider: String, failure: Failure },
    #[error("revoke enrolment {enrolment} of {user} on {provider}: {failure}")]
    RevokeEnrolment { provider: String, user: String, enrolment: String, failure: Failure },
    #[error("invite {user} to enrol {kind} on {provider}: {failure}")]
    Invite { provider: String, user: String, kind: String, failure: Failure },
    #[error("configure {provider}: {message}")]
    Configure { provider: String, message: String },
}

impl ProviderError {
    /// The error of revoking `enrolment` of `user` on `provider`, for `map_err`.
    pub fn revoking<'a>(
        provider: &'a str,
        user: &'a str,
        enrolment: &'a str,
    ) -> impl Fn(Failure) -> ProviderError + 'a {
        move |failure| ProviderError::RevokeEnrolment {
            provider: provider.to_string(),
            user: user.to_string(),
            enrolment: enrolment.to_string(),
            failure,
        }
    }

    /// The error of inviting `user` to enrol `kind` on `provider`, for `map_err`.
    pub fn inviting<'a>(provider: &'a str, user: &'a str, kind: &'a str) -> impl Fn(Failure) -> ProviderError + 'a {
        move |failure| ProviderError::Invite {
            provider: provider.to_string(),
            user: user.to_string(),
            kind: kind.to_string(),
            failure,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ProviderError::Authenticate { failure, .. }
            | ProviderError::Check { failure, .. }
            | ProviderError::ListEnrolments { failure, .. }
            | ProviderError::ReadEvents { failure, .. }
            | ProviderError::RevokeEnrolment { failure, .. }
            | ProviderError::Invite { failure, .. } => Some(failure),
            ProviderError::Configure { .. } => None,
        }
    }

    pub fn category(&self) -> &'static str {
        self.failure().map(Failure::category).unwrap_or("configuration")
    }
}

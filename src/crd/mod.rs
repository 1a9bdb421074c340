//! The four custom resource kinds of `keyward.dev/v1alpha1` (docs/contract.md, "Resources").
//!
//! Types and schema documentation only: no I/O lives here, so these modules could become a
//! separate `-api` crate. `///` comments on fields are user documentation (`kubectl explain`).
// kube's `printcolumn(name = …, type_ = …)` repeats keys across columns by design, which
// clippy reads as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod access_grant;
pub mod conditions;
pub mod employee;
pub mod factor;
pub mod mfa_provider;
pub mod notification;
pub mod provider_key;
pub mod revocation_approval;

pub use access_grant::{AccessGrant, AccessGrantSpec, AccessGrantStatus, EnrolmentPolicy, Subjects};
pub use conditions::Condition;
pub use employee::{Employee, EmployeeSpec, EmployeeState, EmployeeStatus, Identity};
pub use factor::FactorKind;
pub use mfa_provider::{MfaProvider, MfaProviderSpec, MfaProviderStatus};
pub use provider_key::ProviderKey;
pub use revocation_approval::{RevocationApproval, RevocationApprovalSpec, RevocationApprovalStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every keyward kind.
pub const GROUP: &str = "keyward.dev";

/// The CEL rule of every provider URL field: https, or plain http to loopback only
/// (`http://localhost.example` is not loopback), with nothing before the host (a password
/// where logs show it, or `http://127.0.0.1@elsewhere` passed off as loopback), no query or
/// fragment (they would ride along on every call), and no white space or control character.
/// `providers::rest::base_url` refuses the same; here `kubectl apply` refuses it already.
/// (Backslashes are doubled: the regular expressions sit in CEL string literals.)
pub const URL_RULE: &str = r"(self.startsWith('https://') || self.matches('^http://(127\\.[0-9]+\\.[0-9]+\\.[0-9]+|localhost|\\[::1\\])(:[0-9]+)?(/.*)?$')) && !self.matches('^[^/]*//[^/?#]*@') && !self.matches('[?#\\s\\p{Cc}]')";

/// The CEL rule of a provider user name (an identity, an e-mail used as one, a protected
/// user) held by the CEL variable `var`: names that cannot be meant as written — a control
/// character (URL parsers drop tabs and line breaks: `bo<TAB>b` addresses `bob`), a
/// bidirectional mark or zero-width character (`alice` shown, another name meant), white
/// space at either end, or only dots (resolved away in a URL path). `keyward validate` names
/// the character (`manifests::validate`).
pub fn user_name_rule(var: &str) -> String {
    format!(
        r"!{var}.matches('[\\p{{Cc}}\\x{{200B}}-\\x{{200F}}\\x{{202A}}-\\x{{202E}}\\x{{2060}}-\\x{{2069}}\\x{{FEFF}}\\x{{061C}}]') && !{var}.matches('^[\\s\\p{{Z}}]|[\\s\\p{{Z}}]$') && {var} != '.' && {var} != '..'"
    )
}

/// What [`user_name_rule`] says when it refuses.
pub const USER_NAME_MESSAGE: &str = "a user name must not hold control characters or invisible formatting characters (bidirectional marks, zero-width characters), begin or end with white space, or be `.` or `..`";
/// Annotation carrying the Git revision the object was applied from; copied into audit records.
pub const SOURCE_REVISION_ANNOTATION: &str = "keyward.dev/source-revision";
/// Annotation on an MfaProvider that approves exactly one blocked plan, named by its digest.
/// Honoured by `keyward apply` and, with `--approval-annotation`, by the operator; in a cluster
/// only a [`RevocationApproval`] lets RBAC tell approvers from editors.
pub const APPROVE_REVOCATIONS_ANNOTATION: &str = "keyward.dev/approve-revocations";
/// Label of the Secrets that hold provider credentials. The operator watches only Secrets that
/// carry it (any value; `"true"` by convention): it never caches the rest of a namespace's
/// Secrets (TLS keys, database passwords) it has no use for.
pub const CREDENTIALS_LABEL: &str = "keyward.dev/credentials";
/// Annotation on a RevocationApproval naming the person who approved, as they state it; the
/// audit records carry it as the approval's `manager` (else the object's first field manager).
pub const APPROVED_BY_ANNOTATION: &str = "keyward.dev/approved-by";

/// The CustomResourceDefinitions, in the order `keyward crds` prints them.
pub fn definitions() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("mfaproviders", MfaProvider::crd()),
        ("employees", Employee::crd()),
        ("accessgrants", AccessGrant::crd()),
        ("revocationapprovals", RevocationApproval::crd()),
    ]
}

/// One CRD as the YAML that `keyward crds` prints and `crds/<plural>.yaml` holds.
pub fn definition_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

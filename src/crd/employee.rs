//! `Employee`: a person, the roles they hold and whether they are still with the company.

use super::conditions::Condition;
use super::factor::FactorKind;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A person whose second factors keyward keeps in line with their roles and state.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keyward.dev",
    version = "v1alpha1",
    kind = "Employee",
    doc = "A person whose second factors keyward keeps in line with their roles and state.",
    plural = "employees",
    shortname = "emp",
    namespaced,
    status = "EmployeeStatus",
    category = "keyward",
    printcolumn(name = "Email", type_ = "string", json_path = ".spec.email"),
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state"),
    printcolumn(name = "Roles", type_ = "string", json_path = ".spec.roles"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Would Revoke",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"WouldRevoke\")].status"
    ),
    printcolumn(name = "Last Revocation", type_ = "date", json_path = ".status.lastRevocationTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.activeFrom) || !has(self.activeUntil) || self.activeFrom < self.activeUntil").message("activeFrom must be before activeUntil").field_path(".activeUntil"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmployeeSpec {
    /// Work e-mail address; the default user name on providers (`userMapping: email`).
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), length(max = 254))]
    #[x_kube(validation = Rule::new(crate::crd::user_name_rule("self")).message(crate::crd::USER_NAME_MESSAGE))]
    pub email: String,
    /// Name shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Roles held; AccessGrants select Employees by role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `Active` (default), `Suspended` or `Offboarded`. Only Active Employees inside their
    /// active window are entitled to any factor.
    #[serde(default)]
    pub state: EmployeeState,
    /// Start of the active window (RFC 3339). Before it, the Employee holds no entitlement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<DateTime<Utc>>,
    /// End of the active window (RFC 3339). From then on, every enrolment is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<DateTime<Utc>>,
    /// Per-provider user names that override the provider's `userMapping`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // The bounds keep the uniqueness rule's estimated CEL cost (quadratic in the list) within
    // the API server's budget; without them kube-apiserver refuses the whole CRD.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.provider == a.provider))").message("at most one identity per provider"))]
    pub identities: Vec<Identity>,
}

/// Employment state.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmployeeState {
    #[default]
    Active,
    Suspended,
    Offboarded,
}

/// The user name of this Employee on one MfaProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    /// Name of an MfaProvider in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub provider: String,
    /// The user name on that provider.
    #[schemars(length(min = 1, max = 320))]
    #[x_kube(validation = Rule::new(crate::crd::user_name_rule("self")).message(crate::crd::USER_NAME_MESSAGE))]
    pub username: String,
}

/// What keyward found and decided for this Employee.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmployeeStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus; reasons `Reconciled`, `Observing`,
    /// `Sweeping`, `RevocationPending`, `RevokingBeforeDeletion`, `RevocationBudgetExceeded`,
    /// `IdentityConflict`), and `IdentityConflict`, `RevocationBlocked`, `EnrolmentPending`,
    /// `WouldRevoke` (True in Observe mode while a provider would revoke an enrolment).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// One entry per MfaProvider that manages this Employee.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderEnrolments>,
    /// When keyward last revoked one of this Employee's enrolments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_revocation_time: Option<DateTime<Utc>>,
}

/// The Employee's enrolments on one provider and keyward's verdict on each.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEnrolments {
    /// MfaProvider name.
    pub provider: String,
    /// The user name on that provider.
    pub username: String,
    /// Factor kinds the Employee is entitled to there.
    #[serde(default)]
    pub entitled_factors: Vec<FactorKind>,
    /// Enrolments seen and their verdict.
    #[serde(default)]
    pub enrolments: Vec<EnrolmentVerdict>,
}

/// One enrolment and what keyward decided about it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnrolmentVerdict {
    /// Provider-side id (privacyIDEA serial, factor id, …), or empty for a pending enrolment.
    #[serde(default)]
    pub id: String,
    /// Normalized factor kind.
    pub kind: FactorKind,
    /// Further kinds the same enrolment provides (a phone that does push and SMS): it is kept
    /// when any of its kinds is entitled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_kinds: Vec<FactorKind>,
    /// `Kept`, `Revoked`, `RevocationPending`, `RevocationBlocked` or `EnrolmentPending`.
    pub verdict: String,
    /// Why, for revocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

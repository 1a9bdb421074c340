//! `AccessGrant`: which factor kinds a set of people may hold on one provider.

use super::conditions::Condition;
use super::factor::FactorKind;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Entitles the selected Employees to hold the listed factor kinds on one MfaProvider.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keyward.dev",
    version = "v1alpha1",
    kind = "AccessGrant",
    doc = "Entitles the selected Employees to hold the listed factor kinds on one MfaProvider.",
    plural = "accessgrants",
    shortname = "ag",
    namespaced,
    status = "AccessGrantStatus",
    category = "keyward",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Factors", type_ = "string", json_path = ".spec.factors"),
    printcolumn(name = "Enrolment", type_ = "string", json_path = ".spec.enrolment"),
    printcolumn(name = "Matched", type_ = "integer", json_path = ".status.matchedEmployees"),
    printcolumn(name = "Valid Until", type_ = "string", json_path = ".spec.validUntil"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.validFrom) || !has(self.validUntil) || self.validFrom < self.validUntil").message("validFrom must be before validUntil").field_path(".validUntil"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessGrantSpec {
    /// Name of an MfaProvider in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub provider: String,
    /// Who the grant applies to: Employees holding any of `roles`, and those named in `employees`.
    pub subjects: Subjects,
    /// Factor kinds the subjects may hold: `totp`, `hotp`, `webauthn`, `push`, `sms`, `email`,
    /// or another provider type by its lower-case name.
    #[schemars(length(min = 1))]
    pub factors: Vec<FactorKind>,
    /// `Allowed` (default): the subjects may enrol these kinds. `Required`: a subject without
    /// such an enrolment is invited where the provider can, else marked `EnrolmentPending`.
    #[serde(default)]
    pub enrolment: EnrolmentPolicy,
    /// Start of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity (RFC 3339); after it, enrolments held only through this grant are revoked
    /// as `GrantExpired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// The Employees a grant selects.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("size(self.roles) + size(self.employees) > 0").message("subjects must name at least one role or employee"))]
pub struct Subjects {
    /// Employees holding any of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Employees named here (metadata.name in the same namespace).
    #[serde(default)]
    pub employees: Vec<String>,
}

/// Whether holding the factors is optional or expected.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnrolmentPolicy {
    #[default]
    Allowed,
    Required,
}

/// What keyward found for this grant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrantStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus; reasons `Valid`, `NotYetValid`,
    /// `Expired`, `ProviderNotFound`), and
    /// `FactorKindsReported`: False when the grant names factor kinds its provider never
    /// reports (they entitle nobody).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// How many Employees the grant selects.
    #[serde(default)]
    pub matched_employees: u32,
}

//! `MfaProvider`: one MFA system and how keyward manages it.

use super::conditions::Condition;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One MFA system (privacyIDEA, …) whose enrolments keyward drives toward the declared state.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keyward.dev",
    version = "v1alpha1",
    kind = "MfaProvider",
    doc = "One MFA system (privacyIDEA, …) whose enrolments keyward drives toward the declared state.",
    plural = "mfaproviders",
    shortname = "mfap",
    namespaced,
    status = "MfaProviderStatus",
    category = "keyward",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.policy.mode"),
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.scope"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.managedUsers"),
    printcolumn(name = "Enrolments", type_ = "integer", json_path = ".status.managedEnrolments"),
    printcolumn(name = "Blocked", type_ = "integer", json_path = ".status.blockedRevocations"),
    printcolumn(name = "Last Sweep", type_ = "date", json_path = ".status.lastSweepTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("[has(self.privacyidea)].filter(x, x).size() == 1").message("exactly one provider block must be set (privacyidea)"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaProviderSpec {
    /// A privacyIDEA server: its URL, the realm keyward manages and admin credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacyidea: Option<PrivacyIdeaSpec>,

    /// Which Employee field names the user on this provider: `email` (default) or `name`
    /// (the Employee's metadata.name). An Employee may override it with `spec.identities`.
    #[serde(default)]
    pub user_mapping: UserMapping,

    /// `Declared` (default): only users mapped from Employees are managed. `All`: every user
    /// the provider lists in its realm is managed, and the enrolments of users with no
    /// Employee are revoked as `UndeclaredUser`.
    #[serde(default)]
    pub scope: Scope,

    /// Provider user names that keyward never touches (break-glass accounts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_users: Vec<String>,

    /// How keyward acts on this provider.
    #[serde(default)]
    pub policy: Policy,
}

/// privacyIDEA connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivacyIdeaSpec {
    /// Base URL of the privacyIDEA server, e.g. `https://pi.acme.example`. Plain `http` is
    /// accepted only for loopback addresses (tests).
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://localhost') || self.startsWith('http://[::1]')").message("url must be https (http only for loopback)"))]
    pub url: String,
    /// The privacyIDEA realm whose users and tokens keyward manages.
    #[schemars(length(min = 1))]
    pub realm: String,
    /// Admin credentials: a Secret in the same namespace with keys `username` and `password`.
    pub credentials: Credentials,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Credentials held in a Kubernetes Secret (never inline).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// The Secret, in the MfaProvider's namespace.
    pub secret_ref: SecretRef,
}

/// A reference to a Secret and the keys keyward reads from it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the user name (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_key: Option<String>,
    /// Key holding the password (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_key: Option<String>,
}

impl SecretRef {
    pub fn username_key(&self) -> &str {
        self.username_key.as_deref().unwrap_or("username")
    }
    pub fn password_key(&self) -> &str {
        self.password_key.as_deref().unwrap_or("password")
    }
}

/// Which Employee field is the user name on the provider.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum UserMapping {
    /// `spec.email`.
    #[default]
    Email,
    /// `metadata.name`.
    Name,
}

/// Which provider users are managed.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Only users mapped from Employee objects.
    #[default]
    Declared,
    /// Every user the provider lists; users without an Employee are undeclared.
    All,
}

/// What keyward may do on the provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// `Enforce` (default) changes the provider; `Observe` plans and reports only.
    #[serde(default)]
    pub mode: Mode,
    /// `Delete` (default) removes an enrolment; `Disable` deactivates it where supported.
    #[serde(default)]
    pub revocation: RevocationMode,
    /// Limits on revocations per sweep; a plan over budget waits for approval.
    #[serde(default)]
    pub budget: Budget,
    /// Period of the drift sweep, e.g. `10m` (default), `30s`, `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub resync_interval: Option<String>,
}

/// `Enforce` or `Observe`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Enforce,
    Observe,
}

/// How a revocation is carried out.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevocationMode {
    #[default]
    Delete,
    Disable,
}

/// The most revocations one sweep may make on this provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// Maximum revocations per sweep (default 25). `0` means every revocation needs approval.
    #[serde(default = "default_max_revocations")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_revocations: u32,
    /// Optional maximum share, in percent, of the managed enrolments revoked in one sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_percent: Option<u32>,
}

fn default_max_revocations() -> u32 {
    25
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_revocations: default_max_revocations(), max_percent: None }
    }
}

impl Policy {
    /// The drift sweep period; the schema guarantees the format, the fallback covers objects
    /// read from files that `validate` has not checked.
    pub fn resync_interval(&self) -> std::time::Duration {
        self.resync_interval
            .as_deref()
            .and_then(|s| humantime::parse_duration(s).ok())
            .unwrap_or(std::time::Duration::from_secs(600))
    }
}

/// Observed state of the provider, written by keyward.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MfaProviderStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `RevocationBudgetExceeded`, `IdentityConflict`, `ProviderUnavailable`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Users managed on the provider in the last sweep.
    #[serde(default)]
    pub managed_users: u32,
    /// Enrolments of managed users seen in the last sweep.
    #[serde(default)]
    pub managed_enrolments: u32,
    /// Revocations planned but not yet done (Observe mode or failures).
    #[serde(default)]
    pub pending_revocations: u32,
    /// Revocations held back by the budget, waiting for approval.
    #[serde(default)]
    pub blocked_revocations: u32,
    /// When the last sweep finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sweep_time: Option<DateTime<Utc>>,
    /// Digest of the blocked plan; approve it with the annotation
    /// `keyward.dev/approve-revocations: <digest>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_plan_digest: Option<String>,
}

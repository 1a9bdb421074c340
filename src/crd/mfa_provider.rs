//! `MfaProvider`: one MFA system and how keyward manages it.

use super::conditions::Condition;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

// The provider blocks' specs live in their providers' folders; their paths here stay.
pub use super::notification::{NotificationEvent, NotificationTarget, SecretKeyRef, SlackTarget, WebhookTarget};
use crate::providers::ProviderSpec;
pub use crate::providers::duo::spec::DuoSpec;
pub use crate::providers::entra::spec::{EntraAuthMethod, EntraCredentials, EntraIdSpec};
pub use crate::providers::google::spec::GoogleWorkspaceSpec;
pub use crate::providers::keycloak::spec::{KeycloakAuthMethod, KeycloakCredentials, KeycloakSpec};
pub use crate::providers::okta::spec::{OktaAuthMethod, OktaCredentials, OktaSpec};
pub use crate::providers::privacyidea::spec::PrivacyIdeaSpec;
use kube::core::Rule;

/// One MFA system (privacyIDEA, Okta, Duo, Entra ID, Google Workspace, Keycloak) whose enrolments
/// keyward drives toward the declared state.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keyward.dev",
    version = "v1alpha1",
    kind = "MfaProvider",
    doc = "One MFA system (privacyIDEA, Okta, Duo, Entra ID, Google Workspace, Keycloak) whose enrolments keyward drives toward the declared state.",
    plural = "mfaproviders",
    shortname = "mfap",
    namespaced,
    status = "MfaProviderStatus",
    category = "keyward",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.policy.mode"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend", priority = 1),
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.scope"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.managedUsers"),
    printcolumn(name = "Enrolments", type_ = "integer", json_path = ".status.managedEnrolments"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pendingRevocations"),
    printcolumn(name = "Blocked", type_ = "integer", json_path = ".status.blockedRevocations"),
    printcolumn(name = "Last Sweep", type_ = "date", json_path = ".status.lastSweepTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = exactly_one_block())]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaProviderSpec {
    /// A privacyIDEA server: its URL, the realm keyward manages and admin credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacyidea: Option<PrivacyIdeaSpec>,

    // The SaaS blocks are boxed: an MfaProvider should not carry five blocks' worth of
    // space for the one it uses.
    /// An Okta org: its URL, optionally the group keyward manages, and an API token or an
    /// OAuth 2.0 service app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub okta: Option<Box<OktaSpec>>,

    /// A Duo account's Admin API: its API hostname, optionally the group keyward manages, and
    /// the Admin API application's integration and secret keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duo: Option<Box<DuoSpec>>,

    /// A Microsoft Entra ID tenant, through Microsoft Graph: tenant, optionally the group keyward
    /// manages, and an app registration with a client secret or a certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_id: Option<Box<EntraIdSpec>>,

    /// A Google Workspace account, through the Admin SDK Directory API: a service account with
    /// domain-wide delegation, the admin it acts as, optionally the organizational unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_workspace: Option<Box<GoogleWorkspaceSpec>>,

    /// A Keycloak realm: server URL, realm, and a service-account client or an admin user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<Box<KeycloakSpec>>,

    /// PEM certificates of the certificate authorities to trust for the provider's URLs,
    /// besides the public roots: a self-hosted privacyIDEA or Keycloak behind an internal CA.
    /// CA certificates are public: they belong in Git, not in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN CERTIFICATE-----')").message("caBundle must hold PEM certificates (-----BEGIN CERTIFICATE-----)"))]
    pub ca_bundle: Option<String>,

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
    #[schemars(length(max = 256), inner(length(min = 1, max = 320)))]
    #[x_kube(validation = Rule::new(format!("self.all(u, {})", crate::crd::user_name_rule("u"))).message(crate::crd::USER_NAME_MESSAGE))]
    pub protected_users: Vec<String>,

    /// How keyward acts on this provider.
    #[serde(default)]
    pub policy: Policy,

    /// `true` stops all action on this provider: no sweep, no request to it, no revocation,
    /// and status Ready=False with reason `Suspended`, until it is `false` again. Deleting an
    /// Employee waits meanwhile: its enrolments here are revoked once the provider is resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// Where keyward tells people what it did on this provider: revocations, failed
    /// revocations, plans held for approval and SLA breaches, sent to Slack-compatible or
    /// CloudEvents webhooks whose URLs come from Secrets. Every delivery is an audit record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(t, self.exists_one(u, u.name == t.name))").message("notification target names must be unique"))]
    pub notifications: Vec<NotificationTarget>,
}

/// The provider blocks: each spec field, its variant of [`ProviderBlock`] and its spec type,
/// in one list. A block added here without its field in [`MfaProviderSpec`], or a field added
/// there without its line here, does not compile; neither does a spec type without its
/// [`ProviderSpec`] implementation (`providers/<name>/spec.rs`).
macro_rules! provider_blocks {
    ($($field:ident as $name:literal => $variant:ident($spec:ty)),+ $(,)?) => {
        /// The one provider block of a spec.
        #[derive(Clone, Copy, Debug)]
        pub enum ProviderBlock<'a> {
            $($variant(&'a $spec)),+
        }

        /// The block names as the spec spells them, in schema order.
        pub const BLOCK_NAMES: &[&str] = &[$($name),+];

        impl MfaProviderSpec {
            /// The provider block, or how many are set when that is not exactly one (the
            /// schema's CEL rule rejects such objects; files read by `plan` may still hold them).
            pub fn block(&self) -> Result<ProviderBlock<'_>, usize> {
                let MfaProviderSpec {
                    $($field,)+
                    ca_bundle: _,
                    user_mapping: _,
                    scope: _,
                    protected_users: _,
                    policy: _,
                    suspend: _,
                    notifications: _,
                } = self;
                let blocks: Vec<ProviderBlock<'_>> =
                    [$($field.as_ref().map(|spec| ProviderBlock::$variant(spec))),+].into_iter().flatten().collect();
                match blocks.as_slice() {
                    [one] => Ok(*one),
                    other => Err(other.len()),
                }
            }
        }

        impl<'a> ProviderBlock<'a> {
            /// What keyward needs of the block besides its API.
            pub fn spec(&self) -> &'a dyn ProviderSpec {
                match *self {
                    $(ProviderBlock::$variant(spec) => spec),+
                }
            }

            /// The block's name in the spec (`entraId`).
            pub fn name(&self) -> &'static str {
                match self {
                    $(ProviderBlock::$variant(_) => $name),+
                }
            }
        }
    };
}

provider_blocks! {
    privacyidea as "privacyidea" => PrivacyIdea(PrivacyIdeaSpec),
    okta as "okta" => Okta(OktaSpec),
    duo as "duo" => Duo(DuoSpec),
    entra_id as "entraId" => EntraId(EntraIdSpec),
    google_workspace as "googleWorkspace" => GoogleWorkspace(GoogleWorkspaceSpec),
    keycloak as "keycloak" => Keycloak(KeycloakSpec),
}

/// The schema's rule that exactly one block is set, from [`BLOCK_NAMES`].
pub fn exactly_one_block() -> Rule {
    let has: Vec<String> = BLOCK_NAMES.iter().map(|name| format!("has(self.{name})")).collect();
    Rule::new(format!("[{}].filter(x, x).size() == 1", has.join(", ")))
        .message(format!("exactly one provider block must be set ({})", BLOCK_NAMES.join(", ")).as_str())
}

impl ProviderBlock<'_> {
    /// The Secret holding this provider's credentials.
    pub fn secret_name(&self) -> &str {
        self.spec().secret()
    }
}

/// Credentials in a Secret whose keys are fixed by the provider block.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretCredentials {
    /// The Secret, in the MfaProvider's namespace.
    pub secret_ref: SecretName,
}

/// A Secret in the MfaProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretName {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
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
    /// Limits on revocations within a sliding window; a plan over what the window still
    /// allows waits for approval.
    #[serde(default)]
    pub budget: Budget,
    /// Period of the drift sweep, e.g. `10m` (default), `30s`, `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub resync_interval: Option<String>,
    /// The most requests per second keyward sends to this provider, so that it never uses up
    /// the tenant's API quota (default: a rate safe for the provider, see docs/providers.md).
    /// Rate-limit answers from the provider slow keyward down further.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_requests_per_second: Option<u32>,
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

/// The most revocations keyward may make on this provider within any sliding window. A bad
/// commit that a GitOps tool applies object by object arrives as many small changes; the
/// window counts them together, from revocations actually made (kept in status, so a restart
/// or a new leader counts them too).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// Maximum revocations within one window (default 25). `0` means every revocation needs
    /// approval.
    #[serde(default = "default_max_revocations")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_revocations: u32,
    /// Optional maximum share, in percent, of the managed enrolments revoked within one window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_percent: Option<u32>,
    /// Length of the sliding window, e.g. `1h` (default), `30m`, `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub window: Option<String>,
}

fn default_max_revocations() -> u32 {
    25
}

/// A Go-style duration field (`10m`, `1h30m`). The schema guarantees the format; the default
/// covers objects read from files that `validate` has not checked.
fn interval(field: Option<&str>, default: std::time::Duration) -> std::time::Duration {
    field.and_then(|s| humantime::parse_duration(s).ok()).unwrap_or(default)
}

impl Budget {
    /// The window's length (default 1h).
    pub fn window(&self) -> std::time::Duration {
        interval(self.window.as_deref(), std::time::Duration::from_secs(3600))
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_revocations: default_max_revocations(), max_percent: None, window: None }
    }
}

impl Policy {
    /// The drift sweep period (default 10m).
    pub fn resync_interval(&self) -> std::time::Duration {
        interval(self.resync_interval.as_deref(), std::time::Duration::from_secs(600))
    }
}

/// Observed state of the provider, written by keyward.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MfaProviderStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus; reasons `Reachable`, `Observing`,
    /// `RevocationFailed`, `ProviderUnavailable`, `CredentialsUnavailable`,
    /// `RevocationBudgetExceeded`, `IdentityConflict`, `Suspended`), and `RevocationBudgetExceeded`,
    /// `IdentityConflict`.
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
    /// Digest of the blocked plan; approve it with a RevocationApproval whose `spec.digest` is
    /// this digest (docs/rollout.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_plan_digest: Option<String>,
    /// Digest of the last sweep's revocations, carried out or not: it changes when the plan does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// Provider users with no Employee (`scope: All`) whose enrolments the last plan revokes.
    #[serde(default)]
    pub undeclared_users: u32,
    /// The first revocations of the last plan that were not carried out: those Observe mode
    /// would make, or those waiting for approval (at most 20, sorted by user; the counts above
    /// are complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned_revocations: Vec<PlannedRevocation>,
    /// Digest of the last approved plan that was carried out. An approval lets its plan through
    /// once: no approval naming this digest lets anything through any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_approval: Option<String>,
    /// Revocations made within the current budget window, by sweep: what the budget counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_revocations: Vec<RevocationTally>,
    /// The settings that can stop revocations (suspend, protectedUsers, policy.mode,
    /// policy.budget) as keyward last recorded them, JSON: a change to any of them is an audit
    /// record and a notification before keyward acts on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarded_settings: Option<String>,
}

/// A revocation of the plan, not carried out (Observe mode, or waiting for approval).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRevocation {
    /// The provider user.
    pub user: String,
    /// Provider-side enrolment id.
    pub enrolment: String,
    /// Normalized factor kind.
    pub kind: String,
    /// Why it would be revoked (`UndeclaredUser` for a user with no Employee).
    pub reason: String,
    /// The Employee the user maps to; absent for an undeclared user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee: Option<String>,
}

/// Revocations made by one sweep.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevocationTally {
    /// When the sweep made them.
    pub time: DateTime<Utc>,
    pub count: u32,
}

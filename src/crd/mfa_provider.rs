//! `MfaProvider`: one MFA system and how keyward manages it.

use super::conditions::Condition;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

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
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.scope"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.managedUsers"),
    printcolumn(name = "Enrolments", type_ = "integer", json_path = ".status.managedEnrolments"),
    printcolumn(name = "Blocked", type_ = "integer", json_path = ".status.blockedRevocations"),
    printcolumn(name = "Last Sweep", type_ = "date", json_path = ".status.lastSweepTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("[has(self.privacyidea), has(self.okta), has(self.duo), has(self.entraId), has(self.googleWorkspace), has(self.keycloak)].filter(x, x).size() == 1").message("exactly one provider block must be set (privacyidea, okta, duo, entraId, googleWorkspace, keycloak)"))]
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
    pub protected_users: Vec<String>,

    /// How keyward acts on this provider.
    #[serde(default)]
    pub policy: Policy,
}

/// The one provider block of a spec. Matching on it is exhaustive: a new block does not
/// compile until every `match` (client construction, credential Secrets) handles it.
#[derive(Clone, Copy, Debug)]
pub enum ProviderBlock<'a> {
    PrivacyIdea(&'a PrivacyIdeaSpec),
    Okta(&'a OktaSpec),
    Duo(&'a DuoSpec),
    EntraId(&'a EntraIdSpec),
    GoogleWorkspace(&'a GoogleWorkspaceSpec),
    Keycloak(&'a KeycloakSpec),
}

impl MfaProviderSpec {
    /// The provider block, or how many are set when that is not exactly one (the schema's
    /// CEL rule rejects such objects; files read by `plan` may still hold them).
    pub fn block(&self) -> Result<ProviderBlock<'_>, usize> {
        let MfaProviderSpec {
            privacyidea,
            okta,
            duo,
            entra_id,
            google_workspace,
            keycloak,
            user_mapping: _,
            scope: _,
            protected_users: _,
            policy: _,
        } = self;
        let blocks: Vec<ProviderBlock<'_>> = [
            privacyidea.as_ref().map(ProviderBlock::PrivacyIdea),
            okta.as_deref().map(ProviderBlock::Okta),
            duo.as_deref().map(ProviderBlock::Duo),
            entra_id.as_deref().map(ProviderBlock::EntraId),
            google_workspace.as_deref().map(ProviderBlock::GoogleWorkspace),
            keycloak.as_deref().map(ProviderBlock::Keycloak),
        ]
        .into_iter()
        .flatten()
        .collect();
        match blocks.as_slice() {
            [one] => Ok(*one),
            other => Err(other.len()),
        }
    }
}

impl ProviderBlock<'_> {
    /// The Secret holding this provider's credentials.
    pub fn secret_name(&self) -> &str {
        match self {
            ProviderBlock::PrivacyIdea(s) => &s.credentials.secret_ref.name,
            ProviderBlock::Okta(s) => &s.credentials.secret_ref.name,
            ProviderBlock::Duo(s) => &s.credentials.secret_ref.name,
            ProviderBlock::EntraId(s) => &s.credentials.secret_ref.name,
            ProviderBlock::GoogleWorkspace(s) => &s.credentials.secret_ref.name,
            ProviderBlock::Keycloak(s) => &s.credentials.secret_ref.name,
        }
    }
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

/// Okta connection (Factors API, `/api/v1`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OktaSpec {
    /// The Okta org URL, e.g. `https://acme.okta.com`. Plain `http` only for loopback (tests).
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://localhost') || self.startsWith('http://[::1]')").message("url must be https (http only for loopback)"))]
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

/// Duo Admin API connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuoSpec {
    /// The account's API hostname as a URL, e.g. `https://api-1a2b3c4d.duosecurity.com`.
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://localhost') || self.startsWith('http://[::1]')").message("url must be https (http only for loopback)"))]
    pub url: String,
    /// Duo group name: under `scope: All`, only its members are managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The Admin API application's keys: Secret keys `integrationKey` and `secretKey`. The
    /// application needs "Grant read resource" and "Grant write resource".
    pub credentials: SecretCredentials,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Microsoft Entra ID connection (Microsoft Graph authentication methods API).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntraIdSpec {
    /// The directory (tenant) id or a verified domain of the tenant.
    #[schemars(length(min = 1))]
    pub tenant_id: String,
    /// Group object id: under `scope: All`, only its members are managed, nested groups' members
    /// included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The app registration's credentials; it needs the application permission
    /// `UserAuthenticationMethod.ReadWrite.All` (and `User.Read.All`), admin-consented.
    pub credentials: EntraCredentials,
    /// Token authority (default `https://login.microsoftonline.com`; national clouds differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://localhost') || self.startsWith('http://[::1]')").message("authorityUrl must be https (http only for loopback)"))]
    pub authority_url: Option<String>,
    /// Microsoft Graph endpoint (default `https://graph.microsoft.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://localhost') || self.startsWith('http://[::1]')").message("graphUrl must be https (http only for loopback)"))]
    pub graph_url: Option<String>,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Entra ID app credentials, from a Secret in the MfaProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntraCredentials {
    /// `ClientSecret` (default): Secret keys `clientId` and `clientSecret`. `Certificate`:
    /// Secret keys `clientId`, `certificate` (PEM) and `privateKey` (PEM, RSA).
    #[serde(default)]
    pub method: EntraAuthMethod,
    /// The Secret holding the keys.
    pub secret_ref: SecretName,
}

/// How keyward authenticates to Entra ID.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntraAuthMethod {
    #[default]
    ClientSecret,
    Certificate,
}

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
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://localhost') || self.startsWith('http://[::1]')").message("url must be https (http only for loopback)"))]
    pub url: Option<String>,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Keycloak connection (Admin REST API).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeycloakSpec {
    /// Base URL of the server, e.g. `https://sso.acme.example` (add `/auth` for Keycloak
    /// before 17).
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://localhost') || self.startsWith('http://[::1]')").message("url must be https (http only for loopback)"))]
    pub url: String,
    /// The realm whose users and credentials keyward manages.
    #[schemars(length(min = 1))]
    pub realm: String,
    /// The realm the credentials authenticate against (default `master`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_realm: Option<String>,
    /// How keyward authenticates to Keycloak.
    pub credentials: KeycloakCredentials,
    /// Per-request timeout, e.g. `10s` (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub timeout: Option<String>,
}

/// Keycloak credentials, from a Secret in the MfaProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeycloakCredentials {
    /// `ClientCredentials` (default): a confidential client whose service account holds the
    /// `realm-management` roles `view-users` and `manage-users`; Secret keys `clientId` and
    /// `clientSecret`. `Password`: an admin user; Secret keys `username`, `password` and,
    /// optionally, `clientId` (default `admin-cli`).
    #[serde(default)]
    pub method: KeycloakAuthMethod,
    /// The Secret holding the keys.
    pub secret_ref: SecretName,
}

/// How keyward authenticates to Keycloak.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeycloakAuthMethod {
    #[default]
    ClientCredentials,
    Password,
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
    /// `RevocationBudgetExceeded`, `IdentityConflict`), and `RevocationBudgetExceeded`,
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
    /// Digest of the blocked plan; approve it with the annotation
    /// `keyward.dev/approve-revocations: <digest>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_plan_digest: Option<String>,
    /// Digest of the last approved plan that was carried out. An approval lets its plan through
    /// once: the annotation naming this digest lets nothing through any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_approval: Option<String>,
    /// Revocations made within the current budget window, by sweep: what the budget counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_revocations: Vec<RevocationTally>,
}

/// Revocations made by one sweep.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevocationTally {
    /// When the sweep made them.
    pub time: DateTime<Utc>,
    pub count: u32,
}

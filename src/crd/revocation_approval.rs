//! `RevocationApproval`: one person's approval of one held plan, kept apart from the
//! MfaProvider so that RBAC can let some people approve who may not edit, and the reverse.

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Approves exactly one held plan of one MfaProvider, once. The plan is named by its digest
/// (the MfaProvider's `status.blockedPlanDigest`); a plan that differs in any revocation has
/// another digest and is not approved.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keyward.dev",
    version = "v1alpha1",
    kind = "RevocationApproval",
    doc = "Approves exactly one held plan of one MfaProvider, once, named by the plan's digest.",
    plural = "revocationapprovals",
    shortname = "rapp",
    namespaced,
    status = "RevocationApprovalStatus",
    category = "keyward",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Digest", type_ = "string", json_path = ".spec.digest"),
    printcolumn(name = "Consumed", type_ = "boolean", json_path = ".status.consumed"),
    printcolumn(name = "Revocations", type_ = "integer", json_path = ".status.revocations"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("an approval cannot be changed; create a new one"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevocationApprovalSpec {
    /// Name of the MfaProvider, in the same namespace, whose held plan this approves.
    #[schemars(length(min = 1, max = 253))]
    pub provider: String,
    /// The held plan's digest, from the MfaProvider's `status.blockedPlanDigest` (16
    /// lower-case hex digits).
    #[schemars(regex(pattern = r"^[0-9a-f]{16}$"))]
    pub digest: String,
    /// Why the plan is right (a ticket, the reviewed change), for whoever reviews approvals.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
}

/// What became of the approval, written by keyward.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevocationApprovalStatus {
    /// The approved plan was carried out: the approval lets nothing through any more.
    #[serde(default)]
    pub consumed: bool,
    /// When the approved plan was carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<DateTime<Utc>>,
    /// Revocations the approved plan made.
    #[serde(default)]
    pub revocations: u32,
}

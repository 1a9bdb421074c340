//! The plan: what keyward will do on one provider, and why.

use crate::crd::FactorKind;
use crate::crd::mfa_provider::Mode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an enrolment is revoked (or an enrolment is expected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reason {
    EmployeeOffboarded,
    EmployeeSuspended,
    EmployeeOutsideActiveWindow,
    EmployeeDeleted,
    NotEntitled,
    GrantExpired,
    UndeclaredUser,
    /// Not a revocation: a Required grant expects an enrolment that does not exist yet.
    EnrolmentRequired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::EmployeeOffboarded => "EmployeeOffboarded",
            Reason::EmployeeSuspended => "EmployeeSuspended",
            Reason::EmployeeOutsideActiveWindow => "EmployeeOutsideActiveWindow",
            Reason::EmployeeDeleted => "EmployeeDeleted",
            Reason::NotEntitled => "NotEntitled",
            Reason::GrantExpired => "GrantExpired",
            Reason::UndeclaredUser => "UndeclaredUser",
            Reason::EnrolmentRequired => "EnrolmentRequired",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Remove or disable an enrolment.
    Revoke,
    /// Ask the provider to invite the user to enrol (provider-native).
    Invite,
    /// An enrolment is required but the provider has no invitation: the user must enrol.
    Pending,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Action {
    pub action: ActionKind,
    /// Provider user name.
    pub user: String,
    /// Provider-side enrolment id; empty for invite/pending.
    pub enrolment: String,
    pub kind: FactorKind,
    /// Further kinds the enrolment provides, all revoked with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<FactorKind>,
    pub reason: Reason,
    /// Employee (metadata.name) the user maps to, if any.
    pub employee: Option<String>,
    /// AccessGrants that bear on the decision (audit trail).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub grants: Vec<String>,
}

/// An approval of a held plan, for its audit records. The person behind it is in the API
/// server's own audit log (the request that created the RevocationApproval, or set the
/// annotation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub digest: String,
    /// Who approved, as far as the object tells: a RevocationApproval's
    /// `keyward.dev/approved-by` annotation, else the field manager that created it
    /// (`kubectl-create`, an Argo CD or Flux controller, …); for the annotation on the
    /// MfaProvider, the field manager that last set it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub manager: Option<String>,
    /// When the RevocationApproval was created, or the annotation last set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    /// The RevocationApproval's name (none for the annotation): the object an auditor looks
    /// up, with its status saying when it was consumed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<String>,
}

/// An approval the caller has on offer for a provider's held plan: a RevocationApproval not
/// yet consumed, or the approval annotation where the caller honours it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalOffer {
    pub approval: Approval,
    /// The RevocationApproval's name; None for the annotation.
    pub object: Option<String>,
}

/// Why the plan's revocations are held back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Hold {
    /// More revocations than `policy.budget` still allows within its window.
    RevocationBudgetExceeded {
        revocations: usize,
        limit: usize,
        /// Revocations already made within the window.
        used: usize,
        /// The window's length, e.g. `1h`.
        window: String,
    },
    /// No Employee or no AccessGrant is declared for a provider that has managed users: most
    /// likely a bad commit or an unsynced cache, never a reason to revoke everyone.
    EmptyDeclaredState { revocations: usize },
}

impl Hold {
    pub fn message(&self, digest: &str) -> String {
        match self {
            Hold::RevocationBudgetExceeded { revocations, limit, used, window } => format!(
                "{revocations} revocations exceed the budget of {limit} per {window} ({used} already made in the window); {}",
                approve_hint(digest)
            ),
            Hold::EmptyDeclaredState { revocations } => format!(
                "no Employees or AccessGrants are declared for this provider, which would revoke {revocations} enrolments; {}",
                approve_hint(digest)
            ),
        }
    }
}

/// How to approve the held plan `digest`: a RevocationApproval in a cluster, the annotation
/// for `keyward apply` (docs/rollout.md).
fn approve_hint(digest: &str) -> String {
    format!(
        "approve plan {digest} with a RevocationApproval whose spec.digest is {digest} (keyward apply: annotation keyward.dev/approve-revocations={digest})"
    )
}

/// One enrolment (or an expected one) of an Employee and what keyward decided about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentDecision {
    /// Provider-side id; empty for an expected enrolment.
    pub id: String,
    pub kind: FactorKind,
    /// Further kinds the same enrolment provides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<FactorKind>,
    pub verdict: Verdict,
    pub reason: Option<Reason>,
}

/// What keyward decided about one enrolment (or an expected one), for Employee status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Kept,
    /// Already disabled under `revocation: Disable`.
    Revoked,
    RevocationPlanned,
    /// `policy.mode: Observe`: would be revoked; nothing is changed.
    RevocationObserved,
    RevocationBlocked,
    /// Not entitled, but not revoked either: the provider would remove an entitled enrolment
    /// along with it (`cascades`).
    CascadeWithheld,
    /// Left alone: the provider user maps to more than one Employee.
    IdentityConflict,
    EnrolmentPending,
}

/// Per-Employee outcome on this provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployeeVerdict {
    pub employee: String,
    pub user: String,
    pub entitled: Vec<FactorKind>,
    pub enrolments: Vec<EnrolmentDecision>,
    /// Other Employees mapping to the same provider user.
    pub conflicts_with: Vec<String>,
}

/// Two or more Employees mapping to one provider user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityConflict {
    pub user: String,
    pub employees: Vec<String>,
}

/// The complete decision for one provider in one sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `<namespace>/<name>` of the MfaProvider.
    pub provider: String,
    pub mode: Mode,
    /// Sorted: revocations first, then by user, enrolment and kind.
    pub actions: Vec<Action>,
    /// Digest of the revocations; what an approval annotation must name.
    pub digest: String,
    /// Set when the revocations must wait for approval.
    pub hold: Option<Hold>,
    /// An approval named this plan's digest and let a held plan through.
    pub approved: bool,
    /// Who gave that approval and when, as far as the API server recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The RevocationApproval that gave it (None: the annotation), to be marked consumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_object: Option<String>,
    /// Set when nothing could be decided (provider unreadable, unusable policy): no actions.
    pub error: Option<String>,
    pub conflicts: Vec<IdentityConflict>,
    pub employees: Vec<EmployeeVerdict>,
    pub managed_users: usize,
    pub managed_enrolments: usize,
}

impl Plan {
    pub fn revocations(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.action == ActionKind::Revoke)
    }
    pub fn revocation_count(&self) -> usize {
        self.revocations().count()
    }
    /// Whether the plan holds changes keyward would make (revocations or invitations);
    /// `pending` enrolments wait for the user and are not changes.
    pub fn has_changes(&self) -> bool {
        self.actions.iter().any(|a| a.action != ActionKind::Pending)
    }
    pub fn blocked(&self) -> bool {
        self.hold.is_some()
    }
}

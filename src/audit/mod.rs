//! The audit trail: a write-ahead `intent` record before every provider call that revokes,
//! and an outcome record after it; one record per revocation held back (SPEC item 6).
//!
//! Lines are hash-chained ([`Chain`]): each carries a format version, a sequence number and the
//! SHA-256 of the previous line's exact bytes, so that an edited, removed or reordered line
//! breaks the chain at that point; `keyward audit verify` ([`verify`]) finds the first break.
//! A file the writer opens again continues its chain from the last line, and knows the intents
//! a crash left without an outcome ([`Resolution`]); the next sweep of their provider resolves
//! them by reading the provider again. The record schema is in `docs/audit.md`.
//!
//! Besides the file, records can be delivered to a collector as CloudEvents
//! ([`cloudevents`]) from a spool beside the file ([`spool`]).

mod chain;
pub mod cloudevents;
mod note;
mod resolution;
mod sink;
pub mod spool;

pub use chain::{Break, Chain, FORMAT_VERSION, Verified, sha256_hex, verify};
pub use note::{Checkpoint, Signer, Verifier};
pub use resolution::Resolution;
pub use sink::{AuditSink, JsonLinesFile, Memory, Stamp, Stdout, checkpoint_path, open_log, read_checkpoint};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happened to a planned revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Only on an `intent` record: the provider call is about to be made.
    Intended,
    Revoked,
    AlreadyGone,
    Blocked,
    Failed,
    /// Planned, then found no longer wanted immediately before the provider call.
    Withdrawn,
    /// The process stopped between the intent and the provider's answer, and the enrolment
    /// was still there when the provider was read again: planned again from scratch.
    Interrupted,
}

/// Whether a record announces a provider call or tells how one ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Written and synced to disk before the provider call.
    Intent,
    /// How it ended (records written before format 1's intents are outcomes too).
    #[default]
    Outcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: DateTime<Utc>,
    #[serde(default)]
    pub event: Event,
    /// `<namespace>/<name>` of the MfaProvider.
    pub provider: String,
    /// The provider's endpoint the call goes to (its tenant, realm or base URL).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint: Option<String>,
    pub user: String,
    pub enrolment: String,
    pub kind: String,
    pub reason: String,
    pub employee: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub employee_uid: Option<String>,
    pub grants: Vec<String>,
    /// `keyward.dev/source-revision` of the Employee (else of the MfaProvider), if set.
    pub source_revision: Option<String>,
    pub outcome: Outcome,
    /// The provider's error for `failed`, the hold for `blocked`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// The digest of the plan the revocation belongs to (what an approval names).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plan_digest: Option<String>,
    /// The approval that let this revocation's held plan through.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval: Option<crate::engine::plan::Approval>,
    /// When the enrolment stopped being entitled, as far as keyward can tell: the
    /// `activeUntil`, `validUntil` or deletion that passed, else when the operator observed the
    /// change that made it so.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trigger: Option<DateTime<Utc>>,
    /// From `trigger` to this record.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_seconds: Option<f64>,
    /// The operator replica (its Lease identity) that acted; absent for the CLI.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replica: Option<String>,
    /// The Kubernetes ServiceAccount the operator ran as, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_account: Option<String>,
}

impl AuditRecord {
    /// The enrolment a record is about: an outcome resolves the intent with the same key.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.provider, &self.user, &self.enrolment)
    }

    /// This record's outcome record: the same revocation, ended as `outcome` now.
    pub fn ended(&self, outcome: Outcome, detail: Option<String>) -> AuditRecord {
        let time = Utc::now();
        AuditRecord {
            time,
            event: Event::Outcome,
            outcome,
            detail,
            latency_seconds: latency(self.trigger, time),
            ..self.clone()
        }
    }
}

/// Seconds from `trigger` to `done`, to the millisecond; none without a trigger.
pub fn latency(trigger: Option<DateTime<Utc>>, done: DateTime<Utc>) -> Option<f64> {
    trigger.map(|t| (done - t).num_milliseconds().max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests;

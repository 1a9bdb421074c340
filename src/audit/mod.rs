//! The audit trail: a write-ahead `intent` record before every provider call that revokes,
//! and an outcome record after it; one record per revocation held back (docs/contract.md, rule 6).
//!
//! Lines are hash-chained ([`Chain`]): each carries a format version, a sequence number and the
//! SHA-256 of the previous line's exact bytes, so that an edited, removed or reordered line
//! breaks the chain at that point; `keyward audit verify` ([`verify`]) finds the first break,
//! holds the log to a checkpoint (count, head, time; signed with a key) and to where it starts:
//! seq 0, or an anchor a rotation wrote.
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

pub mod peers;
pub use chain::{Break, Chain, Expected, FORMAT_VERSION, Held, Start, Verified, checkpoint_age, sha256_hex, verify};
pub use note::{Checkpoint, Signer, Verifier};
pub use resolution::Resolution;
pub use sink::{
    AuditSink, JsonLinesFile, Memory, Stamp, Stdout, anchor_files, anchor_path, checkpoint_path, open_log,
    read_checkpoint, rotated_files,
};

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
    /// Only on a `notification` record: the receiver accepted it (a 2xx answer).
    Delivered,
    /// Only on a `notification` record: the receiver refused it for good (it answered 4xx
    /// to every attempt); it is not sent again.
    Undeliverable,
    /// Only on an `invitation` record: the provider sent it.
    Invited,
    /// Only on an `approval` record: the approval let the held plan through.
    Approved,
    /// Only on a `settings-changed` record.
    Changed,
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
    /// An attempt to deliver a notification (format 3): `delivered`, `failed` (tried again
    /// later) or `undeliverable`. No provider call; `notification` says which and where.
    Notification,
    /// An invitation to enrol a required factor, sent through the provider (format 4):
    /// `invited` or `failed`. Nothing is revoked; no intent precedes it.
    Invitation,
    /// A held plan let through by an approval (format 4): `approved`, written once, before
    /// the first of the plan's revocations; `approval` names who and `plan_digest` the plan.
    Approval,
    /// A change to a setting that can stop revocations (format 5): `changed`, written before
    /// keyward acts on the new settings; `detail` says what changed, field by field.
    SettingsChanged,
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
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub enrolment: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    /// The notification a `notification` record is about.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notification: Option<NotificationDelivery>,
}

/// One attempt to deliver a notification (`crate::notify`) to one of an MfaProvider's
/// notification targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationDelivery {
    /// The notification's id: the same on every attempt (and the CloudEvent's `id`), so a
    /// receiver that saw it before can drop it.
    pub id: String,
    /// The target's `name` in the MfaProvider's `spec.notifications`.
    pub target: String,
    /// `slack` or `webhook`.
    pub sink: String,
    /// What it tells: `Revoked`, `Failed`, `Blocked`, `SlaBreach`, `SettingsChanged`.
    pub events: Vec<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
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

    /// The record of one delivery attempt of a notification about `provider`'s sweep: no
    /// user, enrolment or reason of its own (the notification's content is with the receiver;
    /// its revocations have records of their own).
    pub fn notification(
        provider: &str,
        delivery: NotificationDelivery,
        outcome: Outcome,
        detail: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            notification: Some(delivery),
            ..AuditRecord::about_provider(provider, Event::Notification, outcome, detail)
        }
    }

    /// A record about `provider` as a whole (a notification, an approval): no user, enrolment
    /// or reason of its own.
    pub fn about_provider(provider: &str, event: Event, outcome: Outcome, detail: Option<String>) -> AuditRecord {
        AuditRecord {
            time: Utc::now(),
            event,
            provider: provider.to_string(),
            endpoint: None,
            user: String::new(),
            enrolment: String::new(),
            kind: String::new(),
            reason: String::new(),
            employee: None,
            employee_uid: None,
            grants: Vec::new(),
            source_revision: None,
            outcome,
            detail,
            plan_digest: None,
            approval: None,
            trigger: None,
            latency_seconds: None,
            replica: None,
            service_account: None,
            notification: None,
        }
    }
}

/// Seconds from `trigger` to `done`, to the millisecond; none without a trigger.
pub fn latency(trigger: Option<DateTime<Utc>>, done: DateTime<Utc>) -> Option<f64> {
    trigger.map(|t| (done - t).num_milliseconds().max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests;

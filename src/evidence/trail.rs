//! The audit trail as the report reads it: every line of the given logs, parsed tolerantly.
//!
//! The report must read logs written by this keyward, by older ones and by newer ones (fields
//! are being added: `event`, `trigger`, `latency_seconds`, `employee_uid`, `plan_digest`,
//! `replica`), so each field is taken on its own from the JSON and a field of an unexpected
//! type reads as absent rather than losing the whole line. Chain integrity is not judged
//! here; `crate::audit::verify` does that for provenance.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;

/// Where a line stands: file and 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineRef {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What a record says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Written before the provider call (write-ahead).
    Intent,
    /// The result of a provider call, or of a decision not to call (`blocked`). Records
    /// without `event` are outcomes: that is all keyward wrote before write-ahead records.
    Outcome,
    /// Approvals, invitations, notifications …: read for their approval, never revocations.
    Other(String),
}

/// The approval a record carries (`crate::engine::plan::Approval`, read tolerantly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalSeen {
    pub digest: String,
    pub manager: Option<String>,
    pub time: Option<DateTime<Utc>>,
}

/// One audit record's fields; every one but `time` may be missing.
#[derive(Clone, Debug, PartialEq)]
pub struct TrailRecord {
    pub at: LineRef,
    /// The line exactly as written (an auditor's sample quotes it).
    pub text: String,
    pub seq: Option<u64>,
    pub time: DateTime<Utc>,
    pub event: Event,
    pub provider: String,
    pub user: String,
    pub enrolment: String,
    pub kind: String,
    pub reason: String,
    pub employee: Option<String>,
    pub grants: Vec<String>,
    pub source_revision: Option<String>,
    /// Normalized to kebab-case (`already_gone` and `already-gone` alike).
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub approval: Option<ApprovalSeen>,
    pub trigger: Option<DateTime<Utc>>,
    pub latency_seconds: Option<f64>,
    pub employee_uid: Option<String>,
    pub plan_digest: Option<String>,
    pub replica: Option<String>,
}

/// A line the report cannot use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub at: LineRef,
    pub problem: String,
}

/// Every record of the logs in the order written (files in the order given), and the lines
/// that are not records.
#[derive(Clone, Debug, Default)]
pub struct Trail {
    pub records: Vec<TrailRecord>,
    pub unreadable: Vec<Unreadable>,
}

impl TrailRecord {
    /// Same provider, user and enrolment: the records of one revocation's life.
    pub fn same_enrolment(&self, other: &TrailRecord) -> bool {
        self.provider == other.provider && self.user == other.user && self.enrolment == other.enrolment
    }

    /// An outcome of `revoked` or `already-gone` (docs/contract.md, rule 5: already gone
    /// counts as revoked).
    pub fn is_revocation(&self) -> bool {
        self.event == Event::Outcome && matches!(self.outcome.as_deref(), Some("revoked" | "already-gone"))
    }
}

/// Reads `files` (path and text, in order). Blank lines are skipped here (verification
/// reports them); a line that is not a JSON object with a valid `time` is unreadable.
pub fn read(files: &[(PathBuf, String)]) -> Trail {
    let mut trail = Trail::default();
    for (file, text) in files {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = LineRef { file: file.clone(), line: i + 1 };
            match parse(at.clone(), line) {
                Ok(record) => trail.records.push(record),
                Err(problem) => trail.unreadable.push(Unreadable { at, problem }),
            }
        }
    }
    trail
}

fn parse(at: LineRef, line: &str) -> Result<TrailRecord, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(fields) = &value else { return Err("not a JSON object".into()) };
    let text_of = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_string);
    let time_of = |name: &str| text_of(name).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc());
    let time = time_of("time").ok_or("no RFC 3339 `time`: the record cannot be placed in a period")?;
    let event = match text_of("event").as_deref() {
        None | Some("outcome") => Event::Outcome,
        Some("intent") => Event::Intent,
        Some(other) => Event::Other(other.to_string()),
    };
    let approval = fields.get("approval").and_then(|a| {
        Some(ApprovalSeen {
            digest: a.get("digest")?.as_str()?.to_string(),
            manager: a.get("manager").and_then(Value::as_str).map(str::to_string),
            time: a
                .get("time")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc()),
        })
    });
    Ok(TrailRecord {
        text: line.to_string(),
        seq: fields.get("seq").and_then(Value::as_u64),
        time,
        event,
        provider: text_of("provider").unwrap_or_default(),
        user: text_of("user").unwrap_or_default(),
        enrolment: text_of("enrolment").unwrap_or_default(),
        kind: text_of("kind").unwrap_or_default(),
        reason: text_of("reason").unwrap_or_default(),
        employee: text_of("employee"),
        grants: fields
            .get("grants")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        source_revision: text_of("source_revision"),
        outcome: text_of("outcome").map(|o| o.replace('_', "-")),
        detail: text_of("detail"),
        approval,
        trigger: time_of("trigger"),
        latency_seconds: fields.get("latency_seconds").and_then(Value::as_f64),
        employee_uid: text_of("employee_uid"),
        plan_digest: text_of("plan_digest"),
        replica: text_of("replica"),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(text: &str) -> Trail {
        read(&[(PathBuf::from("audit.jsonl"), text.to_string())])
    }

    #[test]
    fn todays_records_newer_fields_and_unknown_ones_are_all_read() {
        let text = concat!(
            r#"{"v":1,"seq":0,"prev":"","time":"2026-11-30T12:00:00Z","provider":"acme/corp-pi","user":"dave","enrolment":"TOTP1","kind":"totp","reason":"EmployeeOffboarded","employee":"dave","grants":[],"source_revision":null,"outcome":"revoked"}"#,
            "\n\n",
            r#"{"v":2,"seq":1,"time":"2026-11-30T12:01:00Z","event":"intent","provider":"acme/corp-pi","user":"erin","enrolment":"TOTP2","trigger":"2026-11-30T11:59:00Z","latency_seconds":"soon","plan_digest":"abc","replica":"keyward-0","employee_uid":"u-1","something_new":{"x":1}}"#,
            "\n",
            r#"{"time":"2026-11-30T12:02:00Z","event":"outcome","outcome":"already_gone","approval":{"digest":"abc","manager":"kubectl-annotate"}}"#,
            "\n",
        );
        let t = trail(text);
        assert!(t.unreadable.is_empty(), "{:?}", t.unreadable);
        let [dave, erin, gone] = t.records.as_slice() else { panic!("three records: {:?}", t.records) };
        assert_eq!((dave.event.clone(), dave.outcome.as_deref(), dave.at.line), (Event::Outcome, Some("revoked"), 1));
        assert!(dave.is_revocation());
        assert_eq!(erin.at.to_string(), "audit.jsonl:3", "blank lines keep the numbering of the file");
        assert_eq!(erin.event, Event::Intent);
        assert!(!erin.is_revocation());
        assert_eq!(erin.trigger.map(|t| t.to_rfc3339()), Some("2026-11-30T11:59:00+00:00".into()));
        assert_eq!(erin.latency_seconds, None, "a field of the wrong type reads as absent");
        assert_eq!((erin.plan_digest.as_deref(), erin.replica.as_deref()), (Some("abc"), Some("keyward-0")));
        assert_eq!(gone.outcome.as_deref(), Some("already-gone"));
        assert!(gone.is_revocation());
        assert_eq!(gone.approval.as_ref().and_then(|a| a.manager.as_deref()), Some("kubectl-annotate"));
    }

    #[test]
    fn lines_that_are_not_records_are_named_by_file_and_line() {
        let t = trail("not json\n[1]\n{\"time\":\"yesterday\"}\n");
        let problems: Vec<String> = t.unreadable.iter().map(|u| format!("{}: {}", u.at, u.problem)).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("audit.jsonl:1: not JSON"), "{problems:?}");
        assert_eq!(problems[1], "audit.jsonl:2: not a JSON object");
        assert!(problems[2].starts_with("audit.jsonl:3: no RFC 3339 `time`"), "{problems:?}");
    }
}

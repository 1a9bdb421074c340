//! Scope and provenance: what the report covers and what it was made from — the period, the
//! providers and how each was read, this keyward's version, the audit logs (with their
//! hashes) and whether their chain verifies, the source revisions seen, and row counts.

use super::period::Period;
use super::time_label;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::path::PathBuf;

/// One MfaProvider of the declared state and how its live read went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderScope {
    pub provider: String,
    /// The block name: `privacyidea`, `okta` …
    pub product: String,
    pub endpoint: String,
    pub mode: String,
    pub scope: String,
    /// `ok: 12 users, 20 enrolments` or `failed: …`.
    pub live_read: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditLog {
    pub file: String,
    pub sha256: String,
    pub lines: usize,
}

/// The result of `crate::audit::verify` on the logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainCheck {
    pub verified: bool,
    pub records: u64,
    /// The checkpoint the logs were held to, if any.
    pub checkpoint: Option<String>,
    /// Where the logs start and what says so (seq 0, or an anchor written at a rotation).
    pub start: Option<String>,
    /// When the checkpoint was written, and how long before the report.
    pub checkpoint_age: Option<String>,
    /// The first line that is not as written, `file:line: problem`.
    pub problem: Option<String>,
}

/// A checkpoint file and what it holds (`None`: it could not be read as one).
pub struct Checkpoint {
    pub file: PathBuf,
    pub expected: Option<crate::audit::Checkpoint>,
}

impl ChainCheck {
    /// The logs held to `checkpoint` and started from seq 0 or one of `anchors`, as
    /// `keyward audit verify` does without a key (the report checks no signature: its
    /// label says so); the checkpoint's age at `now`.
    pub fn of(
        logs: &[(PathBuf, String)],
        checkpoint: Option<&Checkpoint>,
        anchors: &[crate::audit::Held],
        now: DateTime<Utc>,
    ) -> ChainCheck {
        let file = checkpoint.map(|c| c.file.display().to_string());
        let failed = |problem: String| ChainCheck {
            verified: false,
            records: 0,
            checkpoint: file.clone(),
            start: None,
            checkpoint_age: None,
            problem: Some(problem),
        };
        if let Some(Checkpoint { file, expected: None }) = checkpoint {
            return failed(format!("{} is not a checkpoint", file.display()));
        }
        let held = checkpoint.and_then(|c| {
            let checkpoint = c.expected.clone()?;
            Some(crate::audit::Held { checkpoint, file: c.file.clone(), signed: false })
        });
        let expected = crate::audit::Expected { checkpoint: held, anchors: anchors.to_vec() };
        match crate::audit::verify(logs, &expected) {
            Ok(verified) => ChainCheck {
                verified: true,
                records: verified.records,
                checkpoint: file.clone(),
                start: Some(verified.start.label()),
                checkpoint_age: expected
                    .checkpoint
                    .as_ref()
                    .map(|held| crate::audit::checkpoint_age(Some(held), now, None).unwrap_or_else(|e| e)),
                problem: None,
            },
            Err(broken) => failed(broken.to_string()),
        }
    }

    fn label(&self) -> String {
        let start = self.start.as_deref().map(|s| format!("; starts at {s}")).unwrap_or_default();
        match (&self.problem, &self.checkpoint) {
            (Some(problem), _) => format!("FAILED: {problem}"),
            (None, Some(checkpoint)) => format!(
                "verified: {} record(s), chain and sequence intact, not shorter than {checkpoint} and its last \
                 record as it saw it (its signature is not checked here: `keyward audit verify --key` does){start}; \
                 checkpoint {}",
                self.records,
                self.checkpoint_age.as_deref().unwrap_or("of unknown age")
            ),
            (None, None) => format!(
                "verified: {} record(s), chain and sequence intact{start}; no checkpoint, so a log cut short at its \
                 end, or rewritten with its chain recomputed, cannot be told",
                self.records
            ),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    pub records_read: usize,
    pub records_in_period: usize,
    pub unreadable_lines: usize,
    pub terminations: usize,
    pub within_sla: usize,
    pub outside_sla: usize,
    pub sla_unknown: usize,
    pub holdings: usize,
    pub unentitled: usize,
    pub exceptions: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub generated_at: DateTime<Utc>,
    pub keyward_version: String,
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    pub sla_seconds: i64,
    /// When the providers were read for holdings.
    pub live_read_at: DateTime<Utc>,
    pub providers: Vec<ProviderScope>,
    pub audit_logs: Vec<AuditLog>,
    pub chain: ChainCheck,
    /// `keyward.dev/source-revision` values on the records of the period.
    pub source_revisions: Vec<String>,
    /// The same annotation on the declared objects read for the live part.
    pub declared_source_revisions: Vec<String>,
    pub rows: RowCounts,
}

impl Provenance {
    pub fn period(&self) -> Period {
        Period { from: self.period_from, to: self.period_to }
    }

    /// The section as key–value lines (Markdown and CSV).
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("period".to_string(), self.period().label()),
            ("SLA".to_string(), super::duration_label(Duration::seconds(self.sla_seconds))),
            ("generated at".to_string(), time_label(self.generated_at)),
            ("keyward version".to_string(), self.keyward_version.clone()),
            ("live read at".to_string(), time_label(self.live_read_at)),
        ];
        for p in &self.providers {
            pairs.push((
                format!("provider {}", p.provider),
                format!("{} {} (mode {}, scope {}); live read {}", p.product, p.endpoint, p.mode, p.scope, p.live_read),
            ));
        }
        for log in &self.audit_logs {
            pairs.push((format!("audit log {}", log.file), format!("{} line(s), sha256 {}", log.lines, log.sha256)));
        }
        pairs.push(("audit chain".to_string(), self.chain.label()));
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        pairs.push(("source revisions (audit records)".to_string(), list(&self.source_revisions)));
        pairs.push(("source revisions (declared state)".to_string(), list(&self.declared_source_revisions)));
        let r = &self.rows;
        pairs.extend([
            ("records read".to_string(), r.records_read.to_string()),
            ("records in period".to_string(), r.records_in_period.to_string()),
            ("unreadable lines".to_string(), r.unreadable_lines.to_string()),
            (
                "terminations".to_string(),
                format!(
                    "{} ({} within SLA, {} outside, {} without a known trigger)",
                    r.terminations, r.within_sla, r.outside_sla, r.sla_unknown
                ),
            ),
            ("holdings".to_string(), r.holdings.to_string()),
            ("held without a grant".to_string(), r.unentitled.to_string()),
            ("exceptions".to_string(), r.exceptions.to_string()),
        ]);
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_check_is_the_audit_verification_of_the_logs() {
        let mut chain = crate::audit::Chain::default();
        let record: crate::audit::AuditRecord = serde_json::from_str(
            r#"{"time":"2026-11-30T12:00:00Z","provider":"acme/corp-pi","user":"dave","enrolment":"T1","kind":"totp","reason":"EmployeeOffboarded","employee":"dave","grants":[],"source_revision":null,"outcome":"revoked"}"#,
        )
        .expect("record");
        let text: String =
            (0..3).map(|_| String::from_utf8(chain.seal(&record).expect("seal")).expect("utf-8") + "\n").collect();
        let log = |text: &str| vec![(PathBuf::from("audit.jsonl"), text.to_string())];
        let now = DateTime::parse_from_rfc3339("2026-11-30T15:00:00Z").expect("time").to_utc();
        let intact = ChainCheck::of(&log(&text), None, &[], now);
        assert!(intact.verified && intact.records == 3, "{intact:?}");
        assert!(intact.label().contains("no checkpoint"), "{}", intact.label());

        let held = Checkpoint {
            file: PathBuf::from("audit.jsonl.checkpoint"),
            expected: crate::audit::Checkpoint::parse(&format!(
                "keyward.dev/audit\n3\n{}\ntime 2026-11-30T12:00:00Z\n",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    hex::decode(&chain.prev).expect("hex")
                )
            )),
        };
        assert!(
            ChainCheck::of(&log(&text), Some(&held), &[], now)
                .label()
                .contains("not shorter than audit.jsonl.checkpoint")
        );

        let edited = text.replacen("dave", "mallory", 1);
        let broken = ChainCheck::of(&log(&edited), None, &[], now);
        assert!(!broken.verified);
        assert!(broken.label().starts_with("FAILED: audit.jsonl:2: "), "{}", broken.label());

        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        let truncated = ChainCheck::of(&log(&cut), Some(&held), &[], now);
        assert!(truncated.problem.as_deref().is_some_and(|p| p.contains("truncated")), "{truncated:?}");

        let garbage = Checkpoint { file: PathBuf::from("x.checkpoint"), expected: None };
        assert_eq!(
            ChainCheck::of(&log(&text), Some(&garbage), &[], now).problem.as_deref(),
            Some("x.checkpoint is not a checkpoint")
        );
    }
}

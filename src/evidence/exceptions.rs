//! Exceptions: what did not go the ordinary way in the period — revocations held for
//! approval, failed or withdrawn, plans let through by an approval (and who approved),
//! revocations begun but never finished, audit lines that cannot be read, and providers that
//! could not be read for the live part of the report.

use super::period::Period;
use super::trail::{Event, Trail, TrailRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExceptionKind {
    /// Held back: over the revocation budget, or an empty declared state.
    #[default]
    Blocked,
    /// The provider refused or did not answer the revocation.
    Failed,
    /// Re-checked immediately before its provider call and no longer wanted.
    Withdrawn,
    /// The process stopped between an intent and the provider's answer, and the enrolment was
    /// still there when read again: planned again from scratch.
    Interrupted,
    /// A held plan carried out after someone approved its digest.
    ApprovedPlan,
    /// An intent with no outcome in the period: keyward stopped between the two.
    UnresolvedIntent,
    /// A provider that could not be read (or configured) for the live review.
    ReadError,
    /// An audit line that is not a record the report can use.
    UnreadableRecord,
}

impl ExceptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::Blocked => "blocked",
            ExceptionKind::Failed => "failed",
            ExceptionKind::Withdrawn => "withdrawn",
            ExceptionKind::Interrupted => "interrupted",
            ExceptionKind::ApprovedPlan => "approved-plan",
            ExceptionKind::UnresolvedIntent => "unresolved-intent",
            ExceptionKind::ReadError => "read-error",
            ExceptionKind::UnreadableRecord => "unreadable-record",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Exception {
    pub exception: ExceptionKind,
    pub time: Option<DateTime<Utc>>,
    pub provider: String,
    pub user: Option<String>,
    pub employee: Option<String>,
    pub enrolment: Option<String>,
    pub kind: Option<String>,
    /// The plan digest held or approved.
    pub plan: Option<String>,
    /// Who approved (the field manager that set the approval), for approved plans.
    pub approver: Option<String>,
    pub detail: String,
    /// The audit line, `file:line`.
    pub record: Option<String>,
}

impl Exception {
    /// An exception of `kind` on `provider` that names no user, enrolment or record.
    fn about(exception: ExceptionKind, provider: String, detail: String) -> Self {
        Exception {
            exception,
            time: None,
            provider,
            user: None,
            employee: None,
            enrolment: None,
            kind: None,
            plan: None,
            approver: None,
            detail,
            record: None,
        }
    }
}

/// A provider the live read could not use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFailure {
    pub provider: String,
    pub time: DateTime<Utc>,
    pub error: String,
}

pub fn exceptions(trail: &Trail, period: &Period, read_failures: &[ReadFailure]) -> Vec<Exception> {
    let in_period: Vec<(usize, &TrailRecord)> =
        trail.records.iter().enumerate().filter(|(_, r)| period.contains(r.time)).collect();
    let mut rows: Vec<Exception> = in_period
        .iter()
        .filter_map(|(i, r)| match r.event {
            Event::Outcome => held_failed_or_withdrawn(r),
            Event::Intent => unresolved(trail, period, *i, r),
            Event::Other(_) => None,
        })
        .collect();
    rows.extend(approved_plans(in_period.iter().map(|(_, r)| *r)));
    rows.extend(trail.unreadable.iter().map(|u| Exception {
        record: Some(u.at.to_string()),
        ..Exception::about(ExceptionKind::UnreadableRecord, String::new(), u.problem.clone())
    }));
    rows.extend(read_failures.iter().map(|f| Exception {
        time: Some(f.time),
        ..Exception::about(ExceptionKind::ReadError, f.provider.clone(), f.error.clone())
    }));
    // Time order; rows with no time (unreadable lines) last. Stable: log order within a time.
    rows.sort_by_key(|e| (e.time.is_none(), e.time));
    rows
}

fn of_record(exception: ExceptionKind, r: &TrailRecord, detail: String) -> Exception {
    Exception {
        exception,
        time: Some(r.time),
        provider: r.provider.clone(),
        user: Some(r.user.clone()),
        employee: r.employee.clone(),
        enrolment: Some(r.enrolment.clone()),
        kind: Some(r.kind.clone()),
        plan: r.plan_digest.clone(),
        approver: None,
        detail,
        record: Some(r.at.to_string()),
    }
}

fn held_failed_or_withdrawn(r: &TrailRecord) -> Option<Exception> {
    let kind = match r.outcome.as_deref()? {
        "blocked" => ExceptionKind::Blocked,
        "failed" => ExceptionKind::Failed,
        "withdrawn" => ExceptionKind::Withdrawn,
        "interrupted" => ExceptionKind::Interrupted,
        _ => return None,
    };
    let mut row = of_record(kind, r, r.detail.clone().unwrap_or_default());
    if kind == ExceptionKind::Blocked && row.plan.is_none() {
        row.plan = r.detail.as_deref().and_then(digest_in_hold);
    }
    Some(row)
}

/// The digest a hold message asks to approve (records written before `plan_digest` existed
/// name it only there): `… approve plan <digest> with annotation …`.
fn digest_in_hold(detail: &str) -> Option<String> {
    let rest = detail.split("approve plan ").nth(1)?;
    rest.split_whitespace().next().map(str::to_string)
}

/// An intent whose outcome is not in the period (none at all, or one after its end).
fn unresolved(trail: &Trail, period: &Period, index: usize, intent: &TrailRecord) -> Option<Exception> {
    let outcome = trail.records[index + 1..]
        .iter()
        .find(|r| r.event == Event::Outcome && r.same_enrolment(intent) && r.outcome.is_some());
    let detail = match outcome {
        Some(o) if period.contains(o.time) => return None,
        Some(o) => format!(
            "no outcome in the period; `{}` at {} ({})",
            o.outcome.as_deref().unwrap_or_default(),
            super::time_label(o.time),
            o.at
        ),
        None => "no outcome recorded: the provider call may or may not have happened".to_string(),
    };
    Some(of_record(ExceptionKind::UnresolvedIntent, intent, detail))
}

/// One row per approved plan (provider × digest), with its approver and how many revocations
/// it let through in the period.
fn approved_plans<'a>(records: impl Iterator<Item = &'a TrailRecord>) -> Vec<Exception> {
    let mut plans: BTreeMap<(String, String), (&TrailRecord, usize)> = BTreeMap::new();
    for r in records {
        let Some(approval) = &r.approval else { continue };
        let entry = plans.entry((r.provider.clone(), approval.digest.clone())).or_insert((r, 0));
        entry.1 += usize::from(r.is_revocation());
    }
    plans
        .into_values()
        .map(|(first, revocations)| {
            let approval = first.approval.as_ref();
            let when = approval.and_then(|a| a.time).map_or_else(
                || "approval time not recorded".to_string(),
                |t| format!("approved at {}", super::time_label(t)),
            );
            Exception {
                exception: ExceptionKind::ApprovedPlan,
                time: Some(first.time),
                provider: first.provider.clone(),
                user: None,
                employee: None,
                enrolment: None,
                kind: None,
                plan: approval.map(|a| a.digest.clone()),
                approver: Some(approval.and_then(|a| a.manager.clone()).unwrap_or_else(|| "not recorded".to_string())),
                detail: format!("{revocations} revocation(s) carried out under the approved plan; {when}"),
                record: Some(first.at.to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::trail;
    use std::path::PathBuf;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn line(time: &str, user: &str, extra: &str) -> String {
        format!(
            r#"{{"time":"{time}","provider":"acme/corp-pi","user":"{user}","enrolment":"E-{user}","kind":"totp","reason":"EmployeeOffboarded","employee":"{user}","grants":[]{extra}}}"#
        ) + "\n"
    }

    #[test]
    fn each_kind_of_exception_is_one_row_in_time_order() {
        let hold = "7 revocations exceed the budget of 2 per 1h (0 already made in the window); approve plan d1g35t with annotation keyward.dev/approve-revocations=d1g35t";
        let approval = r#","approval":{"digest":"d1g35t","manager":"kubectl-annotate","time":"2026-11-10T09:30:00Z"}"#;
        let text = [
            line("2026-11-10T09:00:00Z", "carol", &format!(r#","outcome":"blocked","detail":"{hold}""#)),
            line("2026-11-10T10:00:00Z", "carol", &format!(r#","outcome":"revoked"{approval}"#)),
            line("2026-11-10T10:00:01Z", "dave", &format!(r#","outcome":"revoked"{approval}"#)),
            line("2026-11-10T10:00:02Z", "erin", r#","outcome":"failed","detail":"HTTP 503""#),
            line("2026-11-10T10:00:03Z", "frank", r#","outcome":"withdrawn","detail":"re-entitled""#),
            line("2026-11-10T10:00:04Z", "gil", r#","event":"intent","outcome":"intended""#),
            line("2026-11-10T10:00:05Z", "gil", r#","event":"outcome","outcome":"interrupted""#),
            line("2026-11-10T11:00:00Z", "gus", r#","event":"intent""#),
            line("2026-11-10T11:00:01Z", "hal", r#","event":"intent""#),
            line("2026-11-10T11:00:02Z", "hal", r#","event":"outcome","outcome":"revoked""#),
            line("2026-11-30T23:59:00Z", "ivy", r#","event":"intent""#),
            line("2026-12-01T00:00:05Z", "ivy", r#","event":"outcome","outcome":"revoked""#),
            "garbage\n".to_string(),
        ]
        .concat();
        let trail = trail::read(&[(PathBuf::from("a.jsonl"), text)]);
        let period = Period::new(Some(at("2026-11-01T00:00:00Z")), Some(at("2026-12-01T00:00:00Z"))).expect("period");
        let outage = ReadFailure {
            provider: "acme/okta".into(),
            time: at("2026-11-30T23:59:30Z"),
            error: "provider could not be read: HTTP 500".into(),
        };
        let rows = exceptions(&trail, &period, &[outage]);
        let got: Vec<String> = rows
            .iter()
            .map(|e| {
                let cells = [&e.user, &e.plan, &e.approver].map(|c| c.as_deref().unwrap_or("-"));
                format!(
                    "{} {} {} {} {}",
                    e.exception.as_str(),
                    cells[0],
                    cells[1],
                    cells[2],
                    e.record.as_deref().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "blocked carol d1g35t - a.jsonl:1",
                "approved-plan - d1g35t kubectl-annotate a.jsonl:2",
                "failed erin - - a.jsonl:4",
                "withdrawn frank - - a.jsonl:5",
                "interrupted gil - - a.jsonl:7",
                "unresolved-intent gus - - a.jsonl:8",
                "unresolved-intent ivy - - a.jsonl:11",
                "read-error - - - -",
                "unreadable-record - - - a.jsonl:13",
            ]
        );
        assert_eq!(
            rows[1].detail,
            "2 revocation(s) carried out under the approved plan; approved at 2026-11-10T09:30:00Z"
        );
        assert_eq!(rows[2].detail, "HTTP 503");
        assert!(rows[5].detail.starts_with("no outcome recorded"), "{}", rows[5].detail);
        assert_eq!(rows[6].detail, "no outcome in the period; `revoked` at 2026-12-01T00:00:05Z (a.jsonl:12)");
    }
}

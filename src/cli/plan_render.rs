//! Rendering plans, with what became of each action: text for a terminal, Markdown for a
//! pull-request comment, JSON for machines (docs/contract.md, "Ways to run"). `keyward plan`
//! and `keyward apply` print them, and so does `kubectl keyward plan`.

use crate::crd::mfa_provider::Mode;
use crate::engine::{ActionKind, Plan};
use crate::sweep::{ActionResult, SweepReport};
use serde_json::{Value, json};
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

pub fn render(reports: &[SweepReport], format: Format, executed: bool) -> String {
    match format {
        Format::Text => text(reports, executed),
        Format::Markdown => markdown(reports, executed),
        Format::Json => serde_json::to_string_pretty(&json(reports)).unwrap_or_default() + "\n",
    }
}

fn result_label(result: &ActionResult) -> String {
    match result {
        ActionResult::Planned => "planned".into(),
        ActionResult::Revoked => "revoked".into(),
        ActionResult::AlreadyGone => "already gone".into(),
        ActionResult::Invited => "invited".into(),
        ActionResult::Pending => "waiting for the user".into(),
        ActionResult::Blocked => "blocked".into(),
        ActionResult::Failed(e) => format!("FAILED: {e}"),
        ActionResult::Withdrawn(why) => format!("withdrawn: {why}"),
        ActionResult::Deferred => "deferred: no longer the leader".into(),
    }
}

/// The enrolment's kind, and the further kinds it provides: `push+sms+voice`.
fn kinds_label(action: &crate::engine::Action) -> String {
    std::iter::once(&action.kind).chain(&action.also).map(|k| k.to_string()).collect::<Vec<_>>().join("+")
}

fn action_label(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Revoke => "revoke",
        ActionKind::Invite => "invite",
        ActionKind::Pending => "pending",
    }
}

fn status_line(plan: &Plan) -> String {
    if let Some(error) = &plan.error {
        return format!("ERROR: {error}");
    }
    let mut s = format!(
        "{} managed users, {} enrolments, {} revocations",
        plan.managed_users,
        plan.managed_enrolments,
        plan.revocation_count()
    );
    if plan.mode == Mode::Observe {
        s.push_str(" (Observe mode: nothing is changed)");
    }
    if let Some(hold) = &plan.hold {
        write!(s, "\nBLOCKED: {}", hold.message(&plan.digest)).ok();
    } else if plan.approved {
        write!(s, "\napproved plan {}", plan.digest).ok();
    }
    s
}

fn text(reports: &[SweepReport], executed: bool) -> String {
    let mut out = String::new();
    for report in reports {
        let plan = &report.plan;
        writeln!(out, "provider {} (plan {})", plan.provider, plan.digest).ok();
        for line in status_line(plan).lines() {
            writeln!(out, "  {line}").ok();
        }
        for conflict in &plan.conflicts {
            writeln!(
                out,
                "  identity conflict: user {} is claimed by Employees {}; left alone",
                conflict.user,
                conflict.employees.join(", ")
            )
            .ok();
        }
        for r in &report.results {
            let a = &r.action;
            let kinds = kinds_label(a);
            let target = if a.enrolment.is_empty() { kinds } else { format!("{kinds} {}", a.enrolment) };
            write!(out, "  {:<8} {:<28} {:<24} {}", action_label(a.action), a.user, target, a.reason).ok();
            if let Some(e) = &a.employee {
                write!(out, " (employee {e})").ok();
            }
            if executed || !matches!(r.result, ActionResult::Planned | ActionResult::Pending) {
                write!(out, " -> {}", result_label(&r.result)).ok();
            }
            out.push('\n');
        }
        if report.results.is_empty() && plan.error.is_none() {
            writeln!(out, "  nothing to do").ok();
        }
        for e in &report.audit_errors {
            writeln!(out, "  AUDIT FAILURE: {e}").ok();
        }
    }
    out
}

fn markdown(reports: &[SweepReport], executed: bool) -> String {
    let mut out = String::from("## keyward plan\n\n");
    for report in reports {
        let plan = &report.plan;
        let badge = if plan.error.is_some() {
            "❌ error"
        } else if plan.blocked() {
            "⛔ blocked"
        } else if plan.has_changes() {
            "⚠️ changes"
        } else {
            "✅ no changes"
        };
        writeln!(out, "### `{}` — {badge}\n", plan.provider).ok();
        for line in status_line(plan).lines() {
            writeln!(out, "{line}  ").ok();
        }
        out.push('\n');
        for conflict in &plan.conflicts {
            writeln!(out, "- identity conflict: `{}` claimed by {}\n", conflict.user, conflict.employees.join(", "))
                .ok();
        }
        if !report.results.is_empty() {
            let last = if executed { " Result |" } else { "" };
            writeln!(out, "| Action | User | Enrolment | Kind | Reason | Employee |{last}").ok();
            writeln!(out, "|---|---|---|---|---|---|{}", if executed { "---|" } else { "" }).ok();
            for r in &report.results {
                let a = &r.action;
                write!(
                    out,
                    "| {} | `{}` | `{}` | {} | {} | {} |",
                    action_label(a.action),
                    a.user,
                    a.enrolment,
                    kinds_label(a),
                    a.reason,
                    a.employee.as_deref().unwrap_or("—")
                )
                .ok();
                if executed {
                    write!(out, " {} |", result_label(&r.result)).ok();
                }
                out.push('\n');
            }
            out.push('\n');
        }
    }
    out
}

/// The JSON plan of docs/contract.md ("Ways to run"): each provider's plan with its digest,
/// hold and mode, and what became of each action.
pub fn json(reports: &[SweepReport]) -> Value {
    let providers: Vec<Value> = reports
        .iter()
        .map(|report| {
            let plan = &report.plan;
            let actions: Vec<Value> = report
                .results
                .iter()
                .map(|r| {
                    let a = &r.action;
                    json!({
                        "action": action_label(a.action),
                        "user": a.user,
                        "enrolment": a.enrolment,
                        "kind": a.kind,
                        "alsoKinds": a.also,
                        "reason": a.reason,
                        "employee": a.employee,
                        "grants": a.grants,
                        "result": result_label(&r.result),
                    })
                })
                .collect();
            json!({
                "provider": plan.provider,
                "mode": plan.mode,
                "blocked": plan.blocked(),
                "hold": plan.hold.as_ref().map(|h| h.message(&plan.digest)),
                "approved": plan.approved,
                "digest": plan.digest,
                "error": plan.error,
                "managedUsers": plan.managed_users,
                "managedEnrolments": plan.managed_enrolments,
                "conflicts": plan.conflicts,
                "requests": report.requests,
                "actions": actions,
            })
        })
        .collect();
    json!({ "providers": providers })
}

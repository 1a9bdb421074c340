//! What the plugin prints and decides, without I/O: the status of MfaProviders, the held plan
//! and the approval that names it, errors from the API server as kubectl words them.

use crate::crd::mfa_provider::{Mode, PlannedRevocation};
use crate::crd::{MfaProvider, ProviderKey, RevocationApproval, RevocationApprovalSpec};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use std::fmt::Write;

/// The request that failed, to name its object in the error.
pub struct Request<'a> {
    pub verb: &'a str,
    /// Plural resource name (`mfaproviders`).
    pub resource: &'a str,
    pub name: Option<&'a str>,
    pub namespace: &'a str,
}

/// An API error as kubectl shows it (`Error from server (NotFound): mfaproviders.keyward.dev
/// "x" not found`); a 403 says in words what the person may not do, then the server's reason.
pub fn api_error(request: &Request, error: &kube::Error) -> String {
    let object = match request.name {
        Some(name) => format!("{} {name:?}", request.resource),
        None => request.resource.to_string(),
    };
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "Error from server (Forbidden): forbidden: you may not {} {object} in namespace {:?}: {}",
            request.verb, request.namespace, status.message
        ),
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() { status.code.to_string() } else { status.reason.clone() };
            format!("Error from server ({reason}): {}", status.message)
        }
        other => format!("error: {} {object} in namespace {:?}: {other}", request.verb, request.namespace),
    }
}

fn mode(provider: &MfaProvider) -> &'static str {
    match provider.spec.policy.mode {
        Mode::Enforce => "Enforce",
        Mode::Observe => "Observe",
    }
}

/// `kubectl keyward status`: one block per provider.
pub fn status(providers: &[MfaProvider], now: DateTime<Utc>) -> String {
    if providers.is_empty() {
        return "No MfaProviders found.\n".into();
    }
    providers.iter().map(|p| provider_status(p, now)).collect::<Vec<_>>().join("\n")
}

fn provider_status(provider: &MfaProvider, now: DateTime<Utc>) -> String {
    let status = provider.status.clone().unwrap_or_default();
    let mut out = format!("MfaProvider {}\n", ProviderKey::of(provider));
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "  {:<22}{value}", format!("{name}:"));
    };
    field("mode", mode(provider).into());
    field("suspended", if provider.spec.suspend { "yes (spec.suspend)".into() } else { "no".into() });
    field("ready", ready(provider));
    field("last sweep", last_sweep(status.last_sweep_time, now));
    field("managed", format!("{} user(s), {} enrolment(s)", status.managed_users, status.managed_enrolments));
    field("pending revocations", status.pending_revocations.to_string());
    field("held revocations", status.blocked_revocations.to_string());
    match &status.blocked_plan_digest {
        Some(digest) => field(
            "held plan digest",
            format!("{digest} (approve: kubectl keyward approve {} -n {})", provider.name_any(), namespace(provider)),
        ),
        None => field("held plan digest", "none".into()),
    }
    if status.undeclared_users > 0 {
        field("undeclared users", status.undeclared_users.to_string());
    }
    let total = status.pending_revocations + status.blocked_revocations;
    if !status.planned_revocations.is_empty() {
        let title = if status.blocked_plan_digest.is_some() { "held for approval" } else { "would revoke" };
        let _ = writeln!(out, "  {title} ({}):", shown_of(status.planned_revocations.len(), total));
        out.push_str(&revocation_table(&status.planned_revocations, "    "));
    }
    out
}

fn namespace(provider: &MfaProvider) -> String {
    provider.namespace().unwrap_or_default()
}

/// "3" or "first 20 of 31": status lists at most the first revocations; the counts are complete.
fn shown_of(shown: usize, total: u32) -> String {
    if (total as usize) > shown { format!("first {shown} of {total}") } else { shown.to_string() }
}

fn ready(provider: &MfaProvider) -> String {
    let conditions = provider.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.message.is_empty() => format!("{} ({})", c.status, c.reason),
        Some(c) => format!("{} ({}: {})", c.status, c.reason, c.message),
        None => "Unknown (not reconciled yet)".into(),
    }
}

fn last_sweep(time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match time {
        Some(time) => {
            let ago = (now - time).to_std().map(|d| std::time::Duration::from_secs(d.as_secs())).unwrap_or_default();
            format!(
                "{} ({} ago)",
                time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(ago)
            )
        }
        None => "never".into(),
    }
}

/// The revocations as aligned columns: user, enrolment, kind, reason, employee.
fn revocation_table(revocations: &[PlannedRevocation], indent: &str) -> String {
    let rows: Vec<[&str; 5]> = revocations
        .iter()
        .map(|r| [r.user.as_str(), r.enrolment.as_str(), r.kind.as_str(), r.reason.as_str(), employee(r)])
        .collect();
    let header = ["USER", "ENROLMENT", "KIND", "REASON", "EMPLOYEE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{indent}{}", cells.join("  ").trim_end());
    }
    out
}

fn employee(revocation: &PlannedRevocation) -> &str {
    revocation.employee.as_deref().unwrap_or("(none: undeclared)")
}

/// Said after `plan` when the operator would not carry the plan out as shown.
pub fn plan_note(provider: &MfaProvider) -> Option<String> {
    let key = ProviderKey::of(provider);
    if provider.spec.suspend {
        Some(format!("note: MfaProvider {key} is suspended (spec.suspend): the operator makes none of these changes"))
    } else if provider.spec.policy.mode == Mode::Observe {
        Some(format!("note: MfaProvider {key} is in Observe mode: the operator reports these changes and makes none"))
    } else {
        None
    }
}

/// The digest of the plan the provider holds for approval, if it holds one.
pub fn held_digest(provider: &MfaProvider) -> Option<&str> {
    provider.status.as_ref()?.blocked_plan_digest.as_deref().filter(|d| !d.is_empty())
}

/// The RevocationApproval for the held plan `digest`. Named after the provider and the
/// digest, so that approving one plan twice is refused by the API server (AlreadyExists).
pub fn approval(provider: &MfaProvider, digest: &str, reason: &str) -> RevocationApproval {
    // Object names are at most 253 characters; the digest (16) and its dash must fit.
    let stem: String = provider.name_any().chars().take(253usize.saturating_sub(digest.len() + 1)).collect();
    let mut approval = RevocationApproval::new(
        &format!("{stem}-{digest}"),
        RevocationApprovalSpec { provider: provider.name_any(), digest: digest.into(), reason: reason.into() },
    );
    approval.metadata.namespace = provider.namespace();
    approval
}

/// The held plan as `approve` shows it before asking.
pub fn held_plan(provider: &MfaProvider, digest: &str) -> String {
    let status = provider.status.clone().unwrap_or_default();
    let mut out = format!(
        "MfaProvider {} holds a plan of {} revocation(s) for approval, digest {digest}:\n",
        ProviderKey::of(provider),
        status.blocked_revocations
    );
    let reason = provider
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "RevocationBudgetExceeded" && c.status == "True"))
        .map(|c| c.message.clone());
    if let Some(reason) = reason.filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "  ({reason})");
    }
    out.push_str(&revocation_table(&status.planned_revocations, "  "));
    let shown = status.planned_revocations.len();
    if (status.blocked_revocations as usize) > shown {
        let _ = writeln!(out, "  … the first {shown} shown; the digest covers all {}.", status.blocked_revocations);
    }
    out
}

pub fn question(approval: &RevocationApproval) -> String {
    format!(
        "Create RevocationApproval {} approving exactly this plan ({})? [y/N] ",
        approval.name_any(),
        approval.spec.digest
    )
}

/// Only an explicit yes approves.
pub fn confirmed(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub fn approval_created(approval: &RevocationApproval) -> String {
    format!(
        "revocationapproval.keyward.dev/{} created: MfaProvider {}/{} may carry out plan {} once",
        approval.name_any(),
        approval.namespace().unwrap_or_default(),
        approval.spec.provider,
        approval.spec.digest
    )
}

/// After `suspend` or `resume`, as kubectl reports a change.
pub fn suspended(provider: &MfaProvider) -> String {
    let what = if provider.spec.suspend { "suspended" } else { "resumed" };
    format!("mfaprovider.keyward.dev/{} {what} (namespace {})", provider.name_any(), namespace(provider))
}

/// A key of a Secret as text (`data`, or `stringData` on an object not yet stored).
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone()).ok();
    }
    secret.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

#[cfg(test)]
mod tests;

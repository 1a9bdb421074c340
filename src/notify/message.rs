//! What one sweep tells one notification target, and the bytes that carry it: pure.
//!
//! A sweep gives each target at most one notification, batching what the target asked for:
//! the enrolments revoked, the revocations that failed, the plan held for approval, the
//! revocations slower than the SLA. A failure and a held plan come back on every sweep until
//! someone acts; each is told once ([`Notification::keys`] are what the caller remembers as
//! told), so a plan held for a day is one message, not one per resync.
//!
//! The id is the SHA-256 of the content (the sweep's time included), so the same
//! notification sent again (after a timeout, a crash) carries the same id, and two different
//! notifications never share one.

use crate::audit::sha256_hex;
use crate::crd::mfa_provider::{NotificationEvent, NotificationTarget, SecretKeyRef};
use crate::engine::plan::Hold;
use crate::sweep::{ActionResult, SweepReport};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Each list of a notification names at most this many revocations; its count is complete.
/// A chat message of a thousand lines helps nobody, and a webhook body stays small.
pub const MAX_LISTED: usize = 50;

/// The CloudEvent `type` of a notification.
pub const EVENT_TYPE: &str = "dev.keyward.notification";

/// What a notification tells, as a webhook receives it (the CloudEvent's `data`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// `<namespace>/<name>` of the MfaProvider.
    pub provider: String,
    /// The target's name.
    pub target: String,
    /// When the sweep it tells about ended.
    pub time: DateTime<Utc>,
    /// The events it carries, in [`NotificationEvent`] order.
    pub events: Vec<NotificationEvent>,
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<Revocation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Revocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<BlockedPlan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla_breaches: Vec<SlaBreach>,
    /// What changed among the settings that can stop revocations, a line per field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings_changed: Vec<String>,
}

/// How many of each: the lists stop at [`MAX_LISTED`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub revoked: usize,
    pub failed: usize,
    pub blocked: usize,
    pub sla_breaches: usize,
}

/// One revocation, made or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    pub user: String,
    pub enrolment: String,
    pub kind: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee: Option<String>,
    /// The provider's error of a failed revocation; `already gone` for one found gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A plan held for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedPlan {
    /// What a RevocationApproval's `spec.digest` names to let it through.
    pub digest: String,
    pub revocations: usize,
    /// Why it is held. Without the revocations already made in the budget window, which
    /// change while the plan does not: the same held plan is told once.
    pub why: String,
}

/// A revocation that took longer than the SLA, from its trigger to its completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaBreach {
    pub reason: String,
    pub latency_seconds: f64,
    pub sla_seconds: f64,
}

/// How a target receives notifications, with the Secret keys it needs (never their values:
/// this is spooled to disk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "sink")]
pub enum Sink {
    /// `{"text": …}` to a Slack-compatible incoming webhook.
    Slack { url: SecretKeyRef },
    /// A structured-mode CloudEvent, signed when `hmac` is given.
    Webhook {
        url: SecretKeyRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hmac: Option<SecretKeyRef>,
    },
}

impl Sink {
    /// The target's sink; none for a target with neither block (the schema rejects it).
    pub fn of(target: &NotificationTarget) -> Option<Sink> {
        match (&target.slack, &target.webhook) {
            (Some(slack), _) => Some(Sink::Slack { url: slack.url_secret_ref.clone() }),
            (None, Some(hook)) => {
                Some(Sink::Webhook { url: hook.url_secret_ref.clone(), hmac: hook.hmac_secret_ref.clone() })
            }
            (None, None) => None,
        }
    }

    /// `slack` or `webhook`, as audit records name it.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Slack { .. } => "slack",
            Sink::Webhook { .. } => "webhook",
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Sink::Slack { .. } => "application/json",
            Sink::Webhook { .. } => crate::audit::cloudevents::CONTENT_TYPE,
        }
    }
}

/// One notification for one target, built from one sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub id: String,
    pub content: Content,
    /// What it tells that later sweeps would tell again (a failed revocation, a held plan):
    /// the caller remembers these and passes them back as told.
    pub keys: Vec<String>,
}

/// The notification `target` gets from `report`, if the sweep did anything it asked about.
/// `told`: whether a failure or held plan (by its key) was already told to this target.
pub fn build(
    target: &NotificationTarget,
    report: &SweepReport,
    sla: Duration,
    time: DateTime<Utc>,
    told: &dyn Fn(&str) -> bool,
) -> Option<Notification> {
    let mut content = Content {
        provider: report.plan.provider.clone(),
        target: target.name.clone(),
        time,
        events: Vec::new(),
        counts: Counts::default(),
        revoked: Vec::new(),
        failed: Vec::new(),
        blocked: None,
        sla_breaches: Vec::new(),
        settings_changed: Vec::new(),
    };
    let mut keys = Vec::new();
    let revocations = report.results.iter().filter(|r| r.action.action == crate::engine::ActionKind::Revoke);
    for r in revocations {
        match &r.result {
            ActionResult::Revoked | ActionResult::AlreadyGone if target.wants(NotificationEvent::Revoked) => {
                let gone = (r.result == ActionResult::AlreadyGone).then(|| "already gone".to_string());
                listed(&mut content.revoked, &mut content.counts.revoked, revocation(&r.action, gone));
            }
            ActionResult::Failed(error) if target.wants(NotificationEvent::Failed) => {
                let key = format!("failed/{}/{}", r.action.user, r.action.enrolment);
                if !told(&key) {
                    listed(&mut content.failed, &mut content.counts.failed, revocation(&r.action, Some(error.clone())));
                    keys.push(key);
                }
            }
            ActionResult::Blocked => content.counts.blocked += 1,
            _ => {}
        }
    }
    content.blocked = blocked_plan(report, content.counts.blocked, target, told);
    if content.blocked.is_none() {
        content.counts.blocked = 0;
    } else {
        keys.push(format!("blocked/{}", report.plan.digest));
    }
    if target.wants(NotificationEvent::SlaBreach) {
        for (reason, seconds) in report.latencies.iter().filter(|(_, s)| *s > sla.as_secs_f64()) {
            let breach =
                SlaBreach { reason: reason.to_string(), latency_seconds: *seconds, sla_seconds: sla.as_secs_f64() };
            listed(&mut content.sla_breaches, &mut content.counts.sla_breaches, breach);
        }
    }
    let c = &content.counts;
    content.events = [(c.revoked, NotificationEvent::Revoked), (c.failed, NotificationEvent::Failed)]
        .into_iter()
        .chain([(c.blocked, NotificationEvent::Blocked), (c.sla_breaches, NotificationEvent::SlaBreach)])
        .filter(|(n, _)| *n > 0)
        .map(|(_, event)| event)
        .collect();
    if content.events.is_empty() {
        return None;
    }
    Some(Notification { id: id(&content), content, keys })
}

/// The notification of a change to the settings that can stop revocations (`lines`, as
/// [`crate::engine::guarded::changes`] says it), when `target` wants it. Told once: the change
/// is recorded before keyward acts on it, and not seen again.
pub fn settings_changed(
    target: &NotificationTarget,
    provider: &str,
    lines: &[String],
    time: DateTime<Utc>,
) -> Option<Notification> {
    if lines.is_empty() || !target.wants(NotificationEvent::SettingsChanged) {
        return None;
    }
    let content = Content {
        provider: provider.to_string(),
        target: target.name.clone(),
        time,
        events: vec![NotificationEvent::SettingsChanged],
        counts: Counts::default(),
        revoked: Vec::new(),
        failed: Vec::new(),
        blocked: None,
        sla_breaches: Vec::new(),
        settings_changed: lines.to_vec(),
    };
    Some(Notification { id: id(&content), content, keys: Vec::new() })
}

/// The held plan, when the sweep held one, the target wants it and was not told yet.
fn blocked_plan(
    report: &SweepReport,
    revocations: usize,
    target: &NotificationTarget,
    told: &dyn Fn(&str) -> bool,
) -> Option<BlockedPlan> {
    let hold = report.plan.hold.as_ref()?;
    if revocations == 0 || !target.wants(NotificationEvent::Blocked) || told(&format!("blocked/{}", report.plan.digest))
    {
        return None;
    }
    let why = match hold {
        Hold::RevocationBudgetExceeded { revocations, limit, window, .. } => {
            format!("{revocations} revocations exceed the budget of {limit} per {window}")
        }
        Hold::EmptyDeclaredState { revocations } => format!(
            "no Employees or AccessGrants are declared for this provider, which would revoke {revocations} enrolments"
        ),
    };
    Some(BlockedPlan { digest: report.plan.digest.clone(), revocations, why })
}

fn revocation(action: &crate::engine::Action, detail: Option<String>) -> Revocation {
    Revocation {
        user: action.user.clone(),
        enrolment: action.enrolment.clone(),
        kind: action.kind.to_string(),
        reason: action.reason.to_string(),
        employee: action.employee.clone(),
        detail,
    }
}

/// Counts `item`, and lists it while the list is short.
fn listed<T>(list: &mut Vec<T>, count: &mut usize, item: T) {
    *count += 1;
    if list.len() < MAX_LISTED {
        list.push(item);
    }
}

/// The lower-case hex SHA-256 of the content's JSON.
pub fn id(content: &Content) -> String {
    // Serializing these plain structs cannot fail; an empty body would still hash uniquely
    // enough to be noticed, but it does not happen.
    sha256_hex(&serde_json::to_vec(content).unwrap_or_default())
}

/// The body `sink` receives.
pub fn body(notification: &Notification, sink: &Sink) -> Vec<u8> {
    match sink {
        Sink::Slack { .. } => slack_body(&notification.content),
        Sink::Webhook { .. } => cloud_event_body(&notification.id, &notification.content),
    }
}

/// A Slack-compatible incoming webhook's message: `{"text": …}`, in Slack's mrkdwn.
pub fn slack_body(content: &Content) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "text": slack_text(content) })).unwrap_or_default()
}

fn slack_text(c: &Content) -> String {
    let mut lines = vec![format!("*keyward* on `{}`:", escape(&c.provider))];
    let more = |listed: usize, count: usize| (count > listed).then(|| format!("• … and {} more", count - listed));
    if !c.settings_changed.is_empty() {
        lines.push("Settings that can stop revocations changed:".to_string());
        lines.extend(c.settings_changed.iter().map(|l| format!("• {}", escape(l))));
    }
    if c.counts.revoked > 0 {
        lines.push(format!("Revoked {}:", plural(c.counts.revoked, "enrolment")));
        lines.extend(c.revoked.iter().map(slack_line));
        lines.extend(more(c.revoked.len(), c.counts.revoked));
    }
    if c.counts.failed > 0 {
        lines.push(format!("{} failed:", plural(c.counts.failed, "revocation")));
        lines.extend(c.failed.iter().map(slack_line));
        lines.extend(more(c.failed.len(), c.counts.failed));
    }
    if let Some(plan) = &c.blocked {
        lines.push(format!(
            "Plan `{d}` holds {} for approval: {}. Approve it with a RevocationApproval whose spec.digest is {d}.",
            plural(plan.revocations, "revocation"),
            escape(&plan.why),
            d = escape(&plan.digest),
        ));
    }
    if c.counts.sla_breaches > 0 {
        let sla = c.sla_breaches.first().map_or(0.0, |b| b.sla_seconds);
        lines.push(format!(
            "{} took longer than the SLA of {}:",
            plural(c.counts.sla_breaches, "revocation"),
            span(sla)
        ));
        lines.extend(c.sla_breaches.iter().map(|b| format!("• {}: {}", escape(&b.reason), span(b.latency_seconds))));
        lines.extend(more(c.sla_breaches.len(), c.counts.sla_breaches));
    }
    lines.join("\n")
}

fn slack_line(r: &Revocation) -> String {
    let employee = r.employee.as_ref().map(|e| format!(" (Employee {})", escape(e))).unwrap_or_default();
    let detail = r.detail.as_ref().map(|d| format!(" — {}", escape(d))).unwrap_or_default();
    format!(
        "• {} {} of {}{employee}: {}{detail}",
        escape(&r.kind),
        escape(&r.enrolment),
        escape(&r.user),
        escape(&r.reason)
    )
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions): a user name must not ping
/// `<!channel>`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// Seconds as `1h 2m 3s`, to the second.
fn span(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.round().max(0.0) as u64)).to_string()
}

/// A structured-mode CloudEvent 1.0 whose `data` is the content.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: String,
    #[serde(rename = "type")]
    type_: &'static str,
    subject: &'a str,
    time: DateTime<Utc>,
    datacontenttype: &'static str,
    data: &'a Content,
}

pub fn cloud_event_body(id: &str, content: &Content) -> Vec<u8> {
    let event = CloudEvent {
        specversion: "1.0",
        id,
        source: format!("keyward/{}", content.provider),
        type_: EVENT_TYPE,
        subject: &content.provider,
        time: content.time,
        datacontenttype: "application/json",
        data: content,
    };
    serde_json::to_vec(&event).unwrap_or_default()
}

/// The header that carries [`signature`].
pub const SIGNATURE_HEADER: &str = "X-Keyward-Signature";

/// The `X-Keyward-Signature` of `body`: `sha256=` and the lower-case hex HMAC-SHA256 of the
/// exact bytes sent, keyed with `key`. (HMAC takes keys of any length; the error is the
/// crate's signature, never seen.)
pub fn signature(key: &[u8], body: &[u8]) -> Result<String, hmac::digest::InvalidLength> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)?;
    mac.update(body);
    Ok(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;

//! `spec.notifications` of an MfaProvider: where keyward tells people what it did there.
//! Part of the MfaProvider kind (a target belongs to one provider and has no life of its own);
//! in its own file because nothing else in the kind is about people rather than the provider.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// One receiver of the provider's notifications: a Slack-compatible incoming webhook or a
/// generic webhook that receives CloudEvents. Exactly one of `slack` and `webhook` is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.slack) != has(self.webhook)").message("a notification target needs exactly one of slack or webhook"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationTarget {
    /// The target's name, unique within the MfaProvider: audit records of its deliveries name
    /// it, and its undelivered notifications wait under it.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// A Slack (or Mattermost, Rocket.Chat …) incoming webhook: a JSON `{"text": …}` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackTarget>,
    /// A generic webhook: a CloudEvent 1.0 in structured mode, signed with HMAC-SHA256 when a
    /// key is given (docs/notifications.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// What to send: `Revoked` (enrolments revoked), `Failed` (revocations that failed),
    /// `Blocked` (a plan held for approval, once per plan), `SlaBreach` (revocations that took
    /// longer than the operator's revocation SLA), `SettingsChanged` (a setting that can stop
    /// revocations changed). Omitted (or empty): all five.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub events: Vec<NotificationEvent>,
}

/// A Slack-compatible incoming webhook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackTarget {
    /// The key of a Secret holding the webhook URL (it carries the webhook's token, so it is
    /// never written in the spec). The Secret needs the label `keyward.dev/credentials`.
    pub url_secret_ref: SecretKeyRef,
}

/// A generic webhook receiving CloudEvents.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTarget {
    /// The key of a Secret holding the webhook URL. The Secret needs the label
    /// `keyward.dev/credentials`.
    pub url_secret_ref: SecretKeyRef,
    /// The key of a Secret holding an HMAC key: each body is signed with HMAC-SHA256 in the
    /// header `X-Keyward-Signature: sha256=<hex>`. Omitted: unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret_ref: Option<SecretKeyRef>,
}

/// One key of a Secret in the MfaProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What a notification tells.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotificationEvent {
    /// Enrolments revoked (or found already gone).
    Revoked,
    /// Revocations that failed.
    Failed,
    /// A plan held for approval.
    Blocked,
    /// Revocations that took longer than the revocation SLA.
    SlaBreach,
    /// A setting that can stop revocations changed: `spec.suspend`, `spec.protectedUsers`,
    /// `spec.policy.mode` or `spec.policy.budget`.
    SettingsChanged,
}

impl NotificationEvent {
    /// As the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::Revoked => "Revoked",
            NotificationEvent::Failed => "Failed",
            NotificationEvent::Blocked => "Blocked",
            NotificationEvent::SlaBreach => "SlaBreach",
            NotificationEvent::SettingsChanged => "SettingsChanged",
        }
    }
}

impl NotificationTarget {
    /// Whether the target asked for `event` (all of them when `events` is omitted or empty).
    pub fn wants(&self, event: NotificationEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

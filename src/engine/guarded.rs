//! The MfaProvider settings that can stop revocations without revoking anything: suspending
//! the provider, protecting users, switching to Observe, changing the budget. The chart's
//! admission policy keeps them from editors; every change to them is an audit record and a
//! notification, so that stopping revocations is never quiet (docs/contract.md, rule 7).

use crate::crd::mfa_provider::{Budget, MfaProviderSpec, Mode};
use serde::{Deserialize, Serialize};

/// The guarded settings of one MfaProvider, as keyward last recorded them (the provider's
/// `status.guardedSettings`, JSON) or as its spec says now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardedSettings {
    pub suspend: bool,
    pub protected_users: Vec<String>,
    pub mode: Mode,
    pub budget: Budget,
}

impl GuardedSettings {
    pub fn of(spec: &MfaProviderSpec) -> Self {
        GuardedSettings {
            suspend: spec.suspend,
            protected_users: spec.protected_users.clone(),
            mode: spec.policy.mode,
            budget: spec.policy.budget.clone(),
        }
    }

    /// As stored in status: compact JSON.
    pub fn to_status(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// What status holds; `None` when it holds nothing keyward can read (never recorded, or
    /// written by another version): the current settings are then recorded as they are.
    pub fn from_status(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// What changed from `recorded` to `now`, a line per field (`spec.suspend: false → true`),
/// in a fixed order; empty when nothing did.
pub fn changes(recorded: &GuardedSettings, now: &GuardedSettings) -> Vec<String> {
    let mut out = Vec::new();
    if recorded.suspend != now.suspend {
        out.push(format!("spec.suspend: {} → {}", recorded.suspend, now.suspend));
    }
    if recorded.protected_users != now.protected_users {
        let added: Vec<&str> =
            now.protected_users.iter().filter(|u| !recorded.protected_users.contains(u)).map(String::as_str).collect();
        let removed: Vec<&str> =
            recorded.protected_users.iter().filter(|u| !now.protected_users.contains(u)).map(String::as_str).collect();
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!("added {}", added.join(", ")));
        }
        if !removed.is_empty() {
            parts.push(format!("removed {}", removed.join(", ")));
        }
        if parts.is_empty() {
            parts.push("reordered".into());
        }
        out.push(format!("spec.protectedUsers: {}", parts.join("; ")));
    }
    if recorded.mode != now.mode {
        out.push(format!("spec.policy.mode: {:?} → {:?}", recorded.mode, now.mode));
    }
    if recorded.budget != now.budget {
        let show = |b: &Budget| {
            let percent = b.max_percent.map(|p| format!(", maxPercent {p}")).unwrap_or_default();
            format!("maxRevocations {}{percent}, window {}", b.max_revocations, b.window.as_deref().unwrap_or("1h"))
        };
        out.push(format!("spec.policy.budget: {} → {}", show(&recorded.budget), show(&now.budget)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GuardedSettings {
        GuardedSettings {
            suspend: false,
            protected_users: vec!["breakglass".into()],
            mode: Mode::Enforce,
            budget: serde_json::from_value(serde_json::json!({})).expect("default budget"),
        }
    }

    #[test]
    fn each_guarded_field_that_changed_is_named_with_before_and_after() {
        let before = settings();
        assert!(changes(&before, &before).is_empty());
        let mut after = before.clone();
        after.suspend = true;
        after.protected_users = vec!["erin".into()];
        after.mode = Mode::Observe;
        after.budget.max_revocations = 0;
        assert_eq!(
            changes(&before, &after),
            [
                "spec.suspend: false → true",
                "spec.protectedUsers: added erin; removed breakglass",
                "spec.policy.mode: Enforce → Observe",
                "spec.policy.budget: maxRevocations 25, window 1h → maxRevocations 0, window 1h",
            ]
        );
    }

    #[test]
    fn status_keeps_the_settings_and_ignores_what_it_cannot_read() {
        let s = settings();
        assert_eq!(GuardedSettings::from_status(&s.to_status()), Some(s));
        assert_eq!(GuardedSettings::from_status("not json"), None);
    }
}

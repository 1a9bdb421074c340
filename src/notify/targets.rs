//! Which of an MfaProvider's notification targets keyward would refuse to post to, and why:
//! the same checks a delivery makes (https only, never link-local, the notification host
//! allowlist; `crate::outbound`), made when the provider is swept, so that a refused target
//! shows on the MfaProvider (condition `NotificationTargetsRefused`, a Warning Event) and not
//! only as `undeliverable` records in the audit log.

use super::delivery::SecretSource;
use super::message::Sink;
use crate::crd::MfaProvider;
use crate::outbound::HostAllowlist;

/// One line per refused target, `<name>: <why>` (the host only, never the URL: its path is
/// the webhook's credential). A target whose Secret is missing is not refused here: the
/// delivery reports that itself, and the Secret may come with the next commit.
pub fn refused(provider: &MfaProvider, secrets: &dyn SecretSource, hosts: &HostAllowlist) -> Vec<String> {
    let namespace = kube::ResourceExt::namespace(provider).unwrap_or_default();
    let mut out = Vec::new();
    for target in &provider.spec.notifications {
        let Some(sink) = Sink::of(target) else { continue };
        let url_ref = match &sink {
            Sink::Slack { url } | Sink::Webhook { url, .. } => url,
        };
        let Some(text) = secrets.value(&namespace, &url_ref.name, &url_ref.key) else { continue };
        let refusal = match url::Url::parse(text.trim()) {
            Err(e) => Some(format!("its URL (Secret {}, key {}) does not parse: {e}", url_ref.name, url_ref.key)),
            Ok(url) => crate::outbound::check_with(&url, hosts).err(),
        };
        if let Some(why) = refusal {
            out.push(format!("{}: {why}", target.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Secrets(HashMap<(String, String), String>);
    impl SecretSource for Secrets {
        fn value(&self, _: &str, name: &str, key: &str) -> Option<String> {
            self.0.get(&(name.to_string(), key.to_string())).cloned()
        }
    }

    #[test]
    fn each_target_keyward_would_not_post_to_is_named_with_why() {
        let provider: MfaProvider = serde_json::from_value(serde_json::json!({
            "apiVersion": "keyward.dev/v1alpha1", "kind": "MfaProvider",
            "metadata": {"name": "corp-pi", "namespace": "acme"},
            "spec": {
                "privacyidea": {"url": "https://pi.acme.example", "realm": "corp", "credentials": {"secretRef": {"name": "pi"}}},
                "notifications": [
                    {"name": "slack", "slack": {"urlSecretRef": {"name": "hooks", "key": "slack"}}},
                    {"name": "metadata", "webhook": {"urlSecretRef": {"name": "hooks", "key": "metadata"}}},
                    {"name": "plain", "webhook": {"urlSecretRef": {"name": "hooks", "key": "plain"}}},
                    {"name": "elsewhere", "webhook": {"urlSecretRef": {"name": "hooks", "key": "elsewhere"}}},
                    {"name": "not-yet", "webhook": {"urlSecretRef": {"name": "later", "key": "url"}}},
                ]
            }
        }))
        .expect("provider");
        let entry = |k: &str, v: &str| (("hooks".to_string(), k.to_string()), v.to_string());
        let secrets = Secrets(HashMap::from([
            entry("slack", "https://hooks.slack.com/services/T0/B0/SECRETPATH\n"),
            entry("metadata", "https://169.254.169.254/latest/meta-data"),
            entry("plain", "http://siem.acme.example/hook"),
            entry("elsewhere", "https://collector.attacker.example/hook"),
        ]));
        let hosts = HostAllowlist::only(&["hooks.slack.com", "siem.acme.example"]).expect("list");
        let refused = refused(&provider, &secrets, &hosts);
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused[0].starts_with("metadata: 169.254.169.254: a link-local"), "{refused:?}");
        assert!(refused[1].starts_with("plain: http://siem.acme.example: only https"), "{refused:?}");
        assert!(
            refused[2].starts_with("elsewhere: collector.attacker.example is not on the notification host allowlist")
        );
        assert!(refused.iter().all(|r| !r.contains("SECRETPATH") && !r.contains("/hook")), "never the URL's path");
    }
}

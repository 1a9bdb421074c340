//! Which factor kinds each provider can report at all. A grant for a kind its provider never
//! reports entitles nobody — `totp` on Google Workspace, which reports one `2sv` per user —
//! and the enrolments its author meant to keep would be revoked as `NotEntitled`. `validate`,
//! the AccessGrant's status and the operator name such kinds.

use crate::crd::FactorKind;
use crate::crd::mfa_provider::ProviderBlock;

/// The kinds a provider reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// Any kind: privacyIDEA names kinds after its token types, plugins included.
    Any,
    /// These kinds, and those starting with one of `prefixes` (types named after themselves).
    Only { kinds: &'static [&'static str], prefixes: &'static [&'static str] },
}

impl Reported {
    pub fn of(block: &ProviderBlock<'_>) -> Reported {
        block.spec().reported()
    }

    pub fn contains(&self, kind: &FactorKind) -> bool {
        match self {
            Reported::Any => true,
            Reported::Only { kinds, prefixes } => {
                kinds.contains(&kind.as_str()) || prefixes.iter().any(|p| kind.as_str().starts_with(p))
            }
        }
    }

    /// The kinds of `factors` this provider never reports, in their order, each once.
    pub fn never_reported(&self, factors: &[FactorKind]) -> Vec<FactorKind> {
        let mut never: Vec<FactorKind> = Vec::new();
        for kind in factors.iter().filter(|k| !self.contains(k)) {
            if !never.contains(kind) {
                never.push(kind.clone());
            }
        }
        never
    }

    /// The sentence that names `never` for a grant on a provider of `block`'s type.
    pub fn message(&self, block: &ProviderBlock<'_>, never: &[FactorKind]) -> String {
        let names: Vec<String> = never.iter().map(|k| format!("`{k}`")).collect();
        let reported = match self {
            Reported::Any => String::new(),
            Reported::Only { kinds, prefixes } => {
                let mut all: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
                all.extend(prefixes.iter().map(|p| format!("`{p}…`")));
                all.join(", ")
            }
        };
        format!(
            "{} never reports {} {}, so this grant entitles nobody to {}; it reports {reported}",
            provider_type(block),
            if never.len() == 1 { "the factor kind" } else { "the factor kinds" },
            names.join(", "),
            if never.len() == 1 { "it" } else { "them" },
        )
    }
}

/// The provider's product name, for messages.
pub fn provider_type(block: &ProviderBlock<'_>) -> &'static str {
    block.spec().product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_reports_only_2sv_and_privacyidea_anything() {
        let provider: crate::crd::MfaProvider = serde_yaml::from_str(
            "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {name: g, namespace: acme}\nspec:\n  googleWorkspace:\n    customer: my_customer\n    adminEmail: admin@acme.example\n    credentials: {secretRef: {name: g}}\n",
        )
        .expect("provider");
        let block = provider.spec.block().expect("block");
        let reported = Reported::of(&block);
        let factors: Vec<FactorKind> = ["totp", "2sv", "totp", "webauthn"].map(FactorKind::new).to_vec();
        let never = reported.never_reported(&factors);
        assert_eq!(never, ["totp", "webauthn"].map(FactorKind::new));
        let message = reported.message(&block, &never);
        assert!(message.contains("never reports the factor kinds `totp`, `webauthn`"), "{message}");
        assert!(message.ends_with("it reports `2sv`"), "{message}");
        assert!(Reported::Any.never_reported(&factors).is_empty());
        let duo =
            Reported::Only { kinds: crate::providers::duo::KINDS, prefixes: crate::providers::duo::KIND_PREFIXES };
        assert!(duo.contains(&FactorKind::new("token-x9")) && !duo.contains(&FactorKind::new("2sv")));
    }
}

//! Okta factor types onto keyward's factor kinds (docs/providers.md, "Okta").

use crate::crd::FactorKind;

/// Every kind [`kind_of`] gives a factor type Okta documents, and the kind of a third-party
/// `web` factor seen in practice (Duo through Okta). Unknown future types keep their own name.
pub const KINDS: &[&str] = &[
    "totp",
    "hotp",
    "yubikey",
    "hardware-token",
    "push",
    "fastpass",
    "sms",
    "voice",
    "email",
    "question",
    "webauthn",
    "u2f",
    "duo",
    crate::engine::inventory::UNLISTED_KIND,
];

/// `factorType` (and `provider` where the type alone is ambiguous) to a kind.
pub fn kind_of(factor_type: &str, provider: &str) -> FactorKind {
    let provider = provider.to_ascii_lowercase();
    FactorKind::new(match factor_type.to_ascii_lowercase().as_str() {
        "token:software:totp" => "totp",
        // Okta's "Custom OTP" authenticator.
        "token:hotp" => "hotp",
        "token:hardware" if provider == "yubico" => "yubikey",
        "token:hardware" | "token" => "hardware-token",
        "push" => "push",
        // Okta Verify FastPass.
        "signed_nonce" => "fastpass",
        "sms" => "sms",
        "call" => "voice",
        "email" => "email",
        "question" => "question",
        "webauthn" => "webauthn",
        "u2f" => "u2f",
        // `web` is a third-party factor (e.g. Duo) shown through Okta: named after its provider.
        "web" if !provider.is_empty() => return FactorKind::new(&provider),
        other => return FactorKind::new(&other.replace(':', "-")),
    })
}

/// Kinds whose unenrolment also unenrolls the user's other Okta Verify factors (`push` and
/// `signed_nonce`; reference §2, pitfall 2).
pub fn cascades(kind: &str) -> bool {
    matches!(kind, "push" | "fastpass")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_types_map_to_kinds() {
        for (t, p, k) in [
            ("token:software:totp", "OKTA", "totp"),
            ("token:software:totp", "GOOGLE", "totp"),
            ("token:hotp", "CUSTOM", "hotp"),
            ("token:hardware", "YUBICO", "yubikey"),
            ("token", "RSA", "hardware-token"),
            ("push", "OKTA", "push"),
            ("signed_nonce", "OKTA", "fastpass"),
            ("sms", "OKTA", "sms"),
            ("call", "OKTA", "voice"),
            ("email", "OKTA", "email"),
            ("webauthn", "FIDO", "webauthn"),
            ("u2f", "FIDO", "u2f"),
            ("web", "DUO", "duo"),
            ("claims_provider", "CUSTOM", "claims_provider"),
        ] {
            assert_eq!(kind_of(t, p), FactorKind::new(k), "{t} {p}");
            assert!(kind_of(t, p).is_well_formed());
            assert!(KINDS.contains(&k) || t == "claims_provider", "{k} is missing from KINDS");
        }
    }
}

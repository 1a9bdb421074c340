//! privacyIDEA token types onto keyward's factor kinds (docs/contract.md, "Canonical shapes").

use crate::crd::FactorKind;

/// `webauthn` and `passkey` are both FIDO credentials; every other type keeps its own
/// lower-case name (`totp`, `hotp`, `sms`, `email`, `push`, `yubikey`, `paper`, …).
pub fn kind_of(tokentype: &str) -> FactorKind {
    match tokentype.to_ascii_lowercase().as_str() {
        "passkey" => FactorKind::new("webauthn"),
        other => FactorKind::new(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_kinds() {
        for (t, k) in [
            ("totp", "totp"),
            ("HOTP", "hotp"),
            ("webauthn", "webauthn"),
            ("passkey", "webauthn"),
            ("sms", "sms"),
            ("email", "email"),
            ("push", "push"),
            ("yubikey", "yubikey"),
        ] {
            assert_eq!(kind_of(t), FactorKind::new(k), "{t}");
        }
    }
}

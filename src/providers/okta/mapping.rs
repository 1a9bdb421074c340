//! Okta factor types onto keyward's factor kinds (docs/providers.md, "Okta").

use crate::crd::FactorKind;

/// Every kind [`kind_of`] gives a factor type Okta documents, and the kind of a third-party
/// `web` factor seen in practice (Duo through Okta). Unknown future types keep their own name.
pub const KINDS: &[&str] = &[
    "totp",
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
        // Despite its name, Okta's "Custom TOTP" factor (the specification's
        // `UserFactorTokenHOTP.factorProfileId`: "an existing Custom TOTP factor profile"): a
        // time-based code, so a `totp` grant covers it.
        "token:hotp" => "totp",
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

/// What a factor's `status` means to keyward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorState {
    /// Held and usable, or on its way (`PENDING_ACTIVATION`, e.g. keyward's own invitation,
    /// counts as held so that a Required kind is not invited every sweep).
    Active,
    /// Held but not usable now: still an enrolment, revoked when not entitled.
    Inactive,
    /// Listed by the catalog, not enrolled (`NOT_SETUP`).
    NotEnrolled,
    /// A status Okta's specification does not list: treated as held, not usable.
    Unknown,
}

/// `UserFactorStatus` to a [`FactorState`].
pub fn factor_state(status: &str) -> FactorState {
    match status {
        "ACTIVE" | "ENROLLED" | "PENDING_ACTIVATION" => FactorState::Active,
        "DISABLED" | "EXPIRED" | "INACTIVE" => FactorState::Inactive,
        "NOT_SETUP" => FactorState::NotEnrolled,
        _ => FactorState::Unknown,
    }
}

/// Whether a `UserStatus` is a deactivated user, whose factors can be neither used nor
/// unenrolled; `None` for a status the specification does not list (read like any user).
pub fn user_deprovisioned(status: &str) -> Option<bool> {
    match status {
        "DEPROVISIONED" => Some(true),
        "ACTIVE" | "LOCKED_OUT" | "PASSWORD_EXPIRED" | "PROVISIONED" | "RECOVERY" | "STAGED" | "SUSPENDED" => {
            Some(false)
        }
        _ => None,
    }
}

/// Kinds whose unenrolment also unenrolls other factors of the user (`push` and
/// `signed_nonce`, as Okta's API reference says; docs/providers.md, "Okta").
pub fn cascades(kind: &str) -> bool {
    matches!(kind, "push" | "fastpass")
}

/// Whether unenrolling push or FastPass takes this factor along. Okta's specification
/// (`unenrollFactor`): "Okta also unenrolls any other `totp`, `signed_nonce`, or Okta Verify
/// `push` factors associated with the user" — `totp` of any provider, Google Authenticator's
/// included: the wording does not limit it to Okta Verify, and counting a factor that stays is
/// safe (the push waits), while missing one that goes is not. For the same reason Custom TOTP
/// (`token:hotp`, a TOTP in all but its type name, reported as `totp`) is counted: whether the
/// cascade takes it is not written down, and a push revoked on the guess that it does not
/// could take an entitled factor.
pub fn taken_by_cascade(factor_type: &str, provider: &str) -> bool {
    match factor_type {
        "token:software:totp" | "token:hotp" | "signed_nonce" => true,
        "push" => provider.eq_ignore_ascii_case("OKTA"),
        _ => false,
    }
}

/// Factor types whose phone number is also a recovery method: unenrolled with
/// `removeRecoveryEnrollment=true`, or the leaver can still reset a password by SMS or call.
pub fn has_recovery_phone(kind: &str) -> bool {
    matches!(kind, "sms" | "voice")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every factor a `totp` grant keeps is counted among what a push or FastPass unenrolment
    /// takes: otherwise the push is revoked and takes the entitled factor with it.
    #[test]
    fn every_factor_reported_as_totp_is_counted_in_the_cascade() {
        for (factor_type, provider) in
            [("token:software:totp", "OKTA"), ("token:software:totp", "GOOGLE"), ("token:hotp", "CUSTOM")]
        {
            assert_eq!(kind_of(factor_type, provider).as_str(), "totp");
            assert!(taken_by_cascade(factor_type, provider), "{factor_type} from {provider}");
        }
        assert!(!taken_by_cascade("sms", "OKTA") && !taken_by_cascade("webauthn", "FIDO"));
    }

    #[test]
    fn factor_types_map_to_kinds() {
        for (t, p, k) in [
            ("token:software:totp", "OKTA", "totp"),
            ("token:software:totp", "GOOGLE", "totp"),
            ("token:hotp", "CUSTOM", "totp"),
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

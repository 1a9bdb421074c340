//! Duo devices onto keyward's factor kinds (docs/providers.md, "Duo").

use crate::crd::FactorKind;

/// Every kind Duo's devices map to; hardware tokens of a type Duo adds later are `token-<type>`.
pub const KINDS: &[&str] =
    &["push", "sms", "voice", "hotp", "totp", "yubikey", "duo-token", "webauthn", "u2f", BYPASS, BYPASS_CODE];

/// A user in `bypass` status passes Duo with no device at all: held like an enrolment (one per
/// user), revoked by setting the user back to `active`, kept only when a grant names it. A
/// member of a group in `bypass` status passes Duo the same way: one enrolment of this kind per
/// such group, which keyward cannot revoke (the status is the whole group's).
pub const BYPASS: &str = "bypass";
/// A bypass code: a one-time (or few-times) second factor an admin handed out.
pub const BYPASS_CODE: &str = "bypass-code";

/// What a Duo user's `status` means to keyward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// Authenticates with its devices.
    Active,
    /// Authenticates without a second factor: the status itself is an enrolment.
    Bypass,
    /// Cannot authenticate (`disabled`, `pending deletion`); devices stay until removed.
    Disabled,
    /// Locked out by Duo after failed attempts; its devices work again once unlocked.
    LockedOut,
    /// A status Duo's client does not list: devices read like an active user's.
    Unknown,
}

pub fn user_status(status: &str) -> UserStatus {
    match status.to_ascii_lowercase().as_str() {
        "active" => UserStatus::Active,
        "bypass" => UserStatus::Bypass,
        "disabled" | "pending deletion" => UserStatus::Disabled,
        "locked out" => UserStatus::LockedOut,
        _ => UserStatus::Unknown,
    }
}
/// Whether a group's `status` lets every member pass Duo without a second factor. Duo's
/// client documents a group's status as `active`, `disabled` or `bypass`; its documentation
/// shows it capitalized (`"Bypass"`), so case is ignored.
pub fn group_in_bypass(status: &str) -> bool {
    status.eq_ignore_ascii_case("bypass")
}

/// Prefixes of the kinds named after a provider type keyward does not know yet.
pub const KIND_PREFIXES: &[&str] = &["token-"];

/// A phone is one device that may do several things; it is classified by the strongest: an
/// activated Duo Mobile that can receive pushes is `push`, any other mobile `sms`, a landline
/// `voice`.
pub fn phone_kind(phone_type: &str, activated: bool, capabilities: &[String]) -> FactorKind {
    let push = activated && capabilities.iter().any(|c| c == "push");
    FactorKind::new(match phone_type.to_ascii_lowercase().as_str() {
        _ if push => "push",
        "landline" => "voice",
        _ => "sms",
    })
}

/// Everything else the same phone does, from its `capabilities` (`push`, `sms`, `phone`,
/// `mobile_otp`): a phone swap or a re-activation flips its strongest kind between `push` and
/// `sms`, so a grant for either must keep the device.
pub fn phone_also(phone_type: &str, activated: bool, capabilities: &[String]) -> Vec<FactorKind> {
    let has = |c: &str| capabilities.iter().any(|k| k == c);
    let mut also = Vec::new();
    if activated && has("push") {
        also.push(FactorKind::new("push"));
    }
    if has("sms") || (phone_type.eq_ignore_ascii_case("mobile") && !has("push")) {
        also.push(FactorKind::new("sms"));
    }
    if has("phone") {
        also.push(FactorKind::new("voice"));
    }
    also
}

/// Hardware token `type`: `h6`/`h8` HOTP, `t6`/`t8` TOTP, `yk` YubiKey (OTP mode), `d1` Duo
/// D-100; others by their own name.
pub fn token_kind(token_type: &str) -> FactorKind {
    FactorKind::new(match token_type.to_ascii_lowercase().as_str() {
        "h6" | "h8" => "hotp",
        "t6" | "t8" => "totp",
        "yk" => "yubikey",
        "d1" => "duo-token",
        other => return FactorKind::new(&format!("token-{other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_map_to_kinds() {
        let push = vec!["push".to_string(), "sms".to_string()];
        assert_eq!(phone_kind("mobile", true, &push), FactorKind::new("push"));
        assert_eq!(phone_kind("mobile", false, &push), FactorKind::new("sms"));
        assert_eq!(phone_kind("landline", false, &[]), FactorKind::new("voice"));
        let all = vec!["push".to_string(), "sms".to_string(), "phone".to_string()];
        let kinds = |v: Vec<FactorKind>| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(kinds(phone_also("mobile", true, &all)), ["push", "sms", "voice"]);
        assert_eq!(kinds(phone_also("mobile", false, &all)), ["sms", "voice"], "not activated: no push");
        assert_eq!(kinds(phone_also("landline", false, &["phone".to_string()])), ["voice"]);
        for (t, k) in
            [("h6", "hotp"), ("h8", "hotp"), ("t6", "totp"), ("yk", "yubikey"), ("d1", "duo-token"), ("x", "token-x")]
        {
            assert_eq!(token_kind(t), FactorKind::new(k), "{t}");
            assert!(KINDS.contains(&k) || KIND_PREFIXES.iter().any(|p| k.starts_with(p)), "{k}");
        }
    }
}

//! Microsoft Graph v1.0 authentication method types onto keyward's factor kinds, and how each
//! is deleted (docs/providers.md, "Entra ID"). The table is public so that the contract tests
//! (`tests/contracts/entra.rs`) can check it against the facts recorded from Graph's v1.0
//! metadata: every type derived from `authenticationMethod` has a row, and every delete path
//! is one the metadata (or, where it lags, the v1.0 API reference) declares.

use crate::crd::FactorKind;

/// How a method type is deleted under `/users/{id}/authentication/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// `DELETE {collection}/{method id}`: a contained collection of `authentication`.
    Collection(&'static str),
    /// `DELETE {singleton}`: a user holds at most one such method (no id in the path).
    Singleton(&'static str),
    /// Not a second factor keyward manages (the password, which Graph marks not deletable).
    NotManaged,
}

/// One Graph method type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodType {
    /// `@odata.type` without the `#microsoft.graph.` prefix.
    pub odata_type: &'static str,
    /// The keyward kind (a phone's kind depends on its `phoneType`: see [`method`]).
    pub kind: &'static str,
    pub removal: Removal,
}

const fn row(odata_type: &'static str, kind: &'static str, removal: Removal) -> MethodType {
    MethodType { odata_type, kind, removal }
}

/// Every method type of Graph v1.0. Hardware OATH tokens are absent on purpose: v1.0 has no
/// `hardwareOathAuthenticationMethod` type nor a collection for them (beta only), so a v1.0
/// listing never reports one; should one appear, it is listed under its own name and its
/// revocation fails naming the type.
pub const METHODS: &[MethodType] = &[
    row("passwordAuthenticationMethod", "password", Removal::NotManaged),
    row("microsoftAuthenticatorAuthenticationMethod", "push", Removal::Collection("microsoftAuthenticatorMethods")),
    row("softwareOathAuthenticationMethod", "totp", Removal::Collection("softwareOathMethods")),
    row("fido2AuthenticationMethod", "webauthn", Removal::Collection("fido2Methods")),
    row("phoneAuthenticationMethod", "sms", Removal::Collection("phoneMethods")),
    row("emailAuthenticationMethod", "email", Removal::Collection("emailMethods")),
    row(
        "windowsHelloForBusinessAuthenticationMethod",
        "windows-hello",
        Removal::Collection("windowsHelloForBusinessMethods"),
    ),
    row("temporaryAccessPassAuthenticationMethod", "tap", Removal::Collection("temporaryAccessPassMethods")),
    row(
        "platformCredentialAuthenticationMethod",
        "platform-credential",
        Removal::Collection("platformCredentialMethods"),
    ),
    // A third-party MFA provider linked to Entra (external authentication methods). The
    // collection is contained, so the method is deleted on its own path, not through `$ref`.
    row("externalAuthenticationMethod", "external", Removal::Collection("externalAuthenticationMethods")),
    // QR code + PIN (frontline workers): one per user, deleted as a whole (both QR codes and
    // the PIN) through the singleton.
    row("qrCodePinAuthenticationMethod", "qr-code-pin", Removal::Singleton("qrCodePinMethod")),
];

/// The `phoneType`s whose phone takes voice calls only (Graph v1.0 `authenticationPhoneType`:
/// "alternateMobile: usable only for voice calls", "office: usable only for voice calls"):
/// reported as `voice`. Any other phone (`mobile`, or a type Graph adds later) is reported as
/// `sms` that also provides `voice`, so a grant for either keeps it.
pub const VOICE_ONLY_PHONE_TYPES: &[&str] = &["alternateMobile", "office"];
/// The `phoneType` Graph refuses to delete while the user's other phones remain.
pub const PRIMARY_PHONE_TYPE: &str = "mobile";

/// Every kind [`method`] gives a method type Graph v1.0 documents. A type added later keeps its
/// own name.
pub const KINDS: &[&str] = &[
    "push",
    "totp",
    "webauthn",
    "voice",
    "sms",
    "email",
    "windows-hello",
    "tap",
    "platform-credential",
    "external",
    "qr-code-pin",
];

/// The row of an `@odata.type` (with or without the `#microsoft.graph.` prefix).
pub fn method_type(odata_type: &str) -> Option<&'static MethodType> {
    let name = odata_type.trim_start_matches("#microsoft.graph.");
    METHODS.iter().find(|m| m.odata_type == name)
}

/// `@odata.type` → (kind, how it is deleted). `None` for what keyward does not manage (the
/// password). A type added after this table is listed under its own name with no removal
/// (`Removal::NotManaged` never reaches here for it): deleting it fails naming the type.
pub fn method(odata_type: &str, phone_type: Option<&str>) -> Option<(FactorKind, Option<Removal>)> {
    let Some(row) = method_type(odata_type) else {
        let name = odata_type.trim_start_matches("#microsoft.graph.");
        let kind = name.trim_end_matches("AuthenticationMethod").to_ascii_lowercase();
        return Some((FactorKind::new(if kind.is_empty() { "unknown" } else { &kind }), None));
    };
    match row.removal {
        Removal::NotManaged => None,
        removal if row.odata_type == "phoneAuthenticationMethod" => {
            let voice_only =
                phone_type.is_some_and(|t| VOICE_ONLY_PHONE_TYPES.iter().any(|v| t.eq_ignore_ascii_case(v)));
            Some((FactorKind::new(if voice_only { "voice" } else { "sms" }), Some(removal)))
        }
        removal => Some((FactorKind::new(row.kind), Some(removal))),
    }
}

/// Other kinds one method provides: Microsoft Authenticator approves sign-ins by push and also
/// shows TOTP codes, so a TOTP grant keeps it (it is not listed a second time as a software
/// OATH method). An `sms` method is a phone that is not voice-only (the `mobile` one): Graph
/// documents it "usable for SMS and voice calls", so a voice grant keeps it too.
pub fn also(kind: &FactorKind) -> Vec<FactorKind> {
    match kind.as_str() {
        "push" => vec![FactorKind::new("totp")],
        "sms" => vec![FactorKind::new("voice")],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_types_map_to_kinds_and_removals() {
        let m = |t: &str, p: Option<&str>| method(&format!("#microsoft.graph.{t}"), p).map(|(k, r)| (k.to_string(), r));
        let collection = |c| Some(Removal::Collection(c));
        assert_eq!(m("passwordAuthenticationMethod", None), None);
        assert_eq!(
            m("microsoftAuthenticatorAuthenticationMethod", None),
            Some(("push".into(), collection("microsoftAuthenticatorMethods")))
        );
        assert_eq!(
            m("softwareOathAuthenticationMethod", None),
            Some(("totp".into(), collection("softwareOathMethods")))
        );
        assert_eq!(m("fido2AuthenticationMethod", None), Some(("webauthn".into(), collection("fido2Methods"))));
        assert_eq!(m("phoneAuthenticationMethod", Some("mobile")), Some(("sms".into(), collection("phoneMethods"))));
        assert_eq!(
            m("phoneAuthenticationMethod", Some("alternateMobile")),
            Some(("voice".into(), collection("phoneMethods")))
        );
        assert_eq!(m("phoneAuthenticationMethod", Some("office")), Some(("voice".into(), collection("phoneMethods"))));
        assert_eq!(
            m("externalAuthenticationMethod", None),
            Some(("external".into(), collection("externalAuthenticationMethods")))
        );
        assert_eq!(
            m("qrCodePinAuthenticationMethod", None),
            Some(("qr-code-pin".into(), Some(Removal::Singleton("qrCodePinMethod"))))
        );
        // Not a v1.0 type: listed under its own name, with no way to delete it.
        assert_eq!(m("hardwareOathAuthenticationMethod", None), Some(("hardwareoath".into(), None)));
        assert_eq!(m("futureThingAuthenticationMethod", None), Some(("futurething".into(), None)));
    }

    /// Graph v1.0 `authenticationPhoneType`: the mobile phone takes SMS and voice calls, the
    /// alternate mobile and office phones voice calls only. A voice grant keeps the mobile
    /// phone; an SMS grant does not keep a voice-only one.
    #[test]
    fn phones_provide_what_their_phone_type_is_usable_for() {
        let kinds = |phone_type: &str| {
            let (kind, _) = method("#microsoft.graph.phoneAuthenticationMethod", Some(phone_type)).expect("phone");
            let mut kinds: Vec<String> =
                std::iter::once(kind.to_string()).chain(also(&kind).iter().map(|k| k.to_string())).collect();
            kinds.sort();
            kinds
        };
        assert_eq!(kinds("mobile"), ["sms", "voice"]);
        assert_eq!(kinds("alternateMobile"), ["voice"]);
        assert_eq!(kinds("office"), ["voice"]);
        // A phone type Graph adds later may take SMS: it is kept under either grant.
        assert_eq!(kinds("unknownFutureValue"), ["sms", "voice"]);
    }

    #[test]
    fn kinds_are_exactly_what_the_table_reports() {
        let mut reported: Vec<&str> =
            METHODS.iter().filter(|m| m.removal != Removal::NotManaged).map(|m| m.kind).collect();
        reported.push("voice"); // an alternate mobile or office phone
        reported.sort_unstable();
        reported.dedup();
        let mut kinds = KINDS.to_vec();
        kinds.sort_unstable();
        assert_eq!(kinds, reported);
    }
}

//! Microsoft Graph authentication method types onto keyward's factor kinds, and the
//! collection each is deleted through (docs/providers.md, "Entra ID").

use crate::crd::FactorKind;

/// Every kind [`method`] gives a method type Graph v1.0 documents. A type added later keeps its
/// own name.
pub const KINDS: &[&str] =
    &["push", "totp", "webauthn", "voice", "sms", "email", "windows-hello", "tap", "platform-credential"];

/// `@odata.type` → (kind, collection under `/users/{id}/authentication/`). `None` for the
/// password, which is not a second factor and cannot be deleted.
pub fn method(odata_type: &str, phone_type: Option<&str>) -> Option<(FactorKind, &'static str)> {
    let name = odata_type.trim_start_matches("#microsoft.graph.");
    let (kind, collection) = match name {
        "passwordAuthenticationMethod" => return None,
        "microsoftAuthenticatorAuthenticationMethod" => ("push", "microsoftAuthenticatorMethods"),
        "softwareOathAuthenticationMethod" => ("totp", "softwareOathMethods"),
        "hardwareOathAuthenticationMethod" => ("totp", "hardwareOathMethods"),
        "fido2AuthenticationMethod" => ("webauthn", "fido2Methods"),
        "phoneAuthenticationMethod" if phone_type.is_some_and(|t| t.eq_ignore_ascii_case("office")) => {
            ("voice", "phoneMethods")
        }
        "phoneAuthenticationMethod" => ("sms", "phoneMethods"),
        "emailAuthenticationMethod" => ("email", "emailMethods"),
        "windowsHelloForBusinessAuthenticationMethod" => ("windows-hello", "windowsHelloForBusinessMethods"),
        "temporaryAccessPassAuthenticationMethod" => ("tap", "temporaryAccessPassMethods"),
        "platformCredentialAuthenticationMethod" => ("platform-credential", "platformCredentialMethods"),
        other => {
            // A type added after this table: listed under its own name; deleting it fails with
            // a message naming the type rather than guessing a path.
            let kind = other.trim_end_matches("AuthenticationMethod").to_ascii_lowercase();
            return Some((FactorKind::new(if kind.is_empty() { "unknown" } else { &kind }), ""));
        }
    };
    Some((FactorKind::new(kind), collection))
}

/// Other kinds one method provides: Microsoft Authenticator approves sign-ins by push and also
/// shows TOTP codes, so a TOTP grant keeps it (it is not listed a second time as a software
/// OATH method).
pub fn also(kind: &FactorKind) -> Vec<FactorKind> {
    match kind.as_str() {
        "push" => vec![FactorKind::new("totp")],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: &[&str] = &[
        "passwordAuthenticationMethod",
        "microsoftAuthenticatorAuthenticationMethod",
        "softwareOathAuthenticationMethod",
        "hardwareOathAuthenticationMethod",
        "fido2AuthenticationMethod",
        "phoneAuthenticationMethod",
        "emailAuthenticationMethod",
        "windowsHelloForBusinessAuthenticationMethod",
        "temporaryAccessPassAuthenticationMethod",
        "platformCredentialAuthenticationMethod",
    ];

    #[test]
    fn method_types_map_to_kinds_and_collections() {
        let m = |t: &str, p: Option<&str>| method(&format!("#microsoft.graph.{t}"), p).map(|(k, c)| (k.to_string(), c));
        assert_eq!(m("passwordAuthenticationMethod", None), None);
        assert_eq!(
            m("microsoftAuthenticatorAuthenticationMethod", None),
            Some(("push".into(), "microsoftAuthenticatorMethods"))
        );
        assert_eq!(m("softwareOathAuthenticationMethod", None), Some(("totp".into(), "softwareOathMethods")));
        assert_eq!(m("fido2AuthenticationMethod", None), Some(("webauthn".into(), "fido2Methods")));
        assert_eq!(m("phoneAuthenticationMethod", Some("mobile")), Some(("sms".into(), "phoneMethods")));
        assert_eq!(m("phoneAuthenticationMethod", Some("office")), Some(("voice".into(), "phoneMethods")));
        assert_eq!(m("emailAuthenticationMethod", None), Some(("email".into(), "emailMethods")));
        assert_eq!(
            m("temporaryAccessPassAuthenticationMethod", None),
            Some(("tap".into(), "temporaryAccessPassMethods"))
        );
        assert_eq!(m("futureThingAuthenticationMethod", None), Some(("futurething".into(), "")));
        for (_, kind, collection) in TYPES
            .iter()
            .filter_map(|t| method(&format!("#microsoft.graph.{t}"), Some("mobile")).map(|(k, c)| (t, k, c)))
        {
            assert!(KINDS.contains(&kind.as_str()) && !collection.is_empty(), "{kind}");
        }
    }
}

//! What the Entra ID client depends on, recorded from Microsoft Graph's own v1.0 specification
//! rather than from the client's code, and the tests that hold the client's tables to it. The
//! fake Graph in `tests/providers_entra.rs` answers from these same facts: it refuses a path
//! or a query option they do not declare with Graph's documented error shape, routes deletes
//! through the declared navigations, and builds its answers from the recorded property names.
//!
//! Sources (nothing of them is copied here beyond the names below):
//! - [`CSDL`]: `clean_v10_metadata/cleanMetadata.xml` of `microsoftgraph/msgraph-metadata`,
//!   last changed by commit 84c1cb513c0b32cd1d9373d79ad4b6ffae991c42 (2026-08-04), read at
//!   f54f11b60956ea7b185ca0447b2b80805836ec7b. `schemas/v1.0-Prod.csdl` (commit
//!   0564689b82afc308d5aa8be54edfb9e5f1e0539f) agrees on every fact below.
//! - [`DOCS`]: the v1.0 API reference, `microsoftgraph/microsoft-graph-docs-contrib`,
//!   `api-reference/v1.0/api/*.md` (file and commit named at each fact), where the metadata
//!   says nothing (query options, permissions, error bodies) or lags behind.
#![allow(dead_code)]

pub const CSDL: &str =
    "microsoftgraph/msgraph-metadata clean_v10_metadata/cleanMetadata.xml @84c1cb513c0b32cd1d9373d79ad4b6ffae991c42";
pub const DOCS: &str = "microsoftgraph/microsoft-graph-docs-contrib api-reference/v1.0";

/// [`CSDL`]: every `EntityType` whose `BaseType` is `graph.authenticationMethod` (abstract).
/// v1.0 has no `hardwareOathAuthenticationMethod`: `hardwareOath` appears only as a member of
/// the enums `authenticationMethodModes` and `baseAuthenticationMethod`.
pub const METHOD_TYPES: &[&str] = &[
    "emailAuthenticationMethod",
    "externalAuthenticationMethod",
    "fido2AuthenticationMethod",
    "microsoftAuthenticatorAuthenticationMethod",
    "passwordAuthenticationMethod",
    "phoneAuthenticationMethod",
    "platformCredentialAuthenticationMethod",
    "qrCodePinAuthenticationMethod",
    "softwareOathAuthenticationMethod",
    "temporaryAccessPassAuthenticationMethod",
    "windowsHelloForBusinessAuthenticationMethod",
];

/// One navigation property of `EntityType authentication` (reached as `user/authentication`).
pub struct Navigation {
    pub name: &'static str,
    /// Element type of the collection.
    pub element: &'static str,
    /// `ContainsTarget="true"`: the members are deleted on their own path, not through `$ref`.
    pub contained: bool,
    /// No `Org.OData.Capabilities.V1.DeleteRestrictions` with `Deletable=false`.
    pub deletable: bool,
}

const fn nav(name: &'static str, element: &'static str, deletable: bool) -> Navigation {
    Navigation { name, element, contained: true, deletable }
}

/// [`CSDL`]: the method collections of `authentication` (its `operations` collection is not a
/// method). `methods` and `passwordMethods` carry `DeleteRestrictions/Deletable=false`: there
/// is no generic delete, and the password is not deleted. No `qrCodePinMethod` navigation in
/// this metadata (see [`DOCS_ONLY_SINGLETONS`]).
pub const AUTHENTICATION_NAVIGATIONS: &[Navigation] = &[
    nav("emailMethods", "emailAuthenticationMethod", true),
    nav("externalAuthenticationMethods", "externalAuthenticationMethod", true),
    nav("fido2Methods", "fido2AuthenticationMethod", true),
    nav("methods", "authenticationMethod", false),
    nav("microsoftAuthenticatorMethods", "microsoftAuthenticatorAuthenticationMethod", true),
    nav("passwordMethods", "passwordAuthenticationMethod", false),
    nav("phoneMethods", "phoneAuthenticationMethod", true),
    nav("platformCredentialMethods", "platformCredentialAuthenticationMethod", true),
    nav("softwareOathMethods", "softwareOathAuthenticationMethod", true),
    nav("temporaryAccessPassMethods", "temporaryAccessPassAuthenticationMethod", true),
    nav("windowsHelloForBusinessMethods", "windowsHelloForBusinessAuthenticationMethod", true),
];

/// A delete path the v1.0 API reference documents but [`CSDL`] does not declare: `(path under
/// authentication, element type, source)`. Unverified against a live tenant (docs/providers.md).
pub const DOCS_ONLY_SINGLETONS: &[(&str, &str, &str)] = &[(
    "qrCodePinMethod",
    "qrCodePinAuthenticationMethod",
    "api/qrcodepinauthenticationmethod-delete.md @255073e9b97b2977cdb31c3f3e111162116e3452: DELETE /users/{id | userPrincipalName}/authentication/qrCodePinMethod -> 204",
)];

/// [`DOCS`] `api/authentication-delete-externalauthenticationmethods.md`
/// @1226fa3d0cfba8d136d4297350d51b7385f24c8e writes the delete as `.../{id}/$ref`; the
/// metadata declares the collection contained (no references to remove) and the v1.0 SDKs
/// generated from it (msgraph-sdk-php `ExternalAuthenticationMethodItemRequestBuilder`) delete
/// `.../externalAuthenticationMethods/{id}`. keyward follows the metadata; the fake refuses
/// `$ref` on a contained collection as Graph's OData layer would.
pub const REF_SEGMENT: &str = "$ref";

/// [`CSDL`] `EnumType authenticationPhoneType`.
pub const PHONE_TYPES: &[&str] = &["mobile", "alternateMobile", "office", "unknownFutureValue"];

/// What each phone can be used for, [`DOCS`] `resources/phoneauthenticationmethod.md`
/// ("authenticationPhoneType values"; https://learn.microsoft.com/graph/api/resources/phoneauthenticationmethod?view=graph-rest-1.0,
/// last modified 2025-10-16): "mobile: A primary mobile phone, usable for SMS and voice calls",
/// "alternateMobile: An alternate or backup mobile phone, usable only for voice calls",
/// "office: An office phone or landline, usable only for voice calls". As keyward kinds.
pub const PHONE_TYPE_USES: &[(&str, &[&str])] =
    &[("mobile", &["sms", "voice"]), ("alternateMobile", &["voice"]), ("office", &["voice"])];

/// Properties of the method types the client reads: `id` (`entity`), `@odata.type` (the
/// OData type annotation of every member of the `methods` collection) and [`CSDL`]
/// `phoneAuthenticationMethod/phoneType`.
pub const METHOD_PROPERTIES: &[&str] = &["id", "@odata.type", "phoneType"];

/// The phone method ids Graph fixes per `phoneType` ([`DOCS`]
/// `resources/phoneauthenticationmethod.md`).
pub const PHONE_IDS: &[(&str, &str)] = &[
    ("mobile", "3179e48a-750b-4051-897c-87b9720928f7"),
    ("alternateMobile", "b6332ec1-7057-4abe-9331-3d72feddfe41"),
    ("office", "e37fc753-ff3b-4958-9484-eaa9425c82bc"),
];

/// [`CSDL`] `EntityType user` properties the client may select (`id` from `entity`).
pub const USER_PROPERTIES: &[&str] = &["id", "userPrincipalName", "mail", "accountEnabled", "otherMails"];

/// How a user is looked up by an address that is not its UPN (`GET /users/{id |
/// userPrincipalName}` takes nothing else: [`DOCS`] `api/user-get.md`): `GET /users` with
/// `$filter=mail eq '…' or proxyAddresses/any(p:p eq 'smtp:…')`.
/// - [`DOCS`] `resources/user.md`: `mail` "Supports `$filter` (`eq`, `ne`, `not`, `ge`, `le`,
///   `in`, `startsWith`, `endsWith`, and `eq` on `null` values)"; `proxyAddresses` ("For
///   example: ['SMTP: bob@contoso.com', 'smtp: bob@sales.contoso.com'] … The proxy address
///   prefixed with SMTP (capitalized) is the primary proxy address, while those addresses
///   prefixed with smtp are the secondary proxy addresses") "Supports `$filter` (`eq`, `not`,
///   `ge`, `le`, `startsWith`, `endsWith`, `/$count eq 0`, `/$count ne 0`)".
/// - [`DOCS`] `concepts/filter-query-parameter.md`, "Syntax for using the filter OData query
///   parameter": `eq` on a single primitive (`~/users?$filter=userType eq 'Member'`) and on a
///   collection of primitives (`~/groups?$filter=groupTypes/any(c:c eq 'Unified')`) are not
///   marked "only supported with advanced query capabilities": no `ConsistencyLevel:
///   eventual`, no `$count`.
/// - [`DOCS`] `concepts/query-parameters.md`, "Escaping single quotes": a single quote in a
///   string literal is doubled (`'let''s meet for lunch?'`).
pub const ADDRESS_FILTER_PROPERTIES: &[&str] = &["mail", "proxyAddresses"];
pub const SECONDARY_SMTP_PREFIX: &str = "smtp:";
pub const PRIMARY_SMTP_PREFIX: &str = "SMTP:";

/// The address in the one `$filter` the fake Graph answers: `mail eq 'A' or
/// proxyAddresses/any(p:p eq 'smtp:A')` with `A` quoted as OData wants it.
pub fn address_filter(filter: &str) -> Option<String> {
    let literal = |s: &str| -> Option<String> {
        let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
        // A lone quote inside would have ended the literal.
        if inner.replace("''", "").contains('\'') {
            return None;
        }
        Some(inner.replace("''", "'"))
    };
    let (mail, proxy) = filter.split_once(" or ")?;
    let by_mail = literal(mail.strip_prefix(&format!("{} eq ", ADDRESS_FILTER_PROPERTIES[0]))?)?;
    let lambda = proxy.strip_prefix(&format!("{}/any(p:p eq ", ADDRESS_FILTER_PROPERTIES[1]))?.strip_suffix(')')?;
    let by_proxy = literal(lambda)?;
    (by_proxy.strip_prefix(SECONDARY_SMTP_PREFIX)? == by_mail).then_some(by_mail)
}

/// [`CSDL`] `EntityType group`: `members` and `transitiveMembers`, both
/// `Collection(graph.directoryObject)` with `microsoft.graph.user` among the
/// `DerivedTypeConstraint`s (so `/microsoft.graph.user` is a valid cast). [`DOCS`]
/// `api/group-list-transitivemembers.md`: "returns a flat list of all nested members";
/// `members` returns direct members only.
pub const GROUP_MEMBERS: &str = "transitiveMembers";
pub const GROUP_DIRECT_MEMBERS: &str = "members";

/// [`CSDL`] annotation on `GraphService/users`: `SkipSupported=false` — pages only through
/// `@odata.nextLink`, which carries Graph's own `$skiptoken`.
pub const NEXT_LINK: &str = "@odata.nextLink";
pub const SERVER_PAGING_OPTION: &str = "$skiptoken";
pub const SKIP_SUPPORTED_ON_USERS: bool = false;
/// [`DOCS`] `api/user-list.md`, `api/group-list-transitivemembers.md`: `$top` from 1 to 999.
pub const MAX_PAGE_SIZE: u32 = 999;

/// A request the client makes: method, path under `/v1.0` (`{}` a key), the query options
/// the API reference documents for it, and the least-privileged application permission.
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static [&'static str],
    pub query: &'static [&'static str],
    pub permission: &'static str,
    pub source: &'static str,
}

/// [`DOCS`], per endpoint. `$skiptoken` is accepted on collections because Graph puts it in
/// its own `@odata.nextLink`.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: &["users"],
        query: &["$count", "$expand", "$filter", "$orderby", "$search", "$select", "$top", "$skiptoken"],
        permission: "User.Read.All",
        source: "api/user-list.md",
    },
    Endpoint {
        method: "GET",
        path: &["users", "{}"],
        query: &["$select", "$expand"],
        permission: "User.Read.All",
        source: "api/user-get.md",
    },
    Endpoint {
        method: "GET",
        path: &["groups", "{}", "transitiveMembers", "microsoft.graph.user"],
        query: &["$count", "$filter", "$search", "$select", "$top", "$skiptoken"],
        // Users' names come back only with User.Read.All: with GroupMember.Read.All alone a
        // member the app may not read has its id and type only ("limited information").
        permission: "GroupMember.Read.All + User.Read.All",
        source: "api/group-list-transitivemembers.md @00e146a92755a19260d07a735eee6e9df034f45f",
    },
    Endpoint {
        method: "GET",
        path: &["groups", "{}", "members", "microsoft.graph.user"],
        // Declared by Graph, not used by keyward: direct members only.
        query: &["$count", "$filter", "$search", "$select", "$top", "$skiptoken"],
        permission: "GroupMember.Read.All + User.Read.All",
        source: "api/group-list-members.md",
    },
    Endpoint {
        method: "GET",
        path: &["users", "{}", "authentication", "methods"],
        // "This method does not support optional query parameters."
        query: &["$skiptoken"],
        permission: "UserAuthenticationMethod.Read.All",
        source: "api/authentication-list-methods.md @073a3963b21637213e5f1e568a46929928f02ddf",
    },
    // `keyward conformance` only: a disposable user and a phone method on it.
    Endpoint {
        method: "POST",
        path: &["users"],
        query: &[],
        permission: "User.ReadWrite.All",
        source: "api/user-post-users.md",
    },
    Endpoint {
        method: "POST",
        path: &["users", "{}", "authentication", "phoneMethods"],
        query: &[],
        permission: "UserAuthenticationMethod.ReadWrite.All",
        source: "api/authentication-post-phonemethods.md",
    },
];

/// [`DOCS`] `api/user-post-users.md`: the properties a new user requires.
pub const NEW_USER_REQUIRED: &[&str] =
    &["accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"];
/// [`DOCS`] `api/user-delete.md`: `DELETE /users/{id}`, 204, permission `User.ReadWrite.All`
/// (the user goes to the deleted items for 30 days).
pub const DELETE_USER_PERMISSION: &str = "User.ReadWrite.All";

/// The permission of every delete path ([`DOCS`] `api/*-delete.md`): `UserAuthenticationMethod.
/// ReadWrite.All` covers them all (per-method permissions such as
/// `UserAuthMethod-External.ReadWrite.All` exist for some).
pub const DELETE_PERMISSION: &str = "UserAuthenticationMethod.ReadWrite.All";

/// [`DOCS`] `concepts/errors.md`: `{"error": {"code", "message", "innerError": {"date",
/// "request-id", "client-request-id"}}}`; throttling is 429 with `Retry-After` seconds
/// (`concepts/throttling.md`).
pub const ERROR_FIELDS: &[&str] = &["code", "message", "innerError"];
pub const RETRY_AFTER: &str = "Retry-After";

/// Graph's error body, shaped by [`ERROR_FIELDS`].
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    let mut error = serde_json::Map::new();
    for (field, value) in ERROR_FIELDS.iter().zip([
        serde_json::json!(code),
        serde_json::json!(message),
        serde_json::json!({"request-id": "r", "client-request-id": "c", "date": "2026-11-30T00:00:00"}),
    ]) {
        error.insert((*field).to_string(), value);
    }
    serde_json::json!({ "error": error })
}

/// The declared endpoint `method` + `path` (segments under `/v1.0`) is, if any.
pub fn endpoint(method: &str, path: &[&str]) -> Option<&'static Endpoint> {
    ENDPOINTS.iter().find(|e| {
        e.method == method
            && e.path.len() == path.len()
            && e.path.iter().zip(path).all(|(want, got)| *want == "{}" || want == got)
    })
}

/// The element type a DELETE under `users/{id}/authentication/` deletes, from the declared
/// navigations (deletable, contained: `{nav}/{id}`) and the documented singletons (`{name}`);
/// `None` for any other path, `$ref` included.
pub fn deleted_type(segments: &[&str]) -> Option<&'static str> {
    match segments {
        [collection, _id] => AUTHENTICATION_NAVIGATIONS
            .iter()
            .find(|n| n.name == *collection && n.deletable && n.contained)
            .map(|n| n.element),
        [singleton] => DOCS_ONLY_SINGLETONS.iter().find(|(s, _, _)| s == singleton).map(|(_, t, _)| *t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward::providers::entra::{METHODS, Removal};

    /// Every Graph v1.0 type derived from `authenticationMethod` has a row (a mapping, or an
    /// explicit "not managed"), and no row names a type v1.0 does not have.
    #[test]
    fn every_v1_method_type_has_a_row_and_every_row_a_v1_type() {
        for t in METHOD_TYPES {
            assert!(METHODS.iter().any(|m| m.odata_type == *t), "no row for v1.0 type {t} ({CSDL})");
        }
        for m in METHODS {
            assert!(METHOD_TYPES.contains(&m.odata_type), "row for {} which v1.0 does not have", m.odata_type);
        }
    }

    /// A row's delete path is a deletable, contained navigation of that very type (so no
    /// `$ref`), or a singleton the v1.0 reference documents; a row not managed is a type Graph
    /// marks not deletable.
    #[test]
    fn every_delete_path_is_declared_for_its_type() {
        for m in METHODS {
            match m.removal {
                Removal::Collection(collection) => {
                    assert_eq!(deleted_type(&[collection, "x"]), Some(m.odata_type), "{collection}");
                }
                Removal::Singleton(singleton) => {
                    assert_eq!(deleted_type(&[singleton]), Some(m.odata_type), "{singleton}");
                    // Docs-only: the day the metadata declares it, it moves to the navigations.
                    assert!(!AUTHENTICATION_NAVIGATIONS.iter().any(|n| n.name == singleton));
                }
                Removal::NotManaged => {
                    let nav = AUTHENTICATION_NAVIGATIONS.iter().find(|n| n.element == m.odata_type);
                    assert!(nav.is_some_and(|n| !n.deletable), "{} is deletable: manage it", m.odata_type);
                }
            }
        }
        // There is no generic delete through `methods`.
        assert_eq!(deleted_type(&["methods", "x"]), None);
        assert_eq!(deleted_type(&["externalAuthenticationMethods", "x", REF_SEGMENT]), None);
    }

    #[test]
    fn the_phone_types_and_user_fields_the_client_reads_are_declared() {
        use keyward::providers::entra::mapping::{PRIMARY_PHONE_TYPE, VOICE_ONLY_PHONE_TYPES};
        assert!(PHONE_TYPES.contains(&PRIMARY_PHONE_TYPE));
        for phone_type in VOICE_ONLY_PHONE_TYPES {
            assert!(PHONE_TYPES.contains(phone_type), "{phone_type} is not an authenticationPhoneType");
            let uses = PHONE_TYPE_USES.iter().find(|(t, _)| t == phone_type).map(|(_, u)| *u);
            assert_eq!(uses, Some(&["voice"][..]), "{phone_type} is not documented voice-only");
        }
        for field in keyward::providers::entra::USER_FIELDS {
            assert!(USER_PROPERTIES.contains(field), "user property {field} is not in {CSDL}");
        }
        let top: u32 = keyward::providers::entra::PAGE_SIZE.parse().expect("number");
        assert!((1..=MAX_PAGE_SIZE).contains(&top));
    }

    /// The client's lookup by address is the documented filter, its literal quoted.
    #[test]
    fn the_address_filter_is_the_documented_one() {
        use keyward::providers::entra::mail_filter;
        for address in ["alice@acme.example", "o'brien@acme.example", "it's''two@acme.example"] {
            assert_eq!(address_filter(&mail_filter(address)).as_deref(), Some(address), "{}", mail_filter(address));
        }
        assert_eq!(mail_filter("o'brien@x"), "mail eq 'o''brien@x' or proxyAddresses/any(p:p eq 'smtp:o''brien@x')");
        // An unquoted quote would end the literal: refused, as Graph refuses it.
        assert_eq!(address_filter("mail eq 'o'brien@x' or proxyAddresses/any(p:p eq 'smtp:o'brien@x')"), None);
    }
}

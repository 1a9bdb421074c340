//! What keyward's Okta client depends on, as Okta's own management API specification states it.
//!
//! Source: `github.com/okta/okta-management-openapi-spec`, file
//! `dist/2026.06.3/management-minimal.yaml` at commit `fdda229e82940cf5af4611ad673ca6a27974e31b`
//! (2026-06-29). Read with the tools of the day, not copied: each const names the part of the
//! specification it restates. `tests/providers_okta.rs` checks the client against these facts,
//! and its fake Okta answers from them, so that the client and the fake cannot share an
//! assumption the specification does not make.
#![allow(dead_code)]

pub const SOURCE: &str = "okta-management-openapi-spec dist/2026.06.3/management-minimal.yaml @ fdda229e";

/// `components.schemas.UserFactorType.enum`.
pub const FACTOR_TYPES: &[&str] = &[
    "call",
    "email",
    "push",
    "question",
    "signed_nonce",
    "sms",
    "token",
    "token:hardware",
    "token:hotp",
    "token:software:totp",
    "u2f",
    "web",
    "webauthn",
];

/// Per factor type, the `provider` values its `UserFactor<Type>` schema allows (the
/// `UserFactor.discriminator.mapping` targets' `provider.enum`). `signed_nonce` (FastPass) has
/// no schema of its own; Okta Verify is its only source, provider `OKTA`.
pub const FACTOR_PROVIDERS: &[(&str, &[&str])] = &[
    ("call", &["OKTA"]),
    ("email", &["OKTA"]),
    ("push", &["OKTA"]),
    ("question", &["OKTA"]),
    ("signed_nonce", &["OKTA"]),
    ("sms", &["OKTA"]),
    ("token", &["RSA", "SYMANTEC"]),
    // `UserFactorTokenHOTP.factorProfileId`: "ID of an existing Custom TOTP factor profile".
    ("token:hotp", &["CUSTOM"]),
    ("token:hardware", &["YUBICO"]),
    ("token:software:totp", &["OKTA", "GOOGLE"]),
    ("u2f", &["FIDO"]),
    ("web", &["DUO"]),
    ("webauthn", &["FIDO"]),
];

/// `components.schemas.UserFactorStatus.enum`.
pub const FACTOR_STATUSES: &[&str] =
    &["ACTIVE", "DISABLED", "ENROLLED", "EXPIRED", "INACTIVE", "NOT_SETUP", "PENDING_ACTIVATION"];

/// `components.schemas.UserStatus.enum`.
pub const USER_STATUSES: &[&str] =
    &["ACTIVE", "DEPROVISIONED", "LOCKED_OUT", "PASSWORD_EXPIRED", "PROVISIONED", "RECOVERY", "STAGED", "SUSPENDED"];

/// `unenrollFactor`'s note: unenrolling these also unenrolls "any other `totp`,
/// `signed_nonce`, or Okta Verify `push` factors associated with the user".
pub const CASCADING_FACTOR_TYPES: &[&str] = &["push", "signed_nonce"];
/// What that cascade takes: `totp` of any provider, the wording does not restrict it to Okta
/// Verify's.
pub const CASCADED_FACTOR_TYPES: &[(&str, Option<&str>)] =
    &[("token:software:totp", None), ("signed_nonce", None), ("push", Some("OKTA"))];

/// Counted by keyward as taken by that cascade although the wording does not name it: Custom
/// TOTP (`token:hotp`, provider `CUSTOM`; `UserFactorTokenHOTP.factorProfileId`: "an existing
/// Custom TOTP factor profile"). Counting a factor that stays only withholds a push; missing
/// one that goes would take an entitled factor. The fake's cascade follows the wording only.
pub const CASCADE_COUNTED_BEYOND_WORDING: &[(&str, &str)] = &[("token:hotp", "CUSTOM")];

/// `unenrollFactor`'s `removeRecoveryEnrollment`: "removes the phone number as both a recovery
/// method and a factor. This parameter is only used for the `sms` and `call` factors."
pub const RECOVERY_FACTOR_TYPES: &[&str] = &["sms", "call"];

/// `components.parameters.pathId`: "An ID, login, or login shortname … of an existing Okta
/// user"; `getUser`: "Logins with a `/` character can only be fetched by `id`".
pub const GET_USER_BY: &[&str] = &["id", "login", "login shortname"];

/// Okta's Users API reference, `okta/okta-developer-docs`
/// `packages/@okta/vuepress-site/docs/reference/api/users/index.md` @ `00e4af9f`, "Get User":
/// "you can substitute `me` for the `id` to fetch the current user linked to an API token or
/// session cookie"; with an API token, "Details of the Admin user who granted the API token
/// is returned". So `GET /users/me` is never a user named `me`.
pub const CURRENT_USER_ID: &str = "me";
/// The same page: "Logins with a `/` or `?` character can only be fetched by `id`".
pub const FETCHED_BY_ID_ONLY: &[char] = &['/', '?'];

/// An operation keyward calls: method, path template, the query parameters the specification
/// declares for it, and the OAuth 2.0 scope its `security` requires of a service app.
pub struct Operation {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub query: &'static [&'static str],
    pub scope: &'static str,
}

/// `paths.*` for the operations keyward uses (`security`: `apiToken` or `oauth2` with the scope).
/// `listGroupUsers` (`/api/v1/groups/{groupId}/users`) answers at most 1000 members per page
/// when no `limit` is given, and pages with `Link: rel="next"` like `listUsers` (the
/// specification's `QueryLimit` parameter; seen by users of Okta's SDK:
/// okta/okta-sdk-python#73, "get_group_users returns only 1000 elements").
pub const GROUP_USERS_DEFAULT_LIMIT: usize = 1000;

pub const OPERATIONS: &[Operation] = &[
    Operation {
        id: "listUsers",
        method: "GET",
        path: "/api/v1/users",
        query: &["search", "filter", "q", "after", "limit", "sortBy", "sortOrder", "fields", "expand"],
        scope: "okta.users.read",
    },
    Operation {
        id: "listGroupUsers",
        method: "GET",
        path: "/api/v1/groups/{groupId}/users",
        query: &["after", "limit"],
        scope: "okta.groups.read",
    },
    Operation {
        id: "getUser",
        method: "GET",
        path: "/api/v1/users/{id}",
        query: &["expand"],
        scope: "okta.users.read",
    },
    Operation {
        id: "listFactors",
        method: "GET",
        path: "/api/v1/users/{userId}/factors",
        query: &[],
        scope: "okta.users.read",
    },
    Operation {
        id: "unenrollFactor",
        method: "DELETE",
        path: "/api/v1/users/{userId}/factors/{factorId}",
        query: &["removeRecoveryEnrollment"],
        scope: "okta.users.manage",
    },
    Operation {
        id: "resetFactors",
        method: "POST",
        path: "/api/v1/users/{id}/lifecycle/reset_factors",
        query: &[],
        scope: "okta.users.manage",
    },
    Operation {
        id: "enrollFactor",
        method: "POST",
        path: "/api/v1/users/{userId}/factors",
        query: &["updatePhone", "templateId", "tokenLifetimeSeconds", "activate"],
        scope: "okta.users.manage",
    },
    // `keyward conformance` only: a disposable user and a TOTP factor on it.
    Operation {
        id: "createUser",
        method: "POST",
        path: "/api/v1/users",
        query: &["activate", "provider", "nextLogin"],
        scope: "okta.users.manage",
    },
    Operation {
        id: "activateFactor",
        method: "POST",
        path: "/api/v1/users/{userId}/factors/{factorId}/lifecycle/activate",
        query: &[],
        scope: "okta.users.manage",
    },
    Operation {
        id: "deactivateUser",
        method: "POST",
        path: "/api/v1/users/{id}/lifecycle/deactivate",
        query: &["sendEmail"],
        scope: "okta.users.manage",
    },
    Operation {
        id: "deleteUser",
        method: "DELETE",
        path: "/api/v1/users/{id}",
        query: &["sendEmail"],
        scope: "okta.users.manage",
    },
];

/// `enrollFactor` of `token:software:totp` with `activate=false`: the factor is
/// `PENDING_ACTIVATION` and `_embedded.activation` carries `sharedSecret` (Base32), `keyLength`
/// and `timeStep`; `activateFactor` takes `passCode` (`UserFactorActivateRequest`).
pub const TOTP_ACTIVATION_FIELDS: &[&str] = &["sharedSecret", "encoding", "keyLength", "timeStep"];

/// The operation a request is, by method and path (`{…}` matches one segment).
pub fn operation(method: &str, segments: &[&str]) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| {
        let template: Vec<&str> = op.path.trim_start_matches('/').split('/').collect();
        op.method == method
            && template.len() == segments.len()
            && template.iter().zip(segments).all(|(t, s)| t.starts_with('{') || t == s)
    })
}

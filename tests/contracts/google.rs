//! What the Google Workspace client depends on, recorded from Google's Admin SDK Directory API
//! discovery document rather than from the client's code, and the tests that hold the client
//! to it. The fake Directory API in `tests/providers_google.rs` answers from these same facts:
//! it refuses a method or a parameter they do not declare (or a value outside the declared
//! enum or range) with Google's error shape, takes as `userKey` only what the document says a
//! `userKey` may be, and builds users from the recorded `User` property names.
//!
//! Source ([`DISCOVERY`]): the discovery document `admin:directory_v1`, revision `20261104`,
//! as shipped in `googleapis/google-api-python-client` release 2.202.0 (PyPI),
//! `googleapiclient/discovery_cache/documents/admin.directory_v1.json` — the same document as
//! `googleapis/google-api-go-client` `admin/directory/v1/admin-api.json`. Nothing of it is
//! copied here beyond the names below. Error bodies are not in the discovery document: they
//! come from Google's documented JSON error format ([`ERRORS`]).
#![allow(dead_code)]

pub const DISCOVERY: &str = "admin:directory_v1 revision 20261104 (google-api-python-client 2.202.0, googleapiclient/discovery_cache/documents/admin.directory_v1.json)";
pub const ERRORS: &str = "developers.google.com/workspace/admin/directory/v1/limits and the Google JSON error format (error.code, error.message, error.errors[].domain/reason/message, error.status)";

/// `rootUrl` + `servicePath` of the document; each method's `path` is relative to it.
pub const ROOT_URL: &str = "https://admin.googleapis.com/";

/// A method of the document.
pub struct Method {
    /// `id`.
    pub id: &'static str,
    pub http_method: &'static str,
    /// `path`, split at `/`; `{userKey}` a path parameter.
    pub path: &'static [&'static str],
    /// `parameters` with `location: query` (path parameters are in `path`).
    pub query: &'static [&'static str],
    /// `scopes`: any one of them authorizes the call.
    pub scopes: &'static [&'static str],
}

const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
const USER_READONLY: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const USER_SECURITY: &str = "https://www.googleapis.com/auth/admin.directory.user.security";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// `resources.users.methods.{list,get}` and `resources.twoStepVerification.methods.turnOff`.
pub const METHODS: &[Method] = &[
    Method {
        id: "directory.users.list",
        http_method: "GET",
        path: &["admin", "directory", "v1", "users"],
        query: &[
            "customFieldMask",
            "customer",
            "domain",
            "event",
            "maxResults",
            "orderBy",
            "pageToken",
            "projection",
            "query",
            "showDeleted",
            "sortOrder",
            "viewType",
        ],
        scopes: &[USER, USER_READONLY, CLOUD_PLATFORM],
    },
    Method {
        id: "directory.users.get",
        http_method: "GET",
        path: &["admin", "directory", "v1", "users", "{userKey}"],
        query: &["customFieldMask", "projection", "viewType"],
        scopes: &[USER, USER_READONLY],
    },
    Method {
        id: "directory.twoStepVerification.turnOff",
        http_method: "POST",
        path: &["admin", "directory", "v1", "users", "{userKey}", "twoStepVerification", "turnOff"],
        query: &[],
        scopes: &[USER_SECURITY],
    },
];

/// Top-level `parameters`: accepted by every method.
pub const GLOBAL_PARAMETERS: &[&str] = &[
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
];

/// `projection`: `enum` (default `basic`).
pub const PROJECTIONS: &[&str] = &["basic", "custom", "full"];
/// `directory.users.list` `maxResults`: `minimum` 1, `maximum` 500 (default 100).
pub const MAX_RESULTS: (u32, u32) = (1, 500);

/// `userKey`: "the user's primary email address, alias email address, or unique user ID".
/// The document says nothing of `nonEditableAliases` (domain alias addresses): the fake does
/// not take them as a `userKey`, and the client addresses users by id.
pub const USER_KEY_FORMS: &[&str] = &["primaryEmail", "aliases", "id"];

/// `schemas.User.properties`.
pub const USER_PROPERTIES: &[&str] = &[
    "addresses",
    "agreedToTerms",
    "aliases",
    "archivalTime",
    "archived",
    "changePasswordAtNextLogin",
    "creationTime",
    "customSchemas",
    "customerId",
    "deletionTime",
    "emails",
    "etag",
    "externalIds",
    "gender",
    "guestAccountInfo",
    "hashFunction",
    "id",
    "ims",
    "includeInGlobalAddressList",
    "ipWhitelisted",
    "isAdmin",
    "isDelegatedAdmin",
    "isEnforcedIn2Sv",
    "isEnrolledIn2Sv",
    "isGuestUser",
    "isMailboxSetup",
    "keywords",
    "kind",
    "languages",
    "lastLoginTime",
    "locations",
    "name",
    "nonEditableAliases",
    "notes",
    "orgUnitPath",
    "organizations",
    "password",
    "phones",
    "posixAccounts",
    "primaryEmail",
    "recoveryEmail",
    "recoveryPhone",
    "relations",
    "sshPublicKeys",
    "suspended",
    "suspensionReason",
    "suspensionTime",
    "thumbnailPhotoEtag",
    "thumbnailPhotoUrl",
    "websites",
];

/// `schemas.Users.properties`: the page of `directory.users.list`.
pub const USERS_PROPERTIES: &[&str] = &["etag", "kind", "nextPageToken", "trigger_event", "users"];
pub const NEXT_PAGE_TOKEN: &str = "nextPageToken";
pub const PAGE_TOKEN: &str = "pageToken";

/// [`ERRORS`]: the body's fields, and the 403 reasons that mean "slow down".
pub const ERROR_FIELDS: &[&str] = &["code", "message", "errors", "status"];
pub const ERROR_ITEM_FIELDS: &[&str] = &["domain", "reason", "message"];
pub const RATE_LIMIT_REASONS: &[&str] = &["userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded"];

/// Google's error body, shaped by [`ERROR_FIELDS`] and [`ERROR_ITEM_FIELDS`].
pub fn error_body(status: u16, reason: &str, message: &str) -> serde_json::Value {
    let domain = if RATE_LIMIT_REASONS.contains(&reason) { "usageLimits" } else { "global" };
    let item: serde_json::Map<String, serde_json::Value> = ERROR_ITEM_FIELDS
        .iter()
        .zip([domain, reason, message])
        .map(|(k, v)| ((*k).to_string(), serde_json::json!(v)))
        .collect();
    let status_name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "UNKNOWN",
    };
    let error: serde_json::Map<String, serde_json::Value> = ERROR_FIELDS
        .iter()
        .zip([
            serde_json::json!(status),
            serde_json::json!(message),
            serde_json::json!([item]),
            serde_json::json!(status_name),
        ])
        .map(|(k, v)| ((*k).to_string(), v))
        .collect();
    serde_json::json!({ "error": error })
}

/// The method `http_method` + `path` is, if the document declares it.
pub fn method(http_method: &str, path: &[&str]) -> Option<&'static Method> {
    METHODS.iter().find(|m| {
        m.http_method == http_method
            && m.path.len() == path.len()
            && m.path.iter().zip(path).all(|(want, got)| want.starts_with('{') || want == got)
    })
}

/// Why the document refuses this request's query, if it does: a parameter neither the
/// method's nor global, a `projection` outside its enum, a `maxResults` outside its range.
pub fn refusal(method: &Method, query: &[(String, String)]) -> Option<String> {
    for (key, value) in query {
        if !method.query.contains(&key.as_str()) && !GLOBAL_PARAMETERS.contains(&key.as_str()) {
            return Some(format!("Invalid parameter: {key} is not a parameter of {}", method.id));
        }
        if key == "projection" && !PROJECTIONS.contains(&value.as_str()) {
            return Some(format!("Invalid value for projection: {value}"));
        }
        if key == "maxResults" && value.parse::<u32>().map_or(true, |n| n < MAX_RESULTS.0 || n > MAX_RESULTS.1) {
            return Some(format!("Invalid value for maxResults: {value}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward::providers::google::{PAGE_SIZE, SCOPES, USER_FIELDS};

    /// Every `User` field the client reads is a property of the document's `User` schema.
    #[test]
    fn every_user_field_read_is_in_the_user_schema() {
        for field in USER_FIELDS {
            assert!(USER_PROPERTIES.contains(field), "User has no property {field} in {DISCOVERY}");
        }
        assert!(USERS_PROPERTIES.contains(&NEXT_PAGE_TOKEN) && USERS_PROPERTIES.contains(&"users"));
    }

    /// Each method the client calls is authorized by one of the scopes it asks for, and it
    /// asks for no scope no method needs (least privilege).
    #[test]
    fn the_scopes_asked_for_are_exactly_the_ones_the_methods_need() {
        for m in METHODS {
            assert!(m.scopes.iter().any(|s| SCOPES.contains(s)), "{} needs one of {:?}", m.id, m.scopes);
        }
        for scope in SCOPES {
            assert!(METHODS.iter().any(|m| m.scopes.contains(scope)), "{scope} is needed by no method");
        }
        assert!(!SCOPES.contains(&USER), "the read-write user scope is more than keyward needs");
    }

    #[test]
    fn the_page_size_is_within_the_declared_range() {
        let size: u32 = PAGE_SIZE.parse().expect("number");
        assert!((MAX_RESULTS.0..=MAX_RESULTS.1).contains(&size));
    }
}

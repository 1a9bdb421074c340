//! What keyward's Duo client depends on, as Duo's official Admin API client states it.
//!
//! Source: `github.com/duosecurity/duo_client_python` (`duo_client` 5.6.1), files
//! `duo_client/admin.py` and `duo_client/client.py` at commit
//! `6e207eb90326c76037530abe80cfd45c1c0053c9` (2026-06-24); where the client names only a
//! path, the object shapes are those of Duo's Admin API documentation (marked). Read, not
//! copied. `tests/providers_duo.rs` checks the client against these facts, and its fake Duo
//! answers from them.
#![allow(dead_code)]

pub const SOURCE: &str = "duo_client_python 5.6.1 duo_client/admin.py @ 6e207eb9";

/// `admin.py`'s module doc and `USER_STATUS_*` ("active", "bypass", "disabled", "locked out"),
/// plus "pending deletion", which Duo's documentation lists for users awaiting deletion.
pub const USER_STATUSES: &[&str] = &["active", "bypass", "disabled", "locked out", "pending deletion"];

/// `create_group`'s docstring: "status - Group authentication status <str:
/// 'active'/'disabled'/'bypass'>". A user's `groups` are group objects (documentation,
/// "Retrieve Users": "groups: List of groups to which this user belongs"; "Retrieve Groups":
/// `group_id`, `name`, `desc`, `status`, with the status shown capitalized, e.g. `"Active"`).
pub const GROUP_STATUSES: &[&str] = &["active", "disabled", "bypass"];
pub const GROUP_FIELDS: &[&str] = &["group_id", "name", "desc", "status"];

/// Duo's Admin API documentation, "Retrieve Users" response format: `aliases` is a map of the
/// user's username aliases, `alias1` … `alias8` (up to eight); the flat `alias1` … `alias4`
/// fields are the older form, still sent beside it. (Documentation.)
pub const ALIAS_KEYS: &[&str] = &["alias1", "alias2", "alias3", "alias4", "alias5", "alias6", "alias7", "alias8"];

/// Hardware token types: `TOKEN_HOTP_6`, `TOKEN_HOTP_8`, `TOKEN_YUBIKEY`, and `t6` of
/// `add_token` for TOTP (documentation also lists `t8` and `d1`).
pub const TOKEN_TYPES: &[&str] = &["h6", "h8", "yk", "t6", "t8", "d1"];

/// The operations keyward calls: method, path template, and the parameters it may send. All
/// are signed (v5); list endpoints page with `limit`/`offset` and `metadata.next_offset`
/// (`json_paging_api_call`).
pub struct Operation {
    pub client_method: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub params: &'static [&'static str],
}

pub const OPERATIONS: &[Operation] = &[
    Operation { client_method: "get_users", method: "GET", path: "/admin/v1/users", params: &["limit", "offset"] },
    Operation {
        client_method: "get_users_by_name",
        method: "GET",
        path: "/admin/v1/users",
        params: &["username", "limit", "offset"],
    },
    Operation { client_method: "get_user_by_id", method: "GET", path: "/admin/v1/users/{user_id}", params: &[] },
    Operation {
        client_method: "update_user",
        method: "POST",
        path: "/admin/v1/users/{user_id}",
        params: &["username", "realname", "status", "notes", "email", "firstname", "lastname"],
    },
    Operation {
        client_method: "delete_user_phone",
        method: "DELETE",
        path: "/admin/v1/users/{user_id}/phones/{phone_id}",
        params: &[],
    },
    Operation {
        client_method: "delete_user_token",
        method: "DELETE",
        path: "/admin/v1/users/{user_id}/tokens/{token_id}",
        params: &[],
    },
    Operation {
        client_method: "delete_webauthncredential",
        method: "DELETE",
        path: "/admin/v1/webauthncredentials/{webauthnkey}",
        params: &[],
    },
    Operation {
        client_method: "delete_u2ftoken",
        method: "DELETE",
        path: "/admin/v1/u2ftokens/{registration_id}",
        params: &[],
    },
    Operation {
        client_method: "get_bypass_codes",
        method: "GET",
        path: "/admin/v1/bypass_codes",
        params: &["limit", "offset"],
    },
    Operation {
        client_method: "delete_bypass_code_by_id",
        method: "DELETE",
        path: "/admin/v1/bypass_codes/{bypass_code_id}",
        params: &[],
    },
    Operation {
        client_method: "enroll_user",
        method: "POST",
        path: "/admin/v1/users/enroll",
        params: &["username", "email", "valid_secs"],
    },
    // `keyward conformance` only: a disposable user with a phone.
    Operation {
        client_method: "add_user",
        method: "POST",
        path: "/admin/v1/users",
        params: &["username", "realname", "status", "notes", "email", "firstname", "lastname", "alias1", "alias2"],
    },
    Operation {
        client_method: "add_phone",
        method: "POST",
        path: "/admin/v1/phones",
        params: &["number", "extension", "name", "type", "platform", "predelay", "postdelay"],
    },
    Operation {
        client_method: "add_user_phone",
        method: "POST",
        path: "/admin/v1/users/{user_id}/phones",
        params: &["phone_id"],
    },
    Operation { client_method: "delete_phone", method: "DELETE", path: "/admin/v1/phones/{phone_id}", params: &[] },
    Operation { client_method: "delete_user", method: "DELETE", path: "/admin/v1/users/{user_id}", params: &[] },
];

/// `add_phone` of a mobile number: a phone not yet activated (no Duo Mobile on it), whose
/// capabilities are those of the number alone (Duo's "Create Phone" response).
pub const NEW_MOBILE_CAPABILITIES: &[&str] = &["sms", "phone"];

/// A bypass code as `GET /admin/v1/bypass_codes` lists it (documentation: "Retrieve Bypass
/// Codes"): its id, and the user it belongs to under `user`.
pub const BYPASS_CODE_FIELDS: &[&str] = &["bypass_code_id", "user"];

/// `delete_bypass_code_by_id`: "If the bypass code is already deleted, does nothing."
pub const DELETE_IS_IDEMPOTENT: bool = true;

/// The operation a request is: by method, path and the parameters sent (`{…}` matches one
/// segment; a literal segment wins over a template, as `users/enroll` over `users/{user_id}`).
pub fn operation(method: &str, segments: &[&str], params: &[String]) -> Option<&'static Operation> {
    let matches = |op: &&Operation, literal_only: bool| {
        let template: Vec<&str> = op.path.trim_start_matches('/').split('/').collect();
        op.method == method
            && template.len() == segments.len()
            && template.iter().zip(segments).all(|(t, s)| (!literal_only && t.starts_with('{')) || t == s)
            && params.iter().all(|p| op.params.contains(&p.as_str()))
    };
    OPERATIONS.iter().find(|op| matches(op, true)).or_else(|| OPERATIONS.iter().find(|op| matches(op, false)))
}

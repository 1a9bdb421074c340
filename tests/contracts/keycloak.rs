//! What keyward's Keycloak client (`src/providers/keycloak`) depends on in Keycloak's Admin
//! REST API, recorded once, for the mock (`tests/support/keycloak_mock.rs`) to answer from and
//! for `tests/keycloak.rs` to check against the real server.
//!
//! Sources: Keycloak's Admin REST API description for 26.7 (the OpenAPI document generated from
//! keycloak/keycloak `services/src/main/java/org/keycloak/services/resources/admin/UserResource.java`
//! and `UsersResource.java`, published as https://www.keycloak.org/docs-api/26.7.4/rest-api/ ;
//! operations `adminRealmsRealmUsersGet`, `…UsersUserIdCredentialsGet`,
//! `…UsersUserIdCredentialsCredentialIdDelete`, `…UsersUserIdConfiguredUserStorageCredentialTypesGet`,
//! `…UsersUserIdPut`; schema `CredentialRepresentation` {id, type, userLabel, createdDate,
//! secretData, credentialData, priority, value, temporary}), the admin client's `UserResource`
//! interface (keycloak/keycloak `integration/admin-client`), and where the description is
//! silent (error bodies, merge or replace, the `credentialData` format) the real Keycloak
//! 26.7.4 as `scripts/keycloak.sh` runs it — each such fact is asserted on that server by
//! `tests/keycloak.rs::the_recorded_contract_holds_on_the_real_server`.
//! The spec files themselves are not copied here.
#![allow(dead_code)]

use serde_json::{Value, json};

/// The Keycloak release these facts were checked against.
pub const VERSION: &str = "26.7.4";

/// `GET /admin/realms/{realm}/users`: offset paging by `first` (0-based) and `max`; a page
/// shorter than `max` is the last. `briefRepresentation=true` carries `id`, `username` and
/// `email`, but `federationLink` only in some versions (`ModelToRepresentation.toBriefRepresentation`
/// differs across releases), so keyward lists full representations. Service-account users are
/// not listed.
pub const LIST_PARAMS: [&str; 3] = ["first", "max", "briefRepresentation"];
/// Lookup by name: `username=<u>&exact=true` or `email=<e>&exact=true`; both match without
/// regard to case.
pub const LOOKUP_PARAMS: [&str; 3] = ["username", "email", "exact"];
/// Fields of a user keyward reads.
pub const USER_FIELDS: [&str; 5] = ["id", "username", "email", "federationLink", "requiredActions"];

/// Credential `type`s Keycloak ships (CredentialRepresentation.type); `password` is not a
/// second factor.
pub const CREDENTIAL_TYPES: [&str; 5] =
    ["password", "otp", "webauthn", "webauthn-passwordless", "recovery-authn-codes"];
/// Fields of a credential keyward reads. Keycloak 26 sends no `priority` in this listing.
pub const CREDENTIAL_FIELDS: [&str; 3] = ["id", "type", "credentialData"];

/// `credentialData` is a JSON document *in a string*; for `otp` it names the subtype.
pub fn otp_credential_data(sub_type: &str) -> String {
    json!({"subType": sub_type, "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}).to_string()
}

/// One credential as `GET …/users/{id}/credentials` lists it.
pub fn credential(id: &str, credential_type: &str, created: u64) -> Value {
    let mut c = json!({"id": id, "type": credential_type, "createdDate": created});
    match credential_type {
        "otp" => {
            c["userLabel"] = json!("phone");
            c["credentialData"] = json!(otp_credential_data("totp"));
        }
        "recovery-authn-codes" => {
            c["userLabel"] = json!("Recovery codes");
            c["credentialData"] = json!(r#"{"algorithm":"SHA-512","totalCodes":12,"remainingCodes":12}"#);
        }
        "password" => {
            c["credentialData"] = json!(r#"{"hashIterations":5,"algorithm":"argon2","additionalParameters":{}}"#);
        }
        _ => c["credentialData"] = json!("{}"),
    }
    c
}

/// `GET …/users/{id}/configured-user-storage-credential-types`: the credential types the
/// user's user storage provides — always `[]` for a user held in Keycloak's own database. They
/// are not listed by `/credentials`.
pub const STORAGE_CREDENTIAL_TYPES: &str = "configured-user-storage-credential-types";

/// Admin REST errors are `{"error": <message>}` (not `errorMessage`, which older versions
/// sent), with these messages.
pub fn admin_error(message: &str) -> Value {
    json!({"error": message})
}
pub const USER_NOT_FOUND: &str = "User not found";
pub const CREDENTIAL_NOT_FOUND: &str = "Credential not found";
pub const REALM_NOT_FOUND: &str = "Realm not found.";

/// `DELETE …/credentials/{id}`: 204; the same again (or a missing user) 404.
pub const DELETED: u16 = 204;
pub const NOT_FOUND: u16 = 404;

/// `UserResource.removeCredential` looks the id up among the user's *stored* credentials
/// (`user.credentialManager().getStoredCredentialById`) and answers 404 `Credential not found`
/// when it is not there. For a user from a user storage (`federationLink`), `/credentials` may
/// list a credential the storage provides: its delete is that 404 while the credential stays,
/// and is still usable. Read from the source only: no user storage runs here (as
/// `STORAGE_CREDENTIAL_TYPES`).
pub const STORAGE_HELD_DELETE: u16 = NOT_FOUND;

/// `PUT …/users/{id}` merges: fields absent from the body are kept; `requiredActions`, when
/// given, replaces the list (actions not in it are removed). 204.
pub const UPDATED: u16 = 204;

/// The token endpoint refuses a wrong client secret with 401 and this body.
pub fn token_refused() -> Value {
    json!({"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"})
}

/// Required actions that ask a user to enrol a factor at the next login (aliases as
/// `GET …/authentication/required-actions` lists them).
pub const REQUIRED_ACTIONS: [(&str, &str); 3] = [
    ("totp", "CONFIGURE_TOTP"),
    ("webauthn", "webauthn-register"),
    ("recovery-codes", "CONFIGURE_RECOVERY_AUTHN_CODES"),
];

//! A stateful fake of Keycloak's Admin REST API and token endpoint, answering from the facts in
//! `tests/contracts/keycloak.rs` (which `tests/keycloak.rs` checks on the real server). Used
//! by `tests/providers_keycloak.rs` for what a real server cannot be made to do (429s, a page
//! that fails, 1-second tokens, a user from a user storage) and by `tests/keycloak.rs` to run
//! one scenario against both and compare.
//!
//! Include at the crate root beside `mod providers_support;` and
//! `#[path = "contracts/keycloak.rs"] mod kc_contract;`.
#![allow(dead_code)]

use crate::kc_contract as contract;
use crate::providers_support::{form, header, json, query, segments};
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    /// (id, type)
    pub credentials: Vec<(String, String)>,
    pub required: Vec<String>,
    pub first_name: String,
    /// Set for a user from a user storage, with the credential types that storage provides.
    pub federation_link: Option<String>,
    pub storage_types: Vec<String>,
    /// (id, type) of credentials the user storage holds that `/credentials` lists but the
    /// delete does not find among Keycloak's stored ones (contract::STORAGE_HELD_DELETE).
    pub storage_credentials: Vec<(String, String)>,
}

/// The client secret and admin password the fake accepts: canaries (they start with
/// `kwCANARY-`, see tests/support/shown.rs), which nothing keyward shows may contain.
pub const CLIENT_SECRET: &str = "kwCANARY-keycloak-client-secret";
pub const ADMIN_PASSWORD: &str = "kwCANARY-keycloak-admin-password";

pub struct Keycloak {
    pub realm: String,
    /// The realm keyward's client authenticates against (the managed realm or `master`).
    pub client_id: String,
    pub client_secret: String,
    pub users: Vec<User>,
    pub issued: Vec<String>,
    pub expired: Vec<String>,
    pub token_lifetime: u64,
    pub throttle_next: bool,
    /// `METHOD path?query` of every request.
    pub log: Vec<String>,
    /// `METHOD path?query -> status` of every request, for comparison with the real server.
    pub exchanges: Vec<(String, u16)>,
    /// The user listing answers 503 this many times at this `first`.
    pub fail_listing_at: Option<(usize, u32)>,
    /// `first` of every user listing page served.
    pub listed: Vec<usize>,
    /// `configured-user-storage-credential-types` answers 500.
    pub storage_types_fail: bool,
}

impl Default for Keycloak {
    fn default() -> Self {
        Keycloak {
            realm: "corp".into(),
            client_id: "keyward".into(),
            client_secret: CLIENT_SECRET.into(),
            users: vec![],
            issued: vec![],
            expired: vec![],
            token_lifetime: 0,
            throttle_next: false,
            log: vec![],
            exchanges: vec![],
            fail_listing_at: None,
            listed: vec![],
            storage_types_fail: false,
        }
    }
}

pub fn error(status: u16, message: &str) -> ResponseTemplate {
    json(status, contract::admin_error(message))
}

fn user_json(u: &User, brief: bool) -> Value {
    let mut v =
        json!({"id": u.id, "username": u.username, "email": u.email, "enabled": true, "firstName": u.first_name});
    if brief {
        return v; // without federationLink, as some versions answer (contract::LIST_PARAMS)
    }
    if let Some(link) = &u.federation_link {
        v["federationLink"] = json!(link);
    }
    v["requiredActions"] = json!(u.required);
    v
}

/// Answers one request from the state, and records it.
pub fn handle(s: &mut Keycloak, r: &Request) -> ResponseTemplate {
    let target = match r.url.query() {
        Some(q) => format!("{} {}?{q}", r.method, r.url.path()),
        None => format!("{} {}", r.method, r.url.path()),
    };
    s.log.push(format!("{} {}", r.method, r.url.path()));
    let (status, response) = answer(s, r);
    s.exchanges.push((target, status));
    response
}

fn answer(s: &mut Keycloak, r: &Request) -> (u16, ResponseTemplate) {
    let path = segments(r);
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let realm = s.realm.clone();
    if let ["realms", auth_realm, "protocol", "openid-connect", "token"] = p.as_slice() {
        let f = form(r);
        let ok = (*auth_realm == "master" || *auth_realm == realm)
            && match f.get("grant_type").map(String::as_str) {
                Some("client_credentials") => {
                    f.get("client_id") == Some(&s.client_id) && f.get("client_secret") == Some(&s.client_secret)
                }
                Some("password") => {
                    f.get("client_id").map(String::as_str) == Some("admin-cli")
                        && f.get("username").map(String::as_str) == Some("admin")
                        && f.get("password").map(String::as_str) == Some(ADMIN_PASSWORD)
                }
                _ => false,
            };
        if !ok {
            return (401, json(401, contract::token_refused()));
        }
        let token = format!("kc{}", s.issued.len());
        s.issued.push(token.clone());
        let lifetime = if s.token_lifetime == 0 { 60 } else { s.token_lifetime };
        return (200, json(200, json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})));
    }
    let auth = header(r, "authorization");
    if !auth
        .strip_prefix("Bearer ")
        .is_some_and(|t| s.issued.iter().any(|i| i == t) && !s.expired.iter().any(|e| e == t))
    {
        return (401, json(401, json!({"error": "HTTP 401 Unauthorized"})));
    }
    if std::mem::take(&mut s.throttle_next) {
        return (429, error(429, "Too many requests").insert_header("Retry-After", "0"));
    }
    let find = |s: &Keycloak, id: &str| s.users.iter().position(|u| u.id == id);
    let ["admin", "realms", name, rest @ ..] = p.as_slice() else { return (404, error(404, "Not found")) };
    if *name != realm {
        return (404, error(404, contract::REALM_NOT_FOUND));
    }
    match (r.method.as_str(), rest) {
        ("GET", []) => (200, json(200, json!({"realm": realm}))),
        ("GET", ["users"]) => {
            let lower = |v: &str| v.to_ascii_lowercase();
            let brief = query(r, "briefRepresentation").as_deref() == Some("true");
            let matches: Vec<&User> = if let Some(name) = query(r, "username") {
                assert_eq!(query(r, "exact").as_deref(), Some("true"));
                s.users.iter().filter(|u| lower(&u.username) == lower(&name)).collect()
            } else if let Some(email) = query(r, "email") {
                s.users.iter().filter(|u| lower(&u.email) == lower(&email)).collect()
            } else {
                let first: usize = query(r, "first").and_then(|v| v.parse().ok()).unwrap_or(0);
                let max: usize = query(r, "max").and_then(|v| v.parse().ok()).unwrap_or(100);
                if let Some((_, left)) = s.fail_listing_at.as_mut().filter(|(at, left)| *at == first && *left > 0) {
                    *left -= 1;
                    return (503, error(503, "Service Unavailable"));
                }
                s.listed.push(first);
                s.users.iter().skip(first).take(max).collect()
            };
            (200, json(200, Value::Array(matches.iter().map(|u| user_json(u, brief)).collect())))
        }
        ("GET", ["users", id]) => match find(s, id) {
            Some(i) => (200, json(200, user_json(&s.users[i], false))),
            None => (404, error(404, contract::USER_NOT_FOUND)),
        },
        ("PUT", ["users", id]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            let Some(i) = find(s, id) else { return (404, error(404, contract::USER_NOT_FOUND)) };
            // Merge: only what the body names changes (contract::UPDATED).
            if let Some(actions) = body["requiredActions"].as_array() {
                s.users[i].required = actions.iter().filter_map(|a| a.as_str().map(String::from)).collect();
            }
            if let Some(first) = body["firstName"].as_str() {
                s.users[i].first_name = first.to_string();
            }
            (contract::UPDATED, ResponseTemplate::new(contract::UPDATED))
        }
        ("GET", ["users", id, "credentials"]) => match find(s, id) {
            Some(i) => {
                let user = &s.users[i];
                let held = user.storage_credentials.iter().filter(|_| user.federation_link.is_some());
                let list = user
                    .credentials
                    .iter()
                    .chain(held)
                    .map(|(id, kind)| contract::credential(id, kind, 1_700_000_000_000));
                (200, json(200, Value::Array(list.collect())))
            }
            None => (404, error(404, contract::USER_NOT_FOUND)),
        },
        ("GET", ["users", _, t]) if *t == contract::STORAGE_CREDENTIAL_TYPES && s.storage_types_fail => {
            (500, error(500, "unknown_error"))
        }
        ("GET", ["users", id, t]) if *t == contract::STORAGE_CREDENTIAL_TYPES => match find(s, id) {
            Some(i) => (200, json(200, json!(s.users[i].storage_types))),
            None => (404, error(404, contract::USER_NOT_FOUND)),
        },
        ("DELETE", ["users", id, "credentials", cid]) => {
            let Some(i) = find(s, id) else { return (404, error(404, contract::USER_NOT_FOUND)) };
            let before = s.users[i].credentials.len();
            s.users[i].credentials.retain(|(c, _)| c != cid);
            if s.users[i].credentials.len() == before {
                (contract::NOT_FOUND, error(contract::NOT_FOUND, contract::CREDENTIAL_NOT_FOUND))
            } else {
                (contract::DELETED, ResponseTemplate::new(contract::DELETED))
            }
        }
        _ => (404, error(404, "Not found")),
    }
}

pub fn user(id: &str, username: &str, credentials: &[(&str, &str)]) -> User {
    User {
        id: id.into(),
        username: username.into(),
        email: format!("{username}@acme.example"),
        credentials: credentials.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        required: vec![],
        first_name: username.into(),
        federation_link: None,
        storage_types: vec![],
        storage_credentials: vec![],
    }
}

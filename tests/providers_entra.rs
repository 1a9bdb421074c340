//! Entra ID against a stateful fake of Microsoft Graph and its token endpoint (docs/providers.md):
//! client secret and certificate assertions, @odata.nextLink paging, 429 with Retry-After,
//! 401 then a new token, the default method deleted last, the mobile phone after the
//! alternate one, 404 on a second delete; then plan/apply through the keyward binary.
//!
//! The fake answers from the facts recorded from Graph's v1.0 metadata and API reference
//! (`tests/contracts/entra.rs`): a path, a query option or a delete path they do not declare
//! is refused with Graph's error shape, and answers carry the recorded property names only.

mod providers_support;

#[path = "contracts/entra.rs"]
mod contracts;

use contracts as graph;
use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider, ProviderKey};
use keyward::engine::Enrolment;
use keyward::providers::rest::Backoff;
use keyward::providers::{Provider, Revoked, UserQuery, connect_with};
use providers_support::*;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

const TENANT: &str = "acme-tenant";

struct Method {
    id: String,
    /// The type without `#microsoft.graph.`.
    odata: String,
    default: bool,
    phone_type: Option<&'static str>,
}

struct User {
    id: String,
    upn: String,
    /// Empty: the UPN.
    mail: String,
    methods: Vec<Method>,
}

/// A group: its direct user members and its nested groups.
#[derive(Default)]
struct Group {
    id: String,
    users: Vec<String>,
    groups: Vec<String>,
}

#[derive(Default)]
struct Graph {
    users: Vec<User>,
    groups: Vec<Group>,
    page_size: usize,
    issued: Vec<String>,
    expired: Vec<String>,
    certificate: bool,
    throttle_next: bool,
    /// The app lacks User.Read.All: group members come back with their id and type only.
    limited_information: bool,
    log: Vec<String>,
    /// The user listing answers 503 this many times at this `$skiptoken`.
    fail_users_at: Option<(usize, u32)>,
    /// `$skiptoken` of every user listing page served.
    listed: Vec<usize>,
    /// Method ids whose DELETE answers 404 although they stay (a path Graph does not serve).
    lost_deletes: Vec<String>,
    /// Requests refused because the recorded facts do not declare them.
    refused: Vec<String>,
    /// Secondary SMTP addresses (`smtp:` proxy addresses) by user id; each user's primary
    /// one is `SMTP:` its mail.
    aliases: Vec<(String, String)>,
    /// Answer every `$filter` with Graph's refusal (an unsupported query, a tenant quirk).
    refuse_filters: bool,
}

fn graph_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    json(status, graph::error_body(code, message))
}

/// The next page's link: this request's own query options (Graph keeps `$select` and `$top`
/// in its links) with its `$skiptoken`.
fn next_link(base: &str, r: &Request, skip: usize) -> String {
    let mut url = url::Url::parse(&format!("{base}{}", r.url.path())).expect("url");
    {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in r.url.query_pairs().filter(|(k, _)| k != graph::SERVER_PAGING_OPTION) {
            pairs.append_pair(&key, &value);
        }
        pairs.append_pair(graph::SERVER_PAGING_OPTION, &skip.to_string());
    }
    url.to_string()
}

fn page(items: Vec<Value>, skip: usize, size: usize, next: String) -> ResponseTemplate {
    let total = items.len();
    let mut body = json!({"value": items.into_iter().skip(skip).take(size).collect::<Vec<_>>()});
    if skip + size < total {
        body[graph::NEXT_LINK] = json!(next);
    }
    json(200, body)
}

/// A user as Graph serves it: the `$select`ed properties (each one Graph declares), the
/// type annotation on collections of directory objects.
fn user_json(u: &User, select: &[String], limited: bool) -> Value {
    let mut object = json!({"@odata.type": "#microsoft.graph.user", "id": u.id});
    if limited {
        return object;
    }
    for property in select {
        let value = match property.as_str() {
            "id" => json!(u.id),
            "userPrincipalName" => json!(u.upn),
            "mail" => json!(if u.mail.is_empty() { &u.upn } else { &u.mail }),
            "accountEnabled" => json!(true),
            _ => Value::Null,
        };
        object[property.as_str()] = value;
    }
    object
}

/// A method as listed: the recorded method properties, `phoneType` on phones only.
fn method_json(m: &Method) -> Value {
    let mut object = json!({});
    for property in graph::METHOD_PROPERTIES {
        match *property {
            "id" => object["id"] = json!(m.id),
            "@odata.type" => object["@odata.type"] = json!(format!("#microsoft.graph.{}", m.odata)),
            "phoneType" => {
                if let Some(t) = m.phone_type {
                    object["phoneType"] = json!(t);
                }
            }
            other => panic!("no fake value for method property {other}"),
        }
    }
    object
}

/// The users of a group, nested groups' included when `transitive`.
fn group_users(s: &Graph, group: &str, transitive: bool, seen: &mut Vec<String>) -> Vec<String> {
    let Some(g) = s.groups.iter().find(|g| g.id == group) else { return Vec::new() };
    if seen.contains(&g.id) {
        return Vec::new();
    }
    seen.push(g.id.clone());
    let mut users = g.users.clone();
    if transitive {
        for nested in &g.groups {
            users.extend(group_users(s, nested, true, seen));
        }
    }
    users.sort();
    users.dedup();
    users
}

/// Refuses what the recorded facts do not declare: the endpoint, its query options, `$top`
/// past the maximum, `$select` of a property Graph does not have.
fn contract_refusal(r: &Request, path: &[&str]) -> Option<ResponseTemplate> {
    if r.method.as_str() == "DELETE" {
        return match path {
            ["users", _, "authentication", rest @ ..] if graph::deleted_type(rest).is_some() => None,
            // `user-delete.md` (keyward conformance's clean-up).
            ["users", _] => None,
            _ => Some(graph_error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{}'", path.join("/")),
            )),
        };
    }
    let Some(endpoint) = graph::endpoint(r.method.as_str(), path) else {
        return Some(graph_error(
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{}'", path.join("/")),
        ));
    };
    for (key, value) in r.url.query_pairs() {
        if !endpoint.query.contains(&key.as_ref()) {
            return Some(graph_error(400, "BadRequest", &format!("Query option '{key}' is not allowed.")));
        }
        if key == "$top" && value.parse::<u32>().map_or(true, |n| n == 0 || n > graph::MAX_PAGE_SIZE) {
            return Some(graph_error(400, "Request_BadRequest", &format!("Invalid page size specified: '{value}'.")));
        }
        if let Some(unknown) = value.split(',').find(|p| key == "$select" && !graph::USER_PROPERTIES.contains(p)) {
            return Some(graph_error(
                400,
                "Request_BadRequest",
                &format!("Could not find a property named '{unknown}' on type 'microsoft.graph.user'."),
            ));
        }
    }
    None
}

fn handle(s: &mut Graph, r: &Request) -> ResponseTemplate {
    let base = base(r);
    let path = segments(r);
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    s.log.push(format!("{} {}", r.method, r.url.path()));
    if p == [TENANT, "oauth2", "v2.0", "token"] {
        let f = form(r);
        assert_eq!(f.get("grant_type").map(String::as_str), Some("client_credentials"));
        assert_eq!(f.get("client_id").map(String::as_str), Some("app-id"));
        assert_eq!(f.get("scope").map(String::as_str), Some(format!("{base}/.default").as_str()));
        if s.certificate {
            let assertion = f.get("client_assertion").cloned().unwrap_or_default();
            let (head, claims) = match verify_rs256(&assertion) {
                Ok(v) => v,
                Err(e) => return json(401, json!({"error": "invalid_client", "error_description": e})),
            };
            // The thumbprint of the test certificate, as Entra looks it up.
            let (_, der) = keyward::providers::jwt::pem_blocks(CERTIFICATE).expect("pem").remove(0);
            use sha2::Digest;
            let want =
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sha2::Sha256::digest(&der));
            assert_eq!(head["x5t#S256"], want);
            assert!(head["x5t"].is_string());
            assert_eq!(claims["aud"], format!("{base}/{TENANT}/oauth2/v2.0/token"));
            assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("app-id"), Some("app-id")));
        } else if f.get("client_secret").map(String::as_str) != Some(shown::ENTRA_SECRET) {
            return json(
                401,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        let token = format!("graph{}", s.issued.len());
        s.issued.push(token.clone());
        return json(200, json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}));
    }
    let auth = header(r, "authorization");
    let ok = auth
        .strip_prefix("Bearer ")
        .is_some_and(|t| s.issued.iter().any(|i| i == t) && !s.expired.iter().any(|e| e == t));
    if !ok {
        return graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.");
    }
    if std::mem::take(&mut s.throttle_next) {
        return graph_error(429, "TooManyRequests", "Too many requests").insert_header(graph::RETRY_AFTER, "1");
    }
    let Some(("v1.0", p)) = p.split_first().map(|(v, rest)| (*v, rest)) else {
        return graph_error(400, "BadRequest", "Invalid version");
    };
    if let Some(refusal) = contract_refusal(r, p) {
        s.refused.push(format!("{} {}", r.method, r.url));
        return refusal;
    }
    let size = if s.page_size == 0 { 100 } else { s.page_size };
    let skip: usize = query(r, graph::SERVER_PAGING_OPTION).and_then(|t| t.parse().ok()).unwrap_or(0);
    let select: Vec<String> = query(r, "$select").map(|v| v.split(',').map(String::from).collect()).unwrap_or_default();
    let find = |s: &Graph, key: &str| s.users.iter().position(|u| u.id == key || u.upn.eq_ignore_ascii_case(key));
    match (r.method.as_str(), p) {
        ("GET", ["users"]) if query(r, "$filter").is_some() => {
            let filter = query(r, "$filter").unwrap_or_default();
            let address = graph::address_filter(&filter).filter(|_| !s.refuse_filters);
            let Some(address) = address else {
                s.refused.push(format!("{} {}", r.method, r.url));
                return graph_error(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified for property 'mail' of resource 'User'.",
                );
            };
            // Directory string comparisons ignore case.
            let smtp = format!("{}{address}", graph::SECONDARY_SMTP_PREFIX).to_lowercase();
            let items = s
                .users
                .iter()
                .filter(|u| {
                    let mail = if u.mail.is_empty() { &u.upn } else { &u.mail };
                    let mut proxies = vec![format!("{}{mail}", graph::PRIMARY_SMTP_PREFIX)];
                    proxies.extend(s.aliases.iter().filter(|(id, _)| *id == u.id).map(|(_, a)| a.clone()));
                    mail.eq_ignore_ascii_case(&address) || proxies.iter().any(|p| p.to_lowercase() == smtp)
                })
                .map(|u| user_json(u, &select, false))
                .collect();
            page(items, skip, size, next_link(&base, r, skip + size))
        }
        ("GET", ["users"]) => {
            if let Some((_, left)) = s.fail_users_at.as_mut().filter(|(at, left)| *at == skip && *left > 0) {
                *left -= 1;
                return graph_error(503, "serviceNotAvailable", "Service Unavailable");
            }
            s.listed.push(skip);
            let items = s.users.iter().map(|u| user_json(u, &select, false)).collect();
            page(items, skip, size, next_link(&base, r, skip + size))
        }
        ("GET", ["groups", group, members, "microsoft.graph.user"]) => {
            if !s.groups.iter().any(|g| g.id == *group) {
                return graph_error(404, "Request_ResourceNotFound", "Resource does not exist");
            }
            let ids = group_users(s, group, *members == graph::GROUP_MEMBERS, &mut Vec::new());
            let items = s
                .users
                .iter()
                .filter(|u| ids.contains(&u.id))
                .map(|u| user_json(u, &select, s.limited_information))
                .collect();
            page(items, skip, size, next_link(&base, r, skip + size))
        }
        ("GET", ["users", key]) => match find(s, key) {
            Some(i) => json(200, user_json(&s.users[i], &select, false)),
            None => graph_error(404, "Request_ResourceNotFound", "Resource does not exist"),
        },
        ("GET", ["users", key, "authentication", "methods"]) => {
            let Some(i) = find(s, key) else { return graph_error(404, "Request_ResourceNotFound", "no user") };
            let password = Method {
                id: "28c10230-6103-485e-b985-444c60001490".into(),
                odata: "passwordAuthenticationMethod".into(),
                default: false,
                phone_type: None,
            };
            let items: Vec<Value> = std::iter::once(&password).chain(&s.users[i].methods).map(method_json).collect();
            page(items, skip, size, next_link(&base, r, skip + size))
        }
        ("POST", ["users"]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("json body");
            if let Some(missing) = graph::NEW_USER_REQUIRED.iter().find(|p| body.get(**p).is_none()) {
                return graph_error(
                    400,
                    "Request_BadRequest",
                    &format!("A value is required for property '{missing}'."),
                );
            }
            let upn = body["userPrincipalName"].as_str().unwrap_or_default().to_string();
            if s.users.iter().any(|u| u.upn.eq_ignore_ascii_case(&upn)) {
                return graph_error(
                    400,
                    "Request_BadRequest",
                    "Another object with the same value for property userPrincipalName already exists.",
                );
            }
            let id = format!("test-{}", s.users.len());
            s.users.push(User { id: id.clone(), upn: upn.clone(), mail: String::new(), methods: Vec::new() });
            json(201, json!({"id": id, "userPrincipalName": upn}))
        }
        ("POST", ["users", key, "authentication", "phoneMethods"]) => {
            let Some(i) = find(s, key) else { return graph_error(404, "Request_ResourceNotFound", "no user") };
            let body: Value = serde_json::from_slice(&r.body).expect("json body");
            let phone_type = body["phoneType"].as_str().unwrap_or_default();
            let Some(&(phone_type, id)) = graph::PHONE_IDS.iter().find(|(t, _)| *t == phone_type) else {
                return graph_error(400, "badRequest", "Invalid phoneType");
            };
            s.users[i].methods.push(Method {
                id: id.into(),
                odata: "phoneAuthenticationMethod".into(),
                default: false,
                phone_type: Some(phone_type),
            });
            json(201, json!({"id": id, "phoneNumber": body["phoneNumber"], "phoneType": phone_type}))
        }
        ("DELETE", ["users", key]) => {
            let Some(i) = find(s, key) else { return graph_error(404, "Request_ResourceNotFound", "no user") };
            s.users.remove(i);
            ResponseTemplate::new(204)
        }
        ("DELETE", ["users", key, "authentication", rest @ ..]) => {
            let Some(i) = find(s, key) else { return graph_error(404, "Request_ResourceNotFound", "no user") };
            let deleted = graph::deleted_type(rest).expect("checked by contract_refusal");
            if rest.get(1).is_some_and(|id| s.lost_deletes.iter().any(|l| l == id)) {
                return graph_error(404, "itemNotFound", "The requested resource doesn't exist.");
            }
            let user = &mut s.users[i];
            let Some(pos) =
                user.methods.iter().position(|m| m.odata == deleted && (rest.len() == 1 || m.id == rest[1]))
            else {
                return graph_error(404, "itemNotFound", "The requested resource doesn't exist.");
            };
            if user.methods[pos].default && user.methods.len() > 1 {
                return graph_error(
                    400,
                    "badRequest",
                    "Cannot delete default method with other methods configured. Please change the default method first.",
                );
            }
            // "A user can't have an alternateMobile number without a mobile number."
            let has = |t: &str| user.methods.iter().any(|m| m.phone_type == Some(t));
            if user.methods[pos].phone_type == Some("mobile") && has("alternateMobile") {
                return graph_error(
                    400,
                    "badRequest",
                    "A user can't have an alternateMobile number without a mobile number.",
                );
            }
            user.methods.remove(pos);
            ResponseTemplate::new(204)
        }
        _ => graph_error(400, "BadRequest", "Resource not found for the segment"),
    }
}

fn m(id: &str, odata: &str, default: bool) -> Method {
    Method { id: id.into(), odata: odata.into(), default, phone_type: None }
}

/// A phone of `phone_type`, under the id Graph fixes for it.
fn phone(phone_type: &'static str, default: bool) -> Method {
    let id = graph::PHONE_IDS.iter().find(|(t, _)| *t == phone_type).map(|(_, id)| *id).expect("phone type");
    Method { id: id.into(), odata: "phoneAuthenticationMethod".into(), default, phone_type: Some(phone_type) }
}

const MOBILE: &str = "3179e48a-750b-4051-897c-87b9720928f7";

fn acme() -> Graph {
    let authenticator = "microsoftAuthenticatorAuthenticationMethod";
    Graph {
        users: vec![
            User {
                id: "a-1".into(),
                upn: "alice@acme.example".into(),
                mail: String::new(),
                methods: vec![m("ma", authenticator, true)],
            },
            User {
                id: "b-2".into(),
                upn: "bob@acme.example".into(),
                mail: String::new(),
                methods: vec![m("mb", authenticator, true), phone("mobile", false)],
            },
            User {
                id: "d-3".into(),
                upn: "dave@acme.example".into(),
                mail: String::new(),
                // The default method comes first: deleting in listing order hits the refusal.
                methods: vec![
                    m("md", authenticator, true),
                    m("fd", "fido2AuthenticationMethod", false),
                    phone("mobile", false),
                ],
            },
        ],
        ..Default::default()
    }
}

fn provider(url: &str, method: &str, extra: &str) -> MfaProvider {
    let yaml = format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp, namespace: acme}}\nspec:\n  entraId:\n    tenantId: {TENANT}\n    authorityUrl: {url}\n    graphUrl: {url}\n    credentials: {{method: {method}, secretRef: {{name: entra}}}}\n{extra}"
    );
    serde_yaml::from_str(&yaml).expect("provider")
}

fn secrets(key: &str) -> Option<String> {
    match key {
        "clientId" => Some("app-id".into()),
        "clientSecret" => Some(shown::ENTRA_SECRET.into()),
        "certificate" => Some(CERTIFICATE.into()),
        "privateKey" => Some(RSA_KEY.into()),
        _ => None,
    }
}

fn backend(url: &str, method: &str, extra: &str) -> Provider {
    connect_with(&provider(url, method, extra), &|_, k| secrets(k), Backoff::quick()).expect("connect")
}

#[tokio::test]
async fn pages_of_users_and_methods_with_a_throttle_and_a_renewed_token() {
    let mut state = acme();
    state.page_size = 2;
    state.throttle_next = true;
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "  scope: All\n");
    let inventory = entra.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
    assert_eq!(inventory.users.len(), 3);
    let dave = inventory.users.iter().find(|u| u.name == "dave@acme.example").expect("dave");
    let mut kinds: Vec<String> = dave.enrolments.iter().map(|e| e.kind.to_string()).collect();
    kinds.sort();
    assert_eq!(kinds, ["push", "sms", "webauthn"], "three methods over two pages, the password left out");
    assert!(dave.enrolments.iter().any(|e| e.id == format!("phoneMethods/{MOBILE}")));
    assert_eq!(state.lock().expect("state").issued.len(), 1);
    let first = state.lock().expect("state").issued[0].clone();
    state.lock().expect("state").expired.push(first);
    entra.check().await.expect("check after 401 renews the token");
    assert_eq!(state.lock().expect("state").issued.len(), 2);
}

/// A user listing that fails mid-way (an outage outlasting the request's retries) fails the
/// read, and the next read goes on from the failed page instead of page 1.
#[tokio::test]
async fn a_user_listing_that_failed_mid_way_resumes_from_the_failed_page() {
    let mut state = acme();
    state.page_size = 1;
    state.fail_users_at = Some((2, 3)); // three 503s: more than Backoff::quick's 3 attempts
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "  scope: All\n");
    let query = UserQuery { declared: vec![], all: true };
    let error = entra.inventory(&query).await.expect_err("the outage outlasts the retries");
    assert!(error.to_string().contains("503"), "{error}");
    let inventory = entra.inventory(&query).await.expect("resumed");
    let mut names: Vec<&str> = inventory.users.iter().map(|u| u.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["alice@acme.example", "bob@acme.example", "dave@acme.example"]);
    assert_eq!(state.lock().expect("state").listed, [0, 1, 2], "pages 0 and 1 were read once");
    // Finished: the next sweep lists from the start again.
    entra.inventory(&query).await.expect("inventory");
    assert_eq!(state.lock().expect("state").listed, [0, 1, 2, 0, 1, 2]);
}

#[tokio::test]
async fn certificate_credentials_sign_an_assertion_with_the_thumbprint() {
    let mut state = acme();
    state.certificate = true;
    let (server, state) = serve(state, handle).await;
    backend(&server.uri(), "Certificate", "").check().await.expect("check");
    assert_eq!(state.lock().expect("state").issued.len(), 1);
    let bad = connect_with(
        &provider(&server.uri(), "Certificate", ""),
        &|_, k| if k == "certificate" { Some("junk".into()) } else { secrets(k) },
        Backoff::quick(),
    );
    assert!(bad.err().expect("bad certificate").to_string().contains("certificate: no CERTIFICATE block"));
}

#[tokio::test]
async fn the_default_method_goes_last_and_a_second_delete_is_already_gone() {
    let (server, state) = serve(acme(), handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let e = |id: &str, kind: &str| Enrolment::new(id, FactorKind::new(kind), true);
    let phone = e(&format!("phoneMethods/{MOBILE}"), "sms");
    let (default, key) = (e("microsoftAuthenticatorMethods/md", "push"), e("fido2Methods/fd", "webauthn"));
    let del = RevocationMode::Delete;
    // As the sweep runs them: concurrently, the default one first.
    let (a, b, c) = tokio::join!(
        entra.revoke("dave@acme.example", &default, del),
        entra.revoke("dave@acme.example", &key, del),
        entra.revoke("dave@acme.example", &phone, del)
    );
    assert_eq!((a, b, c), (Ok(Revoked::Done), Ok(Revoked::Done), Ok(Revoked::Done)));
    assert!(state.lock().expect("state").users[2].methods.is_empty());
    assert_eq!(entra.revoke("dave@acme.example", &key, del).await, Ok(Revoked::AlreadyGone));
    assert_eq!(entra.revoke("nobody@acme.example", &key, del).await, Ok(Revoked::AlreadyGone));
}

/// A user deleted and re-created under the same UPN has a new object id: the next sweep lists
/// the new user's methods (a cached id would 404 and skip the user for good), and a revocation
/// that meets a stale id asks Graph again instead of calling the method "already gone".
#[tokio::test]
async fn a_re_created_user_is_found_again_by_the_next_sweep_and_after_a_404() {
    let (server, state) = serve(acme(), handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let query = UserQuery { declared: vec!["alice@acme.example".into()], all: false };
    assert_eq!(entra.inventory(&query).await.expect("inventory").users[0].enrolments.len(), 1);

    let recreate = |id: &str, method: &str| {
        let mut s = state.lock().expect("state");
        s.users.retain(|u| u.upn != "alice@acme.example");
        s.users.push(User {
            id: id.into(),
            upn: "alice@acme.example".into(),
            mail: String::new(),
            methods: vec![m(method, "fido2AuthenticationMethod", false)],
        });
    };
    recreate("a-2", "k2");
    let second = entra.inventory(&query).await.expect("inventory");
    let ids: Vec<&str> = second.users.iter().flat_map(|u| u.enrolments.iter().map(|e| e.id.as_str())).collect();
    assert_eq!(ids, ["fido2Methods/k2"], "the full sweep looked the UPN up again");

    recreate("a-3", "k3");
    let key = Enrolment::new("fido2Methods/k3", FactorKind::new("webauthn"), true);
    assert_eq!(entra.revoke("alice@acme.example", &key, RevocationMode::Delete).await, Ok(Revoked::Done));
    let s = state.lock().expect("state");
    assert!(s.users.iter().find(|u| u.id == "a-3").expect("alice").methods.is_empty());
}

/// `scope: All`: one user's UPN is another's mail. Both are listed under the name, and a
/// revocation by that name touches neither.
#[tokio::test]
async fn two_users_with_one_name_are_a_conflict_never_a_guess() {
    let mut state = acme();
    state.users.push(User {
        id: "x-9".into(),
        upn: "alice.contractor@acme.example".into(),
        mail: "alice@acme.example".into(),
        methods: vec![m("mx", "fido2AuthenticationMethod", false)],
    });
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "  scope: All\n");
    let inventory = entra
        .inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: true })
        .await
        .expect("inventory");
    assert_eq!(inventory.duplicate_names().into_iter().collect::<Vec<_>>(), ["alice@acme.example"]);
    assert_eq!(inventory.users.iter().filter(|u| u.name == "alice@acme.example").count(), 2);

    let key = Enrolment::new("fido2Methods/mx", FactorKind::new("webauthn"), true);
    let error = entra.revoke("alice@acme.example", &key, RevocationMode::Delete).await.expect_err("conflict");
    assert_eq!(error.category(), "identity_conflict", "{error}");
    let s = state.lock().expect("state");
    assert!(!s.log.iter().any(|l| l.starts_with("DELETE")), "{:?}", s.log);
}

#[tokio::test]
async fn a_default_method_kept_company_fails_clearly() {
    let (server, _state) = serve(acme(), handle).await;
    let mut provider = provider(&server.uri(), "ClientSecret", "");
    provider.spec.policy.max_requests_per_second = Some(200);
    let mut entra = keyward::providers::entra::Entra::new(
        "acme/corp",
        provider.spec.entra_id.as_deref().expect("block"),
        &keyward::providers::rest::TransportSettings { max_requests_per_second: Some(200), ca_bundle: None },
        keyward::providers::entra::EntraAuth::ClientSecret {
            client_id: "app-id".into(),
            client_secret: shown::ENTRA_SECRET.into(),
        },
        Backoff::quick(),
    )
    .expect("entra");
    entra.set_default_wait(std::time::Duration::from_millis(300));
    let entra = Provider::new(ProviderKey::new("acme", "corp"), entra);
    let default = Enrolment::new("microsoftAuthenticatorMethods/mb", FactorKind::new("push"), true);
    let err = entra.revoke("bob@acme.example", &default, RevocationMode::Delete).await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("revoke enrolment microsoftAuthenticatorMethods/mb of bob@acme.example on acme/corp"),
        "{text}"
    );
    assert!(text.contains("default method and can only be deleted last") && text.contains("(sms)"), "{text}");
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_error() {
    let (server, _state) = serve(acme(), handle).await;
    let entra = connect_with(
        &provider(&server.uri(), "ClientSecret", ""),
        &|_, k| if k == "clientSecret" { Some("nope".into()) } else { secrets(k) },
        Backoff::quick(),
    )
    .expect("connect");
    let err = entra.check().await.expect_err("rejected");
    assert!(err.to_string().contains("invalid_client: AADSTS7000215"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_revoke_the_leaver_and_the_out_of_band_phone_only() {
    let (server, state) = serve(acme(), handle).await;
    let url = server.uri();
    let block = format!(
        "  entraId:\n    tenantId: {TENANT}\n    authorityUrl: {url}\n    graphUrl: {url}\n    credentials: {{secretRef: {{name: corp-admin}}}}"
    );
    let tree = company(&block, &format!("  clientId: app-id\n  clientSecret: {}", shown::ENTRA_SECRET), "push");
    let (code, plan_before) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan_before}");
    assert_eq!(
        actions(&plan_before),
        [
            revoke("bob@acme.example", "sms", "NotEntitled"),
            revoke("dave@acme.example", "push", "EmployeeOffboarded"),
            revoke("dave@acme.example", "sms", "EmployeeOffboarded"),
            revoke("dave@acme.example", "webauthn", "EmployeeOffboarded"),
        ]
    );
    let (code, audit, stderr) = apply(tree.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(audit.len(), 4, "{audit:?}");
    {
        let s = state.lock().expect("state");
        let ids = |i: usize| s.users[i].methods.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!((ids(0), ids(1), ids(2)), (vec!["ma".to_string()], vec!["mb".to_string()], vec![]));
    }
    let (code, plan_after) = plan(tree.path()).await;
    assert_eq!((code, actions(&plan_after)), (0, vec![]), "{plan_after}");
    outage_revokes_nothing(tree.path(), &url).await;
}

fn entra_with(url: &str, extra: &str, wait_ms: u64) -> Provider {
    let provider = provider(url, "ClientSecret", extra);
    let mut entra = keyward::providers::entra::Entra::new(
        "acme/corp",
        provider.spec.entra_id.as_deref().expect("block"),
        &keyward::providers::rest::TransportSettings { max_requests_per_second: Some(200), ca_bundle: None },
        keyward::providers::entra::EntraAuth::ClientSecret {
            client_id: "app-id".into(),
            client_secret: shown::ENTRA_SECRET.into(),
        },
        Backoff::quick(),
    )
    .expect("entra");
    entra.set_default_wait(std::time::Duration::from_millis(wait_ms));
    Provider::new(ProviderKey::new("acme", "corp"), entra)
}

fn names(inventory: &keyward::engine::Inventory) -> Vec<String> {
    let mut names: Vec<String> = inventory.users.iter().map(|u| u.name.clone()).collect();
    names.sort();
    names
}

/// `scope: All` on a group: the members of its nested groups are its members too. With
/// `/members`, Bob (in a nested group) was never seen, so his leaving revoked nothing.
#[tokio::test]
async fn members_of_nested_groups_are_managed() {
    let mut state = acme();
    state.groups = vec![
        Group { id: "g-staff".into(), users: vec!["a-1".into()], groups: vec!["g-sre".into()] },
        Group { id: "g-sre".into(), users: vec!["b-2".into()], groups: vec!["g-staff".into()] },
    ];
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "    groupId: g-staff\n  scope: All\n");
    let inventory = entra.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
    assert_eq!(names(&inventory), ["alice@acme.example", "bob@acme.example"], "Dave is in no group");
    let log = &state.lock().expect("state").log;
    assert!(log.iter().any(|l| l.contains("/groups/g-staff/transitiveMembers/")), "{log:?}");
}

/// Without User.Read.All, Graph lists a group's users by id and type only. Nameless users
/// would all be undeclared and lose their methods: the listing fails instead.
#[tokio::test]
async fn a_group_listing_without_user_names_fails_the_read() {
    let mut state = acme();
    state.groups = vec![Group { id: "g-staff".into(), users: vec!["a-1".into(), "b-2".into()], groups: vec![] }];
    state.limited_information = true;
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "    groupId: g-staff\n  scope: All\n");
    let error = entra.inventory(&UserQuery { declared: vec![], all: true }).await.expect_err("no names");
    assert!(error.to_string().contains("User.Read.All"), "{error}");
    assert!(!state.lock().expect("state").log.iter().any(|l| l.contains("/authentication/")));
}

/// External MFA and QR code + PIN methods are listed under their kinds and deleted through
/// their own paths (a contained collection without `$ref`; the singleton).
#[tokio::test]
async fn external_and_qr_code_pin_methods_are_deleted() {
    let mut state = acme();
    state.users[0].methods.push(m("ex-1", "externalAuthenticationMethod", false));
    state.users[0].methods.push(m("qr-1", "qrCodePinAuthenticationMethod", false));
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let inventory = entra
        .inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false })
        .await
        .expect("inventory");
    let listed: Vec<Enrolment> =
        inventory.users[0].enrolments.iter().filter(|e| e.kind.as_str() != "push").cloned().collect();
    let mut kinds: Vec<&str> = listed.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["external", "qr-code-pin"]);
    for enrolment in &listed {
        let revoked = entra.revoke("alice@acme.example", enrolment, RevocationMode::Delete).await;
        assert_eq!(revoked, Ok(Revoked::Done), "{}", enrolment.id);
    }
    let s = state.lock().expect("state");
    let left: Vec<&str> = s.users[0].methods.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(left, ["ma"]);
    assert!(s.log.iter().any(|l| l == "DELETE /v1.0/users/a-1/authentication/externalAuthenticationMethods/ex-1"));
    assert!(s.log.iter().any(|l| l == "DELETE /v1.0/users/a-1/authentication/qrCodePinMethod"));
}

/// Graph refuses to delete the mobile phone while the alternate mobile remains: revoked
/// together (the mobile one first), the mobile phone waits for the alternate one.
#[tokio::test]
async fn the_mobile_phone_goes_after_the_alternate_one() {
    let mut state = acme();
    state.users[1].methods.push(phone("alternateMobile", false));
    let (server, state) = serve(state, handle).await;
    let entra = entra_with(&server.uri(), "", 3_000);
    let e = |id: &str| Enrolment::new(format!("phoneMethods/{id}"), FactorKind::new("sms"), true);
    let (mobile, alternate) = (e(MOBILE), e("b6332ec1-7057-4abe-9331-3d72feddfe41"));
    let del = RevocationMode::Delete;
    let (a, b) = tokio::join!(entra.revoke("bob@acme.example", &mobile, del), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        entra.revoke("bob@acme.example", &alternate, del).await
    });
    assert_eq!((a, b), (Ok(Revoked::Done), Ok(Revoked::Done)));
    {
        let s = state.lock().expect("state");
        let left: Vec<&str> = s.users[1].methods.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(left, ["mb"], "the default Authenticator stays");
    }

    // The alternate phone kept (entitled): the mobile one cannot go, and the error says why.
    state.lock().expect("state").users[1].methods.extend([phone("mobile", false), phone("alternateMobile", false)]);
    let entra = entra_with(&server.uri(), "", 300);
    let error = entra.revoke("bob@acme.example", &mobile, del).await.expect_err("alternate stays");
    assert!(error.to_string().contains("alternate mobile"), "{error}");
}

fn erin() -> User {
    User {
        id: "e-5".into(),
        upn: "erin.x@acme.onmicrosoft.example".into(),
        mail: "erin@acme.example".into(),
        methods: vec![m("fe", "fido2AuthenticationMethod", false)],
    }
}

/// `GET /users/{upn}` takes an id or a UPN only. With `userMapping: email`, a person whose
/// mail (or SMTP alias) is not the UPN would be "not found", and the sweep would read clean.
/// The lookup falls back to Graph's mail / proxy address filter, quotes included.
#[tokio::test]
async fn a_user_whose_mail_is_not_the_upn_is_found_by_mail_or_smtp_alias() {
    let mut state = acme();
    state.users.push(erin());
    state.users.push(User {
        id: "o-6".into(),
        upn: "obrien@acme.onmicrosoft.example".into(),
        mail: "o'brien@acme.example".into(),
        methods: vec![m("fo", "fido2AuthenticationMethod", false)],
    });
    state.aliases.push(("e-5".into(), "smtp:e.x@acme.example".into()));
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    for name in ["erin@acme.example", "E.X@acme.example", "o'brien@acme.example"] {
        let inventory =
            entra.inventory(&UserQuery { declared: vec![name.into()], all: false }).await.expect("inventory");
        assert_eq!(names(&inventory), [name], "found by address");
        let ids: Vec<&str> = inventory.users[0].enrolments.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
    }
    let erin = entra
        .inventory(&UserQuery { declared: vec!["erin@acme.example".into()], all: false })
        .await
        .expect("inventory");
    assert!(erin.users[0].aliases.contains(&"erin.x@acme.onmicrosoft.example".to_string()), "the UPN is a name too");
    let key = Enrolment::new("fido2Methods/fe", FactorKind::new("webauthn"), true);
    assert_eq!(entra.revoke("erin@acme.example", &key, RevocationMode::Delete).await, Ok(Revoked::Done));
    let nobody = UserQuery { declared: vec!["nobody@acme.example".into()], all: false };
    assert!(entra.inventory(&nobody).await.expect("no such user is no error").users.is_empty());
    let s = state.lock().expect("state");
    assert!(s.users[3].methods.is_empty(), "erin's key went");
    assert_eq!(s.refused, Vec::<String>::new(), "every lookup was a declared, default query");
}

/// A lookup by address that Graph refuses fails the read: "not found" only when Graph said so.
#[tokio::test]
async fn a_failed_lookup_by_mail_fails_the_read_never_reads_clean() {
    let mut state = acme();
    state.users.push(erin());
    state.refuse_filters = true;
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let query = UserQuery { declared: vec!["erin@acme.example".into()], all: false };
    let error = entra.inventory(&query).await.expect_err("the lookup failed");
    assert!(error.to_string().contains("Request_UnsupportedQuery"), "{error}");
    let key = Enrolment::new("fido2Methods/fe", FactorKind::new("webauthn"), true);
    let error = entra.revoke("erin@acme.example", &key, RevocationMode::Delete).await.expect_err("not gone");
    assert!(error.to_string().contains("400"), "{error}");
    assert!(!state.lock().expect("state").log.iter().any(|l| l.starts_with("DELETE")));
}

/// Two users answering one address (one's mail, another's SMTP alias): both are listed under
/// it, so the planner sees an identity conflict, and a revocation by that name is refused.
#[tokio::test]
async fn two_users_under_one_address_are_an_identity_conflict() {
    let mut state = acme();
    state.users.push(erin());
    state.aliases.push(("a-1".into(), "smtp:erin@acme.example".into()));
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let query = UserQuery { declared: vec!["erin@acme.example".into()], all: false };
    let inventory = entra.inventory(&query).await.expect("inventory");
    assert_eq!(inventory.duplicate_names().into_iter().collect::<Vec<_>>(), ["erin@acme.example"]);
    let key = Enrolment::new("fido2Methods/fe", FactorKind::new("webauthn"), true);
    let error = entra.revoke("erin@acme.example", &key, RevocationMode::Delete).await.expect_err("conflict");
    assert_eq!(error.category(), "identity_conflict", "{error}");
    assert!(!state.lock().expect("state").log.iter().any(|l| l.starts_with("DELETE")));
}

/// Each phone provides the kinds Graph documents for its `phoneType`: the mobile
/// phone SMS and voice calls, so a voice grant keeps it; the alternate mobile and office
/// phones voice calls only, so an SMS grant does not keep them.
#[tokio::test]
async fn phones_provide_what_graph_documents_for_their_phone_type() {
    let mut state = acme();
    state.users[1].methods.extend([phone("alternateMobile", false), phone("office", false)]);
    let (server, _state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let inventory =
        entra.inventory(&UserQuery { declared: vec!["bob@acme.example".into()], all: false }).await.expect("inventory");
    for (phone_type, uses) in graph::PHONE_TYPE_USES {
        let id = graph::PHONE_IDS.iter().find(|(t, _)| t == phone_type).map(|(_, id)| *id).expect("id");
        let listed = inventory.users[0]
            .enrolments
            .iter()
            .find(|e| e.id == format!("phoneMethods/{id}"))
            .unwrap_or_else(|| panic!("{phone_type} phone not listed"));
        let mut kinds: Vec<&str> = listed.kinds().map(FactorKind::as_str).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, *uses, "{phone_type}");
    }
}

/// A 404 to a delete is "already gone" only when the method is no longer listed: a path Graph
/// does not serve must not be recorded as a revocation.
#[tokio::test]
async fn a_404_for_a_method_still_listed_is_not_a_revocation() {
    let mut state = acme();
    state.lost_deletes.push("fd".into());
    let (server, state) = serve(state, handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let key = Enrolment::new("fido2Methods/fd", FactorKind::new("webauthn"), true);
    let error = entra.revoke("dave@acme.example", &key, RevocationMode::Delete).await.expect_err("still there");
    assert!(error.to_string().contains("still lists it"), "{error}");
    assert!(state.lock().expect("state").users[2].methods.iter().any(|m| m.id == "fd"));
}

/// Entra ID takes RS256 client assertions only: an EC key fails when the credentials are
/// read, naming the Secret, not at every token request.
#[tokio::test]
async fn an_ec_certificate_key_is_refused_naming_the_secret() {
    use base64::Engine;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("key");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
    );
    let connected = connect_with(
        &provider("http://127.0.0.1:9", "Certificate", ""),
        &|_, k| if k == "privateKey" { Some(pem.clone()) } else { secrets(k) },
        Backoff::quick(),
    );
    let error = connected.err().expect("EC key refused").to_string();
    assert!(error.contains("Secret acme/entra") && error.contains("RSA"), "{error}");
}

/// Every request the client makes — check, both listings, a lookup, the method listing and
/// the deletes of every managed type — is one Graph v1.0 declares, with declared query
/// options only; and the fake does refuse what it does not declare.
#[tokio::test]
async fn every_request_the_client_makes_is_declared() {
    let mut state = acme();
    state.page_size = 2;
    state.groups = vec![Group { id: "g-staff".into(), users: vec!["a-1".into(), "d-3".into()], groups: vec![] }];
    for (i, row) in keyward::providers::entra::METHODS.iter().enumerate() {
        if row.removal != keyward::providers::entra::Removal::NotManaged
            && row.odata_type != "phoneAuthenticationMethod"
        {
            state.users[0].methods.push(m(&format!("x{i}"), row.odata_type, false));
        }
    }
    state.users[0].methods.extend([phone("mobile", false), phone("office", false)]);
    let (server, state) = serve(state, handle).await;
    let url = server.uri();
    let all = backend(&url, "ClientSecret", "  scope: All\n");
    all.check().await.expect("check");
    all.inventory(&UserQuery { declared: vec![], all: true }).await.expect("tenant listing");
    let group = backend(&url, "ClientSecret", "    groupId: g-staff\n  scope: All\n");
    group.inventory(&UserQuery { declared: vec![], all: true }).await.expect("group listing");
    let declared = backend(&url, "ClientSecret", "");
    let alice = declared
        .inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false })
        .await
        .expect("lookup");
    let enrolments = alice.users[0].enrolments.clone();
    assert_eq!(enrolments.len(), 12, "{enrolments:?}");
    for enrolment in enrolments.iter().filter(|e| e.id != "microsoftAuthenticatorMethods/ma") {
        let revoked = declared.revoke("alice@acme.example", enrolment, RevocationMode::Delete).await;
        assert_eq!(revoked, Ok(Revoked::Done), "{}", enrolment.id);
    }
    assert_eq!(state.lock().expect("state").refused, Vec::<String>::new());

    // The fake is no pushover: what the facts do not declare is refused in Graph's shape.
    state.lock().expect("state").issued.push("probe".into());
    let client = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/v1.0/users?$skip=10"),
        ("GET", "/v1.0/users?$top=1000"),
        ("GET", "/v1.0/users/a-1/authentication/methods?$select=id"),
        ("DELETE", "/v1.0/users/a-1/authentication/methods/ma"),
        ("DELETE", "/v1.0/users/a-1/authentication/hardwareOathMethods/h1"),
        ("DELETE", "/v1.0/users/a-1/authentication/externalAuthenticationMethods/x9/$ref"),
    ] {
        let request = client.request(method.parse().expect("method"), format!("{url}{path}"));
        let response = request.bearer_auth("probe").send().await.expect("send");
        assert_eq!(response.status().as_u16(), 400, "{method} {path}");
        let body: Value = response.json().await.expect("json");
        assert!(body["error"]["code"].is_string() && body["error"]["innerError"].is_object(), "{body}");
    }
    assert_eq!(state.lock().expect("state").refused.len(), 6);
}

/// Provider requests per offboarding are a constant, whatever the tenant's size: a
/// targeted sweep reads the leaver alone (the user by UPN, its methods), where a full `scope:
/// All` sweep lists every page of users and every user's methods.
#[tokio::test]
async fn an_offboarding_reads_one_user_however_large_the_tenant() {
    for people in [20, 300] {
        let mut state = acme();
        for i in 0..people {
            state.users.push(User {
                id: format!("x-{i}"),
                upn: format!("x{i}@acme.example"),
                mail: String::new(),
                methods: vec![m(&format!("mx{i}"), "microsoftAuthenticatorAuthenticationMethod", true)],
            });
        }
        state.page_size = 100;
        let (server, _state) = serve(state, handle).await;
        let entra = backend(&server.uri(), "ClientSecret", "  scope: All\n");
        let full = entra.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
        let full_requests = entra.requests();
        assert_eq!(full.users.len(), people + 3);
        let targeted = entra.inventory_of(&["dave@acme.example".into()]).await.expect("read").expect("per-user read");
        let per_offboarding = entra.requests() - full_requests;
        assert_eq!(targeted.users.len(), 1);
        assert_eq!(targeted.users[0].enrolments.len(), 3);
        println!(
            "entra people={people} full_sweep_requests={full_requests} per_offboarding_requests={per_offboarding}"
        );
        assert!(per_offboarding <= 3, "the user (and its id lookup) and its methods: {per_offboarding}");
        assert!(full_requests > people as u64, "a full sweep reads every user's methods");
    }
}

/// The reliability suite's provider faults in front of the Graph fake: 30 leavers
/// with an Authenticator and a mobile phone each beside Acme, ten users a page, while a
/// third of the requests (the token endpoint's among them) fail; nothing entitled is lost
/// and every leaver's method goes, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_a_third_of_the_requests_revoke_every_leaver_and_nothing_kept() {
    let mut graph = acme();
    graph.page_size = 10;
    let block = format!(
        "  entraId:\n    tenantId: {TENANT}\n    authorityUrl: URL\n    graphUrl: URL\n    timeout: 2s\n    credentials: {{secretRef: {{name: corp-admin}}}}"
    );
    let tree = company(&block, &format!("  clientId: app-id\n  clientSecret: {}", shown::ENTRA_SECRET), "push");
    for (i, name) in add_leavers(tree.path(), 30).iter().enumerate() {
        graph.users.push(User {
            id: format!("l-{i}"),
            upn: format!("{name}@acme.example"),
            mail: String::new(),
            methods: vec![
                m(&format!("ml{i}"), "microsoftAuthenticatorAuthenticationMethod", false),
                phone("mobile", false),
            ],
        });
    }
    let (server, state) = serve(graph, handle).await;
    retarget(tree.path(), "URL", &server.uri());
    let holdings = || {
        let s = state.lock().expect("state");
        let mut h = Holdings { kept: Vec::new(), left: Vec::new() };
        for u in &s.users {
            for method in &u.methods {
                let entitled = ["alice@acme.example", "bob@acme.example"].contains(&u.upn.as_str())
                    && method.odata == "microsoftAuthenticatorAuthenticationMethod";
                (if entitled { &mut h.kept } else { &mut h.left }).push((u.upn.clone(), method.id.clone()));
            }
        }
        h
    };
    faults_revoke_every_leaver_and_nothing_kept(tree.path(), &server.uri(), seed(), holdings).await;
}

/// `keyward conformance` on the Graph fake: a disabled user of its own (`POST /users` with the
/// documented required properties), a mobile phone method, listed as SMS that also takes
/// voice calls, revoked, gone, and the user deleted; nobody else touched, no secret shown.
/// The permissions it needs beyond the operator's are the recorded ones.
#[tokio::test]
async fn conformance_proves_the_client_on_a_user_of_its_own() {
    let (server, state) = serve(acme(), handle).await;
    let entra = backend(&server.uri(), "ClientSecret", "");
    let before: Vec<(String, usize)> =
        state.lock().expect("state").users.iter().map(|u| (u.upn.clone(), u.methods.len())).collect();
    let report = keyward::conformance::run(&entra, "kw-conformance-1f2e3d@acme.example").await;
    let text = report.render("acme/corp");
    assert!(report.passed(), "{text}");
    assert!(
        text.contains("enrol a second factor: sms") && text.contains("/authentication/phoneMethods → 201"),
        "{text}"
    );
    assert!(!text.contains(shown::ENTRA_SECRET), "{text}");
    let s = state.lock().expect("state");
    let after: Vec<(String, usize)> = s.users.iter().map(|u| (u.upn.clone(), u.methods.len())).collect();
    assert_eq!(after, before, "the test user is gone and nobody else was touched");
    assert!(s.refused.is_empty(), "only declared requests: {:?}", s.refused);
    assert_eq!(graph::DELETE_USER_PERMISSION, "User.ReadWrite.All", "{}", graph::DOCS);
}

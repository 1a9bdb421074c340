//! Entra ID against a stateful fake of Microsoft Graph and its token endpoint (reference §4):
//! client secret and certificate assertions, @odata.nextLink paging, 429 with Retry-After,
//! 401 then a new token, the default method deleted last, 404 on a second delete; then
//! plan/apply through the keyward binary.

mod providers_support;

use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::Enrolment;
use keyward::providers::rest::Backoff;
use keyward::providers::{MfaBackend, Revoked, UserQuery, connect_with};
use providers_support::*;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

const TENANT: &str = "acme-tenant";

struct Method {
    id: String,
    odata: String,
    default: bool,
}

struct User {
    id: String,
    upn: String,
    /// Empty: the UPN.
    mail: String,
    methods: Vec<Method>,
}

#[derive(Default)]
struct Graph {
    users: Vec<User>,
    page_size: usize,
    issued: Vec<String>,
    expired: Vec<String>,
    certificate: bool,
    throttle_next: bool,
    log: Vec<String>,
    /// The user listing answers 503 this many times at this `$skiptoken`.
    fail_users_at: Option<(usize, u32)>,
    /// `$skiptoken` of every user listing page served.
    listed: Vec<usize>,
}

fn graph_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    json(status, json!({"error": {"code": code, "message": message, "innerError": {"request-id": "r"}}}))
}

fn collection_of(odata: &str) -> &'static str {
    match odata {
        "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod" => "microsoftAuthenticatorMethods",
        "#microsoft.graph.phoneAuthenticationMethod" => "phoneMethods",
        "#microsoft.graph.fido2AuthenticationMethod" => "fido2Methods",
        "#microsoft.graph.softwareOathAuthenticationMethod" => "softwareOathMethods",
        _ => "other",
    }
}

fn page(items: Vec<Value>, skip: usize, size: usize, next: String) -> ResponseTemplate {
    let total = items.len();
    let mut body = json!({"value": items.into_iter().skip(skip).take(size).collect::<Vec<_>>()});
    if skip + size < total {
        body["@odata.nextLink"] = json!(next);
    }
    json(200, body)
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
        } else if f.get("client_secret").map(String::as_str) != Some("s3cret") {
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
        return graph_error(429, "TooManyRequests", "Too many requests").insert_header("Retry-After", "1");
    }
    let size = if s.page_size == 0 { 100 } else { s.page_size };
    let skip: usize = query(r, "$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let find = |s: &Graph, key: &str| s.users.iter().position(|u| u.id == key || u.upn.eq_ignore_ascii_case(key));
    match (r.method.as_str(), p.as_slice()) {
        ("GET", ["v1.0", "users"]) => {
            if let Some((_, left)) = s.fail_users_at.as_mut().filter(|(at, left)| *at == skip && *left > 0) {
                *left -= 1;
                return graph_error(503, "serviceNotAvailable", "Service Unavailable");
            }
            s.listed.push(skip);
            let items = s
                .users
                .iter()
                .map(|u| {
                    let mail = if u.mail.is_empty() { &u.upn } else { &u.mail };
                    json!({"id": u.id, "userPrincipalName": u.upn, "mail": mail, "accountEnabled": true})
                })
                .collect();
            page(items, skip, size, format!("{base}/v1.0/users?$skiptoken={}", skip + size))
        }
        ("GET", ["v1.0", "users", key]) => match find(s, key) {
            Some(i) => json(200, json!({"id": s.users[i].id, "userPrincipalName": s.users[i].upn})),
            None => graph_error(404, "Request_ResourceNotFound", "Resource does not exist"),
        },
        ("GET", ["v1.0", "users", key, "authentication", "methods"]) => {
            let Some(i) = find(s, key) else { return graph_error(404, "Request_ResourceNotFound", "no user") };
            let mut items: Vec<Value> = vec![
                json!({"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "28c10230-6103-485e-b985-444c60001490"}),
            ];
            items.extend(
                s.users[i].methods.iter().map(|m| json!({"@odata.type": m.odata, "id": m.id, "phoneType": "mobile"})),
            );
            page(
                items,
                skip,
                size,
                format!("{base}/v1.0/users/{key}/authentication/methods?$skiptoken={}", skip + size),
            )
        }
        ("DELETE", ["v1.0", "users", key, "authentication", collection, id]) => {
            let Some(i) = find(s, key) else { return graph_error(404, "Request_ResourceNotFound", "no user") };
            let user = &mut s.users[i];
            let Some(pos) = user.methods.iter().position(|m| m.id == *id && collection_of(&m.odata) == *collection)
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
            user.methods.remove(pos);
            ResponseTemplate::new(204)
        }
        _ => graph_error(400, "BadRequest", "Resource not found for the segment"),
    }
}

fn m(id: &str, odata: &str, default: bool) -> Method {
    Method { id: id.into(), odata: format!("#microsoft.graph.{odata}"), default }
}

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
                methods: vec![
                    m("mb", authenticator, true),
                    m("3179e48a-750b-4051-897c-87b9720928f7", "phoneAuthenticationMethod", false),
                ],
            },
            User {
                id: "d-3".into(),
                upn: "dave@acme.example".into(),
                mail: String::new(),
                // The default method comes first: deleting in listing order hits the refusal.
                methods: vec![
                    m("md", authenticator, true),
                    m("fd", "fido2AuthenticationMethod", false),
                    m("3179e48a-750b-4051-897c-87b9720928f7", "phoneAuthenticationMethod", false),
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
        "clientSecret" => Some("s3cret".into()),
        "certificate" => Some(CERTIFICATE.into()),
        "privateKey" => Some(RSA_KEY.into()),
        _ => None,
    }
}

fn backend(url: &str, method: &str, extra: &str) -> Box<dyn MfaBackend> {
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
    assert!(dave.enrolments.iter().any(|e| e.id == "phoneMethods/3179e48a-750b-4051-897c-87b9720928f7"));
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
    let phone = e("phoneMethods/3179e48a-750b-4051-897c-87b9720928f7", "sms");
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
        Some(200),
        keyward::providers::entra::EntraAuth::ClientSecret {
            client_id: "app-id".into(),
            client_secret: "s3cret".into(),
        },
        Backoff::quick(),
    )
    .expect("entra");
    entra.set_default_wait(std::time::Duration::from_millis(300));
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
    let tree = company(&block, "  clientId: app-id\n  clientSecret: s3cret", "push");
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

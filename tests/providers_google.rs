//! Google Workspace against a stateful fake of the Directory API and Google's token endpoint
//! (docs/providers.md): the service-account JWT checked, nextPageToken paging, 403
//! userRateLimitExceeded, 401 then a new token, turnOff verified by a re-read; then
//! plan/apply through the keyward binary.
//!
//! The fake answers from the facts recorded from the Directory API's discovery document
//! (`tests/contracts/google.rs`): undeclared methods and parameters are refused with
//! Google's error shape, a token's scopes must authorize the method, `userKey` is what the
//! document says it may be, and users carry the recorded `User` property names only.

mod providers_support;

#[path = "contracts/google.rs"]
mod contracts;

use contracts as directory;

use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::Enrolment;
use keyward::providers::rest::Backoff;
use keyward::providers::{Provider, Revoked, UserQuery, connect_with};
use providers_support::*;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

const SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.security https://www.googleapis.com/auth/admin.directory.user.readonly";

struct User {
    id: String,
    email: String,
    aliases: Vec<String>,
    /// Domain alias addresses (`nonEditableAliases`).
    domain_aliases: Vec<String>,
    enrolled: bool,
    /// An OU that enforces 2SV: turnOff answers 204 but changes nothing.
    enforced: bool,
}

#[derive(Default)]
struct Google {
    users: Vec<User>,
    page_size: usize,
    issued: Vec<String>,
    expired: Vec<String>,
    rate_limited: usize,
    log: Vec<String>,
    /// The scopes granted with each issued token.
    granted: Vec<Vec<String>>,
    /// Requests refused because the discovery document does not declare them.
    refused: Vec<String>,
}

fn google_error(status: u16, reason: &str, message: &str) -> ResponseTemplate {
    json(status, directory::error_body(status, reason, message))
}

/// A user as the Directory API serves it, under the `User` property names the discovery
/// document declares (a name it does not declare fails the test).
fn user_json(u: &User) -> Value {
    let mut object = serde_json::Map::new();
    for (name, value) in [
        ("kind", json!("admin#directory#user")),
        ("id", json!(u.id)),
        ("primaryEmail", json!(u.email)),
        ("aliases", json!(u.aliases)),
        ("nonEditableAliases", json!(u.domain_aliases)),
        ("isEnrolledIn2Sv", json!(u.enrolled)),
        ("isEnforcedIn2Sv", json!(u.enforced)),
        ("suspended", json!(false)),
    ] {
        assert!(directory::USER_PROPERTIES.contains(&name), "User has no property {name}");
        // Google leaves out empty lists.
        if value.as_array().is_some_and(|a| a.is_empty()) {
            continue;
        }
        object.insert(name.to_string(), value);
    }
    Value::Object(object)
}

/// The user a `userKey` names: its primary address, one of its aliases, or its id.
fn find(s: &Google, key: &str) -> Option<usize> {
    s.users.iter().position(|u| {
        directory::USER_KEY_FORMS.iter().any(|form| match *form {
            "primaryEmail" => u.email.eq_ignore_ascii_case(key),
            "aliases" => u.aliases.iter().any(|a| a.eq_ignore_ascii_case(key)),
            "id" => u.id == key,
            other => panic!("no fake for userKey form {other}"),
        })
    })
}

fn handle(s: &mut Google, r: &Request) -> ResponseTemplate {
    let base = base(r);
    let path = segments(r);
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    s.log.push(format!("{} {}", r.method, r.url.path()));
    if p == ["token"] {
        let f = form(r);
        assert_eq!(f.get("grant_type").map(String::as_str), Some("urn:ietf:params:oauth:grant-type:jwt-bearer"));
        let (head, claims) = match verify_rs256(f.get("assertion").map(String::as_str).unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => return json(400, json!({"error": "invalid_grant", "error_description": e})),
        };
        assert_eq!(head["kid"], "key-1");
        assert_eq!(claims["iss"], "keyward@acme-project.iam.gserviceaccount.com");
        assert_eq!(claims["sub"], "admin@acme.example", "domain-wide delegation acts as the admin");
        assert_eq!(claims["scope"], SCOPES);
        assert_eq!(claims["aud"], format!("{base}/token"));
        let token = format!("ya29.{}", s.issued.len());
        s.issued.push(token.clone());
        s.granted.push(claims["scope"].as_str().unwrap_or_default().split(' ').map(String::from).collect());
        return json(200, json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}));
    }
    let auth = header(r, "authorization");
    let token = auth.strip_prefix("Bearer ").unwrap_or_default();
    let Some(issued) = s.issued.iter().position(|i| i == token).filter(|_| !s.expired.iter().any(|e| e == token))
    else {
        return google_error(401, "authError", "Invalid Credentials");
    };
    let Some(method) = directory::method(r.method.as_str(), &p) else {
        s.refused.push(format!("{} {}", r.method, r.url));
        return google_error(404, "notFound", "Not Found");
    };
    if !method.scopes.iter().any(|scope| s.granted[issued].iter().any(|g| g == scope)) {
        return google_error(403, "insufficientPermissions", "Request had insufficient authentication scopes.");
    }
    let pairs: Vec<(String, String)> = r.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    if let Some(message) = directory::refusal(method, &pairs) {
        s.refused.push(format!("{} {}", r.method, r.url));
        return google_error(400, "invalidParameter", &message);
    }
    if s.rate_limited > 0 {
        s.rate_limited -= 1;
        return google_error(403, "userRateLimitExceeded", "Quota exceeded for quota metric 'Queries'");
    }
    match (r.method.as_str(), p.as_slice()) {
        ("GET", ["admin", "directory", "v1", "users"]) => {
            assert_eq!(query(r, "customer").as_deref(), Some("my_customer"));
            let filter = query(r, "query").unwrap_or_default();
            let listed: Vec<Value> = s
                .users
                .iter()
                .filter(|u| !filter.contains("isEnrolledIn2Sv=true") || u.enrolled)
                .map(user_json)
                .collect();
            let start: usize = query(r, directory::PAGE_TOKEN)
                .and_then(|t| t.strip_prefix("page-").and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            let asked: usize = query(r, "maxResults").and_then(|n| n.parse().ok()).unwrap_or(100);
            let size = if s.page_size == 0 { asked } else { s.page_size.min(asked) };
            let mut body = json!({"kind": "admin#directory#users", "users": listed.iter().skip(start).take(size).collect::<Vec<_>>()});
            if start + size < listed.len() {
                body[directory::NEXT_PAGE_TOKEN] = json!(format!("page-{}", start + size));
            }
            json(200, body)
        }
        ("GET", ["admin", "directory", "v1", "users", key]) => match find(s, key) {
            Some(i) => json(200, user_json(&s.users[i])),
            None => google_error(404, "notFound", "Resource Not Found: userKey"),
        },
        ("POST", ["admin", "directory", "v1", "users", key, "twoStepVerification", "turnOff"]) => {
            let Some(i) = find(s, key) else { return google_error(404, "notFound", "Resource Not Found: userKey") };
            if !s.users[i].enforced {
                s.users[i].enrolled = false;
            }
            ResponseTemplate::new(204)
        }
        _ => google_error(404, "notFound", "Not Found"),
    }
}

fn user(email: &str, enrolled: bool) -> User {
    let id = format!("id-{}", email.split('@').next().unwrap_or_default());
    User { id, email: email.into(), aliases: vec![], domain_aliases: vec![], enrolled, enforced: false }
}

fn acme() -> Google {
    Google {
        users: vec![
            user("alice@acme.example", true),
            user("bob@acme.example", true),
            user("dave@acme.example", true),
            user("carol@acme.example", false),
        ],
        ..Default::default()
    }
}

fn key_json(url: &str) -> String {
    json!({
        "type": "service_account", "project_id": "acme-project", "private_key_id": "key-1",
        "private_key": RSA_KEY, "client_email": "keyward@acme-project.iam.gserviceaccount.com",
        "client_id": "1234", "token_uri": format!("{url}/token"),
    })
    .to_string()
}

fn provider(url: &str, extra: &str) -> MfaProvider {
    let yaml = format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp, namespace: acme}}\nspec:\n  googleWorkspace:\n    adminEmail: admin@acme.example\n    url: {url}\n    credentials: {{secretRef: {{name: google}}}}\n{extra}"
    );
    serde_yaml::from_str(&yaml).expect("provider")
}

fn backend(url: &str, extra: &str) -> Provider {
    let key = key_json(url);
    connect_with(&provider(url, extra), &move |_, k| (k == "serviceAccountKey").then(|| key.clone()), Backoff::quick())
        .expect("connect")
}

fn twosv() -> Enrolment {
    Enrolment::new("2sv", FactorKind::new("2sv"), true)
}

#[tokio::test]
async fn lists_enrolled_users_over_pages_through_403_rate_limits_and_a_new_token() {
    let mut state = acme();
    for i in 0..5 {
        state.users.push(user(&format!("u{i}@acme.example"), true));
    }
    state.page_size = 3;
    state.rate_limited = 2;
    let (server, state) = serve(state, handle).await;
    let google = backend(&server.uri(), "");
    let inventory = google
        .inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false })
        .await
        .expect("inventory");
    assert_eq!(inventory.users.len(), 8, "carol is not enrolled");
    assert!(inventory.users.iter().all(|u| u.enrolments == [twosv()]));
    let listings = state.lock().expect("state").log.iter().filter(|l| *l == "GET /admin/directory/v1/users").count();
    assert_eq!(listings, 2 + 3, "two throttled attempts, then three pages");
    let first = state.lock().expect("state").issued[0].clone();
    state.lock().expect("state").expired.push(first);
    google.check().await.expect("renewed after 401");
    assert_eq!(state.lock().expect("state").issued.len(), 2);
}

#[tokio::test]
async fn turn_off_is_checked_by_reading_the_user_again() {
    let mut state = acme();
    state.users[1].enforced = true;
    let (server, state) = serve(state, handle).await;
    let google = backend(&server.uri(), "");
    let del = RevocationMode::Delete;
    assert_eq!(google.revoke("dave@acme.example", &twosv(), del).await, Ok(Revoked::Done));
    assert!(!state.lock().expect("state").users[2].enrolled);
    assert_eq!(google.revoke("dave@acme.example", &twosv(), del).await, Ok(Revoked::AlreadyGone));
    assert_eq!(google.revoke("nobody@acme.example", &twosv(), del).await, Ok(Revoked::AlreadyGone));
    let err = google.revoke("bob@acme.example", &twosv(), del).await.expect_err("enforced");
    assert!(err.to_string().contains("still on after turnOff"), "{err}");
}

#[tokio::test]
async fn an_endless_rate_limit_and_a_bad_key_are_clear_errors() {
    let (server, state) = serve(acme(), handle).await;
    let url = server.uri();
    state.lock().expect("state").rate_limited = 100;
    let err = backend(&url, "").inventory(&UserQuery::default()).await.expect_err("throttled");
    assert!(err.to_string().contains("rate limited"), "{err}");
    let not_json =
        connect_with(&provider(&url, ""), &|_, k| (k == "serviceAccountKey").then(|| "{}".into()), Backoff::quick());
    assert!(not_json.err().expect("bad key").to_string().contains("not a service account JSON key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_turn_off_2sv_of_the_leaver_and_of_the_unentitled() {
    let (server, state) = serve(acme(), handle).await;
    let url = server.uri();
    let block = format!(
        "  googleWorkspace:\n    adminEmail: admin@acme.example\n    url: {url}\n    credentials: {{secretRef: {{name: corp-admin}}}}"
    );
    let secret = yaml_block("serviceAccountKey", &key_json(&url), 2);
    let tree = company(&block, &secret, "2sv");
    // Bob moves to a role without 2SV on Google (an out-of-band enrolment for him).
    retarget(tree.path(), "roles: [dev]", "roles: [support]");
    let (code, plan_before) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan_before}");
    assert_eq!(
        actions(&plan_before),
        [revoke("bob@acme.example", "2sv", "NotEntitled"), revoke("dave@acme.example", "2sv", "EmployeeOffboarded")]
    );
    let (code, audit, stderr) = apply(tree.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(audit.len(), 2, "{audit:?}");
    {
        let s = state.lock().expect("state");
        let enrolled: Vec<bool> = s.users.iter().map(|u| u.enrolled).collect();
        assert_eq!(enrolled, [true, false, false, false], "alice keeps 2SV");
    }
    let (code, plan_after) = plan(tree.path()).await;
    assert_eq!((code, actions(&plan_after)), (0, vec![]), "{plan_after}");
    outage_revokes_nothing(tree.path(), &url).await;
}

/// A user goes by its domain alias addresses too (`nonEditableAliases`): an Employee mapped by
/// one is that user, not an undeclared one (under `scope: All` its 2SV was turned off), and
/// its 2SV is turned off by id, since the document does not promise that such an address is
/// a `userKey`.
#[tokio::test]
async fn a_user_mapped_by_a_domain_alias_address_is_declared_and_revoked_by_id() {
    let mut state = acme();
    state.users[0].domain_aliases = vec!["alice@acme-alias.example".into()];
    state.users[1].aliases = vec!["robert@acme.example".into()];
    let (server, state) = serve(state, handle).await;
    let google = backend(&server.uri(), "  scope: All\n");
    let declared = vec!["alice@acme-alias.example".to_string(), "robert@acme.example".to_string()];
    let inventory = google.inventory(&UserQuery { declared, all: true }).await.expect("inventory");
    let mut names: Vec<&str> = inventory.users.iter().map(|u| u.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["alice@acme-alias.example", "dave@acme.example", "robert@acme.example"]);

    let revoked = google.revoke("alice@acme-alias.example", &twosv(), RevocationMode::Delete).await;
    assert_eq!(revoked, Ok(Revoked::Done));
    let s = state.lock().expect("state");
    assert!(!s.users[0].enrolled, "alice's 2SV is off");
    assert!(
        s.log.iter().any(|l| l == "POST /admin/directory/v1/users/id-alice/twoStepVerification/turnOff"),
        "{:?}",
        s.log
    );
}

/// The plan under `scope: All`: Alice, declared by her domain alias address, keeps her 2SV.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_keeps_2sv_of_an_employee_known_by_a_domain_alias() {
    let mut state = acme();
    state.users[0].email = "asmith@acme.example".into();
    state.users[0].domain_aliases = vec!["alice@acme.example".into()];
    let (server, _state) = serve(state, handle).await;
    let url = server.uri();
    let block = format!(
        "  googleWorkspace:\n    adminEmail: admin@acme.example\n    url: {url}\n    credentials: {{secretRef: {{name: corp-admin}}}}\n  scope: All"
    );
    let secret = yaml_block("serviceAccountKey", &key_json(&url), 2);
    let tree = company(&block, &secret, "2sv");
    let (code, plan) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan}");
    assert_eq!(actions(&plan), [revoke("dave@acme.example", "2sv", "EmployeeOffboarded")], "{plan}");
}

/// Every request the client makes (check, the listing with and without an organizational
/// unit, the user read and turnOff) is a method of the discovery document with declared
/// parameters and values only; and the fake does refuse what the document does not declare.
#[tokio::test]
async fn every_request_the_client_makes_is_declared() {
    let mut state = acme();
    state.page_size = 2;
    let (server, state) = serve(state, handle).await;
    let url = server.uri();
    for extra in ["", "    orgUnitPath: /Engineering\n"] {
        let google = backend(&url, extra);
        google.check().await.expect("check");
        google.inventory(&UserQuery::default()).await.expect("listing");
    }
    let google = backend(&url, "");
    assert_eq!(google.revoke("dave@acme.example", &twosv(), RevocationMode::Delete).await, Ok(Revoked::Done));
    assert_eq!(state.lock().expect("state").refused, Vec::<String>::new());

    let token = {
        let s = state.lock().expect("state");
        s.issued.last().cloned().expect("a token")
    };
    let client = reqwest::Client::new();
    for (method, path, status) in [
        ("GET", "/admin/directory/v1/users?customer=my_customer&maxResults=501", 400),
        ("GET", "/admin/directory/v1/users?customer=my_customer&projection=BASIC", 400),
        ("GET", "/admin/directory/v1/users/alice@acme.example?showDeleted=true", 400),
        ("DELETE", "/admin/directory/v1/users/alice@acme.example/twoStepVerification", 404),
    ] {
        let request = client.request(method.parse().expect("method"), format!("{url}{path}"));
        let response = request.bearer_auth(&token).send().await.expect("send");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = response.json().await.expect("json");
        assert!(body["error"]["errors"][0]["reason"].is_string(), "{body}");
    }
    assert_eq!(state.lock().expect("state").refused.len(), 4);
}

/// `keyward conformance` on Google Workspace: the Directory API cannot turn 2-Step
/// Verification on for a user, so there is nothing to prove end to end; the run says so at
/// once and makes no request at all, never a write.
#[tokio::test]
async fn conformance_says_it_cannot_enrol_and_writes_nothing() {
    let (server, state) = serve(acme(), handle).await;
    let google = backend(&server.uri(), "");
    let report = keyward::conformance::run(&google, "kw-conformance-1f2e3d@acme.example").await;
    let text = report.render("acme/corp");
    assert!(!report.passed());
    assert!(text.contains("FAIL 1. admin writes") && text.contains("turn 2-Step Verification on themselves"), "{text}");
    assert!(state.lock().expect("state").log.is_empty(), "no request: {:?}", state.lock().expect("state").log);
}

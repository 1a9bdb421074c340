//! Keycloak against a stateful fake of its Admin REST API and token endpoint (reference §6):
//! client-credentials and password grants, 60-second tokens renewed, first/max paging, 429,
//! 404 on a second delete, required actions as the invitation; then plan/apply through the
//! keyward binary.

mod providers_support;

use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::Enrolment;
use keyward::providers::rest::Backoff;
use keyward::providers::{MfaBackend, Revoked, UserQuery, connect_with};
use providers_support::*;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

struct User {
    id: String,
    username: String,
    email: String,
    credentials: Vec<(String, String)>,
    required: Vec<String>,
}

#[derive(Default)]
struct Keycloak {
    users: Vec<User>,
    issued: Vec<String>,
    expired: Vec<String>,
    token_lifetime: u64,
    throttle_next: bool,
    log: Vec<String>,
    /// The user listing answers 503 this many times at this `first`.
    fail_listing_at: Option<(usize, u32)>,
    /// `first` of every user listing page served.
    listed: Vec<usize>,
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    json(status, json!({"errorMessage": message}))
}

fn credential_json(id: &str, kind: &str) -> Value {
    let data = if kind == "otp" { r#"{"subType":"totp","digits":6,"period":30,"algorithm":"HmacSHA1"}"# } else { "{}" };
    json!({"id": id, "type": kind, "userLabel": "x", "createdDate": 1_700_000_000_000u64, "credentialData": data, "priority": 10})
}

fn handle(s: &mut Keycloak, r: &Request) -> ResponseTemplate {
    let path = segments(r);
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    s.log.push(format!("{} {}", r.method, r.url.path()));
    if p == ["realms", "master", "protocol", "openid-connect", "token"] {
        let f = form(r);
        let ok = match f.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {
                f.get("client_id").map(String::as_str) == Some("keyward")
                    && f.get("client_secret").map(String::as_str) == Some("cs")
            }
            Some("password") => {
                f.get("client_id").map(String::as_str) == Some("admin-cli")
                    && f.get("username").map(String::as_str) == Some("admin")
                    && f.get("password").map(String::as_str) == Some("pw")
            }
            _ => false,
        };
        if !ok {
            return json(
                401,
                json!({"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"}),
            );
        }
        let token = format!("kc{}", s.issued.len());
        s.issued.push(token.clone());
        let lifetime = if s.token_lifetime == 0 { 60 } else { s.token_lifetime };
        return json(200, json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}));
    }
    let auth = header(r, "authorization");
    if !auth
        .strip_prefix("Bearer ")
        .is_some_and(|t| s.issued.iter().any(|i| i == t) && !s.expired.iter().any(|e| e == t))
    {
        return json(401, json!({"error": "HTTP 401 Unauthorized"}));
    }
    if std::mem::take(&mut s.throttle_next) {
        return error(429, "Too many requests").insert_header("Retry-After", "0");
    }
    let find = |s: &Keycloak, id: &str| s.users.iter().position(|u| u.id == id);
    match (r.method.as_str(), p.as_slice()) {
        ("GET", ["admin", "realms", "corp"]) => json(200, json!({"realm": "corp", "enabled": true})),
        ("GET", ["admin", "realms", "corp", "users"]) => {
            let matches: Vec<&User> = if let Some(name) = query(r, "username") {
                assert_eq!(query(r, "exact").as_deref(), Some("true"));
                s.users.iter().filter(|u| u.username == name).collect()
            } else if let Some(email) = query(r, "email") {
                s.users.iter().filter(|u| u.email == email).collect()
            } else {
                let first: usize = query(r, "first").and_then(|v| v.parse().ok()).unwrap_or(0);
                let max: usize = query(r, "max").and_then(|v| v.parse().ok()).unwrap_or(100);
                if let Some((_, left)) = s.fail_listing_at.as_mut().filter(|(at, left)| *at == first && *left > 0) {
                    *left -= 1;
                    return error(503, "Service Unavailable");
                }
                s.listed.push(first);
                s.users.iter().skip(first).take(max).collect()
            };
            json(
                200,
                Value::Array(
                    matches
                        .iter()
                        .map(|u| json!({"id": u.id, "username": u.username, "email": u.email, "enabled": true}))
                        .collect(),
                ),
            )
        }
        ("GET", ["admin", "realms", "corp", "users", id]) => match find(s, id) {
            Some(i) => {
                let u = &s.users[i];
                json(
                    200,
                    json!({"id": u.id, "username": u.username, "email": u.email, "enabled": true, "firstName": "F", "requiredActions": u.required}),
                )
            }
            None => error(404, "User not found"),
        },
        ("PUT", ["admin", "realms", "corp", "users", id]) => {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(body["firstName"], "F", "the representation is sent back whole");
            let Some(i) = find(s, id) else { return error(404, "User not found") };
            s.users[i].required = body["requiredActions"]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            ResponseTemplate::new(204)
        }
        ("GET", ["admin", "realms", "corp", "users", id, "credentials"]) => match find(s, id) {
            Some(i) => json(
                200,
                Value::Array(s.users[i].credentials.iter().map(|(id, kind)| credential_json(id, kind)).collect()),
            ),
            None => error(404, "User not found"),
        },
        ("DELETE", ["admin", "realms", "corp", "users", id, "credentials", cid]) => {
            let Some(i) = find(s, id) else { return error(404, "User not found") };
            let before = s.users[i].credentials.len();
            s.users[i].credentials.retain(|(c, _)| c != cid);
            if s.users[i].credentials.len() == before {
                error(404, "Credential not found")
            } else {
                ResponseTemplate::new(204)
            }
        }
        _ => error(404, "Not found"),
    }
}

fn user(id: &str, username: &str, credentials: &[(&str, &str)]) -> User {
    User {
        id: id.into(),
        username: username.into(),
        email: format!("{username}@acme.example"),
        credentials: credentials.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        required: vec![],
    }
}

fn acme() -> Keycloak {
    Keycloak {
        users: vec![
            user("u-alice", "alice", &[("pa", "password"), ("oa", "otp")]),
            user("u-bob", "bob", &[("pb", "password"), ("ob", "otp"), ("wb", "webauthn")]),
            user("u-dave", "dave", &[("pd", "password"), ("od", "otp"), ("wd", "webauthn-passwordless")]),
        ],
        ..Default::default()
    }
}

fn provider(url: &str, method: &str, extra: &str) -> MfaProvider {
    let yaml = format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp, namespace: acme}}\nspec:\n  keycloak:\n    url: {url}\n    realm: corp\n    credentials: {{method: {method}, secretRef: {{name: kc}}}}\n{extra}"
    );
    serde_yaml::from_str(&yaml).expect("provider")
}

fn secrets(key: &str) -> Option<String> {
    Some(
        match key {
            "clientId" => "keyward",
            "clientSecret" => "cs",
            "username" => "admin",
            "password" => "pw",
            _ => return None,
        }
        .into(),
    )
}

fn backend(url: &str, method: &str, extra: &str) -> Box<dyn MfaBackend> {
    connect_with(&provider(url, method, extra), &|_, k| secrets(k), Backoff::quick()).expect("connect")
}

#[tokio::test]
async fn pages_users_and_maps_credentials_through_a_429_and_a_renewed_token() {
    let mut state = acme();
    for i in 0..150 {
        state.users.push(user(&format!("u{i}"), &format!("user{i}"), &[("p", "password")]));
    }
    state.throttle_next = true;
    let (server, state) = serve(state, handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "  scope: All\n  policy: {maxRequestsPerSecond: 1000}\n");
    let inventory =
        kc.inventory(&UserQuery { declared: vec!["bob@acme.example".into()], all: true }).await.expect("inventory");
    assert_eq!(inventory.users.len(), 153);
    // The listed user goes by the name its Employee maps to (the e-mail), not its login.
    let bob = inventory.users.iter().find(|u| u.name == "bob@acme.example").expect("bob by e-mail");
    let kinds: Vec<String> = bob.enrolments.iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(kinds, ["totp", "webauthn"], "the password is not a second factor");
    let pages = state.lock().expect("state").log.iter().filter(|l| *l == "GET /admin/realms/corp/users").count();
    assert_eq!(pages, 1 + 2, "the throttled attempt, then first=0 and first=100");
    let first = state.lock().expect("state").issued[0].clone();
    state.lock().expect("state").expired.push(first);
    kc.check().await.expect("renewed after 401");
    assert_eq!(state.lock().expect("state").issued.len(), 2);
}

/// A realm listing that fails on its second page goes on from that page next time; a user who
/// moved across the page boundary meanwhile (offsets shift) is listed once.
#[tokio::test]
async fn a_user_listing_that_failed_mid_way_resumes_from_the_failed_offset() {
    let mut state = acme();
    for i in 0..150 {
        state.users.push(user(&format!("u{i}"), &format!("user{i}"), &[("p", "password")]));
    }
    state.fail_listing_at = Some((100, 3)); // more than Backoff::quick's 3 attempts
    let (server, state) = serve(state, handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "  scope: All\n  policy: {maxRequestsPerSecond: 1000}\n");
    let query = UserQuery { declared: vec![], all: true };
    kc.inventory(&query).await.expect_err("the outage outlasts the retries");
    // A user created meanwhile at the front pushes user96 from page 1 onto page 2.
    state.lock().expect("state").users.insert(0, user("u-new", "newcomer", &[]));
    let inventory = kc.inventory(&query).await.expect("resumed");
    assert_eq!(state.lock().expect("state").listed, [0, 100], "page 0 was not read again");
    let names: Vec<&str> = inventory.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names.len(), 153, "every user once: {names:?}");
    assert_eq!(names.iter().filter(|n| **n == "user96").count(), 1);
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_they_expire() {
    let mut state = acme();
    state.token_lifetime = 1; // renewed a tenth early: every call after ~0.9 s needs a new one
    let (server, state) = serve(state, handle).await;
    // No clientId in the Secret: the password grant uses admin-cli.
    let no_client = |_: &str, k: &str| if k == "clientId" { None } else { secrets(k) };
    let kc = connect_with(&provider(&server.uri(), "Password", ""), &no_client, Backoff::quick()).expect("connect");
    kc.check().await.expect("check");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    kc.check().await.expect("check");
    assert_eq!(state.lock().expect("state").issued.len(), 2);
    assert!(!state.lock().expect("state").log.iter().any(|l| l.contains("401")));
}

#[tokio::test]
async fn a_second_delete_is_already_gone_and_invitations_are_required_actions() {
    let (server, state) = serve(acme(), handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "");
    let otp = Enrolment::new("od", FactorKind::new("totp"), true);
    assert_eq!(kc.revoke("dave@acme.example", &otp, RevocationMode::Delete).await, Ok(Revoked::Done));
    assert_eq!(kc.revoke("dave@acme.example", &otp, RevocationMode::Delete).await, Ok(Revoked::AlreadyGone));
    assert_eq!(kc.revoke("ghost", &otp, RevocationMode::Delete).await, Ok(Revoked::AlreadyGone));
    kc.invite("alice", &FactorKind::new("webauthn")).await.expect("invite");
    kc.invite("alice", &FactorKind::new("webauthn")).await.expect("again: no second write");
    kc.invite("alice", &FactorKind::new("totp")).await.expect("invite");
    let s = state.lock().expect("state");
    assert_eq!(s.users[0].required, ["webauthn-register", "CONFIGURE_TOTP"]);
    assert_eq!(s.log.iter().filter(|l| l.starts_with("PUT")).count(), 2);
}

/// A user deleted and re-created under the same name has a new id: the next listing finds the
/// new user's credentials, and a revocation that meets a stale id asks again instead of
/// calling the credential "already gone".
#[tokio::test]
async fn a_re_created_user_is_found_again_by_the_next_sweep_and_after_a_404() {
    let (server, state) = serve(acme(), handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "");
    let query = UserQuery { declared: vec!["alice".into()], all: false };
    let first = kc.inventory(&query).await.expect("inventory");
    assert_eq!(first.users[0].enrolments[0].id, "oa");

    let recreate = |id: &str, otp: &str| {
        let mut s = state.lock().expect("state");
        s.users.retain(|u| u.username != "alice");
        s.users.push(user(id, "alice", &[("p", "password"), (otp, "otp")]));
    };
    recreate("u-alice-2", "oa2");
    let second = kc.inventory(&query).await.expect("inventory");
    let ids: Vec<&str> = second.users.iter().flat_map(|u| u.enrolments.iter().map(|e| e.id.as_str())).collect();
    assert_eq!(ids, ["oa2"], "the full sweep looked the name up again");

    recreate("u-alice-3", "oa3");
    let otp = Enrolment::new("oa3", FactorKind::new("totp"), true);
    assert_eq!(kc.revoke("alice", &otp, RevocationMode::Delete).await, Ok(Revoked::Done));
    let s = state.lock().expect("state");
    let alice = s.users.iter().find(|u| u.username == "alice").expect("alice");
    assert_eq!(alice.credentials, [("p".to_string(), "password".to_string())]);
}

/// Two Keycloak users with one e-mail (a realm with `duplicateEmailsAllowed`): both are listed
/// under the name, and a revocation by that name touches neither.
#[tokio::test]
async fn two_users_with_one_name_are_a_conflict_never_a_guess() {
    let mut state = acme();
    let mut twin = user("u-alice-twin", "alice.twin", &[("pt", "password"), ("ot", "otp")]);
    twin.email = "alice@acme.example".into();
    state.users.push(twin);
    let (server, state) = serve(state, handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "");
    let inventory =
        kc.inventory(&UserQuery { declared: vec!["alice@acme.example".into()], all: false }).await.expect("inventory");
    let listed: Vec<(&str, &str)> = inventory
        .users
        .iter()
        .flat_map(|u| u.enrolments.iter().map(move |e| (u.name.as_str(), e.id.as_str())))
        .collect();
    assert_eq!(listed, [("alice@acme.example", "oa"), ("alice@acme.example", "ot")]);
    let dups = inventory.duplicate_names();
    assert_eq!(dups.into_iter().collect::<Vec<_>>(), ["alice@acme.example"]);

    let otp = Enrolment::new("ot", FactorKind::new("totp"), true);
    let error = kc.revoke("alice@acme.example", &otp, RevocationMode::Delete).await.expect_err("conflict");
    assert_eq!(error.category(), "identity_conflict", "{error}");
    assert!(error.to_string().contains("2 users go by"), "{error}");
    let s = state.lock().expect("state");
    assert!(!s.log.iter().any(|l| l.starts_with("DELETE")), "{:?}", s.log);
}

#[tokio::test]
async fn bad_credentials_are_a_clear_error() {
    let (server, _state) = serve(acme(), handle).await;
    let kc = connect_with(
        &provider(&server.uri(), "ClientCredentials", ""),
        &|_, k| if k == "clientSecret" { Some("nope".into()) } else { secrets(k) },
        Backoff::quick(),
    )
    .expect("connect");
    let err = kc.check().await.expect_err("rejected");
    assert!(err.to_string().contains("unauthorized_client: Invalid client"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_revoke_the_leaver_and_the_out_of_band_key_only() {
    let (server, state) = serve(acme(), handle).await;
    let url = server.uri();
    let block =
        format!("  keycloak:\n    url: {url}\n    realm: corp\n    credentials: {{secretRef: {{name: corp-admin}}}}");
    let tree = company(&block, "  clientId: keyward\n  clientSecret: cs", "totp");
    let (code, plan_before) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan_before}");
    assert_eq!(
        actions(&plan_before),
        [
            revoke("bob@acme.example", "webauthn", "NotEntitled"),
            revoke("dave@acme.example", "totp", "EmployeeOffboarded"),
            revoke("dave@acme.example", "webauthn", "EmployeeOffboarded"),
        ]
    );
    let (code, audit, stderr) = apply(tree.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(audit.len(), 3, "{audit:?}");
    {
        let s = state.lock().expect("state");
        let ids = |i: usize| s.users[i].credentials.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
        assert_eq!(
            (ids(0), ids(1), ids(2)),
            (vec!["pa".into(), "oa".into()], vec!["pb".into(), "ob".into()], vec!["pd".to_string()])
        );
    }
    let (code, plan_after) = plan(tree.path()).await;
    assert_eq!((code, actions(&plan_after)), (0, vec![]), "{plan_after}");
    outage_revokes_nothing(tree.path(), &url).await;
}

// The operator test needs the cluster support too; both support modules include the
// one failing_server file, which is fine for two independent test modules.
#[allow(clippy::duplicate_mod)]
#[path = "support/mod.rs"]
mod support;

/// Operator mode: `keyward run` against the real local kube-apiserver sweeps Keycloak the
/// same way — the leaver and the unentitled key at start, then whoever `kubectl patch`
/// offboards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sweeps_keycloak_and_revokes_an_offboarded_employee() {
    let (server, state) = serve(acme(), handle).await;
    let block = format!(
        "  keycloak:\n    url: {}\n    realm: corp\n    credentials: {{secretRef: {{name: corp-admin}}}}",
        server.uri()
    );
    let tree = company(&block, "  clientId: keyward\n  clientSecret: cs", "totp");
    std::fs::write(tree.path().join("00-namespace.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: acme}\n")
        .expect("namespace");
    let credentials = move |i: usize| -> Vec<String> {
        state.lock().expect("state").users[i].credentials.iter().map(|(c, _)| c.clone()).collect()
    };
    // kubectl, the operator process and the polling all block: off the runtime that serves
    // the fake.
    tokio::task::spawn_blocking(move || {
        let c = support::cluster::cluster();
        c.kubectl_ok(&["apply", "-f", tree.path().to_str().expect("utf-8")]);
        let audit = tree.path().join("audit.jsonl");
        let _operator = c.operator("acme", "keyward-keycloak", &audit);
        let within = std::time::Duration::from_secs(30);
        support::cluster::eventually(within, "first sweep", || {
            credentials(1) == ["pb", "ob"] && credentials(2) == ["pd"]
        });
        assert_eq!(credentials(0), ["pa", "oa"], "alice keeps her TOTP");

        c.kubectl_ok(&[
            "-n",
            "acme",
            "patch",
            "employee",
            "alice",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"state":"Offboarded"}}"#,
        ]);
        support::cluster::eventually(within, "alice's TOTP revoked", || credentials(0) == ["pa"]);
        c.kubectl_ok(&["-n", "acme", "wait", "--for=condition=Ready", "employee/alice", "--timeout=30s"]);
        let records = std::fs::read_to_string(&audit).unwrap_or_default();
        assert!(
            records.lines().any(|l| l.contains("\"enrolment\":\"oa\"") && l.contains("EmployeeOffboarded")),
            "{records}"
        );
    })
    .await
    .expect("operator scenario");
}

//! Keycloak against the fake of its Admin REST API (`tests/support/keycloak_mock.rs`, answering
//! from `tests/contracts/keycloak.rs`) for what the real server of `tests/keycloak.rs` cannot
//! be made to do: a 429, a listing page that keeps failing, one-second tokens, and a user from a
//! user storage (LDAP) whose factor `/credentials` does not list.

#[path = "contracts/keycloak.rs"]
mod kc_contract;
#[path = "support/keycloak_mock.rs"]
mod keycloak_mock;
mod providers_support;

use keycloak_mock::{Keycloak, user};
use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::Enrolment;
use keyward::providers::rest::Backoff;
use keyward::providers::{Provider, UserQuery, connect_with};
use providers_support::*;

fn handle(s: &mut Keycloak, r: &wiremock::Request) -> wiremock::ResponseTemplate {
    keycloak_mock::handle(s, r)
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
            "clientSecret" => keycloak_mock::CLIENT_SECRET,
            "username" => "admin",
            "password" => keycloak_mock::ADMIN_PASSWORD,
            _ => return None,
        }
        .into(),
    )
}

fn backend(url: &str, method: &str, extra: &str) -> Provider {
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

/// A user from a user storage (LDAP, a custom provider: `federationLink` set) whose storage
/// provides an OTP: `/credentials` does not list it. keyward asks
/// `configured-user-storage-credential-types`, lists the factor, keeps it when entitled, and
/// refuses to call it revoked when it is not — it cannot remove it from that store. Before
/// this, the leaver read as having no second factor at all.
#[tokio::test]
async fn a_factor_held_in_user_storage_is_listed_and_never_silently_dropped() {
    let mut state = acme();
    let mut ldap = user("u-lena", "lena", &[("ol", "otp")]);
    ldap.federation_link = Some("ldap-corp".into());
    ldap.storage_types = vec!["password".into(), "kerberos".into(), "otp".into()];
    state.users.push(ldap);
    let (server, state) = serve(state, handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "");
    let inventory = kc
        .inventory(&UserQuery { declared: vec!["lena".into(), "alice".into()], all: false })
        .await
        .expect("inventory");
    let lena = inventory.users.iter().find(|u| u.name == "lena").expect("lena listed");
    let ids: Vec<(&str, &str)> = lena.enrolments.iter().map(|e| (e.id.as_str(), e.kind.as_str())).collect();
    assert_eq!(ids, [("ol", "totp"), ("user-storage:otp", "totp")], "the storage's OTP is an enrolment too");
    let alice = inventory.users.iter().find(|u| u.name == "alice").expect("alice");
    assert_eq!(alice.enrolments.len(), 1);
    {
        let s = state.lock().expect("state");
        let asked: Vec<&String> = s.log.iter().filter(|l| l.ends_with(kc_contract::STORAGE_CREDENTIAL_TYPES)).collect();
        assert_eq!(
            asked,
            ["GET /admin/realms/corp/users/u-lena/configured-user-storage-credential-types"],
            "asked for federated users only"
        );
    }

    let stored = Enrolment::new("user-storage:otp", FactorKind::new("totp"), true);
    let error = kc.revoke("lena", &stored, RevocationMode::Delete).await.expect_err("not revocable by keyward");
    assert!(error.to_string().contains("held in the user's user storage"), "{error}");
    let local = Enrolment::new("ol", FactorKind::new("totp"), true);
    assert_eq!(kc.revoke("lena", &local, RevocationMode::Delete).await, Ok(keyward::providers::Revoked::Done));

    // A storage read that fails fails the inventory: never "no enrolments".
    state.lock().expect("state").storage_types_fail = true;
    let error = kc.inventory(&UserQuery { declared: vec!["lena".into()], all: false }).await.expect_err("failed read");
    assert!(error.to_string().contains("HTTP 500"), "{error}");
}

/// `/credentials` of a user from a user storage lists a credential the storage
/// holds; its delete answers 404 `Credential not found` while it stays, usable. That 404 is
/// no revocation: the revocation fails, naming the storage. A credential deleted once (404
/// the second time, no longer listed) and a user that is gone stay "already gone".
#[tokio::test]
async fn a_404_for_a_storage_held_credential_still_listed_is_not_a_revocation() {
    let mut state = acme();
    let mut ldap = user("u-lena", "lena", &[("ol", "otp")]);
    ldap.federation_link = Some("ldap-corp".into());
    ldap.storage_credentials = vec![("sl".into(), "otp".into())];
    state.users.push(ldap);
    let (server, state) = serve(state, handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "");
    let inventory = kc.inventory(&UserQuery { declared: vec!["lena".into()], all: false }).await.expect("inventory");
    let ids: Vec<&str> = inventory.users[0].enrolments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["ol", "sl"], "the storage's credential is listed");

    let held = Enrolment::new("sl", FactorKind::new("totp"), true);
    let error = kc.revoke("lena", &held, RevocationMode::Delete).await.expect_err("still usable");
    let text = error.to_string();
    assert!(text.contains("still lists it") && text.contains("ldap-corp"), "{text}");
    assert_eq!(error.category(), "configuration");

    use keyward::providers::Revoked;
    let local = Enrolment::new("ol", FactorKind::new("totp"), true);
    assert_eq!(kc.revoke("lena", &local, RevocationMode::Delete).await, Ok(Revoked::Done));
    assert_eq!(kc.revoke("lena", &local, RevocationMode::Delete).await, Ok(Revoked::AlreadyGone), "no longer listed");
    // A local user's second 404 is gone as before; so is a user deleted since.
    let bob_key = Enrolment::new("wb", FactorKind::new("webauthn"), true);
    assert_eq!(kc.revoke("bob", &bob_key, RevocationMode::Delete).await, Ok(Revoked::Done));
    assert_eq!(kc.revoke("bob", &bob_key, RevocationMode::Delete).await, Ok(Revoked::AlreadyGone));
    state.lock().expect("state").users.retain(|u| u.username != "lena");
    assert_eq!(kc.revoke("lena", &held, RevocationMode::Delete).await, Ok(Revoked::AlreadyGone), "the user is gone");
}

/// `scope: All` finds a user storage's factor too: the realm listing must carry
/// `federationLink`, which the brief representation may not.
#[tokio::test]
async fn scope_all_asks_the_user_storage_of_listed_users() {
    let mut state = acme();
    let mut ldap = user("u-lena", "lena", &[]);
    ldap.federation_link = Some("ldap-corp".into());
    ldap.storage_types = vec!["otp".into()];
    state.users.push(ldap);
    let (server, _state) = serve(state, handle).await;
    let kc = backend(&server.uri(), "ClientCredentials", "  scope: All\n");
    let inventory = kc.inventory(&UserQuery { declared: vec![], all: true }).await.expect("inventory");
    let lena = inventory.users.iter().find(|u| u.name == "lena").expect("lena listed");
    let ids: Vec<&str> = lena.enrolments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["user-storage:otp"]);
}

/// plan and apply through the keyward binary: the storage-held OTP of an offboarded user is
/// planned for revocation and the apply fails loudly on it instead of passing it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reports_a_storage_held_factor_it_cannot_revoke() {
    let mut state = acme();
    let dave = state.users.iter_mut().find(|u| u.username == "dave").expect("dave");
    dave.federation_link = Some("ldap-corp".into());
    dave.storage_types = vec!["otp".into()];
    let (server, _state) = serve(state, handle).await;
    let block = format!(
        "  keycloak:\n    url: {}\n    realm: corp\n    credentials: {{secretRef: {{name: corp-admin}}}}",
        server.uri()
    );
    let tree =
        company(&block, &format!("  clientId: keyward\n  clientSecret: {}", keycloak_mock::CLIENT_SECRET), "totp");
    let (code, plan) = plan(tree.path()).await;
    assert_eq!(code, 2, "{plan}");
    let storage: Vec<_> = plan["providers"][0]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["enrolment"] == "user-storage:otp")
        .collect();
    assert_eq!(storage.len(), 1, "{plan}");
    assert_eq!(storage[0]["reason"], "EmployeeOffboarded");
    let (code, audit, stderr) = apply(tree.path()).await;
    assert_ne!(code, 0, "{stderr}");
    let failed: Vec<_> = audit.iter().filter(|r| r["enrolment"] == "user-storage:otp").collect();
    assert!(failed.iter().all(|r| r["outcome"] != "revoked"), "{audit:?}");
    assert!(!failed.is_empty(), "the failure is on the record: {audit:?}");
}

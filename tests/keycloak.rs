//! keyward against a real Keycloak (`scripts/keycloak.sh`, one server for this test binary, a
//! realm per test): people enrol TOTP through Keycloak's own required-action pages, and every
//! revocation is proven the way they notice it — the login with password and TOTP code at the
//! realm's token endpoint stops working. plan/apply through the keyward binary, the operator
//! on a real kube-apiserver, `scope: All`, protected users, Observe mode, Keycloak stopping
//! mid-sweep, a user deleted and re-created under the same name, and the mock of
//! `tests/providers_keycloak.rs` run side by side with the real server.

#[path = "support/keycloak.rs"]
mod kc;
#[path = "contracts/keycloak.rs"]
mod kc_contract;
#[path = "support/keycloak_mock.rs"]
mod keycloak_mock;
#[allow(clippy::duplicate_mod)]
mod providers_support;
#[allow(clippy::duplicate_mod)]
mod support;

use kc::{Keycloak, Realm, StopProxy, Totp, keycloak};
use keyward::crd::mfa_provider::RevocationMode;
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::Enrolment;
use keyward::providers::rest::Backoff;
use keyward::providers::{Provider, Revoked, UserQuery, connect_with};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{actions, apply, edit, keyward, plan_json, stderr, stdout};

/// People of the test company and their second factor: all enrol TOTP but grace, who is to
/// be asked to.
const ENROLLED: [&str; 6] = ["alice", "bob", "carol", "dave", "mallory", "breakglass"];

/// A realm of its own with the company enrolled, and the manifests that declare it.
struct Acme {
    kc: &'static Keycloak,
    realm: Realm,
    totp: BTreeMap<&'static str, Totp>,
    tree: tempfile::TempDir,
}

impl Acme {
    fn logs_in(&self, user: &str) -> bool {
        self.kc.logs_in(&self.totp[user])
    }

    fn otp_ids(&self, user: &str) -> Vec<String> {
        self.kc.otp_ids(&self.realm.name, user)
    }

    /// Who can still log in with password and TOTP, of `users`.
    fn who_logs_in(&self, users: &[&str]) -> Vec<String> {
        users.iter().filter(|u| self.logs_in(u)).map(|u| u.to_string()).collect()
    }
}

/// alice (sre) keeps TOTP; bob (dev) is not entitled; carol (sre) is suspended; dave (sre)
/// has left; grace must enrol TOTP; mallory has no Employee; breakglass is protected.
fn acme(name: &str, namespace: &str, url: Option<&str>) -> Acme {
    let kc = keycloak();
    let realm = kc.realm(name);
    let mut totp = BTreeMap::new();
    for user in ENROLLED {
        kc.add_user(&realm.name, user);
        totp.insert(user, kc.enrol_totp(&realm.name, user));
    }
    kc.add_user_asked(&realm.name, "grace", &[]);
    for user in ENROLLED {
        kc.login(&totp[user]).unwrap_or_else(|e| panic!("{user} logs in before keyward runs: {e}"));
    }
    let tree = tempfile::tempdir().expect("tempdir");
    std::fs::write(tree.path().join("acme.yaml"), manifests(&realm, namespace, url.unwrap_or(kc.url())))
        .expect("write");
    Acme { kc, realm, totp, tree }
}

fn manifests(realm: &Realm, namespace: &str, url: &str) -> String {
    let employee = |name: &str, role: &str, state: &str| {
        format!(
            "---\napiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
             spec: {{email: {name}@acme.example, roles: [{role}], state: {state}}}\n"
        )
    };
    let mut text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: kc-client, namespace: {namespace}, labels: {{keyward.dev/credentials: \"true\"}}}}\n\
         stringData: {{clientId: {client}, clientSecret: {secret}}}\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-kc, namespace: {namespace}}}\n\
         spec:\n  keycloak:\n    url: {url}\n    realm: {realm}\n    authRealm: {realm}\n    credentials: {{secretRef: {{name: kc-client}}}}\n\
         \x20 userMapping: name\n  scope: Declared\n  protectedUsers: [breakglass]\n  policy:\n    mode: Enforce\n\
         \x20   budget: {{maxRevocations: 25}}\n    resyncInterval: 10m\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: AccessGrant\nmetadata: {{name: sre-totp, namespace: {namespace}}}\n\
         spec: {{provider: corp-kc, subjects: {{roles: [sre]}}, factors: [totp]}}\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: AccessGrant\nmetadata: {{name: grace-totp, namespace: {namespace}}}\n\
         spec: {{provider: corp-kc, subjects: {{employees: [grace]}}, factors: [totp], enrolment: Required}}\n",
        client = realm.client_id,
        secret = realm.client_secret,
        realm = realm.name,
    );
    for (name, role, state) in [
        ("alice", "sre", "Active"),
        ("bob", "dev", "Active"),
        ("carol", "sre", "Suspended"),
        ("dave", "sre", "Offboarded"),
        ("grace", "dev", "Active"),
    ] {
        text.push_str(&employee(name, role, state));
    }
    text
}

fn revoke(user: &str, reason: &str) -> (String, String, String, String) {
    ("revoke".into(), user.into(), "totp".into(), reason.into())
}

fn revocations(plan: &Value) -> Vec<(String, String, String, String)> {
    actions(plan).into_iter().filter(|a| a.0 == "revoke").collect()
}

fn declared_revocations() -> Vec<(String, String, String, String)> {
    vec![revoke("bob", "NotEntitled"), revoke("carol", "EmployeeSuspended"), revoke("dave", "EmployeeOffboarded")]
}

#[test]
fn plan_and_apply_revoke_exactly_the_undeclared_totp_and_those_logins_stop_working() {
    let _shared = kc::shared();
    let acme = acme("apply", "acme", None);
    let (code, plan) = plan_json(acme.tree.path());
    assert_eq!(code, 2, "changes pending: {plan}");
    assert_eq!(revocations(&plan), declared_revocations(), "{plan}");
    let invites: Vec<_> = actions(&plan).into_iter().filter(|a| a.0 == "invite").collect();
    assert_eq!(invites.len(), 1, "grace is asked to enrol: {plan}");
    assert_eq!((invites[0].1.as_str(), invites[0].2.as_str()), ("grace", "totp"));
    assert_eq!(acme.who_logs_in(&ENROLLED).len(), 6, "plan changes nothing");

    let (out, audit) = apply(acme.tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let revoked: Vec<_> = audit.iter().filter(|r| r["outcome"] == "revoked").collect();
    assert_eq!(revoked.len(), 3, "{audit:?}");
    for record in &revoked {
        assert_eq!(record["provider"], "acme/corp-kc");
        assert_eq!(record["kind"], "totp");
    }
    assert_eq!(acme.who_logs_in(&ENROLLED), ["alice", "mallory", "breakglass"], "bob, carol and dave lost their TOTP");
    for user in ["bob", "carol", "dave"] {
        assert_eq!(acme.otp_ids(user), Vec::<String>::new(), "{user}'s OTP credential is gone");
    }
    // The invitation is Keycloak's own: grace is asked to set up TOTP at her next login, and can.
    assert_eq!(acme.kc.required_actions(&acme.realm.name, "grace"), ["CONFIGURE_TOTP"]);
    let grace = acme.kc.enrol_totp(&acme.realm.name, "grace");
    acme.kc.login(&grace).expect("grace enrolled through the required action");

    let (code, again) = plan_json(acme.tree.path());
    assert_eq!(code, 0, "nothing left to do: {again}");
}

#[test]
fn observe_mode_reports_the_same_plan_and_every_login_keeps_working() {
    let _shared = kc::shared();
    let acme = acme("observe", "acme", None);
    let (_, enforce) = plan_json(acme.tree.path());
    edit(acme.tree.path(), "acme.yaml", "mode: Enforce", "mode: Observe");
    let (code, observe) = plan_json(acme.tree.path());
    assert_eq!(code, 2);
    assert_eq!(actions(&observe), actions(&enforce));
    assert_eq!(observe["providers"][0]["mode"], "Observe");
    let (out, audit) = apply(acme.tree.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Observe mode"), "{}", stdout(&out));
    assert!(audit.iter().all(|r| r["outcome"] != "revoked"), "{audit:?}");
    assert_eq!(acme.who_logs_in(&ENROLLED).len(), 6, "Observe changes nothing");
    assert!(acme.kc.required_actions(&acme.realm.name, "grace").is_empty(), "nor asks anyone to enrol");
}

#[test]
fn scope_all_revokes_the_undeclared_user_and_never_the_protected_one() {
    let _shared = kc::shared();
    let acme = acme("scopeall", "acme", None);
    edit(acme.tree.path(), "acme.yaml", "scope: Declared", "scope: All");
    let (_, plan) = plan_json(acme.tree.path());
    let mut expected = declared_revocations();
    expected.push(revoke("mallory", "UndeclaredUser"));
    expected.sort();
    assert_eq!(revocations(&plan), expected, "{plan}");
    let (out, audit) = apply(acme.tree.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(audit.iter().filter(|r| r["outcome"] == "revoked").count(), 4, "{audit:?}");
    assert_eq!(acme.who_logs_in(&ENROLLED), ["alice", "breakglass"], "breakglass is protected");
}

/// Under a `passwordHistory` policy Keycloak keeps a user's old passwords as credentials of
/// type `password-history` and lists them with the others. They are not second factors:
/// deleting them as unentitled ones (as keyward did) lets the user take an old password again.
#[test]
fn password_history_is_never_an_enrolment_and_the_policy_still_holds() {
    let _shared = kc::shared();
    let acme = acme("pwhistory", "acme", None);
    let (kc, realm) = (acme.kc, acme.realm.name.as_str());
    let policy = kc.admin(
        reqwest::Method::PUT,
        &format!("/{realm}"),
        Some(serde_json::json!({"passwordPolicy": "passwordHistory(3)"})),
    );
    assert_eq!(policy.status, 204, "set the password policy: {}", policy.body);
    let id = kc.user_id(realm, "alice").expect("alice");
    let reset = |password: &str| {
        let body = serde_json::json!({"type": "password", "value": password, "temporary": false});
        kc.admin(reqwest::Method::PUT, &format!("/{realm}/users/{id}/reset-password"), Some(body))
    };
    for password in ["alice-second-password", "alice-third-password"] {
        let answer = reset(password);
        assert_eq!(answer.status, 204, "alice changes her password: {}", answer.body);
    }
    let history = || kc.credentials(realm, "alice").iter().filter(|c| c["type"] == "password-history").count();
    let kept = history();
    assert!(kept >= 1, "Keycloak lists alice's old passwords: {:?}", kc.credentials(realm, "alice"));

    let (code, plan) = plan_json(acme.tree.path());
    assert_eq!(code, 2, "{plan}");
    assert_eq!(revocations(&plan), declared_revocations(), "alice holds nothing to revoke: {plan}");
    let (out, audit) = apply(acme.tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(audit.iter().all(|r| r["user"] != "alice"), "{audit:?}");
    assert_eq!(history(), kept, "alice's password history is intact");
    let reuse = reset(&kc::password("alice"));
    assert_eq!(reuse.status, 400, "the history still refuses her first password: {}", reuse.body);
}

/// Keycloak going away (connections closed, new ones refused) in the middle of the sweep's
/// reads, after two users' credentials: nothing is revoked, not even for the users read before
/// it went, and the error says why. Back, the next apply does the work.
#[test]
fn keycloak_going_away_mid_sweep_revokes_nothing_and_says_so() {
    let _shared = kc::shared();
    let kc = keycloak();
    let upstream: std::net::SocketAddr = kc.url().trim_start_matches("http://").parse().expect("host:port");
    let proxy = StopProxy::start(upstream, "/credentials HTTP/1.1", 3);
    let acme = acme("outage", "acme", Some(&proxy.url()));
    edit(acme.tree.path(), "acme.yaml", "scope: Declared", "scope: All");

    let (code, plan) = plan_json(acme.tree.path());
    assert!(proxy.is_down(), "Keycloak stopped during the sweep");
    assert_eq!(code, 1, "{plan}");
    let error = plan["providers"][0]["error"].as_str().expect("an error");
    assert!(error.contains("cannot reach") || error.contains("connection"), "{error}");
    assert!(plan["providers"][0]["actions"].as_array().is_none_or(|a| a.is_empty()), "{plan}");

    proxy.restore();
    let (out, audit) = apply(acme.tree.path());
    assert!(proxy.is_down(), "stopped again mid-sweep");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("cannot reach"), "{}", stdout(&out));
    assert!(audit.iter().all(|r| r["outcome"] != "revoked"), "an outage revokes nothing: {audit:?}");
    assert_eq!(acme.who_logs_in(&ENROLLED).len(), 6, "every TOTP still works");

    // Back up (the proxy never trips again): the same apply revokes.
    let steady = StopProxy::start(upstream, "/credentials HTTP/1.1", usize::MAX);
    edit(acme.tree.path(), "acme.yaml", &proxy.url(), &steady.url());
    let (out, _) = apply(acme.tree.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(acme.who_logs_in(&ENROLLED), ["alice", "breakglass"]);
}

/// Keycloak's process stops (SIGSTOP: there, answering nothing) in the middle of the sweep's
/// reads: the calls time out, nothing is revoked and the error says so. The same server goes
/// on (SIGCONT) and every TOTP still logs in; the next apply does the work.
#[test]
fn keycloak_hanging_mid_sweep_revokes_nothing_and_says_so() {
    let _alone = kc::exclusive(); // no other test meets the stopped server
    let kc = keycloak();
    let upstream: std::net::SocketAddr = kc.url().trim_start_matches("http://").parse().expect("host:port");
    let proxy = StopProxy::hooked(upstream, "/credentials HTTP/1.1", 3, move || kc.signal("STOP"));
    struct Continue(&'static Keycloak);
    impl Drop for Continue {
        fn drop(&mut self) {
            self.0.signal("CONT");
        }
    }
    let acme = acme("hang", "acme", Some(&proxy.url()));
    edit(acme.tree.path(), "acme.yaml", "scope: Declared", "scope: All");
    edit(acme.tree.path(), "acme.yaml", "    credentials: {secretRef", "    timeout: 2s\n    credentials: {secretRef");

    let resume = Continue(kc); // whatever happens below, the server goes on afterwards
    let started = std::time::Instant::now();
    let (code, plan) = plan_json(acme.tree.path());
    assert!(proxy.is_down(), "Keycloak was stopped during the sweep");
    assert_eq!(code, 1, "{plan}");
    let error = plan["providers"][0]["error"].as_str().expect("an error");
    assert!(error.contains("no answer within 2s"), "{error}");
    assert!(plan["providers"][0]["actions"].as_array().is_none_or(|a| a.is_empty()), "{plan}");
    eprintln!("the sweep gave up {:.1?} after it started", started.elapsed());
    drop(resume);
    assert_eq!(acme.who_logs_in(&ENROLLED).len(), 6, "nothing was revoked");

    // The hook fired once: this apply runs on the running server and revokes.
    let (out, audit) = apply(acme.tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(audit.iter().filter(|r| r["outcome"] == "revoked").count(), 4, "{audit:?}");
    assert_eq!(acme.who_logs_in(&ENROLLED), ["alice", "breakglass"]);
}

#[test]
fn wrong_credentials_or_realm_are_a_clear_error_and_revoke_nothing() {
    let _shared = kc::shared();
    let acme = acme("badcreds", "acme", None);
    let secret = acme.realm.client_secret.clone();
    edit(acme.tree.path(), "acme.yaml", &format!("clientSecret: {secret}"), "clientSecret: wrong");
    let (code, plan) = plan_json(acme.tree.path());
    assert_eq!(code, 1);
    let error = plan["providers"][0]["error"].as_str().expect("error");
    assert!(error.contains("credentials rejected") && error.contains("Invalid client"), "{error}");

    edit(acme.tree.path(), "acme.yaml", "clientSecret: wrong", &format!("clientSecret: {secret}"));
    edit(acme.tree.path(), "acme.yaml", "    realm: badcreds\n", "    realm: no-such-realm\n");
    // A lookup in a missing realm is a 404, not an empty answer: it must not read as "these
    // users have no enrolments" (it did, and grace was about to be invited).
    let (code, plan) = plan_json(acme.tree.path());
    assert_eq!(code, 1, "{plan}");
    let error = plan["providers"][0]["error"].as_str().expect("error");
    assert!(error.contains("realm not found"), "{error}");
    let (out, audit) = apply(acme.tree.path());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(audit.is_empty());
    assert_eq!(acme.who_logs_in(&ENROLLED).len(), 6);
}

fn secrets(realm: &Realm) -> impl Fn(&str, &str) -> Option<String> + '_ {
    move |_, key| match key {
        "clientId" => Some(realm.client_id.clone()),
        "clientSecret" => Some(realm.client_secret.clone()),
        _ => None,
    }
}

fn backend(url: &str, realm: &Realm) -> Provider {
    let yaml = format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-kc, namespace: acme}}\nspec:\n  keycloak:\n    url: {url}\n    realm: {r}\n    authRealm: {r}\n    credentials: {{secretRef: {{name: kc-client}}}}\n  policy: {{maxRequestsPerSecond: 1000}}\n",
        r = realm.name
    );
    let provider: MfaProvider = serde_yaml::from_str(&yaml).expect("provider");
    connect_with(&provider, &secrets(realm), Backoff::quick()).expect("connect")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Recovery codes are a factor of their own: bob (dev) may hold TOTP but not recovery codes,
/// alice (sre) both. apply revokes bob's recovery codes only — his recovery-code login stops
/// working (Keycloak sends him to set codes up instead of asking for one) while his TOTP login
/// and both of alice's keep working.
#[test]
fn recovery_codes_are_revoked_apart_from_totp_and_that_login_stops_working() {
    let _shared = kc::shared();
    let kc = keycloak();
    let realm = kc.realm("recovery");
    let mut people = BTreeMap::new();
    for user in ["alice", "bob"] {
        kc.add_user(&realm.name, user);
        let totp = kc.enrol_totp(&realm.name, user);
        let codes = kc.enrol_recovery_codes(&realm.name, user);
        kc.login(&totp).unwrap_or_else(|e| panic!("{user}'s TOTP login: {e}"));
        kc.recovery_login(&codes).unwrap_or_else(|e| panic!("{user}'s recovery-code login: {e}"));
        people.insert(user, (totp, codes));
    }
    let kinds: Vec<String> =
        kc.credentials(&realm.name, "bob").iter().map(|c| c["type"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(kinds, ["password", "otp", "recovery-authn-codes"]);
    let listed = kc.credentials(&realm.name, "bob");
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let recorded = kc_contract::credential("x", "recovery-authn-codes", 0);
    assert_eq!(keys(&listed[2]), keys(&recorded), "the mock's recovery codes have the real fields");
    let data: Value = serde_json::from_str(listed[2]["credentialData"].as_str().expect("string")).expect("json");
    let recorded_data: Value =
        serde_json::from_str(recorded["credentialData"].as_str().expect("string")).expect("json");
    assert_eq!(keys(&data), keys(&recorded_data), "credentialData of recovery codes");
    assert_eq!(data["remainingCodes"], 11, "one code used by the login above");

    let tree = tempfile::tempdir().expect("tempdir");
    let text = manifests(&realm, "acme", kc.url());
    // Only alice and bob, no invitation: the grants of this realm.
    let text = text
        .split("---\n")
        .filter(|doc| !doc.contains("grace") && !doc.contains("name: carol") && !doc.contains("name: dave"))
        .collect::<Vec<_>>()
        .join("---\n");
    let text = text.replace(
        "subjects: {roles: [sre]}, factors: [totp]",
        "subjects: {roles: [sre]}, factors: [totp, recovery-codes]",
    );
    let text = format!(
        "{text}---\napiVersion: keyward.dev/v1alpha1\nkind: AccessGrant\nmetadata: {{name: dev-totp, namespace: acme}}\nspec: {{provider: corp-kc, subjects: {{roles: [dev]}}, factors: [totp]}}\n"
    );
    std::fs::write(tree.path().join("acme.yaml"), text).expect("write");

    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 2, "{plan}");
    assert_eq!(
        actions(&plan),
        [("revoke".to_string(), "bob".to_string(), "recovery-codes".to_string(), "NotEntitled".to_string())]
    );
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(audit.iter().filter(|r| r["outcome"] == "revoked").count(), 1, "{audit:?}");

    let (bob_totp, bob_codes) = &people["bob"];
    let refused = kc.recovery_login(bob_codes).expect_err("bob's recovery codes were revoked");
    assert!(refused.contains("not asked for a recovery code"), "{refused}");
    kc.login(bob_totp).expect("bob keeps TOTP");
    let (alice_totp, alice_codes) = &people["alice"];
    kc.recovery_login(alice_codes).expect("alice keeps her recovery codes");
    kc.login(alice_totp).expect("and TOTP");
    let (code, again) = plan_json(tree.path());
    assert_eq!(code, 0, "{again}");
}

/// A user deleted and re-created under the same name is a new Keycloak user (a new id). A
/// revocation decided on the old user's credential finds the name again, meets no such
/// credential on the new user, and counts it gone: the new user's TOTP is never touched on the
/// strength of the old id, and still logs in. The next sweep sees the new user's credential.
#[test]
fn a_re_created_user_keeps_the_new_totp_when_the_old_one_is_revoked() {
    let _shared = kc::shared();
    let kc = keycloak();
    let realm = kc.realm("recreate");
    kc.add_user(&realm.name, "alice");
    let _old = kc.enrol_totp(&realm.name, "alice");
    let old_id = kc.user_id(&realm.name, "alice").expect("alice");
    let rt = runtime();
    let keyward = backend(kc.url(), &realm);
    let query = UserQuery { declared: vec!["alice".into()], all: false };
    let first = rt.block_on(keyward.inventory(&query)).expect("inventory");
    let old_otp = first.users[0].enrolments[0].clone();
    assert_eq!(old_otp.kind.as_str(), "totp");

    kc.delete_user(&realm.name, "alice");
    let new_id = kc.add_user(&realm.name, "alice");
    assert_ne!(new_id, old_id);
    let new = kc.enrol_totp(&realm.name, "alice");
    let new_otp = kc.otp_ids(&realm.name, "alice");

    let outcome = rt.block_on(keyward.revoke("alice", &old_otp, RevocationMode::Delete));
    assert_eq!(outcome, Ok(Revoked::AlreadyGone));
    assert_eq!(kc.otp_ids(&realm.name, "alice"), new_otp, "the new user's credential is untouched");
    kc.login(&new).expect("the new alice still logs in with her TOTP");

    let second = rt.block_on(keyward.inventory(&query)).expect("inventory");
    let ids: Vec<String> = second.users.iter().flat_map(|u| u.enrolments.iter().map(|e| e.id.clone())).collect();
    assert_eq!(ids, new_otp, "the next sweep lists the new user's credential");
    // And revoking that one, by name, works on the new user.
    let current = Enrolment::new(new_otp[0].clone(), FactorKind::new("totp"), true);
    assert_eq!(rt.block_on(keyward.revoke("alice", &current, RevocationMode::Delete)), Ok(Revoked::Done));
    assert!(!kc.logs_in(&new), "revoked: the TOTP login stops working");
}

/// Two Keycloak users with one e-mail (a realm with `duplicateEmailsAllowed`): both are listed
/// under the address, and a revocation by that address touches neither — both still log in.
#[test]
fn two_users_with_one_address_are_a_conflict_never_a_guess() {
    let _shared = kc::shared();
    let kc = keycloak();
    let realm = kc.realm("twins");
    let settings = serde_json::json!({"loginWithEmailAllowed": false, "duplicateEmailsAllowed": true});
    let put = kc.admin(reqwest::Method::PUT, &format!("/{}", realm.name), Some(settings));
    assert_eq!(put.status, 204, "{}", put.body);
    kc.add_user(&realm.name, "alice");
    kc.add_user_full(&realm.name, "alice.twin", "alice@acme.example", &["CONFIGURE_TOTP"]);
    let (alice, twin) = (kc.enrol_totp(&realm.name, "alice"), kc.enrol_totp(&realm.name, "alice.twin"));
    let rt = runtime();
    let keyward = backend(kc.url(), &realm);
    let query = UserQuery { declared: vec!["alice@acme.example".into()], all: false };
    let inventory = rt.block_on(keyward.inventory(&query)).expect("inventory");
    let names: Vec<&str> = inventory.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice@acme.example", "alice@acme.example"]);
    assert_eq!(inventory.duplicate_names().into_iter().collect::<Vec<_>>(), ["alice@acme.example"]);

    let otp = inventory.users[1].enrolments[0].clone();
    let error = rt.block_on(keyward.revoke("alice@acme.example", &otp, RevocationMode::Delete)).expect_err("conflict");
    assert_eq!(error.category(), "identity_conflict", "{error}");
    assert!(kc.logs_in(&alice) && kc.logs_in(&twin), "neither was touched");
}

/// The facts `tests/contracts/keycloak.rs` records (which the mock answers from) hold on the
/// real server.
#[test]
fn the_recorded_contract_holds_on_the_real_server() {
    let _shared = kc::shared();
    use kc_contract as contract;
    use reqwest::Method;
    let kc = keycloak();
    let realm = kc.realm("contract");
    let id = kc.add_user(&realm.name, "alice");
    kc.enrol_totp(&realm.name, "alice");
    kc.add_user(&realm.name, "bob");
    let r = &realm.name;

    let credentials = kc.credentials(r, "alice");
    let types: Vec<&str> = credentials.iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(types, ["password", "otp"]);
    let otp = credentials.iter().find(|c| c["type"] == "otp").expect("otp");
    for field in contract::CREDENTIAL_FIELDS {
        assert!(otp.get(field).is_some(), "credential lacks {field}: {otp}");
    }
    assert!(contract::CREDENTIAL_TYPES.contains(&"otp"));
    let data: Value = serde_json::from_str(otp["credentialData"].as_str().expect("a string")).expect("JSON in it");
    let recorded: Value = serde_json::from_str(&contract::otp_credential_data("totp")).expect("json");
    assert_eq!(data, recorded, "credentialData format");
    assert_eq!(
        keyward::providers::keycloak::kind_of("otp", otp["credentialData"].as_str()),
        Some(FactorKind::new("totp"))
    );
    let expected =
        contract::credential(otp["id"].as_str().expect("id"), "otp", otp["createdDate"].as_u64().expect("ms"));
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(otp), keys(&expected), "the mock's credential has the real one's fields");

    // Paging: first/max, a short page is the last; brief users carry id, username, email.
    let page =
        |first: usize| kc.admin(Method::GET, &format!("/{r}/users?first={first}&max=1&briefRepresentation=true"), None);
    let (p0, p1, p2) = (page(0).json(), page(1).json(), page(2).json());
    assert_eq!(
        (p0.as_array().map(Vec::len), p1.as_array().map(Vec::len), p2.as_array().map(Vec::len)),
        (Some(1), Some(1), Some(0))
    );
    for field in ["id", "username", "email"] {
        assert!(p0[0].get(field).is_some(), "brief user lacks {field}: {p0}");
    }
    // Lookups match without regard to case.
    let by_name = kc.admin(Method::GET, &format!("/{r}/users?username=ALICE&exact=true"), None).json();
    assert_eq!(by_name[0]["id"], id.as_str());
    let by_mail = kc.admin(Method::GET, &format!("/{r}/users?email=Alice@ACME.example&exact=true"), None).json();
    assert_eq!(by_mail[0]["id"], id.as_str());

    // A local user's storage credential types: [].
    let storage = kc.admin(Method::GET, &format!("/{r}/users/{id}/{}", contract::STORAGE_CREDENTIAL_TYPES), None);
    assert_eq!((storage.status, storage.json()), (200, serde_json::json!([])));

    // Deletes and their errors.
    let cid = otp["id"].as_str().expect("id");
    let delete = kc.admin(Method::DELETE, &format!("/{r}/users/{id}/credentials/{cid}"), None);
    assert_eq!(delete.status, contract::DELETED);
    let again = kc.admin(Method::DELETE, &format!("/{r}/users/{id}/credentials/{cid}"), None);
    assert_eq!(
        (again.status, again.json()),
        (contract::NOT_FOUND, contract::admin_error(contract::CREDENTIAL_NOT_FOUND))
    );
    let ghost = "00000000-0000-0000-0000-000000000000";
    let nobody = kc.admin(Method::GET, &format!("/{r}/users/{ghost}/credentials"), None);
    assert_eq!((nobody.status, nobody.json()), (404, contract::admin_error(contract::USER_NOT_FOUND)));
    let no_realm = kc.admin(Method::GET, "/no-such-realm/users", None);
    assert_eq!((no_realm.status, no_realm.json()), (404, contract::admin_error(contract::REALM_NOT_FOUND)));

    // PUT merges: a body with only requiredActions keeps the rest, and replaces the list.
    let put = kc.admin(
        Method::PUT,
        &format!("/{r}/users/{id}"),
        Some(serde_json::json!({"requiredActions": ["CONFIGURE_TOTP"]})),
    );
    assert_eq!(put.status, contract::UPDATED);
    let user = kc.admin(Method::GET, &format!("/{r}/users/{id}"), None).json();
    assert_eq!((user["email"].as_str(), user["firstName"].as_str()), (Some("alice@acme.example"), Some("alice")));
    assert_eq!(user["requiredActions"], serde_json::json!(["CONFIGURE_TOTP"]));

    // Required actions keyward sets exist and are enabled.
    let known = kc.admin(Method::GET, &format!("/{r}/authentication/required-actions"), None).json();
    for (kind, action) in contract::REQUIRED_ACTIONS {
        assert_eq!(keyward::providers::keycloak::required_action(kind), Some(action));
        let entry = known.as_array().and_then(|a| a.iter().find(|x| x["alias"] == action)).expect(action);
        assert_eq!(entry["enabled"], true, "{action}");
    }

    // The server is the release the facts were recorded from (or the one KEYWARD_KC_VERSION
    // asked for, which they are then checked against).
    let info =
        kc.call(Method::GET, &format!("{}/admin/serverinfo", kc.url()), Some(&kc.admin_token()), kc::Body::None, &[]);
    let running = info.json()["systemInfo"]["version"].as_str().unwrap_or_default().to_string();
    assert_eq!(running, kc.env["KEYWARD_KC_VERSION"], "the script's version runs");
    if running != contract::VERSION {
        eprintln!("note: facts recorded on Keycloak {} hold on {running}", contract::VERSION);
    }

    // A wrong client secret.
    let token = kc.call(
        Method::POST,
        &format!("{}/realms/{r}/protocol/openid-connect/token", kc.url()),
        None,
        kc::Body::form(&[("grant_type", "client_credentials"), ("client_id", "keyward"), ("client_secret", "wrong")]),
        &[],
    );
    assert_eq!((token.status, token.json()), (401, contract::token_refused()));
}

/// One scenario — check, inventory (declared, then the realm listing), revoke, revoke again,
/// invite twice — against the mock and against the real server through a recording proxy:
/// the same requests, the same statuses, the same outcomes. A mock that drifts from Keycloak
/// fails here.
#[test]
fn the_mock_and_the_real_server_answer_one_scenario_alike() {
    let _shared = kc::shared();
    let kc = keycloak();
    let realm = kc.realm("twin");
    let user_id = kc.add_user_asked(&realm.name, "alice", &["CONFIGURE_TOTP"]);
    kc.enrol_totp(&realm.name, "alice");
    let otp_id = kc.otp_ids(&realm.name, "alice")[0].clone();
    let rt = runtime();

    let run = |keyward: &Provider, otp: &str| -> Vec<String> {
        rt.block_on(async {
            let mut outcomes = vec![format!("{:?}", keyward.check().await.map_err(|e| e.to_string()))];
            for all in [false, true] {
                let query = UserQuery { declared: vec!["alice".into(), "nobody".into()], all };
                let inventory = keyward.inventory(&query).await.expect("inventory");
                for u in &inventory.users {
                    let kinds: Vec<&str> = u.enrolments.iter().map(|e| e.kind.as_str()).collect();
                    outcomes.push(format!("{} {kinds:?}", u.name));
                }
            }
            let enrolment = Enrolment::new(otp, FactorKind::new("totp"), true);
            for _ in 0..2 {
                let revoked = keyward.revoke("alice", &enrolment, RevocationMode::Delete).await;
                outcomes.push(format!("{revoked:?}"));
            }
            for _ in 0..2 {
                let invited = keyward.invite("alice", &FactorKind::new("totp")).await;
                outcomes.push(format!("{invited:?}"));
            }
            outcomes
        })
    };
    let normalise = |exchanges: Vec<(String, u16)>, realm: &str, user: &str, otp: &str| -> Vec<String> {
        exchanges
            .into_iter()
            .map(|(line, status)| {
                let line = line.replace(realm, "{realm}").replace(user, "{user}").replace(otp, "{otp}");
                format!("{line} -> {status}")
            })
            .collect()
    };

    let proxy = StopProxy::start(kc.url().trim_start_matches("http://").parse().expect("addr"), "never", usize::MAX);
    let real = run(&backend(&proxy.url(), &realm), &otp_id);
    let real_exchanges = normalise(proxy.exchanges(), &realm.name, &user_id, &otp_id);
    assert_eq!(kc.required_actions(&realm.name, "alice"), ["CONFIGURE_TOTP"]);

    let mut state = keycloak_mock::Keycloak {
        realm: "corp".into(),
        client_secret: realm.client_secret.clone(),
        ..Default::default()
    };
    state.users.push(keycloak_mock::user("u-alice", "alice", &[("pa", "password"), ("oa", "otp")]));
    let (server, state) = rt.block_on(providers_support::serve(state, keycloak_mock::handle));
    let mock_realm = Realm { name: "corp".into(), ..realm };
    let mock = run(&backend(&server.uri(), &mock_realm), "oa");
    let mock_exchanges = normalise(state.lock().expect("state").exchanges.clone(), "corp", "u-alice", "oa");

    assert_eq!(mock, real, "outcomes");
    assert_eq!(mock_exchanges, real_exchanges, "requests and statuses");
    assert!(real_exchanges.iter().any(|l| l.starts_with("DELETE") && l.ends_with("-> 404")), "{real_exchanges:?}");
}

/// `keyward run` on a real kube-apiserver and etcd, as the chart's ServiceAccount, sweeping
/// the real Keycloak: the leavers' TOTP stops working after the first sweep, then alice's
/// after `kubectl patch` offboards her.
#[test]
fn the_operator_revokes_on_keycloak_and_the_totp_login_stops_working() {
    let _shared = kc::shared();
    let acme = acme("operator", "kc-op", None);
    let c = support::cluster::cluster();
    let tree: &Path = acme.tree.path();
    std::fs::write(tree.join("00-namespace.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: kc-op}\n")
        .expect("namespace");
    c.kubectl_ok(&["apply", "-f", tree.to_str().expect("utf-8")]);
    let audit = tree.join("audit.jsonl");
    let _operator = c.operator("kc-op", "keyward-keycloak", &audit);
    let within = Duration::from_secs(60);
    support::cluster::eventually(within, "the first sweep's revocations", || {
        ["bob", "carol", "dave"].iter().all(|u| acme.otp_ids(u).is_empty())
    });
    assert_eq!(acme.who_logs_in(&ENROLLED), ["alice", "mallory", "breakglass"]);

    c.kubectl_ok(&[
        "-n",
        "kc-op",
        "patch",
        "employee",
        "alice",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"state":"Offboarded"}}"#,
    ]);
    support::cluster::eventually(within, "alice's TOTP revoked", || acme.otp_ids("alice").is_empty());
    assert!(!acme.logs_in("alice"), "alice's TOTP login stopped working");
    let records = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(records.lines().any(|l| l.contains("\"user\":\"alice\"") && l.contains("EmployeeOffboarded")), "{records}");
}

/// The disposable user a `keyward conformance` run named in its first line.
fn conformance_user(out: &str) -> String {
    out.lines()
        .next()
        .and_then(|l| l.rsplit_once(" with the disposable user "))
        .map(|(_, user)| user.trim().to_string())
        .unwrap_or_else(|| panic!("no test user named: {out}"))
}

/// `keyward conformance` against the real Keycloak. Without the confirmation it
/// refuses and writes nothing; with it, a user of its own is created with a TOTP credential
/// (Keycloak's admin API stores such a credential only at creation), read through the
/// operator's listing and per-user read, revoked, read again and deleted — every request shown,
/// the client secret never; nobody else's credentials change.
#[test]
fn conformance_proves_keycloak_on_a_user_of_its_own_and_leaves_nothing_behind() {
    let acme = acme("conformance", "acme", None);
    let tree = acme.tree.path().to_str().expect("utf-8");
    let args = ["conformance", "-f", tree, "--provider", "corp-kc", "--user-prefix", "kw-conformance"];
    let refused = keyward(&args);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--i-understand-this-writes"), "{}", stderr(&refused));
    let others =
        |kc: &Keycloak| -> Vec<Vec<String>> { ENROLLED.iter().map(|u| kc.otp_ids(&acme.realm.name, u)).collect() };
    let before = others(acme.kc);

    let mut confirmed = args.to_vec();
    confirmed.push("--i-understand-this-writes");
    let out = keyward(&confirmed);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("verdict: PASS"), "{text}");
    for step in
        ["enrol a second factor: totp", "read it as a targeted sweep does: listed", "read again: the factor is gone"]
    {
        assert!(text.contains(step), "{step:?} missing from {text}");
    }
    assert!(text.contains("/credentials/") && text.contains("→ 204"), "the revocation's request is shown: {text}");
    assert!(!text.contains(&acme.realm.client_secret), "the client secret is never shown");
    let user = conformance_user(&text);
    assert!(user.starts_with("kw-conformance-"), "{user}");
    assert_eq!(acme.kc.user_id(&acme.realm.name, &user), None, "the test user is deleted");
    assert_eq!(others(acme.kc), before, "nobody else's credentials changed");
}

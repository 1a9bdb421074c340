//! keyward plan/apply against a real privacyIDEA, proving revocations with /validate/check.

mod support;

use support::*;

fn expected_revocations() -> Vec<(String, String, String, String)> {
    [
        ("bob", "hotp", "NotEntitled"),
        ("carol", "totp", "EmployeeSuspended"),
        ("dave", "hotp", "EmployeeOffboarded"),
        ("dave", "totp", "EmployeeOffboarded"),
        ("erin", "totp", "EmployeeOutsideActiveWindow"),
        ("frank", "totp", "NotEntitled"),
    ]
    .iter()
    .map(|(u, k, r)| ("revoke".to_string(), u.to_string(), k.to_string(), r.to_string()))
    .collect()
}

fn pending_for_grace() -> Vec<(String, String, String, String)> {
    ["hotp", "totp"]
        .iter()
        .map(|k| ("pending".into(), "grace".into(), k.to_string(), "EnrolmentRequired".into()))
        .collect()
}

fn revocations(plan: &serde_json::Value) -> Vec<(String, String, String, String)> {
    actions(plan).into_iter().filter(|a| a.0 == "revoke").collect()
}

const KEPT: [(&str, &str); 4] = [("alice", "totp"), ("alice", "hotp"), ("bob", "totp"), ("breakglass", "totp")];
const REVOKED: [(&str, &str); 6] =
    [("bob", "hotp"), ("carol", "totp"), ("dave", "totp"), ("dave", "hotp"), ("erin", "totp"), ("frank", "totp")];

#[test]
fn apply_on_the_examples_revokes_exactly_the_undeclared_enrolments() {
    let pi = privacyidea();
    let acme = company(pi, "apply");
    for (user, kind) in KEPT.iter().chain(REVOKED.iter()).filter(|(u, _)| *u != "dave") {
        assert!(pi.authenticates(acme.token(user, kind)), "{user} {kind} works before keyward runs");
    }
    let tree = example_tree(pi, &acme.realm);

    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 2, "changes pending: {plan}");
    let mut expected = expected_revocations();
    expected.extend(pending_for_grace());
    expected.sort();
    assert_eq!(actions(&plan), expected);
    assert_eq!(plan["providers"][0]["blocked"], false);
    // dave was removed from the user store: his tokens were still found, through the audit log.
    assert_eq!(pi.tokens(&acme.realm).len(), 10, "nothing changed by plan");

    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(audit.len(), 6, "{audit:?}");
    for record in &audit {
        assert_eq!(record["outcome"], "revoked");
        assert_eq!(record["provider"], "acme/corp-pi");
        for field in ["time", "user", "enrolment", "kind", "reason", "employee", "grants"] {
            assert!(!record[field].is_null(), "audit record lacks {field}: {record}");
        }
    }
    let frank = audit.iter().find(|r| r["user"] == "frank").expect("frank audited");
    assert_eq!(frank["reason"], "NotEntitled");
    assert_eq!(frank["enrolment"], acme.token("frank", "totp").serial.as_str());

    for (user, kind) in KEPT {
        assert!(pi.authenticates(acme.token(user, kind)), "{user} {kind} is kept and still authenticates");
    }
    for (user, kind) in REVOKED {
        assert!(!pi.authenticates(acme.token(user, kind)), "{user} {kind} was revoked and must not authenticate");
    }
    let left = pi.tokens(&acme.realm);
    assert_eq!(left.len(), 4);

    let (code, again) = plan_json(tree.path());
    assert_eq!(code, 0, "a second plan has nothing to do: {again}");
    assert_eq!(actions(&again), pending_for_grace());
}

#[test]
fn observe_mode_reports_the_same_plan_and_changes_nothing() {
    let pi = privacyidea();
    let acme = company(pi, "observe");
    let tree = example_tree(pi, &acme.realm);
    let (_, enforce_plan) = plan_json(tree.path());
    edit(tree.path(), "10-provider.yaml", "mode: Enforce", "mode: Observe");
    let (code, observe_plan) = plan_json(tree.path());
    assert_eq!(code, 2);
    assert_eq!(actions(&observe_plan), actions(&enforce_plan));
    assert_eq!(observe_plan["providers"][0]["digest"], enforce_plan["providers"][0]["digest"]);
    assert_eq!(observe_plan["providers"][0]["mode"], "Observe");

    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(audit.is_empty(), "Observe writes no revocation records: {audit:?}");
    assert!(stdout(&out).contains("Observe mode"));
    assert_eq!(pi.tokens(&acme.realm).len(), 10);
    assert!(pi.authenticates(acme.token("frank", "totp")));
}

#[test]
fn a_plan_over_budget_waits_for_approval_of_its_digest() {
    let pi = privacyidea();
    let acme = company(pi, "budget");
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", "maxRevocations: 25", "maxRevocations: 2");

    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 2);
    let provider = &plan["providers"][0];
    assert_eq!(provider["blocked"], true);
    let digest = provider["digest"].as_str().expect("digest").to_string();
    assert!(provider["hold"].as_str().unwrap().contains(&digest));

    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(2), "blocked apply exits non-zero");
    assert!(stdout(&out).contains(&digest), "the digest to approve is printed: {}", stdout(&out));
    assert_eq!(audit.len(), 6);
    assert!(audit.iter().all(|r| r["outcome"] == "blocked"), "{audit:?}");
    assert_eq!(pi.tokens(&acme.realm).len(), 10, "nothing revoked over budget");
    assert!(pi.authenticates(acme.token("carol", "totp")));

    // A wrong digest approves nothing.
    edit(
        tree.path(),
        "10-provider.yaml",
        "  namespace: acme\nspec:\n  privacyidea:",
        "  namespace: acme\n  annotations:\n    keyward.dev/approve-revocations: \"0123456789abcdef\"\nspec:\n  privacyidea:",
    );
    let (out, _) = apply(tree.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(pi.tokens(&acme.realm).len(), 10);

    edit(tree.path(), "10-provider.yaml", "0123456789abcdef", &digest);
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(audit.iter().filter(|r| r["outcome"] == "revoked").count(), 6);
    assert!(!pi.authenticates(acme.token("carol", "totp")));
    assert_eq!(pi.tokens(&acme.realm).len(), 4);
}

/// `keyward apply` takes a RevocationApproval from the manifests as it takes the annotation:
/// one naming another digest does nothing, the one naming the held plan lets it through, and
/// its records name the approver it states.
#[test]
fn a_revocation_approval_in_the_manifests_lets_apply_carry_out_exactly_its_plan() {
    let pi = privacyidea();
    let acme = company(pi, "approval-object");
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", "maxRevocations: 25", "maxRevocations: 2");
    let (_, plan) = plan_json(tree.path());
    let digest = plan["providers"][0]["digest"].as_str().expect("digest").to_string();
    let approval = |digest: &str| {
        format!(
            "apiVersion: keyward.dev/v1alpha1\nkind: RevocationApproval\nmetadata:\n  name: leavers\n  namespace: acme\n  \
             annotations: {{keyward.dev/approved-by: jane@acme.example}}\nspec:\n  provider: corp-pi\n  \
             digest: \"{digest}\"\n  reason: reviewed\n"
        )
    };
    std::fs::write(tree.path().join("40-approval.yaml"), approval("0123456789abcdef")).unwrap();
    let (out, _) = apply(tree.path());
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(pi.tokens(&acme.realm).len(), 10, "another digest approves nothing");

    std::fs::write(tree.path().join("40-approval.yaml"), approval(&digest)).unwrap();
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let revoked: Vec<&serde_json::Value> = audit.iter().filter(|r| r["outcome"] == "revoked").collect();
    assert_eq!(revoked.len(), 6);
    assert!(
        revoked
            .iter()
            .all(|r| r["approval"]["digest"] == digest.as_str() && r["approval"]["manager"] == "jane@acme.example"),
        "{revoked:?}"
    );
    assert!(!pi.authenticates(acme.token("carol", "totp")));
}

#[test]
fn protected_users_survive_scope_all_which_revokes_undeclared_users() {
    let pi = privacyidea();
    let acme = company(pi, "scopeall");
    pi.add_user(&acme.realm, "mallory");
    let mallory = pi.admin_enrol(&acme.realm, "mallory", "totp");
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", "scope: Declared", "scope: All");

    let (_, plan) = plan_json(tree.path());
    let mut expected = expected_revocations();
    expected.push(("revoke".into(), "mallory".into(), "totp".into(), "UndeclaredUser".into()));
    expected.sort();
    assert_eq!(revocations(&plan), expected);

    let (out, _) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!pi.authenticates(&mallory));
    assert!(pi.authenticates(acme.token("breakglass", "totp")), "protected user untouched");
}

#[test]
fn an_identity_conflict_leaves_that_user_alone() {
    let pi = privacyidea();
    let acme = company(pi, "conflict");
    let tree = example_tree(pi, &acme.realm);
    append(
        tree.path(),
        "30-employees.yaml",
        "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata:\n  name: frank-two\n  namespace: acme\nspec:\n  email: frank2@acme.example\n  roles: [support]\n  identities: [{provider: corp-pi, username: frank}]\n",
    );
    // validate reports the conflict; plan and apply still run and leave frank alone.
    let o = keyward(&["validate", "-f", tree.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already claimed"), "{}", stderr(&o));

    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 2);
    let conflicts = &plan["providers"][0]["conflicts"];
    assert_eq!(conflicts[0]["user"], "frank", "{plan}");
    assert_eq!(conflicts[0]["employees"], serde_json::json!(["frank", "frank-two"]));
    let mut expected = expected_revocations();
    expected.retain(|a| a.1 != "frank");
    assert_eq!(revocations(&plan), expected);

    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("identity conflict"), "{}", stdout(&out));
    assert_eq!(audit.len(), 5);
    assert!(pi.authenticates(acme.token("frank", "totp")), "a conflicted user is left alone");
    assert!(!pi.authenticates(acme.token("carol", "totp")), "everyone else is still handled");
}

#[test]
fn disable_mode_disables_instead_of_deleting() {
    let pi = privacyidea();
    let acme = company(pi, "disable");
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", "revocation: Delete", "revocation: Disable");
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(audit.len(), 6);
    let tokens = pi.tokens(&acme.realm);
    assert_eq!(tokens.len(), 10, "Disable keeps the tokens");
    for (user, kind) in REVOKED {
        assert!(!tokens[&acme.token(user, kind).serial], "{user} {kind} disabled");
    }
    for (user, kind) in KEPT {
        assert!(tokens[&acme.token(user, kind).serial], "{user} {kind} still active");
        assert!(pi.authenticates(acme.token(user, kind)));
    }
    assert!(!pi.authenticates(acme.token("carol", "totp")));
    let (code, again) = plan_json(tree.path());
    assert_eq!(code, 0, "disabled tokens need nothing more: {again}");
}

#[test]
fn an_unreachable_or_failing_privacyidea_revokes_nothing() {
    let pi = privacyidea();
    let acme = company(pi, "outage");

    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", pi.url(), &format!("http://127.0.0.1:{port}"));
    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 1);
    let error = plan["providers"][0]["error"].as_str().unwrap();
    assert!(error.contains("cannot reach"), "{error}");
    assert!(plan["providers"][0]["actions"].as_array().unwrap().is_empty());
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("cannot reach"), "{}", stdout(&out));
    assert!(audit.is_empty());

    // Wrong admin password: privacyIDEA answers 401.
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", &format!("password: {}", pi.env["KEYWARD_PI_PASSWORD"]), "password: wrong");
    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 1);
    assert!(plan["providers"][0]["error"].as_str().unwrap().contains("credentials rejected"), "{plan}");

    // A realm that does not exist must not read as "no enrolments".
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", &format!("realm: {}", acme.realm), "realm: no-such-realm");
    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 1);
    assert!(plan["providers"][0]["error"].as_str().unwrap().contains("does not exist"), "{plan}");

    // A server answering 500 to everything.
    let failing = support::failing::failing_server(500);
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", pi.url(), &failing);
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("HTTP 500"), "{}", stdout(&out));
    assert!(audit.is_empty());

    assert_eq!(pi.tokens(&acme.realm).len(), 10, "no outage turned into a revocation");
}

/// Renames the table behind `realm`'s SQL user store (a SQLite file per realm, made by
/// `pi_users.py realm`), as an outage of that store would look to privacyIDEA: its resolver
/// can no longer look up anyone. Renaming back ends the outage.
fn user_store_table(pi: &support::PrivacyIdea, realm: &str, from: &str, to: &str) {
    let db = std::path::Path::new(&pi.env["KEYWARD_PI_HOME"]).join(format!("users-{realm}.sqlite"));
    let rename = format!(
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('ALTER TABLE {from} RENAME TO {to}'); c.commit()"
    );
    let o = std::process::Command::new("python3").arg("-c").arg(rename).arg(&db).output().expect("python3");
    assert!(o.status.success(), "rename the user table of {}: {}", db.display(), stderr(&o));
}

/// privacyIDEA answers the token listing of a realm whose user store cannot be read with 200,
/// each token's owner `**resolver error**` and no realm. Under `scope: All`, read as a listing,
/// that would be one undeclared user holding every token of the realm: all planned for
/// revocation.
#[test]
fn a_user_store_outage_revokes_nothing_and_the_provider_says_why() {
    let pi = privacyidea();
    let acme = company(pi, "storeout");
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", "scope: Declared", "scope: All");
    let (code, before) = plan_json(tree.path());
    assert_eq!(code, 2, "{before}");
    assert_eq!(revocations(&before), expected_revocations(), "the store answers: the usual plan");

    user_store_table(pi, &acme.realm, "users", "users_away");
    let listed = pi.users(&["tokens", "--realm", &acme.realm, "--raw"]);
    assert!(listed.to_string().contains("**resolver error**"), "privacyIDEA names no owner: {listed}");
    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 1, "{plan}");
    let provider = &plan["providers"][0];
    assert!(provider["actions"].as_array().unwrap().is_empty(), "{plan}");
    let error = provider["error"].as_str().unwrap();
    assert!(error.contains("could not name the owner") && error.contains("storeout-users"), "{error}");
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(audit.is_empty(), "{audit:?}");

    user_store_table(pi, &acme.realm, "users_away", "users");
    assert_eq!(pi.tokens(&acme.realm).len(), 10, "no outage turned into a revocation");
    let (code, after) = plan_json(tree.path());
    assert_eq!((code, revocations(&after)), (2, expected_revocations()), "back to the usual plan");
}

#[test]
fn malformed_manifests_name_file_and_line_and_revoke_nothing() {
    let pi = privacyidea();
    let acme = company(pi, "malformed");
    let tree = example_tree(pi, &acme.realm);
    // Dave's Employee gains a typo'd field: without validation his tokens would be revoked.
    edit(
        tree.path(),
        "30-employees.yaml",
        "  displayName: Dave Smith\n",
        "  displayName: Dave Smith\n  rolse: [dev]\n",
    );
    let employees = std::fs::read_to_string(tree.path().join("30-employees.yaml")).unwrap();
    let line = employees.lines().position(|l| l.contains("rolse")).unwrap() + 1;
    let file = tree.path().join("30-employees.yaml");
    let location = format!("{}:{line}", file.display());

    let o = keyward(&["validate", "-f", tree.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&location), "validate names {location}: {}", stderr(&o));

    let o = keyward(&["plan", "-f", tree.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&location), "plan names {location}: {}", stderr(&o));

    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(audit.is_empty());
    assert_eq!(pi.tokens(&acme.realm).len(), 10);
}

/// `keyward import` declares what the real privacyIDEA holds today: with the imported
/// Employees and grants beside the provider, under `scope: All`, the plan revokes only the
/// leaver's tokens (dave, gone from the user store) and never a protected user's; everyone
/// still logs in.
#[test]
fn import_declares_what_the_provider_holds_and_the_plan_keeps_it() {
    let pi = privacyidea();
    let acme = company(pi, "import");
    let tree = example_tree(pi, &acme.realm);
    let providers = tempfile::tempdir().expect("tempdir");
    std::fs::copy(tree.path().join("10-provider.yaml"), providers.path().join("provider.yaml")).expect("copy");
    edit(providers.path(), "provider.yaml", "scope: Declared", "scope: All");
    let imported = tempfile::tempdir().expect("tempdir");
    let out = keyward(&[
        "import",
        "-f",
        providers.path().to_str().expect("utf-8"),
        "--email-domain",
        "acme.example",
        "--out",
        imported.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("skipped dave") && err.contains("no longer in the provider's directory"), "{err}");
    assert!(err.contains("skipped breakglass") && err.contains("protected"), "{err}");
    let yaml = std::fs::read_to_string(imported.path().join("imported.yaml")).expect("imported");
    // Everyone holding a token; grace holds none, and the realm's token listing is what is read.
    for person in ["alice", "bob", "carol", "erin", "frank"] {
        assert!(yaml.contains(&format!("name: {person}\n")), "{person} imported:\n{yaml}");
    }
    assert!(!yaml.contains("name: grace\n") && !yaml.contains("name: dave\n"), "{yaml}");

    let (code, plan) = plan_json_paths(&[providers.path(), imported.path()]);
    assert_eq!(code, 2, "{plan}");
    let revoked: Vec<(String, String, String, String)> = revocations(&plan);
    assert_eq!(
        revoked,
        [
            ("revoke".to_string(), "dave".to_string(), "hotp".to_string(), "UndeclaredUser".to_string()),
            ("revoke".into(), "dave".into(), "totp".into(), "UndeclaredUser".into()),
        ],
        "only the leaver: {plan}"
    );
    for (user, kind) in KEPT.iter().chain(REVOKED.iter()).filter(|(u, _)| *u != "dave") {
        assert!(pi.authenticates(acme.token(user, kind)), "{user} {kind} still works");
    }
}

/// `keyward plan -f A -f B … --output json`.
fn plan_json_paths(paths: &[&std::path::Path]) -> (i32, serde_json::Value) {
    let mut args = vec!["plan".to_string()];
    for path in paths {
        args.extend(["-f".to_string(), path.display().to_string()]);
    }
    args.extend(["--output".to_string(), "json".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = keyward(&args);
    let plan =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("plan json: {e}: {}{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap_or(-1), plan)
}

/// The audit log `apply` writes against the real privacyIDEA verifies with `keyward audit
/// verify`; a line edited, a line removed and the log cut short are each caught, naming the
/// line.
#[test]
fn the_audit_log_is_a_chain_that_verify_checks() {
    let pi = privacyidea();
    let acme = company(pi, "chain");
    let tree = example_tree(pi, &acme.realm);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("audit.jsonl");
    let log_arg = log.to_str().expect("utf-8");
    let out = keyward(&["apply", "-f", tree.path().to_str().expect("utf-8"), "--audit-log", log_arg]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(&log).expect("audit log");
    // Six revocations: an intent before each provider call, an outcome after it.
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(records.len(), 12, "{text}");
    assert_eq!(records.iter().filter(|r| r["event"] == "intent" && r["outcome"] == "intended").count(), 6);
    assert_eq!(support::outcomes_after_their_intents(&records).len(), 6);
    let verify = || {
        let o = keyward(&["audit", "verify", log_arg]);
        (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
    };
    let (code, out) = verify();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: 12 record(s), chain and sequence intact, not shorter than"), "{out}");

    let lines: Vec<&str> = text.lines().collect();
    let write = |lines: &[&str]| std::fs::write(&log, lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    let outcome = lines.iter().position(|l| l.contains("\"outcome\":\"revoked\"")).expect("an outcome line");
    let mut edited = lines.clone();
    let forged = lines[outcome].replacen("\"outcome\":\"revoked\"", "\"outcome\":\"failed\"", 1);
    edited[outcome] = &forged;
    write(&edited).expect("edit");
    let (code, out) = verify();
    assert_eq!(code, Some(1), "{out}");
    let next = format!("audit.jsonl:{}: the previous line is not the one this record was chained to", outcome + 2);
    assert!(out.contains(&next), "{out}");

    let mut removed = lines.clone();
    removed.remove(2);
    write(&removed).expect("remove");
    let (code, out) = verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("audit.jsonl:3: sequence 3 where 2 was due"), "{out}");

    write(&lines[..4]).expect("truncate");
    let (code, out) = verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("truncated"), "{out}");
}

/// `keyward check` signs in and reads no enrolment: the right credentials pass, a wrong
/// password and a realm that does not exist fail with the provider named, and no token is
/// touched either way.
#[test]
fn check_tries_the_credentials_and_names_the_provider_that_refused() {
    let pi = privacyidea();
    let acme = company(pi, "check");
    let tree = example_tree(pi, &acme.realm);
    let path = tree.path().display().to_string();
    let out = keyward(&["check", "-f", &path]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("ok     acme/corp-pi: credentials accepted"), "{}", stdout(&out));

    edit(tree.path(), "10-provider.yaml", &format!("password: {}", pi.env["KEYWARD_PI_PASSWORD"]), "password: wrong");
    let out = keyward(&["check", "-f", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("error  acme/corp-pi") && stdout(&out).contains("credentials rejected"),
        "{}",
        stdout(&out)
    );

    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", &format!("realm: {}", acme.realm), "realm: no-such-realm");
    let out = keyward(&["check", "-f", &tree.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("does not exist"), "{}", stdout(&out));
    assert_eq!(pi.tokens(&acme.realm).len(), 10, "check touched no token");
}

/// Signed checkpoints (C2SP signed note, Ed25519): `apply` signs the log's checkpoint with the
/// key from `audit keygen`; `verify --key` accepts it, and refuses a checkpoint rewritten to
/// match a log cut short (unsigned, or its count edited) or signed by another key.
#[test]
fn signed_checkpoints_catch_a_log_cut_short_with_its_checkpoint_rewritten() {
    let pi = privacyidea();
    let acme = company(pi, "signed");
    let tree = example_tree(pi, &acme.realm);
    let logs = tempfile::tempdir().expect("tempdir");
    let keygen = keyward(&["audit", "keygen", "acme-audit"]);
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let keys = stdout(&keygen);
    let (signer, verifier) = keys.split_once('\n').expect("two keys");
    assert!(signer.starts_with("PRIVATE+KEY+acme-audit+"), "{keys}");
    let signer_file = logs.path().join("signer");
    std::fs::write(&signer_file, signer).expect("write key");
    let log = logs.path().join("audit.jsonl");
    let (log_arg, key_arg) = (log.to_str().expect("utf-8"), signer_file.to_str().expect("utf-8"));
    let out = keyward(&[
        "apply",
        "-f",
        tree.path().to_str().expect("utf-8"),
        "--audit-log",
        log_arg,
        "--audit-signing-key",
        key_arg,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let verify = || {
        let o = keyward(&["audit", "verify", log_arg, "--key", verifier.trim()]);
        (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
    };
    let (code, out) = verify();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: 12 record(s)") && out.contains("checkpoint signature valid"), "{out}");

    let checkpoint = log.with_file_name("audit.jsonl.checkpoint");
    let note = std::fs::read_to_string(&checkpoint).expect("checkpoint");
    assert!(note.starts_with("keyward.dev/audit\n12\n") && note.contains("\n\n\u{2014} acme-audit "), "{note}");
    let text = std::fs::read_to_string(&log).expect("log");
    let cut: String = text.lines().take(8).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, &cut).expect("cut short");
    // The signed checkpoint still says 12.
    let (code, out) = verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("truncated"), "{out}");
    // Its count edited to match: the signature no longer holds.
    std::fs::write(&checkpoint, note.replacen("\n12\n", "\n8\n", 1)).expect("edit");
    let (code, out) = verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("altered"), "{out}");
    // Replaced by an unsigned one: refused too.
    std::fs::write(&checkpoint, "keyward.dev/audit\n8\nAAAA\n").expect("replace");
    let (code, out) = verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not signed"), "{out}");
}

/// A privacyIDEA behind TLS with a certificate from an internal CA: without `spec.caBundle`
/// the certificate is refused, the provider reads as unreachable and nothing is revoked; with
/// the CA's PEM in `caBundle`, keyward plans and revokes as usual, over TLS.
#[test]
fn a_privacyidea_behind_an_internal_ca_is_reached_through_ca_bundle() {
    let pi = privacyidea();
    let acme = company(pi, "tls");
    let upstream: std::net::SocketAddr =
        pi.url().trim_start_matches("http://").trim_end_matches('/').parse().expect("privacyIDEA address");
    let front = support::tls::TlsFront::start(upstream);
    let tree = example_tree(pi, &acme.realm);
    edit(tree.path(), "10-provider.yaml", pi.url(), &front.url());
    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 1, "{plan}");
    let error = plan["providers"][0]["error"].as_str().expect("an error");
    assert!(error.contains("certificate") && error.contains("UnknownIssuer"), "{error}");
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(audit.is_empty(), "an untrusted certificate revokes nothing");
    assert_eq!(pi.tokens(&acme.realm).len(), 10);

    let indented: String = front.ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    edit(
        tree.path(),
        "10-provider.yaml",
        "  userMapping: name",
        &format!("  caBundle: |\n{indented}  userMapping: name"),
    );
    let (code, plan) = plan_json(tree.path());
    assert_eq!(code, 2, "{plan}");
    assert_eq!(revocations(&plan), expected_revocations());
    let (out, audit) = apply(tree.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(audit.len(), expected_revocations().len());
    for (user, kind) in [("carol", "totp"), ("frank", "totp")] {
        assert!(!pi.authenticates(acme.token(user, kind)), "{user}'s {kind} revoked over TLS");
    }
    assert!(pi.authenticates(acme.token("alice", "totp")), "entitled ones kept");
}

/// The per-user read behind a targeted sweep (`GET /token/?user=&realm=`) sees, for
/// each user it reads, exactly what the realm-wide listing sees, at one request per user; a
/// user privacyIDEA no longer finds (ERR904: dave, removed from the user store, whose tokens
/// remain) is handed back to the realm-wide listing, which finds his orphaned tokens.
#[test]
fn a_per_user_read_sees_what_the_realm_listing_sees_for_its_users() {
    let pi = privacyidea();
    let realm = "per-user";
    company(pi, realm);
    let provider: keyward::crd::MfaProvider = serde_yaml::from_str(&format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-pi, namespace: acme}}\n\
         spec:\n  privacyidea: {{url: \"{}\", realm: {realm}, credentials: {{secretRef: {{name: pi-admin}}}}}}\n",
        pi.url()
    ))
    .expect("MfaProvider");
    let secret = |_: &str, key: &str| match key {
        "username" => Some(pi.env["KEYWARD_PI_ADMIN"].clone()),
        "password" => Some(pi.env["KEYWARD_PI_PASSWORD"].clone()),
        _ => None,
    };
    let backend = keyward::providers::connect(&provider, &secret).expect("client");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let full = backend.inventory(&Default::default()).await.expect("realm listing");
        let before = backend.requests();
        let users = ["alice".to_string(), "grace".to_string(), "erin".to_string()];
        let part = backend.inventory_of(&users).await.expect("per-user read").expect("alice, grace, erin are known");
        assert_eq!(backend.requests() - before, 3, "one request per user");
        let mine: Vec<_> = full.users.iter().filter(|u| ["alice", "erin"].contains(&u.name.as_str())).collect();
        assert_eq!(part.users.iter().collect::<Vec<_>>(), mine, "grace holds nothing and is not listed");

        let gone = backend.inventory_of(&["dave".to_string()]).await.expect("answered");
        assert!(gone.is_none(), "dave is unknown to the user store: a realm-wide listing decides");
        assert!(full.users.iter().any(|u| u.name == "dave" && !u.in_directory && !u.enrolments.is_empty()));
    });
}

/// `keyward conformance` against the real privacyIDEA: a user of its own in the
/// realm's resolver, a TOTP token enrolled by the admin, read through the realm listing and the
/// per-user read, deleted, read again, and the user deleted — every request shown (the
/// admin's password never); the realm's other tokens are untouched.
#[test]
fn conformance_proves_privacyidea_on_a_user_of_its_own_and_leaves_nothing_behind() {
    let pi = privacyidea();
    let acme = company(pi, "conformance");
    let tree = example_tree(pi, &acme.realm);
    let tree_path = tree.path().to_str().expect("utf-8");
    let before = pi.tokens(&acme.realm);
    let args = ["conformance", "-f", tree_path, "--provider", "acme/corp-pi", "--user-prefix", "kw-conformance"];
    let refused = keyward(&args);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert_eq!(pi.tokens(&acme.realm), before, "refused: nothing written");

    let mut confirmed = args.to_vec();
    confirmed.push("--i-understand-this-writes");
    let out = keyward(&confirmed);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for step in [
        "create the test user kw-conformance-",
        "enrol a second factor: totp",
        "read it as a sweep does: listed TOTP",
        "read it as a targeted sweep does: listed TOTP",
        "read again: the factor is gone",
        "delete the test user",
        "verdict: PASS",
    ] {
        assert!(text.contains(step), "{step:?} missing from {text}");
    }
    assert!(text.contains("POST http://") && text.contains("/token/init → 200"), "{text}");
    assert!(!text.contains(pi.env["KEYWARD_PI_PASSWORD"].as_str()), "the admin's password is never shown: {text}");
    assert_eq!(pi.tokens(&acme.realm), before, "the realm's tokens are as they were");
    // The user is gone from the resolver: adding it again creates it.
    let user = text
        .lines()
        .next()
        .and_then(|l| l.rsplit_once(" with the disposable user "))
        .map(|(_, u)| u.trim().to_string())
        .expect("the test user's name");
    let again = pi.users(&["user", "add", &user, "--realm", &acme.realm]);
    assert_eq!(again["created"], true, "the test user was deleted: {again}");
    pi.delete_user(&acme.realm, &user);
}

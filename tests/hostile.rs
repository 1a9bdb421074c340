//! Hostile and broken manifests: every file of `tests/hostile` goes through
//! `keyward validate`, `keyward plan`, `keyward apply` (against the real privacyIDEA) and
//! `kubectl apply --dry-run=server` (against the real API server), and each must say what the
//! file's header says:
//!
//! - `# expect: reject` — validate, plan and apply exit 1 naming the file and a line, every
//!   `# error:` text appears, and nothing is contacted or revoked;
//! - `# expect: warn` — validate exits 1 with every `# error:` text (an identity conflict),
//!   plan and apply go on;
//! - `# expect: accept` — validate exits 0;
//! - for `warn` and `accept`, `# revokes: none | user/kind,…` is exactly what the plan of
//!   MfaProvider `hostile/corp-pi` revokes and what apply then removes at privacyIDEA, and
//!   `# plan: TEXT` says that a provider's read fails with TEXT (and decides nothing);
//! - `# apiserver: accept|reject` — what the API server says, when it differs from `expect`
//!   (what only keyward can know: references between objects, identity conflicts, duplicate
//!   keys, which the API server's decoder lets the last one win). Names and URLs that cannot
//!   be meant as written are refused by the CRDs' own rules, so `kubectl apply` refuses
//!   them too.
//!
//! The files hold placeholders (`__URL__`, `__REALM__`, `__ADMIN__`, `__PASSWORD__`) that the
//! tests fill in; the copies keep the files' names and lines.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use support::cluster::cluster;
use support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Accept,
    Warn,
    Reject,
}

#[derive(Debug)]
struct Case {
    name: String,
    expect: Expect,
    errors: Vec<String>,
    apiserver_accepts: bool,
    /// `user/kind` revoked on `hostile/corp-pi`; `None` for rejected files.
    revokes: Option<BTreeSet<String>>,
    plan_error: Option<String>,
}

fn header<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("# {key}: ");
    text.lines().take_while(|l| l.starts_with('#')).filter_map(|l| l.strip_prefix(&prefix)).collect()
}

fn cases() -> Vec<Case> {
    let dir = repo().join("tests/hostile");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("tests/hostile").map(|e| e.expect("entry").path()).collect();
    files.sort();
    // KEYWARD_HOSTILE_ONLY=part: only the files whose names hold it (to replay one).
    if let Ok(only) = std::env::var("KEYWARD_HOSTILE_ONLY") {
        files.retain(|f| f.to_string_lossy().contains(&only));
    }
    let cases: Vec<Case> = files
        .iter()
        .map(|file| {
            let name = file.file_name().and_then(|n| n.to_str()).expect("name").to_string();
            // Some files are not UTF-8 or hold a NUL on purpose: the header is plain ASCII.
            let text = String::from_utf8_lossy(&std::fs::read(file).expect("read")).into_owned();
            let expect = match header(&text, "expect").as_slice() {
                ["accept"] => Expect::Accept,
                ["warn"] => Expect::Warn,
                ["reject"] => Expect::Reject,
                other => panic!("{name}: `# expect: accept|warn|reject` first, not {other:?}"),
            };
            let apiserver_accepts = match header(&text, "apiserver").as_slice() {
                [] => expect != Expect::Reject,
                ["accept"] => true,
                ["reject"] => false,
                other => panic!("{name}: `# apiserver: accept|reject`, not {other:?}"),
            };
            let revokes = match header(&text, "revokes").as_slice() {
                [] => None,
                ["none"] => Some(BTreeSet::new()),
                [list] => Some(list.split(',').map(|s| s.trim().to_string()).collect()),
                other => panic!("{name}: one `# revokes:` line, not {other:?}"),
            };
            assert_eq!(revokes.is_some(), expect != Expect::Reject, "{name}: `# revokes:` for accepted files only");
            let errors: Vec<String> = header(&text, "error").iter().map(|s| s.to_string()).collect();
            assert_eq!(errors.is_empty(), expect == Expect::Accept, "{name}: `# error:` lines for rejected files");
            let plan_error = header(&text, "plan").first().map(|s| s.to_string());
            Case { name, expect, errors, apiserver_accepts, revokes, plan_error }
        })
        .collect();
    let filtered = std::env::var_os("KEYWARD_HOSTILE_ONLY").is_some();
    assert!(filtered || cases.len() >= 60, "at least 60 hostile files, found {}", cases.len());
    cases
}

/// Where a file's placeholders point.
struct Target<'a> {
    url: &'a str,
    realm: &'a str,
    admin: &'a str,
    password: &'a str,
}

/// The case's file with its placeholders filled in, under `dir` with its own name.
fn materialise(case: &Case, dir: &Path, target: &Target) -> PathBuf {
    let path = dir.join(&case.name);
    let raw = std::fs::read(repo().join("tests/hostile").join(&case.name)).expect("read");
    // Byte-wise, so that a file that is not UTF-8 on purpose stays as it is.
    let mut bytes = raw;
    for (from, to) in [
        ("__URL__", target.url),
        ("__REALM__", target.realm),
        ("__ADMIN__", target.admin),
        ("__PASSWORD__", target.password),
    ] {
        bytes = replace_bytes(&bytes, from.as_bytes(), to.as_bytes());
    }
    std::fs::write(&path, bytes).expect("write");
    path
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// What no output of keyward may hold, whatever the input: a panic or a backtrace.
fn assert_no_crash(case: &Case, command: &str, output: &str, code: Option<i32>) {
    assert!(code.is_some(), "{}: {command} was killed by a signal: {output}", case.name);
    assert_ne!(code, Some(101), "{}: {command} panicked: {output}", case.name);
    for marker in ["panicked at", "stack backtrace", "RUST_BACKTRACE", "thread 'main'"] {
        assert!(!output.contains(marker), "{}: {command} printed `{marker}`:\n{output}", case.name);
    }
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let o = keyward(args);
    (o.status.code(), stdout(&o) + &stderr(&o))
}

/// Every `# error:` text appears, and a problem names the file with a line.
fn assert_errors(case: &Case, command: &str, output: &str) {
    for error in &case.errors {
        assert!(output.contains(error.as_str()), "{}: {command} does not say {error:?}:\n{output}", case.name);
    }
    let located = output
        .match_indices(&format!("{}:", case.name))
        .any(|(i, m)| output[i + m.len()..].chars().next().is_some_and(|c| c.is_ascii_digit() && c != '0'));
    assert!(located, "{}: {command} names no line of the file:\n{output}", case.name);
}

/// `(user/kind)` of the revocations the JSON plan would carry out on `hostile/corp-pi`: none
/// when the plan is held (over budget, or an empty declared state).
fn planned_revocations(plan: &serde_json::Value) -> BTreeSet<String> {
    let providers = plan["providers"].as_array().cloned().unwrap_or_default();
    providers
        .iter()
        .filter(|p| p["provider"] == "hostile/corp-pi" && p["blocked"] != true)
        .flat_map(|p| p["actions"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["action"] == "revoke")
        .map(|a| format!("{}/{}", a["user"].as_str().unwrap_or_default(), a["kind"].as_str().unwrap_or_default()))
        .collect()
}

/// Rejected files: validate, plan and apply all refuse, name the file and line, and leave a
/// company's tokens (its realm is what the files point at) exactly as they were.
#[test]
fn rejected_files_are_refused_by_validate_plan_and_apply_and_revoke_nothing() {
    let pi = privacyidea();
    let acme = company(pi, "hostile-rejects");
    let before = pi.tokens(&acme.realm);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target {
        url: pi.url(),
        realm: &acme.realm,
        admin: &pi.env["KEYWARD_PI_ADMIN"],
        password: &pi.env["KEYWARD_PI_PASSWORD"],
    };
    let mut checked = 0;
    for case in cases().iter().filter(|c| c.expect == Expect::Reject) {
        let file = materialise(case, dir.path(), &target);
        let path = file.to_str().expect("utf-8");
        let (code, out) = run(&["validate", "-f", path]);
        assert_no_crash(case, "validate", &out, code);
        assert_eq!(code, Some(1), "{}: validate must fail:\n{out}", case.name);
        assert_errors(case, "validate", &out);

        let (code, out) = run(&["plan", "-f", path, "--output", "json"]);
        assert_no_crash(case, "plan", &out, code);
        assert_eq!(code, Some(1), "{}: plan must fail:\n{out}", case.name);
        assert_errors(case, "plan", &out);
        assert!(out.contains("nothing was planned or changed"), "{}: {out}", case.name);

        let audit = dir.path().join("audit.jsonl");
        let (code, out) = run(&["apply", "-f", path, "--audit-log", audit.to_str().expect("utf-8")]);
        assert_no_crash(case, "apply", &out, code);
        assert_eq!(code, Some(1), "{}: apply must fail:\n{out}", case.name);
        assert_errors(case, "apply", &out);
        let records = std::fs::read_to_string(&audit).unwrap_or_default();
        assert!(records.trim().is_empty(), "{}: apply wrote audit records:\n{records}", case.name);
        std::fs::remove_file(&file).expect("remove");
        checked += 1;
    }
    assert!(checked >= 40, "{checked} rejected files");
    assert_eq!(pi.tokens(&acme.realm), before, "no rejected file changed a token");
    for (user, kind) in [("alice", "totp"), ("carol", "totp"), ("breakglass", "totp")] {
        assert!(pi.authenticates(acme.token(user, kind)), "{user} {kind} still logs in");
    }
}

/// Accepted files (and those with warnings only): the plan revokes exactly what the header
/// says, apply removes exactly those tokens at privacyIDEA and no other, and a provider that
/// cannot be read decides nothing. Each file has a company of its own, on a realm of its own.
#[test]
fn accepted_files_revoke_exactly_what_their_header_says() {
    let pi = privacyidea();
    let cases: Vec<Case> = cases().into_iter().filter(|c| c.expect != Expect::Reject).collect();
    assert!(cases.len() >= 20 || std::env::var_os("KEYWARD_HOSTILE_ONLY").is_some(), "{} accepted files", cases.len());
    let failures = each_in_parallel(&cases, |case, i| accepted_case(pi, case, i));
    assert!(failures.is_empty(), "{} of {} accepted files:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

/// Runs `check` on every case, three at a time (each company is a few seconds of user and
/// token set-up), and returns the panic message of each case that failed.
fn each_in_parallel(cases: &[Case], check: impl Fn(&Case, usize) + Sync) -> Vec<String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { return };
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case, i)));
                    if let Err(panic) = run {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        failures.lock().expect("failures").push(message);
                    }
                }
            });
        }
    });
    failures.into_inner().expect("failures")
}

fn accepted_case(pi: &PrivacyIdea, case: &Case, i: usize) {
    let acme = company(pi, &format!("hostile-{i:02}"));
    let before = pi.tokens(&acme.realm);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target {
        url: pi.url(),
        realm: &acme.realm,
        admin: &pi.env["KEYWARD_PI_ADMIN"],
        password: &pi.env["KEYWARD_PI_PASSWORD"],
    };
    let file = materialise(case, dir.path(), &target);
    let path = file.to_str().expect("utf-8");

    let (code, out) = run(&["validate", "-f", path]);
    assert_no_crash(case, "validate", &out, code);
    match case.expect {
        Expect::Accept => assert_eq!(code, Some(0), "{}: validate must pass:\n{out}", case.name),
        _ => {
            assert_eq!(code, Some(1), "{}: validate must fail on the warning:\n{out}", case.name);
            assert_errors(case, "validate", &out);
        }
    }

    let o = keyward(&["plan", "-f", path, "--output", "json"]);
    let (code, out) = (o.status.code(), stdout(&o) + &stderr(&o));
    assert_no_crash(case, "plan", &out, code);
    let plan: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{}: plan JSON: {e}:\n{out}", case.name));
    let expected = case.revokes.clone().unwrap_or_default();
    match &case.plan_error {
        Some(error) => {
            assert_eq!(code, Some(1), "{}: a provider read fails:\n{out}", case.name);
            assert!(out.contains(error.as_str()), "{}: plan does not say {error:?}:\n{out}", case.name);
        }
        None => assert!(matches!(code, Some(0 | 2)), "{}: plan exit {code:?}:\n{out}", case.name),
    }
    assert_eq!(planned_revocations(&plan), expected, "{}: planned revocations:\n{plan:#}", case.name);

    let (out, audit) = apply(dir.path());
    let text = stdout(&out) + &stderr(&out);
    assert_no_crash(case, "apply", &text, out.status.code());
    let revoked: BTreeSet<String> = audit
        .iter()
        .filter(|r| r["outcome"] == "revoked" && r["provider"] == "hostile/corp-pi")
        .map(|r| format!("{}/{}", r["user"].as_str().unwrap_or_default(), r["kind"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(revoked, expected, "{}: apply revoked:\n{text}", case.name);

    // At privacyIDEA: exactly the tokens of the header are gone.
    let gone: BTreeSet<String> = acme
        .tokens
        .iter()
        .flat_map(|(user, tokens)| tokens.iter().map(move |t| (user, t)))
        .filter(|(user, t)| expected.contains(&format!("{user}/{}", t.kind)))
        .map(|(_, t)| t.serial.clone())
        .collect();
    let mut left = before.clone();
    left.retain(|serial, _| !gone.contains(serial));
    assert_eq!(pi.tokens(&acme.realm), left, "{}: the tokens left at privacyIDEA", case.name);
}

/// The operator's side: every file keyward accepts (or only warns about), applied
/// with `kubectl apply` to a namespace of its own and reconciled by the operator: exactly the
/// revocations its header names happen at privacyIDEA, each with its audit record, and a
/// provider read that fails (`# plan:`) shows on the MfaProvider's Ready condition and
/// revokes nothing. (Files keyward rejects never get this far when the API server rejects
/// them too; those only keyward can judge are refused by `keyward validate` before a commit.)
#[test]
fn accepted_files_through_the_operator_revoke_exactly_what_their_header_says() {
    let (pi, c) = (privacyidea(), cluster());
    let cases: Vec<Case> = cases().into_iter().filter(|c| c.expect != Expect::Reject).collect();
    let failures = each_in_parallel(&cases, |case, i| operator_case(pi, c, case, i));
    assert!(failures.is_empty(), "{} of {} files:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

fn operator_case(pi: &PrivacyIdea, c: &support::cluster::Cluster, case: &Case, i: usize) {
    use std::time::Duration;
    use support::cluster::eventually;
    let ns = format!("hostile-op-{i:02}");
    let acme = company(pi, &ns);
    let before = pi.tokens(&acme.realm);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target {
        url: pi.url(),
        realm: &acme.realm,
        admin: &pi.env["KEYWARD_PI_ADMIN"],
        password: &pi.env["KEYWARD_PI_PASSWORD"],
    };
    let file = materialise(case, dir.path(), &target);
    // A namespace of its own: every accepted file keeps its objects in `hostile`.
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, replace_bytes(&bytes, b"namespace: hostile", format!("namespace: {ns}").as_bytes()))
        .expect("write");
    namespace(c, &ns);
    let applied = c.kubectl(&["apply", "-f", file.to_str().expect("utf-8")]);
    assert!(applied.status.success(), "{}: kubectl apply: {}", case.name, stderr(&applied));
    // The operator reads only Secrets labelled as credentials (the CLI reads the files').
    c.kubectl_ok(&["-n", &ns, "label", "secrets", "--all", "keyward.dev/credentials=true", "--overwrite"]);
    let audit = dir.path().join("operator-audit.jsonl");
    let operator = c.operator(&ns, "keyward-hostile", &audit);
    let sweeps = || {
        operator
            .get("/metrics")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("keyward_reconcile_duration_seconds_count"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    // The first sweep — or, where a provider's read fails (`# plan:`), that failure on its
    // Ready condition (a provider that cannot sign in never sweeps).
    let ready_messages = || {
        let path = "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].message}";
        c.kubectl_ok(&["-n", &ns, "get", "mfaproviders", "-o", path])
    };
    let failed_read_shown = || case.plan_error.as_ref().is_some_and(|e| ready_messages().contains(e.as_str()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sweeps() == 0 && !failed_read_shown() {
        if std::time::Instant::now() > deadline {
            let status = c.kubectl(&["-n", &ns, "get", "mfaprovider", "-o", "yaml"]);
            let log = operator.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!("{}: no sweep within 60 s:\n{}\n{}", case.name, stdout(&status), tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some(error) = &case.plan_error {
        eventually(Duration::from_secs(30), &format!("{}: a Ready condition names {error:?}", case.name), || {
            failed_read_shown()
        });
    }
    let expected = case.revokes.clone().unwrap_or_default();
    let gone: BTreeSet<String> = acme
        .tokens
        .iter()
        .flat_map(|(user, tokens)| tokens.iter().map(move |t| (user, t)))
        .filter(|(user, t)| expected.contains(&format!("{user}/{}", t.kind)))
        .map(|(_, t)| t.serial.clone())
        .collect();
    let mut left = before.clone();
    left.retain(|serial, _| !gone.contains(serial));
    let revoked = || -> BTreeSet<String> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["event"] == "outcome" && r["outcome"] == "revoked")
            .map(|r| format!("{}/{}", r["user"].as_str().unwrap_or_default(), r["kind"].as_str().unwrap_or_default()))
            .collect()
    };
    eventually(Duration::from_secs(30), &format!("{}: the header's revocations", case.name), || revoked() == expected);
    // Past the first sweeps, nothing more: a second look after the operator had time to act.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(revoked(), expected, "{}: the operator revoked", case.name);
    assert_eq!(pi.tokens(&acme.realm), left, "{}: the tokens left at privacyIDEA", case.name);
    drop(operator);
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// Creates the namespace unless it exists (tests of this binary run side by side).
fn namespace(cluster: &support::cluster::Cluster, name: &str) {
    let _ = cluster.kubectl(&["create", "namespace", name]);
    cluster.kubectl_ok(&["get", "namespace", name]);
}

/// The API server, with keyward's CRDs and strict field validation, rejects what keyward's
/// schema rejects; files only keyward can judge are marked `# apiserver: accept`.
#[test]
fn the_api_server_rejects_what_the_schema_rejects() {
    let cluster = cluster();
    for name in ["hostile", "other"] {
        namespace(cluster, name);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A loopback URL the schema accepts; nothing is contacted.
    let target = Target { url: "http://127.0.0.1:5001", realm: "corp", admin: "admin", password: "change-me" };
    let mut disagreements = Vec::new();
    let cases = cases();
    for case in &cases {
        let file = materialise(case, dir.path(), &target);
        let server = cluster.kubectl(&["apply", "--dry-run=server", "-f", file.to_str().expect("utf-8")]);
        if server.status.success() != case.apiserver_accepts {
            disagreements.push(format!(
                "{}: expected the API server to {}, it {}: {}",
                case.name,
                if case.apiserver_accepts { "accept" } else { "reject" },
                if server.status.success() { "accepted" } else { "rejected" },
                (stdout(&server) + &stderr(&server)).trim()
            ));
        }
    }
    assert!(disagreements.is_empty(), "{} of {}:\n{}", disagreements.len(), cases.len(), disagreements.join("\n"));
}

/// privacyIDEA users whose names need escaping in a URL: each offboarded one loses exactly
/// their token to `keyward apply`, and a user whose name is a prefix or a variant of theirs
/// (what an unescaped `&`, `?`, `/` or `%2F` would address instead) keeps theirs. The per-user
/// read of a targeted sweep (`GET /token/?user=…`) finds each by its own name too.
///
/// privacyIDEA's SQL user store takes every one of these names; `..` and names with control
/// characters are refused by `keyward validate` (they cannot be put in a URL path for the
/// providers that address users by path), so they are not declared here.
#[test]
fn user_names_that_need_escaping_are_revoked_exactly() {
    let pi = privacyidea();
    let realm = "hostile-escaping";
    pi.realm(realm);
    // (name, its variant that must survive)
    let pairs = [
        ("o'brien", "o"),
        ("a&b", "a"),
        ("x?y", "x"),
        ("名前", "名"),
        ("p%2Fq", "p/q"),
        ("d..e", "d"),
        ("c d", "c+d"),
        ("e#f", "e"),
        ("g+h", "g h"),
        ("i=j", "i"),
        ("k/l", "k"),
    ];
    let mut leavers = Vec::new();
    let mut stayers = Vec::new();
    for (leaver, stayer) in pairs {
        pi.add_user(realm, leaver);
        pi.add_user(realm, stayer);
        leavers.push(pi.enrol(realm, leaver, "totp"));
        stayers.push(pi.enrol(realm, stayer, "totp"));
    }
    let yaml_string = |s: &str| serde_json::to_string(s).expect("JSON string is YAML");
    let mut manifests = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: pi-admin, namespace: hostile}}\n\
         stringData: {{username: {}, password: {}}}\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-pi, namespace: hostile}}\n\
         spec:\n  privacyidea: {{url: \"{}\", realm: {realm}, credentials: {{secretRef: {{name: pi-admin}}}}}}\n\
         \x20 policy: {{mode: Enforce}}\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: AccessGrant\nmetadata: {{name: staff, namespace: hostile}}\n\
         spec: {{provider: corp-pi, subjects: {{roles: [staff]}}, factors: [totp]}}\n",
        pi.env["KEYWARD_PI_ADMIN"],
        pi.env["KEYWARD_PI_PASSWORD"],
        pi.url()
    );
    for (i, (leaver, stayer)) in pairs.iter().enumerate() {
        for (name, user, state) in
            [(format!("leaver-{i}"), leaver, "Offboarded"), (format!("stayer-{i}"), stayer, "Active")]
        {
            manifests.push_str(&format!(
                "---\napiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: {name}, namespace: hostile}}\n\
                 spec:\n  email: {name}@acme.example\n  roles: [staff]\n  state: {state}\n\
                 \x20 identities: [{{provider: corp-pi, username: {}}}]\n",
                yaml_string(user)
            ));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("escaping.yaml"), &manifests).expect("write");
    let o = keyward(&["validate", "-f", dir.path().to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    let (code, plan) = plan_json(dir.path());
    assert_eq!(code, 2, "{plan}");
    let planned: BTreeSet<String> = planned_revocations(&plan);
    let expected: BTreeSet<String> = pairs.iter().map(|(leaver, _)| format!("{leaver}/totp")).collect();
    assert_eq!(planned, expected, "{plan:#}");

    let (out, audit) = apply(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let serials: BTreeSet<&str> =
        audit.iter().filter(|r| r["outcome"] == "revoked").filter_map(|r| r["enrolment"].as_str()).collect();
    assert_eq!(serials, leavers.iter().map(|t| t.serial.as_str()).collect(), "{audit:?}");
    for token in &leavers {
        assert!(!pi.authenticates(token), "{}'s token was revoked", token.user);
    }
    for token in &stayers {
        assert!(pi.authenticates(token), "{}'s token is untouched", token.user);
    }

    // The per-user read (a targeted sweep's) puts each name in the query string: each finds
    // its own user only.
    let provider: keyward::crd::MfaProvider = serde_yaml::from_str(&format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-pi, namespace: hostile}}\n\
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
        for token in &stayers {
            let read = backend.inventory_of(std::slice::from_ref(&token.user)).await.expect("read");
            let users = read.expect("the user is known").users;
            assert_eq!(users.len(), 1, "{}: {users:?}", token.user);
            assert_eq!(users[0].name, token.user);
            let ids: Vec<&str> = users[0].enrolments.iter().map(|e| e.id.as_str()).collect();
            assert_eq!(ids, [token.serial.as_str()], "{}", token.user);
        }
        for token in &leavers {
            let read = backend.inventory_of(std::slice::from_ref(&token.user)).await.expect("read");
            let users = read.expect("the user is known").users;
            assert!(users.is_empty(), "{} holds nothing any more: {users:?}", token.user);
        }
    });
}

/// Documents too big to keep as files: a tree of 20,000 Employees is read and checked in
/// bounded time (no step is quadratic in the file), and an Employee of 4 MB (a display name
/// pasted from somewhere) is refused by keyward, as by the API server, naming the object.
#[test]
fn huge_documents_are_read_in_bounded_time_and_oversized_objects_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = String::from(
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {name: corp-pi, namespace: hostile}\n\
         spec:\n  privacyidea: {url: \"https://pi.acme.example\", realm: corp, credentials: {secretRef: {name: pi-admin}}}\n\
         \x20 policy: {mode: Observe}\n",
    );
    for i in 0..20_000 {
        tree.push_str(&format!(
            "---\napiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: e{i:05}, namespace: hostile}}\n\
             spec: {{email: e{i:05}@acme.example, roles: [staff], identities: [{{provider: corp-pi, username: u{i:05}}}]}}\n"
        ));
    }
    let big = dir.path().join("big-tree.yaml");
    std::fs::write(&big, &tree).expect("write");
    let started = std::time::Instant::now();
    let (code, out) = run(&["validate", "-f", big.to_str().expect("utf-8")]);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{}", &out[..out.len().min(2000)]);
    assert!(out.contains("20000 Employee(s)"), "{}", &out[..out.len().min(2000)]);
    assert!(took < std::time::Duration::from_secs(60), "validate of 20,000 Employees took {took:?}");

    let huge = dir.path().join("huge-display-name.yaml");
    let name = "x".repeat(4 << 20);
    std::fs::write(
        &huge,
        format!(
            "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: alice, namespace: hostile}}\n\
             spec:\n  email: alice@acme.example\n  displayName: {name}\n"
        ),
    )
    .expect("write");
    let path = huge.to_str().expect("utf-8");
    let (code, out) = run(&["validate", "-f", path]);
    assert_eq!(code, Some(1), "{}", &out[..out.len().min(2000)]);
    assert!(out.len() < 4096, "the error does not repeat the value: {} bytes", out.len());
    assert!(
        out.contains("huge-display-name.yaml:1: Employee hostile/alice: the object is")
            && out.contains("at most 1572864"),
        "{out}"
    );
    let cluster = cluster();
    namespace(cluster, "hostile");
    let server = cluster.kubectl(&["apply", "--dry-run=server", "-f", path]);
    assert!(!server.status.success(), "the API server refuses it too");
}

//! The keyward binary's own rules, independent of any one provider.

mod providers_support;

use providers_support::*;
use serde_json::json;
use wiremock::{Request, ResponseTemplate};

/// Counts every request; answers none usefully.
fn count(requests: &mut u32, _: &Request) -> ResponseTemplate {
    *requests += 1;
    json(500, json!({}))
}

/// `--now` is a what-if for `plan`: `apply` refuses it before a provider is contacted or an
/// audit record written, with exit 1 (exit 2 means "blocked, waiting for approval").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_now_and_plan_keeps_it() {
    let (server, requests) = serve(0u32, count).await;
    let block = format!(
        "  keycloak:\n    url: {}\n    realm: corp\n    credentials: {{secretRef: {{name: corp-admin}}}}",
        server.uri()
    );
    let tree = company(&block, &format!("  clientId: keyward\n  clientSecret: {}", shown::KEYCLOAK_SECRET), "totp");
    let audit = tree.path().join("audit.jsonl");
    let o = keyward(vec![
        "apply".into(),
        "-f".into(),
        tree.path().display().to_string(),
        "--audit-log".into(),
        audit.display().to_string(),
        "--now".into(),
        "2030-01-01T00:00:00Z".into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--now") && stderr.contains("only for `keyward plan`"), "{stderr}");
    assert_eq!(*requests.lock().expect("state"), 0, "no provider was contacted");
    assert!(!audit.exists(), "no audit log was opened");

    let o = keyward(vec![
        "plan".into(),
        "-f".into(),
        tree.path().display().to_string(),
        "--now".into(),
        "2030-01-01T00:00:00Z".into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("only for `keyward plan`"), "plan keeps --now: {stderr}");
    assert!(*requests.lock().expect("state") > 0, "plan asked the provider");
}

/// A grant for a kind its provider never reports entitles nobody: `validate` names the kind,
/// on the line of the factor, and fails; `2sv` on Google passes.
#[test]
fn validate_names_factor_kinds_the_provider_never_reports() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/providers/google.yaml");
    let text = std::fs::read_to_string(&example).expect("example");
    let dir = tempfile::tempdir().expect("tempdir");
    let people = "\
---
apiVersion: keyward.dev/v1alpha1
kind: Employee
metadata: {name: alice, namespace: acme}
spec: {email: alice@acme.example, roles: [sre]}
";
    std::fs::write(dir.path().join("google.yaml"), format!("{text}{people}")).expect("write");
    let validate = |path: &std::path::Path| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["validate", "-f"])
            .arg(path)
            .output()
            .expect("run");
        (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let (code, out) = validate(dir.path());
    assert_eq!(code, Some(0), "2sv is what Google reports: {out}");

    let wrong = format!("{text}{people}").replace("factors: [2sv]", "factors: [2sv, totp]");
    std::fs::write(dir.path().join("google.yaml"), &wrong).expect("write");
    let (code, out) = validate(dir.path());
    assert_eq!(code, Some(1), "{out}");
    let line = wrong.lines().position(|l| l.contains("factors: [2sv, totp]")).expect("line") + 1;
    let expected = format!(
        "google.yaml:{line}: warning: AccessGrant acme/google-staff: spec.factors[1]: Google Workspace never reports the factor kind `totp`"
    );
    assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    assert!(out.contains("it reports `2sv` (MfaProvider acme/corp-google)"), "{out}");
}

/// A pull request that points an MfaProvider at a host of its own gets no request, and so no
/// credentials, from `plan` or `apply` run with `--allow-host`: the refusal names the host and
/// the provider, and the job fails. The legitimate host on the list is reached as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_go_to_a_host_off_the_allowlist() {
    let (attacker, stolen) = serve(0u32, count).await;
    let (legitimate, reached) = serve(0u32, count).await;
    let host = |uri: &str| uri.trim_start_matches("http://").to_string();
    let block = |url: &str| {
        format!("  keycloak:\n    url: {url}\n    realm: corp\n    credentials: {{secretRef: {{name: corp-admin}}}}")
    };
    let tree = company(
        &block(&attacker.uri()),
        &format!("  clientId: keyward\n  clientSecret: {}", shown::KEYCLOAK_SECRET),
        "totp",
    );
    for command in ["plan", "apply"] {
        let mut args = vec![
            command.to_string(),
            "-f".into(),
            tree.path().display().to_string(),
            "--allow-host".into(),
            host(&legitimate.uri()),
        ];
        if command == "apply" {
            args.extend(["--audit-log".into(), tree.path().join("audit.jsonl").display().to_string()]);
        }
        let o = keyward(args).await;
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(1), "{command}: {out}");
        assert!(out.contains(&format!("{} is not on the provider host allowlist", host(&attacker.uri()))), "{out}");
        assert_eq!(*stolen.lock().expect("state"), 0, "{command}: nothing reached the other host");
    }
    // The same tree pointed back at the listed host: requests flow (and fail there, 500).
    let tree = company(
        &block(&legitimate.uri()),
        &format!("  clientId: keyward\n  clientSecret: {}", shown::KEYCLOAK_SECRET),
        "totp",
    );
    let o = keyward(vec![
        "plan".into(),
        "-f".into(),
        tree.path().display().to_string(),
        "--allow-host".into(),
        host(&legitimate.uri()),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(*reached.lock().expect("state") > 0, "the listed host is asked");
}

/// The suite-wide secrets scan (`scripts/secrets_shown.py`, run by `scripts/test.sh`) finds a
/// canary and a registered secret as they are and base64-encoded inside a longer value, names
/// the file and line, passes a clean recording, and refuses a recording that lacks a kind.
#[test]
fn the_secrets_scan_finds_planted_leaks_and_refuses_to_pass_on_nothing() {
    use base64::Engine;
    let scan = |dir: &std::path::Path| {
        let o = std::process::Command::new("python3")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/secrets_shown.py"))
            .arg(dir)
            .output()
            .expect("run secrets_shown.py");
        (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    let generated = "Zq8vN3rT0pLx5WmK2yHc";
    write("needles.t.1.txt", &format!("{generated}\nshort\n"));
    for kind in ["cli", "operator-log", "metrics", "objects", "audit"] {
        write(&format!("{kind}.t.1.0.txt"), "nothing to see\n");
    }
    let (code, out) = scan(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 secret(s)"), "the canary prefix and the 20-character needle: {out}");

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", shown::OKTA_TOKEN));
    write("objects.t.1.1.txt", &format!("first line\nAuthorization: Basic {basic}\n"));
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("x{generated}y"));
    write("cli.t.1.1.txt", &format!("{url_safe}\n"));
    write("audit.t.1.1.txt", &format!("{{\"detail\": \"{generated}\"}}\n"));
    let (code, out) = scan(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("objects.t.1.1.txt:2: a secret (kwCANARY) base64-encoded"), "{out}");
    assert!(out.contains("cli.t.1.1.txt:1: a secret (Zq8vN3…) base64-encoded"), "{out}");
    assert!(out.contains("audit.t.1.1.txt:1: a secret (Zq8vN3…) as is"), "{out}");
    assert!(out.contains("3 find(s)"), "{out}");

    for name in ["objects.t.1.1.txt", "cli.t.1.1.txt", "audit.t.1.1.txt", "metrics.t.1.0.txt"] {
        std::fs::remove_file(dir.path().join(name)).expect("remove");
    }
    let (code, out) = scan(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("nothing recorded of: metrics"), "{out}");
}

/// Writes `records` approval records to the log at `path` (rotated past `rotate` bytes),
/// with checkpoints signed by a fresh key; the verifier key.
async fn signed_log(path: &std::path::Path, records: usize, rotate: Option<u64>) -> (String, Vec<String>) {
    use keyward::audit::{AuditRecord, AuditSink, Event, JsonLinesFile, Outcome, Signer};
    let (signer, verifier) = Signer::generate("acme-audit").expect("keys");
    let signer = std::sync::Arc::new(Signer::parse(&signer).expect("signer"));
    let log = JsonLinesFile::open(path).expect("open").rotating(rotate).signed(signer).expect("signed");
    let mut checkpoints = Vec::new();
    for i in 0..records {
        let record =
            AuditRecord::about_provider("acme/corp-pi", Event::Approval, Outcome::Approved, Some(format!("{i}")));
        log.record(&record).await.expect("write");
        checkpoints.push(log.checkpoint_note().expect("checkpoint"));
    }
    (verifier, checkpoints)
}

/// `keyward audit verify …`: exit code and what it printed.
async fn audit_verify(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["audit".to_string(), "verify".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let o = keyward(all).await;
    (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// The checkpoint an auditor holds (the ConfigMap copy) trails the log; a record
/// edited before it, with every later `prev` recomputed, fails at the record it counted last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_holds_a_longer_log_to_the_record_its_checkpoint_counted_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let (verifier, checkpoints) = signed_log(&path, 6, None).await;
    let copy = dir.path().join("configmap-copy");
    std::fs::write(&copy, &checkpoints[2]).expect("the copy after three records");
    let args = [path.to_str().expect("utf-8"), "--checkpoint", copy.to_str().expect("utf-8"), "--key", &verifier];
    let (code, out) = audit_verify(&args).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: 6 record(s), chain and sequence intact, not shorter than"), "{out}");
    assert!(out.contains("its last record (seq 2) as it saw it, checkpoint signature valid"), "{out}");
    assert!(out.contains("start: seq 0, the start of the chain") && out.contains("checkpoint: written "), "{out}");

    let mut lines: Vec<String> = std::fs::read_to_string(&path).expect("log").lines().map(str::to_string).collect();
    lines[1] = lines[1].replacen("\"detail\":\"1\"", "\"detail\":\"forged\"", 1);
    for i in 2..lines.len() {
        let mut line: serde_json::Value = serde_json::from_str(&lines[i]).expect("JSON");
        line["prev"] = keyward::audit::sha256_hex(lines[i - 1].as_bytes()).into();
        lines[i] = line.to_string();
    }
    std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("forge");
    let (code, out) = audit_verify(&args).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("audit.jsonl:3: record 2 is not the one the checkpoint saw"), "{out}");
}

/// Rotated files pruned by retention verify from the signed anchor the rotation wrote;
/// without it, or with the first lines cut, they do not. `--max-age` fails on a checkpoint
/// without a time (the older three-line format).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_starts_a_pruned_log_only_at_a_signed_rotation_anchor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let size = 200;
    let (verifier, _) = signed_log(&path, 8, Some(size)).await;
    let rotated = keyward::audit::rotated_files(&path).expect("listed");
    assert!(rotated.len() >= 2, "{rotated:?}");
    std::fs::remove_file(&rotated[0]).expect("retention prunes the oldest file");
    let kept: Vec<String> =
        rotated[1..].iter().chain([&path]).map(|p| p.to_str().expect("utf-8").to_string()).collect();
    let with = |extra: &[&str]| -> Vec<String> {
        kept.iter()
            .cloned()
            .chain(["--key".into(), verifier.clone()])
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let run =
        |args: Vec<String>| async move { audit_verify(&args.iter().map(String::as_str).collect::<Vec<_>>()).await };
    let (code, out) = run(with(&["--max-age", "1h"])).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("anchored by the signed checkpoint") && out.contains(".anchor-0000"), "{out}");

    let (code, out) = run(kept.to_vec()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("whose signature was not checked") && out.contains("anchors nothing"), "{out}");

    for anchor in keyward::audit::anchor_files(&path).expect("listed") {
        std::fs::remove_file(anchor).expect("remove the anchor");
    }
    let (code, out) = run(with(&[])).await;
    assert_eq!(code, Some(1), "{out}");
    let first = rotated[1].file_name().and_then(|n| n.to_str()).expect("name");
    assert!(out.contains(&format!("{first}:1: the log starts at seq ")), "{out}");

    // Today's format: a checkpoint without a time has no age to hold to --max-age.
    let (signer, verifier) = keyward::audit::Signer::generate("old").expect("keys");
    let old = dir.path().join("old.jsonl");
    let record = keyward::audit::AuditRecord::about_provider(
        "acme/corp-pi",
        keyward::audit::Event::Approval,
        keyward::audit::Outcome::Approved,
        None,
    );
    let line = keyward::audit::Chain::default().seal(&record).expect("seal");
    std::fs::write(&old, [&line[..], b"\n"].concat()).expect("log");
    let checkpoint = keyward::audit::Checkpoint {
        origin: "keyward.dev/audit".into(),
        count: 1,
        head: keyward::audit::sha256_hex(&line),
        time: None,
        start: None,
    };
    let note = keyward::audit::Signer::parse(&signer).expect("signer").sign(&checkpoint);
    std::fs::write(keyward::audit::checkpoint_path(&old), note).expect("checkpoint");
    let old_args = [old.to_str().expect("utf-8"), "--key", &verifier];
    let (code, out) = audit_verify(&old_args).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("checkpoint: without a time"), "{out}");
    let (code, out) = audit_verify(&[old_args.as_slice(), &["--max-age", "24h"]].concat()).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("checkpoint without a time") && out.contains("--max-age 1day"), "{out}");
}

/// Without a host allowlist, `plan` warns; under `CI=true` (where the manifests are often a
/// pull request's) it refuses before any provider is contacted. With one, it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_without_a_host_allowlist_warns_and_refuses_in_ci() {
    let (server, requests) = serve(0u32, count).await;
    let block = format!(
        "  keycloak:\n    url: {}\n    realm: corp\n    credentials: {{secretRef: {{name: corp-admin}}}}",
        server.uri()
    );
    let tree = company(&block, &format!("  clientId: keyward\n  clientSecret: {}", shown::KEYCLOAK_SECRET), "totp");
    let plan = |ci: Option<&str>, hosts: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
        command.args(["plan", "-f"]).arg(tree.path()).env_remove("CI").env_remove("KEYWARD_ALLOWED_HOSTS");
        if let Some(ci) = ci {
            command.env("CI", ci);
        }
        if let Some(hosts) = hosts {
            command.env("KEYWARD_ALLOWED_HOSTS", hosts);
        }
        let o = command.output().expect("run keyward plan");
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (code, stderr) = plan(Some("true"), None);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refusing to send provider credentials"), "{stderr}");
    assert_eq!(*requests.lock().expect("requests"), 0, "a provider was contacted");

    let (_, stderr) = plan(None, None);
    assert!(stderr.contains("warning: no provider host allowlist"), "{stderr}");
    assert!(*requests.lock().expect("requests") > 0, "without CI, plan still runs");

    let (_, stderr) = plan(Some("true"), Some("127.0.0.1"));
    assert!(!stderr.contains("no provider host allowlist"), "{stderr}");
}

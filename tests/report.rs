//! `keyward report` on the demo company after the demo's changes, against a real privacyIDEA
//! and the real audit log `keyward apply` wrote: each section's rows, in Markdown, JSON and
//! CSV, the manifest's hashes, a tampered log, and `report sample`.

mod support;

use serde_json::Value;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::*;

const SOURCE_REVISION: &str = "git-5f3e2a1";

/// The provider's document start, where the annotations go.
const PROVIDER_HEAD: &str = "  namespace: acme\nspec:\n  privacyidea:";

/// `keyward ARGS` with owned strings.
fn run(args: &[String]) -> std::process::Output {
    keyward(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// A minimal RFC 4180 reader: header + rows as column → value.
fn csv(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut records: Vec<Vec<String>> = Vec::new();
    let (mut record, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) => quoted = true,
            (',', false) => record.push(std::mem::take(&mut cell)),
            ('\r', false) => {}
            ('\n', false) => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (c, _) => cell.push(c),
        }
    }
    let header = records.remove(0);
    records.into_iter().map(|r| header.iter().cloned().zip(r).collect()).collect()
}

/// The rows of the (one) Markdown table in `text`, as column → value.
fn markdown_table(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| l.starts_with("| "));
    let Some(header) = lines.next() else { return Vec::new() };
    let split = |l: &str| -> Vec<String> {
        l.trim_start_matches("| ").trim_end_matches(" |").split(" | ").map(str::to_string).collect()
    };
    let header = split(header);
    lines.map(|l| header.iter().cloned().zip(split(l)).collect()).collect()
}

/// The same rows in the three files of a section: the JSON rows, and the CSV and Markdown
/// tables that must say the same.
fn section(out: &Path, name: &str) -> Vec<Value> {
    let read = |ext: &str| std::fs::read_to_string(out.join(format!("{name}.{ext}"))).expect("section file");
    let json: Vec<Value> = serde_json::from_str(&read("json")).expect("section JSON");
    let csv = csv(&read("csv"));
    let markdown = markdown_table(&read("md"));
    assert_eq!(csv.len(), json.len(), "{name}.csv has a row per JSON row");
    assert_eq!(markdown, csv, "{name}.md and {name}.csv hold the same cells");
    for (row, cells) in json.iter().zip(&csv) {
        for (key, value) in row.as_object().expect("row") {
            let text = match value {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            // Times are written to the second in the tables, with their full precision in JSON.
            let cell = &cells[key];
            assert!(
                text == *cell || text.starts_with(cell.trim_end_matches('Z')),
                "{name}.{key}: JSON {text:?}, CSV {cell:?}"
            );
        }
    }
    json
}

fn field<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key].as_str().unwrap_or("")
}

#[test]
fn report_on_the_demo_company_after_its_changes() {
    let pi = privacyidea();
    let acme = company(pi, "report");
    // Out of band: a user no Employee declares, with a token an admin enrolled.
    pi.add_user(&acme.realm, "mallory");
    let mallory = pi.admin_enrol(&acme.realm, "mallory", "totp");
    let tree = example_tree(pi, &acme.realm);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("audit.jsonl");
    edit(tree.path(), "10-provider.yaml", "maxRevocations: 25", "maxRevocations: 2");
    edit(
        tree.path(),
        "10-provider.yaml",
        PROVIDER_HEAD,
        &format!(
            "  namespace: acme\n  annotations:\n    keyward.dev/source-revision: {SOURCE_REVISION}\nspec:\n  privacyidea:"
        ),
    );
    let started = chrono::Utc::now();

    // The demo's changes: six revocations, over the budget of two: held, then approved.
    let (_, plan) = plan_json(tree.path());
    let digest = plan["providers"][0]["digest"].as_str().expect("digest").to_string();
    let apply = || run(&["apply".into(), "-f".into(), path(tree.path()), "--audit-log".into(), path(&log)]);
    assert_eq!(apply().status.code(), Some(2), "held for approval");
    edit(
        tree.path(),
        "10-provider.yaml",
        &format!("    keyward.dev/source-revision: {SOURCE_REVISION}\n"),
        &format!(
            "    keyward.dev/source-revision: {SOURCE_REVISION}\n    keyward.dev/approve-revocations: \"{digest}\"\n"
        ),
    );
    let o = apply();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // After the sweep, Bob enrols the HOTP token devs are not granted again.
    let bob_hotp = pi.admin_enrol(&acme.realm, "bob", "hotp");
    let log_text = std::fs::read_to_string(&log).expect("audit log");
    let log_lines: Vec<&str> = log_text.lines().collect();

    let period = |args: &mut Vec<String>| {
        let from = (started - chrono::Duration::minutes(5)).to_rfc3339();
        let to = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
        args.extend(["--from".into(), from, "--to".into(), to]);
    };
    let report = |audit: &Path, extra: &[&str]| {
        let mut args = vec!["report".into(), "--audit-log".into(), path(audit), "-f".into(), path(tree.path())];
        period(&mut args);
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&args)
    };

    // An intact log: exit 0, the chain verified against the checkpoint `apply` kept.
    let o = report(&log, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let whole: Value = serde_json::from_slice(&o.stdout).expect("report JSON");
    let chain = &whole["provenance"]["chain"];
    assert_eq!(chain["verified"], true, "{chain}");
    assert_eq!(chain["records"], log_lines.len());
    assert!(field(chain, "checkpoint").ends_with("audit.jsonl.checkpoint"), "{chain}");

    // A tampered log: still a report, exit 2, the first line that is not as written named.
    let tampered = logs.path().join("tampered.jsonl");
    let carol = &acme.token("carol", "totp").serial;
    let edited = log_lines.iter().position(|l| l.contains(carol.as_str())).expect("carol's record");
    let mut lines = log_lines.clone();
    let forged = lines[edited].replace("EmployeeSuspended", "NotEntitled");
    lines[edited] = &forged;
    std::fs::write(&tampered, lines.join("\n") + "\n").expect("write tampered log");
    let o = report(&tampered, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let forged_report: Value = serde_json::from_slice(&o.stdout).expect("report JSON");
    let chain = &forged_report["provenance"]["chain"];
    assert_eq!(chain["verified"], false);
    let at = format!("{}:{}: ", tampered.display(), edited + 2);
    assert!(field(chain, "problem").starts_with(&at), "the line after the edit is named: {chain}");
    let markdown = report(&tampered, &[]);
    assert!(stdout(&markdown).contains(&format!("| audit chain | FAILED: {at}")), "{}", stdout(&markdown));

    // A provider that cannot be read: an exception, and exit 2 (the review has a gap).
    append(
        tree.path(),
        "10-provider.yaml",
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {name: down-pi, namespace: acme}\nspec:\n  privacyidea: {url: \"http://127.0.0.1:9\", realm: corp, credentials: {secretRef: {name: pi-admin}}}\n  userMapping: name\n  policy: {mode: Observe}\n",
    );
    let out = logs.path().join("evidence");
    let o = report(&log, &["--out", &path(&out), "--sla", "1h"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    check_manifest(&out);
    let records: Vec<Value> = log_lines.iter().map(|l| serde_json::from_str(l).expect("record")).collect();
    check_terminations(&out, &acme, &records, &log, &digest);
    check_holdings(&out, &acme, &bob_hotp.serial, &mallory.serial);
    check_exceptions(&out, &acme, &records, &digest);
    check_provenance(&out, &records);
    check_sample(&log, &records);
}

/// `manifest.json` names every other file of the directory once, with its SHA-256 and size.
fn check_manifest(out: &Path) {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).expect("manifest")).expect("JSON");
    let listed: BTreeSet<String> =
        manifest["files"].as_array().expect("files").iter().map(|f| field(f, "file").to_string()).collect();
    let present: BTreeSet<String> = std::fs::read_dir(out)
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .filter(|n| n != "manifest.json")
        .collect();
    assert_eq!(listed, present);
    assert_eq!(listed.len(), 15, "5 sections × 3 formats: {listed:?}");
    for file in manifest["files"].as_array().expect("files") {
        let bytes = std::fs::read(out.join(field(file, "file"))).expect("listed file");
        assert_eq!(field(file, "sha256"), hex::encode(sha2::Sha256::digest(&bytes)), "{file}");
        assert_eq!(file["bytes"], bytes.len());
    }
}

/// The six revocations of the demo, each with the line of its outcome record; Erin's trigger
/// is the `activeUntil` that passed a month before keyward ran, far outside the SLA.
fn check_terminations(out: &Path, acme: &Company, records: &[Value], log: &Path, digest: &str) {
    let rows = section(out, "terminations");
    let expected: BTreeSet<(String, String, String)> = [
        ("bob", "hotp", "NotEntitled"),
        ("carol", "totp", "EmployeeSuspended"),
        ("dave", "hotp", "EmployeeOffboarded"),
        ("dave", "totp", "EmployeeOffboarded"),
        ("erin", "totp", "EmployeeOutsideActiveWindow"),
        ("frank", "totp", "NotEntitled"),
    ]
    .iter()
    .map(|(u, k, r)| (u.to_string(), acme.token(u, k).serial.clone(), r.to_string()))
    .collect();
    let got: BTreeSet<(String, String, String)> = rows
        .iter()
        .map(|r| (field(r, "user").to_string(), field(r, "enrolment").to_string(), field(r, "reason").to_string()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(rows.len(), 6, "one row per enrolment");
    for row in &rows {
        let (file, line) = field(row, "record").rsplit_once(':').expect("file:line");
        assert_eq!(file, log.display().to_string());
        let record = &records[line.parse::<usize>().expect("line") - 1];
        assert_eq!(
            (record["enrolment"].as_str(), record["outcome"].as_str()),
            (row["enrolment"].as_str(), Some("revoked"))
        );
        assert_eq!(field(row, "outcome"), "revoked");
        assert_eq!(field(row, "approved_plan"), digest);
        assert_eq!(field(row, "source_revision"), SOURCE_REVISION);
        assert_eq!(row["employee"], row["user"]);
        if field(row, "user") == "erin" {
            assert_eq!(field(row, "trigger"), "2026-10-31T17:00:00Z");
            assert_eq!(field(row, "sla"), "outside");
            assert!(row["latency_seconds"].as_i64().expect("latency") > 86_400 * 20, "{row}");
        } else if record.get("trigger").is_some() {
            // Records that carry their trigger: keyward observed the change minutes ago.
            assert_eq!((field(row, "trigger_source"), field(row, "sla")), ("recorded", "within"), "{row}");
        } else {
            assert_eq!((field(row, "trigger_source"), field(row, "sla")), ("trigger: unknown", "unknown"), "{row}");
            assert!(row["latency_seconds"].is_null());
        }
    }
}

/// Alice's two SRE tokens and Bob's developer TOTP are held under their grants; Bob's new
/// HOTP, the break-glass account and Mallory's out-of-band token are held without one.
fn check_holdings(out: &Path, acme: &Company, bob_hotp: &str, mallory: &str) {
    let holdings: BTreeSet<(String, String, String, String)> = section(out, "holdings")
        .iter()
        .map(|r| {
            let grants: Vec<&str> = r["grants"].as_array().expect("grants").iter().filter_map(Value::as_str).collect();
            (field(r, "employee").into(), field(r, "kind").into(), field(r, "enrolment").into(), grants.join(","))
        })
        .collect();
    let expected: BTreeSet<(String, String, String, String)> =
        [("alice", "totp", "sre-otp"), ("alice", "hotp", "sre-otp"), ("bob", "totp", "dev-totp")]
            .iter()
            .map(|(u, k, g)| (u.to_string(), k.to_string(), acme.token(u, k).serial.clone(), g.to_string()))
            .collect();
    assert_eq!(holdings, expected);

    let unentitled: Vec<(String, String, String, String, String)> = section(out, "unentitled")
        .iter()
        .map(|r| {
            (
                field(r, "category").into(),
                field(r, "user").into(),
                field(r, "enrolment").into(),
                field(r, "reason").into(),
                field(r, "status").into(),
            )
        })
        .collect();
    let row = |c: &str, u: &str, e: &str, r: &str, s: &str| (c.into(), u.into(), e.into(), r.into(), s.into());
    assert_eq!(
        unentitled,
        [
            row("not-entitled", "bob", bob_hotp, "NotEntitled", "revocation planned"),
            row(
                "protected-user",
                "breakglass",
                &acme.token("breakglass", "totp").serial,
                "",
                "never revoked: protected user"
            ),
            row("undeclared-user", "mallory", mallory, "", "not managed (scope: Declared)"),
        ]
    );
}

/// Six revocations held over budget (with the digest to approve), the approved plan (no
/// approver recorded: files carry no managed fields), and the provider that could not be read.
fn check_exceptions(out: &Path, acme: &Company, records: &[Value], digest: &str) {
    let rows = section(out, "exceptions");
    let kinds: Vec<&str> = rows.iter().map(|r| field(r, "exception")).collect();
    let blocked = records.iter().filter(|r| r["outcome"] == "blocked").count();
    assert_eq!(blocked, 6, "the first apply held all six");
    let mut expected = vec!["blocked"; blocked];
    expected.extend(["approved-plan", "read-error"]);
    assert_eq!(kinds, expected);
    for held in &rows[..blocked] {
        assert_eq!(field(held, "plan"), digest);
        assert!(field(held, "detail").contains("exceed the budget of 2"), "{held}");
    }
    let carol = &acme.token("carol", "totp").serial;
    assert!(rows[..blocked].iter().any(|r| field(r, "enrolment") == carol && field(r, "user") == "carol"));
    let approved = &rows[blocked];
    assert_eq!((field(approved, "plan"), field(approved, "approver")), (digest, "not recorded"));
    assert_eq!(
        field(approved, "detail"),
        "6 revocation(s) carried out under the approved plan; approval time not recorded"
    );
    let unread = &rows[blocked + 1];
    assert_eq!(field(unread, "provider"), "acme/down-pi");
    assert!(field(unread, "detail").contains("http://127.0.0.1:9"), "the refusal, with the endpoint: {unread}");
}

fn check_provenance(out: &Path, records: &[Value]) {
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("provenance.json")).expect("provenance")).expect("JSON");
    assert_eq!(p["keyward_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(p["sla_seconds"], 3600);
    let providers: Vec<(&str, &str)> = p["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|s| (field(s, "provider"), field(s, "product")))
        .collect();
    assert_eq!(providers, [("acme/corp-pi", "privacyidea"), ("acme/down-pi", "privacyidea")]);
    assert!(field(&p["providers"][0], "live_read").starts_with("ok: "), "{p}");
    assert!(field(&p["providers"][1], "live_read").starts_with("FAILED: "), "{p}");
    assert_eq!(p["chain"]["verified"], true);
    assert_eq!(p["source_revisions"], serde_json::json!([SOURCE_REVISION]));
    assert_eq!(p["declared_source_revisions"], serde_json::json!([SOURCE_REVISION]));
    let rows = &p["rows"];
    assert_eq!(
        (rows["records_read"].as_u64(), rows["records_in_period"].as_u64()),
        (Some(records.len() as u64), Some(records.len() as u64))
    );
    let counts: Vec<u64> = ["terminations", "holdings", "unentitled", "exceptions"]
        .iter()
        .map(|k| rows[k].as_u64().expect("count"))
        .collect();
    assert_eq!(counts, [6, 3, 3, 8]);
    let md = std::fs::read_to_string(out.join("provenance.md")).expect("provenance.md");
    assert!(md.contains("| audit chain | verified: "), "{md}");
}

/// The same seed draws the same rows; the rows drawn are the lowest SHA-256 ranks, worked out
/// here independently; another seed draws others; each row quotes its exact audit lines.
fn check_sample(log: &Path, records: &[Value]) {
    let sample = |seed: &str| {
        let o = run(&[
            "report".into(),
            "sample".into(),
            "--n".into(),
            "3".into(),
            "--seed".into(),
            seed.into(),
            "--audit-log".into(),
            path(log),
            "--format".into(),
            "json".into(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        (stdout(&o), serde_json::from_slice::<Value>(&o.stdout).expect("sample JSON"))
    };
    let revoked: Vec<&Value> = records.iter().filter(|r| r["outcome"] == "revoked").collect();
    let by_hand = |seed: &str| -> Vec<String> {
        let mut ranked: Vec<(String, String)> = revoked
            .iter()
            .map(|r| {
                let key = format!("{seed}\n{}\n{}\n{}", field(r, "provider"), field(r, "user"), field(r, "enrolment"));
                (hex::encode(sha2::Sha256::digest(key.as_bytes())), field(r, "enrolment").to_string())
            })
            .collect();
        ranked.sort();
        ranked.into_iter().take(3).map(|(_, e)| e).collect()
    };
    let drawn = |v: &Value| -> Vec<String> {
        v["drawn"].as_array().expect("drawn").iter().map(|d| field(d, "enrolment").to_string()).collect()
    };
    let (text, first) = sample("SOC2-2026-Q4");
    assert_eq!(first["population"], 6);
    assert_eq!(drawn(&first), by_hand("SOC2-2026-Q4"));
    assert_eq!(sample("SOC2-2026-Q4").0, text, "the same seed, the same sample, byte for byte");
    // Another seed whose hand-drawn sample differs (most do; six rows leave some chance).
    let other =
        (2..50).map(|i| format!("SOC2-2026-Q4-{i}")).find(|s| by_hand(s) != by_hand("SOC2-2026-Q4")).expect("a seed");
    let (_, second) = sample(&other);
    assert_eq!(drawn(&second), by_hand(&other));
    assert_ne!(drawn(&second), drawn(&first));

    let log_text = std::fs::read_to_string(log).expect("log");
    let lines: Vec<&str> = log_text.lines().collect();
    for d in first["drawn"].as_array().expect("drawn") {
        let quoted = d["audit_lines"].as_array().expect("audit lines");
        for q in quoted {
            let line: usize = field(q, "record").rsplit_once(':').expect("file:line").1.parse().expect("number");
            assert_eq!(field(q, "line"), lines[line - 1], "quoted exactly");
            assert!(field(q, "line").contains(field(d, "enrolment")));
        }
        let outcomes: Vec<String> = quoted
            .iter()
            .map(|q| {
                serde_json::from_str::<Value>(field(q, "line")).expect("record")["outcome"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .filter(|o| !o.is_empty())
            .collect();
        assert_eq!(outcomes.first().map(String::as_str), Some("blocked"), "the hold first: {quoted:?}");
        assert_eq!(outcomes.last().map(String::as_str), Some("revoked"), "the revocation last: {quoted:?}");
        assert_eq!(field(quoted.last().expect("a line"), "record"), field(d, "record"));
    }
}

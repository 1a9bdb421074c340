//! The chain, its verification, and the log file across opens and crashes.

use super::*;
use std::path::PathBuf;

fn record(n: usize) -> AuditRecord {
    AuditRecord {
        time: chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").expect("time").to_utc(),
        provider: "acme/corp-pi".into(),
        user: format!("user{n}"),
        enrolment: format!("TOTP{n}"),
        kind: "totp".into(),
        reason: "EmployeeOffboarded".into(),
        employee: Some(format!("user{n}")),
        grants: vec![],
        source_revision: None,
        outcome: Outcome::Revoked,
        detail: None,
        approval: None,
        event: Event::Outcome,
        endpoint: None,
        employee_uid: None,
        plan_digest: None,
        trigger: None,
        latency_seconds: None,
        replica: None,
        service_account: None,
    }
}

fn log(n: usize) -> String {
    let mut chain = Chain::default();
    (0..n).map(|i| String::from_utf8(chain.seal(&record(i)).expect("seal")).expect("utf-8") + "\n").collect()
}

fn check(text: &str, checkpoint: Option<(u64, &str)>) -> Result<Verified, Break> {
    verify(&[(PathBuf::from("audit.jsonl"), text.to_string())], checkpoint)
}

#[test]
fn an_untouched_log_verifies_and_every_tampering_is_caught_at_its_line() {
    let text = log(5);
    let head = check(&text, None).expect("intact");
    assert_eq!((head.records, head.head.next_seq), (5, 5));
    let lines: Vec<&str> = text.lines().collect();
    let join = |lines: Vec<&str>| lines.iter().map(|l| format!("{l}\n")).collect::<String>();

    let edited = text.replacen("user2", "user9", 1);
    assert_eq!(check(&edited, None).expect_err("edited").line, 4, "the line after the edit names it");

    let mut removed = lines.clone();
    removed.remove(2);
    let error = check(&join(removed), None).expect_err("removed");
    assert_eq!(error.line, 3);
    assert!(error.problem.contains("sequence 3 where 2 was due"), "{error}");

    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    assert_eq!(check(&join(swapped), None).expect_err("reordered").line, 2);

    // Cut short: only a checkpoint can tell, and it does.
    let truncated = join(lines[..3].to_vec());
    assert!(check(&truncated, None).is_ok(), "a prefix is a valid chain by itself");
    let error = check(&truncated, Some((5, &head.head.prev))).expect_err("truncated");
    assert!(error.problem.contains("truncated"), "{error}");
    assert!(check(&text, Some((5, &head.head.prev))).is_ok());

    assert_eq!(check(&format!("{text}not json\n"), None).expect_err("garbage").line, 6);
}

#[tokio::test]
async fn a_log_opened_again_continues_its_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    for i in 0..3 {
        JsonLinesFile::open(&path).expect("open").record(&record(i)).await.expect("write");
    }
    let text = std::fs::read_to_string(&path).expect("log");
    let checkpoint = read_checkpoint(&std::fs::read_to_string(checkpoint_path(&path)).expect("checkpoint"));
    let (count, hash) = checkpoint.expect("parsed");
    let verified = check(&text, Some((count, &hash))).expect("one chain across three opens");
    assert_eq!(verified.records, 3);
    assert_eq!(count, 3);
}

/// A crash mid-write leaves a line cut short: it was never synced whole, so it is dropped on
/// open and the chain goes on from the last whole line; the intents the log leaves open are
/// known to the next process.
#[tokio::test]
async fn a_line_cut_short_by_a_crash_is_dropped_and_open_intents_survive_the_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let log = JsonLinesFile::open(&path).expect("open");
    let mut announced = record(1);
    announced.event = Event::Intent;
    announced.outcome = Outcome::Intended;
    log.record(&record(0)).await.expect("write");
    log.record(&announced).await.expect("write");
    drop(log);
    let whole = std::fs::read_to_string(&path).expect("log");
    std::fs::write(&path, format!("{whole}{{\"v\":2,\"seq\":2,\"prev\":\"ab")).expect("cut short");

    let log = JsonLinesFile::open(&path).expect("open again");
    assert_eq!(std::fs::read_to_string(&path).expect("log"), whole, "the partial line is gone");
    assert_eq!(log.unresolved("acme/corp-pi"), vec![announced.clone()], "the intent is still open");
    log.record(&announced.ended(Outcome::Revoked, None)).await.expect("its outcome");
    assert!(log.unresolved("acme/corp-pi").is_empty());
    let text = std::fs::read_to_string(&path).expect("log");
    assert_eq!(check(&text, None).expect("one chain").records, 3);
}

#[test]
fn a_blocked_revocation_is_admitted_once_per_plan_digest() {
    let mut blocked = record(0);
    blocked.outcome = Outcome::Blocked;
    blocked.plan_digest = Some("d1".into());
    let mut resolution = Resolution::default();
    assert!(resolution.admits(&blocked));
    resolution.note(&blocked);
    assert!(!resolution.admits(&blocked), "the same held plan again");
    blocked.plan_digest = Some("d2".into());
    assert!(resolution.admits(&blocked), "a different plan is news");
}

/// The schema published in docs/audit.md, applied to lines as the writer seals them: every
/// field set, and the fewest.
#[test]
fn sealed_records_match_the_schema_in_the_docs() {
    let doc = include_str!("../../docs/audit.md");
    let block = doc.split("```json\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a json block");
    let schema: serde_json::Value = serde_json::from_str(block).expect("the schema is JSON");
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).expect("a valid schema");

    let mut full = record(7);
    full.event = Event::Intent;
    full.outcome = Outcome::Intended;
    full.endpoint = Some("https://pi.acme.example (corp)".into());
    full.employee_uid = Some("6a65fe5f-19f9-4ca8-befe-747b9e71f846".into());
    full.grants = vec!["dev-totp".into()];
    full.source_revision = Some("3f2c1e0".into());
    full.detail = Some("why".into());
    full.plan_digest = Some("511234d4202f795c".into());
    full.approval = Some(crate::engine::plan::Approval {
        digest: "511234d4202f795c".into(),
        manager: Some("kubectl-annotate".into()),
        time: Some(full.time),
        object: Some("approve-511234d4".into()),
    });
    full.trigger = Some(full.time - chrono::Duration::seconds(3));
    full.latency_seconds = latency(full.trigger, full.time);
    full.replica = Some("keyward-7d9f-abc".into());
    full.service_account = Some("keyward".into());
    let mut chain = Chain::default();
    for r in [record(0), full.clone(), full.ended(Outcome::Revoked, None)] {
        let line: serde_json::Value = serde_json::from_slice(&chain.seal(&r).expect("seal")).expect("JSON");
        let errors: Vec<String> =
            validator.iter_errors(&line).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
    }
    let mut wrong: serde_json::Value = serde_json::from_slice(&chain.seal(&record(1)).expect("seal")).expect("JSON");
    wrong["outcome"] = "deleted".into();
    assert!(!validator.is_valid(&wrong), "the schema rejects what keyward never writes");
}

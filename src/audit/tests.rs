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
        notification: None,
    }
}

fn log(n: usize) -> String {
    let mut chain = Chain::default();
    (0..n).map(|i| String::from_utf8(chain.seal(&record(i)).expect("seal")).expect("utf-8") + "\n").collect()
}

fn check(text: &str, checkpoint: Option<(u64, &str)>) -> Result<Verified, Break> {
    let held = checkpoint.map(|(count, head)| held(count, head, None, false));
    verify(&[(PathBuf::from("audit.jsonl"), text.to_string())], &Expected { checkpoint: held, anchors: Vec::new() })
}

/// A checkpoint of `count` records and `head`, marked as the start of a file at `start`.
fn held(count: u64, head: &str, start: Option<u64>, signed: bool) -> Held {
    let checkpoint = Checkpoint { origin: "keyward.dev/audit".into(), count, head: head.into(), time: None, start };
    Held { checkpoint, file: PathBuf::from(format!("audit.jsonl.anchor-{count:012}")), signed }
}

fn hash_of(line: &str) -> String {
    sha256_hex(line.as_bytes())
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

/// Re-chains `lines` from index `from` on: every later `prev` recomputed, as whoever can
/// write the volume can do (the chain is unkeyed SHA-256).
fn rechain(lines: &mut [String], from: usize) {
    for i in from..lines.len() {
        let mut value: serde_json::Value = serde_json::from_str(&lines[i]).expect("JSON");
        value["prev"] = if i == 0 { "".into() } else { sha256_hex(lines[i - 1].as_bytes()).into() };
        lines[i] = serde_json::to_string(&value).expect("JSON");
    }
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A checkpoint trails the log (the ConfigMap copy by up to 100 records or an
/// hour), so the log is usually longer than its count; the record it counted last must still
/// hash to its head, or an edited record with every later `prev` recomputed would pass.
#[test]
fn a_trailing_checkpoint_pins_the_record_it_counted_last() {
    let text = log(8);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at_five = check(&joined(&lines[..5]), None).expect("a prefix").head;
    let trailing = Some((5, at_five.prev.as_str()));
    assert_eq!(check(&text, trailing).expect("intact and longer").records, 8);

    // A revocation record edited, and the chain recomputed after it: a valid chain by itself.
    lines[2] = lines[2].replacen("\"outcome\":\"revoked\"", "\"outcome\":\"failed\"", 1);
    rechain(&mut lines, 3);
    let forged = joined(&lines);
    assert!(check(&forged, None).is_ok(), "the unkeyed chain alone cannot tell");
    let error = check(&forged, trailing).expect_err("the checkpoint's record no longer hashes to its head");
    assert_eq!((error.file.as_path(), error.line), (std::path::Path::new("audit.jsonl"), 5), "{error}");
    assert!(error.problem.contains("record 4 is not the one the checkpoint saw"), "{error}");

    // A log that starts right after the checkpoint's last record (pruned at a rotation
    // there): the first record's `prev` is what the checkpoint pins.
    let rest =
        vec![(PathBuf::from("audit.jsonl"), joined(&text.lines().skip(5).map(str::to_string).collect::<Vec<_>>()))];
    let anchors = vec![held(5, &at_five.prev, Some(5), true)];
    let held_to = |head: &str| Expected { checkpoint: Some(held(5, head, None, true)), anchors: anchors.clone() };
    assert!(verify(&rest, &held_to(&at_five.prev)).is_ok());
    let error = verify(&rest, &held_to(&sha256_hex(b"another record 4"))).expect_err("it saw another record 4");
    assert_eq!(error.line, 1, "{error}");
    assert!(error.problem.contains("not chained to the record the checkpoint saw"), "{error}");
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

/// A log past its size is rotated, never between an intent and its outcome; the
/// rotated files and the current one verify as one chain, in order, against the checkpoint;
/// and a process that opens a log just rotated (empty) continues the chain of the newest
/// rotated file.
#[tokio::test]
async fn a_rotated_log_continues_its_chain_and_never_splits_an_intent_from_its_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let size = serde_json::to_vec(&record(0)).expect("json").len() as u64;
    let log = JsonLinesFile::open(&path).expect("open").rotating(Some(size * 2));
    let mut intent = record(1);
    intent.event = Event::Intent;
    intent.outcome = Outcome::Intended;
    log.record(&record(0)).await.expect("write");
    log.record(&intent).await.expect("write");
    assert!(crate::audit::rotated_files(&path).expect("listed").is_empty(), "an intent is open: no rotation yet");
    log.record(&intent.ended(Outcome::Revoked, None)).await.expect("write");
    let rotated = crate::audit::rotated_files(&path).expect("listed");
    assert_eq!(rotated.len(), 1, "rotated once its intent was closed");
    assert!(rotated[0].to_string_lossy().ends_with(".000000000003"), "{rotated:?}");
    for i in 2..6 {
        log.record(&record(i)).await.expect("write");
    }
    drop(log);
    // A restart right after a rotation: the current file is empty.
    let rotated = crate::audit::rotated_files(&path).expect("listed");
    assert!(rotated.len() >= 2, "{rotated:?}");
    std::fs::write(&path, "").expect("just rotated");
    let mut files: Vec<std::path::PathBuf> = rotated.clone();
    let text_of = |files: &[std::path::PathBuf]| -> String {
        files.iter().map(|f| std::fs::read_to_string(f).expect("read")).collect()
    };
    let before = text_of(&files);
    let reopened = JsonLinesFile::open(&path).expect("open again");
    reopened.record(&record(9)).await.expect("write after the restart");
    files.push(path.clone());
    let all = text_of(&files);
    assert!(all.starts_with(&before));
    let checkpoint = read_checkpoint(&std::fs::read_to_string(checkpoint_path(&path)).expect("checkpoint"));
    let (count, hash) = checkpoint.expect("parsed");
    let verified = check(&all, Some((count, &hash))).expect("one chain across the rotated files");
    assert_eq!(verified.records, 8);
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
    // An invitation and an approval (format 4).
    let mut invitation = record(8);
    invitation.event = Event::Invitation;
    invitation.enrolment = String::new();
    invitation.kind = "webauthn".into();
    invitation.reason = "EnrolmentRequired".into();
    invitation.outcome = Outcome::Invited;
    let approval = AuditRecord {
        event: Event::Approval,
        outcome: Outcome::Approved,
        user: String::new(),
        enrolment: String::new(),
        kind: String::new(),
        reason: String::new(),
        employee: None,
        plan_digest: full.plan_digest.clone(),
        approval: full.approval.clone(),
        detail: Some("lets 30 held revocations through".into()),
        ..record(9)
    };
    for r in [invitation.clone(), approval.clone()] {
        let line: serde_json::Value = serde_json::from_slice(&chain.seal(&r).expect("seal")).expect("JSON");
        let errors: Vec<String> =
            validator.iter_errors(&line).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
    }
    // A change to the settings that can stop revocations (format 5).
    let changed = AuditRecord::about_provider(
        "acme/corp-pi",
        Event::SettingsChanged,
        Outcome::Changed,
        Some("spec.suspend: false → true".into()),
    );
    let line: serde_json::Value = serde_json::from_slice(&chain.seal(&changed).expect("seal")).expect("JSON");
    assert_eq!((line["v"].as_u64(), line["event"].as_str()), (Some(5), Some("settings-changed")), "{line}");
    let errors: Vec<String> = validator.iter_errors(&line).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{line}: {errors:?}");
    let mut undetailed = line.clone();
    undetailed.as_object_mut().expect("object").remove("detail");
    assert!(!validator.is_valid(&undetailed), "a settings change says what changed");
    let mut unapproved: serde_json::Value =
        serde_json::from_slice(&chain.seal(&approval).expect("seal")).expect("JSON");
    unapproved.as_object_mut().expect("object").remove("approval");
    assert!(!validator.is_valid(&unapproved), "an approval record names the approval");
    let mut wrong: serde_json::Value = serde_json::from_slice(&chain.seal(&record(1)).expect("seal")).expect("JSON");
    wrong["outcome"] = "deleted".into();
    assert!(!validator.is_valid(&wrong), "the schema rejects what keyward never writes");

    // Notification deliveries: every field set, and the fewest.
    let delivery = |status| NotificationDelivery {
        id: sha256_hex(b"notification"),
        target: "security-slack".into(),
        sink: "slack".into(),
        events: vec!["Revoked".into(), "SlaBreach".into()],
        attempt: 2,
        status,
    };
    let mut delivered = AuditRecord::notification("acme/corp-pi", delivery(Some(200)), Outcome::Delivered, None);
    delivered.replica = Some("keyward-7d9f-abc".into());
    delivered.service_account = Some("keyward".into());
    let failed = AuditRecord::notification(
        "acme/corp-pi",
        delivery(None),
        Outcome::Failed,
        Some("send the notification: connection refused".into()),
    );
    for r in [delivered.clone(), failed] {
        let line: serde_json::Value = serde_json::from_slice(&chain.seal(&r).expect("seal")).expect("JSON");
        let errors: Vec<String> =
            validator.iter_errors(&line).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
        assert!(line.get("user").is_none() && line.get("reason").is_none(), "no revocation fields: {line}");
    }
    let sealed = |r: &AuditRecord| -> serde_json::Value {
        serde_json::from_slice(&Chain::default().seal(r).expect("seal")).expect("JSON")
    };
    let mut revoked_notification = sealed(&delivered);
    revoked_notification["outcome"] = "revoked".into();
    assert!(!validator.is_valid(&revoked_notification), "a notification is not revoked");
    let mut delivered_revocation = sealed(&record(2));
    delivered_revocation["outcome"] = "delivered".into();
    assert!(!validator.is_valid(&delivered_revocation), "a revocation is not delivered");
    let mut bare = sealed(&delivered);
    bare.as_object_mut().expect("object").remove("notification");
    assert!(!validator.is_valid(&bare), "a notification record says which notification");
}

#[test]
fn a_notification_record_reads_back_and_settles_no_intent() {
    let delivery = NotificationDelivery {
        id: sha256_hex(b"n"),
        target: "t".into(),
        sink: "webhook".into(),
        events: vec!["Failed".into()],
        attempt: 1,
        status: Some(503),
    };
    let record = AuditRecord::notification("acme/corp-pi", delivery, Outcome::Failed, Some("503".into()));
    let line = Chain::default().seal(&record).expect("seal");
    let read: AuditRecord = serde_json::from_slice(&line).expect("reads back");
    assert_eq!(read, record);
    assert_eq!(check(&format!("{}\n", String::from_utf8(line).expect("utf-8")), None).expect("verifies").records, 1);
    let mut intent = self::record(0);
    intent.event = Event::Intent;
    intent.outcome = Outcome::Intended;
    let resolution = Resolution::of([&intent, &read]);
    assert_eq!(resolution.pending_count(), 1, "the intent stays open");
}

/// A log verifies from seq 0, or from the start an anchor (a checkpoint written at
/// a rotation) names by seq and by the `prev` of its first record. Removing the oldest files,
/// or the first lines of a file, no longer verifies; nor does an anchor of another record,
/// nor a checkpoint that was not written at a rotation.
#[test]
fn a_log_starts_at_seq_0_or_where_a_rotation_anchor_says() {
    let text = log(8);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let from = |i: usize| joined(&lines[i..]);
    let anchored = |text: &str, anchors: Vec<Held>| {
        verify(&[(PathBuf::from("audit.jsonl"), text.to_string())], &Expected { checkpoint: None, anchors })
    };
    assert_eq!(check(&text, None).expect("from seq 0").start, Start::Genesis);

    let error = check(&from(3), None).expect_err("the first three records cut away");
    assert_eq!(error.line, 1, "{error}");
    assert!(error.problem.contains("starts at seq 3 and no anchor names that start"), "{error}");

    let anchor = held(3, &hash_of(&lines[2]), Some(3), true);
    let verified = anchored(&from(3), vec![anchor.clone()]).expect("pruned at the rotation");
    assert_eq!((verified.records, verified.first_seq), (5, 3));
    assert_eq!(verified.start, Start::Anchor(anchor.clone()));
    assert!(verified.start.label().contains("seq 3, anchored by the signed checkpoint"), "{}", verified.start.label());
    let unsigned = anchored(&from(3), vec![held(3, &hash_of(&lines[2]), Some(3), false)]).expect("not checked");
    assert!(unsigned.start.label().contains("anchors nothing against whoever can write the volume"));

    // The first line of the remaining file cut too: the anchor names seq 3, not 4.
    assert!(anchored(&from(4), vec![anchor.clone()]).is_err(), "cut past the anchor");
    // An anchor of the same seq in another chain (or of a replaced record 2).
    let elsewhere = held(3, &sha256_hex(b"another record 2"), Some(3), true);
    let error = anchored(&from(3), vec![elsewhere]).expect_err("another record before it");
    assert!(error.problem.contains("not chained to the record its anchor names"), "{error}");
    // The checkpoint written after record 4 (kept by whoever watched the volume) is signed
    // and true, but marks no start of a file: it anchors nothing.
    let ordinary = held(5, &hash_of(&lines[4]), None, true);
    assert!(anchored(&from(5), vec![ordinary]).is_err(), "only a rotation's checkpoint anchors");
}

/// The rotation writes the anchor the files left after pruning verify from,
/// signed; without it (or with the rotated file's first lines cut) they do not verify.
#[tokio::test]
async fn a_rotation_leaves_a_signed_anchor_that_the_files_after_it_verify_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let (signer, verifier) = Signer::generate("acme-audit").expect("keys");
    let (signer, verifier) = (Signer::parse(&signer).expect("signer"), Verifier::parse(&verifier).expect("verifier"));
    let size = serde_json::to_vec(&record(0)).expect("json").len() as u64;
    let log = JsonLinesFile::open(&path)
        .expect("open")
        .rotating(Some(size * 2))
        .signed(std::sync::Arc::new(signer))
        .expect("signed");
    for i in 0..7 {
        log.record(&record(i)).await.expect("write");
    }
    let rotated = rotated_files(&path).expect("listed");
    assert!(rotated.len() >= 2, "{rotated:?}");
    let anchors: Vec<Held> = anchor_files(&path)
        .expect("listed")
        .into_iter()
        .map(|file| {
            let note = std::fs::read_to_string(&file).expect("anchor");
            Held { checkpoint: verifier.open(&note).expect("signed"), file, signed: true }
        })
        .collect();
    assert_eq!(anchors.len(), rotated.len(), "one anchor per rotation: {anchors:?}");
    assert!(anchors.iter().all(|a| a.checkpoint.start == Some(a.checkpoint.count) && a.checkpoint.time.is_some()));
    let note = std::fs::read_to_string(checkpoint_path(&path)).expect("checkpoint");
    let newest = Held { checkpoint: verifier.open(&note).expect("signed"), file: checkpoint_path(&path), signed: true };
    assert!(newest.checkpoint.time.is_some() && newest.checkpoint.start.is_none(), "{note}");

    // Retention pruned the oldest rotated file.
    let kept: Vec<(PathBuf, String)> =
        rotated[1..].iter().chain([&path]).map(|f| (f.clone(), std::fs::read_to_string(f).expect("read"))).collect();
    let expected = Expected { checkpoint: Some(newest.clone()), anchors: anchors.clone() };
    let verified = verify(&kept, &expected).expect("verifies from the rotation's anchor");
    assert!(matches!(&verified.start, Start::Anchor(a) if a.signed && a.checkpoint.count == verified.first_seq));
    assert_eq!(verified.head.next_seq, 7);

    let unanchored = Expected { checkpoint: Some(newest), anchors: Vec::new() };
    let error = verify(&kept, &unanchored).expect_err("no anchor");
    assert_eq!((error.file.clone(), error.line), (rotated[1].clone(), 1), "{error}");
    let mut cut = kept.clone();
    cut[0].1 = cut[0].1.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert!(verify(&cut, &expected).is_err(), "the first line of the first file kept cut away");
}

/// `--max-age`: a checkpoint older than it, or without a time (the three-line format), fails;
/// its age is told either way.
#[test]
fn the_newest_checkpoint_is_told_its_age_and_held_to_max_age() {
    let time = chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").expect("time").to_utc();
    let mut newest = held(5, &"ab".repeat(32), None, true);
    newest.checkpoint.time = Some(time);
    let now = time + chrono::Duration::hours(30);
    let day = Some(chrono::Duration::hours(24));
    assert_eq!(checkpoint_age(Some(&newest), now, None), Ok("written 2026-11-30T12:00:00Z (1day 6h ago)".into()));
    let error = checkpoint_age(Some(&newest), now, day).expect_err("older than a day");
    assert!(error.contains("(1day 6h ago); --max-age 1day asks for a newer one"), "{error}");
    assert!(checkpoint_age(Some(&newest), time + chrono::Duration::hours(2), day).is_ok());

    let today = held(5, &"ab".repeat(32), None, true);
    assert!(checkpoint_age(Some(&today), now, None).expect("told").starts_with("without a time"));
    assert!(checkpoint_age(Some(&today), now, day).is_err(), "no time, no age: --max-age fails");
    assert!(checkpoint_age(None, now, day).is_err());
}

/// A replica that never wrote a record (every standby) checkpoints an empty head: its note has
/// a blank line inside its body, and still reads back, signed or not.
#[test]
fn the_checkpoint_of_an_empty_log_reads_back_signed_and_unsigned() {
    let (signer, verifier) = Signer::generate("keyward-audit").expect("key pair");
    let (signer, verifier) = (Signer::parse(&signer).expect("signer"), Verifier::parse(&verifier).expect("verifier"));
    let empty = Checkpoint {
        origin: note::ORIGIN.into(),
        count: 0,
        head: String::new(),
        time: Some(chrono::Utc::now()),
        start: None,
    };
    let note = signer.sign(&empty);
    let opened = verifier.open(&note).expect("the signed empty checkpoint opens");
    assert_eq!((opened.count, opened.head.as_str()), (0, ""));
    let parsed = Checkpoint::parse(&note).expect("the empty checkpoint parses without a key");
    assert_eq!((parsed.count, parsed.time.is_some()), (0, true));
}

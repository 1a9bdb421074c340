//! The report composed from a log and a live read, in each format.

use super::*;
use crate::crd::EmployeeState;
use crate::engine::fixtures::{employee, grant, inventory, now, provider};
use crate::evidence::exceptions::ExceptionKind;
use crate::evidence::holdings::Category;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

/// A chained log of two revocations and a blocked one.
fn log() -> String {
    let mut chain = crate::audit::Chain::default();
    let lines = [
        ("2026-11-28T11:00:00Z", "dave", "D1", "EmployeeOffboarded", "blocked"),
        ("2026-11-28T11:30:00Z", "dave", "D1", "EmployeeOffboarded", "revoked"),
        ("2026-11-28T11:30:01Z", "erin", "E1", "EmployeeOutsideActiveWindow", "revoked"),
    ];
    lines
        .iter()
        .map(|(time, user, enrolment, reason, outcome)| {
            let record: crate::audit::AuditRecord = serde_json::from_value(serde_json::json!({
                "time": time, "provider": "acme/corp-pi", "user": user, "enrolment": enrolment,
                "kind": "totp", "reason": reason, "employee": user, "grants": [],
                "source_revision": "abc123", "outcome": outcome,
            }))
            .expect("record");
            String::from_utf8(chain.seal(&record).expect("seal")).expect("utf-8") + "\n"
        })
        .collect()
}

fn report(log: &str) -> Report {
    let mut erin = employee("erin", &["dev"], EmployeeState::Active);
    erin.spec.active_until = Some(at("2026-11-28T10:00:00Z"));
    let employees = vec![employee("alice", &["dev"], EmployeeState::Active), erin];
    let grants = vec![grant("dev-totp", &["dev"], &[], &["totp"])];
    let mut p = provider();
    p.spec.protected_users = vec!["breakglass".into()];
    let listing = Ok((
        inventory(&[("alice", &[("A1", "totp", true)]), ("breakglass", &[("G1", "totp", true)])]),
        crate::engine::fixtures::capabilities(),
    ));
    let live = live_provider(&p, &employees, &grants, listing, now());
    let mut down = provider();
    down.metadata.name = Some("down-pi".into());
    let failed = live_provider(&down, &employees, &grants, Err("connection refused".into()), now());
    let logs = vec![(PathBuf::from("audit.jsonl"), log.to_string())];
    compose(Inputs {
        period: Period::new(Some(at("2026-11-01T00:00:00Z")), Some(at("2026-12-01T00:00:00Z"))).expect("period"),
        sla: Duration::hours(1),
        generated_at: now(),
        live_read_at: now(),
        logs: &logs,
        checkpoint: None,
        anchors: &[],
        deadlines: &Deadlines::of(&employees, &grants),
        providers: vec![live, failed],
        declared_source_revisions: Vec::new(),
    })
}

#[test]
fn a_report_holds_each_section_from_the_log_and_the_live_read() {
    let r = report(&log());
    let terminated: Vec<(&str, Option<i64>, Sla)> =
        r.terminations.iter().map(|t| (t.user.as_str(), t.latency_seconds, t.sla)).collect();
    assert_eq!(terminated, [("dave", None, Sla::Unknown), ("erin", Some(5401), Sla::Outside)]);
    let held: Vec<(&str, &str, Vec<String>)> =
        r.holdings.iter().map(|h| (h.user.as_str(), h.kind.as_str(), h.grants.clone())).collect();
    assert_eq!(held, [("alice", "totp", vec!["dev-totp".to_string()])]);
    let without: Vec<(&str, Category)> = r.unentitled.iter().map(|u| (u.user.as_str(), u.category)).collect();
    assert_eq!(without, [("breakglass", Category::ProtectedUser)]);
    let exceptions: Vec<(ExceptionKind, &str)> =
        r.exceptions.iter().map(|e| (e.exception, e.provider.as_str())).collect();
    assert_eq!(exceptions, [(ExceptionKind::Blocked, "acme/corp-pi"), (ExceptionKind::ReadError, "acme/down-pi")]);

    let p = &r.provenance;
    assert!(p.chain.verified, "{:?}", p.chain);
    assert_eq!(p.source_revisions, ["abc123"]);
    assert_eq!((p.rows.records_in_period, p.rows.terminations, p.rows.exceptions), (3, 2, 2));
    assert_eq!(p.providers[0].live_read, "ok: 2 user(s), 2 enrolment(s)");
    assert_eq!(p.providers[1].live_read, "FAILED: connection refused");
    assert_eq!(p.audit_logs[0].sha256, crate::audit::sha256_hex(log().as_bytes()));
}

#[test]
fn a_tampered_log_still_reports_and_says_where_the_chain_breaks() {
    let r = report(&log().replacen("\"dave\"", "\"mallory\"", 1));
    assert!(!r.provenance.chain.verified);
    assert_eq!(r.provenance.chain.problem.as_deref().map(|p| p.split(": ").next()), Some(Some("audit.jsonl:2")));
    let pairs = r.provenance.pairs();
    let chain = pairs.iter().find(|(k, _)| k == "audit chain").expect("chain line");
    assert!(chain.1.starts_with("FAILED: audit.jsonl:2: "), "{chain:?}");
}

#[test]
fn every_json_field_of_a_row_is_a_column_of_its_table() {
    fn check<R: table::Row + Serialize>() {
        let json = serde_json::to_value(R::default()).expect("json");
        let columns = R::columns();
        for key in json.as_object().expect("object").keys() {
            assert!(columns.contains(&key.as_str()), "{key} is in the JSON but not in the table {columns:?}");
        }
    }
    check::<Termination>();
    check::<Holding>();
    check::<Unentitled>();
    check::<Exception>();
}

#[test]
fn each_format_renders_every_section() {
    let r = report(&log());
    let markdown = r.whole(Format::Markdown);
    for section in Section::ALL {
        assert!(markdown.contains(&format!("## {}\n", section.title())), "{markdown}");
    }
    assert!(markdown.contains("| acme/corp-pi | erin | erin | E1 | totp | EmployeeOutsideActiveWindow | 2026-11-28T10:00:00Z | activeUntil | 2026-11-28T11:30:01Z | 1h 30m | 5401 | outside |"), "{markdown}");
    let json: serde_json::Value = serde_json::from_str(&r.whole(Format::Json)).expect("json");
    assert_eq!(json["terminations"][1]["trigger_source"], "activeUntil");
    assert_eq!(json["unentitled"][0]["category"], "protected-user");
    let csv = r.section(Section::Holdings, Format::Csv);
    assert_eq!(
        csv,
        "provider,employee,user,kind,enrolment,grants,note\r\nacme/corp-pi,alice,alice,totp,A1,dev-totp,\r\n"
    );
    let whole_csv = r.whole(Format::Csv);
    assert!(whole_csv.starts_with("# provenance\r\nkey,value\r\n"), "{whole_csv}");
}

#[test]
fn latencies_read_as_people_say_them() {
    let label = |s: i64| duration_label(Duration::seconds(s));
    assert_eq!(
        [
            label(0),
            label(42),
            label(120),
            label(200),
            label(3600),
            label(7500),
            label(86_400 * 31 + 4 * 3600 + 5),
            label(-90)
        ],
        ["0s", "42s", "2m", "3m 20s", "1h", "2h 5m", "31d 4h", "-1m 30s"]
    );
}

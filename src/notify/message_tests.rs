//! The notifications a sweep gives each target, and their exact bytes.

use super::*;
use crate::crd::FactorKind;
use crate::crd::mfa_provider::Mode;
use crate::engine::plan::{Action, ActionKind, Plan, Reason};
use crate::sweep::ActionReport;
use chrono::TimeZone;

const HOUR: Duration = Duration::from_secs(3600);

fn time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).single().expect("time")
}

fn revoke(user: &str, enrolment: &str, reason: Reason, employee: Option<&str>) -> Action {
    Action {
        action: ActionKind::Revoke,
        user: user.into(),
        enrolment: enrolment.into(),
        kind: FactorKind::new("totp"),
        also: vec![],
        reason,
        employee: employee.map(str::to_string),
        grants: vec![],
    }
}

fn report(results: Vec<(Action, ActionResult)>, hold: Option<Hold>, latencies: Vec<(Reason, f64)>) -> SweepReport {
    SweepReport {
        plan: Plan {
            provider: "acme/corp-pi".into(),
            mode: Mode::Enforce,
            actions: results.iter().map(|(a, _)| a.clone()).collect(),
            digest: "511234d4202f795c".into(),
            hold,
            approved: false,
            approval: None,
            approval_object: None,
            error: None,
            conflicts: vec![],
            employees: vec![],
            managed_users: 3,
            managed_enrolments: 9,
        },
        results: results.into_iter().map(|(action, result)| ActionReport { action, result }).collect(),
        requests: 0,
        audit_errors: vec![],
        error_category: None,
        deferred: false,
        listing_duplicates: Default::default(),
        latencies,
    }
}

fn target(json: serde_json::Value) -> NotificationTarget {
    serde_json::from_value(json).expect("target")
}

fn slack(events: &[&str]) -> NotificationTarget {
    target(
        serde_json::json!({"name": "sec", "slack": {"urlSecretRef": {"name": "hooks", "key": "slack"}}, "events": events}),
    )
}

fn never_told(_: &str) -> bool {
    false
}

/// Dave offboarded: one enrolment revoked, one already gone, one failing; his revocation took
/// longer than the SLA.
fn dave() -> SweepReport {
    let dave = |enrolment: &str| revoke("dave", enrolment, Reason::EmployeeOffboarded, Some("dave"));
    report(
        vec![
            (dave("TOTP1"), ActionResult::Revoked),
            (dave("TOTP2"), ActionResult::AlreadyGone),
            (dave("WAN3"), ActionResult::Failed("privacyIDEA answered 500".into())),
        ],
        None,
        vec![(Reason::EmployeeOffboarded, 3723.4)],
    )
}

#[test]
fn a_sweep_gives_a_slack_target_one_message_with_everything_it_did() {
    let n = build(&slack(&[]), &dave(), HOUR, time(), &never_told).expect("a notification");
    let sink = Sink::of(&slack(&[])).expect("sink");
    let body = String::from_utf8(body(&n, &sink)).expect("utf-8");
    let text = "*keyward* on `acme/corp-pi`:\n\
                Revoked 2 enrolments:\n\
                • totp TOTP1 of dave (Employee dave): EmployeeOffboarded\n\
                • totp TOTP2 of dave (Employee dave): EmployeeOffboarded — already gone\n\
                1 revocation failed:\n\
                • totp WAN3 of dave (Employee dave): EmployeeOffboarded — privacyIDEA answered 500\n\
                1 revocation took longer than the SLA of 1h:\n\
                • EmployeeOffboarded: 1h 2m 3s";
    assert_eq!(body, serde_json::json!({ "text": text }).to_string());
    assert_eq!(n.content.events, [NotificationEvent::Revoked, NotificationEvent::Failed, NotificationEvent::SlaBreach]);
    assert_eq!(n.keys, ["failed/dave/WAN3"], "the failure is remembered as told; revocations happen once anyway");
    assert_eq!((sink.name(), sink.content_type()), ("slack", "application/json"));
}

#[test]
fn a_webhook_gets_a_cloud_event_whose_id_is_the_hash_of_its_data() {
    let hook = target(serde_json::json!({"name": "siem", "webhook": {
        "urlSecretRef": {"name": "hooks", "key": "url"}, "hmacSecretRef": {"name": "hooks", "key": "hmac"}}}));
    let n = build(&hook, &dave(), HOUR, time(), &never_told).expect("a notification");
    let sink = Sink::of(&hook).expect("sink");
    assert_eq!(sink.content_type(), "application/cloudevents+json");
    let event: serde_json::Value = serde_json::from_slice(&body(&n, &sink)).expect("JSON");
    let revoked = |enrolment: &str, detail: Option<&str>| {
        let mut r = serde_json::json!({"user": "dave", "enrolment": enrolment, "kind": "totp",
            "reason": "EmployeeOffboarded", "employee": "dave"});
        if let Some(d) = detail {
            r["detail"] = d.into();
        }
        r
    };
    let expected = serde_json::json!({
        "specversion": "1.0",
        "id": n.id,
        "source": "keyward/acme/corp-pi",
        "type": "dev.keyward.notification",
        "subject": "acme/corp-pi",
        "time": "2026-11-30T12:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "provider": "acme/corp-pi",
            "target": "siem",
            "time": "2026-11-30T12:00:00Z",
            "events": ["Revoked", "Failed", "SlaBreach"],
            "counts": {"revoked": 2, "failed": 1, "blocked": 0, "slaBreaches": 1},
            "revoked": [revoked("TOTP1", None), revoked("TOTP2", Some("already gone"))],
            "failed": [revoked("WAN3", Some("privacyIDEA answered 500"))],
            "slaBreaches": [{"reason": "EmployeeOffboarded", "latencySeconds": 3723.4, "slaSeconds": 3600.0}],
        },
    });
    assert_eq!(event, expected);
    // The id, computed here from the content's own JSON with sha2 directly.
    use sha2::Digest;
    let content_json = serde_json::to_vec(&n.content).expect("JSON");
    assert_eq!(n.id, hex::encode(sha2::Sha256::digest(&content_json)));
    let data_again: Content = serde_json::from_value(event["data"].clone()).expect("content");
    assert_eq!(data_again, n.content, "the data is the content, so a receiver can recompute the id");
}

#[test]
fn ids_are_stable_for_the_same_notification_and_differ_between_notifications() {
    let once = build(&slack(&[]), &dave(), HOUR, time(), &never_told).expect("once");
    let again = build(&slack(&[]), &dave(), HOUR, time(), &never_told).expect("again");
    assert_eq!(once.id, again.id, "a resend is recognisable");
    let later = build(&slack(&[]), &dave(), HOUR, time() + chrono::Duration::seconds(1), &never_told).expect("later");
    assert_ne!(once.id, later.id, "another sweep");
    let mut other = slack(&[]);
    other.name = "ops".into();
    let elsewhere = build(&other, &dave(), HOUR, time(), &never_told).expect("other target");
    assert_ne!(once.id, elsewhere.id, "another target");
    assert_eq!(once.id.len(), 64);
}

#[test]
fn the_signature_is_hmac_sha256_over_the_exact_body() {
    // RFC 4231, test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?").expect("sign"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let body = br#"{"specversion":"1.0"}"#;
    let header = signature(b"k3y", body).expect("sign");
    let mac = hex::decode(header.strip_prefix("sha256=").expect("prefix")).expect("hex");
    use hmac::Mac;
    let verify = |bytes: &[u8]| {
        let mut check = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k3y").expect("key");
        check.update(bytes);
        check.verify_slice(&mac).is_ok()
    };
    assert!(verify(body));
    assert!(!verify(br#"{"specversion":"1.0" }"#), "one byte more is another signature");
}

#[test]
fn a_held_plan_is_told_once_without_the_budget_already_used() {
    let offboarded = |user: &str| revoke(user, "T", Reason::EmployeeOffboarded, Some(user));
    let hold = |used| Hold::RevocationBudgetExceeded { revocations: 2, limit: 1, used, window: "1h".into() };
    let held = |used| {
        report(
            vec![(offboarded("erin"), ActionResult::Blocked), (offboarded("finn"), ActionResult::Blocked)],
            Some(hold(used)),
            vec![],
        )
    };
    let n = build(&slack(&[]), &held(0), HOUR, time(), &never_told).expect("a notification");
    let plan = n.content.blocked.clone().expect("the held plan");
    assert_eq!(plan.why, "2 revocations exceed the budget of 1 per 1h");
    assert_eq!((plan.digest.as_str(), plan.revocations), ("511234d4202f795c", 2));
    assert_eq!(n.content.events, [NotificationEvent::Blocked]);
    assert_eq!(n.keys, ["blocked/511234d4202f795c"]);
    let text = String::from_utf8(slack_body(&n.content)).expect("utf-8");
    assert!(text.contains("Plan `511234d4202f795c` holds 2 revocations for approval: 2 revocations exceed the budget of 1 per 1h. Approve it with a RevocationApproval whose spec.digest is 511234d4202f795c."), "{text}");
    // The next sweeps hold the same plan (with more of the window used): nothing new to tell.
    let told = |key: &str| key == "blocked/511234d4202f795c";
    assert_eq!(build(&slack(&[]), &held(1), HOUR, time(), &told), None);
    let first = n.content.clone();
    let again = build(&slack(&[]), &held(1), HOUR, time(), &never_told).expect("not told yet");
    assert_eq!(again.content, first, "what changes in the window is not part of the plan");
}

#[test]
fn a_failure_told_before_is_not_told_again_but_what_is_new_is() {
    let told = |key: &str| key == "failed/dave/WAN3";
    let n = build(&slack(&[]), &dave(), HOUR, time(), &told).expect("the revocations are new");
    assert_eq!(n.content.counts.failed, 0);
    assert!(n.content.failed.is_empty());
    assert!(n.keys.is_empty());
    let failing = report(
        vec![(revoke("dave", "WAN3", Reason::EmployeeOffboarded, None), ActionResult::Failed("500".into()))],
        None,
        vec![],
    );
    assert_eq!(build(&slack(&[]), &failing, HOUR, time(), &told), None);
}

#[test]
fn a_target_gets_only_the_events_it_asked_for() {
    let only_failures = build(&slack(&["Failed"]), &dave(), HOUR, time(), &never_told).expect("the failure");
    assert_eq!(only_failures.content.events, [NotificationEvent::Failed]);
    assert!(only_failures.content.revoked.is_empty() && only_failures.content.sla_breaches.is_empty());
    assert_eq!(only_failures.content.counts, Counts { failed: 1, ..Counts::default() });
    assert_eq!(build(&slack(&["Blocked"]), &dave(), HOUR, time(), &never_told), None);
    let slow = build(&slack(&["SlaBreach"]), &dave(), Duration::from_secs(7200), time(), &never_told);
    assert_eq!(slow, None, "within a 2h SLA");
}

#[test]
fn a_sweep_that_changed_nothing_tells_nothing() {
    let planned = report(
        vec![(revoke("dave", "T1", Reason::EmployeeOffboarded, None), ActionResult::Planned)],
        Some(Hold::EmptyDeclaredState { revocations: 1 }),
        vec![],
    );
    assert_eq!(build(&slack(&[]), &planned, HOUR, time(), &never_told), None, "Observe mode: planned only");
    assert_eq!(build(&slack(&[]), &report(vec![], None, vec![]), HOUR, time(), &never_told), None);
}

#[test]
fn long_lists_are_cut_with_complete_counts_and_markup_is_escaped() {
    let many: Vec<(Action, ActionResult)> = (0..MAX_LISTED + 10)
        .map(|i| (revoke(&format!("u{i:03}"), "T", Reason::UndeclaredUser, None), ActionResult::Revoked))
        .chain([(revoke("<!channel> & co", "T", Reason::UndeclaredUser, None), ActionResult::Revoked)])
        .collect();
    let n = build(&slack(&[]), &report(many, None, vec![]), HOUR, time(), &never_told).expect("notification");
    assert_eq!((n.content.counts.revoked, n.content.revoked.len()), (MAX_LISTED + 11, MAX_LISTED));
    let text = serde_json::from_slice::<serde_json::Value>(&slack_body(&n.content)).expect("JSON")["text"]
        .as_str()
        .expect("text")
        .to_string();
    assert!(text.contains("Revoked 61 enrolments:"), "{text}");
    assert!(text.ends_with("• … and 11 more"), "{text}");
    assert_eq!(escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
}

#[test]
fn a_target_is_a_slack_or_a_webhook_sink() {
    let hook = target(serde_json::json!({"name": "siem", "webhook": {"urlSecretRef": {"name": "h", "key": "url"}}}));
    let sink = Sink::of(&hook).expect("sink");
    assert_eq!(sink, Sink::Webhook { url: SecretKeyRef { name: "h".into(), key: "url".into() }, hmac: None });
    assert_eq!(sink.name(), "webhook");
    let neither = target(serde_json::json!({"name": "none"}));
    assert_eq!(Sink::of(&neither), None);
    let spooled = serde_json::to_value(&sink).expect("JSON");
    assert_eq!(spooled, serde_json::json!({"sink": "webhook", "url": {"name": "h", "key": "url"}}));
}

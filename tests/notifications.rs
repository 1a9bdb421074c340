//! Notifications (`spec.notifications`) against local HTTP receivers that can be down
//! (connection refused), failing (503), refusing one notification for good (404) or up;
//! across a restart of the notifier; with every delivery attempt in the audit trail.

#[path = "support/shown.rs"]
mod shown;

use hmac::Mac;
use keyward::audit::{AuditRecord, Event, Memory, Outcome};
use keyward::crd::{FactorKind, MfaProvider};
use keyward::engine::plan::{Action, ActionKind, Hold, Plan, Reason};
use keyward::notify::delivery::{ID_HEADER, SecretSource};
use keyward::notify::{Notifier, Settings};
use keyward::retry::Exponential;
use keyward::sweep::{ActionReport, ActionResult, SweepReport};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

const HOUR: Duration = Duration::from_secs(3600);
/// The part of the webhook URLs that is a credential: it must appear nowhere but in the
/// request line.
/// The secret part of the Slack and webhook URLs: a canary (tests/support/shown.rs).
const URL_TOKEN: &str = "kwCANARY-slack-url-token";

/// One request as the receiver saw it: the head, lower-cased, and the exact body.
#[derive(Clone, Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_lowercase());
        self.head.lines().find_map(|l| l.strip_prefix(&prefix)).map(str::trim)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What a receiver saw, and how it answers.
#[derive(Default)]
struct Receiver {
    accepted: Vec<Request>,
    refused: usize,
    /// Answer 503 to everything.
    failing: bool,
    /// Answer 404 to every request whose body holds this text.
    refuse_for_good: Option<String>,
}

/// A receiver on `addr` until the returned task is aborted.
async fn receive(addr: SocketAddr, state: Arc<Mutex<Receiver>>) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.expect("bind the receiver");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else { return };
                let status = {
                    let mut state = state.lock().expect("state");
                    let body = String::from_utf8_lossy(&request.body).into_owned();
                    if state.failing {
                        state.refused += 1;
                        "503 Service Unavailable"
                    } else if state.refuse_for_good.as_ref().is_some_and(|text| body.contains(text.as_str())) {
                        state.refused += 1;
                        "404 Not Found"
                    } else {
                        state.accepted.push(request);
                        "200 OK"
                    }
                };
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    })
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < end + length {
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Request { head, body: buf[end..end + length].to_vec() })
}

/// A port nothing listens on (yet).
async fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr")
}

/// Secret keys by (namespace, name, key).
struct Secrets(HashMap<(String, String, String), String>);

impl SecretSource for Secrets {
    fn value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        self.0.get(&(namespace.to_string(), name.to_string(), key.to_string())).cloned()
    }
}

/// The Secret `acme/hooks`: a Slack URL, a webhook URL and an HMAC key.
fn secrets(slack: SocketAddr, webhook: SocketAddr) -> Arc<Secrets> {
    let entry = |key: &str, value: String| (("acme".to_string(), "hooks".to_string(), key.to_string()), value);
    Arc::new(Secrets(HashMap::from([
        entry("slack", format!("http://{slack}/services/{URL_TOKEN}")),
        entry("webhook", format!("http://{webhook}/hooks/{URL_TOKEN}\n")),
        entry("hmac", shown::HMAC_KEY.to_string()),
    ])))
}

fn provider(targets: serde_json::Value) -> MfaProvider {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "keyward.dev/v1alpha1",
        "kind": "MfaProvider",
        "metadata": {"name": "corp-pi", "namespace": "acme"},
        "spec": {
            "privacyidea": {"url": "https://pi.acme.example", "realm": "corp", "credentials": {"secretRef": {"name": "pi-admin"}}},
            "notifications": targets,
        },
    }))
    .expect("provider")
}

fn slack_target() -> serde_json::Value {
    serde_json::json!({"name": "security-slack", "slack": {"urlSecretRef": {"name": "hooks", "key": "slack"}}})
}

fn webhook_target() -> serde_json::Value {
    serde_json::json!({"name": "siem", "webhook": {
        "urlSecretRef": {"name": "hooks", "key": "webhook"},
        "hmacSecretRef": {"name": "hooks", "key": "hmac"}}})
}

fn revoke(user: &str, enrolment: &str) -> Action {
    Action {
        action: ActionKind::Revoke,
        user: user.into(),
        enrolment: enrolment.into(),
        kind: FactorKind::new("totp"),
        also: vec![],
        reason: Reason::EmployeeOffboarded,
        employee: Some(user.into()),
        grants: vec!["sre-otp".into()],
    }
}

fn report(results: Vec<(Action, ActionResult)>, hold: Option<Hold>, latencies: Vec<(Reason, f64)>) -> SweepReport {
    SweepReport {
        plan: Plan {
            provider: "acme/corp-pi".into(),
            mode: keyward::crd::mfa_provider::Mode::Enforce,
            actions: results.iter().map(|(a, _)| a.clone()).collect(),
            digest: "511234d4202f795c".into(),
            hold,
            approved: false,
            approval: None,
            approval_object: None,
            error: None,
            conflicts: vec![],
            employees: vec![],
            managed_users: 10,
            managed_enrolments: 20,
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

/// One leaver's sweep: `user`'s TOTP revoked.
fn revoked(user: &str) -> SweepReport {
    report(vec![(revoke(user, &format!("TOTP-{user}")), ActionResult::Revoked)], None, vec![])
}

/// A notifier on `spool` that retries quickly, recording in `audit`, until `shutdown`.
fn notifier(spool: &Path, audit: &Arc<Memory>, secrets: Arc<Secrets>, shutdown: watch::Receiver<bool>) -> Notifier {
    let settings = Settings {
        spool: spool.to_path_buf(),
        audit: audit.clone(),
        secrets,
        backoff: Exponential { base: Duration::from_millis(20), cap: Duration::from_millis(100) },
        backlog: Default::default(),
        failures: Default::default(),
    };
    Notifier::start(settings, shutdown).expect("start the notifier")
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The notification records of the trail.
fn deliveries(audit: &Memory) -> Vec<AuditRecord> {
    audit.records().into_iter().filter(|r| r.event == Event::Notification).collect()
}

fn with_outcome(audit: &Memory, outcome: Outcome) -> Vec<AuditRecord> {
    deliveries(audit).into_iter().filter(|r| r.outcome == outcome).collect()
}

fn accepted(state: &Mutex<Receiver>) -> Vec<Request> {
    state.lock().expect("state").accepted.clone()
}

/// Every id the receiver got, with the distinct bodies it came with: one each, or a resend
/// was another notification under the same id.
fn bodies_by_id(requests: &[Request]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_id: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for r in requests {
        let id = r.header(ID_HEADER).expect("an id header").to_string();
        let bodies = by_id.entry(id).or_default();
        if !bodies.contains(&r.body) {
            bodies.push(r.body.clone());
        }
    }
    by_id
}

fn verify_signature(key: &[u8], request: &Request) -> bool {
    let header = request.header("x-keyward-signature").unwrap_or_default();
    let Some(mac) = header.strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()) else { return false };
    let mut check = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
    check.update(&request.body);
    check.verify_slice(&mac).is_ok()
}

#[tokio::test]
async fn slack_and_webhook_targets_get_their_messages_signed_and_each_delivery_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (slack_addr, webhook_addr) = (free_addr().await, free_addr().await);
    let (slack, webhook) = (Arc::new(Mutex::new(Receiver::default())), Arc::new(Mutex::new(Receiver::default())));
    let _servers = (receive(slack_addr, slack.clone()).await, receive(webhook_addr, webhook.clone()).await);
    let audit = Arc::new(Memory::default());
    let (_stop, shutdown) = watch::channel(false);
    let notifier = notifier(dir.path(), &audit, secrets(slack_addr, webhook_addr), shutdown);
    let provider = provider(serde_json::json!([slack_target(), webhook_target()]));

    let sweep = report(
        vec![
            (revoke("dave", "TOTP1"), ActionResult::Revoked),
            (revoke("dave", "WAN2"), ActionResult::Failed("privacyIDEA answered 500".into())),
        ],
        None,
        vec![(Reason::EmployeeOffboarded, 4000.0)],
    );
    notifier.notify(&provider, &sweep, HOUR).await;
    eventually("a message at each receiver", || accepted(&slack).len() == 1 && accepted(&webhook).len() == 1).await;

    let message = &accepted(&slack)[0];
    assert!(message.head.starts_with(&format!("post /services/{}", URL_TOKEN.to_lowercase())), "{}", message.head);
    assert_eq!(message.header("content-type"), Some("application/json"));
    assert_eq!(message.header("x-keyward-signature"), None, "a Slack target is not signed");
    let text = message.json()["text"].as_str().expect("text").to_string();
    assert_eq!(message.json().as_object().expect("object").len(), 1, "only `text`");
    for part in [
        "*keyward* on `acme/corp-pi`:",
        "Revoked 1 enrolment:\n• totp TOTP1 of dave (Employee dave): EmployeeOffboarded",
        "1 revocation failed:\n• totp WAN2 of dave (Employee dave): EmployeeOffboarded — privacyIDEA answered 500",
        "1 revocation took longer than the SLA of 1h:\n• EmployeeOffboarded: 1h 6m 40s",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }

    let event = &accepted(&webhook)[0];
    assert_eq!(event.header("content-type"), Some("application/cloudevents+json"));
    assert!(verify_signature(shown::HMAC_KEY.as_bytes(), event), "HMAC-SHA256 of the exact body: {}", event.head);
    assert!(!verify_signature(b"another key", event));
    let json = event.json();
    assert_eq!(event.header(ID_HEADER), json["id"].as_str(), "the header carries the CloudEvent id");
    assert_eq!((json["specversion"].as_str(), json["type"].as_str()), (Some("1.0"), Some("dev.keyward.notification")));
    assert_eq!(json["data"]["target"], "siem");
    assert_eq!(json["data"]["revoked"][0]["enrolment"], "TOTP1");
    assert_eq!(json["data"]["failed"][0]["detail"], "privacyIDEA answered 500");
    assert_eq!(json["data"]["counts"]["slaBreaches"], 1);

    // Each delivery is an audit record naming the notification, its target and the answer.
    eventually("two delivery records", || with_outcome(&audit, Outcome::Delivered).len() == 2).await;
    let records = deliveries(&audit);
    assert_eq!(records.len(), 2, "no failed attempt: {records:#?}");
    let by_target: HashMap<String, AuditRecord> =
        records.into_iter().map(|r| (r.notification.clone().expect("notification").target, r)).collect();
    let slack_record = by_target["security-slack"].notification.clone().expect("notification");
    let webhook_record = by_target["siem"].notification.clone().expect("notification");
    assert_eq!(Some(webhook_record.id.as_str()), json["id"].as_str());
    assert_eq!(Some(slack_record.id.as_str()), message.header(ID_HEADER));
    assert_ne!(slack_record.id, webhook_record.id, "one notification per target");
    assert_eq!((slack_record.sink.as_str(), webhook_record.sink.as_str()), ("slack", "webhook"));
    assert_eq!(slack_record.events, ["Revoked", "Failed", "SlaBreach"]);
    assert_eq!((slack_record.attempt, slack_record.status), (1, Some(200)));
    assert_eq!(by_target["siem"].provider, "acme/corp-pi");

    // The next sweep finds the same failure: told already, so nothing is sent.
    let again =
        report(vec![(revoke("dave", "WAN2"), ActionResult::Failed("privacyIDEA answered 500".into()))], None, vec![]);
    notifier.notify(&provider, &again, HOUR).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((accepted(&slack).len(), accepted(&webhook).len()), (1, 1));
}

#[tokio::test]
async fn a_receiver_down_then_failing_then_up_gets_every_notification_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr().await;
    let audit = Arc::new(Memory::default());
    let (_stop, shutdown) = watch::channel(false);
    let notifier = notifier(dir.path(), &audit, secrets(addr, addr), shutdown);
    let provider = provider(serde_json::json!([webhook_target()]));
    let leavers = ["ann", "ben", "cat", "dan", "eve"];

    // Down: nothing listens. The sweep does not wait for the receiver.
    for user in &leavers[..3] {
        tokio::time::timeout(Duration::from_secs(5), notifier.notify(&provider, &revoked(user), HOUR))
            .await
            .expect("a sweep never waits for a receiver");
    }
    eventually("failed attempts while down", || with_outcome(&audit, Outcome::Failed).len() >= 2).await;

    // Failing: 503 for a while.
    let state = Arc::new(Mutex::new(Receiver { failing: true, ..Receiver::default() }));
    let _server = receive(addr, state.clone()).await;
    eventually("503s", || state.lock().expect("state").refused >= 3).await;
    for user in &leavers[3..] {
        notifier.notify(&provider, &revoked(user), HOUR).await;
    }

    // Up.
    state.lock().expect("state").failing = false;
    eventually("five notifications", || accepted(&state).len() >= 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let requests = accepted(&state);
    let users: Vec<String> =
        requests.iter().map(|r| r.json()["data"]["revoked"][0]["user"].as_str().expect("user").to_string()).collect();
    assert_eq!(users, leavers, "every notification, once, in the order of the sweeps");
    let by_id = bodies_by_id(&requests);
    assert_eq!(by_id.len(), 5, "five ids");
    assert!(by_id.values().all(|bodies| bodies.len() == 1), "no id carried two notifications");
    assert!(requests.iter().all(|r| verify_signature(shown::HMAC_KEY.as_bytes(), r)));

    // The trail: each delivered once, after failed attempts that say why and never the URL.
    let delivered: Vec<String> = with_outcome(&audit, Outcome::Delivered)
        .into_iter()
        .map(|r| r.notification.expect("notification").id)
        .collect();
    let received: Vec<String> = requests.iter().map(|r| r.header(ID_HEADER).expect("id").to_string()).collect();
    assert_eq!(delivered, received, "one delivery record per notification received");
    let failed = with_outcome(&audit, Outcome::Failed);
    let details: Vec<String> = failed.iter().map(|r| r.detail.clone().unwrap_or_default()).collect();
    assert!(details.iter().any(|d| d.contains("send the notification")), "{details:#?}");
    assert!(details.iter().any(|d| d.contains("503")), "{details:#?}");
    let first = &failed[0].notification.clone().expect("notification");
    assert_eq!(first.attempt, 1);
    assert!(failed.iter().any(|r| r.notification.as_ref().is_some_and(|n| n.attempt > 1 && n.id == first.id)));
    let trail = serde_json::to_string(&audit.records()).expect("JSON");
    shown::record("audit", &trail);
    assert!(!trail.to_lowercase().contains(&URL_TOKEN.to_lowercase()), "a webhook URL is a credential");
}

#[tokio::test]
async fn a_restart_sends_what_the_last_process_spooled_and_a_held_plan_is_told_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr().await;
    let provider = provider(serde_json::json!([slack_target()]));
    let hold = Hold::RevocationBudgetExceeded { revocations: 30, limit: 25, used: 0, window: "1h".into() };
    let held = |hold: Hold| {
        let blocked: Vec<(Action, ActionResult)> =
            (0..30).map(|i| (revoke(&format!("u{i:02}"), "T"), ActionResult::Blocked)).collect();
        report(blocked, Some(hold), vec![])
    };

    // The first process: the receiver is down; the held plan waits in the spool.
    let first_audit = Arc::new(Memory::default());
    {
        let (stop, shutdown) = watch::channel(false);
        let first = notifier(dir.path(), &first_audit, secrets(addr, addr), shutdown);
        first.notify(&provider, &held(hold.clone()), HOUR).await;
        eventually("a failed attempt", || !with_outcome(&first_audit, Outcome::Failed).is_empty()).await;
        stop.send(true).expect("stop");
        first.stopped().await;
    }
    let spooled = with_outcome(&first_audit, Outcome::Failed)[0].notification.clone().expect("notification").id;

    // The next process finds it and sends it; the plan, still held (with more of the window
    // used), is not told again.
    let state = Arc::new(Mutex::new(Receiver::default()));
    let _server = receive(addr, state.clone()).await;
    let audit = Arc::new(Memory::default());
    let (_stop, shutdown) = watch::channel(false);
    let next = notifier(dir.path(), &audit, secrets(addr, addr), shutdown);
    eventually("the spooled notification", || accepted(&state).len() == 1).await;
    let mut still = hold;
    if let Hold::RevocationBudgetExceeded { used, .. } = &mut still {
        *used = 5;
    }
    next.notify(&provider, &held(still), HOUR).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let requests = accepted(&state);
    assert_eq!(requests.len(), 1, "told once");
    assert_eq!(requests[0].header(ID_HEADER), Some(spooled.as_str()), "the same notification, by its id");
    let text = requests[0].json()["text"].as_str().expect("text").to_string();
    assert!(text.contains("Plan `511234d4202f795c` holds 30 revocations for approval"), "{text}");
    let delivered = with_outcome(&audit, Outcome::Delivered);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].notification.as_ref().map(|n| n.id.as_str()), Some(spooled.as_str()));
}

#[tokio::test]
async fn a_notification_refused_for_good_is_given_up_and_the_next_goes_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr().await;
    // The receiver will never take the notification about ann (a payload it rejects).
    let state = Arc::new(Mutex::new(Receiver { refuse_for_good: Some("TOTP-ann".into()), ..Receiver::default() }));
    let _server = receive(addr, state.clone()).await;
    let audit = Arc::new(Memory::default());
    let (_stop, shutdown) = watch::channel(false);
    let notifier = notifier(dir.path(), &audit, secrets(addr, addr), shutdown);
    let provider = provider(serde_json::json!([webhook_target()]));

    notifier.notify(&provider, &revoked("ann"), HOUR).await;
    notifier.notify(&provider, &revoked("ben"), HOUR).await;
    eventually("ben's notification", || accepted(&state).len() == 1).await;

    let refused = state.lock().expect("state").refused;
    assert_eq!(refused, keyward::notify::delivery::REFUSALS_BEFORE_GIVING_UP as usize);
    let records = deliveries(&audit);
    let outcomes: Vec<(Outcome, u32, Option<u16>)> = records
        .iter()
        .map(|r| r.notification.as_ref().map(|n| (r.outcome, n.attempt, n.status)).expect("notification"))
        .collect();
    let mut expected: Vec<(Outcome, u32, Option<u16>)> = (1..5).map(|a| (Outcome::Failed, a, Some(404))).collect();
    expected.push((Outcome::Undeliverable, 5, Some(404)));
    expected.push((Outcome::Delivered, 1, Some(200)));
    assert_eq!(outcomes, expected);
    assert!(records[4].detail.as_deref().unwrap_or_default().contains("given up after 5 attempts"), "{records:#?}");
    assert_eq!(accepted(&state)[0].json()["data"]["revoked"][0]["user"], "ben");
}

/// A tenant's webhook Secret pointing at the node's metadata service (or any link-local
/// address, or plain http off loopback): nothing is posted, the refusal is recorded once,
/// and the notification given up; the next target still gets its message.
#[tokio::test]
async fn a_webhook_at_a_link_local_or_plain_http_address_is_refused_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr().await;
    let state = Arc::new(Mutex::new(Receiver::default()));
    let _server = receive(addr, state.clone()).await;
    for (url, why) in [
        (format!("http://169.254.169.254/latest/meta-data/{URL_TOKEN}"), "only https"),
        (format!("https://169.254.169.254/latest/meta-data/{URL_TOKEN}"), "link-local"),
        (format!("https://[fe80::1]/{URL_TOKEN}"), "link-local"),
    ] {
        let audit = Arc::new(Memory::default());
        let (_stop, shutdown) = watch::channel(false);
        let entry = |key: &str, value: String| (("acme".to_string(), "hooks".to_string(), key.to_string()), value);
        let secrets = Arc::new(Secrets(HashMap::from([
            entry("slack", format!("http://{addr}/services/{URL_TOKEN}")),
            entry("webhook", url.clone()),
            entry("hmac", shown::HMAC_KEY.to_string()),
        ])));
        let notifier = notifier(dir.path().join(why.replace(' ', "-")).as_path(), &audit, secrets, shutdown);
        let provider = provider(serde_json::json!([webhook_target(), slack_target()]));
        notifier.notify(&provider, &revoked("ann"), HOUR).await;
        eventually("both targets settled", || deliveries(&audit).len() >= 2).await;
        let records = deliveries(&audit);
        let refused: Vec<&AuditRecord> = records.iter().filter(|r| r.outcome == Outcome::Undeliverable).collect();
        assert_eq!(refused.len(), 1, "{url}: {records:#?}");
        let detail = refused[0].detail.clone().unwrap_or_default();
        assert!(detail.contains("refused target") && detail.contains(why), "{url}: {detail}");
        assert!(!detail.contains(URL_TOKEN), "the URL's path is never said: {detail}");
        assert_eq!(with_outcome(&audit, Outcome::Delivered).len(), 1, "{url}: the Slack target still gets it");
    }
}

#[test]
fn the_example_validates_and_configures_both_kinds_of_target() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notifications.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["validate", "-f"])
        .arg(&path)
        .output()
        .expect("run keyward validate");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    let text = std::fs::read_to_string(&path).expect("example");
    let provider: MfaProvider = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .find(|p: &MfaProvider| p.spec.privacyidea.is_some())
        .expect("the MfaProvider");
    let sinks: Vec<&str> =
        provider.spec.notifications.iter().filter_map(keyward::notify::message::Sink::of).map(|s| s.name()).collect();
    assert_eq!(sinks, ["slack", "webhook"]);
}

/// A change to a setting that can stop revocations is told to every target that
/// wants `SettingsChanged` (all of them by default), field by field, and audited as delivered.
#[tokio::test]
async fn a_change_to_what_can_stop_revocations_is_told_to_every_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (slack_addr, webhook_addr) = (free_addr().await, free_addr().await);
    let (slack, webhook) = (Arc::new(Mutex::new(Receiver::default())), Arc::new(Mutex::new(Receiver::default())));
    let _servers = (receive(slack_addr, slack.clone()).await, receive(webhook_addr, webhook.clone()).await);
    let audit = Arc::new(Memory::default());
    let (_stop, shutdown) = watch::channel(false);
    let notifier = notifier(dir.path(), &audit, secrets(slack_addr, webhook_addr), shutdown);
    let corp_pi = provider(serde_json::json!([slack_target(), webhook_target()]));
    let lines = vec!["spec.suspend: false → true".to_string(), "spec.protectedUsers: added erin".to_string()];
    notifier.notify_settings(&corp_pi, &lines).await;
    eventually("a message at each receiver", || accepted(&slack).len() == 1 && accepted(&webhook).len() == 1).await;
    let text = accepted(&slack)[0].json()["text"].as_str().expect("text").to_string();
    assert!(
        text.contains("Settings that can stop revocations changed:\n• spec.suspend: false → true\n• spec.protectedUsers: added erin"),
        "{text}"
    );
    let json = accepted(&webhook)[0].json();
    assert_eq!(json["data"]["settingsChanged"], serde_json::json!(lines));
    assert_eq!(json["data"]["events"], serde_json::json!(["SettingsChanged"]));
    eventually("two delivery records", || with_outcome(&audit, Outcome::Delivered).len() == 2).await;

    // A target that asked only for revocations is not told.
    let mut only_revoked = webhook_target();
    only_revoked["events"] = serde_json::json!(["Revoked"]);
    notifier.notify_settings(&provider(serde_json::json!([only_revoked])), &lines).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(accepted(&webhook).len(), 1);
}

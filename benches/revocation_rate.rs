//! Mass revocation under `policy.maxRequestsPerSecond`: `cargo bench --bench
//! revocation_rate`.
//!
//! 1,000 leavers with one token each at a privacyIDEA-shaped HTTP mock (login, realm check,
//! paged token listing, `DELETE /token/<serial>`), over budget and let through by an approval
//! of the plan's digest, revoked by `keyward::sweep` with `maxRequestsPerSecond: 20`. The mock
//! stamps every request as it arrives. Reports the achieved rate of the deletes (first to
//! last) against the cap, and the most requests of any kind that arrived within any one
//! second (a sliding window over the arrival times): the goal is at least 95 % of the cap,
//! never above it. Prints one `key=value` line for scripts/bench.sh.
//! (`KEYWARD_BENCH_REVOCATIONS` and `KEYWARD_BENCH_RPS` change the size and the cap.)

use keyward::audit::Memory;
use keyward::crd::mfa_provider::{Credentials, PrivacyIdeaSpec, SecretRef, UserMapping};
use keyward::crd::*;
use keyward::engine::{Approval, ApprovalOffer};
use keyward::sweep::{Declared, Execution, Guard, sweep, sweep_guarded};
use kube::api::ObjectMeta;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers with `response` and notes when each request arrived.
struct Stamped {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    response: ResponseTemplate,
}

impl Respond for Stamped {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().expect("arrivals").push(Instant::now());
        self.response.clone()
    }
}

fn ok(value: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"result": {"status": true, "value": value}}))
}

/// Serves the realm's tokens page by page (`page`, `pagesize`), as privacyIDEA does.
struct TokenPages {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    users: usize,
}

impl Respond for TokenPages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.arrivals.lock().expect("arrivals").push(Instant::now());
        let query: std::collections::HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let size: usize = query.get("pagesize").and_then(|p| p.parse().ok()).unwrap_or(15);
        let tokens: Vec<serde_json::Value> = ((page - 1) * size..(page * size).min(self.users))
            .map(|i| {
                json!({"serial": format!("TOTP{i:05}"), "tokentype": "totp", "username": format!("u{i:05}"),
                       "user_id": format!("{i}"), "user_realm": "corp", "resolver": "corp-users", "active": true,
                       "revoked": false, "locked": false, "realms": ["corp"]})
            })
            .collect();
        let next = (page * size < self.users).then_some(page + 1);
        ok(json!({"tokens": tokens, "count": self.users, "next": next, "prev": null}))
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some("acme".into()), ..Default::default() }
}

fn declared(url: &str, leavers: usize, rps: u32) -> (MfaProvider, Vec<Employee>, Vec<AccessGrant>) {
    let mut provider = MfaProvider::new(
        "corp-pi",
        MfaProviderSpec {
            privacyidea: Some(PrivacyIdeaSpec {
                url: url.into(),
                realm: "corp".into(),
                credentials: Credentials {
                    secret_ref: SecretRef { name: "pi".into(), username_key: None, password_key: None },
                },
                timeout: None,
            }),
            user_mapping: UserMapping::Name,
            ..serde_json::from_value(json!({})).expect("defaults")
        },
    );
    provider.metadata = meta("corp-pi");
    provider.spec.policy.max_requests_per_second = Some(rps);
    let employees = (0..leavers)
        .map(|i| {
            let name = format!("u{i:05}");
            let spec = json!({"email": format!("{name}@acme.example"), "roles": ["staff"], "state": "Offboarded"});
            let mut e = Employee::new(&name, serde_json::from_value(spec).expect("spec"));
            e.metadata = meta(&name);
            e
        })
        .collect();
    let spec = json!({"provider": "corp-pi", "subjects": {"roles": ["staff"]}, "factors": ["totp"]});
    let mut grant = AccessGrant::new("staff", serde_json::from_value(spec).expect("spec"));
    grant.metadata = meta("staff");
    (provider, employees, vec![grant])
}

/// The approval a person gave for the held plan.
struct Approved(String);

impl Guard for Approved {
    fn approvals(&self) -> Vec<ApprovalOffer> {
        let approval = Approval {
            digest: self.0.clone(),
            manager: Some("bench".into()),
            time: None,
            object: Some("mass-offboarding".into()),
        };
        vec![ApprovalOffer { approval, object: Some("mass-offboarding".into()) }]
    }
}

/// The most arrivals within any one second.
fn busiest_second(arrivals: &[Instant]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for end in 0..arrivals.len() {
        while arrivals[end] - arrivals[start] >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let leavers = env("KEYWARD_BENCH_REVOCATIONS", 1000);
    let rps = env("KEYWARD_BENCH_RPS", 20) as u32;
    let server = MockServer::start().await;
    let all = Arc::new(Mutex::new(Vec::new()));
    let deletes = Arc::new(Mutex::new(Vec::new()));
    let stamped = |response| Stamped { arrivals: all.clone(), response };
    Mock::given(method("POST"))
        .and(path("/auth"))
        .respond_with(stamped(ok(json!({"token": "jwt"}))))
        .mount(&server)
        .await;
    Mock::given(path("/realm/")).respond_with(stamped(ok(json!({"corp": {}})))).mount(&server).await;
    Mock::given(method("GET"))
        .and(path("/token/"))
        .respond_with(TokenPages { arrivals: all.clone(), users: leavers })
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/token/TOTP\d+$"))
        .respond_with(Stamped { arrivals: deletes.clone(), response: ok(json!(1)) })
        .mount(&server)
        .await;

    let (provider, employees, grants) = declared(&server.uri(), leavers, rps);
    let secret = |_: &str, key: &str| Some(if key == "username" { "admin" } else { "pw" }.to_string());
    let connected = keyward::providers::connect(&provider, &secret).expect("client");
    let declared = Declared { provider: &provider, employees: &employees, grants: &grants };
    let now = chrono::Utc::now();
    let audit = Memory::default();
    // The plan as a person reviews it (`keyward plan`): held by the default budget.
    let held = sweep(&connected, &declared, now, Execution::PlanOnly, &audit).await;
    assert!(held.plan.hold.is_some(), "1,000 revocations are over the default budget");
    assert_eq!(held.plan.revocation_count(), leavers);

    let started = Instant::now();
    let report = sweep_guarded(&connected, &declared, now, Execution::Apply, &audit, &Approved(held.plan.digest)).await;
    let took = started.elapsed();
    assert!(report.plan.approved, "the approval of its digest lets the plan through");
    assert!(
        !report.failed(),
        "{:?}",
        report.results.iter().find(|r| !matches!(r.result, keyward::sweep::ActionResult::Revoked))
    );
    let deletes = deletes.lock().expect("deletes").clone();
    assert_eq!(deletes.len(), leavers, "every token deleted once");
    let mut every = all.lock().expect("arrivals").clone();
    every.extend(deletes.iter().copied());
    every.sort();
    let span = deletes[deletes.len() - 1] - deletes[0];
    let achieved = (deletes.len() - 1) as f64 / span.as_secs_f64();
    println!(
        "rate revocations={leavers} cap_rps={rps} achieved_rps={achieved:.2} of_cap_pct={:.1} busiest_second={} sweep_s={:.1}",
        achieved / f64::from(rps) * 100.0,
        busiest_second(&every),
        took.as_secs_f64(),
    );
}

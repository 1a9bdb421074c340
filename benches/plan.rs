//! How planning scales with the size of the company: `cargo bench --bench plan`.
//!
//! Prints the time of one plan for growing numbers of Employees (each with two enrolments,
//! one in ten offboarded) and the ratio to the smallest size. On a shared machine absolute
//! times vary; the ratio, measured in the same run, should stay close to the size ratio
//! (planning is linear in people × enrolments, with sorting on top).

use chrono::Utc;
use keyward::crd::mfa_provider::{Credentials, PrivacyIdeaSpec, SecretRef, UserMapping};
use keyward::crd::*;
use keyward::engine::{Capabilities, Enrolment, Inventory, PlanInput, ProviderUser, plan};
use kube::api::ObjectMeta;
use std::time::{Duration, Instant};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some("acme".into()), ..Default::default() }
}

fn company(size: usize) -> (MfaProvider, Vec<Employee>, Vec<AccessGrant>, Inventory) {
    let mut provider = MfaProvider::new(
        "corp-pi",
        MfaProviderSpec {
            privacyidea: Some(PrivacyIdeaSpec {
                url: "https://pi.acme.example".into(),
                realm: "corp".into(),
                credentials: Credentials {
                    secret_ref: SecretRef { name: "pi".into(), username_key: None, password_key: None },
                },
                timeout: None,
            }),
            user_mapping: UserMapping::Name,
            ..serde_json::from_value(serde_json::json!({})).expect("defaults")
        },
    );
    provider.metadata = meta("corp-pi");
    provider.spec.policy.budget.max_revocations = u32::MAX / 2;
    let roles = ["sre", "dev", "finance", "support"];
    let employees: Vec<Employee> = (0..size)
        .map(|i| {
            let mut e = Employee::new(
                &format!("e{i}"),
                serde_json::from_value(serde_json::json!({
                    "email": format!("e{i}@acme.example"),
                    "roles": [roles[i % roles.len()]],
                    "state": if i % 10 == 0 { "Offboarded" } else { "Active" },
                }))
                .expect("spec"),
            );
            e.metadata = meta(&format!("e{i}"));
            e
        })
        .collect();
    let grants: Vec<AccessGrant> = roles[..3]
        .iter()
        .map(|role| {
            let mut g = AccessGrant::new(
                role,
                serde_json::from_value(serde_json::json!({
                    "provider": "corp-pi", "subjects": {"roles": [role]}, "factors": ["totp", "webauthn"],
                }))
                .expect("spec"),
            );
            g.metadata = meta(role);
            g
        })
        .collect();
    let inventory = Inventory {
        users: (0..size)
            .map(|i| ProviderUser {
                name: format!("e{i}"),
                in_directory: true,
                enrolments: vec![
                    Enrolment::new(format!("T{i}"), FactorKind::new("totp"), true),
                    Enrolment::new(format!("H{i}"), FactorKind::new("hotp"), true),
                ],
            })
            .collect(),
    };
    (provider, employees, grants, inventory)
}

fn time_plan(size: usize) -> (Duration, usize) {
    let (provider, employees, grants, inventory) = company(size);
    let capabilities = Capabilities { disable: true, invite: vec![] };
    let now = Utc::now();
    let mut best = Duration::MAX;
    let mut revocations = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let p = plan(&PlanInput {
            provider: &provider,
            employees: &employees,
            grants: &grants,
            inventory: Ok(&inventory),
            capabilities: &capabilities,
            now,
            revoked_in_window: 0,
        });
        best = best.min(start.elapsed());
        revocations = p.revocation_count();
    }
    (best, revocations)
}

fn main() {
    let sizes = [1_000usize, 10_000, 50_000];
    let base = time_plan(sizes[0]).0;
    println!("{:>8} {:>12} {:>12} {:>10} {:>10}", "people", "plan (ms)", "revocations", "time ×", "size ×");
    for size in sizes {
        let (t, revocations) = time_plan(size);
        println!(
            "{:>8} {:>12.2} {:>12} {:>10.1} {:>10.1}",
            size,
            t.as_secs_f64() * 1e3,
            revocations,
            t.as_secs_f64() / base.as_secs_f64(),
            size as f64 / sizes[0] as f64
        );
    }
}

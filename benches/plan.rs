//! How planning scales with the size of the company: `cargo bench --bench plan`.
//!
//! Prints the time of one plan for growing numbers of Employees (each with two enrolments,
//! one in ten offboarded) and the ratio to the smallest size. On a shared machine absolute
//! times vary; the ratio, measured in the same run, should stay close to the size ratio
//! (planning is linear in people × enrolments, with sorting on top).
//!
//! Then the issue-11 case: 100,000 Employees and 200 grants (each person in two of 200 roles),
//! with the heap the plan needs, counted by the allocator of this binary: one line of
//! `key=value` pairs for scripts/bench.sh.

use chrono::Utc;
use keyward::crd::mfa_provider::{Credentials, PrivacyIdeaSpec, SecretRef, UserMapping};
use keyward::crd::*;
use keyward::engine::{Capabilities, Enrolment, Inventory, PlanInput, ProviderUser, plan};
use kube::api::ObjectMeta;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the bytes in use and their high-water mark.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            let now = if new_size >= layout.size() {
                IN_USE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + (new_size - layout.size())
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed) - (layout.size() - new_size)
            };
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
                aliases: Vec::new(),
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
            approvals: &[],
        });
        best = best.min(start.elapsed());
        revocations = p.revocation_count();
    }
    (best, revocations)
}

/// 100,000 people in two of 200 roles each; 200 grants, one per role, two kinds each (one
/// in four Required); every person with a TOTP and a WebAuthn enrolment, one in ten offboarded.
fn large_company(people: usize, grants: usize) -> (MfaProvider, Vec<Employee>, Vec<AccessGrant>, Inventory) {
    let (provider, _, _, _) = company(0);
    let kinds = ["totp", "webauthn", "hotp", "sms"];
    let employees: Vec<Employee> = (0..people)
        .map(|i| {
            let mut e = Employee::new(
                &format!("e{i}"),
                serde_json::from_value(serde_json::json!({
                    "email": format!("e{i}@acme.example"),
                    "roles": [format!("r{}", i % grants), format!("r{}", (i * 7 + 3) % grants)],
                    "state": if i % 10 == 0 { "Offboarded" } else { "Active" },
                }))
                .expect("spec"),
            );
            e.metadata = meta(&format!("e{i}"));
            e
        })
        .collect();
    let grant_list: Vec<AccessGrant> = (0..grants)
        .map(|g| {
            let mut grant = AccessGrant::new(
                &format!("g{g}"),
                serde_json::from_value(serde_json::json!({
                    "provider": "corp-pi",
                    "subjects": {"roles": [format!("r{g}")]},
                    "factors": [kinds[g % 4], kinds[(g + 1) % 4]],
                    "enrolment": if g % 4 == 0 { "Required" } else { "Allowed" },
                }))
                .expect("spec"),
            );
            grant.metadata = meta(&format!("g{g}"));
            grant
        })
        .collect();
    let inventory = Inventory {
        users: (0..people)
            .map(|i| ProviderUser {
                aliases: Vec::new(),
                name: format!("e{i}"),
                in_directory: true,
                enrolments: vec![
                    Enrolment::new(format!("T{i}"), FactorKind::new("totp"), true),
                    Enrolment::new(format!("W{i}"), FactorKind::new("webauthn"), true),
                ],
            })
            .collect(),
    };
    (provider, employees, grant_list, inventory)
}

fn large(people: usize, grants: usize) {
    let (provider, employees, grant_list, inventory) = large_company(people, grants);
    let capabilities = Capabilities { disable: true, invite: vec![] };
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    let p = plan(&PlanInput {
        provider: &provider,
        employees: &employees,
        grants: &grant_list,
        inventory: Ok(&inventory),
        capabilities: &capabilities,
        now: Utc::now(),
        revoked_in_window: 0,
        approvals: &[],
    });
    let took = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed);
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "plan people={people} grants={grants} plan_s={:.3} plan_peak_heap_mib={:.1} inputs_heap_mib={:.1} total_peak_heap_mib={:.1} revocations={} actions={}",
        took.as_secs_f64(),
        mib(peak - before),
        mib(before),
        mib(peak),
        p.revocation_count(),
        p.actions.len(),
    );
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
    large(100_000, 200);
}

//! Time from `kubectl patch` of an Employee to the revocation at privacyIDEA, through the
//! real operator: `cargo bench --bench operator_latency`.
//!
//! Starts privacyIDEA, a real local kube-apiserver and etcd (`scripts/kube.sh up`) and
//! `keyward run` (as the chart's ServiceAccount). For each company size
//! (`KEYWARD_BENCH_COMPANY`, default `100,1000` Employees), every person holds a TOTP token at
//! privacyIDEA (the others than the 20 seeded in bulk: `pi_users.py seed` writes the users
//! into the realm's SQL user store and enrols a token each), and 20 of them are offboarded one
//! after the other. Reports the median, p99 (with 20 samples: the worst) and best latency, the
//! privacyIDEA requests per offboarding and those of the start-up (its full sweeps, which read
//! the realm's token pages), counted in privacyIDEA's own request log (werkzeug logs one line
//! per request). The revocation time is when the operator's audit
//! record appears (written as soon as privacyIDEA confirmed the delete); every token is
//! checked gone at privacyIDEA at the end. Prints one `key=value` line per size for
//! scripts/bench.sh.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::cluster::{cluster, eventually};
use support::*;

/// People offboarded per size (each holds one TOTP token).
const OFFBOARDED: usize = 20;

/// Requests privacyIDEA has logged so far.
fn pi_requests(log: &PathBuf) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"GET ") || l.contains("\"POST ") || l.contains("\"DELETE ") || l.contains("\"PUT "))
        .count()
}

fn measure(company: usize) {
    let pi = privacyidea();
    let pi_log = PathBuf::from(&pi.env["KEYWARD_PI_HOME"]).join("server.log");
    let realm = format!("latency{company}");
    let ns = format!("bench-latency-{company}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifests, tokens) = staff(pi, &realm, &ns, "p", OFFBOARDED);
    let file = dir.path().join("people.yaml");
    std::fs::write(&file, manifests).expect("write manifests");
    let c = cluster();
    c.kubectl_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    let fillers = company.saturating_sub(OFFBOARDED);
    crowd::employees(&c.kubeconfig, &ns, "filler", 0..fillers);
    pi.users(&["seed", "--realm", &realm, "--prefix", "filler", "--count", &fillers.to_string()]);
    let audit = dir.path().join("audit.jsonl");
    let at_start = pi_requests(&pi_log);
    let lease = format!("keyward-latency-{company}");
    let mut operator = c.operator(&ns, &lease, &audit);
    c.kubectl_ok(&["-n", &ns, "wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=300s"]);
    // Settled: the first sweep's status writes are done before the clock starts.
    std::thread::sleep(Duration::from_secs(5));
    let startup_requests = pi_requests(&pi_log) - at_start;

    let mut latencies = Vec::new();
    let mut requests = Vec::new();
    for token in &tokens {
        let before = pi_requests(&pi_log);
        let start = Instant::now();
        c.kubectl_ok(&[
            "-n",
            &ns,
            "patch",
            "employee",
            &token.user,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"state":"Offboarded"}}"#,
        ]);
        eventually(Duration::from_secs(120), "audit record", || {
            std::fs::read_to_string(&audit).is_ok_and(|a| a.contains(&format!("\"enrolment\":\"{}\"", token.serial)))
        });
        latencies.push(start.elapsed());
        // Whatever else the offboarding makes the operator ask (the sweep's status, a
        // follow-up sweep) comes within a second or two.
        std::thread::sleep(Duration::from_secs(2));
        requests.push(pi_requests(&pi_log) - before);
    }
    let left = pi.tokens(&realm);
    assert!(tokens.iter().all(|t| !left.contains_key(&t.serial)), "every token revoked at privacyIDEA");
    latencies.sort();
    requests.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = latencies.len();
    println!(
        "latency employees={company} offboardings={n} p50_ms={:.0} p99_ms={:.0} best_ms={:.0} pi_requests_per_offboarding_median={} pi_requests_per_offboarding_max={} pi_requests_startup={startup_requests} tokens={company}",
        ms(latencies[n / 2]),
        ms(latencies[(n * 99).div_ceil(100) - 1]),
        ms(latencies[0]),
        requests[n / 2],
        requests[n - 1],
    );
    if company == out_of_band_size() {
        out_of_band(pi, c, &ns, &realm, &lease, &audit, &mut operator);
    }
}

/// The company size at which the out-of-band rows are taken (the first one measured).
fn out_of_band_size() -> usize {
    sizes().first().copied().unwrap_or(100)
}

/// Out-of-band enrolments per measurement, each way.
const OUT_OF_BAND: usize = 3;

/// Time from an enrolment made past keyward (an admin enrols an HOTP token that no grant
/// entitles) to its revocation: with privacyIDEA's audit log followed (the default, every
/// 5 s), and without (`--event-poll-interval 0s`: found by the full resync, here every 30 s
/// instead of the default 10 minutes).
fn out_of_band(
    pi: &PrivacyIdea,
    c: &support::cluster::Cluster,
    ns: &str,
    realm: &str,
    lease: &str,
    audit: &std::path::Path,
    operator: &mut support::cluster::Operator,
) {
    let revoked =
        |serial: &str| std::fs::read_to_string(audit).is_ok_and(|a| a.contains(&format!("\"enrolment\":\"{serial}\"")));
    let timed = |label: &str| {
        let mut took = Vec::new();
        for i in 0..OUT_OF_BAND {
            let token = pi.admin_enrol(realm, &format!("filler{i:05}"), "hotp");
            let start = Instant::now();
            eventually(Duration::from_secs(180), "the out-of-band token revoked", || revoked(&token.serial));
            took.push(start.elapsed());
        }
        took.sort();
        println!(
            "outofband following={label} samples={} median_s={:.1} worst_s={:.1}",
            took.len(),
            took[took.len() / 2].as_secs_f64(),
            took[took.len() - 1].as_secs_f64()
        );
    };
    timed("yes");
    operator.stop();
    c.kubectl_ok(&[
        "-n",
        ns,
        "patch",
        "mfaprovider",
        "corp-pi",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"policy":{"resyncInterval":"30s"}}}"#,
    ]);
    *operator = c.operator_with(ns, lease, audit, None, &["--event-poll-interval", "0s"]);
    c.kubectl_ok(&["-n", ns, "wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=300s"]);
    std::thread::sleep(Duration::from_secs(5));
    timed("no");
}

fn sizes() -> Vec<usize> {
    std::env::var("KEYWARD_BENCH_COMPANY")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn main() {
    for company in sizes() {
        measure(company);
    }
}

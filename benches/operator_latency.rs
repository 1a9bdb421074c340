//! Time from `kubectl patch` of an Employee to the revocation at privacyIDEA, through the
//! real operator: `cargo bench --bench operator_latency`.
//!
//! Starts privacyIDEA, a real local kube-apiserver and etcd (`scripts/kube.sh up`) and
//! `keyward run` (as the chart's ServiceAccount). For each company size
//! (`KEYWARD_BENCH_COMPANY`, default `100,1000` Employees), 20 of the people hold a TOTP token
//! at privacyIDEA and are offboarded one after the other; the others are declared Employees
//! without a privacyIDEA user (creating thousands of privacyIDEA users through its API takes
//! longer than the benchmark). Reports the median, p99 (with 20 samples: the worst) and best
//! latency, and the privacyIDEA requests per offboarding, counted in privacyIDEA's own request
//! log (werkzeug logs one line per request). The revocation time is when the operator's audit
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
    crowd::employees(&c.kubeconfig, &ns, "filler", 0..company.saturating_sub(OFFBOARDED));
    let audit = dir.path().join("audit.jsonl");
    let _operator = c.operator(&ns, &format!("keyward-latency-{company}"), &audit);
    c.kubectl_ok(&["-n", &ns, "wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=300s"]);
    // Settled: the first sweep's status writes are done before the clock starts.
    std::thread::sleep(Duration::from_secs(5));

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
        "latency employees={company} offboardings={n} p50_ms={:.0} p99_ms={:.0} best_ms={:.0} pi_requests_per_offboarding_median={} pi_requests_per_offboarding_max={}",
        ms(latencies[n / 2]),
        ms(latencies[(n * 99).div_ceil(100) - 1]),
        ms(latencies[0]),
        requests[n / 2],
        requests[n - 1],
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::var("KEYWARD_BENCH_COMPANY")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for company in sizes {
        measure(company);
    }
}

//! Time from `kubectl patch` of an Employee to the revocation at privacyIDEA, through the
//! real operator: `cargo bench --bench operator_latency`.
//!
//! Starts privacyIDEA, a real local kube-apiserver and etcd (`scripts/kube.sh up`) and
//! `keyward run` (as the chart's ServiceAccount), offboards 20 people
//! one after the other and reports the median and worst latency. The revocation time is when
//! the operator's audit record appears (written as soon as privacyIDEA confirmed the delete);
//! every token is checked gone at privacyIDEA at the end.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::cluster::{cluster, eventually};
use support::*;

const PEOPLE: usize = 20;

fn main() {
    let pi = privacyidea();
    let realm = "latency";
    let ns = "bench-latency";
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifests, tokens) = staff(pi, realm, ns, "p", PEOPLE);
    let file = dir.path().join("people.yaml");
    std::fs::write(&file, manifests).expect("write manifests");
    let c = cluster();
    c.kubectl_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    let audit = dir.path().join("audit.jsonl");
    let _operator = c.operator(ns, "keyward-latency", &audit);
    c.kubectl_ok(&["-n", ns, "wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=60s"]);

    let mut latencies = Vec::new();
    for token in &tokens {
        let start = Instant::now();
        c.kubectl_ok(&[
            "-n",
            ns,
            "patch",
            "employee",
            &token.user,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"state":"Offboarded"}}"#,
        ]);
        eventually(Duration::from_secs(60), "audit record", || {
            std::fs::read_to_string(&audit).is_ok_and(|a| a.contains(&format!("\"enrolment\":\"{}\"", token.serial)))
        });
        latencies.push(start.elapsed());
    }
    let left = pi.tokens(realm);
    assert!(tokens.iter().all(|t| !left.contains_key(&t.serial)), "every token revoked at privacyIDEA");
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "kubectl patch -> revocation at privacyIDEA, {PEOPLE} offboardings (ms, including kubectl's own ~50-100 ms):"
    );
    println!(
        "  median {:.0}  p90 {:.0}  worst {:.0}  best {:.0}",
        ms(latencies[PEOPLE / 2]),
        ms(latencies[PEOPLE * 9 / 10]),
        ms(latencies[PEOPLE - 1]),
        ms(latencies[0])
    );
}

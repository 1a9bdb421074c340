//! The operator at company size: `cargo bench --bench operator_scale` (scripts/bench.sh runs
//! it and puts its table into docs/performance.md).
//!
//! For each size (`KEYWARD_BENCH_PEOPLE`, default `1000,10000`): a namespace with that many
//! Employees (created as `kubectl apply` would, annotation included), one privacyIDEA
//! MfaProvider on a realm with no users yet and one grant, on a real local kube-apiserver and
//! etcd; then `keyward run` (this build, as the chart's ServiceAccount) is started and watched:
//! resident memory sampled from /proc every 100 ms (steady: 40 s after start, as users
//! measured it; peak: the kernel's high-water mark), time until the first sweep has finished,
//! the status writes it makes at start and for one offboarding, and the time it takes to exit
//! after SIGTERM: once idle, and once at its busiest (a second start, right after its first
//! sweep). Prints one line per size, `key=value` pairs, for scripts/bench.sh.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::cluster::{Operator, cluster, eventually};
use support::*;

/// When users measured the operator's memory.
const STEADY_AFTER: Duration = Duration::from_secs(40);
/// How long every Employee's first status may take before the run is reported unsettled.
const SETTLE_WITHIN: Duration = Duration::from_secs(300);
/// The chart's `terminationGracePeriodSeconds`.
const GRACE: Duration = Duration::from_secs(30);

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find_map(|l| l.strip_prefix(name))?.split_whitespace().next()?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Sweeps the operator has finished, from its /metrics.
fn sweeps(operator: &Operator) -> u64 {
    operator
        .get("/metrics")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("keyward_reconcile_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// SIGTERM, and the seconds until the process has exited (`>N` when it had not after twice the
/// chart's grace period; then it is killed).
fn stop(operator: &mut Operator) -> String {
    operator.terminate();
    let stopping = Instant::now();
    while operator.running() && stopping.elapsed() < GRACE * 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let exit = stopping.elapsed();
    let exited = !operator.running();
    operator.kill();
    if exited { format!("{:.1}", exit.as_secs_f64()) } else { format!(">{:.0}", exit.as_secs_f64()) }
}

/// `RssAnon` and `RssFile` of a process, in KiB.
fn rss_parts(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find_map(|l| l.strip_prefix(name))?.split_whitespace().next()?.parse().ok()
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn measure(people: usize) {
    let pi = privacyidea();
    let c = cluster();
    let ns = format!("scale-{people}");
    let created = Instant::now();
    crowd::declare(c, pi, pi.url(), &format!("scale{people}"), &ns, "c", people);
    eprintln!("{people} Employees created in {:.0?}", created.elapsed());
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");

    let mut operator = c.operator(&ns, "keyward-scale", &audit);
    let pid = operator.pid().expect("running");
    let start = Instant::now();
    let mut first_sweep = None;
    let mut steady = None;
    let mut samples = Vec::new();
    // Every Employee has a status from the first sweep's verdicts (a build that never gets
    // there is reported as such, after SETTLE_WITHIN). Listing 10,000 objects with kubectl is
    // work for the API server too: not too often.
    let settle_poll = Duration::from_secs(1 + people as u64 / 2000);
    let all_have_status = || {
        let out =
            c.kubectl_ok(&["-n", &ns, "get", "employees", "-o", "jsonpath={.items[*].status.providers[*].provider}"]);
        out.split_whitespace().count() == people
    };
    let mut settled = None;
    let mut polled = Instant::now();
    while start.elapsed() < STEADY_AFTER {
        let Some((rss, _)) = memory(pid) else { panic!("keyward run exited:\n{}", operator.log()) };
        samples.push(rss);
        if first_sweep.is_none() && sweeps(&operator) > 0 {
            first_sweep = Some(start.elapsed());
        }
        if first_sweep.is_some() && settled.is_none() && polled.elapsed() >= settle_poll {
            polled = Instant::now();
            settled = all_have_status().then(|| start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some((rss, _)) = memory(pid) {
        steady = Some(rss);
    }
    // Heap and stacks (anonymous) apart from the binary's own pages (file-backed).
    let (anon, file) = rss_parts(pid).unwrap_or_default();
    let first_sweep = first_sweep.unwrap_or_else(|| {
        eventually(Duration::from_secs(300), "the first sweep", || sweeps(&operator) > 0);
        start.elapsed()
    });
    while settled.is_none() && start.elapsed() < SETTLE_WITHIN {
        if all_have_status() {
            settled = Some(start.elapsed());
        } else {
            std::thread::sleep(settle_poll);
        }
    }
    let at_start = crowd::writes(c, &ns);

    // One offboarding: the status writes it causes.
    let sweeps_before = sweeps(&operator);
    c.kubectl_ok(&[
        "-n",
        &ns,
        "patch",
        "employee",
        "c00001",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"state":"Offboarded"}}"#,
    ]);
    eventually(Duration::from_secs(120), "the offboarding's sweep", || sweeps(&operator) > sweeps_before);
    std::thread::sleep(Duration::from_secs(5));
    let after = crowd::writes(c, &ns);
    // The API server rotates its audit log (at 50,000 Employees the start-up alone fills it):
    // a log shorter than before cannot tell the offboarding's writes.
    let rotated = after.len() < at_start.len();
    let change = after.get(at_start.len()..).unwrap_or_default();
    // Before every Employee has its first status, the start-up's own writes would be counted
    // as the offboarding's.
    let counted = |n: usize| if settled.is_some() && !rotated { n.to_string() } else { "n/a".to_string() };
    let (_, peak) = memory(pid).expect("running");

    let exit_idle = stop(&mut operator);
    // SIGTERM again, to a fresh operator at its busiest: its first sweep has just finished and
    // queued a status check of every Employee (where users saw no exit within 30 s).
    let mut busy = c.operator(&ns, "keyward-scale", &audit);
    eventually(Duration::from_secs(300), "the first sweep (second start)", || sweeps(&busy) > 0);
    let exit_busy = stop(&mut busy);

    let steady = steady.map(mib).map_or("n/a".into(), |m| format!("{m:.1}"));
    println!(
        "scale people={people} rss_steady_mib={steady} rss_steady_anon_mib={:.1} rss_steady_file_mib={:.1} rss_peak_mib={:.1} first_sweep_s={:.1} settled_s={} \
         employee_status_writes_at_start={} employee_status_writes_per_offboarding={} other_employee_status_writes_per_offboarding={} \
         exit_after_sigterm_s={} exit_after_sigterm_busy_s={}",
        mib(anon),
        mib(file),
        mib(peak),
        first_sweep.as_secs_f64(),
        settled.map_or("n/a".into(), |s| format!("{:.1}", s.as_secs_f64())),
        crowd::status_writes(&at_start, "employees").len(),
        counted(crowd::status_writes(change, "employees").len()),
        counted(crowd::status_writes(change, "employees").iter().filter(|n| *n != "c00001").count()),
        exit_idle,
        exit_busy,
    );
    let rss_max = samples.iter().max().copied().unwrap_or_default();
    eprintln!("{people}: sampled RSS max {:.1} MiB over {} samples", mib(rss_max), samples.len());
}

fn main() {
    let sizes: Vec<usize> = std::env::var("KEYWARD_BENCH_PEOPLE")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for people in sizes {
        measure(people);
    }
}

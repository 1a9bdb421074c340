//! scripts/bench_table.py, which turns the benchmarks' `key=value` lines into
//! docs/performance.md: the in-Pod rows (benches/pod_scale.rs), and a partial run
//! (`scripts/bench.sh pod_scale`) that replaces its own rows and keeps every other one.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const MARKER: &str = "<!-- Everything below is kept by scripts/bench.sh; the text above is generated. -->";

const PREVIOUS: &str = "# Performance

Measured by `scripts/bench.sh` in one run, started 2026-12-01T02:04:38Z, on a machine; keyward at
b64c364. Release build (`cargo bench`).

| Measure | Goal | This build |
|---|---|---|
| Operator RSS, steady (40 s after start), 1,000 Employees |  | 29.6 MiB |
| Okta (mock) requests per offboarding / per full `scope: All` sweep, 300 users | constant / per user | 2 / 305 |
| In a Pod under the chart's limits: cgroup memory peak, leader / standby, 1,000 Employees | < the limit (640 MiB) | 1.0 MiB / 1.0 MiB |

How each figure is taken: …
";

const POD_LINES: &str = "\
pod people=1000 role=leader peak_mib=61.2 usage_mib=50.1 rss_mib=31.5 cache_mib=18.0 limit_mib=640 limit_hits=0 restarts=0 oomkilled=0 ready_s=9.8 settled_s=40.2
pod people=1000 role=standby peak_mib=48.9 usage_mib=40.0 rss_mib=25.0 cache_mib=15.0 limit_mib=640 limit_hits=0 restarts=1 oomkilled=0 ready_s=9.8 settled_s=40.2
";

fn table(dir: &Path, previous: &str, raw: &str, only: &str) -> String {
    let out = dir.join("performance.md");
    let kept = "## Findings kept by hand\n\n| 10,000 Employees | before | after |\n|---|---|---|\n| RSS | 285.1 MiB | 77.1 MiB |\n";
    std::fs::write(&out, format!("{previous}\n{MARKER}\n\n{kept}")).expect("write previous");
    let raw_path = dir.join("raw");
    std::fs::write(&raw_path, raw).expect("write raw");
    let run = Command::new("python3")
        .arg(repo().join("scripts/bench_table.py"))
        .arg(&raw_path)
        .arg(&out)
        .args(["2 CPUs", "2026-12-08T03:00:00Z", "abc1234", "", only])
        .output()
        .expect("run bench_table.py");
    assert!(run.status.success(), "bench_table.py: {}", String::from_utf8_lossy(&run.stderr));
    std::fs::read_to_string(&out).expect("read table")
}

fn row<'a>(text: &'a str, measure: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("| {measure} |")))
        .unwrap_or_else(|| panic!("no row {measure:?} in\n{text}"))
}

#[test]
fn the_pod_rows_come_from_the_pod_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = table(dir.path(), PREVIOUS, POD_LINES, "");
    assert_eq!(
        row(&text, "In a Pod under the chart's limits: cgroup memory peak, leader / standby, 1,000 Employees"),
        "| In a Pod under the chart's limits: cgroup memory peak, leader / standby, 1,000 Employees | < the limit (640 MiB) | 61.2 MiB / 48.9 MiB |"
    );
    assert!(
        row(&text, "… restarts / OOM kills / times the limit was hit, both replicas, 1,000 Employees")
            .ends_with("| 0 / 0 / 0 | 1 / 0 / 0 |"),
        "the standby's restart is counted"
    );
    assert!(
        row(&text, "… of which resident (RSS) / page cache at the end, leader, 1,000 Employees")
            .contains("31.5 MiB / 18.0 MiB")
    );
    // A full run says what it did not measure, whatever the previous table held.
    assert!(row(&text, "Operator RSS, steady (40 s after start), 1,000 Employees").contains("not measured"));
    assert!(text.contains("## Findings kept by hand"), "the hand-written part is kept");
}

#[test]
fn a_partial_run_replaces_its_rows_and_keeps_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = table(dir.path(), PREVIOUS, POD_LINES, "pod_scale");
    assert!(
        row(&text, "Operator RSS, steady (40 s after start), 1,000 Employees").contains("29.6 MiB"),
        "a row the partial run did not measure keeps its value:\n{text}"
    );
    assert!(
        row(&text, "In a Pod under the chart's limits: cgroup memory peak, leader / standby, 1,000 Employees")
            .contains("61.2 MiB / 48.9 MiB"),
        "the partial run's own rows are replaced"
    );
    assert!(
        row(&text, "Okta (mock) requests per offboarding / per full `scope: All` sweep, 300 users").contains("2 / 305"),
        "a row of a size this run's benchmarks do not have is kept:\n{text}"
    );
    let generated = &text[..text.find(MARKER).expect("marker")];
    assert!(!generated.contains("| RSS | 285.1 MiB"), "a hand-written table leaked into the generated one:\n{text}");
    assert!(text.contains("| RSS | 285.1 MiB | 77.1 MiB |"), "the hand-written table is kept below the marker");
    assert!(text.contains("started 2026-12-01T02:04:38Z"), "the earlier run's header stays:\n{text}");
    assert!(
        text.contains("The rows of `pod_scale` come from `scripts/bench.sh pod_scale`, started 2026-12-08T03:00:00Z"),
        "the header names the partial run:\n{text}"
    );
    assert!(text.contains("## Findings kept by hand"));
}

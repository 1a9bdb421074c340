//! The reliability suite (issue 13): the real operator on the real control plane against the
//! real privacyIDEA, under provider faults, crashes and failover. Each scenario ends with the
//! ground truth — every token at privacyIDEA, a login with a sample of the kept ones
//! (`/validate/check`) — and the audit logs (`keyward audit verify`, one final record per
//! revoked token), and prints one `chaos scenario=… key=value …` line; `scripts/chaos.sh`
//! runs the long version and writes the table to docs/reliability.md.
//!
//! Every scenario declares two groups holding one TOTP token each: *stayers*, entitled
//! throughout (any of their tokens gone is a wrong revocation), and *leavers*, offboarded one
//! after another while the faults run (every one of their tokens must be gone once the faults
//! stop, each with exactly one final audit record). `KEYWARD_CHAOS_ROUNDS` sets the leavers
//! per scenario (CI: 6), `KEYWARD_CHAOS_SEED` the schedule (printed, to replay a failure).

mod support;

use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::cluster::{Cluster, Operator, cluster, eventually};
use support::proxy::CutProxy;
use support::*;

/// How long convergence may take once faults stop: the longest backoff of a failed read.
const CONVERGE: Duration = Duration::from_secs(240);
const STAYERS: usize = 4;

fn rounds() -> usize {
    std::env::var("KEYWARD_CHAOS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6)
}

fn seed() -> u64 {
    std::env::var("KEYWARD_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").subsec_nanos())
    })
}

/// xorshift: a schedule from a seed.
struct Schedule(u64);

impl Schedule {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

/// `scripts/fault_proxy.py` in front of an HTTP server.
struct FaultProxy {
    child: Child,
    port: u16,
}

impl FaultProxy {
    fn start(upstream: &str, rate: f64, seed: u64) -> FaultProxy {
        let mut child = Command::new("python3")
            .arg(repo().join("scripts/fault_proxy.py"))
            .args(["--upstream", upstream, "--rate", &rate.to_string(), "--seed", &seed.to_string(), "--hold", "3"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fault proxy");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("its port");
        let port = line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).expect("listening PORT");
        FaultProxy { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn call(&self, method: &str, path: &str) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("proxy");
        write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .expect("ask");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("answer");
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("{}")).expect("json")
    }

    fn set_rate(&self, rate: f64) {
        self.call("POST", &format!("/__chaos/rate?r={rate}"));
    }

    /// Faults injected so far.
    fn faults(&self) -> u64 {
        let stats = self.call("GET", "/__chaos/stats");
        stats["faults"].as_object().map_or(0, |f| f.values().filter_map(Value::as_u64).sum())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The people of one scenario, declared in their own namespace and realm.
struct Company {
    ns: String,
    realm: String,
    stayers: Vec<Token>,
    leavers: Vec<Token>,
    dir: tempfile::TempDir,
}

impl Company {
    /// `stayers` + `leavers` people with a TOTP token each, their MfaProvider reaching
    /// privacyIDEA at `url` with a short timeout and resync (faults must be retried soon).
    fn declare(c: &Cluster, pi: &PrivacyIdea, name: &str, url: &str, leavers: usize) -> Company {
        Company::declare_as(c, pi, name, url, leavers, None)
    }

    /// [`Company::declare`], keyward signing in to privacyIDEA as `admin` (user, password).
    fn declare_as(
        c: &Cluster,
        pi: &PrivacyIdea,
        name: &str,
        url: &str,
        leavers: usize,
        admin: Option<(&str, &str)>,
    ) -> Company {
        let (mut manifests, mut tokens) = staff(pi, name, name, "p", STAYERS + leavers);
        if let Some((user, password)) = admin {
            let default = format!(
                "stringData: {{username: {}, password: {}}}",
                pi.env["KEYWARD_PI_ADMIN"], pi.env["KEYWARD_PI_PASSWORD"]
            );
            assert!(manifests.contains(&default), "{manifests}");
            manifests = manifests.replace(&default, &format!("stringData: {{username: {user}, password: {password}}}"));
        }
        let manifests = manifests.replace(pi.url(), url).replace(
            "credentials: {secretRef: {name: pi-admin}}}\n",
            "credentials: {secretRef: {name: pi-admin}}, timeout: 2s}\n  policy: {resyncInterval: 20s}\n",
        );
        assert!(manifests.contains("timeout: 2s"), "{manifests}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("people.yaml");
        std::fs::write(&file, manifests).expect("write");
        c.kubectl_ok(&["apply", "-f", file.to_str().expect("path")]);
        let leavers = tokens.split_off(STAYERS);
        Company { ns: name.into(), realm: name.into(), stayers: tokens, leavers, dir }
    }

    fn audit(&self, replica: &str) -> PathBuf {
        self.dir.path().join(format!("audit-{replica}.jsonl"))
    }

    fn offboard(&self, c: &Cluster, token: &Token) -> Instant {
        let patch = r#"{"spec":{"state":"Offboarded"}}"#;
        c.kubectl_ok(&["-n", &self.ns, "patch", "employee", &token.user, "--type", "merge", "-p", patch]);
        Instant::now()
    }

    fn held(&self, pi: &PrivacyIdea) -> std::collections::BTreeMap<String, bool> {
        pi.tokens(&self.realm)
    }
}

/// What a scenario measured: one row of the table.
struct Outcome {
    scenario: &'static str,
    rounds: usize,
    faults: u64,
    expected: usize,
    made: usize,
    wrong: usize,
    missing_records: usize,
    doubled_records: usize,
    converge: Vec<Duration>,
}

impl Outcome {
    fn print(&self, seed: u64) {
        let mut converge = self.converge.clone();
        converge.sort();
        let median = converge.get(converge.len() / 2).copied().unwrap_or_default();
        let worst = converge.last().copied().unwrap_or_default();
        println!(
            "chaos scenario={} rounds={} faults={} expected={} made={} wrong={} missing_records={} doubled_records={} converge_median_s={:.1} converge_worst_s={:.1} seed={seed}",
            self.scenario,
            self.rounds,
            self.faults,
            self.expected,
            self.made,
            self.wrong,
            self.missing_records,
            self.doubled_records,
            median.as_secs_f64(),
            worst.as_secs_f64(),
        );
    }

    fn assert_clean(&self) {
        assert_eq!(self.wrong, 0, "{}: a stayer's token was revoked", self.scenario);
        assert_eq!(self.made, self.expected, "{}: a leaver's token is still there", self.scenario);
        assert_eq!(self.missing_records, 0, "{}: a revoked token has no final audit record", self.scenario);
        assert_eq!(self.doubled_records, 0, "{}: a token has two final audit records", self.scenario);
    }
}

fn records(paths: &[PathBuf]) -> Vec<Value> {
    paths
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// The ground truth once the faults stopped: waits for every leaver's token to go, then
/// checks the stayers at privacyIDEA (and logs in with one), and the audit logs.
fn settle(
    pi: &PrivacyIdea,
    company: &Company,
    logs: &[PathBuf],
    offboarded: &[(String, Instant)],
) -> (usize, usize, usize, usize, Vec<Duration>) {
    let gone = |held: &std::collections::BTreeMap<String, bool>| {
        company.leavers.iter().filter(|t| !held.contains_key(&t.serial)).count()
    };
    let deadline = Instant::now() + CONVERGE;
    while gone(&company.held(pi)) < company.leavers.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let held = company.held(pi);
    let made = gone(&held);
    let wrong = company.stayers.iter().filter(|t| !held.contains_key(&t.serial)).count();
    if let Some(stayer) = company.stayers.first().filter(|t| held.contains_key(&t.serial)) {
        assert!(pi.authenticates(stayer), "a kept token still logs in");
    }
    for leaver in company.leavers.iter().take(1).filter(|t| !held.contains_key(&t.serial)) {
        assert!(!pi.authenticates(leaver), "a revoked token no longer logs in");
    }
    for log in logs.iter().filter(|l| l.exists()) {
        let verified = keyward(&["audit", "verify", log.to_str().expect("path")]);
        assert!(verified.status.success(), "{}: {}", log.display(), String::from_utf8_lossy(&verified.stderr));
    }
    let all = records(logs);
    let (mut missing, mut doubled, mut converge) = (0, 0, Vec::new());
    for token in company.leavers.iter().filter(|t| !held.contains_key(&t.serial)) {
        let finals: Vec<&Value> = all
            .iter()
            .filter(|r| r["enrolment"] == token.serial.as_str() && r["event"] == "outcome")
            .filter(|r| r["outcome"] == "revoked" || r["outcome"] == "already-gone")
            .collect();
        match finals.len() {
            0 => missing += 1,
            1 => {}
            _ => doubled += 1,
        }
        if let (Some(record), Some((_, at))) = (finals.first(), offboarded.iter().find(|(u, _)| *u == token.user)) {
            let written = chrono::DateTime::parse_from_rfc3339(record["time"].as_str().unwrap_or_default())
                .map(|t| t.to_utc())
                .unwrap_or_else(|_| chrono::Utc::now());
            let since_patch = chrono::Utc::now() - chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
            converge.push((written - since_patch).to_std().unwrap_or_default());
        }
    }
    (made, wrong, missing, doubled, converge)
}

/// A privacyIDEA admin whose password is recognisable anywhere it might leak.
const SECRET: &str = "kw-SECRET-7f3a9c1e-never-shown";

/// Adds the local privacyIDEA admin `user` with password [`SECRET`] (`pi-manage admin add`).
fn secret_admin(pi: &PrivacyIdea, user: &str) {
    let home = PathBuf::from(&pi.env["KEYWARD_PI_HOME"]);
    let venv = std::env::var_os("KEYWARD_PI_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/keyward/pi-venv"));
    let added = Command::new(venv.join("bin/pi-manage"))
        .args(["admin", "add", user, "-p", SECRET])
        .env("PRIVACYIDEA_CONFIGFILE", home.join("pi.cfg"))
        .output()
        .expect("pi-manage");
    let said = String::from_utf8_lossy(&added.stdout).to_string() + &String::from_utf8_lossy(&added.stderr);
    assert!(added.status.success() || said.contains("already"), "pi-manage admin add: {said}");
}

/// Issue 13.6: everything keyward showed — its log, Events, every object's status, audit
/// lines, metrics — holds neither the credential nor its base64.
fn assert_no_secret_shown(c: &Cluster, ns: &str, operator: &Operator, logs: &[PathBuf]) {
    use base64::Engine;
    let mut shown = vec![("the operator's log", operator.log())];
    shown.push(("/metrics", operator.get("/metrics").unwrap_or_default()));
    shown.push(("Events", c.kubectl_ok(&["-n", ns, "get", "events", "-o", "yaml"])));
    let objects =
        c.kubectl_ok(&["-n", ns, "get", "mfaproviders,employees,accessgrants,leases,configmaps", "-o", "yaml"]);
    shown.push(("the objects and their status", objects));
    for log in logs {
        shown.push(("an audit log", std::fs::read_to_string(log).unwrap_or_default()));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET);
    for (what, text) in shown {
        assert!(!text.is_empty() || what == "an audit log", "{what} was collected");
        assert!(!text.contains(SECRET) && !text.contains(&encoded), "{what} shows the credential");
    }
}

/// Provider faults: a proxy in front of privacyIDEA fails 30 % of the requests (5xx, 429 with
/// and without `Retry-After`, timeouts, resets before and mid-body, truncated JSON, a short
/// page, an empty 200, a 401) while leavers are offboarded one after another. keyward signs in
/// with a recognisable password, which nothing it shows may contain.
#[test]
fn provider_faults_revoke_every_leaver_and_no_stayer() {
    let (pi, c, seed) = (privacyidea(), cluster(), seed());
    let mut schedule = Schedule(seed | 1);
    let proxy = FaultProxy::start(pi.url().trim_end_matches('/'), 0.3, seed);
    secret_admin(pi, "chaos-admin");
    let admin = Some(("chaos-admin", SECRET));
    let company = Company::declare_as(c, pi, "chaos-faults", &proxy.url(), rounds(), admin);
    let log = company.audit("a");
    let operator = c.operator(&company.ns, "keyward-chaos-faults", &log);
    let mut offboarded = Vec::new();
    for leaver in &company.leavers {
        std::thread::sleep(schedule.millis(200, 1500));
        offboarded.push((leaver.user.clone(), company.offboard(c, leaver)));
    }
    std::thread::sleep(Duration::from_secs(5));
    let faults = proxy.faults();
    proxy.set_rate(0.0);
    let (made, wrong, missing_records, doubled_records, converge) =
        settle(pi, &company, std::slice::from_ref(&log), &offboarded);
    let outcome = Outcome {
        scenario: "provider-faults",
        rounds: company.leavers.len(),
        faults,
        expected: company.leavers.len(),
        made,
        wrong,
        missing_records,
        doubled_records,
        converge,
    };
    outcome.print(seed);
    assert!(faults > 0, "the proxy injected faults");
    outcome.assert_clean();
    assert_no_secret_shown(c, &company.ns, &operator, std::slice::from_ref(&log));
}

/// Crashes: SIGKILL of the operator at random moments while leavers are offboarded through a
/// slowed privacyIDEA (during listing, between intent and delete, between delete and record),
/// restarted each time.
#[test]
fn crashes_lose_no_revocation_and_no_record() {
    let (pi, c, seed) = (privacyidea(), cluster(), seed());
    let mut schedule = Schedule(seed | 1);
    let upstream: std::net::SocketAddr =
        pi.url().trim_start_matches("http://").trim_end_matches('/').parse().expect("privacyIDEA address");
    let slow = CutProxy::start(upstream);
    let company = Company::declare(c, pi, "chaos-crash", &format!("http://{}", slow.addr), rounds());
    let log = company.audit("a");
    let lease = "keyward-chaos-crash";
    let mut operator = c.operator(&company.ns, lease, &log);
    c.kubectl_ok(&["-n", &company.ns, "wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=60s"]);
    slow.slow_down(Duration::from_millis(80));
    let mut offboarded = Vec::new();
    let mut kills = 0;
    for leaver in &company.leavers {
        offboarded.push((leaver.user.clone(), company.offboard(c, leaver)));
        std::thread::sleep(schedule.millis(100, 1500));
        operator.kill();
        kills += 1;
        operator = c.operator(&company.ns, lease, &log);
    }
    slow.slow_down(Duration::ZERO);
    let (made, wrong, missing_records, doubled_records, converge) =
        settle(pi, &company, std::slice::from_ref(&log), &offboarded);
    drop(operator);
    let outcome = Outcome {
        scenario: "crashes",
        rounds: company.leavers.len(),
        faults: kills,
        expected: company.leavers.len(),
        made,
        wrong,
        missing_records,
        doubled_records,
        converge,
    };
    outcome.print(seed);
    outcome.assert_clean();
}

/// Failover: two replicas of one installation; the leader is killed or paused (SIGSTOP: a
/// zombie that wakes after its Lease expired) at random moments while leavers are offboarded.
/// Never two replicas acting: every revoked token has one final record across both logs.
#[test]
fn failover_never_lets_two_replicas_act() {
    let (pi, c, seed) = (privacyidea(), cluster(), seed());
    let mut schedule = Schedule(seed | 1);
    let company = Company::declare(c, pi, "chaos-failover", pi.url(), rounds());
    let lease = "keyward-chaos-failover";
    let logs = [company.audit("a"), company.audit("b")];
    // Each replica reads the other's log when it resolves an intent a crash left open.
    let peers = company.dir.path().join("audit-*.jsonl");
    let flags = ["--audit-peer-logs", peers.to_str().expect("path")];
    let start = |log: &PathBuf| c.operator_with(&company.ns, lease, log, None, &flags);
    let mut replicas: Vec<Operator> = logs.iter().map(start).collect();
    eventually(Duration::from_secs(60), "a leader", || replicas.iter().any(Operator::is_leader));
    let mut offboarded = Vec::new();
    let mut faults = 0;
    for leaver in &company.leavers {
        offboarded.push((leaver.user.clone(), company.offboard(c, leaver)));
        std::thread::sleep(schedule.millis(100, 1200));
        let Some(leader) = replicas.iter().position(Operator::is_leader) else { continue };
        faults += 1;
        if schedule.next().is_multiple_of(2) {
            replicas[leader].kill();
            replicas[leader] = start(&logs[leader]);
        } else if let Some(pid) = replicas[leader].pid() {
            // Paused well past its Lease (3 s here): the other replica takes over; the zombie
            // wakes and must notice its leadership lapsed before any provider call.
            let _ = Command::new("kill").args(["-STOP", &pid.to_string()]).status();
            std::thread::sleep(Duration::from_secs(10));
            let _ = Command::new("kill").args(["-CONT", &pid.to_string()]).status();
        }
    }
    let (made, wrong, missing_records, doubled_records, converge) = settle(pi, &company, &logs, &offboarded);
    drop(replicas);
    let outcome = Outcome {
        scenario: "failover",
        rounds: company.leavers.len(),
        faults,
        expected: company.leavers.len(),
        made,
        wrong,
        missing_records,
        doubled_records,
        converge,
    };
    outcome.print(seed);
    outcome.assert_clean();
}

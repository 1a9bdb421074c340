//! The chart as users run it: keyward's image, built from this test run's binaries,
//! imported into a real node (`scripts/kube.sh up --node`), installed with `helm install`; two
//! replicas start, pass their probes and elect a leader; a company applied with kubectl is
//! enforced against a real privacyIDEA reached over TLS at the host's address, through the
//! Pods' network; the leader's Pod is deleted (SIGTERM from the kubelet: it releases the Lease
//! and exits within its grace period) and another replica takes over; the leader's container
//! is killed with SIGKILL through the runtime and the Lease still passes on within its
//! duration; `helm upgrade` rolls the Pods; the audit files on a PersistentVolume hold one
//! outcome per revoked enrolment and verify; `helm uninstall` keeps the CRDs and the Employees.
//!
//! One node per machine at a time, so one test walks it all in order; each step is a function
//! of its own and names itself when it fails, and a failure prints the Pods, their logs and the
//! node's component logs before the node is torn down.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::cluster::eventually;
use support::node::*;
use support::tls::TlsFront;
use support::*;

const COMPANY_NS: &str = "acme-node";
const IMAGE_TAG: &str = "node-chart";
/// The same binaries under a second tag, for `helm upgrade`.
const UPGRADE_TAG: &str = "node-chart-2";
const CLAIM: &str = "keyward-audit";
/// The chart's default `leaderElection.leaseDuration`.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// The chart's `terminationGracePeriodSeconds`.
const GRACE: Duration = Duration::from_secs(30);
/// Within which a change must reach privacyIDEA (generous: the machine is shared).
const WITHIN: Duration = Duration::from_secs(45);

/// The hostPath directory behind the audit PersistentVolume.
fn audit_dir(node: &Node) -> PathBuf {
    node.cluster.home.join("audit-pv")
}

/// `kubectl patch` of an Employee to Offboarded, as a user offboards someone.
fn offboard(node: &Node, employee: &str) {
    let patch = r#"{"spec":{"state":"Offboarded"}}"#;
    node.kubectl_ok(&["patch", "employee", employee, "-n", COMPANY_NS, "--type", "merge", "-p", patch]);
}

fn build_and_load_the_image(node: &Node, tag: &str) {
    node.build_and_load_the_image(Path::new(env!("CARGO_BIN_EXE_keyward")), tag);
}

/// A hostPath PersistentVolume on the node and its claim in the release namespace: every
/// replica writes a directory of its own on it (ReadWriteOnce is enough on a single node).
fn audit_volume(node: &Node) {
    std::fs::create_dir_all(audit_dir(node)).expect("audit directory");
    // The kubelet makes each Pod's subPath directory with this mode, as root: the operator
    // (uid 65532) must be able to write in it.
    let status = Command::new("chmod").arg("0777").arg(audit_dir(node)).status().expect("chmod");
    assert!(status.success());
    node.apply(&json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": CLAIM},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": CLAIM,
            "hostPath": {"path": audit_dir(node).display().to_string(), "type": "Directory"}
        }
    }));
    node.apply(&json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": RELEASE_NS},
        "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": CLAIM, "volumeName": CLAIM,
            "resources": {"requests": {"storage": "1Gi"}}
        }
    }));
    eventually(Duration::from_secs(60), "the audit claim to be Bound", || {
        let out = node.kubectl(&["get", "pvc", CLAIM, "-n", RELEASE_NS, "-o", "jsonpath={.status.phase}"]);
        String::from_utf8_lossy(&out.stdout) == "Bound"
    });
}

fn values(provider_host: &str, tag: &str) -> Value {
    json!({
        "image": {"repository": IMAGE_REPOSITORY, "tag": tag, "pullPolicy": "Never"},
        "providerHosts": [provider_host],
        "watch": {"namespaces": [COMPANY_NS]},
        "audit": {"destination": "file", "file": {"persistence": {"existingClaim": CLAIM}}}
    })
}

/// `helm install` with the chart's defaults and what this node needs; two replicas Running
/// and Ready, never restarted; one of them holds the Lease and logged its start.
fn helm_install_starts_two_ready_replicas(node: &Node, provider_host: &str) -> Vec<String> {
    let started = Instant::now();
    let out = node.helm_chart("install", &values(provider_host, IMAGE_TAG));
    assert!(out.status.success(), "helm install: {}", text(&out));
    let took = eventually(Duration::from_secs(180), "two replicas Running and Ready", || {
        let pods = node.pods();
        pods.len() == 2 && pods.iter().all(ready_unrestarted)
    });
    eprintln!("node_chart: helm install -> 2 replicas Ready: {took:?} (helm itself {:?})", started.elapsed() - took);
    let pods: Vec<String> = node.pods().iter().map(pod_name).collect();
    eventually(Duration::from_secs(60), "a replica to hold the Lease", || pods.contains(&node.lease_holder()));
    let leader = node.lease_holder();
    let logs = node.kubectl_ok(&["logs", "-n", RELEASE_NS, &leader]);
    assert!(logs.contains("starting keyward operator"), "the leader {leader} logged no start line:\n{logs}");
    assert!(logs.contains(&leader), "the leader's start line names another identity:\n{logs}");
    pods
}

/// `examples/acme` in its own namespace and realm, its MfaProvider pointed at privacyIDEA
/// behind the TLS front at the host's address, trusting the front's CA through `caBundle`.
fn company_tree(pi: &PrivacyIdea, company: &Company, front: &TlsFront) -> tempfile::TempDir {
    let tree = operator_tree(pi, &company.realm, COMPANY_NS);
    let url = format!("https://{}", front.addr);
    edit(tree.path(), "10-provider.yaml", &format!("url: {}", pi.url()), &format!("url: {url}"));
    let bundle: String = front.ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    edit(
        tree.path(),
        "10-provider.yaml",
        "  userMapping: name",
        &format!("  caBundle: |\n{bundle}  userMapping: name"),
    );
    tree
}

fn revoked(pi: &PrivacyIdea, company: &Company, user: &str, kind: &str) -> bool {
    !pi.tokens(&company.realm).contains_key(&company.token(user, kind).serial)
}

/// The company applied with kubectl; the first sweep revokes the example's leavers, then an
/// offboarding by `kubectl patch` is revoked at privacyIDEA: a login with the token fails.
fn a_kubectl_patch_is_revoked_by_the_pods(node: &Node, pi: &PrivacyIdea, company: &Company, tree: &Path) {
    node.kubectl_ok(&["apply", "-f", &tree.display().to_string()]);
    node.kubectl_ok(&["wait", "-n", COMPANY_NS, "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=90s"]);
    let took = eventually(WITHIN, "the first sweep", || {
        revoked(pi, company, "carol", "totp") && revoked(pi, company, "frank", "totp")
    });
    eprintln!("node_chart: company applied -> first sweep's revocations: {took:?}");
    assert!(pi.authenticates(company.token("alice", "totp")), "alice is entitled");
    offboard(node, "alice");
    let took = eventually(WITHIN, "alice revoked", || {
        revoked(pi, company, "alice", "totp") && revoked(pi, company, "alice", "hotp")
    });
    eprintln!("node_chart: kubectl patch -> revocation at privacyIDEA (from a Pod): {took:?}");
    assert!(!pi.authenticates(company.token("alice", "totp")), "alice still logs in with her TOTP");
    assert!(!pi.authenticates(company.token("alice", "hotp")), "alice still logs in with her HOTP");
    assert!(pi.authenticates(company.token("bob", "totp")), "bob keeps his TOTP");
}

/// The leader's Pod is deleted: the kubelet sends SIGTERM, the leader finishes its sweep,
/// releases the Lease and exits within the Pod's grace period (its log, followed through the
/// shutdown, says so in that order); a live replica holds the Lease within the Lease duration,
/// the Deployment replaces the Pod, and the next offboarding is revoked by the new leader.
fn the_standby_takes_over_when_the_leader_is_deleted(node: &Node, pi: &PrivacyIdea, company: &Company) {
    let leader = node.lease_holder();
    let standby: Vec<String> = node.pods().iter().map(pod_name).filter(|p| *p != leader).collect();
    assert_eq!(standby.len(), 1, "one standby beside {leader}: {standby:?}");
    // `kubectl logs -f` ends when the container has exited: its end is the process's exit.
    let follow = Command::new(node.bin.join("kubectl"))
        .arg("--kubeconfig")
        .arg(&node.cluster.kubeconfig)
        .args(["logs", "-f", "--since=1s", "-n", RELEASE_NS, &leader])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    // Give the stream a moment to attach before the signal.
    std::thread::sleep(Duration::from_secs(1));
    let deleted = Instant::now();
    let ended = std::thread::spawn(move || {
        let out = follow.wait_with_output().expect("kubectl logs -f output");
        (deleted.elapsed(), String::from_utf8_lossy(&out.stdout).into_owned())
    });
    node.kubectl_ok(&["delete", "pod", &leader, "-n", RELEASE_NS, "--wait=false"]);
    // The standby polls the Lease; the Deployment's replacement Pod tries as it starts: either
    // may win once the leaving leader released it. What counts is that a live replica holds it.
    let mut holder = String::new();
    let took = eventually(LEASE_DURATION + Duration::from_secs(5), "another replica to hold the Lease", || {
        holder = node.lease_holder();
        !holder.is_empty() && holder != leader && node.pods().iter().any(|p| pod_name(p) == holder)
    });
    let who = if holder == standby[0] { "the standby" } else { "the replacement Pod" };
    eprintln!("node_chart: leader Pod deleted -> {who} {holder} holds the Lease: {took:?}");
    assert!(took <= LEASE_DURATION, "failover took {took:?}, longer than the Lease duration");
    eventually(GRACE + Duration::from_secs(15), "the deleted leader's container to exit", || ended.is_finished());
    let (exited, log) = ended.join().expect("the log follower");
    eprintln!("node_chart: SIGTERM from the kubelet -> the leader's process exited: {exited:?} (grace {GRACE:?})");
    assert!(exited < GRACE, "the leader took {exited:?} to exit, beyond its grace period");
    let at = |line: &str| log.find(line).unwrap_or_else(|| panic!("the leaving leader never logged {line:?}:\n{log}"));
    assert!(
        at("shutting down") < at("released the leader Lease"),
        "the leader released the Lease before it began to shut down:\n{log}"
    );
    let gone = eventually(Duration::from_secs(60), "the deleted leader's Pod gone", || {
        !node.kubectl(&["get", "pod", &leader, "-n", RELEASE_NS]).status.success()
    });
    eprintln!("node_chart: the old leader's Pod object gone: {gone:?} later");
    offboard(node, "bob");
    let took = eventually(WITHIN, "bob revoked by the new leader", || {
        revoked(pi, company, "bob", "totp") && revoked(pi, company, "bob", "hotp")
    });
    eprintln!("node_chart: kubectl patch -> revocation after the failover: {took:?}");
    assert!(!pi.authenticates(company.token("bob", "totp")), "bob still logs in");
    eventually(Duration::from_secs(120), "the replacement replica Ready", || {
        let pods = node.pods();
        pods.len() == 2 && pods.iter().all(ready_unrestarted)
    });
}

/// The container of `pod`, as the runtime names it, and how often the kubelet restarted it.
fn container_of(node: &Node, pod: &str) -> (String, u64) {
    let pod = node.pods().into_iter().find(|p| pod_name(p) == pod).unwrap_or_else(|| panic!("no Pod {pod}"));
    let status = &pod["status"]["containerStatuses"][0];
    let id = status["containerID"].as_str().unwrap_or_default();
    let id = id.strip_prefix("containerd://").unwrap_or_else(|| panic!("container id {id:?}"));
    (id.to_string(), status["restartCount"].as_u64().unwrap_or_default())
}

/// The leader's process is killed with SIGKILL through the runtime (`ctr tasks kill`): no
/// shutdown, no release. The kubelet restarts the container; a live replica holds the Lease
/// (renews it) within the Lease duration of the kill, and the next offboarding is revoked.
/// Returns grace's new token, revoked here, for the audit check.
fn the_lease_passes_on_when_the_leaders_container_is_killed(node: &Node, pi: &PrivacyIdea, company: &Company) -> Token {
    let token = pi.enrol(&company.realm, "grace", "totp");
    let leader = node.lease_holder();
    let (container, restarts) = container_of(node, &leader);
    let renewed = || -> Option<(String, String)> {
        let out = node.kubectl(&[
            "get",
            "lease",
            LEASE,
            "-n",
            RELEASE_NS,
            "-o",
            "jsonpath={.spec.holderIdentity} {.spec.renewTime}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (holder, at) = text.split_once(' ')?;
        Some((holder.to_string(), at.to_string()))
    };
    let before = renewed().map(|(_, at)| at).unwrap_or_default();
    let killed = Instant::now();
    let out = Command::new(node.bin.join("ctr"))
        .args(["--address", node.env("KEYWARD_CONTAINERD_ADDRESS"), "-n", "k8s.io"])
        .args(["tasks", "kill", "--signal", "SIGKILL", &container])
        .output()
        .expect("run ctr tasks kill");
    assert!(out.status.success(), "ctr tasks kill --signal SIGKILL {container}: {}", text(&out));
    // Lease times are RFC 3339 with microseconds, all written by this machine's clock: a later
    // renewal sorts after the last one before the kill.
    let mut holder = String::new();
    let took = eventually(LEASE_DURATION + Duration::from_secs(10), "a live replica to renew the Lease", || {
        let Some((h, at)) = renewed() else { return false };
        holder = h;
        at > before
            && !holder.is_empty()
            && node.pods().iter().any(|p| pod_name(p) == holder && p["status"]["containerStatuses"][0]["ready"] == true)
    });
    let who = if holder == leader { "the killed leader's restarted container" } else { "the standby" };
    eprintln!("node_chart: leader SIGKILLed -> {who} ({holder}) renews the Lease: {took:?}");
    assert!(took <= LEASE_DURATION + Duration::from_secs(5), "the Lease was held by no live replica for {took:?}");
    eventually(Duration::from_secs(60), "the kubelet to restart the killed container", || {
        let pod = node.pods().into_iter().find(|p| pod_name(p) == leader);
        let status = pod.as_ref().map(|p| p["status"]["containerStatuses"][0].clone()).unwrap_or_default();
        status["restartCount"].as_u64() == Some(restarts + 1) && status["lastState"]["terminated"]["exitCode"] == 137
    });
    offboard(node, "grace");
    let took = eventually(WITHIN, "grace revoked", || !pi.tokens(&company.realm).contains_key(&token.serial));
    eprintln!("node_chart: kubectl patch -> revocation after the SIGKILL: {took:?}");
    assert!(!pi.authenticates(&token), "grace still logs in");
    eventually(Duration::from_secs(120), "both replicas Ready again", || {
        let pods = node.pods();
        pods.len() == 2
            && pods
                .iter()
                .all(|p| p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][0]["ready"] == true)
    });
    eprintln!("node_chart: kill to both Ready again: {:?}", killed.elapsed());
    token
}

/// `helm upgrade` to the same binaries under another tag rolls the Deployment (a new Pod
/// Ready before an old one goes); no enrolment is revoked again (checked with the audit files).
fn helm_upgrade_rolls_the_pods(node: &Node, provider_host: &str) {
    build_and_load_the_image(node, UPGRADE_TAG);
    let out = node.helm_chart("upgrade", &values(provider_host, UPGRADE_TAG));
    assert!(out.status.success(), "helm upgrade: {}", text(&out));
    let image = format!("{IMAGE_REPOSITORY}:{UPGRADE_TAG}");
    let mut unheld = 0;
    let took = eventually(Duration::from_secs(240), "two Ready replicas of the new image, the old ones gone", || {
        if node.lease_holder().is_empty() {
            unheld += 1;
        }
        let all = node.kubectl_ok(&["get", "pods", "-n", RELEASE_NS, "-l", PODS, "-o", "name"]);
        let pods = node.pods();
        all.lines().count() == 2
            && pods.len() == 2
            && pods.iter().all(|p| ready_unrestarted(p) && p["spec"]["containers"][0]["image"] == image.as_str())
    });
    eprintln!("node_chart: helm upgrade -> rolled to {UPGRADE_TAG}: {took:?}");
    // A leaving leader releases the Lease: a poll or two may see it between holders.
    eprintln!("node_chart: polls that saw the Lease without a holder during the roll: {unheld}");
}

/// Every replica's audit files on the volume: each verifies (`keyward audit verify`), and
/// across all of them each revoked enrolment has exactly one final outcome.
fn the_audit_files_hold_one_outcome_per_revocation(node: &Node, company: &Company, also: &[&Token]) {
    let files = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(audit_dir(node))
            .expect("audit directory")
            .flatten()
            .map(|d| d.path().join("audit.jsonl"))
            .filter(|f| f.exists())
            .collect();
        files.sort();
        files
    };
    let outcomes = || -> BTreeMap<String, usize> {
        let mut counted = BTreeMap::new();
        for file in files() {
            let records: Vec<Value> = std::fs::read_to_string(&file)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON: {e}: {l}", file.display())))
                .collect();
            for r in outcomes_after_their_intents(&records) {
                if r["event"] == "outcome" && matches!(r["outcome"].as_str(), Some("revoked" | "already-gone")) {
                    *counted.entry(r["enrolment"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
                }
            }
        }
        counted
    };
    let expected: Vec<&str> =
        [("alice", "totp"), ("alice", "hotp"), ("bob", "totp"), ("bob", "hotp"), ("carol", "totp"), ("frank", "totp")]
            .iter()
            .map(|(user, kind)| company.token(user, kind).serial.as_str())
            .chain(also.iter().map(|t| t.serial.as_str()))
            .collect();
    // A record is on disk a moment after privacyIDEA answered.
    eventually(WITHIN, "an outcome record for every revocation", || {
        let counted = outcomes();
        expected.iter().all(|serial| counted.contains_key(*serial))
    });
    let counted = outcomes();
    let twice: Vec<_> = counted.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "enrolments with more than one final outcome across the replicas: {twice:?}");
    let files = files();
    assert!(files.len() >= 3, "a directory per replica (two, and the deleted leader's replacement): {files:?}");
    let mut failed = Vec::new();
    for file in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["audit", "verify"])
            .arg(file)
            .output()
            .expect("run keyward audit verify");
        if !out.status.success() {
            let checkpoint = format!("{}.checkpoint", file.display());
            failed.push(format!(
                "keyward audit verify {}: {}\n  log ({} bytes), first line: {}\n  {checkpoint}: {:?}",
                file.display(),
                text(&out),
                std::fs::metadata(file).map(|m| m.len()).unwrap_or_default(),
                std::fs::read_to_string(file).unwrap_or_default().lines().next().unwrap_or_default(),
                std::fs::read_to_string(&checkpoint).unwrap_or_default(),
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    eprintln!(
        "node_chart: {} audit files verified, {} revoked enrolments, one outcome each",
        files.len(),
        counted.len()
    );
}

/// `helm uninstall`: the Pods go; the CRDs and every Employee stay.
fn helm_uninstall_keeps_the_crds_and_the_employees(node: &Node) {
    let out = node.helm(&["uninstall", RELEASE, "-n", RELEASE_NS]);
    assert!(out.status.success(), "helm uninstall: {}", text(&out));
    let took = eventually(Duration::from_secs(90), "the release's Pods gone", || {
        node.kubectl_ok(&["get", "pods", "-n", RELEASE_NS, "-l", PODS, "-o", "name"]).trim().is_empty()
    });
    eprintln!("node_chart: helm uninstall -> Pods gone: {took:?}");
    for crd in ["employees.keyward.dev", "accessgrants.keyward.dev", "mfaproviders.keyward.dev"] {
        node.kubectl_ok(&["get", "crd", crd]);
    }
    let employees = node.kubectl_ok(&["get", "employees", "-n", COMPANY_NS, "-o", "name"]);
    for name in ["alice", "bob", "carol", "grace"] {
        assert!(
            employees.contains(&format!("employee.keyward.dev/{name}")),
            "{name} gone after uninstall: {employees}"
        );
    }
}

#[test]
fn the_chart_on_a_real_node_revokes_fails_over_and_uninstalls() {
    let pi = privacyidea();
    let company = company(pi, "node-chart");
    let node = Node::start("chart", &[COMPANY_NS]);

    // privacyIDEA listens on loopback; Pods reach it through a TLS front at the host's address.
    let upstream: SocketAddr =
        pi.url().trim_start_matches("http://").trim_end_matches('/').parse().expect("privacyIDEA address");
    let node_ip: IpAddr = node.env("KEYWARD_NODE_IP").parse().expect("KEYWARD_NODE_IP");
    let front = TlsFront::start_at(upstream, node_ip);
    let tree = company_tree(pi, &company, &front);

    build_and_load_the_image(&node, IMAGE_TAG);
    node.kubectl_ok(&["create", "namespace", RELEASE_NS]);
    node.kubectl_ok(&["apply", "-f", &tree.path().join("00-namespace.yaml").display().to_string()]);
    audit_volume(&node);
    helm_install_starts_two_ready_replicas(&node, &front.addr.to_string());
    a_kubectl_patch_is_revoked_by_the_pods(&node, pi, &company, tree.path());
    the_standby_takes_over_when_the_leader_is_deleted(&node, pi, &company);
    let graces = the_lease_passes_on_when_the_leaders_container_is_killed(&node, pi, &company);
    helm_upgrade_rolls_the_pods(&node, &front.addr.to_string());
    the_audit_files_hold_one_outcome_per_revocation(&node, &company, &[&graces]);
    helm_uninstall_keeps_the_crds_and_the_employees(&node);
}

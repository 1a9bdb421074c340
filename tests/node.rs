//! A real node (`scripts/kube.sh up --node`): containerd, runc, CNI, kubelet, kube-proxy,
//! scheduler and controller-manager built from Go modules. Pods start from images imported
//! into containerd (never pulled), reach the host and the API server through the `kubernetes`
//! Service, and stay inside the machine; `down` leaves the machine as it found it.
//!
//! One node per machine at a time, so one test walks through it all in order; each step is a
//! function of its own and names itself when it fails. No step sends traffic out of the
//! machine: every address is in 198.18.0.0/15 on interfaces `up` made.

#[path = "support/kube.rs"]
mod kube;

use kube::ControlPlane;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NETNS: &str = "keyward-node";
const NODE_RUN: &str = "/run/keyward-node";
const CGROUP: &str = "keyward-node";
const POD_CIDR: &str = "198.19.0.0/24";
const CLUSTER_RANGE: &str = "198.18.0.0/15";
/// The interfaces `up --node` makes on the host (the Pods' bridge is inside the node's netns).
const HOST_LINKS: [&str; 1] = ["kw-host"];

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program:?}: {e}"))
}

fn run_ok(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let out = run(&program, args);
    assert!(
        out.status.success(),
        "{:?} {args:?} failed: {}{}",
        program.as_ref(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Node {
    cluster: ControlPlane,
    bin: PathBuf,
}

impl Node {
    fn env(&self, key: &str) -> &str {
        self.cluster.env.get(key).unwrap_or_else(|| panic!("up --node printed no {key}"))
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let kubeconfig = self.cluster.kubeconfig.display().to_string();
        let mut all = vec!["--kubeconfig", &kubeconfig];
        all.extend_from_slice(args);
        run(self.bin.join("kubectl"), &all)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, manifest: &Value) {
        let path =
            self.cluster.home.join(format!("manifest-{}.json", manifest["metadata"]["name"].as_str().unwrap_or("x")));
        std::fs::write(&path, manifest.to_string()).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", &path.display().to_string()]);
    }

    fn pod(&self, name: &str) -> Value {
        serde_json::from_str(&self.kubectl_ok(&["get", "pod", name, "-o", "json"])).expect("pod JSON")
    }

    fn ctr(&self, args: &[&str]) -> String {
        let address = self.env("KEYWARD_CONTAINERD_ADDRESS").to_string();
        let mut all = vec!["--address", &address, "-n", "k8s.io"];
        all.extend_from_slice(args);
        run_ok(self.bin.join("ctr"), &all)
    }

    fn images(&self) -> String {
        self.ctr(&["images", "list", "-q"])
    }
}

impl Drop for Node {
    /// A failing step shows the end of each component's log before `down` removes them.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        self.cluster.print_node_logs();
    }
}

/// A Pod running `image` with `imagePullPolicy` and `args`, never restarted, under the
/// restricted Pod Security Standard as keyward's chart runs: not root, read-only root file
/// system, no capabilities, the runtime's default seccomp profile (runc built with seccomp).
fn pod(name: &str, image: &str, pull: &str, args: &[String]) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": pull, "args": args,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    })
}

/// The static probe program (tests/node/probe.c) in an image of its own, written by the same
/// helper that writes the pause image, imported with the node's ctr.
fn import_probe_image(node: &Node) -> &'static str {
    const IMAGE: &str = "keyward.local/node-probe:1";
    let dir = node.cluster.home.join("probe");
    std::fs::create_dir_all(&dir).expect("probe dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/probe.c");
    let binary = dir.join("probe");
    run_ok(
        "gcc",
        &["-static", "-Os", "-Wall", "-Werror", "-o", &binary.display().to_string(), &source.display().to_string()],
    );
    let tar = dir.join("probe.tar");
    run_ok(
        "python3",
        &[
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oci_image.py").display().to_string(),
            "--ref",
            IMAGE,
            "--entrypoint",
            "/probe",
            "--file",
            &format!("{}:/probe", binary.display()),
            "--out",
            &tar.display().to_string(),
        ],
    );
    node.ctr(&["images", "import", &tar.display().to_string()]);
    assert!(node.images().lines().any(|l| l == IMAGE), "{IMAGE} not in containerd after import:\n{}", node.images());
    IMAGE
}

fn node_is_ready_with_the_pause_image(node: &Node) {
    let name = node.env("KEYWARD_NODE_NAME");
    let json: Value = serde_json::from_str(&node.kubectl_ok(&["get", "node", name, "-o", "json"])).expect("node JSON");
    let ready = json["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    assert!(ready, "node {name} is not Ready: {:#}", json["status"]["conditions"]);
    let addresses = json["status"]["addresses"].to_string();
    assert!(addresses.contains("198.18."), "the node's address is not in {CLUSTER_RANGE}: {addresses}");
    assert!(node.images().lines().any(|l| l.starts_with("keyward.local/pause:")), "no pause image: {}", node.images());
}

/// A Pod from the imported probe image reaches the host at KEYWARD_NODE_IP with its own Pod
/// address (no masquerade) and the API server through the `kubernetes` Service.
fn a_pod_reaches_the_host_and_the_api_server(node: &Node, image: &str) {
    let host_ip = node.env("KEYWARD_NODE_IP");
    let listener = TcpListener::bind((host_ip, 0)).expect("listen at KEYWARD_NODE_IP");
    let port = listener.local_addr().expect("port").port();
    let (seen, peers) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, peer)) = listener.accept() {
            let mut greeting = [0u8; 64];
            let n = stream.read(&mut greeting).unwrap_or(0);
            let _ = stream.write_all(b"host heard you\n");
            let _ = seen.send((peer, String::from_utf8_lossy(&greeting[..n]).into_owned()));
        }
    });
    node.apply(&pod("probe", image, "Never", &[host_ip.to_string(), port.to_string()]));
    eventually(Duration::from_secs(90), "the probe Pod to finish", || {
        matches!(node.pod("probe")["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let status = node.pod("probe")["status"].clone();
    let logs = node.kubectl_ok(&["logs", "probe"]);
    assert_eq!(status["phase"], "Succeeded", "probe failed; its output:\n{logs}\nstatus: {status:#}");
    assert!(logs.contains("host: host heard you"), "{logs}");
    // Go's TLS server answers plain HTTP with this 400: the Service led to the API server.
    assert!(logs.contains("apiserver: HTTP/1.0 400 Bad Request"), "{logs}");
    let (peer, greeting) = peers.recv_timeout(Duration::from_secs(5)).expect("the probe reached the host");
    assert_eq!(greeting, "hello from a pod\n");
    let pod_ip = status["podIP"].as_str().expect("podIP");
    assert!(pod_ip.starts_with("198.19.0."), "Pod address {pod_ip} is not in {POD_CIDR}");
    // No masquerade: the host saw the Pod's own address.
    assert_eq!(peer.ip().to_string(), pod_ip, "the host saw {peer}, not the Pod");
}

/// An image that was never imported is an error on the Pod; containerd fetched nothing.
fn a_missing_image_is_an_error_not_a_pull(node: &Node) {
    let before = node.images();
    node.apply(&pod("never-pulled", "keyward.local/not-imported:1", "Never", &[]));
    node.apply(&pod("pull-refused", "keyward.local/not-imported:1", "IfNotPresent", &[]));
    let waiting = |name: &str| node.pod(name)["status"]["containerStatuses"][0]["state"]["waiting"].clone();
    eventually(Duration::from_secs(60), "ErrImageNeverPull", || {
        waiting("never-pulled")["reason"] == "ErrImageNeverPull"
    });
    eventually(Duration::from_secs(60), "a failed pull", || {
        matches!(waiting("pull-refused")["reason"].as_str(), Some("ErrImagePull" | "ImagePullBackOff"))
    });
    // The only registry host containerd knows is a closed loopback port.
    let events =
        node.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=pull-refused", "-o", "json"]);
    assert!(events.contains("127.0.0.1:9"), "the pull did not go to the closed loopback port: {events}");
    assert_eq!(node.images(), before, "an image appeared in containerd");
    node.kubectl_ok(&["delete", "pod", "never-pulled", "pull-refused", "--wait=false"]);
}

/// The node's firewall, read from its network namespace: no masquerade for the Pod range,
/// forwarding from the Pods to outside the cluster's ranges dropped, no route out.
fn the_node_firewall_keeps_pods_inside(_node: &Node) {
    let rules = run_ok("ip", &["netns", "exec", NETNS, "iptables-save"]);
    let lines: Vec<&str> = rules.lines().collect();
    let forward: Vec<&&str> = lines.iter().filter(|l| l.starts_with("-A FORWARD ")).collect();
    assert_eq!(
        forward.first().map(|l| **l),
        Some("-A FORWARD -j KEYWARD-EGRESS"),
        "FORWARD does not start with the egress chain:\n{rules}"
    );
    let egress: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("-A KEYWARD-EGRESS ")).collect();
    assert_eq!(
        egress,
        [
            format!("-A KEYWARD-EGRESS -s {POD_CIDR} -d {CLUSTER_RANGE} -j RETURN"),
            format!("-A KEYWARD-EGRESS -s {POD_CIDR} -j DROP")
        ],
        "{rules}"
    );
    for line in &lines {
        let masquerades_pods = line.contains("MASQUERADE") && (line.contains(POD_CIDR) || line.contains("-s 198.19."));
        assert!(!masquerades_pods, "the Pod range is masqueraded: {line}");
        // The CNI bridge plugin's ipMasq chains.
        assert!(!line.starts_with(":CNI-") || line.starts_with(":CNI-HOSTPORT"), "ipMasq chain: {line}");
    }
    let routes = run_ok("ip", &["netns", "exec", NETNS, "ip", "route"]);
    assert!(!routes.contains("default"), "the node has a default route:\n{routes}");
    // The host's own tables hold nothing of the node.
    if let Ok(out) = Command::new("iptables-save").output() {
        let host = String::from_utf8_lossy(&out.stdout);
        for word in ["KEYWARD", "KUBE-", "CNI-"] {
            assert!(!host.contains(word), "the host's iptables hold {word}:\n{host}");
        }
    }
}

/// Everything of a node that could outlive it, as one comparable set.
fn node_traces(home: &Path) -> BTreeSet<String> {
    let mut traces = BTreeSet::new();
    // With the slash: the watcher that runs `down` names the home itself, nothing under it.
    let home = format!("{}/", home.display());
    for line in std::fs::read_to_string("/proc/mounts").expect("/proc/mounts").lines() {
        if line.contains(&home) || line.contains(NODE_RUN) || line.contains("/run/netns/keyward") {
            traces.insert(format!("mount {line}"));
        }
    }
    let links = run_ok("ip", &["-o", "link"]);
    for link in HOST_LINKS {
        if links.contains(&format!(": {link}@")) || links.contains(&format!(": {link}:")) {
            traces.insert(format!("link {link}"));
        }
    }
    if run_ok("ip", &["netns", "list"]).lines().any(|l| l.starts_with(NETNS)) {
        traces.insert(format!("netns {NETNS}"));
    }
    if let Ok(out) = Command::new("iptables-save").output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if ["KEYWARD", "KUBE-", "CNI-", "198.19."].iter().any(|w| line.contains(w)) {
                traces.insert(format!("iptables {line}"));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&home) || cmdline.contains(NODE_RUN) {
            traces.insert(format!("process {}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").expect("/sys/fs/cgroup").flatten() {
        if hierarchy.path().join(CGROUP).exists() {
            traces.insert(format!("cgroup {}", hierarchy.path().join(CGROUP).display()));
        }
    }
    // The node's own directories, and those its components write whatever their configuration
    // says (kubelet device plugins, libcni's cache, kubelet's log links, ip netns, runc's root).
    let fixed = ["/var/lib/kubelet", "/var/lib/cni", "/var/log/containers", "/run/netns", "/run/containerd"];
    for path in [NODE_RUN, home.trim_end_matches('/')].into_iter().chain(fixed) {
        if Path::new(&path).exists() {
            traces.insert(format!("path {path}"));
        }
    }
    traces
}

/// An `up --node` that fails half-way (here: the apiserver refuses a flag, after the node's
/// network namespace, links and firewall exist) exits non-zero and leaves nothing behind.
fn a_failed_up_leaves_nothing(before: &BTreeSet<String>) {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kube-node-failed-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kube.sh"))
        .args(["up", "--node"])
        .env("KEYWARD_KUBE_HOME", &home)
        .env("KEYWARD_KUBE_APISERVER_ARGS", "--no-such-flag")
        .output()
        .expect("run scripts/kube.sh up --node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up --node with a bad apiserver flag succeeded:\n{stderr}");
    assert!(stderr.contains("starting kube-apiserver"), "up failed before the node's network existed:\n{stderr}");
    let left: Vec<String> = node_traces(&home).difference(before).cloned().collect();
    assert!(left.is_empty(), "a failed up left these behind:\n{}", left.join("\n"));
}

#[test]
fn a_real_node_runs_pods_inside_the_machine_and_down_leaves_nothing() {
    // Normally empty; what the machine had before is allowed after.
    let before = node_traces(Path::new("/nonexistent"));
    a_failed_up_leaves_nothing(&before);
    let cluster = ControlPlane::start_with_node("node");
    let node = Node { bin: kube::bin_dir().to_path_buf(), cluster };
    let home = node.cluster.home.clone();
    assert_ne!(node_traces(&home), before, "the running node leaves no trace the check could find");

    node_is_ready_with_the_pause_image(&node);
    let image = import_probe_image(&node);
    a_pod_reaches_the_host_and_the_api_server(&node, image);
    a_missing_image_is_an_error_not_a_pull(&node);
    the_node_firewall_keeps_pods_inside(&node);

    // Pods still on the node when it goes down: their mounts, netns and cgroups too.
    node.apply(&pod("left-running", "keyward.local/pause:3.10.1", "Never", &[]));
    eventually(Duration::from_secs(60), "a Pod left running", || {
        node.pod("left-running")["status"]["phase"] == "Running"
    });
    node.cluster.down();
    let left: Vec<String> = node_traces(&home).difference(&before).cloned().collect();
    assert!(left.is_empty(), "down left these behind:\n{}", left.join("\n"));
}

//! keyward's chart on a real node (`scripts/kube.sh up --node`), for tests/node_chart.rs and
//! benches/pod_scale.rs: the node, keyward's image built from this build's binaries and
//! imported into it, `helm install`, and what the release's Pods, Lease and cgroups show.

use super::cluster::eventually;
use super::kube::{self, ControlPlane};
use super::repo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The network namespace of the machine's one node cluster.
pub const NETNS: &str = "keyward-node";
pub const RELEASE: &str = "keyward";
pub const RELEASE_NS: &str = "keyward-system";
/// `<fullname>-leader`; the full name is the release name, which already says keyward.
pub const LEASE: &str = "keyward-leader";
pub const PODS: &str = "app.kubernetes.io/instance=keyward";
pub const IMAGE_REPOSITORY: &str = "keyward.local/keyward";

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A control plane with a node. A failing test (a panic while it is alive) prints the release's
/// Pods, their logs and events, and the end of each node component's log before `down`.
pub struct Node {
    pub cluster: ControlPlane,
    pub bin: PathBuf,
    /// Namespaces whose MfaProviders a failure shows.
    pub namespaces: Vec<String>,
}

impl Node {
    /// `scripts/kube.sh up --node` once the machine's node is free (another test's node, or
    /// someone else's run, goes first).
    pub fn start(name: &str, namespaces: &[&str]) -> Node {
        wait_for_the_machines_node_to_be_free(name);
        let started = Instant::now();
        let cluster = ControlPlane::start_with_node(name);
        eprintln!("{name}: scripts/kube.sh up --node took {:?}", started.elapsed());
        Node {
            cluster,
            bin: kube::bin_dir().to_path_buf(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        }
    }

    pub fn env(&self, key: &str) -> &str {
        self.cluster.env.get(key).unwrap_or_else(|| panic!("up --node printed no {key}"))
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn apply(&self, manifest: &Value) {
        let name = manifest["metadata"]["name"].as_str().unwrap_or("x");
        let path = self.cluster.home.join(format!("manifest-{}-{name}.json", manifest["kind"].as_str().unwrap_or("x")));
        std::fs::write(&path, manifest.to_string()).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", &path.display().to_string()]);
    }

    pub fn helm(&self, args: &[&str]) -> Output {
        let state = self.cluster.home.join("helm");
        Command::new(self.bin.join("helm"))
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(args)
            .env("HELM_CONFIG_HOME", state.join("config"))
            .env("HELM_CACHE_HOME", state.join("cache"))
            .env("HELM_DATA_HOME", state.join("data"))
            .output()
            .expect("run helm")
    }

    /// `helm install|upgrade RELEASE charts/keyward -n RELEASE_NS -f <values>`.
    pub fn helm_chart(&self, verb: &str, values: &Value) -> Output {
        let values_file = self.cluster.home.join(format!("values-{verb}.json"));
        std::fs::write(&values_file, values.to_string()).expect("write values");
        let chart = repo().join("charts/keyward");
        self.helm(&[
            verb,
            RELEASE,
            &chart.display().to_string(),
            "-n",
            RELEASE_NS,
            "-f",
            &values_file.display().to_string(),
        ])
    }

    /// The release's Pods that are not being deleted.
    pub fn pods(&self) -> Vec<Value> {
        let list: Value =
            serde_json::from_str(&self.kubectl_ok(&["get", "pods", "-n", RELEASE_NS, "-l", PODS, "-o", "json"]))
                .expect("pod list JSON");
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect()
    }

    pub fn lease_holder(&self) -> String {
        let out = self.kubectl(&["get", "lease", LEASE, "-n", RELEASE_NS, "-o", "jsonpath={.spec.holderIdentity}"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `scripts/image.sh build` from the binaries beside `keyward` (this build's: target/debug
    /// for tests, target/release for benchmarks), then `scripts/image.sh load` into the
    /// node's containerd. Returns the image's name.
    pub fn build_and_load_the_image(&self, keyward: &Path, tag: &str) -> String {
        let binaries = keyward.parent().expect("binary directory");
        let out_dir = self.cluster.home.join(format!("image-{tag}"));
        let image = format!("{IMAGE_REPOSITORY}:{tag}");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join("scripts/image.sh"))
            .args(["build", "--strip-debug", "--tag", &image])
            .arg("--binaries")
            .arg(binaries)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .expect("run scripts/image.sh build");
        assert!(out.status.success(), "scripts/image.sh build: {}", text(&out));
        eprintln!("image build ({tag}) from {} took {:?}", binaries.display(), started.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tar = stdout.lines().find_map(|l| l.strip_prefix("KEYWARD_IMAGE_TAR=")).expect("KEYWARD_IMAGE_TAR");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join("scripts/image.sh"))
            .args(["load", tar])
            .env("KEYWARD_KUBE_BIN", &self.bin)
            .env("KEYWARD_CONTAINERD_ADDRESS", self.env("KEYWARD_CONTAINERD_ADDRESS"))
            .output()
            .expect("run scripts/image.sh load");
        assert!(out.status.success(), "scripts/image.sh load: {}", text(&out));
        eprintln!("image load took {:?}", started.elapsed());
        image
    }

    /// The memory cgroup (v1) of `pod`'s keyward container: the kubelet makes it under the
    /// node's cgroup root, named by the container's id.
    pub fn memory_cgroup(&self, pod: &Value) -> PathBuf {
        let id = pod["status"]["containerStatuses"][0]["containerID"].as_str().unwrap_or_default();
        let id = id.strip_prefix("containerd://").unwrap_or_else(|| panic!("container id {id:?}"));
        let uid = pod["metadata"]["uid"].as_str().expect("Pod uid");
        let root = Path::new("/sys/fs/cgroup/memory/keyward-node/kubepods");
        ["burstable", "besteffort", ""]
            .iter()
            .map(|class| root.join(class).join(format!("pod{uid}")).join(id))
            .find(|dir| dir.is_dir())
            .unwrap_or_else(|| panic!("no memory cgroup for container {id} of Pod {uid} under {}", root.display()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let show = |title: &str, args: &[&str]| {
            let out = self.kubectl(args);
            eprintln!("--- {title}\n{}", text(&out));
        };
        show("pods", &["get", "pods", "-A", "-o", "wide"]);
        show("describe pods", &["describe", "pods", "-n", RELEASE_NS]);
        show("lease", &["get", "lease", "-n", RELEASE_NS, "-o", "yaml"]);
        show("storage", &["get", "pv,pvc", "-A"]);
        for namespace in &self.namespaces {
            show("providers", &["get", "mfaproviders", "-n", namespace, "-o", "yaml"]);
        }
        show("events", &["get", "events", "-A", "--sort-by=.lastTimestamp"]);
        let names = self.kubectl(&["get", "pods", "-n", RELEASE_NS, "-o", "name"]);
        for pod in String::from_utf8_lossy(&names.stdout).lines() {
            show(&format!("logs {pod}"), &["logs", "-n", RELEASE_NS, pod, "--all-containers", "--tail=80"]);
            show(&format!("previous logs {pod}"), &["logs", "-n", RELEASE_NS, pod, "--previous", "--tail=40"]);
        }
        self.cluster.print_node_logs();
    }
}

pub fn pod_name(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Running, its container ready (the readiness probe passed) and never restarted.
pub fn ready_unrestarted(pod: &Value) -> bool {
    let statuses = pod["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    pod["status"]["phase"] == "Running"
        && !statuses.is_empty()
        && statuses.iter().all(|s| s["ready"] == true && s["restartCount"] == 0)
}

/// One node per machine: another test's node (tests/node.rs, someone else's run) goes first.
fn wait_for_the_machines_node_to_be_free(who: &str) {
    let busy = || {
        let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l.split_whitespace().next() == Some(NETNS))
    };
    if busy() {
        eprintln!("{who}: another node cluster is up (netns {NETNS}); waiting for it to go");
    }
    eventually(Duration::from_secs(1200), "the other node cluster to go down", || !busy());
}

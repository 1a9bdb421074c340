//! A real local Kubernetes control plane (kube-apiserver + etcd, `scripts/kube.sh up`) for
//! end-to-end tests, and the kubectl and helm built with it.
//!
//! Self-contained so that every test crate can use it: `#[path = "support/kube.rs"] mod kube;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding kube-apiserver, etcd, kubectl and helm of the pinned versions
/// (`scripts/kube.sh env`; builds them the first time, which takes many minutes).
pub fn bin_dir() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/kube.sh"))
            .arg("env")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/kube.sh env");
        assert!(out.status.success(), "scripts/kube.sh env failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let dir = text.lines().find_map(|l| l.strip_prefix("KEYWARD_KUBE_BIN=")).expect("KEYWARD_KUBE_BIN from env");
        PathBuf::from(dir)
    })
}

pub fn kubectl_path() -> PathBuf {
    bin_dir().join("kubectl")
}

pub fn helm_path() -> PathBuf {
    bin_dir().join("helm")
}

/// One running control plane; stopped and removed on drop, and by a watcher process when the
/// test binary exits without dropping it (statics are never dropped).
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
    /// The apiserver's own audit log: one JSON event per request, at Metadata level.
    pub audit_log: PathBuf,
    pub server: String,
    pub etcd_url: String,
    /// Every `KEY=VALUE` line `up` printed (with `--node`: `KEYWARD_NODE_IP`,
    /// `KEYWARD_NODE_NAME`, `KEYWARD_CONTAINERD_ADDRESS` too).
    pub env: BTreeMap<String, String>,
}

impl ControlPlane {
    /// Starts kube-apiserver and etcd under `target/tmp/kube-<name>` (removed first if a
    /// crashed run left it). `apiserver_args` are extra kube-apiserver flags.
    pub fn start(name: &str, apiserver_args: &str) -> ControlPlane {
        Self::start_with(name, apiserver_args, &[])
    }

    /// The control plane and a real node (`scripts/kube.sh up --node`): containerd, kubelet,
    /// kube-proxy, scheduler and controller-manager; returns once the node is Ready. One such
    /// cluster per machine at a time.
    pub fn start_with_node(name: &str) -> ControlPlane {
        Self::start_with(name, "", &["--node"])
    }

    fn start_with(name: &str, apiserver_args: &str, up_args: &[&str]) -> ControlPlane {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kube-{name}-{}", std::process::id()));
        let script = repo().join("scripts/kube.sh");
        bin_dir(); // the build's progress shows before the start
        let out = Command::new("bash")
            .arg(&script)
            .arg("up")
            .args(up_args)
            .env("KEYWARD_KUBE_HOME", &home)
            .env("KEYWARD_KUBE_APISERVER_ARGS", apiserver_args)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/kube.sh up");
        assert!(out.status.success(), "scripts/kube.sh up failed");
        let env: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let keep = std::env::var_os("KEYWARD_TEST_KEEP_KUBE").is_some();
        if keep {
            eprintln!("KEYWARD_TEST_KEEP_KUBE: leaving the control plane in {} running", home.display());
        }
        let watcher = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; KEYWARD_KUBE_HOME='{}' bash '{}' down",
            std::process::id(),
            home.display(),
            script.display()
        );
        // Deliberately not waited for: it outlives this process to stop the control plane.
        let watcher = Command::new("setsid")
            .args(["bash", "-c", if keep { "true" } else { &watcher }])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watcher");
        std::mem::forget(watcher);
        ControlPlane {
            kubeconfig: PathBuf::from(&env["KUBECONFIG"]),
            home,
            audit_log: PathBuf::from(&env["KEYWARD_KUBE_AUDIT_LOG"]),
            server: env["KEYWARD_KUBE_SERVER"].clone(),
            etcd_url: env["KEYWARD_ETCD_URL"].clone(),
            env,
        }
    }

    /// Compacts etcd's history up to its current revision, so that a watch resuming from an
    /// older resourceVersion gets 410 Gone (through etcd's JSON gateway: no etcdctl needed).
    /// Returns the revision compacted to.
    pub fn compact_etcd(&self) -> u64 {
        let post = |path: &str, body: &str| -> serde_json::Value {
            let out = Command::new("curl")
                .args(["-sf", "-X", "POST", &format!("{}{path}", self.etcd_url), "-d", body])
                .output()
                .expect("curl etcd");
            assert!(out.status.success(), "etcd {path}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).expect("etcd answers JSON")
        };
        // Any key: the answer's header carries the store's current revision.
        let range = post("/v3/kv/range", r#"{"key":"AA=="}"#);
        let revision: u64 = range["header"]["revision"].as_str().and_then(|r| r.parse().ok()).expect("etcd revision");
        post("/v3/kv/compaction", &format!(r#"{{"revision":"{revision}","physical":true}}"#));
        revision
    }

    /// Stops the kube-apiserver alone: etcd and every object stay (`kube.sh apiserver-stop`).
    pub fn stop_apiserver(&self) {
        self.script("apiserver-stop");
    }

    /// Starts the kube-apiserver again on its port with its flags and waits for /readyz.
    pub fn start_apiserver(&self) {
        self.script("apiserver-start");
    }

    /// Stops everything `up` started and removes its home (`kube.sh down`), now.
    pub fn down(&self) {
        self.script("down");
    }

    fn script(&self, command: &str) {
        let out = Command::new("bash")
            .arg(repo().join("scripts/kube.sh"))
            .arg(command)
            .env("KEYWARD_KUBE_HOME", &self.home)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/kube.sh");
        assert!(out.status.success(), "scripts/kube.sh {command} failed");
    }

    /// Prints the end of each node component's log (`up --node`), for a failing test to show
    /// before `down` removes them.
    pub fn print_node_logs(&self) {
        for name in ["containerd", "kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"] {
            let log = std::fs::read_to_string(self.home.join(format!("node/{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- {name} (last {} lines)", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    /// The apiserver's audit events (parsed), oldest first.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::env::var_os("KEYWARD_TEST_KEEP_KUBE").is_some() {
            return;
        }
        let _ = Command::new("bash")
            .arg(repo().join("scripts/kube.sh"))
            .arg("down")
            .env("KEYWARD_KUBE_HOME", &self.home)
            .stderr(Stdio::null())
            .status();
    }
}

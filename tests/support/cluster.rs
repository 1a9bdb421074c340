//! A Kubernetes API for end-to-end tests: a real local kube-apiserver and etcd
//! (`scripts/kube.sh up`, one per test binary) by default, or a user's own cluster (kind, k3d,
//! a cloud cluster) when `KEYWARD_E2E_KUBECONFIG` names its kubeconfig.
//!
//! keyward runs as the Helm chart's ServiceAccount: the RBAC objects the real `helm template`
//! renders are applied and the operator gets that ServiceAccount's token from the TokenRequest
//! API, so a permission the chart lacks is a real 403 in a test.

use super::kube::{self, ControlPlane};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Cluster {
    /// Admin credentials (system:masters locally).
    pub kubeconfig: PathBuf,
    /// The local control plane; None on a user's own cluster (no etcd or audit log to read).
    pub control_plane: Option<ControlPlane>,
    /// ServiceAccount kubeconfigs already made, by (namespace, lease): one token each.
    service_accounts: Mutex<BTreeMap<(String, String), PathBuf>>,
    dir: tempfile::TempDir,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The test binary's cluster, with keyward's CRDs applied and Established.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var("KEYWARD_E2E_KUBECONFIG") {
        Ok(path) if !path.is_empty() => Cluster::with_crds(PathBuf::from(path), None),
        _ => Cluster::local("e2e", ""),
    })
}

impl Cluster {
    /// A control plane of its own (for a test that needs apiserver flags of its own).
    pub fn local(name: &str, apiserver_args: &str) -> Cluster {
        let plane = ControlPlane::start(name, apiserver_args);
        Cluster::with_crds(plane.kubeconfig.clone(), Some(plane))
    }

    fn with_crds(kubeconfig: PathBuf, control_plane: Option<ControlPlane>) -> Cluster {
        let cluster = Cluster {
            kubeconfig,
            control_plane,
            service_accounts: Mutex::new(BTreeMap::new()),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let crds = super::repo().join("crds");
        cluster.kubectl_ok(&["apply", "--server-side", "-f", crds.to_str().expect("utf-8")]);
        for crd in [
            "employees.keyward.dev",
            "accessgrants.keyward.dev",
            "mfaproviders.keyward.dev",
            "revocationapprovals.keyward.dev",
        ] {
            cluster.kubectl_ok(&["wait", "--for=condition=Established", &format!("crd/{crd}"), "--timeout=60s"]);
        }
        cluster
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kube::kubectl_path()).args(args).env("KUBECONFIG", &self.kubeconfig).output().expect("run kubectl")
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}{}", super::stdout(&out), super::stderr(&out));
        super::stdout(&out)
    }

    /// kubectl with `input` on stdin; must succeed.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(kube::kubectl_path())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        let out = child.wait_with_output().expect("kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}{}", super::stdout(&out), super::stderr(&out));
        super::stdout(&out)
    }

    /// The chart's ServiceAccount for a release in `namespace` that watches that namespace and
    /// leads on `lease`: its RBAC objects from the real `helm template` applied, and a
    /// kubeconfig with its token (TokenRequest). `server` overrides the API server URL (a
    /// fault proxy in front of it).
    pub fn service_account_kubeconfig(&self, namespace: &str, lease: &str, server: Option<&str>) -> PathBuf {
        let key = (namespace.to_string(), format!("{lease}@{}", server.unwrap_or("")));
        if let Some(path) = self.service_accounts.lock().expect("lock").get(&key) {
            return path.clone();
        }
        self.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n"),
        );
        let rbac = chart_rbac(namespace, lease);
        self.kubectl_stdin(&["apply", "-f", "-"], &rbac);
        let token = self.kubectl_ok(&["-n", namespace, "create", "token", "keyward", "--duration=2h"]);
        let view: serde_json::Value =
            serde_json::from_str(&self.kubectl_ok(&["config", "view", "--raw", "--minify", "-o", "json"]))
                .expect("kubeconfig as JSON");
        let cluster = &view["clusters"][0]["cluster"];
        let server = server.map(str::to_string).unwrap_or_else(|| cluster["server"].as_str().expect("server").into());
        let ca = cluster["certificate-authority-data"]
            .as_str()
            .map(|ca| format!("\n      certificate-authority-data: {ca}"));
        let path = self
            .dir
            .path()
            .join(format!("sa-{namespace}-{lease}-{}.kubeconfig", self.service_accounts.lock().expect("lock").len()));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n  - name: c\n    cluster:\n      server: {server}{}\n\
                 users:\n  - name: keyward\n    user:\n      token: {}\n\
                 contexts:\n  - name: c\n    context: {{cluster: c, user: keyward, namespace: {namespace}}}\ncurrent-context: c\n",
                ca.unwrap_or_default(),
                token.trim()
            ),
        )
        .expect("write ServiceAccount kubeconfig");
        self.service_accounts.lock().expect("lock").insert(key, path.clone());
        path
    }

    /// `keyward run` for one namespace, as its own process, as the chart's ServiceAccount.
    pub fn operator(&self, namespace: &str, lease: &str, audit_log: &Path) -> Operator {
        self.operator_via(namespace, lease, audit_log, None)
    }

    /// Like `operator`, with the API server reached through `server` (a fault proxy).
    pub fn operator_via(&self, namespace: &str, lease: &str, audit_log: &Path, server: Option<&str>) -> Operator {
        self.operator_with(namespace, lease, audit_log, server, &[])
    }

    /// Like `operator_via`, with more `keyward run` flags (`--paused`).
    pub fn operator_with(
        &self,
        namespace: &str,
        lease: &str,
        audit_log: &Path,
        server: Option<&str>,
        flags: &[&str],
    ) -> Operator {
        let kubeconfig = self.service_account_kubeconfig(namespace, lease, server);
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        // KEYWARD_TEST_BIN: another build of keyward (a benchmark comparing against a baseline).
        let binary = std::env::var_os("KEYWARD_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_keyward").into());
        let child = Command::new(binary)
            .args(["run", "--namespaces", namespace, "--lease-namespace", namespace, "--lease-name", lease])
            .args(["--lease-duration", "3s", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--audit-log")
            .arg(audit_log)
            .args(flags)
            .env("KUBECONFIG", &kubeconfig)
            .env("KEYWARD_LOG", std::env::var("KEYWARD_TEST_LOG").unwrap_or_else(|_| "info,kube=warn".into()))
            .env("KEYWARD_LOG_FORMAT", "json")
            // As the chart sets it (downward API), for the audit records.
            .env("KEYWARD_SERVICE_ACCOUNT", "keyward")
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("reopen log"))
            .spawn()
            .expect("spawn keyward run");
        Operator {
            child: Some(child),
            port,
            log,
            namespace: namespace.to_string(),
            audit_log: audit_log.to_path_buf(),
            kubeconfig: self.kubeconfig.clone(),
        }
    }

    /// The API server's address (host:port), for a proxy in front of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        let view: serde_json::Value =
            serde_json::from_str(&self.kubectl_ok(&["config", "view", "--minify", "-o", "json"])).expect("kubeconfig");
        let server = view["clusters"][0]["cluster"]["server"].as_str().expect("server").to_string();
        let url = url::Url::parse(&server).expect("server URL");
        let host = url.host_str().expect("host").to_string();
        let port = url.port_or_known_default().expect("port");
        (host.as_str(), port).to_socket_addrs().expect("resolve").next().expect("an address")
    }
}

/// The chart's ServiceAccount, Roles and RoleBindings for a release `keyward` in `namespace`
/// watching only that namespace, as the real `helm template` renders them.
fn chart_rbac(namespace: &str, lease: &str) -> String {
    let out = Command::new(kube::helm_path())
        .arg("template")
        // A release per lease, as two installations are: their Roles must not overwrite each
        // other's. One ServiceAccount, `keyward`, for the tokens and the audit-log filters.
        .arg(lease)
        .arg(super::repo().join("charts/keyward"))
        .args(["--set", "serviceAccount.name=keyward", "--set", "providerHosts={127.0.0.1}"])
        .args(["--namespace", namespace, "--set", &format!("watch.namespaces={{{namespace}}}")])
        .args(["--set", &format!("leaderElection.leaseName={lease}"), "--set", "crds.install=false"])
        .output()
        .expect("run helm template");
    assert!(out.status.success(), "helm template: {}", super::stderr(&out));
    let text = super::stdout(&out);
    let wanted = ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"];
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("helm template YAML");
        if value["kind"].as_str().is_some_and(|k| wanted.contains(&k)) {
            docs.push(serde_yaml::to_string(&value).expect("yaml"));
        }
    }
    assert!(docs.len() >= 3, "the chart renders a ServiceAccount, Roles and RoleBindings: {text}");
    docs.join("---\n")
}

pub struct Operator {
    child: Option<Child>,
    pub port: u16,
    log: tempfile::NamedTempFile,
    namespace: String,
    audit_log: PathBuf,
    /// The admin's, to read what the operator wrote into the namespace.
    kubeconfig: PathBuf,
}

impl Operator {
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    pub fn is_leader(&self) -> bool {
        self.get("/metrics").is_some_and(|m| m.lines().any(|l| l == "keyward_leader 1"))
    }

    /// The process id, while it runs (to read its memory from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGTERM, then wait: the graceful path (releases the Lease).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM without waiting: the shutdown runs while the test looks on.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: a crash, nothing released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Keeps everything this operator showed for the secrets scan ([`super::shown`]): its
    /// metrics (while it runs), log and audit lines, and the namespace's Events and keyward
    /// objects with their status.
    fn record_shown(&mut self) {
        use super::shown::{record, record_audit};
        if self.running() {
            record("metrics", &self.get("/metrics").unwrap_or_default());
        }
        self.stop();
        record("operator-log", &self.log());
        record_audit(&self.audit_log);
        let kinds = "events,employees,accessgrants,mfaproviders,revocationapprovals,leases,configmaps";
        let objects = Command::new(kube::kubectl_path())
            .args(["-n", &self.namespace, "get", kinds, "-o", "yaml", "--request-timeout=10s"])
            .env("KUBECONFIG", &self.kubeconfig)
            .output();
        if let Ok(objects) = objects {
            record("objects", &String::from_utf8_lossy(&objects.stdout));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.record_shown();
        // A failed test shows what the operator said (its last lines are the useful ones).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(400).collect();
            eprintln!("--- keyward run log (last {} lines) ---", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Polls `check` until it holds or `timeout` passes; returns the time it took.
pub fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

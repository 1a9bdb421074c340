//! A Kubernetes API for end-to-end tests: the kube-double test server by default, or a real
//! cluster (kind, k3d) when `KEYWARD_E2E_KUBECONFIG` names its kubeconfig.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Cluster {
    pub kubeconfig: PathBuf,
    /// The test double, when no real cluster is given; fault injection needs it.
    pub double: Option<kube_double::Server>,
    _dir: Option<tempfile::TempDir>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let cluster = match std::env::var("KEYWARD_E2E_KUBECONFIG") {
            Ok(path) if !path.is_empty() => Cluster { kubeconfig: PathBuf::from(path), double: None, _dir: None },
            _ => {
                let server = kube_double::Server::start_blocking().expect("start kube-double");
                let dir = tempfile::tempdir().expect("tempdir");
                let kubeconfig = dir.path().join("kubeconfig");
                server.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
                Cluster { kubeconfig, double: Some(server), _dir: Some(dir) }
            }
        };
        let crds = super::repo().join("crds");
        let out = cluster.kubectl(&["apply", "-f", crds.to_str().expect("utf-8")]);
        assert!(out.status.success(), "kubectl apply -f crds/: {}", super::stderr(&out));
        for crd in ["employees.keyward.dev", "accessgrants.keyward.dev", "mfaproviders.keyward.dev"] {
            let out = cluster.kubectl(&["wait", "--for=condition=Established", &format!("crd/{crd}"), "--timeout=60s"]);
            assert!(out.status.success(), "CRD {crd} established: {}", super::stderr(&out));
        }
        cluster
    })
}

impl Cluster {
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl").args(args).env("KUBECONFIG", &self.kubeconfig).output().expect("run kubectl")
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}{}", super::stdout(&out), super::stderr(&out));
        super::stdout(&out)
    }

    /// `keyward run` for one namespace, as its own process.
    pub fn operator(&self, namespace: &str, lease: &str, audit_log: &Path) -> Operator {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["run", "--namespaces", namespace, "--lease-namespace", namespace, "--lease-name", lease])
            .args(["--lease-duration", "3s", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--audit-log")
            .arg(audit_log)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KEYWARD_LOG", "info,kube=warn")
            .env("KEYWARD_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("reopen log"))
            .spawn()
            .expect("spawn keyward run");
        Operator { child: Some(child), port, log }
    }
}

pub struct Operator {
    child: Option<Child>,
    pub port: u16,
    log: tempfile::NamedTempFile,
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

    /// SIGKILL: a crash, nothing released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
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

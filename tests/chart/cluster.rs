//! The chart against a real Kubernetes control plane: kube-apiserver and etcd started by
//! `scripts/kube.sh up` (`support/kube.rs`), driven by the kubectl and helm built with them.
//! Included from tests/chart.rs.
//!
//! One control plane serves every test of the binary that stays in namespaces of its own
//! ([`Cluster::shared`], which holds keyward's CRDs from `crds/`); a test that owns
//! cluster-scoped objects (the CRDs themselves, a Helm release) or acts on every namespace
//! (the operator with cluster-wide RBAC) starts one of its own (~5 s).
//! There is no kubelet and no controller-manager: Pods never start, namespaces never finish
//! deleting, nothing is garbage-collected. The tests check objects, never Pods.

use super::helm::{self, Release, Rendered, repo};
use super::kube::{self, ControlPlane};
use super::rbac::{self, ApiRequest};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running control plane and the tools pointed at it.
struct Cluster {
    plane: ControlPlane,
    /// kubectl's and helm's discovery cache, private to this control plane.
    cache: PathBuf,
}

/// The shared control plane and what installing keyward's CRDs on it printed.
struct Shared {
    cluster: Cluster,
    crds_applied: Output,
}

fn shared_plane() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let cluster = Cluster::start("chart");
        let crds_applied = cluster.apply_crds();
        Shared { cluster, crds_applied }
    })
}

impl Cluster {
    /// A control plane of its own, stopped when dropped.
    fn start(name: &str) -> Self {
        let plane = ControlPlane::start(name, "");
        let cache = plane.home.join("kubectl-cache");
        Cluster { plane, cache }
    }

    fn shared() -> &'static Cluster {
        &shared_plane().cluster
    }

    /// Installs keyward's CRDs from crds/ as a cluster that manages them outside Helm does
    /// (docs/helm.md) and waits until they are served; returns what kubectl printed.
    fn apply_crds(&self) -> Output {
        let applied = self.kubectl(&["apply", "--server-side", "-f", &crds_dir()], None);
        assert!(applied.status.success(), "crds/: {}", text(&applied));
        self.ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"], None);
        applied
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(kube::kubectl_path())
            .args(args)
            .env("KUBECONFIG", &self.plane.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
        drop(input);
        child.wait_with_output().expect("kubectl")
    }

    /// `kubectl ARGS`, which must succeed; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get", "-o", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all, None)).expect("kubectl get -o json")
    }

    /// The items of `kubectl get -o json ARGS`.
    fn items(&self, args: &[&str]) -> Vec<Value> {
        self.get(args)["items"].as_array().cloned().unwrap_or_default()
    }

    fn namespaces(&self, names: &[&str]) {
        let docs: Vec<String> =
            names.iter().map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n")).collect();
        self.ok(&["apply", "-f", "-"], Some(&docs.join("---\n")));
    }

    /// `helm ARGS` against this control plane.
    fn helm(&self, args: &[&str]) -> Output {
        helm::command()
            .args(args)
            .env("KUBECONFIG", &self.plane.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .output()
            .expect("run helm")
    }

    /// `helm ARGS`, which must succeed; returns stdout.
    fn helm_ok(&self, args: &[&str]) -> String {
        let out = self.helm(args);
        assert!(out.status.success(), "helm {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn crds_dir() -> String {
    repo().join("crds").display().to_string()
}

/// Objects as one multi-document YAML stream (JSON documents are YAML).
fn stream(objects: &[Value]) -> String {
    objects.iter().map(Value::to_string).collect::<Vec<_>>().join("\n---\n")
}

/// The rendered release's objects as one stream for `kubectl apply -f -`.
fn manifest(release: &Release) -> String {
    stream(&helm::render(release).objects())
}

/// Every object under `dir` (files in name order, as `kubectl apply -R` takes them) moved
/// into namespace `ns`, without the Namespace objects: the examples all live in `acme`, and
/// tests sharing a control plane must not share a namespace.
fn moved_into(dir: &Path, ns: &str) -> String {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    files(dir, &mut paths);
    let objects: Vec<Value> = paths
        .iter()
        .flat_map(|p| helm::parse_documents(&std::fs::read_to_string(p).unwrap()).unwrap())
        .filter(|o| o["kind"] != "Namespace")
        .map(|mut o| {
            o["metadata"]["namespace"] = json!(ns);
            o
        })
        .collect();
    stream(&objects)
}

fn people_tree() -> PathBuf {
    repo().join("examples/gitops/people")
}

/// Polls `f` every 250 ms until it returns Some, for at most `limit`.
fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------------------
// kubectl apply

#[test]
fn crds_apply_server_side_without_conflicts_or_warnings() {
    let shared = shared_plane();
    let first = &shared.crds_applied;
    let stdout = String::from_utf8_lossy(&first.stdout);
    for crd in ["accessgrants", "employees", "mfaproviders"] {
        let line = format!("customresourcedefinition.apiextensions.k8s.io/{crd}.keyward.dev serverside-applied");
        assert!(stdout.contains(&line), "{line:?} missing from:\n{stdout}");
    }
    assert!(first.stderr.is_empty(), "warnings on a fresh cluster: {}", String::from_utf8_lossy(&first.stderr));
    // Again, as an upgrade applies them: still no conflict and no warning, without
    // --force-conflicts.
    let again = shared.cluster.kubectl(&["apply", "--server-side", "-f", &crds_dir()], None);
    assert!(again.status.success() && again.stderr.is_empty(), "{}", text(&again));
    // Every CRD is served (Established) and its schema is structural (no NonStructuralSchema).
    let crds = shared.cluster.items(&["crd", "-l", "!app.kubernetes.io/managed-by"]);
    assert_eq!(crds.len(), 4);
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let conditions = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let status = |kind: &str| conditions.iter().find(|c| c["type"] == kind).map(|c| c["status"].clone());
        assert_eq!(status("Established"), Some(json!("True")), "{name}: {conditions:?}");
        assert_ne!(status("NonStructuralSchema"), Some(json!("True")), "{name}: {conditions:?}");
    }
}

#[test]
fn rendered_manifests_apply_with_kubectl() {
    // The chart's CRDs are created here: a control plane of its own.
    let cluster = Cluster::start("apply");
    // acme: the people tree's namespace (the platform creates it, examples/gitops/platform).
    cluster.namespaces(&["keyward-system", "acme"]);
    let defaults = manifest(&Release::new(json!({})));
    let out = cluster.kubectl(&["apply", "-f", "-"], Some(&defaults));
    assert!(out.status.success() && out.stderr.is_empty(), "{}", text(&out));
    let out = String::from_utf8_lossy(&out.stdout);
    for created in [
        "customresourcedefinition.apiextensions.k8s.io/employees.keyward.dev created",
        "deployment.apps/keyward created",
        "role.rbac.authorization.k8s.io/keyward created",
        "networkpolicy.networking.k8s.io/keyward created",
        "poddisruptionbudget.policy/keyward created",
        "service/keyward-metrics created",
    ] {
        assert!(out.contains(created), "{created:?} missing from:\n{out}");
    }
    // Applying again changes nothing. kubectl still says "configured" for the Deployment — the
    // API server defaults `fieldRef.apiVersion: v1` inside the token volume's projected
    // `sources`, a list kubectl's three-way patch replaces whole, so its patch is never empty —
    // and for the PodDisruptionBudget, whose `spec.selector` it patches with strategy
    // "replace"; but neither patch changes anything, so no resourceVersion moves.
    let versions = || -> Vec<(String, String)> {
        let listed: Value =
            serde_json::from_str(&cluster.ok(&["get", "-f", "-", "-o", "json"], Some(&defaults))).unwrap();
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let name = format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap());
                (name, o["metadata"]["resourceVersion"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let before = versions();
    assert_eq!(before.len(), 20, "{before:?}");
    cluster.ok(&["apply", "-f", "-"], Some(&defaults));
    assert_eq!(versions(), before, "applying the same manifests again changed objects");
    // Server-side apply takes the same objects over. Its only conflicts are with the atomic
    // fields the API server defaulted `fieldRef.apiVersion` in: their live value differs from
    // the manifest, and kubectl's client-side apply owns them. Those need --force-conflicts.
    let ssa = cluster.kubectl(&["apply", "--server-side", "-f", "-"], Some(&defaults));
    if !ssa.status.success() {
        let stderr = String::from_utf8_lossy(&ssa.stderr);
        let conflicts: Vec<&str> = stderr.lines().filter(|l| l.starts_with("- .")).collect();
        assert!(
            !conflicts.is_empty()
                && conflicts.iter().all(|c| c.ends_with(".fieldRef") || c.ends_with(".projected.sources")),
            "server-side apply after client-side apply: {stderr}"
        );
        cluster.ok(&["apply", "--server-side", "--force-conflicts", "-f", "-"], Some(&defaults));
    }

    let deployment = cluster.get(&["deployment", "keyward", "-n", "keyward-system"]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let crd = cluster.get(&["crd", "employees.keyward.dev"]);
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");

    // The CRDs the chart installed serve and validate keyward's objects.
    cluster.ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"], None);
    cluster.ok(&["apply", "-R", "-f", people_tree().to_str().unwrap()], None);
    let employees = cluster.ok(&["get", "employees", "-n", "acme"], None);
    assert!(employees.contains("alice@acme.example") && employees.contains("bob@acme.example"), "{employees}");
}

#[test]
fn a_namespaced_install_applies_with_kubectl() {
    let cluster = Cluster::shared();
    let (release_ns, watched) = ("ns-install", ["ns-install-acme", "ns-install-contractors"]);
    cluster.namespaces(&[release_ns, watched[0], watched[1]]);
    // The release without the ServiceMonitor and the PrometheusRule, whose CRDs belong to the
    // Prometheus Operator (the CRDs are keyward's from crds/: crds.install is off here).
    let mut values = super::everything_on();
    values["serviceMonitor"]["enabled"] = json!(false);
    values["prometheusRule"]["enabled"] = json!(false);
    values["watch"]["namespaces"] = json!(watched);
    let out = cluster.ok(&["apply", "-f", "-"], Some(&manifest(&Release::new(values).named("nsinstall", release_ns))));
    assert!(out.contains("networkpolicy.networking.k8s.io/nsinstall-keyward created"), "{out}");
    let mut placed: Vec<String> = cluster
        .items(&["roles", "-A", "-l", "app.kubernetes.io/instance=nsinstall"])
        .iter()
        .map(|r| {
            format!("{}/{}", r["metadata"]["namespace"].as_str().unwrap(), r["metadata"]["name"].as_str().unwrap())
        })
        .collect();
    placed.sort();
    assert_eq!(
        placed,
        [
            "ns-install-acme/nsinstall-keyward",
            "ns-install-contractors/nsinstall-keyward",
            "ns-install/nsinstall-keyward-leader-election"
        ]
    );
    assert_eq!(cluster.items(&["clusterroles", "-l", "app.kubernetes.io/instance=nsinstall"]), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------
// The CRDs as the API server serves them

#[test]
fn the_api_server_rejects_invalid_objects_with_the_crd_schema_and_cel_messages() {
    let cluster = Cluster::shared();
    let ns = "invalid";
    cluster.namespaces(&[ns]);
    let cases = [
        (
            "an unknown state",
            format!(
                "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: mallory, namespace: {ns}}}\n\
                 spec: {{email: mallory@acme.example, state: Gone}}\n"
            ),
            r#"spec.state: Unsupported value: "Gone""#,
        ),
        (
            "no provider block",
            format!(
                "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: nothing, namespace: {ns}}}\n\
                 spec: {{userMapping: email}}\n"
            ),
            "exactly one provider block must be set",
        ),
        (
            "an http URL that is not loopback",
            format!(
                "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: plain, namespace: {ns}}}\n\
                 spec: {{privacyidea: {{url: 'http://pi.acme.example', realm: corp, \
                 credentials: {{secretRef: {{name: pi-admin}}}}}}}}\n"
            ),
            "url must be https (http only for loopback)",
        ),
        (
            "an unknown field",
            format!(
                "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {{name: typo, namespace: {ns}}}\n\
                 spec: {{email: typo@acme.example, rolez: [sre]}}\n"
            ),
            r#"unknown field "spec.rolez""#,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, object, want) in &cases {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(object));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains(want) {
            wrong.push(format!("{what}: expected {want:?}, got exit {:?}: {}", out.status.code(), text(&out)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(cluster.items(&["employees,mfaproviders", "-n", ns]), Vec::<Value>::new(), "nothing was stored");
    // The Employee with a known state is accepted: the failure was about the field named.
    let good = "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {name: mallory, namespace: invalid}\n\
                spec: {email: mallory@acme.example, state: Offboarded}\n";
    cluster.ok(&["apply", "-f", "-"], Some(good));
}

#[test]
fn kubectl_explain_documents_the_employee_spec() {
    let cluster = Cluster::shared();
    // The API server publishes a new CRD's OpenAPI a moment after it is Established.
    let explained = eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&["explain", "employee.spec"], None);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    })
    .expect("kubectl explain employee.spec");
    assert!(explained.lines().any(|l| l.starts_with("KIND:") && l.ends_with(" Employee")), "{explained}");
    assert!(explained.contains("FIELDS:"), "{explained}");
    for field in ["email", "state", "roles", "identities"] {
        assert!(explained.lines().any(|l| l.trim_start().starts_with(&format!("{field}\t"))), "{field}: {explained}");
    }
    let state = cluster.ok(&["explain", "employee.spec.state"], None);
    assert!(state.contains("Offboarded"), "the enum is documented: {state}");
    // The field documentation is the `///` of the Rust type, which every field has.
    let crd = cluster.get(&["crd", "employees.keyward.dev"]);
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let undocumented: Vec<&String> =
        spec.as_object().unwrap().iter().filter(|(_, f)| f["description"].as_str().is_none()).map(|(k, _)| k).collect();
    assert!(undocumented.is_empty(), "Employee spec fields without documentation: {undocumented:?}");
}

// ---------------------------------------------------------------------------------------
// helm install, upgrade, rollback, uninstall

#[test]
fn helm_install_upgrade_rollback_and_uninstall_keep_the_crds_and_the_people() {
    // The release owns the CRDs and a ClusterRole: a control plane of its own.
    let cluster = Cluster::start("helm");
    cluster.namespaces(&["acme"]);
    let chart = helm::chart_dir().display().to_string();
    let release = |action: &str, values: Value| {
        let file = helm::values_file(&values);
        let path = file.path().display().to_string();
        let mut args = vec![action, "keyward", chart.as_str(), "-n", "keyward-system", "-f", path.as_str()];
        if action == "install" {
            args.push("--create-namespace");
        }
        cluster.helm_ok(&args)
    };
    let replicas = || {
        cluster.ok(&["get", "deployment", "keyward", "-n", "keyward-system", "-o", "jsonpath={.spec.replicas}"], None)
    };
    // The operator's own ClusterRole (the roles for people, keyward-view/-edit/-approve, come
    // with every install that creates RBAC).
    let cluster_roles = || {
        let roles = cluster.items(&["clusterroles", "-l", "app.kubernetes.io/instance=keyward"]);
        roles.iter().filter(|r| r["metadata"]["name"] == "keyward").count()
    };
    let acme_roles = || cluster.items(&["roles", "-n", "acme", "-l", "app.kubernetes.io/instance=keyward"]).len();

    let hosts = json!([helm::PROVIDER_HOST]);
    let signing_key = || {
        cluster.ok(
            &["get", "secret", "keyward-audit-signing", "-n", "keyward-system", "-o", "jsonpath={.data.signer}"],
            None,
        )
    };

    // 1: cluster-wide, audit to a file signed with the key the chart generates.
    let installed = release(
        "install",
        json!({"providerHosts": hosts, "watch": {"clusterWide": true}, "audit": {"destination": "file"}}),
    );
    let key = signing_key();
    assert!(!key.is_empty(), "a signing key was generated");
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    assert!(installed.contains("kubectl -n keyward-system rollout status deployment/keyward"), "NOTES: {installed}");
    assert_eq!(replicas(), "2");
    assert_eq!((cluster_roles(), acme_roles()), (1, 0));
    cluster.ok(
        &["wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=keyward"],
        None,
    );
    cluster.ok(&["apply", "-R", "-f", people_tree().to_str().unwrap()], None);

    // 2: namespaced, three replicas: the ClusterRole goes, a Role in acme comes.
    release(
        "upgrade",
        json!({"providerHosts": hosts, "watch": {"namespaces": ["acme"]}, "replicaCount": 3,
               "audit": {"destination": "file"}}),
    );
    assert_eq!(replicas(), "3");
    assert_eq!(signing_key(), key, "an upgrade keeps the generated key: old checkpoints stay verifiable");
    assert_eq!((cluster_roles(), acme_roles()), (0, 1));

    // 3: back to revision 1.
    cluster.helm_ok(&["rollback", "keyward", "1", "-n", "keyward-system"]);
    assert_eq!(replicas(), "2");
    assert_eq!((cluster_roles(), acme_roles()), (1, 0));
    let history: Value =
        serde_json::from_str(&cluster.helm_ok(&["history", "keyward", "-n", "keyward-system", "-o", "json"])).unwrap();
    let described: Vec<(i64, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["revision"].as_i64().unwrap(), h["description"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(described.len(), 3, "{history}");
    assert_eq!(described[2], (3, "Rollback to 1".to_string()), "{history}");
    // Helm keeps each revision in a Secret of the release namespace (the default storage driver).
    let records = cluster.items(&["secrets", "-n", "keyward-system", "-l", "owner=helm,name=keyward"]);
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(records.iter().all(|s| s["type"] == "helm.sh/release.v1"), "{records:?}");

    // Uninstalled: the operator is gone, the CRDs and every Employee are still there.
    let uninstalled = cluster.helm_ok(&["uninstall", "keyward", "-n", "keyward-system"]);
    assert!(uninstalled.contains("kept due to the resource policy"), "{uninstalled}");
    for crd in ["accessgrants", "employees", "mfaproviders"] {
        assert!(uninstalled.contains(&format!("{crd}.keyward.dev")), "{crd}: {uninstalled}");
    }
    assert_eq!(cluster.items(&["deployments", "-n", "keyward-system"]), Vec::<Value>::new());
    assert_eq!(cluster_roles(), 0);
    assert_eq!(cluster.items(&["secrets", "-n", "keyward-system", "-l", "owner=helm"]), Vec::<Value>::new());
    assert_eq!(cluster.items(&["crd", "-l", "app.kubernetes.io/part-of=keyward"]).len(), 4);
    assert_eq!(cluster.items(&["employees", "-n", "acme"]).len(), 2, "the people survive the uninstall");
    assert_eq!(signing_key(), key, "so does the signing key: a reinstall signs on with it");
}

// ---------------------------------------------------------------------------------------
// The operator as deployed, with the chart's RBAC

/// What `keyward run` did as the chart's ServiceAccount.
struct OperatorRun {
    /// Whether it held the Lease as its POD_NAME and had written the status of every
    /// Employee, MfaProvider and AccessGrant.
    reconciled: bool,
    /// Its resource requests, as RBAC authorized them.
    requests: Vec<ApiRequest>,
    /// Requests the API server answered 403.
    denied: Vec<String>,
    log: String,
}

/// The env of the rendered Pod's container, with the downward API filled in as the kubelet
/// would.
fn container_env(pod: &Value, pod_name: &str, pod_namespace: &str) -> Vec<(String, String)> {
    let container = &pod["containers"][0];
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_string();
        let value = match (&var["value"], var["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
            (Value::String(v), _) => v.clone(),
            (_, Some("metadata.name")) => pod_name.to_string(),
            (_, Some("metadata.namespace")) => pod_namespace.to_string(),
            (_, Some("spec.serviceAccountName")) => pod["serviceAccountName"].as_str().expect("named").to_string(),
            _ => panic!("the test cannot fill in env {var}"),
        };
        env.push((name, value));
    }
    env
}

/// The release's ServiceAccount with the chart's RBAC applied, and a kubeconfig that
/// authenticates as it.
struct ServiceAccount {
    /// Its user name, as the audit log records it.
    user: String,
    kubeconfig: PathBuf,
    /// Holds the kubeconfig (and the operator's log).
    dir: tempfile::TempDir,
}

impl ServiceAccount {
    fn of(cluster: &Cluster, release: &Release, rendered: &Rendered) -> Self {
        let rbac_kinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
        let rbac: Vec<Value> =
            rendered.objects().into_iter().filter(|o| rbac_kinds.contains(&o["kind"].as_str().unwrap_or(""))).collect();
        cluster.ok(&["apply", "-f", "-"], Some(&stream(&rbac)));
        let pod = &rendered.one("Deployment")["spec"]["template"]["spec"];
        let name = pod["serviceAccountName"].as_str().unwrap();
        // A TokenRequest, as the kubelet makes for the pod's projected token volume.
        let token = cluster.ok(&["create", "token", name, "-n", &release.namespace, "--duration", "1h"], None);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        kubeconfig_with_token(cluster, token.trim(), &kubeconfig);
        ServiceAccount { user: format!("system:serviceaccount:{}:{name}", release.namespace), kubeconfig, dir }
    }

    /// `kubectl ARGS` as this ServiceAccount.
    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kube::kubectl_path())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .output()
            .expect("run kubectl")
    }
}

/// The admin kubeconfig with the user swapped for a bearer token.
fn kubeconfig_with_token(cluster: &Cluster, token: &str, path: &Path) {
    let mut config: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster.plane.kubeconfig).unwrap()).expect("kubeconfig");
    config["users"] = json!([{"name": "service-account", "user": {"token": token}}]);
    config["contexts"][0]["context"]["user"] = json!("service-account");
    std::fs::write(path, serde_yaml::to_string(&config).unwrap()).unwrap();
}

/// Applies the release's RBAC, then runs `keyward run` with the rendered Deployment's args
/// and env and a token of the chart's ServiceAccount, until it holds the Lease and has written
/// the status of every keyward object in `people_ns` (at most 60 s).
fn run_operator_as_deployed(cluster: &Cluster, release: &Release, rendered: &Rendered, people_ns: &str) -> OperatorRun {
    let account = ServiceAccount::of(cluster, release, rendered);
    let pod = rendered.one("Deployment")["spec"]["template"]["spec"].clone();
    let container = &pod["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        // The pod's port is not free on a shared machine.
        .map(|a| if a.starts_with("--listen=") { "--listen=127.0.0.1:0".to_string() } else { a.to_string() })
        .collect();
    let pod_name = format!("{}-0", release.name);
    let log_path = account.dir.path().join("keyward.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(container_env(&pod, &pod_name, &release.namespace))
        .env("KUBECONFIG", &account.kubeconfig)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start keyward run");

    let lease_name = args.iter().find_map(|a| a.strip_prefix("--lease-name=")).unwrap().to_string();
    let reconciled = eventually(Duration::from_secs(60), || {
        let lease = cluster.kubectl(&["get", "lease", &lease_name, "-n", &release.namespace, "-o", "json"], None);
        let holder = serde_json::from_slice::<Value>(&lease.stdout).ok().map(|l| l["spec"]["holderIdentity"].clone());
        let objects = cluster.items(&["employees,mfaproviders,accessgrants", "-n", people_ns]);
        let done = holder == Some(json!(pod_name))
            && objects.iter().any(|o| o["kind"] == "Employee")
            && objects.iter().all(|o| !o["status"].is_null());
        done.then_some(())
    })
    .is_some();
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();

    let (requests, denied) = audited_requests(cluster, &account.user);
    OperatorRun { reconciled, requests, denied, log: std::fs::read_to_string(&log_path).unwrap_or_default() }
}

/// The resource requests of one user in the API server's audit log, as RBAC authorized them,
/// and those it answered 403.
fn audited_requests(cluster: &Cluster, user: &str) -> (Vec<ApiRequest>, Vec<String>) {
    let events: Vec<Value> =
        cluster.plane.audit_events().into_iter().filter(|e| e["user"]["username"] == user).collect();
    let requests = events
        .iter()
        // Discovery (/api, /apis) is not a resource request: no objectRef.
        .filter(|e| e["objectRef"]["resource"].is_string())
        .map(|e| {
            let object = &e["objectRef"];
            let field = |k: &str| object[k].as_str().filter(|s| !s.is_empty()).map(String::from);
            ApiRequest {
                verb: e["verb"].as_str().unwrap_or_default().to_string(),
                group: field("apiGroup").unwrap_or_default(),
                resource: field("resource").unwrap_or_default(),
                subresource: field("subresource"),
                namespace: field("namespace"),
            }
        })
        .collect();
    let denied = events
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(|e| format!("{} {}", e["verb"].as_str().unwrap_or(""), e["requestURI"].as_str().unwrap_or("")))
        .collect();
    (requests, denied)
}

/// The real operator, started with the args and env of the rendered Deployment and the
/// chart's ServiceAccount's token, against the real API server: it takes its Lease, writes
/// status, the API server denies none of its requests, and every request is one the chart
/// grants. (Whether every grant is also *used* depends on the scenario — no Events here, as
/// nothing is revoked; the operator's end-to-end suite checks that with
/// `rbac::assert_grants_exactly` over a run that revokes.)
fn the_operator_as_deployed_runs_with_the_charts_rbac(cluster: &Cluster, release: Release, people_ns: &str) {
    cluster.namespaces(&[release.namespace.as_str(), people_ns]);
    // examples/acme with its privacyIDEA on a port that refuses connections (the example's
    // 5001 could be a privacyIDEA another test started): the provider is unavailable and
    // nothing is revoked; the watches, status patches and the Lease are all exercised.
    let acme = moved_into(&repo().join("examples/acme"), people_ns);
    assert!(acme.contains("http://127.0.0.1:5001"), "examples/acme moved its privacyIDEA: update this test");
    cluster.ok(&["apply", "-f", "-"], Some(&acme.replace("http://127.0.0.1:5001", "http://127.0.0.1:1")));
    let rendered = helm::render(&release);
    let run = run_operator_as_deployed(cluster, &release, &rendered, people_ns);
    let values = &release.values;
    assert!(
        run.reconciled,
        "{values}: keyward did not take the Lease as its POD_NAME and write the status of every object; its log:\n{}",
        run.log
    );
    assert!(run.denied.is_empty(), "{values}: the API server denied keyward: {:?}\nlog:\n{}", run.denied, run.log);
    let sa = rendered.one("ServiceAccount")["metadata"]["name"].as_str().unwrap().to_string();
    let grants = rbac::grants_of(&rendered.objects(), &release.namespace, &sa).unwrap();
    let diff = rbac::diff(&grants, &run.requests);
    assert!(diff.missing.is_empty(), "{values}: keyward makes requests the chart does not grant:\n{diff}");
    let made = |verb: &str, resource: &str, sub: Option<&str>| {
        run.requests.iter().any(|r| r.verb == verb && r.resource == resource && r.subresource.as_deref() == sub)
    };
    for resource in ["employees", "mfaproviders", "accessgrants"] {
        assert!(made("patch", resource, Some("status")), "{values}: no {resource} status: {:?}", run.requests);
    }
    assert!(made("watch", "secrets", None), "{values}: {:?}", run.requests);
    assert!(made("update", "leases", None) || made("create", "leases", None), "{values}: {:?}", run.requests);
}

#[test]
fn the_audit_log_shows_what_the_charts_service_account_may_and_may_not_do() {
    // The check the operator tests rely on, on requests whose answer is known: a list the
    // chart grants, and one it does not.
    let cluster = Cluster::shared();
    let release = Release::new(json!({"watch": {"namespaces": ["audit-people"]}})).named("audit", "audit-system");
    cluster.namespaces(&["audit-system", "audit-people"]);
    let account = ServiceAccount::of(cluster, &release, &helm::render(&release));
    let allowed = account.kubectl(&["get", "employees", "-n", "audit-people"]);
    assert!(allowed.status.success(), "{}", text(&allowed));
    let forbidden = account.kubectl(&["get", "secrets", "-n", "audit-system"]);
    assert!(String::from_utf8_lossy(&forbidden.stderr).contains("Forbidden"), "{}", text(&forbidden));
    let (requests, denied) = audited_requests(cluster, &account.user);
    for made in [
        ApiRequest::new("list", "keyward.dev", "employees", None, Some("audit-people")),
        ApiRequest::new("list", "", "secrets", None, Some("audit-system")),
    ] {
        assert!(requests.contains(&made), "{made} missing from {requests:?}");
    }
    assert!(denied.len() == 1 && denied[0].starts_with("list /api/v1/namespaces/audit-system/secrets"), "{denied:?}");
}

#[test]
fn the_operator_as_deployed_cluster_wide_makes_no_request_the_chart_denies() {
    // Cluster-wide, keyward would act on every other test's objects: a control plane of its own.
    let cluster = Cluster::start("operator");
    cluster.apply_crds();
    let release = Release::new(json!({"watch": {"clusterWide": true}}));
    the_operator_as_deployed_runs_with_the_charts_rbac(&cluster, release, "acme");
}

#[test]
fn the_operator_as_deployed_in_one_namespace_makes_no_request_the_chart_denies() {
    let release = Release::new(json!({"watch": {"namespaces": ["opns-people"]}})).named("opns", "opns-system");
    the_operator_as_deployed_runs_with_the_charts_rbac(Cluster::shared(), release, "opns-people");
}

// ---------------------------------------------------------------------------------------
// Values as users pass them: --set numbers, keyward as a subchart

#[test]
fn helm_install_takes_set_numbers_as_quantities() {
    // `--set resources.limits.cpu=1` gives the number 1 (not "1"); the schema once rejected it.
    let cluster = Cluster::shared();
    let (release_ns, watched) = ("setnum-system", "setnum-people");
    cluster.namespaces(&[release_ns, watched]);
    let chart = helm::chart_dir().display().to_string();
    let watch = format!("watch.namespaces={{{watched}}}");
    let installed = cluster.helm(&[
        "install",
        "setnum",
        &chart,
        "-n",
        release_ns,
        "--set",
        "crds.install=false", // the shared control plane's CRDs come from crds/
        "--set",
        &watch,
        "--set",
        "providerHosts={pi.acme.example}",
        "--set",
        "resources.limits.cpu=1",
        "--set",
        "resources.requests.cpu=0.25",
        "--set",
        "resources.limits.memory=1Gi",
    ]);
    assert!(installed.status.success(), "{}", text(&installed));
    let deployment = cluster.get(&["deployment", "setnum-keyward", "-n", release_ns]);
    let resources = &deployment["spec"]["template"]["spec"]["containers"][0]["resources"];
    // The API server normalizes the quantities.
    assert_eq!(resources["limits"], json!({"cpu": "1", "memory": "1Gi"}), "{resources}");
    assert_eq!(resources["requests"], json!({"cpu": "250m", "memory": "128Mi"}), "{resources}");
}

/// A parent chart (in `dir`) with keyward as a dependency under `condition: keyward.enabled`,
/// vendored in its charts/ directory as `helm dependency build` would leave it.
fn umbrella_chart(dir: &Path) -> PathBuf {
    let parent = dir.join("platform");
    std::fs::create_dir_all(parent.join("charts")).unwrap();
    std::fs::write(
        parent.join("Chart.yaml"),
        "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: keyward\n    version: 0.1.0\n    \
         repository: file://../keyward\n    condition: keyward.enabled\n",
    )
    .unwrap();
    let status =
        Command::new("cp").arg("-r").arg(helm::chart_dir()).arg(parent.join("charts/keyward")).status().unwrap();
    assert!(status.success());
    parent
}

#[test]
fn keyward_installs_as_a_subchart_with_global_values() {
    // Helm hands a subchart its parent's `global` and the `enabled` its condition reads; the
    // schema once refused both (additionalProperties: false at the root).
    let cluster = Cluster::shared();
    let (release_ns, watched) = ("umbrella-system", "umbrella-people");
    cluster.namespaces(&[release_ns, watched]);
    let dir = tempfile::tempdir().unwrap();
    let parent = umbrella_chart(dir.path());
    let values = json!({
        "global": {"imagePullSecrets": [{"name": "corp-registry"}], "imageRegistry": "registry.acme.example"},
        "keyward": {"enabled": true, "crds": {"install": false}, "watch": {"namespaces": [watched]},
                    "providerHosts": [helm::PROVIDER_HOST]}
    });
    let file = helm::values_file(&values);
    let parent_path = parent.display().to_string();
    let file_path = file.path().display().to_string();
    let out = cluster.helm(&["install", "umbrella", &parent_path, "-n", release_ns, "-f", &file_path]);
    assert!(out.status.success(), "{}", text(&out));
    let deployment = cluster.get(&["deployment", "umbrella-keyward", "-n", release_ns]);
    assert_eq!(deployment["spec"]["template"]["spec"]["imagePullSecrets"], json!([{"name": "corp-registry"}]));
    assert_eq!(cluster.items(&["roles", "-n", watched, "-l", "app.kubernetes.io/instance=umbrella"]).len(), 1);

    // keyward.enabled=false: the parent renders without keyward.
    let off = helm::command()
        .args(["template", "umbrella"])
        .arg(&parent)
        .args(["-f", &file_path, "--set", "keyward.enabled=false"])
        .output()
        .unwrap();
    assert!(off.status.success(), "{}", text(&off));
    assert!(!String::from_utf8_lossy(&off.stdout).contains("kind: Deployment"), "{}", text(&off));
}

// ---------------------------------------------------------------------------------------
// The Argo CD example, synced in the order Argo CD syncs it

/// Argo CD's kind order within a sync wave (gitops-engine pkg/sync/sync_tasks.go `kindOrder`,
/// Helm's install order); kinds not listed (custom resources) come last.
const ARGOCD_KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// Objects in the order Argo CD applies them in one sync: wave, then kind, then name.
fn argocd_sorted(mut objects: Vec<Value>) -> Vec<Value> {
    let wave = |o: &Value| -> i64 {
        o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"].as_str().map_or(0, |w| w.parse().unwrap())
    };
    let kind = |o: &Value| {
        let k = o["kind"].as_str().unwrap_or_default();
        ARGOCD_KIND_ORDER.iter().position(|x| *x == k).unwrap_or(ARGOCD_KIND_ORDER.len())
    };
    objects.sort_by_key(|o| (wave(o), kind(o), o["metadata"]["name"].as_str().unwrap_or_default().to_string()));
    objects
}

fn sync_options(obj: &Value) -> Vec<String> {
    let listed = obj["spec"]["syncPolicy"]["syncOptions"].as_array().cloned().unwrap_or_default();
    listed.iter().map(|o| o.as_str().unwrap().to_string()).collect()
}

fn gitops_example(path: &str) -> Vec<Value> {
    let file = repo().join("examples/gitops").join(path);
    helm::parse_documents(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// Every object of examples/gitops/people, as the people Application (directory, recurse)
/// renders it.
fn people_objects() -> Vec<Value> {
    helm::parse_documents(&moved_into(&people_tree(), "acme")).unwrap()
}

#[test]
fn the_argocd_example_converges_from_an_empty_cluster_and_a_prune_spares_the_crds() {
    // The CRDs are created by the chart here: a control plane of its own.
    let cluster = Cluster::start("argocd");
    let root = gitops_example("platform/argocd/root.yaml").remove(0);
    assert_eq!(root["spec"]["source"]["path"], "platform/argocd/apps");
    // Pruning a child Application (or deleting it with its resources finalizer) would take
    // everything it deployed with it.
    assert_eq!(root["spec"]["syncPolicy"]["automated"]["prune"], false);
    let mut children = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples/gitops/platform/argocd/apps")).unwrap() {
        let path = entry.unwrap().path();
        children.extend(helm::parse_documents(&std::fs::read_to_string(&path).unwrap()).unwrap());
    }
    let children = argocd_sorted(children);
    let order: Vec<String> = children
        .iter()
        .map(|c| format!("{}/{}", c["kind"].as_str().unwrap(), c["metadata"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(order, ["Namespace/acme", "Application/keyward", "Application/people"]);
    for app in children.iter().filter(|c| c["kind"] == "Application") {
        assert!(app["metadata"].get("finalizers").is_none(), "{app}");
        assert!(app["spec"]["syncPolicy"]["retry"]["limit"].as_i64().unwrap_or(0) >= 5, "{app}: retry");
    }
    let people_app = &children[2];
    assert!(sync_options(people_app).contains(&"SkipDryRunOnMissingResource=true".to_string()));
    assert_eq!(people_app["spec"]["syncPolicy"]["automated"]["prune"], false);

    // Argo CD does not wait for an Application to be healthy before the next wave (unless
    // argocd-cm restores that health check): the people app may sync before keyward's CRDs
    // exist. Its dry run then fails, which is what SkipDryRunOnMissingResource is for.
    let people = stream(&argocd_sorted(people_objects()));
    let early = cluster.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&people));
    assert!(!early.status.success() && text(&early).contains("no matches for kind"), "{}", text(&early));

    // Wave -1: the namespaces.
    cluster.ok(
        &["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"],
        Some(&stream(&[children[0].clone()])),
    );
    // Wave 0: the chart as the keyward Application renders it (helm template with its release
    // name, namespace and values file), applied in Argo CD's kind order, server-side.
    let app = &children[1];
    let source = &app["spec"]["sources"][0];
    assert_eq!(source["path"], "charts/keyward");
    assert!(sync_options(app).contains(&"CreateNamespace=true".to_string()));
    let namespace = app["spec"]["destination"]["namespace"].as_str().unwrap();
    let values_path = source["helm"]["valueFiles"][0].as_str().unwrap().replace("$people/", "");
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("examples/gitops").join(values_path)).unwrap())
            .unwrap();
    let release = Release::new(values).named(source["helm"]["releaseName"].as_str().unwrap(), namespace);
    let chart_objects = |release: &Release| -> Vec<Value> {
        // The ServiceMonitor's and PrometheusRule's CRDs are the Prometheus Operator's, not
        // installed here.
        let theirs = |o: &Value| o["kind"] == "ServiceMonitor" || o["kind"] == "PrometheusRule";
        argocd_sorted(helm::render(release).objects().into_iter().filter(|o| !theirs(o)).collect())
    };
    cluster.namespaces(&[namespace]);
    let rendered = chart_objects(&release);
    let applied = cluster
        .kubectl(&["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"], Some(&stream(&rendered)));
    assert!(applied.status.success(), "the keyward app's first sync: {}", text(&applied));
    cluster.ok(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"], None);
    // Wave 1, on retry: the people tree applies.
    cluster.ok(&["apply", "--field-manager=argocd-controller", "-f", "-"], Some(&people));
    assert_eq!(cluster.items(&["employees", "-n", "acme"]).len(), 2);

    // A later render without the CRDs (crds.install turned off, a broken values file, a chart
    // that moved them): Argo CD prunes what the app deployed and no longer renders, except
    // objects whose live annotation says Prune=false. Pruned here as Argo CD would.
    let mut without_crds = release.clone();
    without_crds.values["crds"] = json!({"install": false});
    let keep: std::collections::BTreeSet<String> =
        chart_objects(&without_crds).iter().map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"])).collect();
    let mut pruned = Vec::new();
    for object in &rendered {
        let key = format!("{}/{}", object["kind"], object["metadata"]["name"]);
        if keep.contains(&key) {
            continue;
        }
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap();
        let live = cluster.get(&[&kind, name]);
        let options = live["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].as_str().unwrap_or_default();
        if options.split(',').any(|o| o.trim() == "Prune=false") {
            continue;
        }
        cluster.ok(&["delete", &kind, name, "--wait=false"], None);
        pruned.push(key);
    }
    assert!(pruned.is_empty(), "Argo CD would prune: {pruned:?}");
    assert_eq!(cluster.items(&["crd", "-l", "app.kubernetes.io/part-of=keyward"]).len(), 4);
    assert_eq!(cluster.items(&["employees", "-n", "acme"]).len(), 2, "the people survive the prune");
    // The live CRDs also say Delete=false: deleting the app leaves them.
    for crd in cluster.items(&["crd", "-l", "app.kubernetes.io/part-of=keyward"]) {
        let options = crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].as_str().unwrap_or_default();
        assert!(options.split(',').any(|o| o == "Delete=false"), "{options}");
    }
}

// ---------------------------------------------------------------------------------------
// The chart's admission policies, on the real API server

/// The chart's roles for people and its admission policies applied for a release watching
/// `ns`; `editor` bound to keyward-edit there, `approver` to keyward-edit and keyward-approve.
fn people_with_policies(cluster: &Cluster, release: &Release, ns: &str, editor: &str, approver: &str) {
    let rendered = helm::render(release);
    let kinds = ["ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"];
    let objects: Vec<Value> =
        rendered.objects().into_iter().filter(|o| kinds.contains(&o["kind"].as_str().unwrap_or(""))).collect();
    assert_eq!(objects.iter().filter(|o| o["kind"] == "ValidatingAdmissionPolicy").count(), 2, "{objects:?}");
    cluster.ok(&["apply", "-f", "-"], Some(&stream(&objects)));
    let prefix = &release.name;
    for (user, roles) in [(editor, vec!["edit"]), (approver, vec!["edit", "approve"])] {
        for role in roles.into_iter().chain(["view"]) {
            let binding = format!("{user}-{role}");
            let clusterrole = format!("--clusterrole={prefix}-keyward-{role}");
            cluster.ok(&["-n", ns, "create", "rolebinding", &binding, &clusterrole, "--user", user], None);
        }
    }
}

/// `kubectl --as USER ARGS` (stdin optional): the API server's answer, as text, and whether
/// it succeeded.
fn as_user(cluster: &Cluster, user: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut all = vec!["--as", user];
    all.extend_from_slice(args);
    let out = cluster.kubectl(&all, stdin);
    (out.status.success(), text(&out))
}

/// A freshly created policy is enforced once the API server has loaded it: retried until the
/// first refusal that names the policy, for up to 30 s.
fn until_refused(cluster: &Cluster, user: &str, args: &[&str], stdin: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = as_user(cluster, user, args, stdin);
        if !ok && out.contains("ValidatingAdmissionPolicy") {
            return out;
        }
        assert!(!ok || Instant::now() < deadline, "never refused: kubectl --as {user} {args:?}: {out}");
        assert!(ok || out.contains("ValidatingAdmissionPolicy"), "refused, but not by a policy: {out}");
        // Allowed before the policy was loaded: undo and ask again.
        std::thread::sleep(Duration::from_millis(300));
        cluster.ok(&["-n", "admission-people", "replace", "--force", "-f", "-"], Some(PROVIDER));
    }
}

const PROVIDER: &str = r#"{"apiVersion": "keyward.dev/v1alpha1", "kind": "MfaProvider",
 "metadata": {"name": "pi", "namespace": "admission-people"},
 "spec": {"privacyidea": {"url": "https://pi.acme.example", "realm": "acme",
                          "credentials": {"secretRef": {"name": "pi-admin"}}},
          "protectedUsers": ["breakglass"], "policy": {"budget": {"maxRevocations": 25}}}}"#;

/// Editors change what is declared; the settings that can stop revocations take `approve`.
/// With `kubectl --as`, against the chart's ValidatingAdmissionPolicy: an editor may create a
/// provider and change its other fields, but not suspend it, protect users, switch it to
/// Observe, change its budget or delete it; an approver may do each.
#[test]
fn editors_cannot_change_what_stops_revocations_approvers_can() {
    let cluster = Cluster::shared();
    let ns = "admission-people";
    cluster.namespaces(&[ns]);
    let release = Release::new(json!({"watch": {"namespaces": [ns]}})).named("admission", "admission-system");
    people_with_policies(cluster, &release, ns, "erin-editor", "alice-approver");
    let (created, out) = as_user(cluster, "erin-editor", &["apply", "-f", "-"], Some(PROVIDER));
    assert!(created, "an editor may create a provider: {out}");

    let patch = |user: &str, spec: Value| {
        let body = json!({"spec": spec}).to_string();
        as_user(cluster, user, &["-n", ns, "patch", "mfaprovider", "pi", "--type=merge", "-p", &body], None)
    };
    let refused = until_refused(
        cluster,
        "erin-editor",
        &["-n", ns, "patch", "mfaprovider", "pi", "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#],
        None,
    );
    assert!(
        refused.contains("erin-editor may not change spec.suspend of MfaProvider admission-people/pi"),
        "{refused}"
    );
    for (spec, field) in [
        (json!({"protectedUsers": ["breakglass", "erin"]}), "spec.protectedUsers"),
        (json!({"policy": {"mode": "Observe"}}), "spec.policy.mode"),
        (json!({"policy": {"budget": {"maxRevocations": 0}}}), "spec.policy.budget"),
    ] {
        let (ok, out) = patch("erin-editor", spec.clone());
        assert!(!ok && out.contains(&format!("may not change {field}")), "{spec}: {out}");
    }
    let (ok, out) = patch("erin-editor", json!({"policy": {"resyncInterval": "5m"}}));
    assert!(ok, "other fields stay an editor's: {out}");
    let (ok, out) = as_user(cluster, "erin-editor", &["-n", ns, "delete", "mfaprovider", "pi"], None);
    assert!(!ok && out.contains("the provider itself (deleted)"), "{out}");

    for spec in [
        json!({"suspend": true}),
        json!({"protectedUsers": ["breakglass", "alice"]}),
        json!({"policy": {"mode": "Observe"}}),
    ] {
        let (ok, out) = patch("alice-approver", spec.clone());
        assert!(ok, "an approver may: {spec}: {out}");
    }
    let (ok, out) = as_user(cluster, "alice-approver", &["-n", ns, "delete", "mfaprovider", "pi"], None);
    assert!(ok, "{out}");
}

/// Who approved is who the API server authenticated: a RevocationApproval must carry
/// `keyward.dev/approved-by` equal to its creator's user name (not another's, not none), and
/// the annotation cannot be changed afterwards, not even by a cluster admin.
#[test]
fn an_approval_names_the_user_who_created_it_and_no_one_else() {
    let cluster = Cluster::shared();
    let ns = "approver-people";
    cluster.namespaces(&[ns]);
    let release = Release::new(json!({"watch": {"namespaces": [ns]}})).named("approver", "approver-system");
    people_with_policies(cluster, &release, ns, "erin-editor", "alice-approver");
    let approval = |name: &str, approved_by: Option<&str>| {
        let mut object = json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "RevocationApproval",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"provider": "pi", "digest": "0123456789abcdef", "reason": "CHG-1"}});
        if let Some(who) = approved_by {
            object["metadata"]["annotations"] = json!({"keyward.dev/approved-by": who});
        }
        object.to_string()
    };
    // Until the policy is loaded a forged approval could get through: wait for the refusal.
    let deadline = Instant::now() + Duration::from_secs(30);
    let forged = loop {
        let (ok, out) =
            as_user(cluster, "alice-approver", &["create", "-f", "-"], Some(&approval("forged", Some("bob"))));
        if !ok {
            break out;
        }
        assert!(Instant::now() < deadline, "a forged approver was accepted: {out}");
        cluster.ok(&["-n", ns, "delete", "revocationapproval", "forged"], None);
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        forged.contains("keyward.dev/approved-by: alice-approver") && forged.contains("found bob"),
        "the refusal says what to write: {forged}"
    );
    let (ok, out) = as_user(cluster, "alice-approver", &["create", "-f", "-"], Some(&approval("unnamed", None)));
    assert!(!ok && out.contains("found none"), "{out}");
    let (ok, out) =
        as_user(cluster, "alice-approver", &["create", "-f", "-"], Some(&approval("named", Some("alice-approver"))));
    assert!(ok, "{out}");
    let (ok, out) =
        as_user(cluster, "erin-editor", &["create", "-f", "-"], Some(&approval("erin", Some("erin-editor"))));
    assert!(!ok && out.contains("forbidden"), "editors are kept out by RBAC before any policy: {out}");
    // Rewriting who approved, as the admin: refused.
    let rewrite = cluster.kubectl(
        &["-n", ns, "annotate", "--overwrite", "revocationapproval", "named", "keyward.dev/approved-by=bob"],
        None,
    );
    assert!(!rewrite.status.success() && text(&rewrite).contains("cannot be changed"), "{}", text(&rewrite));
    let stored = cluster.get(&["-n", ns, "revocationapproval", "named"]);
    assert_eq!(stored["metadata"]["annotations"]["keyward.dev/approved-by"], "alice-approver");
}

//! The chart against a Kubernetes API: kube-double (this repository's test double of the API
//! server) started in-process, driven by the machine's real `kubectl` and by the real Helm v4
//! engine. Included from tests/chart.rs; needs `kube-double` as a dev-dependency.

use super::helm::{self, Release, repo};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A fresh test server and a kubeconfig pointing at it.
struct Cluster {
    server: kube_double::Server,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let server = kube_double::Server::start_blocking().expect("start kube-double");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
        Cluster { server, _dir: dir, kubeconfig }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        {
            use std::io::Write;
            let mut input = child.stdin.take().expect("stdin");
            input.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl")
    }

    /// `kubectl ARGS`, which must succeed; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get", "-o", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all, None)).expect("kubectl get -o json")
    }

    fn namespaces(&self, names: &[&str]) {
        let docs: Vec<String> =
            names.iter().map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n")).collect();
        self.ok(&["apply", "-f", "-"], Some(&docs.join("---\n")));
    }

    fn helm(&self, ops: Vec<Value>) -> Vec<Value> {
        let ops = ops
            .into_iter()
            .map(|mut op| {
                op["kubeconfig"] = json!(self.kubeconfig);
                op
            })
            .collect();
        helm::run(&helm::chart_dir(), ops)
    }
}

/// The rendered release as one multi-document YAML stream, as `helm template` prints it.
fn manifest(release: &Release) -> String {
    let rendered = helm::render(release);
    rendered.objects().iter().map(|o| serde_yaml::to_string(o).expect("yaml")).collect::<Vec<_>>().join("---\n")
}

fn people_tree() -> PathBuf {
    repo().join("examples/gitops/people")
}

#[test]
fn rendered_manifests_apply_with_kubectl_to_the_test_server() {
    let cluster = Cluster::start();
    cluster.namespaces(&["keyward-system"]);
    let defaults = manifest(&Release::new(json!({})));
    let out = cluster.ok(&["apply", "-f", "-"], Some(&defaults));
    for created in [
        "customresourcedefinition.apiextensions.k8s.io/employees.keyward.dev created",
        "deployment.apps/keyward created",
        "clusterrole.rbac.authorization.k8s.io/keyward created",
        "poddisruptionbudget.policy/keyward created",
        "service/keyward-metrics created",
    ] {
        assert!(out.contains(created), "{created:?} missing from:\n{out}");
    }
    // Applying again changes nothing; server-side apply takes the same objects.
    let again = cluster.ok(&["apply", "-f", "-"], Some(&defaults));
    // Except the PodDisruptionBudget: its `spec.selector` has patchStrategy "replace", so
    // kubectl's three-way patch is never empty and it always says "configured", against a
    // real kube-apiserver too.
    let changed: Vec<&str> = again
        .lines()
        .filter(|l| l.contains(" created") || l.contains(" configured"))
        .filter(|l| !l.starts_with("poddisruptionbudget.policy/"))
        .collect();
    assert!(changed.is_empty(), "{again}");
    cluster.ok(&["apply", "--server-side", "--force-conflicts", "-f", "-"], Some(&defaults));

    let deployment = cluster.get(&["deployment", "keyward", "-n", "keyward-system"]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let crd = cluster.get(&["crd", "employees.keyward.dev"]);
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");

    // The CRDs the chart installed serve and validate keyward's objects.
    let people = people_tree();
    cluster.ok(&["apply", "-R", "-f", people.to_str().unwrap()], None);
    let employees = cluster.ok(&["get", "employees", "-n", "acme"], None);
    assert!(employees.contains("alice@acme.example") && employees.contains("bob@acme.example"), "{employees}");
    let bad = "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {name: mallory, namespace: acme}\n\
               spec: {email: mallory@acme.example, state: Gone}\n";
    let out = cluster.kubectl(&["apply", "-f", "-"], Some(bad));
    assert!(!out.status.success(), "an invalid Employee was accepted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.state"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_namespaced_install_applies_with_kubectl() {
    let cluster = Cluster::start();
    cluster.namespaces(&["security", "acme", "acme-contractors"]);
    // The CRDs first (crds.install is off in these values), then the release without the
    // ServiceMonitor, whose CRD belongs to the Prometheus Operator.
    cluster.ok(&["apply", "-f", repo().join("crds").to_str().unwrap()], None);
    let mut values = super::everything_on();
    values["serviceMonitor"]["enabled"] = json!(false);
    let out = cluster.ok(&["apply", "-f", "-"], Some(&manifest(&Release::new(values).named("people", "security"))));
    assert!(out.contains("networkpolicy.networking.k8s.io/people-keyward created"), "{out}");
    let roles = cluster.get(&["roles", "-A", "-l", "app.kubernetes.io/instance=people"]);
    let mut placed: Vec<String> = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!("{}/{}", r["metadata"]["namespace"].as_str().unwrap(), r["metadata"]["name"].as_str().unwrap())
        })
        .collect();
    placed.sort();
    assert_eq!(
        placed,
        ["acme-contractors/people-keyward", "acme/people-keyward", "security/people-keyward-leader-election"]
    );
    assert_eq!(cluster.get(&["clusterroles", "-l", "app.kubernetes.io/instance=people"])["items"], json!([]));
}

#[test]
fn helm_install_upgrade_and_uninstall_keep_the_crds_and_the_people() {
    let cluster = Cluster::start();
    cluster.namespaces(&["keyward-system", "acme"]);
    let people = people_tree();
    let replicas = ["get", "deployment", "keyward", "-n", "keyward-system", "-o", "jsonpath={.spec.replicas}"];
    // One Helm session: the release record lives in its memory (the test server does not
    // take client-go's protobuf, which Helm's Secret storage would send).
    let results = cluster.helm(vec![
        json!({"op": "install", "values": {"watch": {"namespaces": ["acme"]}}}),
        json!({"op": "kubectl", "args": replicas}),
        json!({"op": "kubectl", "args": ["apply", "-R", "-f", people]}),
        json!({"op": "upgrade", "values": {"watch": {"namespaces": ["acme"]}, "replicaCount": 3}}),
        json!({"op": "kubectl", "args": replicas}),
        json!({"op": "uninstall"}),
    ]);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["ok"], true, "step {i}: {r}");
    }
    assert_eq!(results[1]["stdout"], "2", "installed with 2 replicas");
    assert_eq!(results[4]["stdout"], "3", "upgraded to 3 replicas");
    let kept = results[5]["release"]["info"].as_str().unwrap_or_default();
    assert!(kept.contains("kept due to the resource policy") && kept.contains("employees.keyward.dev"), "{kept}");

    // Uninstalled: the operator is gone, the CRDs and every Employee are still there.
    assert!(cluster.get(&["deployments", "-n", "keyward-system"])["items"].as_array().unwrap().is_empty());
    assert!(
        cluster.get(&["clusterroles", "-l", "app.kubernetes.io/instance=keyward"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(cluster.get(&["crd", "-l", "app.kubernetes.io/part-of=keyward"])["items"].as_array().unwrap().len(), 3);
    let employees = cluster.get(&["employees", "-n", "acme"]);
    assert_eq!(employees["items"].as_array().unwrap().len(), 2, "the people survive the uninstall");
}

/// `keyward run` as the chart's Deployment runs it (its args and env), against the test
/// server, until `until` holds or 30 s pass; returns the operator's requests.
fn run_operator_as_deployed(
    cluster: &Cluster,
    release: &Release,
    until: impl Fn(&Cluster) -> bool,
) -> Vec<super::rbac::ApiRequest> {
    let rendered = helm::render(release);
    let container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0].clone();
    let args: Vec<String> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().into()).collect();
    let listen = args.iter().position(|a| a.starts_with("--listen=")).unwrap();
    let mut args = args;
    args[listen] = "--listen=127.0.0.1:0".into(); // the pod's port is not free on a shared machine
    cluster.server.clear_requests();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(&args)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("POD_NAME", "keyward-0")
        .env("POD_NAMESPACE", &release.namespace)
        .env("KEYWARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keyward run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !until(cluster) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    cluster
        .server
        .requests()
        .into_iter()
        .filter(|r| r.is_resource_request() && !r.user_agent.starts_with("kubectl"))
        .map(|r| super::rbac::ApiRequest {
            verb: r.verb,
            group: r.api_group,
            resource: r.resource,
            subresource: Some(r.subresource).filter(|s| !s.is_empty()),
            namespace: Some(r.namespace).filter(|s| !s.is_empty()),
        })
        .collect()
}

/// The real operator, started with the args and env of the rendered Deployment, against the
/// test server: it acquires its Lease, writes status, and makes no request the chart's RBAC
/// would deny — cluster-wide and namespaced. (Whether every grant is also *used* depends on
/// the scenario; the operator's end-to-end suite checks that with `rbac::assert_grants_exactly`
/// over a run that revokes.)
#[test]
fn the_operator_as_deployed_makes_no_request_the_chart_denies() {
    for values in [json!({}), json!({"watch": {"namespaces": ["acme"]}})] {
        let cluster = Cluster::start();
        cluster.namespaces(&["keyward-system"]);
        cluster.ok(&["apply", "-f", repo().join("crds").to_str().unwrap()], None);
        // examples/acme: its privacyIDEA is not running, so the provider is unavailable and
        // nothing is revoked; the watches, status patches and the Lease are all exercised.
        cluster.ok(&["apply", "-f", repo().join("examples/acme").to_str().unwrap()], None);
        let release = Release::new(values.clone());
        let reconciled = |c: &Cluster| {
            let employees = c.get(&["employees", "-n", "acme"]);
            let lease = c.kubectl(&["get", "lease", "keyward-leader", "-n", "keyward-system", "-o", "json"], None);
            let holder =
                serde_json::from_slice::<Value>(&lease.stdout).ok().map(|l| l["spec"]["holderIdentity"].clone());
            // The identity is POD_NAME, which the Deployment sets from the pod's name.
            holder == Some(json!("keyward-0"))
                && employees["items"].as_array().unwrap().iter().all(|e| !e["status"].is_null())
        };
        let led = std::cell::Cell::new(false);
        let reconciled_once = |c: &Cluster| {
            let done = reconciled(c);
            led.set(led.get() || done);
            done
        };
        let requests = run_operator_as_deployed(&cluster, &release, reconciled_once);
        assert!(led.get(), "{values}: keyward did not take the Lease as keyward-0 and write every Employee's status");
        let objects = helm::render(&release).objects();
        let grants = super::rbac::grants_of(&objects, "keyward-system", "keyward").unwrap();
        let diff = super::rbac::diff(&grants, &requests);
        assert!(diff.missing.is_empty(), "{values}: the chart denies requests keyward makes:\n{diff}");
        assert!(requests.iter().any(|r| r.subresource.as_deref() == Some("status") && r.verb == "patch"));
        assert!(requests.iter().any(|r| r.resource == "secrets" && r.verb == "watch"));
    }
}

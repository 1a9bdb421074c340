//! kube-double against the real `kubectl` binary, with keyward's CRDs and examples as input.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube_double::Server;

use common::Kubectl;

/// A server with keyward's CRDs and the `acme` example applied by kubectl.
fn with_examples() -> (Server, Kubectl) {
    let server = Server::start_blocking().expect("start");
    let k = Kubectl::new(&server);
    let out = k.ok(&["apply", "-f", "crds/"]);
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/employees.keyward.dev created"), "{out}");
    let out = k.ok(&["apply", "-f", "examples/acme/"]);
    assert!(out.contains("employee.keyward.dev/alice created"), "{out}");
    (server, k)
}

#[test]
fn apply_crds_and_examples_then_get_shows_printer_columns() {
    let (_server, k) = with_examples();
    let out = k.ok(&["get", "employees", "-n", "acme"]);
    let header: Vec<&str> = out.lines().next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "EMAIL", "STATE", "ROLES", "READY", "LAST", "REVOCATION", "AGE"]);
    let carol = out.lines().find(|l| l.starts_with("carol")).expect("carol row");
    assert!(
        carol.contains("carol@acme.example") && carol.contains("Suspended") && carol.contains(r#"["sre"]"#),
        "{carol}"
    );
    // Short names and categories from the CRD work too.
    assert!(k.ok(&["get", "emp", "-n", "acme", "-o", "name"]).contains("employee.keyward.dev/alice"));
    assert!(k.ok(&["get", "keyward", "-n", "acme", "-o", "name"]).contains("mfaprovider.keyward.dev/corp-pi"));
    let secrets = k.ok(&["get", "secrets", "-n", "acme"]);
    assert!(secrets.contains("pi-admin") && secrets.contains("Opaque"), "{secrets}");
    // Re-applying unchanged manifests is a no-op.
    assert!(k.ok(&["apply", "-f", "examples/acme/"]).contains("employee.keyward.dev/alice unchanged"));
}

#[test]
fn get_ready_column_reads_the_ready_condition() {
    let (_server, k) = with_examples();
    let status = r#"{"status":{"conditions":[{"type":"Synced","status":"False","reason":"X","lastTransitionTime":"2025-01-01T00:00:00Z"},{"type":"Ready","status":"True","reason":"Reconciled","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}"#;
    k.ok(&["patch", "employee", "alice", "-n", "acme", "--subresource=status", "--type=merge", "-p", status]);
    let out = k.ok(&[
        "get",
        "employee",
        "alice",
        "-n",
        "acme",
        "-o",
        "custom-columns=READY:.status.conditions[?(@.type==\"Ready\")].status",
    ]);
    assert!(out.contains("True"), "{out}");
    let table = k.ok(&["get", "employee", "alice", "-n", "acme"]);
    let row: Vec<&str> = table.lines().nth(1).expect("row").split_whitespace().collect();
    assert_eq!(row[4], "True", "{table}");
}

#[test]
fn patch_merge_json_and_strategic() {
    let (_server, k) = with_examples();
    k.ok(&["patch", "employee", "bob", "-n", "acme", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    assert_eq!(k.ok(&["get", "employee", "bob", "-n", "acme", "-o", "jsonpath={.spec.state}"]), "Offboarded");

    let json = r#"[{"op":"test","path":"/spec/state","value":"Offboarded"},{"op":"replace","path":"/spec/state","value":"Active"}]"#;
    k.ok(&["patch", "employee", "bob", "-n", "acme", "--type", "json", "-p", json]);
    assert_eq!(k.ok(&["get", "employee", "bob", "-n", "acme", "-o", "jsonpath={.spec.state}"]), "Active");
    let err = k.fails(&["patch", "employee", "bob", "-n", "acme", "--type", "json", "-p", json]);
    assert!(err.contains("invalid") || err.contains("Invalid") || err.contains("test"), "{err}");

    // kubectl's default patch type is strategic: fine for built-in kinds, refused for CRs.
    k.ok(&["patch", "secret", "pi-admin", "-n", "acme", "-p", r#"{"metadata":{"labels":{"team":"sec"}}}"#]);
    assert_eq!(k.ok(&["get", "secret", "pi-admin", "-n", "acme", "-o", "jsonpath={.metadata.labels.team}"]), "sec");
    let err = k.fails(&["patch", "employee", "bob", "-n", "acme", "-p", r#"{"spec":{"state":"Suspended"}}"#]);
    assert!(err.contains("application/strategic-merge-patch+json is not supported"), "{err}");

    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"acme"},
        "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"nginx","image":"nginx:1"}]}}}}"#;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("deployment.json");
    std::fs::write(&file, deployment).expect("write");
    k.ok(&["apply", "-f", file.to_str().expect("path")]);
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "acme",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
    ]);
    let names =
        k.ok(&["get", "deployment", "web", "-n", "acme", "-o", "jsonpath={.spec.template.spec.containers[*].name}"]);
    assert_eq!(names, "nginx sidecar", "strategic merge by container name");
    k.ok(&["set", "image", "deployment/web", "nginx=nginx:2", "-n", "acme"]);
    let images =
        k.ok(&["get", "deployment", "web", "-n", "acme", "-o", "jsonpath={.spec.template.spec.containers[*].image}"]);
    assert_eq!(images, "nginx:2 busybox");
}

#[test]
fn delete_waits_for_finalizers() {
    let (_server, k) = with_examples();
    k.ok(&[
        "patch",
        "employee",
        "dave",
        "-n",
        "acme",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["keyward.dev/revoke"]}}"#,
    ]);
    k.ok(&["delete", "employee", "dave", "-n", "acme", "--wait=false"]);
    let ts = k.ok(&["get", "employee", "dave", "-n", "acme", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert!(!ts.is_empty(), "Terminating, held by its finalizer");
    k.ok(&[
        "patch",
        "employee",
        "dave",
        "-n",
        "acme",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers/0"}]"#,
    ]);
    let err = k.fails(&["get", "employee", "dave", "-n", "acme"]);
    assert!(err.contains("NotFound") && err.contains("\"dave\" not found"), "{err}");
    // Plain delete (kubectl waits for the object to be gone).
    k.ok(&["delete", "employee", "erin", "-n", "acme"]);
    k.fails(&["get", "employee", "erin", "-n", "acme"]);
}

#[test]
fn wait_for_condition_ready() {
    let (_server, k) = with_examples();
    let mut waiter = k
        .command(&["wait", "--for=condition=Ready", "employee/alice", "-n", "acme", "--timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl wait");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(waiter.try_wait().expect("poll").is_none(), "still waiting before Ready");
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Reconciled","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}"#;
    k.ok(&["patch", "employee", "alice", "-n", "acme", "--subresource=status", "--type=merge", "-p", status]);
    let out = waiter.wait_with_output().expect("wait output");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("employee.keyward.dev/alice condition met"));
    k.ok(&["wait", "--for=condition=Established", "crd/employees.keyward.dev", "--timeout=5s"]);
    k.ok(&["wait", "--for=jsonpath={.spec.state}=Suspended", "employee/carol", "-n", "acme", "--timeout=5s"]);
}

#[test]
fn describe_shows_events_written_through_events_k8s_io() {
    let (_server, k) = with_examples();
    let uid = k.ok(&["get", "employee", "carol", "-n", "acme", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        r#"{{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{{"name":"carol.revoked","namespace":"acme"}},
        "eventTime":"2025-01-01T00:00:00.000000Z","reportingController":"keyward","reportingInstance":"keyward-0",
        "action":"Revoke","reason":"EnrolmentRevoked","note":"revoked TOTP0001: EmployeeSuspended","type":"Normal",
        "regarding":{{"apiVersion":"keyward.dev/v1alpha1","kind":"Employee","name":"carol","namespace":"acme","uid":"{uid}"}}}}"#
    );
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("event.json");
    std::fs::write(&file, event).expect("write");
    k.ok(&["create", "-f", file.to_str().expect("path")]);
    let out = k.ok(&["describe", "employee", "carol", "-n", "acme"]);
    assert!(out.contains("Events:"), "{out}");
    let line =
        out.lines().find(|l| l.contains("EnrolmentRevoked")).unwrap_or_else(|| panic!("event in describe: {out}"));
    assert!(line.contains("keyward") && line.contains("revoked TOTP0001: EmployeeSuspended"), "{line}");
    let events = k.ok(&["get", "events", "-n", "acme"]);
    assert!(events.contains("employee/carol"), "{events}");
}

#[test]
fn server_side_apply_and_field_manager_conflicts() {
    let server = Server::start_blocking().expect("start");
    let k = Kubectl::new(&server);
    k.ok(&["apply", "--server-side", "-f", "crds/"]);
    k.ok(&["apply", "--server-side", "-f", "examples/acme/"]);
    let out = k.ok(&["apply", "--server-side", "-f", "examples/acme/30-employees.yaml"]);
    assert!(out.contains("employee.keyward.dev/alice serverside-applied"), "{out}");
    let managers = k.ok(&[
        "get",
        "employee",
        "alice",
        "-n",
        "acme",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(managers, "kubectl");

    // Another manager takes spec.displayName with a plain patch; re-applying a different value
    // conflicts until forced.
    k.ok(&[
        "patch",
        "employee",
        "alice",
        "-n",
        "acme",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"displayName":"Alice E."}}"#,
    ]);
    let err = k.fails(&["apply", "--server-side", "-f", "examples/acme/30-employees.yaml"]);
    assert!(err.contains("conflict") && err.contains(".spec.displayName"), "{err}");
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", "examples/acme/30-employees.yaml"]);
    assert_eq!(
        k.ok(&["get", "employee", "alice", "-n", "acme", "-o", "jsonpath={.spec.displayName}"]),
        "Alice Example"
    );
}

#[test]
fn schema_violations_are_rejected_with_the_field_path() {
    let (_server, k) = with_examples();
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {name: bad, namespace: acme}\nspec:\n  email: not-an-email\n  state: Gone\n",
    )
    .expect("write");
    let err = k.fails(&["apply", "-f", bad.to_str().expect("path")]);
    assert!(err.contains(r#"The Employee "bad" is invalid"#), "{err}");
    assert!(err.contains("spec.email: Invalid value: \"not-an-email\""), "{err}");
    assert!(
        err.contains(r#"spec.state: Unsupported value: "Gone": supported values: "Active", "Suspended", "Offboarded""#),
        "{err}"
    );

    std::fs::write(
        &bad,
        "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {name: bad, namespace: acme}\nspec:\n  email: b@acme.example\n  nickname: b\n",
    )
    .expect("write");
    let err = k.fails(&["apply", "-f", bad.to_str().expect("path")]);
    assert!(err.contains(r#"strict decoding error: unknown field "spec.nickname""#), "{err}");

    std::fs::write(
        &bad,
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {name: bad, namespace: acme}\nspec:\n  privacyidea: {url: 'http://pi.example', realm: r, credentials: {secretRef: {name: s}}}\n",
    )
    .expect("write");
    let err = k.fails(&["apply", "-f", bad.to_str().expect("path")]);
    assert!(err.contains("spec.privacyidea.url") && err.contains("url must be https"), "{err}");
    k.fails(&["get", "mfaprovider", "bad", "-n", "acme"]);
}

#[test]
fn explain_reads_the_crd_schema() {
    let (_server, k) = with_examples();
    let out = k.ok(&["explain", "employee.spec"]);
    assert!(out.contains("KIND:       Employee") || out.contains("KIND:     Employee"), "{out}");
    assert!(out.contains("email") && out.contains("-required-"), "{out}");
    assert!(out.contains("Work e-mail address"), "{out}");
    let out = k.ok(&["explain", "mfaprovider.spec.policy.mode"]);
    assert!(out.contains("Enforce"), "{out}");
}

#[test]
fn explain_describes_built_in_kinds() {
    let server = Server::start_blocking().expect("start");
    let k = Kubectl::new(&server);
    let out = k.ok(&["explain", "secret.stringData"]);
    assert!(
        out.contains("KIND:       Secret") && out.contains("stringData allows specifying non-binary secret data"),
        "{out}"
    );
    let out = k.ok(&["explain", "lease.spec"]);
    assert!(out.contains("holderIdentity") && out.contains("renewTime"), "{out}");
}

#[test]
fn get_watch_streams_changes() {
    let (_server, k) = with_examples();
    let mut child = k
        .command(&["get", "employees", "-n", "acme", "--watch-only", "-o", "name", "--request-timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Keep changing frank until the watch (which may start late on a busy machine) reports it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = vec![];
    let mut n = 0;
    while Instant::now() < deadline && !seen.iter().any(|l: &String| l.contains("frank")) {
        n += 1;
        k.ok(&["label", "employee", "frank", "-n", "acme", &format!("round={n}"), "--overwrite"]);
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(700)) {
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.iter().any(|l| l == "employee.keyward.dev/frank"), "{seen:?}");
}

#[test]
fn label_selectors_output_formats_and_namespaces() {
    let (_server, k) = with_examples();
    k.ok(&["label", "employee", "alice", "bob", "-n", "acme", "team=core"]);
    assert_eq!(k.ok(&["get", "employees", "-n", "acme", "-l", "team=core", "-o", "name"]).lines().count(), 2);
    assert_eq!(k.ok(&["get", "employees", "-n", "acme", "-l", "team!=core", "-o", "name"]).lines().count(), 5);
    let yaml = k.ok(&["get", "employee", "alice", "-n", "acme", "-o", "yaml"]);
    assert!(yaml.contains("kind: Employee") && yaml.contains("resourceVersion:"), "{yaml}");
    let all = k.ok(&["get", "employees", "-A"]);
    assert!(all.lines().next().expect("header").starts_with("NAMESPACE"), "{all}");
    assert!(k.ok(&["get", "ns"]).contains("acme"));
}

#[test]
fn deleting_the_namespace_deletes_what_is_in_it() {
    let (server, k) = with_examples();
    k.ok(&["delete", "namespace", "acme", "--timeout=20s"]);
    k.fails(&["get", "namespace", "acme"]);
    assert!(server.stored_object("keyward.dev", "employees", "acme", "alice").is_none());
    let out = k.run(&["get", "employees", "-A"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
}

#[test]
fn request_log_names_verbs_for_rbac() {
    let (server, k) = with_examples();
    server.clear_requests();
    k.ok(&["get", "employees", "-n", "acme"]);
    k.ok(&["patch", "employee", "bob", "-n", "acme", "--type", "merge", "-p", r#"{"spec":{"state":"Suspended"}}"#]);
    let resource_requests: Vec<(String, String, String)> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_resource_request())
        .map(|r| (r.verb, r.resource, r.namespace))
        .collect();
    assert!(resource_requests.contains(&("list".into(), "employees".into(), "acme".into())), "{resource_requests:?}");
    assert!(resource_requests.contains(&("patch".into(), "employees".into(), "acme".into())), "{resource_requests:?}");
    assert!(server.requests().iter().all(|r| r.user_agent.starts_with("kubectl")));
}

#[test]
fn kubectl_create_generators_send_protobuf_that_is_decoded() {
    let server = Server::start_blocking().expect("start");
    let k = Kubectl::new(&server);
    k.ok(&["create", "namespace", "acme"]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "pi-admin",
        "-n",
        "acme",
        "--from-literal=username=admin",
        "--from-literal=password=pw",
    ]);
    k.ok(&["create", "configmap", "settings", "-n", "acme", "--from-literal=mode=Observe"]);
    k.ok(&["create", "serviceaccount", "keyward", "-n", "acme"]);
    k.ok(&["create", "role", "reader", "-n", "acme", "--verb=get,list", "--resource=secrets"]);
    k.ok(&["create", "rolebinding", "reader", "-n", "acme", "--role=reader", "--serviceaccount=acme:keyward"]);
    assert_eq!(k.ok(&["get", "secret", "pi-admin", "-n", "acme", "-o", "jsonpath={.data.username}"]), "YWRtaW4=");
    assert_eq!(k.ok(&["get", "configmap", "settings", "-n", "acme", "-o", "jsonpath={.data.mode}"]), "Observe");
    assert_eq!(k.ok(&["get", "role", "reader", "-n", "acme", "-o", "jsonpath={.rules[0].verbs}"]), r#"["get","list"]"#);
    assert_eq!(k.ok(&["get", "rolebinding", "reader", "-n", "acme", "-o", "jsonpath={.subjects[0].name}"]), "keyward");
    let posts: Vec<String> =
        server.requests().iter().filter(|r| r.method == "POST").map(|r| r.content_type.clone()).collect();
    assert!(posts.iter().all(|c| c == "application/vnd.kubernetes.protobuf"), "{posts:?}");
    let err = k.fails(&["create", "deployment", "web", "--image=nginx", "-n", "acme"]);
    assert!(err.contains("kube-double decodes protobuf only for"), "{err}");
}

#[test]
fn auth_reviews_allow_everything() {
    let server = Server::start_blocking().expect("start");
    let k = Kubectl::new(&server);
    assert_eq!(k.ok(&["auth", "can-i", "delete", "secrets", "-n", "kube-system"]).trim(), "yes");
    assert!(k.ok(&["auth", "whoami"]).contains("kube-double"));
    let reviews = server.requests().into_iter().filter(|r| r.resource == "selfsubjectaccessreviews").count();
    assert_eq!(reviews, 1);
}

#[test]
fn standalone_binary_writes_a_kubeconfig_and_serves() {
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-double"))
        .args(["--kubeconfig", kubeconfig.to_str().expect("path"), "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kube-double runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let second = lines.next().expect("a line").expect("utf-8");
    assert!(first.contains("test double") && first.contains("http://127.0.0.1:"), "{first}");
    assert!(second.contains(kubeconfig.file_name().and_then(|n| n.to_str()).expect("name")), "{second}");
    let cache = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new("kubectl")
        .args(["get", "namespaces", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBECACHEDIR", cache.path())
        .output()
        .expect("kubectl");
    let _ = child.kill();
    let _ = child.wait();
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"), "{out:?}");
}

#[test]
fn reapplying_changed_manifests_patches_them_three_way() {
    let (_server, k) = with_examples();
    let dir = tempfile::tempdir().expect("tmp");
    let employees = std::fs::read_to_string(common::repo_root().join("examples/acme/30-employees.yaml")).expect("read");
    // Bob gains a role and loses his display name; the Secret's password changes.
    let changed =
        employees.replacen("roles: [dev]", "roles: [dev, sre]", 1).replacen("  displayName: Bob Builder\n", "", 1);
    std::fs::write(dir.path().join("30-employees.yaml"), changed).expect("write");
    let provider = std::fs::read_to_string(common::repo_root().join("examples/acme/10-provider.yaml")).expect("read");
    std::fs::write(
        dir.path().join("10-provider.yaml"),
        provider.replace("password: keyward-admin", "password: rotated"),
    )
    .expect("write");
    let out = k.ok(&["apply", "-f", dir.path().to_str().expect("path")]);
    assert!(out.contains("employee.keyward.dev/bob configured"), "{out}");
    assert!(out.contains("employee.keyward.dev/alice unchanged"), "{out}");
    assert!(out.contains("secret/pi-admin configured"), "{out}");
    assert_eq!(k.ok(&["get", "employee", "bob", "-n", "acme", "-o", "jsonpath={.spec.roles}"]), r#"["dev","sre"]"#);
    assert_eq!(k.ok(&["get", "employee", "bob", "-n", "acme", "-o", "jsonpath={.spec.displayName}"]), "");
    assert_eq!(k.ok(&["get", "secret", "pi-admin", "-n", "acme", "-o", "jsonpath={.data.password}"]), "cm90YXRlZA==");
    assert_eq!(k.ok(&["get", "employee", "bob", "-n", "acme", "-o", "jsonpath={.metadata.generation}"]), "2");
}

//! `keyward run` end to end: the real keyward binary as the operator (as the Helm chart's
//! ServiceAccount), the real kubectl as the client, a real privacyIDEA proving revocations with
//! /validate/check, and a real kube-apiserver and etcd (`scripts/kube.sh up`; or a user's own
//! cluster when KEYWARD_E2E_KUBECONFIG is set).

#[path = "chart/status.rs"]
mod gitops_status;
#[path = "chart/helm.rs"]
mod helm;
#[path = "chart/rbac.rs"]
mod rbac;
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::cluster::{Cluster, Operator, cluster, eventually};
use support::proxy::CutProxy;
use support::*;

/// Seconds within which a change must reach privacyIDEA (generous: the machines are shared).
const WITHIN: Duration = Duration::from_secs(30);
/// The same after injected API faults: each failed watch start doubles its watcher's backoff,
/// up to kube-rs's cap of 30 s.
const AFTER_FAULTS: Duration = Duration::from_secs(75);

struct Acme {
    company: Company,
    ns: String,
    cluster: &'static Cluster,
    _tree: tempfile::TempDir,
    audit: PathBuf,
}

/// The example company on its own realm and namespace, applied with kubectl.
fn acme(name: &str, edit_tree: impl FnOnce(&Path)) -> Acme {
    acme_on(cluster(), name, edit_tree)
}

fn acme_on(cluster: &'static Cluster, name: &str, edit_tree: impl FnOnce(&Path)) -> Acme {
    let pi = privacyidea();
    let company = company(pi, &format!("op-{name}"));
    let ns = format!("op-{name}");
    let tree = operator_tree(pi, &company.realm, &ns);
    edit_tree(tree.path());
    cluster.kubectl_ok(&["apply", "-f", tree.path().to_str().unwrap()]);
    let audit = tree.path().join("audit.jsonl");
    Acme { company, ns, cluster, _tree: tree, audit }
}

impl Acme {
    fn operator(&self, lease: &str) -> Operator {
        self.cluster.operator(&self.ns, lease, &self.audit)
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend_from_slice(args);
        self.cluster.kubectl_ok(&full)
    }

    /// This namespace's requests made as the chart's ServiceAccount, from the API server's
    /// own audit log, with their HTTP status codes.
    fn operator_requests(&self) -> Vec<(rbac::ApiRequest, i64)> {
        let plane = self.cluster.control_plane.as_ref().expect("a local control plane");
        let user = format!("system:serviceaccount:{}:keyward", self.ns);
        plane
            .audit_events()
            .iter()
            // Watches log ResponseStarted when they begin and ResponseComplete when they end.
            .filter(|e| e["user"]["username"] == user.as_str() && e["stage"] != "RequestReceived")
            .filter_map(|e| {
                let object = &e["objectRef"];
                let resource = object["resource"].as_str()?;
                let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
                let request = rbac::ApiRequest {
                    verb: e["verb"].as_str()?.to_string(),
                    group: object["apiGroup"].as_str().unwrap_or_default().to_string(),
                    resource: resource.to_string(),
                    subresource: text(&object["subresource"]),
                    namespace: text(&object["namespace"]),
                };
                Some((request, e["responseStatus"]["code"].as_i64().unwrap_or_default()))
            })
            .collect()
    }

    fn audit(&self) -> Vec<Value> {
        let records: Vec<Value> = std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        outcomes_after_their_intents(&records)
    }

    /// Waits for an audit record: a token is gone at privacyIDEA a moment before its record
    /// is on disk (written once the provider answered).
    fn wait_record(&self, what: &str, matches: impl Fn(&Value) -> bool) {
        eventually(WITHIN, what, || self.audit().iter().any(&matches));
    }

    fn revoked(&self, user: &str, kind: &str) -> bool {
        let serial = &self.company.token(user, kind).serial;
        !privacyidea().tokens(&self.company.realm).contains_key(serial)
    }

    /// Waits for the first sweep: the example leavers are revoked, the provider Ready.
    fn wait_first_sweep(&self) {
        self.kubectl(&["wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=60s"]);
        eventually(WITHIN, "first sweep", || self.revoked("carol", "totp") && self.revoked("frank", "totp"));
    }
}

#[test]
fn offboarding_revokes_within_seconds_and_kubectl_shows_it() {
    let pi = privacyidea();
    let acme = acme("offboard", |_| {});
    let _operator = acme.operator("keyward-offboard");
    acme.wait_first_sweep();
    assert!(pi.authenticates(acme.company.token("alice", "totp")), "alice is entitled");

    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    let took = eventually(WITHIN, "alice revoked", || acme.revoked("alice", "totp") && acme.revoked("alice", "hotp"));
    eprintln!("kubectl patch -> revocation at privacyIDEA: {took:?}");
    assert!(!pi.authenticates(acme.company.token("alice", "totp")));
    assert!(!pi.authenticates(acme.company.token("alice", "hotp")));
    assert!(pi.authenticates(acme.company.token("bob", "totp")), "bob keeps his TOTP");

    acme.kubectl(&["wait", "--for=condition=Ready", "employee/alice", "--timeout=30s"]);
    let table = acme.kubectl(&["get", "employees"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "EMAIL", "STATE", "ROLES", "READY", "LAST REVOCATION", "AGE"] {
        assert!(header.contains(column), "kubectl get employees shows {column}: {table}");
    }
    assert!(table.lines().any(|l| l.starts_with("alice") && l.contains("Offboarded")), "{table}");
    let providers = acme.kubectl(&["get", "mfaproviders"]);
    assert!(providers.contains("ENROLMENTS") && providers.contains("Enforce"), "{providers}");

    let describe = acme.kubectl(&["describe", "employee", "alice"]);
    for serial in [&acme.company.token("alice", "totp").serial, &acme.company.token("alice", "hotp").serial] {
        assert!(
            describe.lines().any(|l| l.contains("EnrolmentRevoked") && l.contains(serial.as_str())),
            "an Event per revocation ({serial}): {describe}"
        );
    }
    let status: Value = serde_json::from_str(&acme.kubectl(&["get", "employee", "alice", "-o", "json"])).unwrap();
    let verdicts = &status["status"]["providers"][0]["enrolments"];
    assert!(
        verdicts.as_array().unwrap().iter().all(|v| v["verdict"] == "Revoked" && v["reason"] == "EmployeeOffboarded")
    );
    let conditions = status["status"]["conditions"].as_array().unwrap();
    assert!(conditions.iter().all(|c| c["observedGeneration"] == status["metadata"]["generation"]));

    // Every object keyward wrote keeps the condition contract GitOps tools rely on.
    for kind in ["employees", "accessgrants", "mfaproviders"] {
        let list: Value = serde_json::from_str(&acme.kubectl(&["get", kind, "-o", "json"])).unwrap();
        for obj in list["items"].as_array().unwrap() {
            let broken = gitops_status::contract_violations(obj);
            assert!(broken.is_empty(), "{kind} {}: {broken:?}", obj["metadata"]["name"]);
        }
    }

    let audit = acme.audit();
    let alice: Vec<&Value> = audit.iter().filter(|r| r["user"] == "alice").collect();
    assert_eq!(alice.len(), 2, "{audit:?}");
    assert!(alice.iter().all(|r| r["reason"] == "EmployeeOffboarded" && r["outcome"] == "revoked"));
}

#[test]
fn deleting_an_employee_revokes_first_and_deleting_a_provider_revokes_nothing() {
    let pi = privacyidea();
    let acme = acme("delete", |_| {});
    let _operator = acme.operator("keyward-delete");
    acme.wait_first_sweep();
    let finalizers = acme.kubectl(&["get", "employee", "bob", "-o", "jsonpath={.metadata.finalizers}"]);
    assert!(finalizers.contains("keyward.dev/revoke-enrolments"), "{finalizers}");

    acme.kubectl(&["delete", "employee", "bob", "--timeout=60s"]);
    assert!(acme.revoked("bob", "totp"), "revoked before the Employee was gone");
    assert!(!pi.authenticates(acme.company.token("bob", "totp")));
    let gone = cluster().kubectl(&["-n", &acme.ns, "get", "employee", "bob"]);
    assert!(!gone.status.success(), "bob is gone");
    acme.wait_record("bob's deletion record", |r| r["user"] == "bob" && r["reason"] == "EmployeeDeleted");

    acme.kubectl(&["delete", "mfaprovider", "corp-pi"]);
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!acme.revoked("alice", "totp"), "no provider, no management: nothing revoked");
    assert!(pi.authenticates(acme.company.token("alice", "totp")));
}

#[test]
fn the_drift_sweep_revokes_an_enrolment_made_out_of_band() {
    let pi = privacyidea();
    let acme = acme("drift", |tree| edit(tree, "10-provider.yaml", "resyncInterval: 10m", "resyncInterval: 2s"));
    let _operator = acme.operator("keyward-drift");
    acme.wait_first_sweep();
    // An admin enrols an HOTP token for bob directly at privacyIDEA; devs hold only TOTP.
    // (No login check before: with a 2 s resync the sweep may already have revoked it.)
    let extra = pi.admin_enrol(&acme.company.realm, "bob", "hotp");
    eventually(WITHIN, "out-of-band token revoked", || !pi.tokens(&acme.company.realm).contains_key(&extra.serial));
    assert!(!pi.authenticates(&extra));
    assert!(pi.authenticates(acme.company.token("bob", "totp")));
    acme.wait_record("the drift record", |r| r["enrolment"] == extra.serial.as_str() && r["reason"] == "NotEntitled");
}

/// With the resync an hour away, an enrolment made past keyward is still revoked
/// within seconds: the leader follows privacyIDEA's audit log and sweeps the user it names
/// with a targeted sweep (one token listing of bob, not the realm's).
#[test]
fn an_enrolment_made_past_keyward_is_revoked_in_seconds_through_the_event_log() {
    let pi = privacyidea();
    let acme = acme("events", |tree| edit(tree, "10-provider.yaml", "resyncInterval: 10m", "resyncInterval: 1h"));
    let operator = acme.operator("keyward-events");
    acme.wait_first_sweep();
    // The follower's first read of the term is done.
    std::thread::sleep(Duration::from_secs(6));
    let sweeps = || {
        operator
            .get("/metrics")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("keyward_reconcile_duration_seconds_count"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = sweeps();
    let extra = pi.admin_enrol(&acme.company.realm, "bob", "hotp");
    let took = eventually(WITHIN, "the out-of-band token revoked", || {
        !pi.tokens(&acme.company.realm).contains_key(&extra.serial)
    });
    eprintln!("out-of-band enrolment -> revocation (event log followed): {took:?}");
    assert!(!pi.authenticates(&extra));
    assert!(pi.authenticates(acme.company.token("bob", "totp")), "bob keeps his TOTP");
    acme.wait_record("the drift record", |r| r["enrolment"] == extra.serial.as_str() && r["reason"] == "NotEntitled");
    assert!(sweeps() > before, "revoked by a sweep the event brought about");
}

#[test]
fn a_bad_manifest_is_rejected_by_kubectl_apply_with_the_schema_error() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let namespace = dir.path().join("namespace.yaml");
    std::fs::write(&namespace, "apiVersion: v1\nkind: Namespace\nmetadata: {name: op-schema}\n").unwrap();
    c.kubectl_ok(&["apply", "-f", namespace.to_str().unwrap()]);
    let bad_state = dir.path().join("bad-state.yaml");
    std::fs::write(
        &bad_state,
        "apiVersion: keyward.dev/v1alpha1\nkind: Employee\nmetadata: {name: zed, namespace: op-schema}\nspec: {email: zed@acme.example, state: Gone}\n",
    )
    .unwrap();
    let out = c.kubectl(&["apply", "-f", bad_state.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("spec.state"), "names the field: {}", stderr(&out));

    let no_block = dir.path().join("no-block.yaml");
    std::fs::write(
        &no_block,
        "apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {name: empty, namespace: op-schema}\nspec: {scope: All}\n",
    )
    .unwrap();
    let out = c.kubectl(&["apply", "-f", no_block.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exactly one provider block"), "CEL rule message: {}", stderr(&out));
}

#[test]
fn a_restart_and_a_second_replica_lose_nothing() {
    let pi = privacyidea();
    let acme = acme("failover", |_| {});
    let mut first = acme.operator("keyward-failover");
    acme.wait_first_sweep();
    let mut second = acme.operator("keyward-failover");
    eventually(WITHIN, "one leader", || first.is_leader() ^ second.is_leader());
    let (leader, standby) = if first.is_leader() { (&mut first, &mut second) } else { (&mut second, &mut first) };

    // The leader dies without releasing the Lease; the standby takes over within the lease
    // duration and revokes what changed meanwhile.
    leader.kill();
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Suspended"}}"#]);
    eventually(WITHIN, "standby takes over", || standby.is_leader());
    eventually(WITHIN, "alice revoked by the new leader", || acme.revoked("alice", "totp"));

    // With no operator running at all, a change waits and is not lost.
    standby.stop();
    acme.kubectl(&["patch", "employee", "bob", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(pi.authenticates(acme.company.token("bob", "totp")), "nobody acted yet");
    let _restarted = acme.operator("keyward-failover");
    eventually(WITHIN, "bob revoked after restart", || acme.revoked("bob", "totp"));
    assert!(pi.authenticates(acme.company.token("breakglass", "totp")));
}

/// A control plane of its own whose apiserver serves watches straight from etcd
/// (`--watch-cache=false`): once etcd's history is compacted, a watch resuming from an older
/// resourceVersion gets a real 410 Gone. On a user's cluster (no etcd to compact) the shared
/// cluster is used and only the connection cuts are injected.
fn fault_cluster() -> &'static Cluster {
    static FAULTS: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
    if std::env::var("KEYWARD_E2E_KUBECONFIG").is_ok_and(|k| !k.is_empty()) {
        return cluster();
    }
    FAULTS.get_or_init(|| Cluster::local("faults", "--watch-cache=false"))
}

#[test]
fn watch_drops_and_410s_cause_no_missed_or_wrong_revocations() {
    let c = fault_cluster();
    let pi = privacyidea();
    let acme = acme_on(c, "faults", |_| {});
    let proxy = CutProxy::start(c.server_addr());
    let operator = c.operator_via(&acme.ns, "keyward-faults", &acme.audit, Some(&proxy.url()));
    acme.wait_first_sweep();

    // The API server becomes unreachable: every watch is cut mid-stream. Meanwhile someone is
    // offboarded and etcd compacts its history, so the resume points are gone: 410 Gone.
    assert!(proxy.go_down() > 0, "the operator's connections ran through the proxy");
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    acme.kubectl(&["create", "configmap", "after-the-cut"]);
    let compacted = c.control_plane.as_ref().map(|plane| plane.compact_etcd());
    std::thread::sleep(Duration::from_millis(500));
    proxy.restore();
    eventually(AFTER_FAULTS, "alice revoked across a relist", || acme.revoked("alice", "totp"));
    if let Some(revision) = compacted {
        // Shown, not assumed: the operator logged the watch's 410 and relisted.
        eventually(WITHIN, "the operator saw 410 Gone", || {
            let log = operator.log();
            // kube-rs prints the Status: "…provided watch is too old.: Expired" (reason Expired
            // is the 410's).
            log.lines().any(|l| l.contains("watch failed") && l.contains("too old") && l.contains("Expired"))
        });
        eprintln!("etcd compacted to revision {revision}; the operator relisted after 410 Gone");
    }

    // A grant removed while the watches are down: the relist shows no deletion event, yet
    // the entitlement is gone and must be revoked.
    proxy.go_down();
    acme.kubectl(&["delete", "accessgrant", "dev-totp"]);
    std::thread::sleep(Duration::from_millis(500));
    proxy.restore();
    eventually(AFTER_FAULTS, "bob's TOTP revoked once dev-totp is gone", || acme.revoked("bob", "totp"));

    // Nobody still entitled lost anything.
    assert!(pi.authenticates(acme.company.token("breakglass", "totp")));
    eventually(WITHIN, "ready again after the relists", || {
        operator.get("/readyz").is_some_and(|r| r.contains("200 OK"))
    });
    assert!(acme.audit().iter().all(|r| r["user"] != "breakglass"), "protected user untouched");
    assert!(acme.audit().iter().all(|r| r["outcome"] == "revoked"), "{:?}", acme.audit());
}

/// Another writer keeps changing the objects keyward writes — an Employee's status under its
/// own field manager, and the leader Lease — so that keyward's own writes meet 409 Conflicts
/// from the real apiserver. Nothing is missed and nothing wrong is revoked.
#[test]
fn conflicts_from_a_competing_writer_change_nothing() {
    let pi = privacyidea();
    let acme = acme("conflicts", |_| {});
    let operator = acme.operator("keyward-conflicts");
    acme.wait_first_sweep();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let ns = acme.ns.clone();
        let kubeconfig = acme.cluster.kubeconfig.clone();
        std::thread::spawn(move || rival_writer(&kubeconfig, &ns, "keyward-conflicts", &stop))
    };
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    eventually(WITHIN, "alice revoked despite the rival writer", || acme.revoked("alice", "totp"));
    if acme.cluster.control_plane.is_some() {
        // Renewals come every second and read the Lease just before writing it: some of them
        // must meet the rival's writes in between.
        eventually(WITHIN, "keyward met 409 Conflicts from the rival writer", || {
            acme.operator_requests().iter().any(|(r, code)| *code == 409 && r.resource == "leases")
        });
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rival_writes = writer.join().expect("writer");

    let conflicts = acme.operator_requests().iter().filter(|(_, code)| *code == 409).count();
    eprintln!("{rival_writes} rival writes; 409 Conflicts answered to keyward: {conflicts}");
    // (erin's contract ended: her TOTP goes in the first sweep.)
    let kept = [acme.company.token("bob", "totp"), acme.company.token("breakglass", "totp")];
    for token in kept {
        assert!(acme.audit().iter().all(|r| r["enrolment"] != token.serial.as_str()), "{} revoked", token.serial);
        assert!(pi.authenticates(token), "{} still works", token.serial);
    }
    eventually(WITHIN, "a leader again", || operator.is_leader());
    // keyward's status wins back: bob's status is keyward's again once the rival stops.
    acme.kubectl(&["patch", "employee", "bob", "--type", "merge", "-p", r#"{"metadata":{"labels":{"touch":"1"}}}"#]);
    eventually(WITHIN, "bob's status rewritten by keyward", || {
        let generation = acme.kubectl(&["get", "employee", "bob", "-o", "jsonpath={.metadata.generation}"]);
        acme.kubectl(&["get", "employee", "bob", "-o", "jsonpath={.status.observedGeneration}"]) == generation
    });
}

/// Writes the Lease and bob's status as fast as the API server takes them until `stop`: each
/// Lease write moves its resourceVersion, so a renewal that read it just before is refused
/// with 409; the status writes come from another field manager. Returns the writes made.
fn rival_writer(kubeconfig: &Path, ns: &str, lease: &str, stop: &std::sync::atomic::AtomicBool) -> usize {
    use ::kube::api::{Api, Patch, PatchParams};
    use k8s_openapi::api::coordination::v1::Lease;
    use keyward::crd::Employee;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let kubeconfig = ::kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        let client = ::kube::Client::try_from(config).expect("client");
        let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
        let employees: Api<Employee> = Api::namespaced(client, ns);
        let mut writes = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            writes += 1;
            let annotate = serde_json::json!({"metadata": {"annotations": {"rival/write": writes.to_string()}}});
            let _ = leases.patch(lease, &PatchParams::default(), &Patch::Merge(&annotate)).await;
            if writes % 10 == 0 {
                let status = serde_json::json!({"status": {"observedGeneration": writes}});
                let _ = employees.patch_status("bob", &PatchParams::default(), &Patch::Merge(&status)).await;
            }
        }
        writes
    })
}

/// The Helm chart's RBAC grants exactly what the operator uses: every verb on every resource
/// it requested during a run that revokes, blocks, repeats Events, deletes and renews its
/// Lease — nothing missing, nothing extra. keyward runs as the chart's ServiceAccount and its
/// requests come from the API server's own audit log.
#[test]
fn the_chart_grants_exactly_what_the_operator_uses() {
    let c = cluster();
    if c.control_plane.is_none() {
        skipped(
            "the_chart_grants_exactly_what_the_operator_uses",
            "the API server's own audit log is needed, and a user's cluster (KEYWARD_E2E_KUBECONFIG) does not hand it over",
        );
        return;
    }
    let pi = privacyidea();
    // Over budget first: blocked revocations repeat their Events every sweep (a PATCH).
    let acme = acme("rbac", |tree| {
        edit(tree, "10-provider.yaml", "maxRevocations: 25", "maxRevocations: 1");
        edit(tree, "10-provider.yaml", "resyncInterval: 10m", "resyncInterval: 1s");
    });
    let operator = c.operator(&acme.ns, "keyward-leader", &acme.audit);
    let blocked = || acme.kubectl(&["get", "events", "-o", "json"]).contains("RevocationBlocked");
    eventually(WITHIN, "blocked revocations", blocked);
    std::thread::sleep(Duration::from_secs(3));
    let digest = acme.kubectl(&["get", "mfaprovider", "corp-pi", "-o", "jsonpath={.status.blockedPlanDigest}"]);
    assert!(!digest.is_empty());
    acme.cluster.kubectl_stdin(&["create", "-f", "-"], &approval_yaml(&acme.ns, "leavers", &digest));
    eventually(WITHIN, "approved revocations", || acme.revoked("carol", "totp"));
    // The approval marked consumed: its status is written too.
    eventually(WITHIN, "the approval consumed", || {
        acme.kubectl(&["get", "revocationapproval", "leavers", "-o", "jsonpath={.status.consumed}"]) == "true"
    });
    // Alice's two tokens would exceed the budget of 1 again (she would stay Terminating).
    acme.kubectl(&[
        "patch",
        "mfaprovider",
        "corp-pi",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"policy":{"budget":{"maxRevocations":25}}}}"#,
    ]);
    acme.kubectl(&["delete", "employee", "alice", "--timeout=60s"]);
    assert!(!pi.authenticates(acme.company.token("alice", "totp")));
    drop(operator);

    let requests = acme.operator_requests();
    let denied: Vec<_> = requests.iter().filter(|(_, code)| *code == 403).collect();
    assert!(denied.is_empty(), "the API server denied the chart's ServiceAccount: {denied:?}");
    let requests: Vec<rbac::ApiRequest> = requests.into_iter().map(|(r, _)| r).collect();
    assert!(requests.iter().any(|r| r.resource == "leases" && r.verb == "update"), "{requests:?}");
    let release = helm::Release::new(
        serde_json::json!({"watch": {"namespaces": [acme.ns]}, "leaderElection": {"leaseName": "keyward-leader"}}),
    )
    .named("keyward", &acme.ns);
    rbac::assert_grants_exactly(&helm::render(&release).objects(), &acme.ns, "keyward", &requests);
}

/// A bad commit applied object by object: 40 Employees offboarded one `kubectl patch` at a
/// time, a fraction of a second apart, each change its own small sweep. The budget (default:
/// 25 within 1h) holds over its window, across a restart of the operator: at most 25 are
/// revoked, the rest wait for an approval of the held plan, which then lets exactly it through.
#[test]
fn a_bad_commit_applied_in_pieces_is_held_by_the_budget_window() {
    const PEOPLE: usize = 40;
    let pi = privacyidea();
    let c = cluster();
    let (realm, ns) = ("op-window", "op-window");
    let (manifests, tokens) = staff(pi, realm, ns, "w", PEOPLE);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.yaml"), &manifests).unwrap();
    c.kubectl_ok(&["apply", "-f", dir.path().join("people.yaml").to_str().unwrap()]);
    let audit = dir.path().join("audit.jsonl");
    let mut operator = c.operator(ns, "keyward-window", &audit);
    let kubectl = |args: &[&str]| {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        c.kubectl_ok(&full)
    };
    kubectl(&["wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=60s"]);
    let revoked = || {
        let left = pi.tokens(realm);
        tokens.iter().filter(|t| !left.contains_key(&t.serial)).count()
    };

    for (i, token) in tokens.iter().enumerate() {
        kubectl(&["patch", "employee", &token.user, "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
        std::thread::sleep(Duration::from_millis(200));
        if i == 29 {
            // A restart in between: the new process counts what the old one revoked.
            eventually(WITHIN, "the window's first 25 revocations", || revoked() >= 24);
            operator.stop();
            operator = c.operator(ns, "keyward-window", &audit);
        }
    }
    let status =
        || -> Value { serde_json::from_str(&kubectl(&["get", "mfaprovider", "corp-pi", "-o", "json"])).unwrap() };
    eventually(WITHIN, "the rest of the commit held", || {
        let s = status();
        s["status"]["blockedRevocations"].as_u64().unwrap_or(0) as usize + revoked() == PEOPLE
    });
    std::thread::sleep(Duration::from_secs(3));
    let made = revoked();
    assert!((20..=25).contains(&made), "{made} revoked: the window allows 25");
    let provider = status();
    let recent: u64 =
        provider["status"]["recentRevocations"].as_array().unwrap().iter().map(|t| t["count"].as_u64().unwrap()).sum();
    assert_eq!(recent as usize, made, "the ledger in status counts every revocation made: {provider}");
    let held =
        provider["status"]["conditions"].as_array().unwrap().iter().any(|c| c["reason"] == "RevocationBudgetExceeded");
    assert!(held, "{provider}");

    // The held plan is approved as a whole and goes through.
    let digest = provider["status"]["blockedPlanDigest"].as_str().unwrap().to_string();
    c.kubectl_stdin(&["create", "-f", "-"], &approval_yaml(ns, "the-rest", &digest));
    eventually(WITHIN, "the approved rest revoked", || revoked() == PEOPLE);
    assert!(!pi.authenticates(&tokens[PEOPLE - 1]));
    // Consumed once, and the records say by whom: the field manager that created the approval.
    eventually(WITHIN, "the approval marked consumed", || {
        status()["status"]["consumedApproval"].as_str() == Some(digest.as_str())
    });
    let records: Vec<Value> =
        std::fs::read_to_string(&audit).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let records = outcomes_after_their_intents(&records);
    // The revocations the approval let through (the approval's own record aside).
    let approved: Vec<&Value> =
        records.iter().filter(|r| r["event"] == "outcome" && r["approval"]["digest"] == digest.as_str()).collect();
    assert_eq!(approved.len(), PEOPLE - made, "{records:?}");
    let approvals = records.iter().filter(|r| r["event"] == "approval" && r["plan_digest"] == digest.as_str());
    assert_eq!(approvals.count(), 1, "the approval has one record of its own");
    assert!(approved.iter().all(|r| r["approval"]["manager"] == "kubectl-create" && r["approval"]["time"].is_string()));
    drop(operator);
}

/// The leader's connection to the API server hangs (its renewals neither succeed nor fail)
/// while privacyIDEA stays reachable for it: it must stop acting on its own before the
/// standby takes over, so that an enrolment made out of band is revoked by one replica only.
#[test]
fn a_hung_renewal_ends_leadership_before_the_standby_takes_over() {
    let pi = privacyidea();
    let acme = acme("hang", |tree| edit(tree, "10-provider.yaml", "resyncInterval: 10m", "resyncInterval: 1s"));
    let c = acme.cluster;
    let proxy = CutProxy::start(c.server_addr());
    let mut first = c.operator_via(&acme.ns, "keyward-hang", &acme.audit, Some(&proxy.url()));
    acme.wait_first_sweep();
    eventually(WITHIN, "the first replica leads", || first.is_leader());
    let standby_audit = acme.audit.with_file_name("standby-audit.jsonl");
    let standby = c.operator(&acme.ns, "keyward-hang", &standby_audit);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!standby.is_leader(), "one leader");

    proxy.freeze();
    eventually(WITHIN, "the hung leader stops leading", || !first.is_leader());
    eventually(WITHIN, "the standby takes over", || standby.is_leader());
    let extra = pi.admin_enrol(&acme.company.realm, "bob", "hotp");
    eventually(WITHIN, "the out-of-band token revoked", || !pi.tokens(&acme.company.realm).contains_key(&extra.serial));
    // Both replicas sweep every second and both reach privacyIDEA: give the hung one time.
    std::thread::sleep(Duration::from_secs(3));
    let records = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    assert!(!records(&acme.audit).contains(&extra.serial), "the hung replica acted: {}", records(&acme.audit));
    assert!(records(&standby_audit).contains(&extra.serial), "the leader revoked it");
    proxy.thaw();
    first.kill();
    assert!(pi.authenticates(acme.company.token("bob", "totp")), "bob keeps his TOTP");
}

/// Two installations (two releases: two leader Leases) watching one MfaProvider: the one that
/// claimed it first revokes, the other revokes nothing and says who holds it; when the holder
/// dies without a word, the other takes the claim over once it is stale, and revokes.
#[test]
fn two_installations_never_both_act_on_one_provider() {
    let acme = acme("claim", |_| {});
    let mut east = acme.operator("keyward-east");
    acme.wait_first_sweep();
    let west_audit = acme.audit.with_file_name("west-audit.jsonl");
    let west = acme.cluster.operator(&acme.ns, "keyward-west", &west_audit);
    eventually(WITHIN, "each installation has its leader", || east.is_leader() && west.is_leader());
    let holder = format!("{}/keyward-east", acme.ns);
    let ready = |field: &str| {
        acme.kubectl(&[
            "get",
            "mfaprovider",
            "corp-pi",
            "-o",
            &format!("jsonpath={{.status.conditions[?(@.type==\"Ready\")].{field}}}"),
        ])
    };
    eventually(WITHIN, "west names the holder", || {
        ready("reason") == "ClaimedByAnotherInstallation" && ready("message").contains(&holder)
    });
    // And says so where an alert can see it (the chart's KeywardProviderClaimedElsewhere).
    let claimed = |operator: &Operator| {
        operator
            .get("/metrics")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("keyward_claimed_elsewhere{") && l.contains("corp-pi") && l.ends_with(" 1"))
    };
    eventually(WITHIN, "west's metrics say the provider is claimed elsewhere", || claimed(&west));
    assert!(!claimed(&east), "east holds the claim");

    let records = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Suspended"}}"#]);
    eventually(WITHIN, "alice revoked", || acme.revoked("alice", "totp"));
    // Both installations saw the change; give the one that must not act time to do so.
    std::thread::sleep(Duration::from_secs(3));
    let alice = &acme.company.token("alice", "totp").serial;
    assert!(records(&acme.audit).contains(alice.as_str()), "the holder revoked alice's token");
    assert!(!records(&west_audit).contains(alice.as_str()), "west acted: {}", records(&west_audit));
    for leaver in ["carol", "frank"] {
        let serial = &acme.company.token(leaver, "totp").serial;
        assert!(!records(&west_audit).contains(serial.as_str()), "west revoked {leaver}'s token");
    }

    // The holder dies without releasing anything: west takes over once the claim is stale.
    east.kill();
    acme.kubectl(&["patch", "employee", "bob", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    eventually(WITHIN, "bob revoked by west", || acme.revoked("bob", "totp"));
    let bob = &acme.company.token("bob", "totp").serial;
    eventually(WITHIN, "west's record of bob", || records(&west_audit).contains(bob.as_str()));
    assert!(!records(&acme.audit).contains(bob.as_str()), "east was dead");
    assert!(!records(&west_audit).contains(alice.as_str()), "nothing revoked twice");
    acme.kubectl(&["wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=60s"]);
    assert!(privacyidea().authenticates(acme.company.token("breakglass", "totp")));
}

/// An Employee deleted, re-created under the same name (another person, or the same one
/// rehired) and deleted again: the second deletion waits for its own revocations, not for the
/// first one's settlement.
#[test]
fn a_re_created_employee_is_settled_by_its_own_deletion() {
    let pi = privacyidea();
    let acme = acme("recreate", |_| {});
    let _operator = acme.operator("keyward-recreate");
    acme.wait_first_sweep();
    let bob = acme.kubectl(&["get", "employee", "bob", "-o", "json"]);
    acme.kubectl(&["delete", "employee", "bob", "--timeout=60s"]);
    assert!(acme.revoked("bob", "totp"));

    // Re-created at once from the same manifest (uid and resourceVersion dropped), enrols
    // again, and is deleted again before any other sweep could run.
    let mut again: Value = serde_json::from_str(&bob).unwrap();
    again["metadata"] = serde_json::json!({"name": "bob", "namespace": acme.ns});
    again.as_object_mut().unwrap().remove("status");
    acme.cluster.kubectl_stdin(&["apply", "-f", "-"], &again.to_string());
    let token = pi.admin_enrol(&acme.company.realm, "bob", "totp");
    eventually(WITHIN, "the new bob has keyward's finalizer", || {
        acme.kubectl(&["get", "employee", "bob", "-o", "jsonpath={.metadata.finalizers}"]).contains("keyward.dev")
    });
    acme.kubectl(&["delete", "employee", "bob", "--timeout=60s"]);
    assert!(
        !pi.tokens(&acme.company.realm).contains_key(&token.serial),
        "the new bob's token is revoked before his Employee is gone"
    );
    assert!(!pi.authenticates(&token));
}

/// A contract ends at a time set in the Employee: the revocation follows within seconds of
/// that time, not at the next drift sweep (10 minutes here).
#[test]
fn an_active_window_ending_is_enforced_within_seconds_of_its_time() {
    let pi = privacyidea();
    let acme = acme("window-end", |_| {});
    let _operator = acme.operator("keyward-window-end");
    acme.wait_first_sweep();
    let until = chrono::Utc::now() + chrono::Duration::seconds(6);
    let patch =
        format!(r#"{{"spec":{{"activeUntil":"{}"}}}}"#, until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    acme.kubectl(&["patch", "employee", "bob", "--type", "merge", "-p", &patch]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(pi.authenticates(acme.company.token("bob", "totp")), "inside his window bob keeps his TOTP");
    eventually(WITHIN, "bob revoked once his window closed", || acme.revoked("bob", "totp"));
    let late = chrono::Utc::now() - until;
    eprintln!("revoked {} ms after activeUntil", late.num_milliseconds());
    assert!(late < chrono::Duration::seconds(10), "{late:?} after the contract's end");
    acme.wait_record("bob's window record", |r| r["user"] == "bob" && r["reason"] == "EmployeeOutsideActiveWindow");
}

/// keyward lists and watches only the Secrets labelled as provider credentials: each of its
/// Secret lists and watches carries the label selector (the API server's own audit log), an
/// unlabelled Secret stays unseen — the MfaProvider that references it says which label is
/// missing, and nothing is revoked — and labelling it is all it takes.
#[test]
fn the_operator_sees_only_secrets_labelled_as_credentials() {
    let label =
        "  labels:\n    keyward.dev/credentials: \"true\"   # the operator watches only Secrets with this label\n";
    let acme = acme("secrets", |tree| edit(tree, "10-provider.yaml", label, ""));
    let _operator = acme.operator("keyward-secrets");
    let ready = |field: &str| {
        acme.kubectl(&[
            "get",
            "mfaprovider",
            "corp-pi",
            "-o",
            &format!("jsonpath={{.status.conditions[?(@.type==\"Ready\")].{field}}}"),
        ])
    };
    eventually(WITHIN, "CredentialsUnavailable", || ready("reason") == "CredentialsUnavailable");
    let message = ready("message");
    assert!(message.contains("labelled keyward.dev/credentials"), "{message}");
    assert!(!acme.revoked("carol", "totp"), "nothing is done without credentials");

    acme.kubectl(&["label", "secret", "pi-admin", "keyward.dev/credentials=true"]);
    acme.wait_first_sweep();

    if let Some(plane) = &acme.cluster.control_plane {
        let user = format!("system:serviceaccount:{}:keyward", acme.ns);
        let reads: Vec<String> = plane
            .audit_events()
            .iter()
            .filter(|e| e["user"]["username"] == user.as_str() && e["objectRef"]["resource"] == "secrets")
            .filter_map(|e| e["requestURI"].as_str().map(str::to_string))
            .collect();
        assert!(!reads.is_empty(), "the operator watched its Secrets");
        let unselected: Vec<&String> = reads.iter().filter(|uri| !uri.contains("labelSelector=keyward.dev")).collect();
        assert!(unselected.is_empty(), "Secrets read without the label selector: {unselected:?}");
    }
}

/// SIGTERM while a sweep is in flight (its privacyIDEA listing hangs): the leader stops
/// acting at once but keeps the Lease until that sweep has finished, so the standby cannot
/// start acting beside it; then the standby takes over and makes the revocation, once.
#[test]
fn sigterm_during_a_sweep_hands_over_only_after_the_sweep() {
    let pi = privacyidea();
    let upstream: std::net::SocketAddr =
        pi.url().trim_start_matches("http://").trim_end_matches('/').parse().expect("privacyIDEA address");
    let slow = CutProxy::start(upstream);
    let proxied = format!("http://{}", slow.addr);
    let acme = acme("sigterm", |tree| edit(tree, "10-provider.yaml", pi.url(), &proxied));
    let lease = "keyward-sigterm";
    let mut first = acme.operator(lease);
    acme.wait_first_sweep();
    eventually(WITHIN, "the first replica leads", || first.is_leader());
    let holder = || acme.kubectl(&["get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}"]);
    let leader = holder();
    let standby_audit = acme.audit.with_file_name("standby-audit.jsonl");
    let standby = acme.cluster.operator(&acme.ns, lease, &standby_audit);

    // privacyIDEA stops answering; alice's offboarding starts a sweep that hangs in its listing.
    slow.freeze();
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    std::thread::sleep(Duration::from_secs(1));
    first.terminate();
    std::thread::sleep(Duration::from_millis(700));
    assert!(first.running(), "still finishing its sweep");
    assert_eq!(holder(), leader, "the Lease is not handed over while a sweep is in flight");
    assert!(!standby.is_leader());

    slow.thaw();
    eventually(WITHIN, "the leader exits once its sweep is done", || !first.running());
    eventually(WITHIN, "the standby takes over", || standby.is_leader());
    eventually(WITHIN, "alice revoked by the new leader", || acme.revoked("alice", "totp"));
    let records = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let serial = &acme.company.token("alice", "totp").serial;
    // The token is gone at privacyIDEA a moment before its record is on disk (the record is
    // written after the provider answered): wait for the record, then count.
    eventually(WITHIN, "the new leader's audit record", || records(&standby_audit).contains(serial.as_str()));
    assert!(!records(&acme.audit).contains(serial.as_str()), "the terminated leader acted after SIGTERM");
    let outcomes = records(&standby_audit)
        .lines()
        .filter(|l| l.contains(serial.as_str()) && l.contains("\"event\":\"outcome\""))
        .count();
    assert_eq!(outcomes, 1, "revoked once, by the new leader");
}

/// Work grows with changes, not with people (docs/contract.md, rule 8). With 1,000
/// Employees, start-up writes each Employee's status at most twice (before and after the
/// first sweep), and one offboarding writes no other Employee's status: a sweep that
/// re-reconciled everyone, from a cache that had not seen its last write yet, would write
/// thousands.
/// The offboarding is a targeted sweep: its privacyIDEA requests are a constant (the user's
/// token listing and the revocation), where the full sweep before it read the realm's
/// several pages of tokens.
#[test]
fn a_thousand_employees_cost_status_writes_per_change_not_per_person() {
    const PEOPLE: usize = 1000;
    const HOLDERS: usize = 450; // three pages of the realm's token listing
    let pi = privacyidea();
    let c = cluster();
    let ns = "op-crowd";
    crowd::declare(c, pi, pi.url(), "op-crowd", ns, "c", PEOPLE);
    pi.users(&["seed", "--realm", "op-crowd", "--prefix", "c", "--count", &HOLDERS.to_string()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let operator = c.operator(ns, "keyward-crowd", &dir.path().join("audit.jsonl"));
    let with_status = || {
        let out =
            c.kubectl_ok(&["-n", ns, "get", "employees", "-o", "jsonpath={.items[*].status.providers[*].provider}"]);
        out.split_whitespace().count()
    };
    eventually(Duration::from_secs(180), "every Employee's status", || with_status() == PEOPLE);
    let sweeps = || {
        operator
            .get("/metrics")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("keyward_reconcile_duration_seconds_count"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Whatever the start-up sweeps (leadership, each kind's list) still queue has landed.
    std::thread::sleep(Duration::from_secs(3));
    let at_start = crowd::writes(c, ns);
    let status_writes = crowd::status_writes(&at_start, "employees");
    assert!(
        (PEOPLE..=2 * PEOPLE).contains(&status_writes.len()),
        "{} Employee status writes at start for {PEOPLE} Employees",
        status_writes.len()
    );

    let requests = || {
        operator
            .get("/metrics")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("keyward_provider_requests_total{") && l.contains("op-crowd/corp-pi"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let full_sweep = requests();
    assert!(full_sweep >= 4, "the start-up sweeps read the realm (a request) and its token pages: {full_sweep}");
    assert_eq!(pi.tokens("op-crowd").len(), HOLDERS, "one token per seeded user");
    let held = || pi.users(&["tokens", "--realm", "op-crowd"]).to_string().contains("\"c00007\"");
    assert!(held(), "c00007 holds a token before the offboarding");
    let before = sweeps();
    let requests_before = requests();
    c.kubectl_ok(&[
        "-n",
        ns,
        "patch",
        "employee",
        "c00007",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"state":"Offboarded"}}"#,
    ]);
    eventually(WITHIN, "the offboarding's sweep", || sweeps() > before);
    eventually(WITHIN, "c00007's status shows no entitlement", || {
        let entitled = c.kubectl_ok(&[
            "-n",
            ns,
            "get",
            "employee",
            "c00007",
            "-o",
            "jsonpath={.status.providers[0].entitledFactors}",
        ]);
        matches!(entitled.trim(), "" | "[]")
    });
    eventually(WITHIN, "c00007's token revoked", || !held());
    std::thread::sleep(Duration::from_secs(3));
    let offboarding = requests() - requests_before;
    // The user's token listing and the delete, plus a login when the admin JWT expired.
    assert!((2..=3).contains(&offboarding), "one offboarding cost {offboarding} privacyIDEA requests");
    let after = crowd::writes(c, ns);
    let change = crowd::status_writes(&after[at_start.len()..], "employees");
    let others: Vec<&String> = change.iter().filter(|n| *n != "c00007").collect();
    assert!(others.is_empty(), "one offboarding wrote other Employees' status: {others:?}");
    assert!((1..=2).contains(&change.len()), "the offboarded Employee's status written {} times", change.len());
}

/// SIGKILL at random moments while the operator revokes many enrolments from a slow
/// privacyIDEA (before the listing, between an intent and its call, between the call and its
/// outcome), then a restart, several times over. In the end every token is gone, the log
/// verifies as one chain, no intent is left without an outcome, and every token has exactly
/// one final outcome record (`revoked` or `already-gone`; `interrupted` is not final).
#[test]
fn sigkill_at_random_moments_loses_no_audit_record_and_doubles_none() {
    const PEOPLE: usize = 24; // within the default budget of 25 per window
    let pi = privacyidea();
    let c = cluster();
    let (realm, ns, lease) = ("op-kill", "op-kill", "keyward-kill");
    let upstream: std::net::SocketAddr =
        pi.url().trim_start_matches("http://").trim_end_matches('/').parse().expect("privacyIDEA address");
    let slow = CutProxy::start(upstream);
    let (manifests, tokens) = staff(pi, realm, ns, "k", PEOPLE);
    let manifests = manifests.replace(pi.url(), &format!("http://{}", slow.addr));
    let dir = tempfile::tempdir().expect("tempdir");
    let people = dir.path().join("people.yaml");
    std::fs::write(&people, &manifests).expect("write");
    c.kubectl_ok(&["apply", "-f", people.to_str().expect("path")]);
    let audit = dir.path().join("audit.jsonl");
    let mut operator = c.operator(ns, lease, &audit);
    c.kubectl_ok(&["-n", ns, "wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=60s"]);

    // Each privacyIDEA request now takes a few hundred milliseconds; everyone leaves at once.
    slow.slow_down(Duration::from_millis(120));
    std::fs::write(
        &people,
        manifests.replace("@acme.example, roles: [staff]}", "@acme.example, roles: [staff], state: Offboarded}"),
    )
    .expect("write");
    c.kubectl_ok(&["apply", "-f", people.to_str().expect("path")]);
    let records = || -> Vec<Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let open_intents = || {
        let all = records();
        let mut open: Vec<(String, String)> = Vec::new();
        for r in &all {
            let key = (r["user"].as_str().unwrap_or("").to_string(), r["enrolment"].as_str().unwrap_or("").to_string());
            if r["event"] == "intent" {
                open.push(key);
            } else {
                open.retain(|k| *k != key);
            }
        }
        open.len()
    };
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").subsec_nanos();
    let mut state = u64::from(seed) | 1;
    let mut next = || {
        // xorshift: a different schedule each run, printed so that a failure can be replayed.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut landed = 0;
    for round in 0..4 {
        let wait = Duration::from_millis(300 + next() % 2700);
        std::thread::sleep(wait);
        operator.kill();
        let open = open_intents();
        landed += usize::from(open > 0);
        eprintln!("round {round} (seed {seed}): SIGKILL after {wait:?}, {open} intent(s) without an outcome");
        operator = c.operator(ns, lease, &audit);
    }
    slow.slow_down(Duration::ZERO);
    let gone = || {
        let left = pi.tokens(realm);
        tokens.iter().all(|t| !left.contains_key(&t.serial))
    };
    eventually(AFTER_FAULTS, "every leaver's token revoked across the crashes", gone);
    eventually(WITHIN, "every intent resolved", || open_intents() == 0);
    drop(operator);
    eprintln!("{landed} of 4 kills left an intent open");

    let verified = keyward(&["audit", "verify", audit.to_str().expect("path")]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let all = records();
    for token in &tokens {
        let finals: Vec<&Value> = all
            .iter()
            .filter(|r| r["enrolment"] == token.serial.as_str() && r["event"] == "outcome")
            .filter(|r| r["outcome"] == "revoked" || r["outcome"] == "already-gone")
            .collect();
        assert_eq!(finals.len(), 1, "{}: {finals:?}", token.serial);
        assert!(finals[0]["replica"].as_str().is_some_and(|r| !r.is_empty()), "the acting replica is named");
        assert_eq!(finals[0]["service_account"], "keyward");
    }
}

/// A RevocationApproval for `digest` on corp-pi, as YAML for `kubectl create -f -`.
fn approval_yaml(ns: &str, name: &str, digest: &str) -> String {
    format!(
        "apiVersion: keyward.dev/v1alpha1\nkind: RevocationApproval\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec: {{provider: corp-pi, digest: \"{digest}\", reason: reviewed the leavers of this week}}\n"
    )
}

/// `kubectl create -f -` as another user (impersonated: the admin kubeconfig may).
fn create_as(c: &Cluster, user: &str, yaml: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(support::kube::kubectl_path())
        .args(["--as", user, "create", "-f", "-"])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("kubectl")
}

/// The chart's roles for people (`keyward-view`, `-edit`, `-approve`) applied, and `user`
/// bound to `role` (and to view) in `ns`. The local control plane runs no controller manager,
/// so the aggregation into Kubernetes' own roles is not exercised here (tests/chart.rs checks
/// its labels); the roles themselves are real RBAC.
fn bind_person(c: &Cluster, ns: &str, user: &str, role: &str) {
    let rendered = helm::render(&helm::Release::new(serde_json::json!({})));
    for cluster_role in rendered.of_kind("ClusterRole") {
        c.kubectl_stdin(&["apply", "-f", "-"], &serde_json::to_string(&cluster_role).unwrap());
    }
    for (binding, role) in [(format!("{user}-{role}"), role), (format!("{user}-view"), "keyward-view")] {
        c.kubectl_ok(&["-n", ns, "create", "rolebinding", &binding, &format!("--clusterrole={role}"), "--user", user]);
    }
}

/// Approvers apart from editors, with real RBAC on the real API server: an editor (bound to
/// keyward-edit) may change the MfaProvider but may not create a RevocationApproval, and the
/// approval annotation they can set approves nothing in the cluster; an approver (bound to
/// keyward-approve) may. An approval of another digest does nothing; the one naming the held
/// plan's digest lets exactly that plan through, once, and its records say by which approval.
#[test]
fn an_editor_cannot_approve_an_approver_can_and_exactly_the_held_plan_goes_through_once() {
    let pi = privacyidea();
    let c = cluster();
    // The example leavers' enrolments (carol's, frank's, …) are over a budget of one.
    let acme = acme("approve", |tree| edit(tree, "10-provider.yaml", "maxRevocations: 25", "maxRevocations: 1"));
    let _operator = acme.operator("keyward-approve");
    let status =
        || -> Value { serde_json::from_str(&acme.kubectl(&["get", "mfaprovider", "corp-pi", "-o", "json"])).unwrap() };
    eventually(WITHIN, "the plan held", || status()["status"]["blockedPlanDigest"].is_string());
    let held = status();
    let digest = held["status"]["blockedPlanDigest"].as_str().unwrap().to_string();
    let blocked = held["status"]["blockedRevocations"].as_u64().unwrap();
    assert!(blocked >= 2, "{held}");
    bind_person(c, &acme.ns, "eddie@acme.example", "keyward-edit");
    bind_person(c, &acme.ns, "anna@acme.example", "keyward-approve");

    let denied = create_as(c, "eddie@acme.example", &approval_yaml(&acme.ns, "by-editor", &digest));
    assert!(!denied.status.success(), "an editor created an approval: {}", stdout(&denied));
    assert!(stderr(&denied).contains("forbidden"), "{}", stderr(&denied));
    // The editor can edit, and so set the annotation; in the cluster it approves nothing.
    c.kubectl_ok(&["--as", "eddie@acme.example", "-n", &acme.ns, "label", "mfaprovider", "corp-pi", "team=security"]);
    let annotation = format!("keyward.dev/approve-revocations={digest}");
    c.kubectl_ok(&["--as", "eddie@acme.example", "-n", &acme.ns, "annotate", "mfaprovider", "corp-pi", &annotation]);

    let other = create_as(c, "anna@acme.example", &approval_yaml(&acme.ns, "other-plan", "0123456789abcdef"));
    assert!(other.status.success(), "an approver may approve: {}", stderr(&other));
    std::thread::sleep(Duration::from_secs(4));
    assert!(!acme.revoked("carol", "totp") && !acme.revoked("frank", "totp"), "neither approves the held plan");
    assert_eq!(status()["status"]["blockedPlanDigest"].as_str(), Some(digest.as_str()));

    let right = create_as(c, "anna@acme.example", &approval_yaml(&acme.ns, "leavers", &digest));
    assert!(right.status.success(), "{}", stderr(&right));
    eventually(WITHIN, "the approved plan carried out", || {
        acme.revoked("carol", "totp") && acme.revoked("frank", "totp")
    });
    assert!(!pi.authenticates(acme.company.token("frank", "totp")));
    assert!(pi.authenticates(acme.company.token("alice", "totp")), "only the plan approved");
    let approval = |name: &str| -> Value {
        serde_json::from_str(&acme.kubectl(&["get", "revocationapproval", name, "-o", "json"])).unwrap()
    };
    eventually(WITHIN, "the approval consumed", || approval("leavers")["status"]["consumed"] == true);
    assert_eq!(approval("leavers")["status"]["revocations"], blocked, "what the held plan held");
    assert!(approval("leavers")["status"]["consumedAt"].is_string());
    assert_ne!(approval("other-plan")["status"]["consumed"], true, "the other digest's approval is not used");
    assert_eq!(status()["status"]["consumedApproval"].as_str(), Some(digest.as_str()));
    let created = approval("leavers")["metadata"]["creationTimestamp"].as_str().unwrap().to_string();
    acme.wait_record("carol's approved revocation", |r| r["user"] == "carol" && r["outcome"] == "revoked");
    let approved: Vec<Value> = acme
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "outcome" && r["approval"]["digest"] == digest.as_str())
        .collect();
    assert_eq!(approved.len() as u64, blocked, "{approved:?}");
    for record in &approved {
        assert_eq!(record["approval"]["manager"], "kubectl-create", "the approval's creator: {record}");
        let time = chrono::DateTime::parse_from_rfc3339(record["approval"]["time"].as_str().unwrap()).unwrap();
        assert_eq!(time, chrono::DateTime::parse_from_rfc3339(&created).unwrap(), "when it was created");
    }

    // Consumed: a next held plan (alice's two tokens) waits for an approval of its own.
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    eventually(WITHIN, "alice's plan held", || {
        status()["status"]["blockedPlanDigest"].as_str().is_some_and(|d| d != digest)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!acme.revoked("alice", "totp"), "a consumed approval lets nothing more through");
}

/// Observe mode in `kubectl get`: Employees that would lose an enrolment show WOULD REVOKE
/// True, the MfaProvider its pending count, the first would-be revocations (the undeclared
/// user's included) in its status and a summary Event, again when the plan changes; nothing is
/// revoked.
#[test]
fn observe_mode_is_visible_in_kubectl_get() {
    let pi = privacyidea();
    let acme = acme("observe", |tree| {
        edit(tree, "10-provider.yaml", "mode: Enforce", "mode: Observe");
        edit(tree, "10-provider.yaml", "scope: Declared", "scope: All");
    });
    pi.add_user(&acme.company.realm, "mallory");
    let mallory = pi.enrol(&acme.company.realm, "mallory", "totp");
    let _operator = acme.operator("keyward-observe");
    acme.kubectl(&["wait", "--for=condition=Ready", "mfaprovider/corp-pi", "--timeout=60s"]);
    eventually(WITHIN, "carol's WouldRevoke", || {
        acme.kubectl(&[
            "get",
            "employee",
            "carol",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"WouldRevoke\")].status}",
        ]) == "True"
    });

    let employees = acme.kubectl(&["get", "employees"]);
    assert!(employees.lines().next().unwrap_or_default().contains("WOULD REVOKE"), "{employees}");
    let row =
        |name: &str| employees.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_default().to_string();
    assert!(row("carol").contains("True") && row("frank").contains("True"), "{employees}");
    assert!(row("alice").split_whitespace().any(|c| c == "False"), "alice loses nothing: {employees}");

    let status: Value = serde_json::from_str(&acme.kubectl(&["get", "mfaprovider", "corp-pi", "-o", "json"])).unwrap();
    let planned = status["status"]["plannedRevocations"].as_array().expect("plannedRevocations");
    let users: Vec<&str> = planned.iter().map(|p| p["user"].as_str().unwrap()).collect();
    assert!(users.contains(&"carol") && users.contains(&"frank"), "{planned:?}");
    let undeclared = planned.iter().find(|p| p["user"] == "mallory").expect("the undeclared user is listed");
    assert_eq!((undeclared["reason"].as_str(), undeclared["employee"].as_str()), (Some("UndeclaredUser"), None));
    assert_eq!(status["status"]["undeclaredUsers"], 1);
    let pending = status["status"]["pendingRevocations"].as_u64().unwrap();
    assert_eq!(pending as usize, planned.len());
    let providers = acme.kubectl(&["get", "mfaproviders"]);
    assert!(providers.contains("PENDING") && providers.contains("Observe"), "{providers}");
    assert!(providers.lines().nth(1).unwrap().split_whitespace().any(|c| c == pending.to_string()), "{providers}");

    let summaries = || {
        let events: Value = serde_json::from_str(&acme.kubectl(&["get", "events", "-o", "json"])).unwrap();
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["reason"] == "WouldRevoke" && e["involvedObject"]["kind"] == "MfaProvider")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    eventually(WITHIN, "the summary Event", || !summaries().is_empty());
    assert!(summaries()[0].contains("Observe mode: would revoke"), "{:?}", summaries());
    acme.kubectl(&["patch", "employee", "bob", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    eventually(WITHIN, "a second summary for the changed plan", || summaries().len() >= 2);

    assert!(pi.authenticates(acme.company.token("carol", "totp")), "Observe revokes nothing");
    assert!(pi.authenticates(&mallory));
    assert!(!acme.audit().iter().any(|r| r["outcome"] == "revoked"), "and records no revocation");
}

/// `spec.suspend` stops all action on one provider (status Ready=False, reason Suspended), and
/// `keyward run --paused` on all of them; resuming revokes what is due.
#[test]
fn a_suspended_provider_and_a_paused_operator_revoke_nothing_until_resumed() {
    let pi = privacyidea();
    let c = cluster();
    let acme = acme("suspend", |tree| {
        edit(tree, "10-provider.yaml", "  scope: Declared", "  suspend: true\n  scope: Declared")
    });
    let reason = || {
        acme.kubectl(&[
            "get",
            "mfaprovider",
            "corp-pi",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}",
        ])
    };
    let mut operator = acme.operator("keyward-suspend");
    eventually(WITHIN, "Suspended in status", || reason() == "Suspended");
    let ready = acme.kubectl(&[
        "get",
        "mfaprovider",
        "corp-pi",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "False");
    std::thread::sleep(Duration::from_secs(3));
    assert!(pi.authenticates(acme.company.token("carol", "totp")), "suspended: carol is not revoked");

    let recorded = || acme.kubectl(&["get", "mfaprovider", "corp-pi", "-o", "jsonpath={.status.guardedSettings}"]);
    eventually(WITHIN, "the settings recorded at first sight", || recorded().contains(r#""suspend":true"#));
    assert!(acme.audit().iter().all(|r| r["event"] != "settings-changed"), "first sight: nothing changed yet");

    acme.kubectl(&["patch", "mfaprovider", "corp-pi", "--type", "merge", "-p", r#"{"spec":{"suspend":false}}"#]);
    acme.wait_first_sweep();
    // Resuming (as suspending) is on record before keyward acts on it.
    acme.wait_record("the change on record", |r| {
        r["event"] == "settings-changed" && r["outcome"] == "changed" && r["detail"] == "spec.suspend: true → false"
    });
    assert!(recorded().contains(r#""suspend":false"#), "{}", recorded());
    let events = acme.kubectl(&["get", "events", "--field-selector", "reason=GuardedSettingsChanged", "-o", "json"]);
    assert!(events.contains("changed: spec.suspend: true → false"), "{events}");
    assert_eq!(
        acme.audit().iter().filter(|r| r["event"] == "settings-changed").count(),
        1,
        "one change, one record: {:?}",
        acme.audit()
    );
    operator.stop();

    operator = c.operator_with(&acme.ns, "keyward-suspend", &acme.audit, None, &["--paused"]);
    eventually(WITHIN, "Suspended by --paused", || reason() == "Suspended");
    let message = acme.kubectl(&[
        "get",
        "mfaprovider",
        "corp-pi",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
    ]);
    assert!(message.contains("--paused"), "{message}");
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(pi.authenticates(acme.company.token("alice", "totp")), "paused: alice is not revoked");
    operator.stop();

    let _operator = acme.operator("keyward-suspend");
    eventually(WITHIN, "alice revoked once resumed", || acme.revoked("alice", "totp"));
}

/// With a provider host allowlist (chart `providerHosts`, `KEYWARD_ALLOWED_HOSTS`),
/// an MfaProvider whose URL was changed to another host — a pull request's exfiltration
/// attempt — gets no request with the admin credentials: the provider is Stalled with a
/// condition naming the host, the other host sees no connection, and nothing is revoked.
#[test]
fn the_operator_sends_no_credentials_to_a_host_off_the_allowlist() {
    let pi = privacyidea();
    let allowed = pi.url().trim_start_matches("http://").trim_end_matches('/').to_string();
    let attacker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    attacker.set_nonblocking(true).expect("nonblocking");
    let attacker_url = format!("http://{}", attacker.local_addr().expect("address"));
    let acme = acme("allowlist", |tree| edit(tree, "10-provider.yaml", pi.url(), &attacker_url));
    // As the chart passes `providerHosts` (KEYWARD_ALLOWED_HOSTS): privacyIDEA's host:port only.
    let _operator =
        acme.cluster.operator_with(&acme.ns, "keyward-allowlist", &acme.audit, None, &["--allow-host", &allowed]);
    let condition = |field: &str| {
        acme.kubectl(&[
            "get",
            "mfaprovider",
            "corp-pi",
            "-o",
            &format!("jsonpath={{.status.conditions[?(@.type==\"Stalled\")].{field}}}"),
        ])
    };
    eventually(WITHIN, "the provider stalled on the allowlist", || condition("status") == "True");
    let message = condition("message");
    assert!(message.contains("is not on the provider host allowlist"), "{message}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(attacker.accept().is_err(), "the host off the allowlist got a connection");
    assert!(!acme.revoked("carol", "totp") && !acme.revoked("frank", "totp"), "nothing revoked");
    assert!(acme.audit().is_empty());
}

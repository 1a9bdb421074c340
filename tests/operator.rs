//! `keyward run` end to end: the real keyward binary as the operator, the real kubectl as the
//! client, a real privacyIDEA proving revocations with /validate/check, and the Kubernetes
//! API test server (or a real cluster when KEYWARD_E2E_KUBECONFIG is set).

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
use support::*;

/// Seconds within which a change must reach privacyIDEA (generous: the machines are shared).
const WITHIN: Duration = Duration::from_secs(30);

struct Acme {
    company: Company,
    ns: String,
    _tree: tempfile::TempDir,
    audit: PathBuf,
}

/// The example company on its own realm and namespace, applied with kubectl.
fn acme(name: &str, edit_tree: impl FnOnce(&Path)) -> Acme {
    let pi = privacyidea();
    let company = company(pi, &format!("op-{name}"));
    let ns = format!("op-{name}");
    let tree = operator_tree(pi, &company.realm, &ns);
    edit_tree(tree.path());
    cluster().kubectl_ok(&["apply", "-f", tree.path().to_str().unwrap()]);
    let audit = tree.path().join("audit.jsonl");
    Acme { company, ns, _tree: tree, audit }
}

impl Acme {
    fn operator(&self, lease: &str) -> Operator {
        cluster().operator(&self.ns, lease, &self.audit)
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend_from_slice(args);
        cluster().kubectl_ok(&full)
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
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
    assert!(acme.audit().iter().any(|r| r["user"] == "bob" && r["reason"] == "EmployeeDeleted"));

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
    assert!(acme.audit().iter().any(|r| r["enrolment"] == extra.serial.as_str() && r["reason"] == "NotEntitled"));
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

#[test]
fn watch_drops_and_410s_cause_no_missed_or_wrong_revocations() {
    let c: &Cluster = cluster();
    let Some(double) = c.double.as_ref() else {
        eprintln!("fault injection needs the test server; skipped against a real cluster");
        return;
    };
    let pi = privacyidea();
    let acme = acme("faults", |_| {});
    let operator = acme.operator("keyward-faults");
    acme.wait_first_sweep();

    // The watches break and their resume points expire: the operator relists (410 Gone).
    double.faults().expire_history();
    double.faults().drop_watches();
    acme.kubectl(&["patch", "employee", "alice", "--type", "merge", "-p", r#"{"spec":{"state":"Offboarded"}}"#]);
    eventually(WITHIN, "alice revoked across a relist", || acme.revoked("alice", "totp"));

    // A grant removed while the watches are down: the relist shows no deletion event, yet
    // the entitlement is gone and must be revoked.
    double.faults().drop_watches();
    acme.kubectl(&["delete", "accessgrant", "dev-totp"]);
    eventually(WITHIN, "bob's TOTP revoked once dev-totp is gone", || acme.revoked("bob", "totp"));

    // Nobody still entitled lost anything.
    assert!(pi.authenticates(acme.company.token("breakglass", "totp")));
    assert!(operator.get("/readyz").is_some_and(|r| r.contains("200 OK")), "ready again after the relists");
    assert!(acme.audit().iter().all(|r| r["user"] != "breakglass"), "protected user untouched");
}

/// The Helm chart's RBAC grants exactly what the operator uses: every verb on every resource
/// it requested during a run that revokes, blocks, repeats Events, deletes and renews its
/// Lease — nothing missing, nothing extra.
#[test]
fn the_chart_grants_exactly_what_the_operator_uses() {
    let c = cluster();
    let Some(double) = c.double.as_ref() else {
        eprintln!("the request log needs the test server; skipped against a real cluster");
        return;
    };
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
    acme.kubectl(&["annotate", "mfaprovider", "corp-pi", &format!("keyward.dev/approve-revocations={digest}")]);
    eventually(WITHIN, "approved revocations", || acme.revoked("carol", "totp"));
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

    let requests: Vec<rbac::ApiRequest> = double
        .requests()
        .into_iter()
        .filter(|r| r.is_resource_request() && !r.user_agent.starts_with("kubectl") && r.namespace == acme.ns)
        .map(|r| rbac::ApiRequest {
            verb: r.verb,
            group: r.api_group,
            resource: r.resource,
            subresource: Some(r.subresource).filter(|s| !s.is_empty()),
            namespace: Some(r.namespace).filter(|s| !s.is_empty()),
        })
        .collect();
    let release =
        helm::Release::new(serde_json::json!({"watch": {"namespaces": [acme.ns]}})).named("keyward", &acme.ns);
    rbac::assert_grants_exactly(&helm::render(&release).objects(), &acme.ns, "keyward", &requests);
}

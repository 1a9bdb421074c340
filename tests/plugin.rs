//! `kubectl keyward` end to end: the plugin binary against the real kube-apiserver the
//! operator tests use, the real keyward operator (as the chart's ServiceAccount) holding and
//! carrying out plans, and a real privacyIDEA holding the tokens.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::cluster::{Cluster, Operator, cluster, eventually};
use support::*;

/// Seconds within which the operator must have acted (generous: the machines are shared).
const WITHIN: Duration = Duration::from_secs(30);

struct Acme {
    company: Company,
    ns: String,
    cluster: &'static Cluster,
    tree: tempfile::TempDir,
    audit: PathBuf,
}

/// The example company (`examples/acme`) on a realm and namespace of its own.
fn acme(name: &str, edit_tree: impl FnOnce(&Path)) -> Acme {
    let pi = privacyidea();
    let ns = format!("plugin-{name}");
    let company = company(pi, &ns);
    let tree = operator_tree(pi, &company.realm, &ns);
    edit_tree(tree.path());
    let cluster = cluster();
    cluster.kubectl_ok(&["apply", "-f", tree.path().to_str().unwrap()]);
    let audit = tree.path().join("audit.jsonl");
    Acme { company, ns, cluster, tree, audit }
}

impl Acme {
    fn operator(&self) -> Operator {
        self.cluster.operator(&self.ns, &format!("keyward-{}", self.ns), &self.audit)
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend_from_slice(args);
        self.cluster.kubectl_ok(&full)
    }

    fn provider(&self) -> Value {
        serde_json::from_str(&self.kubectl(&["get", "mfaprovider", "corp-pi", "-o", "json"])).unwrap()
    }

    /// `kubectl keyward -n NS ARGS` as the cluster's admin.
    fn plugin(&self, args: &[&str]) -> Output {
        self.plugin_as(&self.cluster.kubeconfig, args, None)
    }

    /// The plugin with another kubeconfig and, optionally, an answer on standard input.
    fn plugin_as(&self, kubeconfig: &Path, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-keyward"))
            .args(["-n", &self.ns])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl-keyward");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.unwrap_or_default().as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("kubectl-keyward")
    }

    fn revoked(&self, user: &str, kind: &str) -> bool {
        let serial = &self.company.token(user, kind).serial;
        !privacyidea().tokens(&self.company.realm).contains_key(serial)
    }

    fn approvals(&self) -> Vec<Value> {
        let list: Value =
            serde_json::from_str(&self.kubectl(&["get", "revocationapprovals", "-o", "json", "--show-managed-fields"]))
                .unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// A kubeconfig for the same cluster that acts as `user` (impersonation by the admin).
    fn kubeconfig_as(&self, user: &str) -> PathBuf {
        let mut config: Value =
            serde_json::from_str(&self.cluster.kubectl_ok(&["config", "view", "--raw", "--minify", "-o", "json"]))
                .unwrap();
        config["users"][0]["user"]["as"] = Value::from(user);
        let path = self.tree.path().join(format!("{user}.kubeconfig"));
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        path
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Over budget, the operator holds the leavers' plan; `status` shows it with its digest;
/// `approve` refuses while nothing is held and when declined, and with `--yes` creates the
/// RevocationApproval naming exactly that digest, which the operator then carries out.
#[test]
fn status_shows_the_held_plan_and_approve_lets_exactly_it_through() {
    // The example leavers' enrolments (carol's, frank's, …) are over a budget of one.
    let acme = acme("approve", |tree| edit(tree, "10-provider.yaml", "maxRevocations: 25", "maxRevocations: 1"));
    let nothing = acme.plugin(&["approve", "corp-pi", "--yes"]);
    assert_eq!(code(&nothing), 1, "{}", stderr(&nothing));
    let expected = format!("MfaProvider {}/corp-pi holds no plan for approval", acme.ns);
    assert!(stderr(&nothing).contains(&expected), "{}", stderr(&nothing));
    assert!(acme.approvals().is_empty(), "nothing held, nothing approved");

    let _operator = acme.operator();
    eventually(WITHIN, "the plan held", || acme.provider()["status"]["blockedPlanDigest"].is_string());
    let held = acme.provider();
    let digest = held["status"]["blockedPlanDigest"].as_str().unwrap().to_string();
    let blocked = held["status"]["blockedRevocations"].as_u64().unwrap();
    assert!(blocked >= 2, "{held}");

    let status = acme.plugin(&["status", "corp-pi"]);
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.contains(&format!("MfaProvider {}/corp-pi", acme.ns)), "{text}");
    assert!(text.contains(&format!("held plan digest:     {digest}")), "{text}");
    assert!(text.contains(&format!("held revocations:     {blocked}")), "{text}");
    assert!(text.contains("mode:                 Enforce") && text.contains("suspended:            no"), "{text}");
    assert!(text.contains("(RevocationBudgetExceeded"), "Ready says why: {text}");
    let carol = &acme.company.token("carol", "totp").serial;
    let row = text.lines().find(|l| l.contains(carol.as_str())).unwrap_or_else(|| panic!("carol's token: {text}"));
    let listed = held["status"]["plannedRevocations"].as_array().unwrap();
    let reason = listed.iter().find(|r| r["enrolment"] == carol.as_str()).unwrap()["reason"].as_str().unwrap();
    assert!(row.contains("carol") && row.contains("totp") && row.contains(reason), "{row}");
    // Without a provider named: every MfaProvider of the namespace (here the one).
    assert!(stdout(&acme.plugin(&["status"])).contains(&digest));

    let declined = acme.plugin_as(&acme.cluster.kubeconfig, &["approve", "corp-pi"], Some("n\n"));
    assert_eq!(code(&declined), 1, "{}", stderr(&declined));
    assert!(stdout(&declined).contains(&digest) && stdout(&declined).contains(carol.as_str()), "shown before asking");
    assert!(stdout(&declined).contains("[y/N]"), "{}", stdout(&declined));
    assert!(stderr(&declined).contains("approval declined"), "{}", stderr(&declined));
    assert!(acme.approvals().is_empty(), "declined: no approval");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!acme.revoked("carol", "totp"), "still held");

    let approved = acme.plugin(&["approve", "corp-pi", "--yes", "--reason", "leavers of the example"]);
    assert_eq!(code(&approved), 0, "{}", stderr(&approved));
    let approvals = acme.approvals();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let approval = &approvals[0];
    assert_eq!(approval["spec"]["digest"], digest.as_str(), "exactly the held plan");
    assert_eq!(approval["spec"]["provider"], "corp-pi");
    assert_eq!(approval["spec"]["reason"], "leavers of the example");
    assert_eq!(approval["metadata"]["managedFields"][0]["manager"], "kubectl-keyward");
    // Who approved, as the API server authenticated them (the chart's admission policy
    // accepts nothing else).
    let me = acme.kubectl(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert!(!me.is_empty());
    assert_eq!(approval["metadata"]["annotations"]["keyward.dev/approved-by"], me.as_str());
    let name = approval["metadata"]["name"].as_str().unwrap().to_string();
    assert!(stdout(&approved).contains(&format!("revocationapproval.keyward.dev/{name} created")));

    eventually(WITHIN, "the approved plan carried out", || {
        acme.revoked("carol", "totp") && acme.revoked("frank", "totp")
    });
    assert!(!acme.revoked("alice", "totp"), "only the plan approved");
    let consumed = || -> Value {
        serde_json::from_str(&acme.kubectl(&["get", "revocationapproval", &name, "-o", "json"])).unwrap()
    };
    eventually(WITHIN, "the approval consumed", || consumed()["status"]["consumed"] == true);
    eventually(WITHIN, "no plan held", || acme.provider()["status"]["blockedPlanDigest"].is_null());
    let again = acme.plugin(&["approve", "corp-pi", "--yes"]);
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    assert!(stderr(&again).contains(&expected), "{}", stderr(&again));
    assert_eq!(acme.approvals().len(), 1, "nothing more approved");
}

/// `suspend` and `resume` set and clear spec.suspend; a missing provider and a person who may
/// not patch get kubectl's errors naming the object, and change nothing.
#[test]
fn suspend_and_resume_flip_spec_suspend_and_errors_name_the_object() {
    let acme = acme("suspend", |_| {});
    let suspend = || acme.kubectl(&["get", "mfaprovider", "corp-pi", "-o", "jsonpath={.spec.suspend}"]);
    assert_eq!(suspend(), "");

    let out = acme.plugin(&["suspend", "corp-pi"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("mfaprovider.keyward.dev/corp-pi suspended"), "{}", stdout(&out));
    assert_eq!(suspend(), "true");
    assert!(stdout(&acme.plugin(&["status", "corp-pi"])).contains("suspended:            yes"));

    let out = acme.plugin(&["resume", "corp-pi"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("mfaprovider.keyward.dev/corp-pi resumed"), "{}", stdout(&out));
    assert_eq!(suspend(), "false");

    let missing = acme.plugin(&["suspend", "nope"]);
    assert_eq!(code(&missing), 1);
    assert!(
        stderr(&missing).contains(r#"Error from server (NotFound): mfaproviders.keyward.dev "nope" not found"#),
        "{}",
        stderr(&missing)
    );

    // A viewer: may read MfaProviders, not patch them.
    let viewer = "viewer@acme.example";
    acme.kubectl(&["create", "role", "mfa-viewer", "--verb=get,list", "--resource=mfaproviders.keyward.dev"]);
    acme.kubectl(&["create", "rolebinding", "mfa-viewer", "--role=mfa-viewer", "--user", viewer]);
    let kubeconfig = acme.kubeconfig_as(viewer);
    let status = acme.plugin_as(&kubeconfig, &["status", "corp-pi"], None);
    assert_eq!(code(&status), 0, "a viewer may look: {}", stderr(&status));
    let denied = acme.plugin_as(&kubeconfig, &["suspend", "corp-pi"], None);
    assert_eq!(code(&denied), 1, "{}", stdout(&denied));
    let expected = format!(r#"forbidden: you may not patch mfaproviders "corp-pi" in namespace "{}""#, acme.ns);
    assert!(stderr(&denied).contains(&expected), "{}", stderr(&denied));
    assert!(stderr(&denied).contains(viewer), "the server's reason names who: {}", stderr(&denied));
    assert_eq!(suspend(), "false", "a refused suspend changes nothing");
}

/// `plan` reads everything from the cluster and the provider, revokes nothing, and lists
/// exactly the revocations the operator then makes.
#[test]
fn plan_prints_the_revocations_the_operator_then_makes() {
    let acme = acme("plan", |_| {});
    let text = acme.plugin(&["plan", "corp-pi"]);
    assert_eq!(code(&text), 2, "changes pending: {}{}", stdout(&text), stderr(&text));
    assert!(stdout(&text).contains(&acme.company.token("carol", "totp").serial), "{}", stdout(&text));

    let json = acme.plugin(&["plan", "corp-pi", "-o", "json"]);
    assert_eq!(code(&json), 2, "{}", stderr(&json));
    let plan: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["providers"][0]["provider"], format!("{}/corp-pi", acme.ns).as_str());
    assert_eq!(plan["providers"][0]["blocked"], false);
    let planned: BTreeSet<(String, String)> = plan["providers"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "revoke")
        .map(|a| (a["user"].as_str().unwrap().to_string(), a["enrolment"].as_str().unwrap().to_string()))
        .collect();
    for leaver in ["carol", "frank"] {
        let serial = acme.company.token(leaver, "totp").serial.clone();
        assert!(planned.contains(&(leaver.to_string(), serial)), "{leaver}: {planned:?}");
        assert!(!acme.revoked(leaver, "totp"), "plan revokes nothing");
    }
    assert!(!planned.iter().any(|(user, _)| user == "alice" || user == "breakglass"), "{planned:?}");

    let _operator = acme.operator();
    eventually(WITHIN, "the operator's first sweep", || {
        let tokens = privacyidea().tokens(&acme.company.realm);
        planned.iter().all(|(_, serial)| !tokens.contains_key(serial))
    });
    let revoked = || -> BTreeSet<(String, String)> {
        let text = std::fs::read_to_string(&acme.audit).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["outcome"] == "revoked")
            .map(|r| (r["user"].as_str().unwrap().to_string(), r["enrolment"].as_str().unwrap().to_string()))
            .collect()
    };
    eventually(WITHIN, "the operator's records", || revoked().len() >= planned.len());
    assert_eq!(revoked(), planned, "the operator made exactly the planned revocations");
    let after = acme.plugin(&["plan", "corp-pi", "-o", "json"]);
    let after: Value = serde_json::from_slice(&after.stdout).unwrap();
    let left = after["providers"][0]["actions"].as_array().unwrap().iter().filter(|a| a["action"] == "revoke").count();
    assert_eq!(left, 0, "nothing left to revoke: {after}");
}

//! The Helm chart (charts/keyward), rendered and linted by the real `helm` binary and
//! installed on a real kube-apiserver and etcd, and the GitOps pieces around it
//! (deploy/argocd, examples/gitops, the release workflow; the image is tests/image.rs).
//!
//! helm, kubectl, kube-apiserver and etcd are the pinned versions `scripts/kube.sh install`
//! builds (tools/versions.env; `support/kube.rs` finds them); the Argo CD health check runs
//! under Debian's lua5.1 and lua5.4 (`scripts/helm.sh install` installs both and the tools).

#[path = "chart/cluster.rs"]
mod cluster;
#[path = "chart/helm.rs"]
mod helm;
#[path = "chart/rbac.rs"]
mod rbac;
#[path = "support/shown.rs"]
mod shown;
#[path = "chart/status.rs"]
mod status;
#[path = "chart/typed.rs"]
mod typed;

// support/kube.rs comes with helm.rs, which needs the helm binary it finds and which other
// test crates include on its own; one copy of it here too.
use helm::kube;
use helm::{Release, Rendered, render, render_all, repo};
use rbac::{ApiRequest, Scope};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const NS: &str = "keyward-system";

/// Values that turn on or change every optional part of the chart.
fn everything_on() -> Value {
    json!({
        "replicaCount": 3,
        "image": {"repository": "registry.acme.example/security/keyward", "digest": format!("sha256:{}", "ab".repeat(32))},
        "imagePullSecrets": [{"name": "acme-registry"}],
        "watch": {"namespaces": ["acme", "acme-contractors"]},
        "providerHosts": ["acme.okta.com", "*.duosecurity.com"],
        "notificationHosts": ["hooks.slack.com"],
        "paused": true,
        "approvals": {"annotation": true},
        "leaderElection": {"leaseName": "keyward-acme", "leaseDuration": "30s"},
        "audit": {"destination": "file", "file": {"path": "/var/log/keyward/audit.jsonl", "sizeLimit": "2Gi",
                                                   "signingKey": {"generate": false}}},
        "logging": {"level": "info,keyward=debug", "format": "text"},
        "metrics": {"port": 9090},
        "service": {"port": 9090, "annotations": {"acme.example/team": "security"}},
        "serviceMonitor": {"enabled": true, "interval": "1m", "scrapeTimeout": "20s", "labels": {"release": "prometheus"},
                           "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
                           "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "keyward_reconcile_duration_seconds_bucket", "action": "drop"}]},
        "prometheusRule": {"enabled": true, "labels": {"release": "prometheus"}},
        "revocationSla": "4h",
        "networkPolicy": {
            "enabled": true,
            "apiServer": {"cidrs": ["10.0.0.1/32", "172.20.0.10/32"], "ports": [443]},
            "providers": [{"cidr": "203.0.113.10/32", "ports": [443]}, {"cidr": "198.51.100.0/28", "ports": [443, 8443]}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "extraEgress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.0.0/16"]}}],
                             "ports": [{"port": 443, "protocol": "TCP"}]}]
        },
        "crds": {"install": false},
        "rbac": {"aggregateClusterRoles": false},
        "admissionPolicies": {"enabled": false},
        "serviceAccount": {"name": "keyward-operator", "annotations": {"iam.example/role": "keyward"}},
        "serviceAccountToken": {"expirationSeconds": 7200},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "podAntiAffinity": "hard",
        "podAnnotations": {"acme.example/owner": "security"},
        "podLabels": {"acme.example/tier": "critical"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "security", "effect": "NoSchedule"}],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "extraContainers": [{"name": "audit-shipper", "image": "registry.acme.example/shipper:1",
                              "args": ["--follow", "/var/log/keyward/audit.jsonl"],
                              "volumeMounts": [{"name": "audit", "mountPath": "/var/log/keyward", "readOnly": true}]}]
    })
}

fn everything_on_release() -> Release {
    Release::new(everything_on()).named("people", "security")
}

fn deployment_container(r: &Rendered) -> Value {
    r.one("Deployment")["spec"]["template"]["spec"]["containers"][0].clone()
}

fn args(r: &Rendered) -> Vec<String> {
    deployment_container(r)["args"].as_array().expect("args").iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

fn env(r: &Rendered, name: &str) -> Option<Value> {
    deployment_container(r)["env"].as_array().expect("env").iter().find(|e| e["name"] == name).cloned()
}

fn kinds(r: &Rendered) -> Vec<String> {
    let mut kinds: Vec<String> = r.objects().iter().map(|o| o["kind"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    kinds
}

// ---------------------------------------------------------------------------------------
// Lint and render

#[test]
fn helm_lint_passes_strict_with_default_and_non_default_values() {
    let chart = helm::chart_dir();
    let cases = [(json!({}), NS, "default values"), (everything_on(), "security", "non-default values")];
    let reports = helm::parallel(&cases, |(values, ns, _)| helm::lint(&chart, values, ns));
    for (report, (_, _, which)) in reports.iter().zip(&cases) {
        // INFO ("icon is recommended") is fine; warnings and errors fail the check.
        assert!(report.passed && report.serious().is_empty(), "lint with {which}:\n{}", report.output);
        assert!(report.output.contains("1 chart(s) linted, 0 chart(s) failed"), "{which}:\n{}", report.output);
    }
}

#[test]
fn lint_reports_a_broken_template() {
    // The same lint on a copy of the chart with one template broken: it must say so.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&helm::chart_dir(), &dir.path().join("keyward"));
    let service = dir.path().join("keyward/templates/service.yaml");
    let text = std::fs::read_to_string(&service).unwrap().replace("{{- end }}\n", "");
    std::fs::write(&service, text).unwrap();
    let report = helm::lint(&dir.path().join("keyward"), &json!({}), NS);
    assert!(!report.passed, "lint passed a broken template:\n{}", report.output);
    let errors: Vec<&helm::LintMessage> = report.messages.iter().filter(|m| m.severity == "ERROR").collect();
    assert!(errors.iter().any(|m| m.text.contains("service.yaml")), "lint missed the broken template: {errors:?}");
}

/// Secure defaults: the release namespace alone, a NetworkPolicy, an allowlist of
/// provider hosts; cluster-wide RBAC only when asked for.
#[test]
fn default_values_render_a_namespaced_operator_behind_a_network_policy() {
    let r = render(&Release::new(json!({})));
    assert_eq!(
        kinds(&r),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicyBinding"
        ],
        "no ClusterRole of the operator's own: the three are the people's aggregated roles"
    );
    for binding in r.of_kind("ValidatingAdmissionPolicyBinding") {
        let scoped = &binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(scoped["values"], json!([NS]), "the policies bind where this release watches: {binding}");
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    }
    for role in r.of_kind("Role") {
        assert_eq!(role["metadata"]["namespace"], NS, "every grant in the release namespace: {role}");
    }
    let secrets_anywhere = r.of_kind("ClusterRole").into_iter().filter(|role| {
        role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"].is_null()
            && role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"].is_null()
            && role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"].is_null()
    });
    assert_eq!(secrets_anywhere.count(), 0, "no cluster-wide role is bound to the operator");
    let deployment = r.one("Deployment");
    assert_eq!(deployment["metadata"]["namespace"], NS);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let c = deployment_container(&r);
    assert_eq!(c["image"], "ghcr.io/keyward/keyward:0.1.0");
    assert_eq!(
        args(&r),
        [
            "run",
            "--namespaces=keyward-system",
            "--listen=0.0.0.0:8080",
            "--lease-name=keyward-leader",
            "--lease-namespace=keyward-system",
            "--lease-duration=15s",
            "--revocation-sla=1h",
            "--audit-log=-"
        ],
        "the release namespace alone"
    );
    assert_eq!(env(&r, "POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(env(&r, "POD_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
    assert_eq!(
        env(&r, "KEYWARD_SERVICE_ACCOUNT").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.serviceAccountName"
    );
    assert_eq!(env(&r, "KEYWARD_LOG_FORMAT").unwrap()["value"], "json");
    assert_eq!(env(&r, "KEYWARD_LOG").unwrap()["value"], "info");
    assert_eq!(env(&r, "KEYWARD_ALLOWED_HOSTS").unwrap()["value"], helm::PROVIDER_HOST);
    let policy = r.one("NetworkPolicy");
    let to_api_server = &policy["spec"]["egress"][0];
    assert_eq!(
        to_api_server["to"],
        json!([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
               {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}}]),
        "without apiServer.cidrs: never link-local (cloud metadata)"
    );
    assert_eq!(to_api_server["ports"], json!([{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]));
    assert_eq!(env(&r, "KEYWARD_NOTIFICATION_HOSTS"), None, "no notificationHosts: the provider list applies");
    assert_eq!(c["ports"], json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]));
    assert_eq!(c["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "http"}));
    assert_eq!(c["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "http"}));
    assert_eq!(c["resources"]["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
    assert_eq!(
        c["resources"]["limits"],
        json!({"memory": "640Mi"}),
        "no CPU limit: throttling would delay revocations"
    );

    let service = r.one("Service");
    assert_eq!(service["metadata"]["name"], "keyward-metrics");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );
    assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);
    let pdb = r.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    // A crash-looping or unready replica never blocks a node drain.
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow");
    assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);
    assert!(r.notes().contains("kubectl -n keyward-system rollout status deployment/keyward"), "{}", r.notes());
}

/// The roles for people: `view` reads, `edit` changes what is declared but cannot approve,
/// only `approve` creates RevocationApprovals; aggregated into Kubernetes' own roles as
/// cert-manager does (`approve` into `admin` only). A namespaced install can leave them out.
#[test]
fn aggregated_roles_keep_approvers_apart_from_editors() {
    let r = render(&Release::new(json!({})));
    let role = |name: &str| {
        r.of_kind("ClusterRole").into_iter().find(|o| o["metadata"]["name"] == name).unwrap_or_else(|| panic!("{name}"))
    };
    let grants = |role: &Value| -> Vec<(String, String)> {
        let mut out = Vec::new();
        for rule in role["rules"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    out.push((resource.as_str().unwrap().to_string(), verb.as_str().unwrap().to_string()));
                }
            }
        }
        out
    };
    let has = |role: &Value, resource: &str, verb: &str| grants(role).contains(&(resource.into(), verb.into()));
    let aggregates = |role: &Value| -> Vec<String> {
        let mut to: Vec<String> = role["metadata"]["labels"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| k.starts_with("rbac.authorization.k8s.io/aggregate-to-") && *v == "true")
            .map(|(k, _)| k.trim_start_matches("rbac.authorization.k8s.io/aggregate-to-").to_string())
            .collect();
        to.sort();
        to
    };
    let (view, edit, approve) = (role("keyward-view"), role("keyward-edit"), role("keyward-approve"));
    assert_eq!(aggregates(&view), ["admin", "edit", "view"]);
    assert_eq!(aggregates(&edit), ["admin", "edit"]);
    assert_eq!(aggregates(&approve), ["admin"], "approving is not part of `edit`");
    for kind in ["mfaproviders", "employees", "accessgrants", "revocationapprovals"] {
        assert!(has(&view, kind, "list") && !has(&view, kind, "patch"), "view reads {kind}");
    }
    for kind in ["mfaproviders", "employees", "accessgrants"] {
        assert!(has(&edit, kind, "create") && has(&edit, kind, "patch"), "edit changes {kind}");
    }
    assert!(grants(&edit).iter().all(|(resource, _)| !resource.starts_with("revocationapprovals")), "{edit}");
    assert!(has(&approve, "revocationapprovals", "create"));
    assert!(
        grants(&approve).iter().all(|(resource, verb)| resource == "revocationapprovals"
            || ["get", "list", "watch"].contains(&verb.as_str())
            || (resource == "mfaproviders" && verb == "approve")),
        "approve changes nothing else: {approve}"
    );
    // The verb the admission policy asks for before the settings that stop revocations change:
    // approvers have it, editors do not.
    assert!(has(&approve, "mfaproviders", "approve") && !has(&edit, "mfaproviders", "approve"));
    let without = render(&Release::new(json!({"rbac": {"aggregateClusterRoles": false}})));
    assert_eq!(without.of_kind("ClusterRole").len(), 0, "none: the operator's own RBAC is namespaced by default");
}

#[test]
fn the_pod_meets_the_restricted_pod_security_standard_by_default() {
    let r = render(&Release::new(json!({})));
    let violations = restricted_violations(&r.one("Deployment")["spec"]["template"]["spec"]);
    assert!(violations.is_empty(), "{violations:?}");
    // ...and the check can fail: a privileged sidecar and a root pod break it.
    let weakened = render(&Release::new(json!({
        "podSecurityContext": {"runAsNonRoot": false},
        "extraContainers": [{"name": "debug", "image": "busybox", "securityContext": {"privileged": true}}]
    })));
    let violations = restricted_violations(&weakened.one("Deployment")["spec"]["template"]["spec"]);
    assert!(violations.len() >= 3, "{violations:?}");
}

/// The Pod Security Standard "restricted" (Kubernetes 1.33), checked field by field.
fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let psc = &pod["securityContext"];
    for flag in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[flag] == true {
            v.push(flag.to_string());
        }
    }
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let allowed = [
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "persistentVolumeClaim",
            "projected",
            "secret",
        ];
        if !volume.as_object().unwrap().keys().any(|k| k == "name" || allowed.contains(&k.as_str())) {
            v.push(format!("volume type of {}", volume["name"]));
        }
    }
    for c in pod["containers"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation must be false"));
        }
        let non_root = if sc["runAsNonRoot"].is_boolean() { &sc["runAsNonRoot"] } else { &psc["runAsNonRoot"] };
        if non_root != true {
            v.push(format!("{name}: runAsNonRoot must be true"));
        }
        if sc["runAsUser"] == 0 || (sc["runAsUser"].is_null() && psc["runAsUser"] == 0) {
            v.push(format!("{name}: runs as UID 0"));
        }
        let seccomp = if sc["seccompProfile"].is_object() { &sc["seccompProfile"] } else { &psc["seccompProfile"] };
        if !matches!(seccomp["type"].as_str(), Some("RuntimeDefault" | "Localhost")) {
            v.push(format!("{name}: seccompProfile must be RuntimeDefault or Localhost"));
        }
        let drops_all = sc["capabilities"]["drop"].as_array().is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            v.push(format!("{name}: capabilities must drop ALL"));
        }
        if sc["capabilities"]["add"].as_array().is_some_and(|a| a.iter().any(|x| x != "NET_BIND_SERVICE")) {
            v.push(format!("{name}: adds capabilities"));
        }
    }
    v
}

#[test]
fn the_operator_gets_a_read_only_root_and_a_short_lived_token_only() {
    let r = render(&Release::new(json!({})));
    let pod = r.one("Deployment")["spec"]["template"]["spec"].clone();
    assert_eq!(deployment_container(&r)["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(r.one("ServiceAccount")["automountServiceAccountToken"], false);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let token =
        pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "kube-api-access").expect("token volume");
    let sources = token["projected"]["sources"].as_array().unwrap();
    assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3600);
    let mounts = deployment_container(&r)["volumeMounts"].clone();
    let mount = mounts.as_array().unwrap().iter().find(|m| m["name"] == "kube-api-access").unwrap();
    // Where kube-rs' in-cluster config looks for token, ca.crt and namespace.
    assert_eq!(mount["mountPath"], "/var/run/secrets/kubernetes.io/serviceaccount");
    assert_eq!(mount["readOnly"], true);
    // The audit log goes to stdout by default: no volume for it.
    assert!(mounts.as_array().unwrap().iter().all(|m| m["name"] != "audit"));
}

#[test]
fn non_default_values_render_a_namespaced_install_with_every_option() {
    let r = render(&everything_on_release());
    assert_eq!(
        kinds(&r),
        [
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Role",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ],
        "no ClusterRole and no CRDs"
    );
    let deployment = r.one("Deployment");
    assert_eq!(deployment["metadata"]["name"], "people-keyward");
    assert_eq!(deployment["metadata"]["namespace"], "security");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "keyward-operator");
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "acme-registry"}]));
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"]["acme.example/tier"], "critical");
    let c = deployment_container(&r);
    assert_eq!(c["image"], format!("registry.acme.example/security/keyward@sha256:{}", "ab".repeat(32)));
    assert_eq!(
        args(&r),
        [
            "run",
            "--namespaces=acme,acme-contractors",
            "--listen=0.0.0.0:9090",
            "--lease-name=keyward-acme",
            "--lease-namespace=security",
            "--lease-duration=30s",
            "--revocation-sla=4h",
            "--paused",
            "--approval-annotation",
            "--audit-log=/var/log/keyward/audit.jsonl",
            "--audit-rotate-size=0"
        ]
    );
    assert_eq!(env(&r, "KEYWARD_LOG").unwrap()["value"], "info,keyward=debug");
    assert_eq!(env(&r, "KEYWARD_LOG_FORMAT").unwrap()["value"], "text");
    assert_eq!(env(&r, "TZ").unwrap()["value"], "UTC");
    assert_eq!(env(&r, "KEYWARD_ALLOWED_HOSTS").unwrap()["value"], "acme.okta.com,*.duosecurity.com");
    assert_eq!(env(&r, "KEYWARD_NOTIFICATION_HOSTS").unwrap()["value"], "hooks.slack.com");
    let audit_mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "audit").cloned().unwrap();
    assert_eq!(audit_mount["mountPath"], "/var/log/keyward");
    let audit_volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "audit").cloned().unwrap();
    assert_eq!(audit_volume["emptyDir"]["sizeLimit"], "2Gi");
    assert_eq!(pod["containers"][1]["name"], "audit-shipper");
    assert_eq!(c["ports"][0]["containerPort"], 9090);

    let monitor = r.one("ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "http-metrics", "path": "/metrics", "interval": "1m", "scrapeTimeout": "20s",
                "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
                "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "keyward_reconcile_duration_seconds_bucket", "action": "drop"}]}])
    );
    let service = r.one("Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][key], value, "the ServiceMonitor selects the Service");
    }

    let policy = r.one("NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = policy["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 5, "API server, DNS, two providers and the extra rule: {egress:?}");
    assert_eq!(egress[0]["to"], json!([{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "172.20.0.10/32"}}]));
    assert_eq!(egress[1]["ports"], json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]));
    assert_eq!(egress[3]["ports"], json!([{"port": 443, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}]));
    assert_eq!(egress[4], everything_on()["networkPolicy"]["extraEgress"][0], "extraEgress is appended as given");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );

    let lease_role = r.of_kind("Role").into_iter().find(|o| o["metadata"]["namespace"] == "security").unwrap();
    assert_eq!(lease_role["rules"][1]["resourceNames"], json!(["keyward-acme"]));
    assert!(r.notes().contains("acme, acme-contractors"), "{}", r.notes());
    assert!(r.notes().contains("crds.install is false"), "{}", r.notes());
}

#[test]
fn single_replica_gets_no_disruption_budget_and_service_monitor_needs_the_service() {
    let results = render_all(&[
        Release::new(json!({"replicaCount": 1})),
        Release::new(json!({"serviceMonitor": {"enabled": true}, "service": {"enabled": false}})),
        Release::new(json!({"serviceAccount": {"create": false}})),
    ]);
    let single = results[0].as_ref().expect("render");
    assert!(single.of_kind("PodDisruptionBudget").is_empty(), "a PDB over one pod would block every drain");
    let err = results[1].as_ref().expect_err("ServiceMonitor without Service");
    assert!(err.contains("serviceMonitor.enabled needs service.enabled"), "{err}");
    let err = results[2].as_ref().expect_err("no ServiceAccount and no name");
    assert!(err.contains("serviceAccount.name is required"), "{err}");
}

/// A signing key for the audit file: the Secret mounted read-only, the operator pointed at
/// it, and RBAC for exactly the ConfigMap the signed checkpoint is copied to; without a key
/// (or with audit on stdout) none of it.
#[test]
fn an_audit_signing_key_is_mounted_and_its_checkpoint_configmap_granted() {
    let signed = json!({"audit": {"destination": "file", "file": {"signingKey": {"secretName": "audit-key"}}}});
    let results = render_all(&[
        Release::new(signed),
        Release::new(json!({"audit": {"destination": "file", "file": {"signingKey": {"generate": false}}}})),
        Release::new(json!({"audit": {"file": {"signingKey": {"secretName": "audit-key"}}}})),
    ]);
    assert!(results[0].as_ref().expect("render").of_kind("Secret").is_empty(), "the given Secret, none generated");
    let r = results[0].as_ref().expect("render");
    assert!(args(r).contains(&"--audit-signing-key=/etc/keyward/audit-signing/signer".to_string()), "{:?}", args(r));
    let pod = &r.one("Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "audit-signing").cloned();
    assert_eq!(volume.expect("the key's volume")["secret"]["secretName"], "audit-key");
    let mount = deployment_container(r)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "audit-signing")
        .cloned();
    assert_eq!(mount.expect("mounted")["readOnly"], true);
    let leader_role =
        r.of_kind("Role").into_iter().find(|role| role["metadata"]["name"] == "keyward-leader-election").expect("role");
    let rules = leader_role["rules"].as_array().expect("rules");
    assert!(
        rules.iter().any(|rule| rule["resources"] == json!(["configmaps"])
            && rule["verbs"] == json!(["patch"])
            && rule["resourceNames"] == json!(["keyward-leader-audit-checkpoint"])),
        "{rules:?}"
    );
    for unsigned in [&results[1], &results[2]] {
        let r = unsigned.as_ref().expect("render");
        assert!(!args(r).iter().any(|a| a.starts_with("--audit-signing-key")));
        assert!(!serde_json::to_string(&r.of_kind("Role")).unwrap().contains("configmaps"), "no grant without a key");
    }
}

/// Checkpoints are signed by default. Without a Secret of the user's, the chart
/// generates an Ed25519 key (Helm's `genPrivateKey`), keeps it on uninstall, and the key it
/// generates is one keyward signs with; NOTES says where the verifier key is published.
#[test]
fn a_file_audit_log_is_signed_with_a_generated_key_by_default() {
    let r = render(&Release::new(json!({"audit": {"destination": "file"}})));
    let secret = r.one("Secret");
    assert_eq!(secret["metadata"]["name"], "keyward-audit-signing");
    assert_eq!(secret["metadata"]["annotations"]["helm.sh/resource-policy"], "keep", "outlives helm uninstall");
    let pem = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        secret["data"]["signer"].as_str().expect("signer key"),
    )
    .expect("base64");
    let signer = keyward::audit::Signer::parse(&String::from_utf8(pem).expect("PEM")).expect("keyward signs with it");
    assert!(signer.verifier().starts_with("keyward-audit+"), "{}", signer.verifier());
    assert!(args(&r).contains(&"--audit-signing-key=/etc/keyward/audit-signing/signer".to_string()), "{:?}", args(&r));
    let pod = &r.one("Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "audit-signing").cloned();
    assert_eq!(volume.expect("the key's volume")["secret"]["secretName"], "keyward-audit-signing");
    assert!(
        r.notes().contains("get configmap keyward-leader-audit-checkpoint -o jsonpath='{.data.verifier}"),
        "{}",
        r.notes()
    );
    let again = render(&Release::new(json!({"audit": {"destination": "file"}})));
    assert_ne!(again.one("Secret")["data"], secret["data"], "each render without a cluster generates its own key");
}

/// The audit files on a PersistentVolumeClaim, one directory per replica, and rotated by
/// size; without a claim, on an emptyDir.
#[test]
fn the_audit_files_can_live_on_a_claim_and_rotate_by_size() {
    let kept = json!({"audit": {"destination": "file", "file": {"rotateSize": "100Mi", "persistence": {"existingClaim": "keyward-audit"}}}});
    let results = render_all(&[Release::new(kept), Release::new(json!({"audit": {"file": {"rotateSize": "1T"}}}))]);
    let r = results[0].as_ref().expect("render");
    assert!(args(r).contains(&"--audit-rotate-size=100Mi".to_string()), "{:?}", args(r));
    let pod = &r.one("Deployment")["spec"]["template"]["spec"];
    let volume =
        pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "audit").cloned().expect("audit");
    assert_eq!(volume["persistentVolumeClaim"]["claimName"], "keyward-audit");
    assert!(volume.get("emptyDir").is_none(), "{volume}");
    let mount = deployment_container(r)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "audit")
        .cloned()
        .expect("mounted");
    assert_eq!(mount["subPathExpr"], "$(POD_NAME)", "each replica keeps its own chain");
    let peers = deployment_container(r)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == "/var/log/keyward-peers")
        .cloned()
        .expect("the peers' directories");
    assert_eq!((peers["name"].as_str(), peers["readOnly"].as_bool()), (Some("audit"), Some(true)));
    assert!(args(r).contains(&"--audit-peer-logs=/var/log/keyward-peers/*/audit.jsonl".to_string()), "{:?}", args(r));
    let refused = results[1].as_ref().expect_err("a size the operator cannot read is refused by the schema");
    assert!(refused.contains("rotateSize"), "{refused}");
}

/// CloudEvents delivery of the audit trail: the operator gets the endpoint and the token
/// file, the token's Secret is mounted read-only; without a token no mount; with audit on
/// stdout the render fails and says why (the spool lives beside the audit file).
#[test]
fn audit_cloudevents_delivery_is_wired_and_needs_the_audit_file() {
    let url = "https://collector.acme.example/events";
    let results = render_all(&[
        Release::new(json!({"audit": {"destination": "file",
            "cloudEvents": {"endpoint": url, "tokenSecret": {"name": "collector-token"}}}})),
        Release::new(json!({"audit": {"destination": "file", "cloudEvents": {"endpoint": url}}})),
        Release::new(json!({"audit": {"cloudEvents": {"endpoint": url}}})),
        Release::new(json!({"audit": {"destination": "file"}})),
    ]);
    let r = results[0].as_ref().expect("render");
    let a = args(r);
    assert!(a.contains(&format!("--audit-endpoint={url}")), "{a:?}");
    assert!(a.contains(&"--audit-endpoint-token-file=/etc/keyward/audit-endpoint/token".to_string()), "{a:?}");
    let pod = &r.one("Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "audit-endpoint-token");
    assert_eq!(volume.expect("the token's volume")["secret"]["secretName"], "collector-token");
    let mounts = deployment_container(r)["volumeMounts"].clone();
    let mount = mounts.as_array().expect("mounts").iter().find(|m| m["name"] == "audit-endpoint-token").cloned();
    assert_eq!(mount.expect("mounted")["readOnly"], true);

    let r = results[1].as_ref().expect("render");
    assert!(args(r).contains(&format!("--audit-endpoint={url}")));
    assert!(!args(r).iter().any(|a| a.starts_with("--audit-endpoint-token-file")));
    assert!(!serde_json::to_string(&deployment_container(r)).unwrap().contains("audit-endpoint-token"));

    let err = results[2].as_ref().expect_err("an endpoint with audit on stdout");
    assert!(err.contains("audit.cloudEvents.endpoint needs audit.destination=file"), "{err}");
    let r = results[3].as_ref().expect("render");
    assert!(!args(r).iter().any(|a| a.starts_with("--audit-endpoint")), "no endpoint, no delivery");
}

/// The PrometheusRule: off by default; on, every alert of docs/metrics.md's list is there,
/// each on a metric the operator exports, with the SLA the operator is given.
#[test]
fn the_prometheus_rule_alerts_on_metrics_the_operator_exports() {
    let results = render_all(&[Release::new(json!({})), everything_on_release()]);
    assert!(results[0].as_ref().expect("render").of_kind("PrometheusRule").is_empty(), "off by default");
    let r = results[1].as_ref().expect("render");
    let rule = r.one("PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().expect("rules");
    let alerts: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().expect("alert")).collect();
    assert_eq!(
        alerts,
        [
            "KeywardNoLeader",
            "KeywardRevocationsBlocked",
            "KeywardRevocationsFailing",
            "KeywardRevocationSlaBreached",
            "KeywardAuditWriteFailing",
            "KeywardProviderErrors",
            "KeywardProviderClaimedElsewhere"
        ]
    );
    // The families the operator registers (src/metrics.rs: `registry.register("name", …)`).
    let source = std::fs::read_to_string(repo().join("src/metrics.rs")).expect("metrics source");
    let registered: Vec<String> = source
        .split("register(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next().map(|n| format!("keyward_{n}")))
        .collect();
    assert!(registered.len() >= 10, "{registered:?}");
    for r in rules {
        let expr = r["expr"].as_str().expect("expr");
        let metric = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| w.starts_with("keyward_"))
            .expect("a keyward metric");
        let family = metric.trim_end_matches("_total");
        assert!(registered.iter().any(|r| r == family), "{metric} is not a metric keyward exports: {registered:?}");
    }
    assert!(rules[3]["annotations"]["summary"].as_str().expect("summary").contains("(4h)"));
}

// ---------------------------------------------------------------------------------------
// values.schema.json

#[test]
fn the_schema_rejects_bad_values_with_the_offending_path() {
    let bad: Vec<(Value, &str)> = vec![
        (json!({"replicas": 2}), "additional properties 'replicas'"),
        (json!({"replicaCount": 0}), "/replicaCount"),
        (json!({"replicaCount": "2"}), "/replicaCount"),
        (json!({"image": {"pullPolicy": "Sometimes"}}), "/image/pullPolicy"),
        (json!({"image": {"digest": "sha256:xyz"}}), "/image/digest"),
        (json!({"image": {"tag": "v1 beta"}}), "/image/tag"),
        (json!({"watch": {"namespaces": "acme"}}), "/watch/namespaces"),
        (json!({"watch": {"namespaces": ["Acme_Corp"]}}), "/watch/namespaces/0"),
        (json!({"watch": {"namespaces": ["acme", "acme"]}}), "/watch/namespaces"),
        (json!({"watch": {"namespace": ["acme"]}}), "additional properties 'namespace'"),
        (json!({"leaderElection": {"leaseDuration": "15"}}), "/leaderElection/leaseDuration"),
        (json!({"audit": {"destination": "syslog"}}), "/audit/destination"),
        (json!({"audit": {"file": {"path": "audit.jsonl"}}}), "/audit/file/path"),
        (json!({"audit": {"file": {"path": "/audit.jsonl"}}}), "/audit/file/path"),
        (json!({"audit": {"cloudEvents": {"endpoint": "collector:8080"}}}), "/audit/cloudEvents/endpoint"),
        (json!({"logging": {"format": "xml"}}), "/logging/format"),
        (json!({"metrics": {"port": 80}}), "/metrics/port"),
        (json!({"service": {"port": 70000}}), "/service/port"),
        (json!({"serviceMonitor": {"interval": "often"}}), "/serviceMonitor/interval"),
        (
            json!({"networkPolicy": {"providers": [{"cidr": "pi.acme.example", "ports": [443]}]}}),
            "/networkPolicy/providers/0/cidr",
        ),
        (json!({"networkPolicy": {"providers": [{"cidr": "203.0.113.10/32"}]}}), "/networkPolicy/providers/0"),
        (json!({"crds": {"keep": "yes"}}), "/crds/keep"),
        (json!({"resources": {"limits": {"memory": "lots"}}}), "/resources/limits/memory"),
        (json!({"serviceAccountToken": {"expirationSeconds": 60}}), "/serviceAccountToken/expirationSeconds"),
        (json!({"podAntiAffinity": "strict"}), "/podAntiAffinity"),
        (json!({"podDisruptionBudget": {"maxUnavailable": 0}}), "/podDisruptionBudget/maxUnavailable"),
        (json!({"extraEnv": [{"value": "x"}]}), "/extraEnv/0"),
        (json!({"resources": {"limits": {"cpu": -1}}}), "/resources/limits/cpu"),
        (json!({"resources": {"limits": {"cpu": true}}}), "/resources/limits/cpu"),
        (json!({"imagePullSecrets": [{"nam": "acme-registry"}]}), "/imagePullSecrets/0"),
        (json!({"imagePullSecrets": [""]}), "/imagePullSecrets/0"),
        (json!({"global": {"imagePullSecrets": "acme-registry"}}), "/global/imagePullSecrets"),
        (json!({"global": []}), "/global"),
        (json!({"enabled": "yes"}), "/enabled"),
        (
            json!({"podDisruptionBudget": {"unhealthyPodEvictionPolicy": "Never"}}),
            "/podDisruptionBudget/unhealthyPodEvictionPolicy",
        ),
        (json!({"networkPolicy": {"extraEgress": [{"from": []}]}}), "/networkPolicy/extraEgress/0"),
        (json!({"serviceMonitor": {"relabelings": {"action": "drop"}}}), "/serviceMonitor/relabelings"),
        (json!({"crds": {"annotations": {"x": 1}}}), "/crds/annotations/x"),
    ];
    // Each bad value is rejected twice: by `helm install` (the render) and by `helm lint`.
    // (Good values pass both: the lint and render tests above.)
    let chart = helm::chart_dir();
    let checked = helm::parallel(&bad, |(values, _)| {
        let render = render_all(&[Release::new(values.clone())]).remove(0).map(|_| ());
        let lint = helm::lint(&chart, values, NS);
        let lint = if lint.passed { Ok(()) } else { Err(lint.output) };
        [("render", render), ("lint", lint)]
    });
    let mut wrong = Vec::new();
    for ((values, path), results) in bad.iter().zip(checked) {
        for (how, result) in results {
            match result {
                Err(error) if error.contains(path) => {}
                Err(error) => wrong.push(format!("{how} {values}: expected an error at {path:?}, got {error}")),
                Ok(()) => wrong.push(format!("{how} {values}: expected an error at {path:?}, got success")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn quantities_may_be_numbers_and_pull_secrets_either_form() {
    // `--set resources.limits.cpu=1` gives the number 1, which Kubernetes takes as a quantity.
    let results = render_all(&[
        Release::new(
            json!({"resources": {"requests": {"cpu": 0.5, "memory": "128Mi"}, "limits": {"cpu": 1, "memory": 536870912}}}),
        ),
        Release::new(json!({"imagePullSecrets": ["acme-registry", "mirror"]})),
        Release::new(json!({"imagePullSecrets": [{"name": "acme-registry"}, {"name": "mirror"}]})),
        Release::new(
            json!({"imagePullSecrets": [{"name": "acme-registry"}], "global": {"imagePullSecrets": ["mirror", {"name": "acme-registry"}]}}),
        ),
    ]);
    let numbers = results[0].as_ref().expect("numeric quantities");
    let c = deployment_container(numbers);
    assert_eq!(c["resources"]["limits"], json!({"cpu": 1, "memory": 536870912}));
    assert_eq!(c["resources"]["requests"]["cpu"], 0.5);
    // The API server takes them as quantities: cluster::helm_install_takes_set_numbers_as_quantities.
    let want = json!([{"name": "acme-registry"}, {"name": "mirror"}]);
    for (i, which) in [(1, "plain names"), (2, "objects"), (3, "objects plus global, deduplicated")] {
        let r = results[i].as_ref().unwrap_or_else(|e| panic!("{which}: {e}"));
        assert_eq!(r.one("Deployment")["spec"]["template"]["spec"]["imagePullSecrets"], want, "{which}");
    }
}

#[test]
fn the_defaults_hold_ten_thousand_employees_as_measured_and_the_sizing_table_holds_its_sizes() {
    // docs/performance.md is the scale benchmark's output; docs/helm.md's sizing table and the
    // chart's defaults must stay above what it measured.
    let perf = std::fs::read_to_string(repo().join("docs/performance.md")).unwrap();
    let measured = |what: &str, employees: &str| -> f64 {
        let row = format!("| Operator RSS, {what}, {employees} Employees |");
        let line = perf.lines().find(|l| l.starts_with(&row)).unwrap_or_else(|| panic!("{row} not in performance.md"));
        let cell = line.trim_end_matches('|').rsplit('|').next().unwrap().trim();
        cell.strip_suffix(" MiB").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{cell:?} in {line}"))
    };
    // The leader's cgroup memory peak in a Pod of the chart on a real node (benches/pod_scale.rs):
    // what the kubelet compares with the limit.
    let in_pod = |employees: &str| -> f64 {
        let row = format!(
            "| In a Pod under the chart's limits: cgroup memory peak, leader / standby, {employees} Employees |"
        );
        let line = perf.lines().find(|l| l.starts_with(&row)).unwrap_or_else(|| panic!("{row} not in performance.md"));
        let cell = line.trim_end_matches('|').rsplit('|').next().unwrap().trim();
        let leader = cell.split(" / ").next().unwrap_or_default();
        leader.strip_suffix(" MiB").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{cell:?} in {line}"))
    };
    let c = deployment_container(&render(&Release::new(json!({}))));
    let request = mebibytes(c["resources"]["requests"]["memory"].as_str().unwrap());
    let limit = mebibytes(c["resources"]["limits"]["memory"].as_str().unwrap());
    let steady = measured("steady (40 s after start)", "10,000");
    assert!(request >= steady, "default request {request} MiB below the steady RSS at 10,000 Employees ({steady} MiB)");
    let pod_10k = in_pod("10,000");
    assert!(
        request >= pod_10k,
        "default request {request} MiB below the leader's in-Pod peak at 10,000 ({pod_10k} MiB)"
    );
    let pod_50k = in_pod("50,000");
    assert!(
        limit >= 1.5 * pod_50k,
        "default limit {limit} MiB: less than 1.5 × the in-Pod peak at 50,000 ({pod_50k} MiB)"
    );
    // Headroom: a company five times that size still starts under the default limit.
    let peak_50k = measured("peak (VmHWM)", "50,000");
    assert!(
        limit >= 1.5 * peak_50k,
        "default limit {limit} MiB: less than 1.5 × the 50,000-Employee peak ({peak_50k} MiB)"
    );

    let helm_md = std::fs::read_to_string(repo().join("docs/helm.md")).unwrap();
    let table: Vec<Vec<String>> = helm_md
        .lines()
        .skip_while(|l| !l.starts_with("| Employees"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().replace('`', "")).collect())
        .collect();
    assert!(table.len() >= 3, "no sizing table in docs/helm.md: {table:?}");
    let mut checked = 0;
    for row in &table {
        // | Employees | requests.memory | limits.memory | measured … |
        let employees = row[0].trim_start_matches("up to ").to_string();
        if !["1,000", "10,000", "50,000"].contains(&employees.as_str()) {
            continue;
        }
        let (request, limit) = (mebibytes(&row[1]), mebibytes(&row[2]));
        let (steady, peak) = (measured("steady (40 s after start)", &employees), measured("peak (VmHWM)", &employees));
        assert!(request >= steady && limit >= 1.5 * peak, "{row:?}: measured {steady} MiB steady, {peak} MiB peak");
        let pod = in_pod(&employees);
        assert!(request >= pod && limit >= 1.5 * pod, "{row:?}: the leader's in-Pod peak is {pod} MiB");
        assert_eq!(row[4], format!("{pod:.1} MiB"), "the table's in-Pod column is performance.md's figure");
        checked += 1;
    }
    assert_eq!(checked, 3, "{table:?}");
    let default_row = table.iter().find(|r| r[0] == "up to 10,000").expect("a 10,000 row");
    assert_eq!(
        (mebibytes(&default_row[1]), mebibytes(&default_row[2])),
        (request, limit),
        "the table's 10,000 row is the chart default"
    );
}

/// A Kubernetes memory quantity (Mi, Gi, or bytes) in MiB.
fn mebibytes(quantity: &str) -> f64 {
    let (number, factor) = match quantity {
        q if q.ends_with("Gi") => (&q[..q.len() - 2], 1024.0),
        q if q.ends_with("Mi") => (&q[..q.len() - 2], 1.0),
        q => (q, 1.0 / (1024.0 * 1024.0)),
    };
    number.parse::<f64>().unwrap_or_else(|_| panic!("quantity {quantity:?}")) * factor
}

#[test]
fn values_yaml_documents_every_field_and_the_schema_knows_every_one() {
    let text = std::fs::read_to_string(helm::chart_dir().join("values.yaml")).unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(helm::chart_dir().join("values.schema.json")).unwrap()).unwrap();
    // Objects whose content is plain Kubernetes API (documented there), not chart fields.
    let free_form =
        ["resources", "livenessProbe", "readinessProbe", "podSecurityContext", "securityContext", "networkPolicy.dns"];
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut previous = "";
    let mut undocumented = Vec::new();
    let mut paths = BTreeSet::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let key = trimmed.split_once(':').map(|(k, _)| k).filter(|k| !k.starts_with(['#', '-']) && !k.contains(' '));
        if let Some(key) = key {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let path = stack.iter().map(|(_, k)| k.as_str()).chain([key]).collect::<Vec<_>>().join(".");
            let inside_free_form = free_form.iter().any(|f| path.starts_with(&format!("{f}.")));
            let is_group = trimmed.trim_end().ends_with(':');
            if !inside_free_form {
                paths.insert(path.clone());
                if !is_group && !previous.trim_start().starts_with('#') {
                    undocumented.push(path.clone());
                }
            }
            stack.push((indent, key.to_string()));
        }
        previous = line;
    }
    assert!(undocumented.is_empty(), "fields of values.yaml without a comment above them: {undocumented:?}");
    let unknown: Vec<&String> = paths.iter().filter(|p| schema_node(&schema, p).is_none()).collect();
    assert!(unknown.is_empty(), "values.yaml fields missing from values.schema.json: {unknown:?}");
    assert!(paths.len() > 60, "parsed only {} fields of values.yaml", paths.len());
}

fn schema_node<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = schema;
    for key in path.split('.') {
        if let Some(reference) = node["$ref"].as_str() {
            node = &schema["definitions"][reference.trim_start_matches("#/definitions/")];
        }
        node = node["properties"].get(key)?;
    }
    Some(node)
}

// ---------------------------------------------------------------------------------------
// Schema checks of the rendered objects

#[test]
fn every_rendered_object_passes_its_kubernetes_schema() {
    let releases = [
        Release::new(json!({})),
        everything_on_release(),
        Release::new(json!({"replicaCount": 1, "audit": {"destination": "file"}, "podAntiAffinity": "none",
                            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
                            "crds": {"keep": false}, "rbac": {"create": false}})),
    ];
    let mut problems = Vec::new();
    let mut checked = 0;
    for result in render_all(&releases) {
        for obj in result.expect("render").objects() {
            checked += 1;
            if let Err(e) = typed::check(&obj) {
                problems.push(e);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 25, "checked {checked} objects");
}

#[test]
fn the_schema_check_catches_unknown_and_mistyped_fields() {
    let r = render(&Release::new(json!({"watch": {"clusterWide": true}})));
    let mut deployment = r.one("Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = json!({"periodSeconds": 5});
    let e = typed::check(&deployment).expect_err("unknown field");
    assert!(e.contains("readinessProbes: unknown field"), "{e}");
    let mut deployment = r.one("Deployment");
    deployment["spec"]["replicas"] = json!("two");
    assert!(typed::check(&deployment).is_err());
    let mut binding = r.one("ClusterRoleBinding");
    binding["roleRef"].as_object_mut().unwrap().remove("kind");
    assert!(typed::check(&binding).is_err(), "roleRef.kind is required");
}

// ---------------------------------------------------------------------------------------
// CRDs

#[test]
fn chart_crds_are_the_repository_crds() {
    let chart_crds = helm::chart_dir().join("files/crds");
    let mut repo_files: Vec<String> = std::fs::read_dir(repo().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    let mut chart_files: Vec<String> =
        std::fs::read_dir(&chart_crds).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    repo_files.sort();
    chart_files.sort();
    assert_eq!(chart_files, repo_files, "run scripts/helm.sh sync");
    for file in &repo_files {
        let ours = std::fs::read_to_string(chart_crds.join(file)).unwrap();
        let theirs = std::fs::read_to_string(repo().join("crds").join(file)).unwrap();
        assert!(ours == theirs, "charts/keyward/files/crds/{file} differs from crds/{file}: run scripts/helm.sh sync");
    }
}

#[test]
fn rendered_crds_equal_crds_dir_plus_the_keep_policy() {
    let results = render_all(&[Release::new(json!({})), Release::new(json!({"crds": {"keep": false}}))]);
    let kept = results[0].as_ref().unwrap().of_kind("CustomResourceDefinition");
    let unkept = results[1].as_ref().unwrap().of_kind("CustomResourceDefinition");
    let mut expected: Vec<Value> = std::fs::read_dir(repo().join("crds"))
        .unwrap()
        .flat_map(|e| helm::parse_documents(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    expected.sort_by_key(|c| c["metadata"]["name"].as_str().unwrap().to_string());
    assert_eq!(kept.len(), expected.len());
    for (rendered, want) in kept.iter().zip(&expected) {
        let name = want["metadata"]["name"].as_str().unwrap();
        assert_eq!(rendered["metadata"]["annotations"]["helm.sh/resource-policy"], "keep", "{name}");
        // Argo CD ignores Helm's annotation when it prunes: its own says the same.
        assert_eq!(
            rendered["metadata"]["annotations"]["argocd.argoproj.io/sync-options"], "Prune=false,Delete=false",
            "{name}"
        );
        assert_eq!(rendered["metadata"]["labels"]["app.kubernetes.io/part-of"], "keyward", "{name}");
        let mut stripped = rendered.clone();
        let meta = stripped["metadata"].as_object_mut().unwrap();
        meta.remove("labels");
        meta.remove("annotations");
        assert!(
            same_json(&stripped, want),
            "{name}: the rendered CRD differs from crds/ beyond labels and annotations"
        );
    }
    for crd in unkept {
        assert!(crd["metadata"]["annotations"].get("helm.sh/resource-policy").is_none());
        assert!(crd["metadata"]["annotations"].get("argocd.argoproj.io/sync-options").is_none());
    }
}

#[test]
fn crds_annotations_are_added_and_win_over_the_charts() {
    let r = render(&Release::new(json!({"crds": {"annotations": {
        "acme.example/owner": "security",
        "argocd.argoproj.io/sync-options": "Prune=false,Delete=false,ServerSideApply=true"
    }}})));
    let crds = r.of_kind("CustomResourceDefinition");
    assert_eq!(crds.len(), 4);
    for crd in crds {
        let annotations = &crd["metadata"]["annotations"];
        assert_eq!(annotations["acme.example/owner"], "security");
        assert_eq!(annotations["argocd.argoproj.io/sync-options"], "Prune=false,Delete=false,ServerSideApply=true");
        assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    }
}

#[test]
fn a_drifted_chart_crd_is_detected() {
    // The comparison above on a chart whose copy lost a field: it must not pass.
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = dir.path().join("keyward");
    copy_dir(&helm::chart_dir(), &chart);
    let file = chart.join("files/crds/employees.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let text = original.replacen("                - Offboarded\n", "", 1);
    assert_ne!(text, original, "the enum value to drop is no longer in employees.yaml: update this test");
    std::fs::write(&file, &text).unwrap();
    let rendered = helm::render_chart(&chart, &Release::new(json!({}))).expect("render");
    let rendered = helm::parse_documents(&rendered.files["keyward/templates/crds.yaml"]).unwrap();
    let employees = rendered.iter().find(|c| c["metadata"]["name"] == "employees.keyward.dev").unwrap();
    let want = helm::parse_documents(&std::fs::read_to_string(repo().join("crds/employees.yaml")).unwrap()).unwrap();
    let mut stripped = employees.clone();
    stripped["metadata"].as_object_mut().unwrap().retain(|k, _| k == "name");
    assert!(!same_json(&stripped, &want[0]), "a CRD missing an enum value compared equal");
}

// ---------------------------------------------------------------------------------------
// RBAC = the operator's API use

/// The operator's Kubernetes API use as `keyward run` makes it (the interface the chart
/// deploys): reads of the three kinds and Secrets, the Employee finalizer, status patches,
/// Events, and the Lease. `watched` None: cluster-wide watches.
fn operator_requests(watched: Option<&[&str]>, objects_in: &[&str], lease_ns: &str) -> Vec<ApiRequest> {
    let mut requests = Vec::new();
    let kinds = [
        ("keyward.dev", "mfaproviders"),
        ("keyward.dev", "employees"),
        ("keyward.dev", "accessgrants"),
        ("keyward.dev", "revocationapprovals"),
        ("", "secrets"),
    ];
    for (group, resource) in kinds {
        for verb in ["list", "watch"] {
            match watched {
                None => requests.push(ApiRequest::new(verb, group, resource, None, None)),
                Some(namespaces) => {
                    requests.extend(namespaces.iter().map(|ns| ApiRequest::new(verb, group, resource, None, Some(ns))))
                }
            }
        }
    }
    for ns in objects_in {
        let ns = Some(*ns);
        // No GETs of single objects: the operator reads from its watch caches.
        requests.push(ApiRequest::new("patch", "keyward.dev", "employees", None, ns));
        for resource in ["mfaproviders", "employees", "accessgrants", "revocationapprovals"] {
            requests.push(ApiRequest::new("patch", "keyward.dev", resource, Some("status"), ns));
        }
        requests.push(ApiRequest::new("create", "events.k8s.io", "events", None, ns));
        requests.push(ApiRequest::new("patch", "events.k8s.io", "events", None, ns));
        // The claim Lease next to each MfaProvider (one installation acts on it).
        for verb in ["get", "create", "update"] {
            requests.push(ApiRequest::new(verb, "coordination.k8s.io", "leases", None, ns));
        }
    }
    for verb in ["get", "create", "update"] {
        requests.push(ApiRequest::new(verb, "coordination.k8s.io", "leases", None, Some(lease_ns)));
    }
    requests
}

/// The default install watches its own namespace: the operator's requests there are granted,
/// and nothing elsewhere — not kube-system's Secrets, not kube-node-lease's Leases.
#[test]
fn by_default_the_operator_is_granted_its_requests_in_the_release_namespace_only() {
    let r = render(&Release::new(json!({})));
    let objects = r.objects();
    let requests = operator_requests(Some(&[NS]), &[NS], NS);
    rbac::assert_grants_exactly(&objects, NS, "keyward", &requests);
    let grants = rbac::grants_of(&objects, NS, "keyward").unwrap();
    for (verb, resource, namespace) in [
        ("list", "secrets", "kube-system"),
        ("watch", "secrets", "acme"),
        ("update", "leases", "kube-node-lease"),
        ("create", "leases", "kube-system"),
        ("get", "leases", "kube-system"),
    ] {
        let group = if resource == "leases" { "coordination.k8s.io" } else { "" };
        let outside = ApiRequest::new(verb, group, resource, None, Some(namespace));
        assert!(!rbac::diff(&grants, std::slice::from_ref(&outside)).is_empty(), "{verb} {resource} in {namespace}");
    }
    assert!(r.notes().contains("It watches the namespaces: keyward-system"), "{}", r.notes());
    assert!(!r.notes().contains("WARNING"), "{}", r.notes());
}

/// Cluster-wide RBAC is a choice made out loud: `watch.clusterWide`, never with a list, and
/// NOTES says what it grants.
#[test]
fn cluster_wide_watching_is_explicit_and_warned_about() {
    let r = render(&Release::new(json!({"watch": {"clusterWide": true}})));
    assert!(r.notes().contains("WARNING: watch.clusterWide is on"), "{}", r.notes());
    assert!(!args(&r).iter().any(|a| a.starts_with("--namespaces")), "{:?}", args(&r));
    let both = helm::render_chart(
        &helm::chart_dir(),
        &Release::new(json!({"watch": {"clusterWide": true, "namespaces": ["acme"]}})),
    )
    .expect_err("a list and cluster-wide at once");
    assert!(both.contains("/watch/namespaces"), "{both}");
}

/// No allowlist is a choice made out loud too: the chart refuses to render without
/// `providerHosts` unless `allowAnyProviderHost` is set, and NOTES warns when it is.
#[test]
fn provider_hosts_are_required_unless_any_host_is_allowed_out_loud() {
    let refused = helm::render_chart(&helm::chart_dir(), &Release::exactly(json!({}))).expect_err("no providerHosts");
    assert!(refused.contains("providerHosts is empty") && refused.contains("allowAnyProviderHost"), "{refused}");
    let r = render(&Release::exactly(json!({"allowAnyProviderHost": true})));
    assert_eq!(env(&r, "KEYWARD_ALLOWED_HOSTS"), None, "no allowlist");
    assert!(r.notes().contains("WARNING: allowAnyProviderHost is on"), "{}", r.notes());
}

#[test]
fn cluster_wide_rbac_grants_exactly_the_operators_requests() {
    let r = render(&Release::new(json!({"watch": {"clusterWide": true}})));
    let objects = r.objects();
    let requests = operator_requests(None, &["acme", "beta"], NS);
    rbac::assert_grants_exactly(&objects, NS, "keyward", &requests);
    let grants = rbac::grants_of(&objects, NS, "keyward").unwrap();
    let secrets: Vec<_> = grants.iter().filter(|g| g.resource == "secrets").collect();
    assert!(secrets.iter().all(|g| g.scope == Scope::Cluster && ["list", "watch"].contains(&g.verb.as_str())));
    // In the release namespace, the leader Lease by name; the providers' claims wherever the
    // providers are.
    let leases: Vec<_> = grants.iter().filter(|g| g.resource == "leases").collect();
    let leader: Vec<_> = leases.iter().filter(|g| g.scope == Scope::Namespace(NS.into())).collect();
    assert!(leader.iter().filter(|g| g.verb != "create").all(|g| g.resource_names == ["keyward-leader"]), "{leases:?}");
    assert!(leases.iter().all(|g| ["get", "create", "update"].contains(&g.verb.as_str())), "{leases:?}");
}

#[test]
fn namespaced_rbac_grants_exactly_the_operators_requests_in_those_namespaces() {
    let r = render(&everything_on_release());
    let objects = r.objects();
    let watched = ["acme", "acme-contractors"];
    let requests = operator_requests(Some(&watched), &watched, "security");
    rbac::assert_grants_exactly(&objects, "security", "keyward-operator", &requests);
    let grants = rbac::grants_of(&objects, "security", "keyward-operator").unwrap();
    assert!(grants.iter().all(|g| g.scope != Scope::Cluster), "no cluster-wide grant in namespaced mode");

    // Anything outside the watched namespaces is denied.
    for outside in [
        ApiRequest::new("list", "", "secrets", None, Some("kube-system")),
        ApiRequest::new("list", "", "secrets", None, None),
        ApiRequest::new("watch", "keyward.dev", "employees", None, None),
        ApiRequest::new("create", "events.k8s.io", "events", None, Some("default")),
        ApiRequest::new("update", "coordination.k8s.io", "leases", None, Some("kube-system")),
    ] {
        let d = rbac::diff(&grants, std::slice::from_ref(&outside));
        assert_eq!(d.missing, std::slice::from_ref(&outside), "{outside} must be denied");
    }
}

#[test]
fn the_rbac_comparison_fails_on_a_missing_or_an_extra_permission() {
    let r = render(&Release::new(json!({"watch": {"clusterWide": true}})));
    let grants = rbac::grants_of(&r.objects(), NS, "keyward").unwrap();
    let exact = operator_requests(None, &["acme"], NS);
    assert!(rbac::diff(&grants, &exact).is_empty());

    // The operator starts deleting Employees: the chart does not allow it.
    let mut more = exact.clone();
    more.push(ApiRequest::new("delete", "keyward.dev", "employees", None, Some("acme")));
    more.push(ApiRequest::new("update", "keyward.dev", "employees", Some("status"), Some("acme")));
    let d = rbac::diff(&grants, &more);
    assert_eq!(d.missing.len(), 2, "{d}");
    assert!(d.unused.is_empty(), "{d}");

    // The operator never patches Events: the chart grants too much.
    let fewer: Vec<ApiRequest> =
        exact.iter().filter(|r| !(r.resource == "events" && r.verb == "patch")).cloned().collect();
    let d = rbac::diff(&grants, &fewer);
    assert!(d.missing.is_empty(), "{d}");
    assert_eq!(d.unused.len(), 1, "{d}");
    assert_eq!((d.unused[0].verb.as_str(), d.unused[0].resource.as_str()), ("patch", "events"));

    // Leases listed cluster-wide are denied (claims are read one by one).
    let d = rbac::diff(&grants, &[ApiRequest::new("list", "coordination.k8s.io", "leases", None, None)]);
    assert_eq!(d.missing.len(), 1);

    // A wildcard rule is refused outright.
    let mut objects = r.objects();
    let role = objects.iter_mut().find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "keyward").unwrap();
    role["rules"][0]["verbs"] = json!(["*"]);
    assert!(rbac::grants_of(&objects, NS, "keyward").unwrap_err().contains("wildcard"));
}

#[test]
fn http_requests_map_to_the_rbac_verbs_the_api_server_checks() {
    let cases = [
        (
            "GET",
            "/apis/keyward.dev/v1alpha1/employees",
            "watch=true&resourceVersion=10",
            "watch keyward.dev/employees cluster-wide",
        ),
        ("GET", "/apis/keyward.dev/v1alpha1/employees", "limit=500", "list keyward.dev/employees cluster-wide"),
        (
            "GET",
            "/apis/keyward.dev/v1alpha1/namespaces/acme/employees",
            "",
            "list keyward.dev/employees in namespace acme",
        ),
        (
            "GET",
            "/apis/keyward.dev/v1alpha1/namespaces/acme/employees/alice",
            "",
            "get keyward.dev/employees in namespace acme",
        ),
        (
            "PATCH",
            "/apis/keyward.dev/v1alpha1/namespaces/acme/employees/alice/status",
            "fieldManager=keyward",
            "patch keyward.dev/employees/status in namespace acme",
        ),
        (
            "PATCH",
            "/apis/keyward.dev/v1alpha1/namespaces/acme/employees/alice",
            "",
            "patch keyward.dev/employees in namespace acme",
        ),
        ("GET", "/api/v1/namespaces/acme/secrets/pi-admin", "", "get core/secrets in namespace acme"),
        ("GET", "/api/v1/watch/namespaces/acme/secrets", "", "watch core/secrets in namespace acme"),
        ("POST", "/apis/events.k8s.io/v1/namespaces/acme/events", "", "create events.k8s.io/events in namespace acme"),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/keyward-system/leases/keyward-leader",
            "",
            "update coordination.k8s.io/leases in namespace keyward-system",
        ),
        (
            "DELETE",
            "/apis/keyward.dev/v1alpha1/namespaces/acme/employees",
            "",
            "deletecollection keyward.dev/employees in namespace acme",
        ),
        ("GET", "/api/v1/namespaces/acme", "", "get core/namespaces in namespace acme"),
    ];
    for (method, path, query, want) in cases {
        let got = ApiRequest::from_http(method, path, query).unwrap_or_else(|| panic!("{method} {path}"));
        assert_eq!(got.to_string(), want, "{method} {path}?{query}");
    }
    for path in ["/api", "/apis", "/apis/keyward.dev/v1alpha1", "/version", "/openapi/v2"] {
        assert_eq!(ApiRequest::from_http("GET", path, ""), None, "{path} is not a resource request");
    }
}

// ---------------------------------------------------------------------------------------
// Status for GitOps tools: Argo CD health check and Flux kstatus

fn samples() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("tests/chart/status-samples.yaml")).unwrap();
    helm::parse_documents(&text).unwrap()
}

fn expectation(sample: &Value, key: &str) -> String {
    sample["metadata"]["annotations"][format!("test.keyward.dev/{key}")].as_str().unwrap_or_default().to_string()
}

fn lua_interpreters() -> [&'static str; 2] {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let present = |lua: &str| std::process::Command::new(lua).arg("-v").output().is_ok_and(|o| o.status.success());
        if !present("lua5.1") || !present("lua5.4") {
            let status = std::process::Command::new("bash")
                .arg(repo().join("scripts/helm.sh"))
                .arg("install")
                .status()
                .expect("scripts/helm.sh install");
            assert!(status.success(), "scripts/helm.sh install failed");
        }
    });
    ["lua5.1", "lua5.4"]
}

#[test]
fn argocd_health_check_reads_every_sample_state() {
    let script = repo().join("deploy/argocd/health.lua");
    let samples = samples();
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for lua in lua_interpreters() {
        for sample in &samples {
            let name = format!("{} {}", sample["kind"].as_str().unwrap(), sample["metadata"]["name"].as_str().unwrap());
            let want = expectation(sample, "argocd");
            let (status, message) =
                status::argocd_health(lua, &script, sample).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen.insert(want.clone());
            if status != want {
                wrong.push(format!("{lua} {name}: {status} ({message}), expected {want}"));
            }
            if message.is_empty() || message == "nil" {
                wrong.push(format!("{lua} {name}: no message"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["Degraded", "Healthy", "Progressing", "Suspended"]);
    let kinds: BTreeSet<&str> = samples.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["AccessGrant", "Employee", "MfaProvider"]);
}

#[test]
fn argocd_health_messages_carry_the_reason() {
    let script = repo().join("deploy/argocd/health.lua");
    let samples = samples();
    // Installs the interpreters when missing, as the other health check test does.
    let [lua51, lua54] = lua_interpreters();
    let over_budget = samples.iter().find(|s| s["metadata"]["name"] == "over-budget").unwrap();
    let (_, message) = status::argocd_health(lua54, &script, over_budget).unwrap();
    assert!(message.starts_with("RevocationBudgetExceeded: ") && message.contains("3f9a0c1d2e4b"), "{message}");
    let grace = samples.iter().find(|s| s["metadata"]["name"] == "grace").unwrap();
    let (_, message) = status::argocd_health(lua51, &script, grace).unwrap();
    assert!(message.contains("totp, hotp not enrolled"), "{message}");
    // Non-ASCII text survives the trip into Lua.
    let mut unicode = grace.clone();
    unicode["status"]["conditions"][0]["message"] = json!("Zoë’s factors — kept");
    let (_, message) = status::argocd_health(lua51, &script, &unicode).unwrap();
    assert!(message.contains("Zoë’s factors — kept"), "{message}");
}

#[test]
fn argocd_cm_embeds_the_health_check_for_each_kind() {
    let script = std::fs::read_to_string(repo().join("deploy/argocd/health.lua")).unwrap();
    let cm: Value =
        helm::parse_documents(&std::fs::read_to_string(repo().join("deploy/argocd/argocd-cm.yaml")).unwrap())
            .unwrap()
            .remove(0);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    for kind in ["MfaProvider", "Employee", "AccessGrant"] {
        let key = format!("resource.customizations.health.keyward.dev_{kind}");
        assert!(
            cm["data"][&key].as_str() == Some(script.as_str()),
            "{key} differs from health.lua: run scripts/helm.sh sync"
        );
    }
}

#[test]
fn flux_kstatus_reads_every_sample_as_expected() {
    let mut wrong = Vec::new();
    for sample in samples() {
        let name = sample["metadata"]["name"].as_str().unwrap().to_string();
        let want =
            status::KStatus::parse(&expectation(&sample, "kstatus")).unwrap_or_else(|| panic!("{name}: no kstatus"));
        let (got, message) = status::kstatus(&sample);
        if got != want {
            wrong.push(format!("{name}: {got:?} ({message}), expected {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn kstatus_reads_the_ready_condition_only_after_reconciling_and_stalled() {
    // Upstream's order (checkGenericProperties before checkReadyCondition): a Ready=True left
    // behind next to Reconciling=True is InProgress, and Ready=False alone is never Failed.
    let carol = samples().into_iter().find(|s| s["metadata"]["name"] == "carol").unwrap();
    let mut stale_ready = carol.clone();
    stale_ready["status"]["conditions"][0]["status"] = json!("True");
    assert_eq!(status::kstatus(&stale_ready).0, status::KStatus::InProgress);
    let mut ready_only = carol.clone();
    ready_only["status"]["conditions"] = json!([carol["status"]["conditions"][0].clone()]);
    assert_eq!(status::kstatus(&ready_only).0, status::KStatus::InProgress, "Ready=False alone");
    ready_only["status"]["conditions"][0]["status"] = json!("True");
    assert_eq!(status::kstatus(&ready_only).0, status::KStatus::Current, "Ready=True alone");
}

/// The people Kustomization's `spec.healthCheckExprs` in the Flux example.
fn flux_health_check_exprs() -> Vec<Value> {
    let flux = helm::parse_documents(
        &std::fs::read_to_string(repo().join("examples/gitops/platform/flux/keyward.yaml")).unwrap(),
    )
    .unwrap();
    let people = flux.iter().find(|d| d["kind"] == "Kustomization" && d["metadata"]["name"] == "people").unwrap();
    assert_eq!(people["spec"]["wait"], true, "healthCheckExprs apply to what `wait` checks");
    people["spec"]["healthCheckExprs"].as_array().cloned().unwrap_or_default()
}

#[test]
fn flux_health_check_exprs_cover_the_three_kinds_and_read_every_sample_as_expected() {
    let exprs = flux_health_check_exprs();
    let mut kinds: Vec<&str> = exprs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["AccessGrant", "Employee", "MfaProvider"]);
    for e in &exprs {
        // Flux matches on the API group of the served CRD.
        assert_eq!(e["apiVersion"], "keyward.dev/v1alpha1", "{e}");
        assert!(e["current"].is_string(), "`current` is required: {e}");
    }
    let mut wrong = Vec::new();
    for sample in samples() {
        let name = sample["metadata"]["name"].as_str().unwrap().to_string();
        let entry = exprs.iter().find(|e| e["kind"] == sample["kind"]).unwrap();
        let want = status::KStatus::parse(&expectation(&sample, "flux")).unwrap_or_else(|| panic!("{name}: no flux"));
        let (got, message) = status::flux_health(&sample, entry);
        if got != want {
            wrong.push(format!("{name}: {got:?} ({message}), expected {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What the expressions are for: kstatus reads a just-applied object as Current.
    let new = samples().into_iter().find(|s| s["metadata"]["name"] == "new").unwrap();
    assert_eq!(status::kstatus(&new).0, status::KStatus::Current);
    assert_ne!(status::flux_health(&new, &exprs[0]).0, status::KStatus::Current);
}

#[test]
fn the_flux_evaluation_port_fails_on_wrong_expressions() {
    let ready = samples().into_iter().find(|s| s["metadata"]["name"] == "ready").unwrap();
    let typo = json!({"current": "status.conditions.exists(c, c.type == 'Readyy' && c.status == 'True')"});
    assert_eq!(status::flux_health(&ready, &typo).0, status::KStatus::InProgress);
    let missing = json!({"current": "status.phase == 'Ready'"});
    assert_eq!(status::flux_health(&ready, &missing).0, status::KStatus::Unknown);
    assert!(status::eval_cel("metadata.name == 'ready'", &ready).unwrap());
}

#[test]
fn samples_keep_the_condition_contract_unless_marked() {
    let mut wrong = Vec::new();
    let mut broken_seen = 0;
    for sample in samples() {
        let name = sample["metadata"]["name"].as_str().unwrap().to_string();
        let violations = status::contract_violations(&sample);
        match expectation(&sample, "contract").as_str() {
            "broken" => {
                broken_seen += 1;
                if violations.is_empty() {
                    wrong.push(format!("{name} is marked broken but keeps the contract"));
                }
            }
            "none" => assert!(sample["status"].is_null(), "{name}"),
            _ if !violations.is_empty() => wrong.push(format!("{name}: {violations:?}")),
            _ => {}
        }
        // Argo CD and kstatus agree on whether the object is done.
        let argocd = expectation(&sample, "argocd");
        let kstatus = expectation(&sample, "kstatus");
        if matches!(argocd.as_str(), "Healthy" | "Suspended") && kstatus != "Current" {
            wrong.push(format!("{name}: Argo CD {argocd} but kstatus {kstatus}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(broken_seen, 1);
}

#[test]
fn the_contract_checker_flags_each_rule() {
    let base = samples().into_iter().find(|s| s["metadata"]["name"] == "carol").unwrap();
    assert!(status::contract_violations(&base).is_empty());
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        status::contract_violations(&v)
    };
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "observedGeneration is missing",
            Box::new(|v| drop(v["status"].as_object_mut().unwrap().remove("observedGeneration"))),
        ),
        ("> metadata.generation", Box::new(|v| v["status"]["observedGeneration"] = json!(9))),
        ("no Ready condition", Box::new(|v| v["status"]["conditions"][0]["type"] = json!("Readyish"))),
        (
            "exactly one of Reconciling and Stalled",
            Box::new(|v| v["status"]["conditions"][1]["status"] = json!("False")),
        ),
        ("not CamelCase", Box::new(|v| v["status"]["conditions"][0]["reason"] = json!("revocation pending"))),
        ("not RFC 3339", Box::new(|v| v["status"]["conditions"][0]["lastTransitionTime"] = json!("yesterday"))),
        (
            "differs from status.observedGeneration",
            Box::new(|v| v["status"]["conditions"][0]["observedGeneration"] = json!(1)),
        ),
        (
            "appears twice",
            Box::new(|v| {
                let c = v["status"]["conditions"][1].clone();
                v["status"]["conditions"].as_array_mut().unwrap().push(c);
            }),
        ),
        ("Ready=True together with", Box::new(|v| v["status"]["conditions"][0]["status"] = json!("True"))),
    ];
    for (want, f) in cases {
        let violations = mutate(&*f);
        assert!(violations.iter().any(|v| v.contains(want)), "expected {want:?}, got {violations:?}");
    }
}

// ---------------------------------------------------------------------------------------
// GitOps example: the pull-request check and the example repository

const FAKE_KEYWARD: &str = r#"#!/usr/bin/env bash
# keyward as the CI script sees it, answering from FAKE_* variables.
echo "$*" >> "$FAKE_DIR/keyward.log"
case $1 in
    validate)
        if [[ $FAKE_VALIDATE == fail ]]; then echo "people/acme/employees/bob.yaml:7: spec.state: unknown value Gone"; exit 1; fi
        echo "ok: 1 MfaProvider(s)"; exit 0 ;;
    plan)
        format=text
        for a in "$@"; do case $a in json|markdown) format=$a ;; esac; done
        if [[ $format == json ]]; then
            printf '{"providers": [{"provider": "acme/corp-pi", "blocked": %s, "actions": []}]}\n' "$FAKE_BLOCKED"
        else
            printf '## keyward plan\n\n### `acme/corp-pi` — fake plan %s\n' "$FAKE_CODE"
        fi
        [[ $FAKE_CODE == 1 ]] && echo "error: provider acme/corp-pi could not be read" >&2
        exit "$FAKE_CODE" ;;
esac
exit 64
"#;

const FAKE_GH: &str = r#"#!/usr/bin/env bash
# gh api as the CI script uses it: list comments, create one, or update one.
echo "$*" >> "$FAKE_DIR/gh.log"
for a in "$@"; do
    case $a in body=@*) cp "${a#body=@}" "$FAKE_DIR/posted.md" ;; esac
done
if [[ " $* " == *" --paginate "* && -n ${FAKE_EXISTING_COMMENT:-} ]]; then echo "$FAKE_EXISTING_COMMENT"; fi
"#;

struct CiRun {
    code: i32,
    stderr: String,
    posted: Option<String>,
    gh: String,
    keyward: String,
}

fn run_ci_script(envs: &[(&str, &str)], keyward: Option<&std::path::Path>, workdir: &std::path::Path) -> CiRun {
    let fake = workdir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    let write_exe = |name: &str, text: &str| {
        let path = fake.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let fake_keyward = write_exe("keyward", FAKE_KEYWARD);
    let fake_gh = write_exe("gh", FAKE_GH);
    let keyward_cmd = match keyward {
        Some(real) => real.display().to_string(),
        None => format!("bash {}", fake_keyward.display()),
    };
    let out = std::process::Command::new("bash")
        .arg(repo().join("examples/gitops/ci/keyward-pr.sh"))
        .arg("people")
        .current_dir(workdir)
        .env("KEYWARD", keyward_cmd)
        .env("GH", format!("bash {}", fake_gh.display()))
        .env("FAKE_DIR", &fake)
        .env("GITHUB_SHA", "0123abc")
        .env("KEYWARD_ALLOWED_HOSTS", "pi.acme.example,127.0.0.1")
        .env_remove("PR_NUMBER")
        .env_remove("GITHUB_REPOSITORY")
        .envs(envs.iter().copied())
        .output()
        .expect("run keyward-pr.sh");
    let read = |name: &str| std::fs::read_to_string(fake.join(name)).ok();
    CiRun {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        posted: read("posted.md"),
        gh: read("gh.log").unwrap_or_default(),
        keyward: read("keyward.log").unwrap_or_default(),
    }
}

#[test]
fn the_pr_check_posts_the_plan_and_fails_only_when_invalid_broken_or_blocked() {
    // (validate, plan exit code, blocked, expected exit, text the comment must carry)
    let cases = [
        ("ok", "0", "false", 0, "Nothing to revoke at `0123abc`"),
        ("ok", "2", "false", 0, "keyward makes these changes once this is merged"),
        ("ok", "2", "true", 1, "⛔ Blocked on acme/corp-pi"),
        ("ok", "1", "false", 1, "error: provider acme/corp-pi could not be read"),
        ("fail", "0", "false", 1, "bob.yaml:7: spec.state: unknown value Gone"),
    ];
    for (validate, plan_code, blocked, want_code, want_text) in cases {
        let dir = tempfile::tempdir().unwrap();
        let envs = [
            ("FAKE_VALIDATE", validate),
            ("FAKE_CODE", plan_code),
            ("FAKE_BLOCKED", blocked),
            ("PR_NUMBER", "42"),
            ("GITHUB_REPOSITORY", "acme/people"),
        ];
        let run = run_ci_script(&envs, None, dir.path());
        let case = format!("validate {validate}, plan exit {plan_code}, blocked {blocked}");
        assert_eq!(run.code, want_code, "{case}: {}", run.stderr);
        let posted = run.posted.unwrap_or_else(|| panic!("{case}: nothing posted; gh: {}", run.gh));
        assert!(posted.starts_with("<!-- keyward-plan -->\n## keyward plan"), "{case}: {posted}");
        assert!(posted.contains(want_text), "{case}: {posted}");
        assert!(run.gh.contains("api repos/acme/people/issues/42/comments -F body=@"), "{case}: created: {}", run.gh);
        if validate == "fail" {
            assert!(!run.keyward.contains("plan"), "{case}: planned after a failed validate");
        } else {
            assert!(posted.contains("fake plan"), "{case}: the markdown plan is in the comment");
            assert!(run.keyward.contains("plan -f people --output json"), "{case}: {}", run.keyward);
        }
    }
}

/// Without an allowlist the PR check does not run at all: a pull request could point a
/// provider at its own host, and `plan` would sign in there with the admin Secret.
#[test]
fn the_pr_check_refuses_to_run_without_a_host_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [("FAKE_VALIDATE", "ok"), ("FAKE_CODE", "0"), ("FAKE_BLOCKED", "false"), ("KEYWARD_ALLOWED_HOSTS", "")];
    let run = run_ci_script(&envs, None, dir.path());
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("KEYWARD_ALLOWED_HOSTS is not set"), "{}", run.stderr);
    assert!(run.keyward.is_empty(), "keyward ran: {}", run.keyward);
}

#[test]
fn the_pr_check_updates_its_comment_and_posts_nothing_outside_a_pr() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("FAKE_VALIDATE", "ok"),
        ("FAKE_CODE", "2"),
        ("FAKE_BLOCKED", "false"),
        ("PR_NUMBER", "42"),
        ("GITHUB_REPOSITORY", "acme/people"),
        ("FAKE_EXISTING_COMMENT", "987654"),
    ];
    let run = run_ci_script(&envs, None, dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.gh.contains("api -X PATCH repos/acme/people/issues/comments/987654 -F body=@"), "{}", run.gh);
    assert!(!run.gh.contains("issues/42/comments -F"), "a second comment was created: {}", run.gh);

    let dir = tempfile::tempdir().unwrap();
    let run = run_ci_script(&[("FAKE_VALIDATE", "ok"), ("FAKE_CODE", "2"), ("FAKE_BLOCKED", "true")], None, dir.path());
    assert_eq!(run.code, 1);
    assert!(run.gh.is_empty(), "posted outside a PR: {}", run.gh);
    let comment = std::fs::read_to_string(dir.path().join(".keyward/comment.md")).unwrap();
    assert!(comment.contains("keyward.dev/approve-revocations"), "{comment}");
}

/// The example's people tree with its provider pointed at `url`, plus the credentials Secret
/// the workflow writes from CI secrets.
fn example_people_tree(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/gitops/people"), &dir.path().join("people"));
    let provider = dir.path().join("people/acme/10-provider.yaml");
    let text = std::fs::read_to_string(&provider).unwrap();
    assert!(text.contains("url: https://pi.acme.example"));
    std::fs::write(&provider, text.replace("url: https://pi.acme.example", &format!("url: {url}"))).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pi-admin", "namespace": "acme"},
                        "stringData": {"username": "keyward-admin", "password": shown::PRIVACYIDEA_PASSWORD}});
    std::fs::write(dir.path().join("secrets.yaml"), secret.to_string()).unwrap();
    dir
}

#[test]
fn the_example_people_tree_validates_with_the_real_binary() {
    let keyward = std::path::Path::new(env!("CARGO_BIN_EXE_keyward"));
    let dir = example_people_tree("https://pi.acme.example");
    let people = dir.path().join("people");
    let out = std::process::Command::new(keyward)
        .args(["validate", "-f"])
        .arg(&people)
        .arg("-f")
        .arg(dir.path().join("secrets.yaml"))
        .output()
        .unwrap();
    shown::record("cli", &format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 MfaProvider(s), 2 Employee(s), 2 AccessGrant(s)"));
    // Without the Secret (which is never committed) the tree validates with a note; `plan`
    // needs it (the CI workflow passes it as the script's KEYWARD_SECRETS), and `--strict`
    // fails without it.
    let out = std::process::Command::new(keyward).args(["validate", "-f"]).arg(&people).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("note:"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(keyward).args(["validate", "--strict", "-f"]).arg(&people).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_pr_check_with_the_real_binary_fails_when_the_provider_is_unreachable() {
    // Port 1 on loopback refuses connections: a provider outage, which must never pass as
    // "nothing to revoke".
    let dir = example_people_tree("http://127.0.0.1:1");
    let keyward = std::path::Path::new(env!("CARGO_BIN_EXE_keyward"));
    let run = run_ci_script(&[("KEYWARD_SECRETS", "secrets.yaml")], Some(keyward), dir.path());
    assert_eq!(run.code, 1, "{}", run.stderr);
    let comment = std::fs::read_to_string(dir.path().join(".keyward/comment.md")).unwrap();
    // The job's log and the pull-request comment are public to everyone who can read the PR.
    shown::record("cli", &format!("{}{comment}", run.stderr));
    assert!(comment.contains("### `acme/corp-pi` — ❌ error"), "{comment}");
    assert!(comment.contains("`keyward plan` failed (exit 1)"), "{comment}");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".keyward/plan.json")).unwrap()).unwrap();
    assert_eq!(plan["providers"][0]["blocked"], false);
}

#[test]
fn the_example_values_are_accepted_by_the_chart() {
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("examples/gitops/platform/keyward-values.yaml")).unwrap(),
    )
    .unwrap();
    let flux = helm::parse_documents(
        &std::fs::read_to_string(repo().join("examples/gitops/platform/flux/keyward.yaml")).unwrap(),
    )
    .unwrap();
    let release = flux.iter().find(|d| d["kind"] == "HelmRelease").unwrap();
    assert_eq!(release["spec"]["values"], values, "the Flux HelmRelease carries platform/keyward-values.yaml");
    let r = render(&Release::new(values.clone()));
    assert_eq!(args(&r)[1], "--namespaces=acme");
    assert_eq!(r.of_kind("ServiceMonitor").len(), 1);
    let argocd = helm::parse_documents(
        &std::fs::read_to_string(repo().join("examples/gitops/platform/argocd/apps/keyward.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(argocd[0]["spec"]["sources"][0]["path"], "charts/keyward");
    assert_eq!(argocd[0]["spec"]["sources"][0]["helm"]["valueFiles"], json!(["$people/platform/keyward-values.yaml"]));
    // Both tools create the watched namespaces before keyward, whose Roles live there.
    let watched: BTreeSet<&str> =
        values["watch"]["namespaces"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let namespaces = |docs: &[Value]| -> BTreeSet<String> {
        docs.iter()
            .filter(|d| d["kind"] == "Namespace")
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let argocd_ns = helm::parse_documents(
        &std::fs::read_to_string(repo().join("examples/gitops/platform/argocd/apps/namespaces.yaml")).unwrap(),
    )
    .unwrap();
    for (tool, declared) in [("Argo CD", namespaces(&argocd_ns)), ("Flux", namespaces(&flux))] {
        assert_eq!(declared.iter().map(String::as_str).collect::<BTreeSet<_>>(), watched, "{tool}");
    }
}

// ---------------------------------------------------------------------------------------
// Release engineering: the workflows

/// The release publishes only what passed — every test (`scripts/test.sh`) and
/// the advisories check run first, read-only — and no job that can write packages, sign or
/// attest uses a build cache another run could have written.
#[test]
fn the_release_runs_the_tests_first_and_its_publishing_job_uses_no_cache() {
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yaml")).expect("release.yaml");
    let workflow: Value = serde_yaml::from_str(&text).expect("YAML");
    let jobs = workflow["jobs"].as_object().expect("jobs");
    let runs = |job: &Value, what: &str| {
        job["steps"].as_array().into_iter().flatten().any(|s| s["run"].as_str().is_some_and(|r| r.contains(what)))
    };
    let writes = |job: &Value| {
        job["permissions"].as_object().into_iter().flatten().any(|(scope, level)| {
            level == "write" && ["contents", "packages", "id-token", "attestations"].contains(&scope.as_str())
        })
    };
    let test = jobs.get("test").expect("a test job");
    assert!(runs(test, "scripts/test.sh") && !writes(test), "{test}");
    let advisories = jobs.get("advisories").expect("an advisories job");
    assert!(runs(advisories, "scripts/deny.sh advisories") && !writes(advisories), "{advisories}");
    let publishing: Vec<(&String, &Value)> = jobs.iter().filter(|(_, job)| writes(job)).collect();
    assert!(!publishing.is_empty());
    for (name, job) in publishing {
        let needs: Vec<&str> = match &job["needs"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        assert!(
            needs.contains(&"test") && needs.contains(&"advisories"),
            "{name} publishes before the tests: {needs:?}"
        );
        for step in job["steps"].as_array().into_iter().flatten() {
            let uses = step["uses"].as_str().unwrap_or_default();
            assert!(!uses.starts_with("actions/cache"), "{name}: {uses}");
            let with = step["with"].as_object().cloned().unwrap_or_default();
            assert!(!with.keys().any(|k| k.contains("cache")), "{name}: {uses} with a cache: {with:?}");
            let run = step["run"].as_str().unwrap_or_default();
            assert!(!run.contains("--cache-from") && !run.contains("--cache-to"), "{name}: {run}");
        }
    }
}

/// `scripts/helm.sh actionlint FILE…` (the pinned actionlint, built by `scripts/helm.sh
/// install` or on first use): its exit status and output.
fn actionlint(files: &[std::path::PathBuf]) -> (bool, String) {
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/helm.sh"))
        .arg("actionlint")
        .args(files)
        .output()
        .expect("scripts/helm.sh actionlint");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn workflows() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in [".github/workflows", "examples/gitops/.github/workflows"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    files
}

#[test]
fn actionlint_passes_on_every_workflow_and_fails_on_a_broken_one() {
    let files = workflows();
    assert!(files.iter().any(|f| f.ends_with(".github/workflows/release.yaml")), "{files:?}");
    let (ok, output) = actionlint(&files);
    assert!(ok, "actionlint:\n{output}");
    // The same check on a copy with a typo in an expression and a bad permission: it must fail.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yaml")).unwrap();
    let broken = text.replacen("steps.build.outputs.digest", "steps.biuld.outputs.digest", 1).replacen(
        "id-token: write",
        "id-token: writ",
        1,
    );
    assert_ne!(broken, text);
    let copy = dir.path().join("release.yaml");
    std::fs::write(&copy, broken).unwrap();
    let (ok, output) = actionlint(&[copy]);
    assert!(!ok && output.contains("biuld") && output.contains("writ"), "{output}");
}

#[test]
fn the_release_workflow_pins_actions_by_commit_and_signs_what_it_publishes() {
    for file in workflows() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| l.trim_start().trim_start_matches("- ").starts_with("uses: ")) {
            let target = line.split("uses: ").nth(1).unwrap();
            let (_, reference) = target.split_once('@').unwrap_or_else(|| panic!("{}: {line}", file.display()));
            let (sha, comment) = reference.split_once(" # ").unwrap_or((reference, ""));
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()) && comment.starts_with('v'),
                "{}: {line} is not pinned by commit with its tag in a comment",
                file.display()
            );
        }
    }
    let release: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join(".github/workflows/release.yaml")).unwrap()).unwrap();
    assert_eq!(release["on"]["push"]["tags"], json!(["v*"]));
    let job = &release["jobs"]["release"];
    assert_eq!(job["permissions"]["id-token"], "write", "keyless signing needs the OIDC token");
    let steps = job["steps"].as_array().unwrap();
    let step = |uses: &str| steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(uses))).cloned();
    // The image itself: scripts/image.sh, checked in tests/image.rs.
    assert!(step("anchore/sbom-action@").is_some(), "SBOM");
    let scripts: String = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    for command in [
        "cosign sign --yes \"$IMAGE\"",
        "helm package",
        "helm push",
        "cosign sign --yes \"$CHARTS/keyward@$digest\"",
        "sha256sum",
        "cosign sign-blob",
        "cosign attest",
    ] {
        assert!(scripts.contains(command), "the release workflow does not run {command:?}");
    }
}

/// `scripts/chart-readme.py [VALUES]`: the chart README it generates.
fn generated_readme(values: Option<&std::path::Path>) -> String {
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/chart-readme.py"))
        .args(values)
        .output()
        .expect("python3 scripts/chart-readme.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_chart_readme_is_generated_from_values_yaml_and_current() {
    let committed = std::fs::read_to_string(helm::chart_dir().join("README.md")).unwrap();
    assert!(committed == generated_readme(None), "charts/keyward/README.md is stale: run scripts/helm.sh sync");
    // Each row's default is what a YAML parser reads from values.yaml at that path.
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(helm::chart_dir().join("values.yaml")).unwrap()).unwrap();
    let mut documented = 0;
    for row in committed.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let path = cells[0].trim_start_matches("| ").trim_matches('`');
        let shown: Value = serde_json::from_str(cells[2].trim_matches('`')).unwrap_or_else(|e| panic!("{row}: {e}"));
        let actual = path.split('.').fold(&values, |v, k| &v[k]);
        assert!(same_json(&shown, actual), "{path}: README says {shown}, values.yaml has {actual}");
        documented += 1;
    }
    assert!(documented > 60, "only {documented} rows");
    // A changed comment makes the committed README stale.
    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("values.yaml");
    let text = std::fs::read_to_string(helm::chart_dir().join("values.yaml")).unwrap();
    std::fs::write(&changed, text.replacen("# -- Create the ServiceMonitor.", "# -- Create a ServiceMonitor.", 1))
        .unwrap();
    let regenerated = generated_readme(Some(&changed));
    assert!(regenerated != committed && regenerated.contains("Create a ServiceMonitor."));
}

/// JSON equality with numbers compared by value: Helm's YAML round trip writes the CRDs'
/// `minimum: 0.0` as `0`, which the API server reads as the same float64.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

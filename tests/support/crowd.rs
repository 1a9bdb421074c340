//! Thousands of Employees in one namespace, for scale tests and benchmarks: created through
//! the API concurrently (kubectl applies one object at a time, minutes for 10,000), each
//! carrying the `last-applied-configuration` annotation that `kubectl apply` would add, so that
//! the cached objects are as large as a GitOps-applied company's.

use super::PrivacyIdea;
use super::cluster::Cluster;
use futures::{StreamExt, TryStreamExt};
use keyward::crd::Employee;
use kube::api::{Api, PostParams};
use std::path::Path;

/// Declares, in `namespace`: the labelled admin Secret, MfaProvider `corp-pi` on `realm` of
/// this privacyIDEA (reached at `url`, a proxy in front of it when counting requests), a TOTP
/// grant for role `staff` and `people` Employees named `<prefix>NNNNN` with that role.
pub fn declare(
    cluster: &Cluster,
    pi: &PrivacyIdea,
    url: &str,
    realm: &str,
    namespace: &str,
    prefix: &str,
    people: usize,
) {
    pi.realm(realm);
    let manifests = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: pi-admin, namespace: {namespace}, labels: {{keyward.dev/credentials: \"true\"}}}}\n\
         stringData: {{username: {admin}, password: {password}}}\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: MfaProvider\nmetadata: {{name: corp-pi, namespace: {namespace}}}\n\
         spec:\n  privacyidea: {{url: \"{url}\", realm: {realm}, credentials: {{secretRef: {{name: pi-admin}}}}}}\n  userMapping: name\n---\n\
         apiVersion: keyward.dev/v1alpha1\nkind: AccessGrant\nmetadata: {{name: staff-totp, namespace: {namespace}}}\n\
         spec: {{provider: corp-pi, subjects: {{roles: [staff]}}, factors: [totp]}}\n",
        admin = pi.env["KEYWARD_PI_ADMIN"],
        password = pi.env["KEYWARD_PI_PASSWORD"],
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &manifests);
    employees(&cluster.kubeconfig, namespace, prefix, 0..people);
}

/// Creates the Employees `<prefix>NNNNN` for `range` in `namespace` (32 requests at a time).
pub fn employees(kubeconfig: &Path, namespace: &str, prefix: &str, range: std::ops::Range<usize>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let api: Api<Employee> = Api::namespaced(client, namespace);
        futures::stream::iter(range)
            .map(|i| {
                let api = api.clone();
                async move {
                    let name = format!("{prefix}{i:05}");
                    let applied = serde_json::json!({
                        "apiVersion": "keyward.dev/v1alpha1", "kind": "Employee",
                        "metadata": {"name": name, "namespace": namespace},
                        "spec": {"email": format!("{name}@acme.example"), "roles": ["staff"]},
                    });
                    let mut object = applied.clone();
                    object["metadata"]["annotations"] = serde_json::json!({
                        "kubectl.kubernetes.io/last-applied-configuration": applied.to_string(),
                    });
                    let employee: Employee = serde_json::from_value(object).expect("Employee");
                    api.create(&PostParams::default(), &employee).await.map(|_| ())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await
            .expect("create Employees");
    });
}

/// Writes the chart's ServiceAccount made in `namespace` (from the API server's audit log):
/// `(verb, resource, subresource, name)` of every request that changed something.
pub fn writes(cluster: &Cluster, namespace: &str) -> Vec<(String, String, String, String)> {
    let plane = cluster.control_plane.as_ref().expect("a local control plane");
    let user = format!("system:serviceaccount:{namespace}:keyward");
    plane
        .audit_events()
        .iter()
        .filter(|e| e["user"]["username"] == user.as_str() && e["stage"] == "ResponseComplete")
        .filter(|e| matches!(e["verb"].as_str(), Some("create" | "update" | "patch" | "delete")))
        .map(|e| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&e["verb"]),
                text(&e["objectRef"]["resource"]),
                text(&e["objectRef"]["subresource"]),
                text(&e["objectRef"]["name"]),
            )
        })
        .collect()
}

/// The status writes among `writes` to objects of `resource`.
pub fn status_writes(writes: &[(String, String, String, String)], resource: &str) -> Vec<String> {
    writes.iter().filter(|w| w.1 == resource && w.2 == "status").map(|w| w.3.clone()).collect()
}

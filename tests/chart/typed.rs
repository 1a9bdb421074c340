//! Schema checks of rendered objects without a cluster: each object is deserialized into its
//! k8s-openapi type (Kubernetes 1.33 API) and serialized back; a field the type does not know
//! (a typo, a wrong nesting level) is lost on the way and reported, as is any field of the
//! wrong type. This is the strict decoding `kubectl apply --validate=strict` does.
#![allow(dead_code)]

use k8s_openapi::api::{admissionregistration, apps, core, networking, policy, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1), reduced to the fields the
/// chart sets; k8s-openapi does not have it and its CRD cannot be fetched here. Unknown
/// fields are rejected, so a misspelt field still fails.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<NamespaceSelector>,
    endpoints: Vec<Endpoint>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NamespaceSelector {
    #[serde(skip_serializing_if = "Option::is_none")]
    any: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    match_names: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Endpoint {
    port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scrape_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relabelings: Option<Vec<RelabelConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_relabelings: Option<Vec<RelabelConfig>>,
}

/// Prometheus Operator's PrometheusRule (monitoring.coreos.com/v1), reduced to the fields the
/// chart sets; unknown fields are rejected.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: PrometheusRuleSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrometheusRuleSpec {
    groups: Vec<RuleGroup>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<AlertRule>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AlertRule {
    alert: String,
    expr: String,
    #[serde(skip_serializing_if = "Option::is_none", rename = "for")]
    for_: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
    annotations: std::collections::BTreeMap<String, String>,
}

/// Prometheus Operator's RelabelConfig (monitoring.coreos.com/v1).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RelabelConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    source_labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    separator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    modulus: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
}

/// Checks one object; the error lists every problem found.
pub fn check(obj: &Value) -> Result<(), String> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(obj),
        ("v1", "Service") => roundtrip::<core::v1::Service>(obj),
        ("v1", "Secret") => roundtrip::<core::v1::Secret>(obj),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            roundtrip::<admissionregistration::v1::ValidatingAdmissionPolicy>(obj)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            roundtrip::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>(obj)
        }
        ("apps/v1", "Deployment") => roundtrip::<apps::v1::Deployment>(obj),
        ("policy/v1", "PodDisruptionBudget") => roundtrip::<policy::v1::PodDisruptionBudget>(obj),
        ("networking.k8s.io/v1", "NetworkPolicy") => roundtrip::<networking::v1::NetworkPolicy>(obj),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => roundtrip::<rbac::v1::ClusterRoleBinding>(obj),
        ("rbac.authorization.k8s.io/v1", "Role") => roundtrip::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => roundtrip::<rbac::v1::RoleBinding>(obj),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => roundtrip::<CustomResourceDefinition>(obj),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => roundtrip::<ServiceMonitor>(obj),
        ("monitoring.coreos.com/v1", "PrometheusRule") => roundtrip::<PrometheusRule>(obj),
        _ => Err(format!("no schema check for {api_version} {kind}: add its type to tests/chart/typed.rs")),
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<(), String> {
    let name = format!("{} {}", obj["kind"].as_str().unwrap_or("?"), obj["metadata"]["name"].as_str().unwrap_or("?"));
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| format!("{name}: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("{name}: {e}"))?;
    let mut problems = Vec::new();
    compare(obj, &back, "", &mut problems);
    if problems.is_empty() { Ok(()) } else { Err(format!("{name}:\n  {}", problems.join("\n  "))) }
}

/// Differences between what the chart rendered and what the typed object kept.
fn compare(rendered: &Value, typed: &Value, path: &str, problems: &mut Vec<String>) {
    match (rendered, typed) {
        (Value::Object(r), Value::Object(t)) => {
            for (key, value) in r {
                let here = format!("{path}.{key}");
                match t.get(key) {
                    None if value.is_null() => {}
                    None => problems.push(format!("{here}: unknown field (dropped by the {} schema)", "Kubernetes")),
                    Some(kept) => compare(value, kept, &here, problems),
                }
            }
            for key in t.keys().filter(|k| !r.contains_key(*k)) {
                problems.push(format!("{path}.{key}: required field missing"));
            }
        }
        (Value::Array(r), Value::Array(t)) if r.len() == t.len() => {
            for (i, (a, b)) in r.iter().zip(t).enumerate() {
                compare(a, b, &format!("{path}[{i}]"), problems);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => problems.push(format!("{path}: rendered {a}, the schema reads {b}")),
    }
}

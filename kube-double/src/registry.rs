//! The kinds the server serves: a fixed set of built-in resources plus one entry per served
//! version of every established CustomResourceDefinition.

use std::sync::Arc;

use serde_json::Value;

/// How stored objects of a resource are converted when read or written through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Stored as sent; only `apiVersion` is rewritten.
    None,
    /// `events.k8s.io/v1` Event, stored as a core/v1 Event (the two share storage, as in
    /// kube-apiserver, so `kubectl describe` shows what kube-runtime's Recorder wrote).
    EventsV1,
}

/// Kind-specific behaviour of built-in resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    None,
    Namespace,
    Secret,
    Crd,
    Event,
    /// Access and identity reviews: answered (allowed), never stored.
    Review,
}

/// A column of a `Table` response.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// Schema and printing information of one served CRD version.
#[derive(Debug, Clone)]
pub struct CrdVersion {
    /// The CRD's name (`employees.keyward.dev`).
    pub crd_name: String,
    pub schema: Option<Value>,
    pub printer_columns: Vec<PrinterColumn>,
    pub storage: bool,
}

/// One served resource (group, version, plural).
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: main-resource writes keep the stored status.
    pub status_subresource: bool,
    /// `metadata.generation` is kept and bumped on spec changes.
    pub generation: bool,
    /// PUT creates a missing object (Leases, Events), as their registry strategies allow.
    pub create_on_update: bool,
    /// Storage key: objects of every version of a group-resource live together.
    pub storage_group: String,
    pub storage_resource: String,
    pub conversion: Conversion,
    pub special: Special,
    pub crd: Option<Arc<CrdVersion>>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.special == Special::Review {
            return vec!["create"];
        }
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

struct Builtin {
    gv: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
}

const fn b(
    gv: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
) -> Builtin {
    Builtin { gv, plural, kind, namespaced, short, status, generation }
}

const BUILTINS: &[Builtin] = &[
    b("v1", "namespaces", "Namespace", false, &["ns"], true, false),
    b("v1", "secrets", "Secret", true, &[], false, false),
    b("v1", "configmaps", "ConfigMap", true, &["cm"], false, false),
    b("v1", "events", "Event", true, &["ev"], false, false),
    b("v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false, false),
    b("v1", "services", "Service", true, &["svc"], true, false),
    b("v1", "pods", "Pod", true, &["po"], true, false),
    b("v1", "endpoints", "Endpoints", true, &["ep"], false, false),
    b("v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], true, false),
    b("v1", "nodes", "Node", false, &["no"], true, false),
    b("apps/v1", "deployments", "Deployment", true, &["deploy"], true, true),
    b("apps/v1", "statefulsets", "StatefulSet", true, &["sts"], true, true),
    b("apps/v1", "daemonsets", "DaemonSet", true, &["ds"], true, true),
    b("apps/v1", "replicasets", "ReplicaSet", true, &["rs"], true, true),
    b("batch/v1", "jobs", "Job", true, &[], true, true),
    b("batch/v1", "cronjobs", "CronJob", true, &["cj"], true, true),
    b("coordination.k8s.io/v1", "leases", "Lease", true, &[], false, false),
    b("events.k8s.io/v1", "events", "Event", true, &["ev"], false, false),
    b("rbac.authorization.k8s.io/v1", "roles", "Role", true, &[], false, false),
    b("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", true, &[], false, false),
    b("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", false, &[], false, false),
    b("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], false, false),
    b("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, &[], false, false),
    b("authorization.k8s.io/v1", "subjectaccessreviews", "SubjectAccessReview", false, &[], false, false),
    b("authorization.k8s.io/v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, &[], false, false),
    b("authentication.k8s.io/v1", "selfsubjectreviews", "SelfSubjectReview", false, &[], false, false),
    b("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], true, true),
    b("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], false, true),
    b(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
        true,
    ),
];

/// The built-in resources, in discovery order.
pub fn builtins() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|d| {
            let (group, version) = match d.gv.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), d.gv.to_string()),
            };
            let (conversion, storage_group) = if group == "events.k8s.io" {
                (Conversion::EventsV1, String::new())
            } else {
                (Conversion::None, group.clone())
            };
            let special = match (group.as_str(), d.plural) {
                ("", "namespaces") => Special::Namespace,
                ("", "secrets") => Special::Secret,
                ("apiextensions.k8s.io", _) => Special::Crd,
                ("authorization.k8s.io" | "authentication.k8s.io", _) => Special::Review,
                (_, "events") => Special::Event,
                _ => Special::None,
            };
            let categories = match d.plural {
                "pods" | "services" | "deployments" | "statefulsets" | "daemonsets" | "replicasets" | "jobs"
                | "cronjobs" => vec!["all".to_string()],
                "customresourcedefinitions" => vec!["api-extensions".to_string()],
                _ => vec![],
            };
            Arc::new(ResourceType {
                group,
                version,
                plural: d.plural.to_string(),
                singular: d.kind.to_lowercase(),
                kind: d.kind.to_string(),
                namespaced: d.namespaced,
                short_names: d.short.iter().map(|s| s.to_string()).collect(),
                categories,
                status_subresource: d.status,
                generation: d.generation,
                create_on_update: matches!(d.plural, "leases" | "events" | "endpoints"),
                storage_group,
                storage_resource: d.plural.to_string(),
                conversion,
                special,
                crd: None,
            })
        })
        .collect()
}

/// The resources one CustomResourceDefinition serves, or an empty list when it is not
/// established (e.g. being deleted).
pub fn from_crd(crd: &Value) -> Vec<Arc<ResourceType>> {
    let spec = &crd["spec"];
    let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let singular = names["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = vec![];
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"].as_bool() == Some(false) {
            continue;
        }
        let vname = version["name"].as_str().unwrap_or_default().to_string();
        let columns = version["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        type_: c["type"].as_str().unwrap_or("string").to_string(),
                        format: c["format"].as_str().unwrap_or_default().to_string(),
                        description: c["description"].as_str().unwrap_or_default().to_string(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let status_subresource = version["subresources"].get("status").is_some();
        out.push(Arc::new(ResourceType {
            group: group.clone(),
            version: vname,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status_subresource,
            generation: true,
            create_on_update: false,
            storage_group: group.clone(),
            storage_resource: plural.clone(),
            conversion: Conversion::None,
            special: Special::None,
            crd: Some(Arc::new(CrdVersion {
                crd_name: name.clone(),
                schema: version["schema"].get("openAPIV3Schema").cloned(),
                printer_columns: columns,
                storage: version["storage"].as_bool().unwrap_or(false),
            })),
        }));
    }
    out
}

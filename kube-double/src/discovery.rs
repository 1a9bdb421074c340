//! Discovery (legacy and aggregated v2), `/version` and the OpenAPI v3 documents kubectl reads
//! for `explain` and to learn that the server validates fields (`fieldValidation`).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::ResourceType;

pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "gitVersion": "v1.33.0-kube-double",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first.
fn version_rank(v: &str) -> (u8, i64, i64) {
    let Some(rest) = v.strip_prefix('v') else { return (0, 0, 0) };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: i64 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (level, major, n.parse().unwrap_or(0))
}

/// Groups in discovery order with their versions, preferred first.
pub fn groups(resources: &[Arc<ResourceType>]) -> Vec<(String, Vec<String>)> {
    let mut order: Vec<String> = vec![];
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in resources {
        if !order.contains(&r.group) {
            order.push(r.group.clone());
        }
        let vs = versions.entry(r.group.clone()).or_default();
        if !vs.contains(&r.version) {
            vs.push(r.version.clone());
        }
    }
    order
        .into_iter()
        .map(|g| {
            let mut vs = versions.remove(&g).unwrap_or_default();
            vs.sort_by(|a, b| version_rank(b).cmp(&version_rank(a)).then(a.cmp(b)));
            (g, vs)
        })
        .collect()
}

pub fn api_versions(host: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub fn api_group_list(resources: &[Arc<ResourceType>]) -> Value {
    let groups: Vec<Value> =
        groups(resources).iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| group_json(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(resources: &[Arc<ResourceType>], group: &str) -> Option<Value> {
    groups(resources).iter().find(|(g, _)| g == group).map(|(g, vs)| {
        let mut v = group_json(g, vs);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        v
    })
}

fn storage_version_hash(rt: &ResourceType) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&rt.group, &rt.version, &rt.kind).hash(&mut h);
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(&h.finish().to_be_bytes()[..8])
}

pub fn resource_list(resources: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let mut out = vec![];
    for r in resources.iter().filter(|r| r.group == group && r.version == version) {
        out.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
            "shortNames": r.short_names,
            "categories": r.categories,
            "storageVersionHash": storage_version_hash(r),
        }));
        if r.status_subresource {
            out.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if out.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}))
}

/// Aggregated discovery for `/api` (`core = true`) or `/apis`.
pub fn aggregated(resources: &[Arc<ResourceType>], core: bool) -> Value {
    let mut items = vec![];
    for (group, versions) in groups(resources) {
        if group.is_empty() != core {
            continue;
        }
        let mut vs = vec![];
        for v in &versions {
            let res: Vec<Value> = resources
                .iter()
                .filter(|r| r.group == group && &r.version == v)
                .map(|r| {
                    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                    let mut entry = json!({
                        "resource": r.plural,
                        "responseKind": kind,
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": r.verbs(),
                    });
                    if !r.short_names.is_empty() {
                        entry["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        entry["categories"] = json!(r.categories);
                    }
                    if r.status_subresource {
                        entry["subresources"] = json!([{"subresource": "status", "responseKind": kind,
                            "verbs": ["get", "patch", "update"]}]);
                    }
                    entry
                })
                .collect();
            vs.push(json!({"version": v, "resources": res, "freshness": "Current"}));
        }
        let mut meta = json!({"creationTimestamp": null});
        if !group.is_empty() {
            meta["name"] = json!(group);
        }
        items.push(json!({"metadata": meta, "versions": vs}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// Whether an Accept header asks for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p = part.replace(' ', "");
        p.contains("g=apidiscovery.k8s.io") && p.contains("v=v2;") && !p.contains("v=v2beta1")
            || (p.contains("g=apidiscovery.k8s.io") && p.ends_with("v=v2") && p.contains("as=APIGroupDiscoveryList"))
    })
}

// ---- OpenAPI v3 --------------------------------------------------------------------------------

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `dev.keyward.v1alpha1.Employee` / `io.k8s.api.core.v1.Secret`, as kube-apiserver names them.
pub fn schema_name(rt: &ResourceType) -> String {
    if rt.crd.is_some() {
        let reversed: Vec<&str> = rt.group.split('.').rev().collect();
        return format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind);
    }
    let group = match rt.group.as_str() {
        "" => "core".to_string(),
        g => g.trim_end_matches(".k8s.io").replace(".authorization", "").to_string(),
    };
    let base = match rt.group.as_str() {
        "apiextensions.k8s.io" => "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".to_string(),
        _ => format!("io.k8s.api.{group}"),
    };
    format!("{base}.{}.{}", rt.version, rt.kind)
}

fn schema_of<T: schemars::JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or_default()
}

/// The OpenAPI schema of a built-in kind, from k8s-openapi (computed once).
fn builtin_schema(group: &str, version: &str, kind: &str) -> Option<Value> {
    use k8s_openapi::api::{
        apps, authentication, authorization, batch, coordination, core, events, networking, policy, rbac,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    static CACHE: std::sync::OnceLock<std::sync::Mutex<BTreeMap<String, Option<Value>>>> = std::sync::OnceLock::new();
    let key = format!("{group}/{version}/{kind}");
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return hit;
    }
    let schema = match (group, version, kind) {
        ("", "v1", "Namespace") => Some(schema_of::<core::v1::Namespace>()),
        ("", "v1", "Secret") => Some(schema_of::<core::v1::Secret>()),
        ("", "v1", "ConfigMap") => Some(schema_of::<core::v1::ConfigMap>()),
        ("", "v1", "Event") => Some(schema_of::<core::v1::Event>()),
        ("", "v1", "ServiceAccount") => Some(schema_of::<core::v1::ServiceAccount>()),
        ("", "v1", "Service") => Some(schema_of::<core::v1::Service>()),
        ("", "v1", "Pod") => Some(schema_of::<core::v1::Pod>()),
        ("", "v1", "Endpoints") => Some(schema_of::<core::v1::Endpoints>()),
        ("", "v1", "PersistentVolumeClaim") => Some(schema_of::<core::v1::PersistentVolumeClaim>()),
        ("", "v1", "Node") => Some(schema_of::<core::v1::Node>()),
        ("apps", "v1", "Deployment") => Some(schema_of::<apps::v1::Deployment>()),
        ("apps", "v1", "StatefulSet") => Some(schema_of::<apps::v1::StatefulSet>()),
        ("apps", "v1", "DaemonSet") => Some(schema_of::<apps::v1::DaemonSet>()),
        ("apps", "v1", "ReplicaSet") => Some(schema_of::<apps::v1::ReplicaSet>()),
        ("batch", "v1", "Job") => Some(schema_of::<batch::v1::Job>()),
        ("batch", "v1", "CronJob") => Some(schema_of::<batch::v1::CronJob>()),
        ("coordination.k8s.io", "v1", "Lease") => Some(schema_of::<coordination::v1::Lease>()),
        ("events.k8s.io", "v1", "Event") => Some(schema_of::<events::v1::Event>()),
        ("rbac.authorization.k8s.io", "v1", "Role") => Some(schema_of::<rbac::v1::Role>()),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => Some(schema_of::<rbac::v1::RoleBinding>()),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => Some(schema_of::<rbac::v1::ClusterRole>()),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => Some(schema_of::<rbac::v1::ClusterRoleBinding>()),
        ("policy", "v1", "PodDisruptionBudget") => Some(schema_of::<policy::v1::PodDisruptionBudget>()),
        ("networking.k8s.io", "v1", "NetworkPolicy") => Some(schema_of::<networking::v1::NetworkPolicy>()),
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => {
            Some(schema_of::<authorization::v1::SelfSubjectAccessReview>())
        }
        ("authorization.k8s.io", "v1", "SubjectAccessReview") => {
            Some(schema_of::<authorization::v1::SubjectAccessReview>())
        }
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview") => {
            Some(schema_of::<authorization::v1::SelfSubjectRulesReview>())
        }
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => {
            Some(schema_of::<authentication::v1::SelfSubjectReview>())
        }
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            Some(schema_of::<apiextensions::v1::CustomResourceDefinition>())
        }
        _ => None,
    };
    if let Ok(mut c) = cache.lock() {
        c.insert(key, schema.clone());
    }
    schema
}

fn document(resources: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let rts: Vec<&Arc<ResourceType>> = resources.iter().filter(|r| r.group == group && r.version == version).collect();
    if rts.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(), object_meta_schema());
    for rt in rts {
        let name = schema_name(rt);
        let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
        let builtin = if rt.crd.is_none() { builtin_schema(&rt.group, &rt.version, &rt.kind) } else { None };
        let mut schema = match (&rt.crd, builtin) {
            (Some(crd), _) => crd.schema.clone().unwrap_or_else(|| json!({"type": "object"})),
            (None, Some(b)) => b,
            (None, None) => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "description": format!("{} is served by the kube-double test server; its fields are not described here.", rt.kind)}),
        };
        // Recursive types keep `$ref`s to definitions schemars put beside the root schema.
        if let Some(defs) = schema.as_object_mut().and_then(|m| m.remove("components")) {
            for (k, v) in defs["schemas"].as_object().into_iter().flatten() {
                schemas.insert(k.clone(), v.clone());
            }
        }
        if let Some(props) = schema.as_object_mut().map(|m| m.entry("properties").or_insert_with(|| json!({}))) {
            let api_version = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"});
            let kind = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"});
            props.as_object_mut().map(|p| p.entry("apiVersion").or_insert(api_version));
            props.as_object_mut().map(|p| p.entry("kind").or_insert(kind));
            if rt.crd.is_some() {
                props["metadata"] = json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}, "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"});
            }
        }
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(name.clone(), schema);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
        let query = |n: &str| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let params = json!([query("dryRun"), query("fieldManager"), query("fieldValidation")]);
        let mut patch_types = serde_json::Map::new();
        for ct in ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"] {
            patch_types.insert(ct.into(), json!({"schema": {"type": "object"}}));
        }
        // Strategic merge patch is deliberately not listed: with no real schemas for built-in
        // kinds here, kubectl then computes its patches from its compiled-in types.
        let op = |action: &str| -> Value {
            let mut o = json!({
                "operationId": format!("{action}{}", rt.kind),
                "responses": ok,
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            });
            match action {
                "patch" => {
                    o["parameters"] = params.clone();
                    o["requestBody"] = json!({"content": patch_types});
                }
                "put" | "post" => {
                    o["parameters"] = params.clone();
                    o["requestBody"] = json!({"content": {"application/json": {"schema": reference}}});
                }
                _ => {}
            }
            o
        };
        let base = format!("/{}", gv_path(&rt.group, &rt.version));
        let (collection, item) = if rt.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", rt.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", rt.plural),
            )
        } else {
            (format!("{base}/{}", rt.plural), format!("{base}/{}/{{name}}", rt.plural))
        };
        paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
        paths.insert(
            item.clone(),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        if rt.status_subresource {
            paths.insert(format!("{item}/status"), json!({"get": op("get"), "put": op("put"), "patch": op("patch")}));
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-kube-double"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn object_meta_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "uid": s("UID is the unique in time and space value for this object."),
            "resourceVersion": s("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize (scope and select) objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
        }
    })
}

fn hash_of(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: one entry per group-version.
pub fn openapi_index(resources: &[Arc<ResourceType>]) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in groups(resources) {
        for v in versions {
            if let Some(doc) = document(resources, &group, &v) {
                let p = gv_path(&group, &v);
                paths
                    .insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash_of(&doc))}));
            }
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
pub fn openapi_document(resources: &[Arc<ResourceType>], path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", v] => document(resources, "", v),
        ["apis", g, v] => document(resources, g, v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_priority() {
        let mut vs = vec!["v1alpha1", "v2", "v1beta1", "v1", "v10beta2", "foo"];
        vs.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
        assert_eq!(vs, vec!["v2", "v1", "v10beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn aggregated_accept() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
    }
}

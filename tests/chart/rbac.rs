//! What the chart's RBAC grants keyward's ServiceAccount, compared with the requests the
//! operator makes: no request denied, no permission unused.
//!
//! The hook for the operator's end-to-end suite: collect the operator's requests as
//! [`ApiRequest`]s — from kube-apiserver's audit log (`verb` and `objectRef`, as
//! tests/chart/cluster.rs does), or from an HTTP log with [`ApiRequest::from_http`], which
//! turns a method, path and query into one as the API server's RBAC authorizer sees it —
//! render the chart with the same `watch.namespaces` as the run (`helm.rs`), then call
//! [`assert_grants_exactly`].
//! Self-contained: `#[path = "chart/rbac.rs"] mod rbac;`.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// One request as RBAC authorizes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiRequest {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group; "" for the core group.
    pub group: String,
    /// Plural resource name, e.g. `employees`.
    pub resource: String,
    /// e.g. `status`.
    pub subresource: Option<String>,
    /// None for a cluster-wide request (e.g. a watch over all namespaces).
    pub namespace: Option<String>,
}

impl ApiRequest {
    pub fn new(verb: &str, group: &str, resource: &str, subresource: Option<&str>, namespace: Option<&str>) -> Self {
        ApiRequest {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.map(Into::into),
            namespace: namespace.map(Into::into),
        }
    }

    /// The request an HTTP call to the API server is authorized as (the API server's
    /// RequestInfo rules): `GET /apis/keyward.dev/v1alpha1/employees?watch=true` is a
    /// cluster-wide `watch`. None for non-resource paths (`/api`, `/apis`, `/version`, …),
    /// which RBAC grants to every authenticated user by default.
    pub fn from_http(method: &str, path: &str, query: &str) -> Option<ApiRequest> {
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        let group = match parts.first() {
            Some(&"api") if parts.len() >= 2 => {
                parts.drain(..2);
                ""
            }
            Some(&"apis") if parts.len() >= 3 => {
                let group = parts[1];
                parts.drain(..3);
                group
            }
            _ => return None,
        };
        // The deprecated /watch/ prefix: GET /apis/g/v/watch/employees.
        let mut watch_prefix = false;
        if parts.first() == Some(&"watch") {
            watch_prefix = true;
            parts.remove(0);
        }
        let mut namespace = None;
        if parts.len() >= 3 && parts[0] == "namespaces" {
            namespace = Some(parts[1].to_string());
            parts.drain(..2);
        } else if parts.len() >= 2 && parts[0] == "namespaces" {
            // A Namespace object itself: /api/v1/namespaces/NAME.
            namespace = Some(parts[1].to_string());
        }
        let resource = parts.first()?.to_string();
        let name = parts.get(1);
        let subresource = parts.get(2).map(|s| s.to_string());
        let watch = watch_prefix
            || query.split('&').any(|kv| matches!(kv.split_once('='), Some(("watch", "true" | "1"))) || kv == "watch");
        let verb = match (method.to_ascii_uppercase().as_str(), name.is_some()) {
            ("GET" | "HEAD", _) if watch => "watch",
            ("GET" | "HEAD", true) => "get",
            ("GET" | "HEAD", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => return None,
        };
        Some(ApiRequest { verb: verb.into(), group: group.into(), resource, subresource, namespace })
    }
}

impl fmt::Display for ApiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(sub) = &self.subresource {
            write!(f, "/{sub}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// Where a permission applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Through a ClusterRoleBinding: every namespace and cluster-wide requests.
    Cluster,
    /// Through a RoleBinding in this namespace.
    Namespace(String),
}

/// One (verb, resource) the ServiceAccount holds, after expanding the rules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub scope: Scope,
    /// `resourceNames` of the rule; empty means any name.
    pub resource_names: Vec<String>,
}

impl Grant {
    pub fn allows(&self, request: &ApiRequest) -> bool {
        self.verb == request.verb
            && self.group == request.group
            && self.resource == request.resource
            && self.subresource == request.subresource
            && match (&self.scope, &request.namespace) {
                (Scope::Cluster, _) => true,
                (Scope::Namespace(granted), Some(ns)) => granted == ns,
                (Scope::Namespace(_), None) => false,
            }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(sub) = &self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.resource_names.is_empty() {
            write!(f, " named {}", self.resource_names.join(","))?;
        }
        match &self.scope {
            Scope::Namespace(ns) => write!(f, " in namespace {ns}"),
            Scope::Cluster => write!(f, " cluster-wide"),
        }
    }
}

/// Everything the rendered RBAC objects grant the ServiceAccount `namespace/name`, through
/// the bindings that name it. Rules the chart must never contain (wildcards, non-resource
/// URLs, a binding to a role the chart does not define) are errors.
pub fn grants_of(objects: &[Value], namespace: &str, name: &str) -> Result<Vec<Grant>, String> {
    let mut grants = BTreeSet::new();
    for binding in objects.iter().filter(|o| matches!(o["kind"].as_str(), Some("RoleBinding" | "ClusterRoleBinding"))) {
        let binds_us =
            binding["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"].as_str() == Some(namespace)
            });
        if !binds_us {
            continue;
        }
        let scope = match binding["kind"].as_str() {
            Some("ClusterRoleBinding") => Scope::Cluster,
            _ => Scope::Namespace(binding["metadata"]["namespace"].as_str().unwrap_or_default().to_string()),
        };
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == role_kind
                    && o["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole" || o["metadata"]["namespace"] == binding["metadata"]["namespace"])
            })
            .ok_or_else(|| {
                format!(
                    "{} {} binds {role_kind} {role_name}, which the chart does not define",
                    binding["kind"], binding["metadata"]["name"]
                )
            })?;
        for rule in role["rules"].as_array().into_iter().flatten() {
            if rule.get("nonResourceURLs").is_some() {
                return Err(format!("{role_kind} {role_name} grants nonResourceURLs"));
            }
            let list = |key: &str| -> Vec<String> {
                rule[key].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect()
            };
            let names = list("resourceNames");
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        if [&group, &resource, &verb].iter().any(|s| s.contains('*')) {
                            return Err(format!(
                                "{role_kind} {role_name} grants a wildcard: {verb} {group}/{resource}"
                            ));
                        }
                        let (resource, subresource) = match resource.split_once('/') {
                            Some((r, s)) => (r.to_string(), Some(s.to_string())),
                            None => (resource.clone(), None),
                        };
                        grants.insert(Grant {
                            verb,
                            group: group.clone(),
                            resource,
                            subresource,
                            scope: scope.clone(),
                            resource_names: names.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(grants.into_iter().collect())
}

/// Requests no grant allows, and grants no request used.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RbacDiff {
    pub missing: Vec<ApiRequest>,
    pub unused: Vec<Grant>,
}

impl RbacDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty()
    }
}

impl fmt::Display for RbacDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.missing {
            writeln!(f, "  denied (missing from the chart): {r}")?;
        }
        for g in &self.unused {
            writeln!(f, "  granted but never used (extra):  {g}")?;
        }
        Ok(())
    }
}

/// Compares grants with requests. A grant limited by `resourceNames` counts as allowing the
/// requests of its verb and resource: the request tuple carries no object name.
pub fn diff(grants: &[Grant], requests: &[ApiRequest]) -> RbacDiff {
    let requests: BTreeSet<&ApiRequest> = requests.iter().collect();
    RbacDiff {
        missing: requests.iter().filter(|r| !grants.iter().any(|g| g.allows(r))).map(|r| (*r).clone()).collect(),
        unused: grants.iter().filter(|g| !requests.iter().any(|r| g.allows(r))).cloned().collect(),
    }
}

/// The hook for the end-to-end suite: panics, listing every difference, unless the rendered
/// chart grants the ServiceAccount exactly the requests made.
pub fn assert_grants_exactly(objects: &[Value], sa_namespace: &str, sa_name: &str, requests: &[ApiRequest]) {
    let grants = grants_of(objects, sa_namespace, sa_name).unwrap_or_else(|e| panic!("chart RBAC: {e}"));
    let diff = diff(&grants, requests);
    assert!(diff.is_empty(), "the chart's RBAC for {sa_namespace}/{sa_name} does not match the requests made:\n{diff}");
}

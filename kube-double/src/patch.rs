//! Patches: JSON merge patch, JSON patch, an approximation of strategic merge patch for built-in
//! kinds, and server-side apply with field ownership tracked in `metadata.managedFields`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause};

/// How a list is merged and owned, from the CRD schema or, for built-in kinds, the strategic
/// merge keys kube-apiserver's Go types declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Where list semantics come from while walking an object.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    Schema(&'a Value),
    Builtin,
}

impl<'a> Shape<'a> {
    fn child(self, field: &str) -> Shape<'a> {
        match self {
            Shape::Schema(s) => {
                let next = s
                    .get("properties")
                    .and_then(|p| p.get(field))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
                match next {
                    Some(n) => Shape::Schema(n),
                    None => Shape::Builtin,
                }
            }
            Shape::Builtin => Shape::Builtin,
        }
    }

    fn items(self) -> Shape<'a> {
        match self {
            Shape::Schema(s) => s.get("items").map(Shape::Schema).unwrap_or(Shape::Builtin),
            Shape::Builtin => Shape::Builtin,
        }
    }

    fn list_kind(self, field: &str, parent_path: &[String], items: &[Value]) -> ListKind {
        if field == "finalizers" && parent_path.last().map(String::as_str) == Some("metadata") {
            return ListKind::Set;
        }
        if field == "ownerReferences" {
            return ListKind::Map(vec!["uid".into()]);
        }
        if let Shape::Schema(s) = self {
            let list_schema = s.get("properties").and_then(|p| p.get(field));
            if let Some(ls) = list_schema {
                return match ls.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListKind::Set,
                    Some("map") => ListKind::Map(
                        ls.get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|k| k.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                            .unwrap_or_default(),
                    ),
                    _ => ListKind::Atomic,
                };
            }
        }
        builtin_list_kind(field, items)
    }
}

/// Strategic merge keys of the built-in types kubectl patches most.
fn builtin_list_kind(field: &str, items: &[Value]) -> ListKind {
    let key = |k: &str| ListKind::Map(vec![k.to_string()]);
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "imagePullSecrets" | "env" => key("name"),
        "hostAliases" => key("ip"),
        "volumeMounts" => key("mountPath"),
        "volumeDevices" => key("devicePath"),
        "conditions" => key("type"),
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                key("containerPort")
            } else {
                key("port")
            }
        }
        _ => ListKind::Atomic,
    }
}

pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// JSON patch (RFC 6902). `test` treats a missing path as `null`, as kube-apiserver's
/// json-patch library does (kube-runtime's finalizer helper relies on that when it adds the
/// first finalizer).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut doc = target.clone();
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(t) = &op {
            let actual = doc.pointer(t.path.as_str()).unwrap_or(&Value::Null);
            if *actual != t.value {
                return Err(ApiError::new(422, "Invalid", format!("testing value {} failed: test failed", t.path)));
            }
            continue;
        }
        json_patch::patch(&mut doc, &[op]).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
    }
    *target = doc;
    Ok(())
}

/// Strategic merge patch, approximated: maps merge recursively, `null` deletes, lists with a
/// known merge key merge by it (honouring `$patch: delete|replace`), `metadata.finalizers`
/// merges as a set, other lists are replaced; `$setElementOrder/…`, `$retainKeys` and
/// `$deleteFromPrimitiveList/…` directives are understood.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    smp(target, patch, &[]);
    Ok(())
}

fn smp(target: &mut Value, patch: &Value, path: &[String]) {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        if let Some(m) = replaced.as_object_mut() {
            m.remove("$patch");
        }
        *target = replaced;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tmap) = target.as_object_mut() else { return };
    if let Some(retain) = pmap.get("$retainKeys").and_then(Value::as_array) {
        let keep: BTreeSet<&str> = retain.iter().filter_map(Value::as_str).collect();
        tmap.retain(|k, _| keep.contains(k.as_str()));
    }
    for (k, v) in pmap {
        if k == "$retainKeys" || k == "$patch" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (tmap.get_mut(field).and_then(Value::as_array_mut), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if v.is_null() {
            tmap.remove(k);
            continue;
        }
        let mut child_path = path.to_vec();
        child_path.push(k.clone());
        match v {
            Value::Object(_) => smp(tmap.entry(k.clone()).or_insert(Value::Null), v, &child_path),
            Value::Array(items) => {
                let kind = Shape::Builtin.list_kind(k, path, items);
                let existing = tmap.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                smp_list(existing, items, &kind, &child_path);
            }
            _ => {
                tmap.insert(k.clone(), v.clone());
            }
        }
    }
}

fn smp_list(target: &mut Value, items: &[Value], kind: &ListKind, path: &[String]) {
    if items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        *target = Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect());
        return;
    }
    let existing = match target.as_array_mut() {
        Some(a) => a,
        None => {
            *target = Value::Array(items.to_vec());
            return;
        }
    };
    match kind {
        ListKind::Atomic => *existing = items.to_vec(),
        ListKind::Set => {
            for i in items {
                if !existing.contains(i) {
                    existing.push(i.clone());
                }
            }
        }
        ListKind::Map(keys) => {
            for item in items {
                let matches = |e: &Value| keys.iter().all(|k| e.get(k) == item.get(k));
                let pos = existing.iter().position(matches);
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    existing.retain(|e| !matches(e));
                    continue;
                }
                match pos {
                    Some(p) => smp(&mut existing[p], item, path),
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        smp(&mut fresh, item, path);
                        existing.push(fresh);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field sets (the `fieldsV1` of managedFields) and server-side apply.

/// A set of field paths, each a list of `f:name`, `k:{…}` or `v:…` tokens, as in `fieldsV1`.
pub type FieldSet = BTreeSet<Vec<String>>;

/// The leaf fields (and keyed list items) `value` sets, skipping `apiVersion`, `kind`,
/// `metadata.name`/`namespace` and (for `skip_status`) `status`, or (for `only_status`) all
/// but `status`.
pub fn field_set(value: &Value, shape: Shape, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            let keep = match k.as_str() {
                "apiVersion" | "kind" => false,
                "status" => scope != Scope::MainSkippingStatus,
                _ => scope != Scope::StatusOnly,
            };
            if !keep {
                continue;
            }
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta {
                        if matches!(mk.as_str(), "labels" | "annotations" | "finalizers" | "ownerReferences") {
                            let path = vec!["f:metadata".to_string(), format!("f:{mk}")];
                            collect(mv, shape.child("metadata").child(mk), mk, &["metadata".into()], path, &mut set);
                        }
                    }
                }
                continue;
            }
            collect(v, shape.child(k), k, &[], vec![format!("f:{k}")], &mut set);
        }
    }
    set
}

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    MainSkippingStatus,
    StatusOnly,
}

fn collect(value: &Value, shape: Shape, field: &str, parent: &[String], path: Vec<String>, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut parent_path = parent.to_vec();
            parent_path.push(field.to_string());
            for (k, v) in map {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                collect(v, shape.child(k), k, &parent_path, p, set);
            }
        }
        Value::Array(items) => {
            // `shape` is already the list's own schema; its kind is declared on it.
            let kind = match shape {
                Shape::Schema(s) if s.get("x-kubernetes-list-type").is_some() || s.get("items").is_some() => {
                    Shape::Schema(&json!({"properties": {field: s}})).list_kind(field, parent, items)
                }
                _ => Shape::Builtin.list_kind(field, parent, items),
            };
            match kind {
                ListKind::Atomic => {
                    set.insert(path);
                }
                ListKind::Set => {
                    for i in items {
                        let mut p = path.clone();
                        p.push(format!("v:{i}"));
                        set.insert(p);
                    }
                }
                ListKind::Map(keys) => {
                    let mut parent_path = parent.to_vec();
                    parent_path.push(field.to_string());
                    for item in items {
                        let key = item_key(item, &keys);
                        let mut p = path.clone();
                        p.push(key);
                        set.insert(p.clone());
                        if let Some(m) = item.as_object() {
                            for (k, v) in m {
                                let mut pk = p.clone();
                                pk.push(format!("f:{k}"));
                                collect(v, shape.items().child(k), k, &parent_path, pk, set);
                            }
                        }
                    }
                }
            }
        }
        _ => {
            set.insert(path);
        }
    }
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

/// Renders a field set as `fieldsV1`: a member that also has members below it gets `.`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn render(node: &Node) -> Value {
        let mut m = Map::new();
        if node.member && !node.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, child) in &node.children {
            m.insert(k.clone(), render(child));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut cur = &mut root;
        for tok in path {
            cur = cur.children.entry(tok.clone()).or_default();
        }
        cur.member = true;
    }
    render(&root)
}

/// Parses `fieldsV1` back into a field set (members are leaves and `.`-marked nodes).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Vec<String>, set: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if (m.is_empty() || m.contains_key(".")) && !path.is_empty() {
            set.insert(path.clone());
        }
        for (k, child) in m {
            if k == "." {
                continue;
            }
            path.push(k.clone());
            walk(child, path, set);
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    walk(v, &mut vec![], &mut set);
    set
}

/// The value at a field path, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for tok in path {
        cur = step(cur, tok)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, tok: &str) -> Option<&'a Value> {
    if let Some(f) = tok.strip_prefix("f:") {
        return cur.get(f);
    }
    if let Some(k) = tok.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let km = key.as_object()?;
        return cur.as_array()?.iter().find(|i| km.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
    }
    if let Some(v) = tok.strip_prefix("v:") {
        let val: Value = serde_json::from_str(v).ok()?;
        return cur.as_array()?.iter().find(|i| **i == val);
    }
    None
}

/// Removes the field at `path` from `obj`, if present.
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else { return };
    let mut cur = obj;
    for tok in parent_path {
        let next = if let Some(f) = tok.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = tok.strip_prefix("k:") {
            let Ok(Value::Object(km)) = serde_json::from_str::<Value>(k) else { return };
            cur.as_array_mut().and_then(|a| a.iter_mut().find(|i| km.iter().all(|(kk, kv)| i.get(kk) == Some(kv))))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(Value::Object(km)), Some(a)) = (serde_json::from_str::<Value>(k), cur.as_array_mut()) {
            a.retain(|i| !km.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
        }
    } else if let Some(v) = last.strip_prefix("v:")
        && let (Ok(val), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut())
    {
        a.retain(|i| *i != val);
    }
}

/// Merges an applied configuration into `target`: maps recursively, keyed lists by key, sets
/// by value, atomic lists and scalars replaced.
pub fn apply_merge(target: &mut Value, applied: &Value, shape: Shape, parent: &[String]) {
    let (Some(tmap), Some(amap)) = (target.as_object_mut(), applied.as_object()) else {
        *target = applied.clone();
        return;
    };
    let parent_path = parent.to_vec();
    for (k, v) in amap {
        let child_shape = shape.child(k);
        match v {
            Value::Object(_) => {
                let entry = tmap.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                let mut p = parent_path.clone();
                p.push(k.clone());
                apply_merge(entry, v, child_shape, &p);
            }
            Value::Array(items) => {
                let kind = shape.list_kind(k, &parent_path, items);
                let existing = tmap.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                match (kind, existing.as_array_mut()) {
                    (ListKind::Set, Some(list)) => {
                        for i in items {
                            if !list.contains(i) {
                                list.push(i.clone());
                            }
                        }
                    }
                    (ListKind::Map(keys), Some(list)) => {
                        let mut p = parent_path.clone();
                        p.push(k.clone());
                        for item in items {
                            match list.iter().position(|e| keys.iter().all(|kk| e.get(kk) == item.get(kk))) {
                                Some(pos) => apply_merge(&mut list[pos], item, child_shape.items(), &p),
                                None => list.push(item.clone()),
                            }
                        }
                    }
                    _ => *existing = v.clone(),
                }
            }
            _ => {
                tmap.insert(k.clone(), v.clone());
            }
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

pub fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| ManagedEntry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

/// Leaf paths whose value differs between `old` and `new` (added, changed or removed).
pub fn changed_paths(old: &FieldSet, new: &FieldSet, old_obj: &Value, new_obj: &Value) -> (FieldSet, FieldSet) {
    let changed = new.iter().filter(|p| value_at(old_obj, p) != value_at(new_obj, p)).cloned().collect();
    let removed = old.difference(new).cloned().collect();
    (changed, removed)
}

/// Records an Update by `manager`: it takes the fields it changed from everyone else.
#[allow(clippy::too_many_arguments)]
pub fn record_update(
    old_obj: &Value,
    new_obj: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    shape: Shape,
    scope: Scope,
    now: &str,
) {
    let mut entries = read_managed(old_obj);
    let old_set = field_set(old_obj, shape, scope);
    let new_set = field_set(new_obj, shape, scope);
    let (changed, removed) = changed_paths(&old_set, &new_set, old_obj, new_obj);
    for e in entries.iter_mut() {
        e.fields.retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource)
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    write_managed(new_obj, &entries);
}

/// Server-side apply of `applied` onto `current` (an empty object when creating) by `manager`.
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    subresource: &str,
    shape: Shape,
    scope: Scope,
    now: &str,
) -> Result<Value, ApiError> {
    let mut entries = read_managed(current);
    let applied_set = field_set(applied, shape, scope);

    // Conflicts: a field another manager owns whose value this apply would change.
    let mut conflicts: BTreeMap<Vec<String>, Vec<(String, String)>> = BTreeMap::new();
    for e in entries.iter().filter(|e| !(e.manager == manager && e.operation == "Apply")) {
        for p in e.fields.intersection(&applied_set) {
            if value_at(current, p).is_some() && value_at(current, p) != value_at(applied, p) {
                conflicts.entry(p.clone()).or_default().push((e.manager.clone(), e.api_version.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let mut causes = vec![];
        for (p, owners) in &conflicts {
            for (m, v) in owners {
                let version = v.rsplit('/').next().unwrap_or(v);
                causes.push(Cause::new(
                    "FieldManagerConflict",
                    &dotted(p),
                    format!("conflict with \"{m}\" using {version}"),
                ));
            }
        }
        let n = causes.len();
        let list: Vec<String> = causes.iter().map(|c| format!("- {}: {}", c.message, c.field)).collect();
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!("Apply failed with {n} conflict{}: {}", if n == 1 { "" } else { "s" }, list.join("\n")),
        );
        err.details = Some(crate::error::Details { causes, ..Default::default() });
        return Err(err);
    }

    let mut result = current.clone();
    // Fields this manager applied before but no longer does, and nobody else owns, go away.
    let previous: FieldSet = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Remove deepest paths first so parents are still there to navigate.
    let mut stale: Vec<&Vec<String>> = previous.difference(&applied_set).filter(|p| !others.contains(*p)).collect();
    stale.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in stale {
        if !applied_set.iter().any(|a| a.starts_with(p)) {
            remove_at(&mut result, p);
        }
    }
    let mut body = applied.clone();
    if let Some(m) = body.as_object_mut() {
        match scope {
            Scope::StatusOnly => m.retain(|k, _| k == "status"),
            Scope::MainSkippingStatus => {
                m.remove("status");
            }
            Scope::All => {}
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| matches!(k.as_str(), "labels" | "annotations" | "finalizers" | "ownerReferences"));
        }
    }
    apply_merge(&mut result, &body, shape, &[]);

    // Ownership: forced conflicts move to this manager; shared equal values stay shared.
    for e in entries.iter_mut() {
        if !(e.manager == manager && e.operation == "Apply") {
            e.fields.retain(|p| !conflicts.contains_key(p));
        }
    }
    entries.retain(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource));
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: subresource.to_string(),
        fields: applied_set,
    });
    write_managed(&mut result, &entries);
    Ok(result)
}

/// `.spec.replicas` style rendering of a field path for conflict messages.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for tok in path {
        if let Some(f) = tok.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = tok.strip_prefix("k:") {
            out.push('[');
            out.push_str(k);
            out.push(']');
        } else if let Some(v) = tok.strip_prefix("v:") {
            out.push('[');
            out.push_str(v);
            out.push(']');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_patch_test_treats_missing_as_null() {
        let mut obj = json!({"metadata": {"name": "a"}});
        let add = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]);
        json_patch(&mut obj, &add).expect("test of a missing path against null passes");
        assert_eq!(obj["metadata"]["finalizers"], json!(["f"]));
        let err = json_patch(&mut obj, &add).expect_err("now present");
        assert_eq!(err.code, 422);
        assert_eq!(obj["metadata"]["finalizers"], json!(["f"]), "a failed patch changes nothing");
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "b:2"}, {"name": "a", "$patch": "delete"}]}}}});
        strategic_merge_patch(&mut target, &patch).expect("patches");
        assert_eq!(target["spec"]["template"]["spec"]["containers"], json!([{"name": "b", "image": "b:2"}]));
    }

    #[test]
    fn strategic_merges_finalizers_as_set_and_replaces_atomic_lists() {
        let mut target = json!({"metadata": {"finalizers": ["a"]}, "rules": [1, 2]});
        strategic_merge_patch(&mut target, &json!({"metadata": {"finalizers": ["b"]}, "rules": [3]})).expect("ok");
        assert_eq!(target, json!({"metadata": {"finalizers": ["a", "b"]}, "rules": [3]}));
    }

    #[test]
    fn fields_v1_round_trips() {
        let obj =
            json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]}, "spec": {"email": "e", "roles": ["r"]}});
        let set = field_set(&obj, Shape::Builtin, Scope::All);
        let v1 = to_fields_v1(&set);
        assert_eq!(from_fields_v1(&v1), set);
        assert!(v1["f:metadata"]["f:finalizers"].get("v:\"x\"").is_some(), "{v1}");
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped_and_detects_conflicts() {
        let now = "2025-01-01T00:00:00Z";
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": "2"}});
        let obj = server_side_apply(
            &json!({"metadata": {"name": "c"}}),
            &first,
            "me",
            false,
            "v1",
            "",
            Shape::Builtin,
            Scope::All,
            now,
        )
        .expect("first apply");
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}});
        let obj =
            server_side_apply(&obj, &second, "me", false, "v1", "", Shape::Builtin, Scope::All, now).expect("second");
        assert_eq!(obj["data"], json!({"a": "1"}));
        let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "other"}});
        let err = server_side_apply(&obj, &theirs, "them", false, "v1", "", Shape::Builtin, Scope::All, now)
            .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert!(err.message.contains("conflict with \"me\""), "{}", err.message);
        let forced =
            server_side_apply(&obj, &theirs, "them", true, "v1", "", Shape::Builtin, Scope::All, now).expect("forced");
        assert_eq!(forced["data"]["a"], "other");
    }
}

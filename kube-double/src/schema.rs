//! Structural `openAPIV3Schema` handling for custom resources, in kube-apiserver's order:
//! unknown fields are found (for `fieldValidation`) and pruned, non-nullable nulls dropped,
//! defaults applied, then the object is validated (types, enums, patterns, bounds, formats,
//! required fields, list-type invariants) and its `x-kubernetes-validations` CEL rules run.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::Cause;

/// The fields of `metadata` that ObjectMeta declares; anything else is unknown.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Paths of `metadata` fields ObjectMeta does not declare (removed from `obj`).
pub fn prune_metadata(obj: &mut Value) -> Vec<String> {
    let mut unknown = vec![];
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let extra: Vec<String> = meta.keys().filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str())).cloned().collect();
        for k in extra {
            meta.remove(&k);
            unknown.push(format!("metadata.{k}"));
        }
    }
    unknown
}

/// Prunes fields the schema does not declare, drops nulls of non-nullable fields and applies
/// defaults. Returns the paths of the pruned unknown fields.
pub fn prune_and_default(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = vec![];
    if let Some(map) = obj.as_object_mut() {
        // apiVersion, kind and metadata are implicit at the root of every custom resource.
        let props = schema.get("properties").and_then(Value::as_object);
        let keys: Vec<String> = map.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(sub) => {
                    if map.get(&k).is_some_and(Value::is_null) && !nullable(sub) {
                        map.remove(&k);
                        continue;
                    }
                    if let Some(v) = map.get_mut(&k) {
                        walk_prune(sub, v, &k, &mut unknown);
                    }
                }
                None if preserves_unknown(schema) => {}
                None => {
                    map.remove(&k);
                    unknown.push(k);
                }
            }
        }
        apply_defaults(schema, map, "", &mut unknown);
    }
    unknown
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool).unwrap_or(false)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool).unwrap_or(false)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

fn walk_prune(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let embedded = schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool).unwrap_or(false);
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&k)).or(additional);
                match sub {
                    Some(sub) => {
                        if map.get(&k).is_some_and(Value::is_null) && !nullable(sub) {
                            map.remove(&k);
                            continue;
                        }
                        if let Some(v) = map.get_mut(&k) {
                            walk_prune(sub, v, &join(path, &k), unknown);
                        }
                    }
                    None if preserves_unknown(schema)
                        || schema.get("additionalProperties") == Some(&Value::Bool(true)) => {}
                    None => {
                        map.remove(&k);
                        unknown.push(join(path, &k));
                    }
                }
            }
            apply_defaults(schema, map, path, unknown);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk_prune(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn apply_defaults(schema: &Value, map: &mut Map<String, Value>, path: &str, unknown: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    for (k, sub) in props {
        if map.contains_key(k) {
            continue;
        }
        if let Some(default) = sub.get("default") {
            let mut v = default.clone();
            walk_prune(sub, &mut v, &join(path, k), unknown);
            map.insert(k.clone(), v);
        }
    }
}

/// Validates `obj` (already pruned and defaulted) against the schema and its CEL rules.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    if let Some(map) = obj.as_object() {
        validate_object_fields(schema, map, "", &mut causes, true);
    }
    let blocking = causes.iter().any(|c| c.reason == "FieldValueTypeInvalid");
    if !blocking {
        causes.extend(validate_cel(schema, obj, old));
    }
    causes
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn validate_object_fields(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>, root: bool) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(Cause::new("FieldValueRequired", &join(path, r), "Required value"));
            }
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (map.len() as u64) < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {}: {path} in body should have at least {min} properties", map.len()),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && (map.len() as u64) > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {}: must have at most {max} items", map.len()),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map {
        if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
            validate_value(sub, v, &join(path, k), causes);
        }
    }
}

fn validate_value(schema: &Value, v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if v.is_null() {
        if !nullable(schema) && schema.get("type").is_some() {
            let want = schema["type"].as_str().unwrap_or_default();
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"null\": {path} in body must be of type {want}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool).unwrap_or(false);
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let have = type_name(v);
        let ok = match want {
            "number" => matches!(have, "number" | "integer"),
            "integer" => have == "integer" || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            _ => have == want,
        };
        if !(ok || int_or_string && matches!(have, "integer" | "string")) {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"{have}\": {path} in body must be of type {want}: \"{have}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!("Unsupported value: {}: supported values: {}", v, list.join(", ")),
        ));
    }
    match v {
        Value::String(s) => validate_string(schema, s, path, causes),
        Value::Number(_) => validate_number(schema, v, path, causes),
        Value::Array(items) => validate_array(schema, items, path, causes),
        Value::Object(map) => {
            let embedded = schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool).unwrap_or(false);
            validate_object_fields(schema, map, path, causes, embedded);
        }
        _ => {}
    }
    for sub in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        validate_value(sub, v, path, causes);
    }
}

fn validate_string(schema: &Value, s: &str, path: &str, causes: &mut Vec<Cause>) {
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) > max
    {
        causes.push(Cause::new("FieldValueTooLong", path, format!("Too long: may not be more than {max} bytes")));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {s:?}: {path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {s:?}: {path} in body should match '{pattern}'"),
            )),
            _ => {}
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        let ok = match format {
            "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            "byte" => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(s).is_ok()
            }
            "uuid" => Regex::new("^(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
                .map(|re| re.is_match(s))
                .unwrap_or(true),
            _ => true,
        };
        if !ok {
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {s:?}: {path} in body must be of type {format}: {s:?}"),
            ));
        }
    }
}

fn validate_number(schema: &Value, v: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(x) = v.as_f64() else { return };
    let exclusive_min = schema.get("exclusiveMinimum").and_then(Value::as_bool).unwrap_or(false);
    let exclusive_max = schema.get("exclusiveMaximum").and_then(Value::as_bool).unwrap_or(false);
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let bad = if exclusive_min { x <= min } else { x < min };
        if bad {
            let rel = if exclusive_min { "greater than" } else { "greater than or equal to" };
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {v}: {path} in body should be {rel} {}", fmt_num(min)),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let bad = if exclusive_max { x >= max } else { x > max };
        if bad {
            let rel = if exclusive_max { "less than" } else { "less than or equal to" };
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {v}: {path} in body should be {rel} {}", fmt_num(max)),
            ));
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && (x / m).fract() != 0.0
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {v}: {path} in body should be a multiple of {}", fmt_num(m)),
        ));
    }
    let range = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        Some("uint32") => Some((0.0, f64::from(u32::MAX))),
        _ => None,
    };
    if let Some((lo, hi)) = range
        && (x < lo || x > hi)
    {
        let format = schema["format"].as_str().unwrap_or_default();
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {v}: {path} in body must be of type {format}: {v}"),
        ));
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { x.to_string() }
}

fn validate_array(schema: &Value, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {}: {path} in body should have at least {min} items", items.len()),
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && (items.len() as u64) > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {}: must have at most {max} items", items.len()),
        ));
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let unique = schema.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false);
    if list_type == Some("set") || unique {
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            if !seen.insert(item.to_string()) {
                causes.push(Cause::new(
                    "FieldValueDuplicate",
                    &format!("{path}[{i}]"),
                    format!("Duplicate value: {item}"),
                ));
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let key: Vec<String> = keys.iter().map(|k| item[*k].to_string()).collect();
            if !seen.insert(key.clone()) {
                let shown: Vec<String> = keys.iter().zip(&key).map(|(k, v)| format!("\"{k}\":{v}")).collect();
                causes.push(Cause::new(
                    "FieldValueDuplicate",
                    &format!("{path}[{i}]"),
                    format!("Duplicate value: map[string]interface {{}}{{{}}}", shown.join(", ")),
                ));
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_value(item_schema, item, &format!("{path}[{i}]"), causes);
        }
    }
}

/// Runs the `x-kubernetes-validations` rules through kube-cel. Rules kube-cel cannot compile or
/// evaluate are skipped (logged), not enforced: the double prefers accepting an object to
/// rejecting it for a gap of its own.
fn validate_cel(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    if !schema.to_string().contains("x-kubernetes-validations") {
        return vec![];
    }
    let validator = kube_cel::Validator::new();
    let Err(errors) = validator.validate(schema, obj, old) else { return vec![] };
    let mut failures: Vec<kube_cel::ValidationError> = vec![];
    let mut unevaluated: Vec<kube_cel::ValidationError> = vec![];
    for e in errors {
        if is_failure(&e) { failures.push(e) } else { unevaluated.push(e) }
    }
    if !unevaluated.is_empty() {
        // kube-apiserver's CEL has the identity overload `timestamp(timestamp)`, kube-cel does
        // not: rules like `timestamp(self.from) < timestamp(self.until)` on `format: date-time`
        // fields fail to evaluate there. Evaluate those rules again with the fields as strings.
        let mut plain = schema.clone();
        strip_date_time(&mut plain);
        let retried = validator.validate(&plain, obj, old).err().map(|e| e.into_vec()).unwrap_or_default();
        for e in unevaluated {
            let again: Vec<_> = retried.iter().filter(|r| r.rule == e.rule && r.field_path == e.field_path).collect();
            if again.is_empty() {
                continue;
            }
            for r in again {
                if is_failure(r) {
                    failures.push(r.clone());
                } else {
                    tracing::warn!(rule = %r.rule, error = %r.message, "CEL rule not evaluated by the test double");
                }
            }
        }
    }
    failures
        .iter()
        .map(|e| {
            let value = lookup(obj, &e.field_path);
            let reason = e.reason.clone().unwrap_or_else(|| "FieldValueInvalid".to_string());
            let message = if reason == "FieldValueRequired" {
                format!("Required value: {}", e.message)
            } else {
                format!("Invalid value: \"{}\": {}", value.map(type_name).unwrap_or("object"), e.message)
            };
            Cause::new(&reason, &e.field_path, message)
        })
        .collect()
}

fn is_failure(e: &kube_cel::ValidationError) -> bool {
    matches!(e.kind, kube_cel::ErrorKind::ValidationFailure | kube_cel::ErrorKind::InvalidResult)
}

fn strip_date_time(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            if m.get("format").and_then(Value::as_str).is_some_and(|f| f == "date-time" || f == "datetime") {
                m.remove("format");
            }
            for v in m.values_mut() {
                strip_date_time(v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_date_time),
        _ => {}
    }
}

fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    if path.is_empty() {
        return Some(cur);
    }
    for seg in path.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        cur = cur.get(name)?;
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn employee_schema() -> Value {
        let crd: Value = serde_yaml::from_str(include_str!("../../crds/employees.yaml")).expect("employees CRD parses");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    #[test]
    fn prunes_unknown_and_defaults() {
        let schema = employee_schema();
        let mut obj = json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "Employee", "metadata": {"name": "a"},
            "spec": {"email": "a@b.example", "nickname": "x", "roles": null, "displayName": null}, "extra": 1});
        let unknown = prune_and_default(&schema, &mut obj);
        assert_eq!(unknown, vec!["extra".to_string(), "spec.nickname".to_string()]);
        assert_eq!(obj["spec"]["state"], "Active");
        assert!(obj["spec"].get("roles").is_none(), "non-nullable null is dropped");
        assert!(obj["spec"]["displayName"].is_null() && obj["spec"].get("displayName").is_some(), "nullable null kept");
        assert!(validate(&schema, &obj, None).is_empty());
    }

    #[test]
    fn reports_field_paths() {
        let schema = employee_schema();
        let mut obj = json!({"spec": {"email": "nope", "state": "Gone", "roles": "sre",
            "identities": [{"provider": ""}]}});
        prune_and_default(&schema, &mut obj);
        let causes = validate(&schema, &obj, None);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.email"), "{causes:?}");
        assert!(fields.contains(&"spec.state"), "{causes:?}");
        assert!(fields.contains(&"spec.roles"), "{causes:?}");
        assert!(fields.contains(&"spec.identities[0].username"), "{causes:?}");
        assert!(fields.contains(&"spec.identities[0].provider"), "{causes:?}");
        let state = causes.iter().find(|c| c.field == "spec.state").expect("state cause");
        assert_eq!(
            state.message,
            r#"Unsupported value: "Gone": supported values: "Active", "Suspended", "Offboarded""#
        );
    }

    #[test]
    fn cel_rules_run() {
        let schema = employee_schema();
        let mut obj = json!({"spec": {"email": "a@b.example", "activeFrom": "2027-01-01T00:00:00Z",
            "activeUntil": "2026-01-01T00:00:00Z"}});
        prune_and_default(&schema, &mut obj);
        let causes = validate(&schema, &obj, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec");
        assert_eq!(causes[0].message, "Invalid value: \"object\": activeFrom must be before activeUntil");

        let mut dup = json!({"spec": {"email": "a@b.example",
            "identities": [{"provider": "p", "username": "a"}, {"provider": "p", "username": "b"}]}});
        prune_and_default(&schema, &mut dup);
        let causes = validate(&schema, &dup, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.identities");
    }

    #[test]
    fn mfaprovider_cel_rules() {
        let crd: Value =
            serde_yaml::from_str(include_str!("../../crds/mfaproviders.yaml")).expect("provider CRD parses");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut ok = json!({"spec": {"privacyidea": {"url": "http://127.0.0.1:5001", "realm": "corp",
            "credentials": {"secretRef": {"name": "pi"}}}}});
        prune_and_default(schema, &mut ok);
        assert!(validate(schema, &ok, None).is_empty(), "{:?}", validate(schema, &ok, None));
        let mut bad = ok.clone();
        bad["spec"]["privacyidea"]["url"] = json!("http://pi.example");
        let causes = validate(schema, &bad, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.privacyidea.url");
    }
}

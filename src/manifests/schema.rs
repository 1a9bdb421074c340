//! The CRDs' own OpenAPI v3 schemas and CEL rules, applied to manifests as the API server
//! applies them: offline `validate` and `kubectl apply` cannot disagree on a rule the schema
//! states, because there is one statement of it (the schema generated from `crate::crd`).
//!
//! Structural rules (types, patterns, lengths, ranges, required fields, `date-time` formats)
//! go through a JSON Schema validator; `x-kubernetes-validations` through kube-cel, the CEL
//! engine with the Kubernetes extension functions. What the API server checks outside the
//! schema (object names, namespaces) and what only keyward knows (references between objects,
//! identity conflicts, factor kinds per provider) stay in `validate.rs`.

use kube_cel::{CompiledSchema, ErrorKind, Validator as CelValidator, compile_schema};
use serde_json::{Map, Value};
use std::sync::LazyLock;

/// One failed rule: where (a path of keys and list indices from the object's root) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: Vec<PathPart>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    Key(String),
    Index(usize),
}

impl Violation {
    /// `spec.identities[0].provider`
    pub fn field(&self) -> String {
        let mut out = String::new();
        for part in &self.path {
            match part {
                PathPart::Key(key) if out.is_empty() => out.push_str(key),
                PathPart::Key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                PathPart::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// A kind's schema, ready to apply.
struct KindSchema {
    kind: String,
    structural: jsonschema::Validator,
    rules: CompiledSchema,
}

static SCHEMAS: LazyLock<Vec<KindSchema>> = LazyLock::new(|| {
    crate::crd::definitions()
        .into_iter()
        .flat_map(|(_, crd)| {
            let kind = crd.spec.names.kind.clone();
            crd.spec.versions.into_iter().filter_map(move |version| {
                let schema = serde_json::to_value(version.schema?.open_api_v3_schema?).ok()?;
                let structural = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&as_json_schema(&schema))
                    // The schemas are keyward's own, generated and tested: one that does not
                    // compile is a build defect, caught by this module's tests.
                    .expect("the generated CRD schema is a valid JSON Schema");
                let rules = compile_schema(&without_natively_checked_rules(schema));
                Some(KindSchema { kind: kind.clone(), structural, rules })
            })
        })
        .collect()
});

/// The schema without the CEL rules `validate.rs` checks natively, and better: the user-name
/// rule (`crd::user_name_rule`). `validate` names the offending character where the rule can
/// only say what is not allowed, and the interpreter compiles a rule's regular expressions
/// anew for every value it checks — minutes for a tree of 20,000 Employees. The API server
/// still applies the rule as written.
fn without_natively_checked_rules(mut schema: Value) -> Value {
    fn strip(node: &mut Value) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                    rules.retain(|r| r["message"] != crate::crd::USER_NAME_MESSAGE);
                    if rules.is_empty() {
                        map.remove("x-kubernetes-validations");
                    }
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut schema);
    schema
}

/// Every rule of its kind's schema that `object` (a whole manifest: apiVersion, kind,
/// metadata, spec) breaks; empty for a kind keyward does not define.
pub fn check(kind: &str, object: &Value) -> Vec<Violation> {
    let Some(schema) = SCHEMAS.iter().find(|s| s.kind == kind) else { return Vec::new() };
    // The API server drops nulls of fields that are not nullable before validating.
    let object = without_nulls(object);
    let mut violations: Vec<Violation> = schema
        .structural
        .iter_errors(&object)
        .map(|error| Violation { path: pointer_path(error.instance_path().as_str()), message: error.to_string() })
        .collect();
    // The API server evaluates the CEL rules beside the structural schema and reports both; a
    // rule that cannot be evaluated on a value of the wrong type is left to the structural
    // error about that value. (No root context — `apiVersion`, `kind` as variables: keyward's
    // rules do not use it.)
    let structural_failed = !violations.is_empty();
    if let Err(errors) = CelValidator::new().validate_compiled(&schema.rules, &object, None) {
        let evaluated = |e: &kube_cel::ValidationError| !structural_failed || e.kind == ErrorKind::ValidationFailure;
        violations.extend(
            errors
                .into_vec()
                .into_iter()
                .filter(evaluated)
                .map(|e| Violation { path: dotted_path(&e.field_path), message: e.message }),
        );
    }
    violations
}

/// The OpenAPI v3 dialect of a CRD as JSON Schema: `nullable` becomes a `null` type, integer
/// formats that are not JSON Schema's are dropped (the API server ignores them too), and the
/// `x-kubernetes-*` extensions (applied elsewhere, or not validation) are left out.
fn as_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    k if k.starts_with("x-kubernetes-") => {}
                    "nullable" | "description" | "default" => {}
                    "format" if value.as_str() != Some("date-time") => {}
                    // Maps of schemas: converted value by value, keys kept.
                    "properties" | "patternProperties" | "definitions" => {
                        let converted = value
                            .as_object()
                            .map(|m| m.iter().map(|(k, v)| (k.clone(), as_json_schema(v))).collect())
                            .unwrap_or_default();
                        out.insert(key.clone(), Value::Object(converted));
                    }
                    _ => {
                        out.insert(key.clone(), as_json_schema(value));
                    }
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(kind)) = out.get("type").cloned()
            {
                out.insert("type".into(), Value::Array(vec![Value::String(kind), Value::String("null".into())]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(as_json_schema).collect()),
        other => other.clone(),
    }
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// `/spec/identities/0/provider` → keys and indices (RFC 6901 escapes undone).
fn pointer_path(pointer: &str) -> Vec<PathPart> {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            match segment.parse() {
                Ok(index) => PathPart::Index(index),
                Err(_) => PathPart::Key(segment),
            }
        })
        .collect()
}

/// kube-cel's `spec.identities[0].provider` → keys and indices.
fn dotted_path(path: &str) -> Vec<PathPart> {
    let mut parts = Vec::new();
    for piece in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = piece;
        if let Some(open) = rest.find('[') {
            parts.push(PathPart::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(index) = rest[1..close].parse() {
                    parts.push(PathPart::Index(index));
                }
                rest = &rest[close + 1..];
            }
        } else {
            parts.push(PathPart::Key(rest.to_string()));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(spec: Value) -> Value {
        json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "MfaProvider",
               "metadata": {"name": "p", "namespace": "acme"}, "spec": spec})
    }

    #[test]
    fn every_kind_has_a_schema_that_compiles() {
        let kinds: Vec<&str> = SCHEMAS.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["MfaProvider", "Employee", "AccessGrant", "RevocationApproval"]);
    }

    #[test]
    fn structural_rules_and_cel_rules_both_apply() {
        let pi =
            json!({"url": "https://pi.acme.example", "realm": "corp", "credentials": {"secretRef": {"name": "s"}}});
        assert_eq!(check("MfaProvider", &provider(json!({"privacyidea": pi.clone()}))), vec![]);

        let mut slow = pi.clone();
        slow["timeout"] = json!("10 seconds");
        let violations = check("MfaProvider", &provider(json!({"privacyidea": slow})));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].field(), "spec.privacyidea.timeout");
        assert!(violations[0].message.contains("does not match"), "{violations:?}");

        let none = check("MfaProvider", &provider(json!({})));
        assert!(none.iter().any(|v| v.message.contains("exactly one provider block")), "{none:?}");

        let mut plain = pi;
        plain["url"] = json!("http://pi.acme.example");
        let plain = check("MfaProvider", &provider(json!({"privacyidea": plain})));
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert_eq!(plain[0].field(), "spec.privacyidea.url");
    }

    #[test]
    fn paths_of_both_engines_read_alike() {
        assert_eq!(
            pointer_path("/spec/identities/1/provider"),
            dotted_path("spec.identities[1].provider"),
            "a JSON pointer and a CEL field path"
        );
        let v = Violation { path: dotted_path("spec.identities[1].provider"), message: String::new() };
        assert_eq!(v.field(), "spec.identities[1].provider");
    }
}

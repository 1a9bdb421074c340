//! `meta.k8s.io/v1` Table responses, as `kubectl get` asks for them, with CRD
//! `additionalPrinterColumns` evaluated by a small JSONPath subset.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::registry::{PrinterColumn, ResourceType};

/// What each row carries in `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// Evaluates a Kubernetes JSONPath such as `.status.conditions[?(@.type=="Ready")].status`.
pub fn jsonpath(obj: &Value, path: &str) -> Vec<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![obj.clone()];
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("..") {
            // Recursive descent is not supported; treat as a plain child step.
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            rest = &r[end..];
            if name.is_empty() {
                continue;
            }
            current = current
                .iter()
                .filter_map(|v| if name == "*" { Some(children(v)) } else { v.get(name).map(|c| vec![c.clone()]) })
                .flatten()
                .collect();
            continue;
        }
        if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = find_bracket_end(r) else { return vec![] };
            let inner = &r[..end];
            rest = &r[end + 1..];
            current = step_bracket(&current, inner);
            continue;
        }
        return vec![];
    }
    current
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m.values().cloned().collect(),
        _ => vec![],
    }
}

fn find_bracket_end(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn step_bracket(current: &[Value], inner: &str) -> Vec<Value> {
    let inner = inner.trim();
    if inner == "*" {
        return current.iter().flat_map(children).collect();
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return current
            .iter()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .filter(|item| eval_filter(item, filter))
            .collect();
    }
    if (inner.starts_with('\'') && inner.ends_with('\'')) || (inner.starts_with('"') && inner.ends_with('"')) {
        let key = &inner[1..inner.len() - 1];
        return current.iter().filter_map(|v| v.get(key).cloned()).collect();
    }
    if let Ok(i) = inner.parse::<i64>() {
        return current
            .iter()
            .filter_map(|v| {
                let a = v.as_array()?;
                let idx = if i < 0 { a.len() as i64 + i } else { i };
                a.get(usize::try_from(idx).ok()?).cloned()
            })
            .collect();
    }
    vec![]
}

fn eval_filter(item: &Value, filter: &str) -> bool {
    for op in ["==", "!="] {
        if let Some((lhs, rhs)) = filter.split_once(op) {
            let left = jsonpath(item, lhs.trim().trim_start_matches('@'));
            let rhs = rhs.trim();
            let right: Value =
                if (rhs.starts_with('"') && rhs.ends_with('"')) || (rhs.starts_with('\'') && rhs.ends_with('\'')) {
                    Value::String(rhs[1..rhs.len() - 1].to_string())
                } else {
                    serde_json::from_str(rhs).unwrap_or(Value::String(rhs.to_string()))
                };
            let eq = left.first() == Some(&right);
            return if op == "==" { eq } else { !eq };
        }
    }
    !jsonpath(item, filter.trim().trim_start_matches('@')).is_empty()
}

/// A cell of a CRD column, typed as kube-apiserver's CRD table convertor types it.
fn cell(col: &PrinterColumn, obj: &Value) -> Value {
    let results = jsonpath(obj, &col.json_path);
    let Some(v) = results.into_iter().next() else { return Value::Null };
    match col.type_.as_str() {
        "string" => match v {
            Value::String(s) => Value::String(s),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        },
        "integer" => v.as_i64().map(Value::from).unwrap_or(Value::Null),
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => match v.as_str() {
            Some(ts) => Value::String(age(ts)),
            None => Value::Null,
        },
        _ => v,
    }
}

fn column_def(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

fn age(ts: &str) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(ts) else { return "<invalid>".into() };
    human_duration((Utc::now() - t.with_timezone(&Utc)).num_seconds())
}

/// apimachinery's `duration.HumanDuration`, which kube-apiserver uses for `date` cells.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

/// Column definitions and a cell function for a resource.
type Cell<'a> = Box<dyn Fn(&Value) -> Value + 'a>;
type Column<'a> = (Value, Cell<'a>);

fn columns(rt: &ResourceType) -> Vec<Column<'_>> {
    let name_col: Column = (
        column_def("Name", "string", "name", "Name must be unique within a namespace.", 0),
        Box::new(|o: &Value| o["metadata"]["name"].clone()),
    );
    let age_col = || -> Column {
        (
            column_def(
                "Age",
                "string",
                "",
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
                0,
            ),
            Box::new(|o: &Value| Value::String(age(o["metadata"]["creationTimestamp"].as_str().unwrap_or_default()))),
        )
    };
    if let Some(crd) = &rt.crd {
        let mut cols = vec![name_col];
        if crd.printer_columns.is_empty() {
            cols.push((
                column_def(
                    "Age",
                    "date",
                    "",
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                    0,
                ),
                Box::new(|o: &Value| o["metadata"]["creationTimestamp"].clone()),
            ));
        }
        for c in &crd.printer_columns {
            cols.push((
                column_def(&c.name, &c.type_, &c.format, &c.description, c.priority),
                Box::new(move |o: &Value| cell(c, o)),
            ));
        }
        return cols;
    }
    let s =
        |name: &'static str, f: fn(&Value) -> Value| -> Column { (column_def(name, "string", "", "", 0), Box::new(f)) };
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => vec![name_col, s("Status", |o| o["status"]["phase"].clone()), age_col()],
        ("", "secrets") => vec![
            name_col,
            s("Type", |o| o["type"].clone()),
            (
                column_def("Data", "integer", "", "", 0),
                Box::new(|o: &Value| json!(o["data"].as_object().map_or(0, |m| m.len()))),
            ),
            age_col(),
        ],
        ("", "configmaps") => vec![
            name_col,
            (
                column_def("Data", "integer", "", "", 0),
                Box::new(|o: &Value| {
                    let n = o["data"].as_object().map_or(0, |m| m.len())
                        + o["binaryData"].as_object().map_or(0, |m| m.len());
                    json!(n)
                }),
            ),
            age_col(),
        ],
        ("", "events") | ("events.k8s.io", "events") => vec![
            s("Last Seen", |o| {
                let ts =
                    o["lastTimestamp"].as_str().or(o["eventTime"].as_str()).or(o["deprecatedLastTimestamp"].as_str());
                Value::String(ts.map(age).unwrap_or_else(|| "<unknown>".into()))
            }),
            s("Type", |o| o["type"].clone()),
            s("Reason", |o| o["reason"].clone()),
            s("Object", |o| {
                let r = if o.get("regarding").is_some() { &o["regarding"] } else { &o["involvedObject"] };
                Value::String(format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or_default().to_lowercase(),
                    r["name"].as_str().unwrap_or_default()
                ))
            }),
            s("Message", |o| if o.get("note").is_some() { o["note"].clone() } else { o["message"].clone() }),
        ],
        ("coordination.k8s.io", "leases") => {
            vec![name_col, s("Holder", |o| o["spec"]["holderIdentity"].clone()), age_col()]
        }
        ("apiextensions.k8s.io", _) => vec![
            name_col,
            (
                column_def("Created At", "date", "", "", 0),
                Box::new(|o: &Value| o["metadata"]["creationTimestamp"].clone()),
            ),
        ],
        _ => vec![name_col, age_col()],
    }
}

/// Renders objects as a Table.
pub fn table(rt: &ResourceType, objects: &[Value], list_meta: Value, include: IncludeObject) -> Value {
    let cols = columns(rt);
    let defs: Vec<Value> = cols.iter().map(|(d, _)| d.clone()).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|(_, f)| f(o)).collect();
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    })
                }
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let obj = json!({"spec": {"roles": ["sre", "dev"]}, "status": {"conditions": [
            {"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
            "metadata": {"labels": {"a.b/c": "x"}}});
        assert_eq!(jsonpath(&obj, r#".status.conditions[?(@.type=="Ready")].status"#), vec![json!("True")]);
        assert_eq!(jsonpath(&obj, ".spec.roles"), vec![json!(["sre", "dev"])]);
        assert_eq!(jsonpath(&obj, ".spec.roles[1]"), vec![json!("dev")]);
        assert_eq!(jsonpath(&obj, ".spec.roles[*]"), vec![json!("sre"), json!("dev")]);
        assert_eq!(jsonpath(&obj, ".metadata.labels['a.b/c']"), vec![json!("x")]);
        assert!(jsonpath(&obj, ".status.missing").is_empty());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(-10), "<invalid>");
    }
}

//! The status of keyward's objects as GitOps tools read it: Flux's kstatus rules, the Argo CD
//! health check of deploy/argocd/health.lua, and the condition contract of docs/gitops.md.
//!
//! Self-contained so that the operator's end-to-end suite can check the objects keyward
//! writes (`kubectl get employees -o json`) against the contract:
//! `#[path = "chart/status.rs"] mod status;` then [`contract_violations`].
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// kstatus' verdict (sigs.k8s.io/cli-utils pkg/kstatus/status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

impl KStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "InProgress" => KStatus::InProgress,
            "Failed" => KStatus::Failed,
            "Current" => KStatus::Current,
            "Terminating" => KStatus::Terminating,
            _ => return None,
        })
    }
}

fn conditions(obj: &Value) -> &[Value] {
    obj["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    conditions(obj).iter().find(|c| c["type"] == kind)
}

fn is_true(obj: &Value, kind: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == "True")
}

/// A port of kstatus' `Compute` for a custom resource (no type-specific rules apply):
/// deletionTimestamp, then generation vs observedGeneration, then Reconciling / Stalled,
/// then the Ready condition, else Current. Flux's health checks (kustomize-controller
/// `wait`, helm-controller) use exactly this for kinds they do not know.
pub fn kstatus(obj: &Value) -> (KStatus, String) {
    if obj["metadata"]["deletionTimestamp"].as_str().is_some_and(|s| !s.is_empty()) {
        return (KStatus::Terminating, "Resource scheduled for deletion".into());
    }
    if let (Some(generation), Some(observed)) =
        (obj["metadata"]["generation"].as_i64(), obj["status"]["observedGeneration"].as_i64())
        && generation != observed
    {
        return (
            KStatus::InProgress,
            format!("generation is {generation}, but latest observed generation is {observed}"),
        );
    }
    for c in conditions(obj) {
        let message = c["message"].as_str().unwrap_or_default().to_string();
        if c["type"] == "Reconciling" && c["status"] == "True" {
            return (KStatus::InProgress, message);
        }
        if c["type"] == "Stalled" && c["status"] == "True" {
            return (KStatus::Failed, message);
        }
    }
    if let Some(ready) = condition(obj, "Ready") {
        let message = ready["message"].as_str().unwrap_or_default().to_string();
        match ready["status"].as_str() {
            Some("True") => return (KStatus::Current, "Resource is Ready".into()),
            Some("False" | "Unknown") => return (KStatus::InProgress, message),
            _ => {}
        }
    }
    (KStatus::Current, "Resource is current".into())
}

/// The rules of docs/gitops.md "The condition contract" that `obj` breaks; empty when it keeps
/// them. An object without conditions has not been reconciled yet and breaks nothing.
pub fn contract_violations(obj: &Value) -> Vec<String> {
    let mut broken = Vec::new();
    let all = conditions(obj);
    if all.is_empty() {
        return broken;
    }
    let generation = obj["metadata"]["generation"].as_i64();
    let observed = obj["status"]["observedGeneration"].as_i64();
    match (observed, generation) {
        (None, _) => broken.push("status.observedGeneration is missing".into()),
        (Some(o), Some(g)) if o > g => broken.push(format!("status.observedGeneration {o} > metadata.generation {g}")),
        _ => {}
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in all {
        let kind = c["type"].as_str().unwrap_or_default();
        if !seen.insert(kind) {
            broken.push(format!("condition {kind} appears twice"));
        }
        if !matches!(c["status"].as_str(), Some("True" | "False" | "Unknown")) {
            broken.push(format!("condition {kind}: status {} is not True, False or Unknown", c["status"]));
        }
        let reason = c["reason"].as_str().unwrap_or_default();
        let camel = reason.starts_with(|ch: char| ch.is_ascii_uppercase())
            && reason.chars().all(|ch| ch.is_ascii_alphanumeric());
        if !camel {
            broken.push(format!("condition {kind}: reason {reason:?} is not CamelCase"));
        }
        if c["lastTransitionTime"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_none() {
            broken.push(format!("condition {kind}: lastTransitionTime is not RFC 3339"));
        }
        match (c["observedGeneration"].as_i64(), observed) {
            (None, _) => broken.push(format!("condition {kind}: observedGeneration is missing")),
            (Some(cg), Some(o)) if matches!(kind, "Ready" | "Reconciling" | "Stalled") && cg != o => broken
                .push(format!("condition {kind}: observedGeneration {cg} differs from status.observedGeneration {o}")),
            _ => {}
        }
    }
    let Some(ready) = condition(obj, "Ready") else {
        broken.push("no Ready condition".into());
        return broken;
    };
    let (reconciling, stalled) = (is_true(obj, "Reconciling"), is_true(obj, "Stalled"));
    match ready["status"].as_str() {
        Some("True") if reconciling || stalled => broken.push("Ready=True together with Reconciling or Stalled".into()),
        Some("False" | "Unknown") if reconciling == stalled => {
            broken.push("Ready is not True: exactly one of Reconciling and Stalled must be True".into())
        }
        _ => {}
    }
    if stalled {
        let stalled_reason = &condition(obj, "Stalled").expect("stalled")["reason"];
        if ready["status"] != "False" {
            broken.push("Stalled=True needs Ready=False".into());
        } else if &ready["reason"] != stalled_reason {
            broken.push(format!("Ready reason {} differs from Stalled reason {stalled_reason}", ready["reason"]));
        }
    }
    broken
}

/// A JSON value as a Lua table constructor, the way Argo CD hands `obj` to a health script.
pub fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter().map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for byte in s.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            // Decimal escapes are the same in Lua 5.1 and 5.4, and keep UTF-8 bytes intact.
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

/// Runs an Argo CD health script with `obj` set, under the given interpreter (`lua5.1`,
/// `lua5.4`); returns `(status, message)`.
pub fn argocd_health(lua: &str, script: &Path, obj: &Value) -> Result<(String, String), String> {
    let program = format!(
        "obj = {}\nlocal hs = dofile({})\nio.write(tostring(hs.status), \"\\n\", tostring(hs.message))\n",
        lua_literal(obj),
        lua_string(&script.display().to_string())
    );
    let mut child = Command::new(lua)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {lua}: {e} (scripts/helm.sh install brings it)"))?;
    child.stdin.take().expect("stdin").write_all(program.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{lua}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    Ok((status.to_string(), message.to_string()))
}

//! The status of keyward's objects as GitOps tools read it: kstatus' rules and Flux's
//! `healthCheckExprs` evaluation, the Argo CD health check of deploy/argocd/health.lua, and the
//! condition contract of docs/gitops.md.
//!
//! Self-contained so that the operator's end-to-end suite can check the objects keyward
//! writes (`kubectl get employees -o json`) against the contract:
//! `#[path = "chart/status.rs"] mod status;` then [`contract_violations`].
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// kstatus' verdict (sigs.k8s.io/cli-utils pkg/kstatus/status). `Unknown` is what the poller
/// reports when the status function fails, e.g. a health check expression that cannot be
/// evaluated; Flux keeps waiting on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
    Unknown,
}

impl KStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "InProgress" => KStatus::InProgress,
            "Failed" => KStatus::Failed,
            "Current" => KStatus::Current,
            "Terminating" => KStatus::Terminating,
            "Unknown" => KStatus::Unknown,
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

/// A port of kstatus' `Compute` (pkg/kstatus/status/status.go) for a custom resource, as
/// upstream has it (kubernetes-sigs/cli-utils, and Flux's fork fluxcd/cli-utils, whose
/// status package has the same rules): `checkGenericProperties` (deletionTimestamp, then
/// generation against status.observedGeneration when both are set, then Reconciling=True or
/// Stalled=True), then the legacy rules, which exist for built-in kinds only, then
/// `checkReadyCondition` (the fallback added upstream in 2020: Ready=True is Current,
/// Ready=False or Unknown InProgress — never Failed), else Current. Flux's kustomize-controller
/// (`wait`, `healthChecks`) uses it for every kind without `healthCheckExprs`.
pub fn kstatus(obj: &Value) -> (KStatus, String) {
    if obj["metadata"]["deletionTimestamp"].as_str().is_some_and(|s| !s.is_empty()) {
        return (KStatus::Terminating, "Resource scheduled for deletion".into());
    }
    if let (Some(generation), Some(observed)) =
        (obj["metadata"]["generation"].as_i64(), obj["status"]["observedGeneration"].as_i64())
        && generation != observed
    {
        let kind = obj["kind"].as_str().unwrap_or_default();
        return (
            KStatus::InProgress,
            format!("{kind} generation is {generation}, but latest observed generation is {observed}"),
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

/// Flux's verdict for an object of a kind with `healthCheckExprs` (one entry of a
/// Kustomization's `spec.healthCheckExprs`), ported from fluxcd/pkg runtime/cel
/// `StatusEvaluator.Evaluate`: InProgress while status.observedGeneration (when set) differs
/// from metadata.generation; then the first of `inProgress`, `failed`, `current` that is true;
/// none true is InProgress. The expressions see the object's top-level fields as variables
/// (`status`, `metadata`); an expression that fails to evaluate makes the status Unknown.
/// The CEL interpreter is the `cel` crate (kube-cel's), not cel-go: the expressions keep to
/// what both implement (`has`, `exists`, `&&`, `==`).
pub fn flux_health(obj: &Value, exprs: &Value) -> (KStatus, String) {
    if let (Some(generation), Some(observed)) =
        (obj["metadata"]["generation"].as_i64(), obj["status"]["observedGeneration"].as_i64())
        && generation != observed
    {
        return (KStatus::InProgress, format!("generation {generation}, observed {observed}"));
    }
    for (key, verdict) in
        [("inProgress", KStatus::InProgress), ("failed", KStatus::Failed), ("current", KStatus::Current)]
    {
        let Some(expr) = exprs[key].as_str() else { continue };
        match eval_cel(expr, obj) {
            Ok(true) => return (verdict, format!("{key} is true")),
            Ok(false) => {}
            Err(e) => return (KStatus::Unknown, format!("{key}: {e}")),
        }
    }
    (KStatus::InProgress, "no expression is true".into())
}

/// One health check expression against `obj`, whose top-level fields are its variables.
pub fn eval_cel(expr: &str, obj: &Value) -> Result<bool, String> {
    use kube_cel::cel::{Context, Program, Value as Cel};
    let program = Program::compile(expr).map_err(|e| format!("parse {expr:?}: {e}"))?;
    let mut context = Context::default();
    for (name, value) in obj.as_object().into_iter().flatten() {
        context.add_variable(name.as_str(), value.clone()).map_err(|e| format!("variable {name}: {e}"))?;
    }
    match program.execute(&context) {
        Ok(Cel::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("{expr:?} is not a boolean: {other:?}")),
        Err(e) => Err(format!("evaluate {expr:?}: {e}")),
    }
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

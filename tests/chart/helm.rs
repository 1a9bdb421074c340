//! The chart rendered by the real Helm v4 engine (PyPI helm-python-sdk through
//! `tests/chart/helm_tool.py`, in the venv of `scripts/helm.sh`).
//!
//! Self-contained so that other test crates can use it too:
//! `#[path = "chart/helm.rs"] mod helm;`.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo().join("charts/keyward")
}

/// The venv's interpreter; `scripts/helm.sh python` installs the venv on first use, once per
/// test binary so that parallel tests do not race on pip.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/helm.sh"))
            .arg("python")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/helm.sh python");
        assert!(out.status.success(), "scripts/helm.sh python failed");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// Runs helm_tool.py on the chart with these operations and returns one result per operation.
pub fn run(chart: &Path, ops: Vec<Value>) -> Vec<Value> {
    let request = json!({"chart": chart, "ops": ops});
    let mut child = Command::new(python())
        .arg(repo().join("tests/chart/helm_tool.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start helm_tool.py");
    child.stdin.take().expect("stdin").write_all(request.to_string().as_bytes()).expect("write request");
    let out = child.wait_with_output().expect("helm_tool.py");
    assert!(
        out.status.success(),
        "helm_tool.py failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("helm_tool.py answers JSON");
    answer["results"].as_array().expect("results").clone()
}

/// One release of the chart: its values, name and namespace.
#[derive(Clone, Debug)]
pub struct Release {
    pub values: Value,
    pub name: String,
    pub namespace: String,
}

impl Release {
    pub fn new(values: Value) -> Self {
        Release { values, name: "keyward".into(), namespace: "keyward-system".into() }
    }

    pub fn named(mut self, name: &str, namespace: &str) -> Self {
        self.name = name.into();
        self.namespace = namespace.into();
        self
    }

    fn op(&self) -> Value {
        json!({"op": "render", "values": self.values, "name": self.name, "namespace": self.namespace})
    }
}

/// The templates Helm rendered, by path.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub files: BTreeMap<String, String>,
}

impl Rendered {
    /// Every object, in template order (empty documents left out), as `helm template` would
    /// print them; NOTES.txt is not an object.
    pub fn objects(&self) -> Vec<Value> {
        self.files
            .iter()
            .filter(|(path, _)| !path.ends_with("NOTES.txt"))
            .flat_map(|(path, text)| parse_documents(text).unwrap_or_else(|e| panic!("{path}: {e}")))
            .collect()
    }

    pub fn notes(&self) -> &str {
        self.files.iter().find(|(p, _)| p.ends_with("NOTES.txt")).map(|(_, t)| t.as_str()).unwrap_or("")
    }

    /// The objects of one kind.
    pub fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.objects().into_iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The only object of a kind; panics when there is not exactly one.
    pub fn one(&self, kind: &str) -> Value {
        let mut all = self.of_kind(kind);
        assert_eq!(all.len(), 1, "expected exactly one {kind}, got {}", all.len());
        all.remove(0)
    }
}

/// Multi-document YAML to JSON values, dropping empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Renders several releases in one Helm call (the engine loads once); each is the rendered
/// chart or Helm's error message.
pub fn render_all(releases: &[Release]) -> Vec<Result<Rendered, String>> {
    run(&chart_dir(), releases.iter().map(Release::op).collect())
        .into_iter()
        .map(|r| {
            if r["ok"] == true {
                let files = serde_json::from_value(r["manifests"].clone()).expect("manifests");
                Ok(Rendered { files })
            } else {
                Err(r["error"].as_str().unwrap_or_default().to_string())
            }
        })
        .collect()
}

/// Renders one release; panics with Helm's message when it fails.
pub fn render(release: &Release) -> Rendered {
    render_all(std::slice::from_ref(release)).remove(0).unwrap_or_else(|e| panic!("helm render failed: {e}"))
}

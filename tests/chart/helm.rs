//! The chart rendered and linted by the real `helm` binary (v4, built by `scripts/kube.sh`
//! together with the local control plane; `support/kube.rs` finds it).
//!
//! Self-contained so that other test crates can use it too:
//! `#[path = "chart/helm.rs"] mod helm;` (it includes `support/kube.rs` itself).
#![allow(dead_code)]

// A crate that has support/kube.rs already (tests/support/mod.rs) gets a second copy here:
// the same code, which finds the same binaries.
#[allow(clippy::duplicate_mod)]
#[path = "../support/kube.rs"]
pub mod kube;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo().join("charts/keyward")
}

/// The helm binary of the pinned version (`scripts/kube.sh env` builds it the first time).
pub fn helm_path() -> PathBuf {
    kube::helm_path()
}

/// Helm's own config, cache and data directories, the tests' own, so that neither the
/// machine's Helm repositories nor its plugins change what a test sees. (Rendering, linting
/// and installing a local chart write nothing there, so test binaries can share it.)
fn helm_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
        std::fs::create_dir_all(&dir).expect("create helm home");
        dir
    })
}

/// A `helm` command with an isolated Helm home and no kubeconfig unless the caller sets one.
pub fn command() -> Command {
    let home = helm_home();
    let mut cmd = Command::new(helm_path());
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        // Rendering never talks to a cluster: a kubeconfig that does not exist makes sure.
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT");
    cmd
}

/// A values file for `helm -f`: JSON is YAML. Removed when dropped.
pub fn values_file(values: &Value) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".json").tempfile().expect("values file");
    std::io::Write::write_all(&mut file, values.to_string().as_bytes()).expect("write values");
    file
}

/// One release of the chart: its values, name and namespace.
#[derive(Clone, Debug)]
pub struct Release {
    pub values: Value,
    pub name: String,
    pub namespace: String,
}

/// The provider host the releases of [`Release::new`] allow when their values name none: the
/// chart refuses to install without `providerHosts` (or `allowAnyProviderHost`).
pub const PROVIDER_HOST: &str = "pi.acme.example";

impl Release {
    /// A release with `values`, plus `providerHosts: [pi.acme.example]` when they neither name
    /// provider hosts nor allow any host: tests about something else need not repeat it.
    pub fn new(mut values: Value) -> Self {
        if let Some(map) = values.as_object_mut()
            && !map.contains_key("providerHosts")
            && !map.contains_key("allowAnyProviderHost")
        {
            map.insert("providerHosts".into(), serde_json::json!([PROVIDER_HOST]));
        }
        Release::exactly(values)
    }

    /// A release with exactly `values` (the chart's defaults for everything else).
    pub fn exactly(values: Value) -> Self {
        Release { values, name: "keyward".into(), namespace: "keyward-system".into() }
    }

    pub fn named(mut self, name: &str, namespace: &str) -> Self {
        self.name = name.into();
        self.namespace = namespace.into();
        self
    }
}

/// The templates Helm rendered, by path (`keyward/templates/deployment.yaml`), NOTES.txt
/// included; templates that rendered to nothing are absent.
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

/// Helm's manifest stream (`---` + `# Source: keyward/templates/x.yaml` before each document)
/// split back into templates; the documents of one template stay together, in order.
pub fn split_sources(manifest: &str) -> BTreeMap<String, String> {
    let mut documents: Vec<Vec<&str>> = vec![Vec::new()];
    for line in manifest.lines() {
        match line {
            "---" => documents.push(Vec::new()),
            _ => documents.last_mut().expect("a document").push(line),
        }
    }
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for lines in documents {
        let Some(first) = lines.iter().position(|l| !l.trim().is_empty()) else { continue };
        let path = lines[first]
            .strip_prefix("# Source: ")
            .unwrap_or_else(|| panic!("helm printed a document without a `# Source:` line: {lines:?}"));
        let file = files.entry(path.trim().to_string()).or_default();
        if !file.is_empty() {
            file.push_str("---\n");
        }
        for line in &lines[first + 1..] {
            file.push_str(line);
            file.push('\n');
        }
    }
    files
}

/// `helm install --dry-run=client -o json` of the release from `chart`: the manifest and the
/// NOTES of a first install, with no cluster. The error is Helm's message (stderr).
pub fn render_chart(chart: &Path, release: &Release) -> Result<Rendered, String> {
    let values = values_file(&release.values);
    let out = command()
        .args(["install", &release.name])
        .arg(chart)
        .args(["--namespace", &release.namespace, "--dry-run=client", "--output", "json", "--values"])
        .arg(values.path())
        .output()
        .expect("run helm install --dry-run=client");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let answer: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("helm -o json: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let mut files = split_sources(answer["manifest"].as_str().unwrap_or_default());
    let notes = answer["info"]["notes"].as_str().unwrap_or_default();
    if !notes.is_empty() {
        files.insert(format!("{}/templates/NOTES.txt", chart_name(chart)), notes.to_string());
    }
    Ok(Rendered { files })
}

fn chart_name(chart: &Path) -> String {
    let meta: Value = serde_yaml::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml"))
        .expect("Chart.yaml is YAML");
    meta["name"].as_str().expect("Chart.yaml name").to_string()
}

/// Renders several releases, one helm process each, in parallel; each is the rendered
/// chart or Helm's error message.
pub fn render_all(releases: &[Release]) -> Vec<Result<Rendered, String>> {
    parallel(releases, |r| render_chart(&chart_dir(), r))
}

/// Renders one release; panics with Helm's message when it fails.
pub fn render(release: &Release) -> Rendered {
    render_chart(&chart_dir(), release).unwrap_or_else(|e| panic!("helm render failed: {e}"))
}

/// `f` over `items` on a few threads (helm is a process per call, mostly waiting), in order.
pub fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> =
            items.chunks(chunk).map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("render thread")).collect()
    })
}

/// One line of `helm lint`'s report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintMessage {
    /// INFO, WARNING or ERROR.
    pub severity: String,
    /// The file the message is about, e.g. `templates/service.yaml` or `values.yaml`.
    pub path: String,
    pub text: String,
}

/// What `helm lint --strict` said about the chart.
#[derive(Clone, Debug)]
pub struct LintReport {
    /// Lint's exit status: `--strict` fails on warnings too.
    pub passed: bool,
    pub messages: Vec<LintMessage>,
    /// Everything helm printed, for assertion messages.
    pub output: String,
}

impl LintReport {
    /// Messages that fail a strict lint: warnings and errors, not INFO.
    pub fn serious(&self) -> Vec<&LintMessage> {
        self.messages.iter().filter(|m| m.severity != "INFO").collect()
    }
}

/// `helm lint --strict` of `chart` with `values` and the release namespace.
pub fn lint(chart: &Path, values: &Value, namespace: &str) -> LintReport {
    let values = values_file(values);
    let out = command()
        .args(["lint", "--strict", "--namespace", namespace, "--values"])
        .arg(values.path())
        .arg(chart)
        .output()
        .expect("run helm lint");
    lint_report(&out)
}

/// Parses lint's text report: `[SEVERITY] path: message` lines; a message may continue on the
/// following lines (a schema error lists one path per line).
fn lint_report(out: &Output) -> LintReport {
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut messages: Vec<LintMessage> = Vec::new();
    for line in output.lines() {
        let parsed = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("] "))
            .filter(|(s, _)| matches!(*s, "INFO" | "WARNING" | "ERROR"));
        match parsed {
            Some((severity, rest)) => {
                let (path, text) = rest.split_once(": ").unwrap_or(("", rest));
                messages.push(LintMessage { severity: severity.into(), path: path.into(), text: text.into() });
            }
            None if line.starts_with("==>") || line.contains("chart(s) linted") || line.trim().is_empty() => {}
            None => {
                if let Some(last) = messages.last_mut() {
                    last.text.push('\n');
                    last.text.push_str(line);
                }
            }
        }
    }
    LintReport { passed: out.status.success(), messages, output }
}

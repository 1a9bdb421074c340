//! Reading files and directories of multi-document YAML into typed objects.

use super::Manifests;
use super::document::{self, Document, Outline, Step};
use super::source::{Loaded, Problem, Severity, Source};
use crate::crd::{AccessGrant, Employee, MfaProvider, RevocationApproval};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

const API_VERSION: &str = "keyward.dev/v1alpha1";

/// Reads every object under `paths` (files, or directories walked recursively for `.yaml` and
/// `.yml` files, hidden entries skipped) and reports what could not be read, with its line.
///
/// Objects without a namespace get `default_namespace`. Documents of other kinds (ConfigMap,
/// Deployment, …) and YAML that is not a Kubernetes object are ignored. An object with a
/// problem is left out of the result, so a caller that acts on the result (`plan`, `apply`)
/// must not act when there are problems: a missing Employee reads as a deleted one.
pub fn load(paths: &[PathBuf], default_namespace: &str) -> (Manifests, Vec<Problem>) {
    let mut manifests = Manifests::default();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        // `-f -`: the documents on standard input (`kustomize build … | keyward validate -f -`).
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(_) => load_text(Path::new("<stdin>"), &text, default_namespace, &mut manifests, &mut problems),
                Err(error) => problems.push(Problem {
                    file: PathBuf::from("<stdin>"),
                    line: 0,
                    message: format!("cannot read: {error}"),
                    severity: Severity::Error,
                }),
            }
            continue;
        }
        for file in files(path, &mut problems) {
            // The same file named twice (a file and its directory) is read once.
            if !seen.insert(fs::canonicalize(&file).unwrap_or_else(|_| file.clone())) {
                continue;
            }
            match read(&file) {
                Ok(text) => load_text(&file, &text, default_namespace, &mut manifests, &mut problems),
                Err(problem) => problems.push(problem),
            }
        }
    }
    (manifests, problems)
}

/// [`load`], plus the output of `kubectl kustomize DIR` for each kustomization directory (the
/// overlays a GitOps repository applies). Its problems name the directory and the line of the
/// built output.
pub fn load_with_kustomize(
    paths: &[PathBuf],
    kustomizations: &[PathBuf],
    default_namespace: &str,
) -> (Manifests, Vec<Problem>) {
    let (mut manifests, mut problems) =
        if paths.is_empty() { (Manifests::default(), Vec::new()) } else { load(paths, default_namespace) };
    for dir in kustomizations {
        let label = PathBuf::from(format!("{} (kubectl kustomize)", dir.display()));
        let kubectl = std::env::var_os("KEYWARD_KUBECTL").unwrap_or_else(|| "kubectl".into());
        let built = std::process::Command::new(&kubectl).arg("kustomize").arg(dir).output();
        match built {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                load_text(&label, &text, default_namespace, &mut manifests, &mut problems);
            }
            Ok(out) => problems.push(Problem {
                file: label,
                line: 0,
                message: format!("kubectl kustomize failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
                severity: Severity::Error,
            }),
            Err(error) => problems.push(Problem {
                file: label,
                line: 0,
                message: format!("cannot run {} kustomize (set KEYWARD_KUBECTL): {error}", kubectl.to_string_lossy()),
                severity: Severity::Error,
            }),
        }
    }
    (manifests, problems)
}

/// The files under `path`: itself, or the files of a directory sorted by name, depth first.
fn files(path: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => walk(path, &mut files, &mut HashSet::new(), problems),
        // A file named explicitly is read whatever its extension.
        Ok(_) => files.push(path.to_path_buf()),
        Err(error) => problems.push(Problem {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read: {error}"),
            severity: Severity::Error,
        }),
    }
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, visited: &mut HashSet<PathBuf>, problems: &mut Vec<Problem>) {
    // Symbolic links are followed; a directory seen before (a link loop) is not walked again.
    if !visited.insert(fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            problems.push(Problem {
                file: dir.to_path_buf(),
                line: 0,
                message: format!("cannot read directory: {error}"),
                severity: Severity::Error,
            });
            return;
        }
    };
    let mut entries: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, files, visited, problems),
            Ok(_) if is_yaml(&path) => files.push(path),
            Ok(_) => {}
            Err(error) => problems.push(Problem {
                file: path,
                line: 0,
                message: format!("cannot read: {error}"),
                severity: Severity::Error,
            }),
        }
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

fn read(file: &Path) -> Result<String, Problem> {
    let problem = |line, message| Problem { file: file.to_path_buf(), line, message, severity: Severity::Error };
    let bytes = fs::read(file).map_err(|error| problem(0, format!("cannot read: {error}")))?;
    let text = String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        problem(line, "not UTF-8 text".to_string())
    })?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}

/// Loads the documents of one file's text.
pub(crate) fn load_text(
    file: &Path,
    text: &str,
    default_namespace: &str,
    out: &mut Manifests,
    problems: &mut Vec<Problem>,
) {
    let outline = Outline::new(text);
    let mut reader = FileReader { file, outline: &outline, default_namespace, out, problems };
    for document in document::split(text) {
        if let Some(line) = document.content_line() {
            reader.document(document, line);
        }
    }
}

/// The kinds `load` tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    MfaProvider,
    Employee,
    AccessGrant,
    RevocationApproval,
    Secret,
    List,
    /// Any other Kubernetes kind, or YAML that is not an object at all.
    Ignored,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::MfaProvider => "MfaProvider",
            Kind::Employee => "Employee",
            Kind::AccessGrant => "AccessGrant",
            Kind::RevocationApproval => "RevocationApproval",
            Kind::Secret => "Secret",
            Kind::List => "List",
            Kind::Ignored => "object",
        }
    }

    /// Top-level fields the API server knows for this kind; anything else is a typo
    /// (kubectl's strict field validation rejects it).
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::MfaProvider | Kind::Employee | Kind::AccessGrant | Kind::RevocationApproval => {
                &["apiVersion", "kind", "metadata", "spec", "status"]
            }
            Kind::Secret => &["apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"],
            Kind::List | Kind::Ignored => &[],
        }
    }
}

/// The fields of `ObjectMeta`: serde ignores unknown ones, and a typo such as `namespce` would
/// silently move the object to the default namespace.
const METADATA_FIELDS: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// Which kind a document is, from its `apiVersion` and `kind`; `Err` (with the field to
/// blame) for a keyward.dev document this version does not know.
fn classify(mapping: &Mapping) -> Result<Kind, (&'static str, String)> {
    let api_version = mapping.get("apiVersion").and_then(Value::as_str);
    let kind = mapping.get("kind").and_then(Value::as_str);
    let ours = |k: &str| matches!(k, "MfaProvider" | "Employee" | "AccessGrant" | "RevocationApproval");
    match (api_version, kind) {
        (Some(API_VERSION), Some("MfaProvider")) => Ok(Kind::MfaProvider),
        (Some(API_VERSION), Some("Employee")) => Ok(Kind::Employee),
        (Some(API_VERSION), Some("AccessGrant")) => Ok(Kind::AccessGrant),
        (Some(API_VERSION), Some("RevocationApproval")) => Ok(Kind::RevocationApproval),
        (Some(API_VERSION), Some(k)) if k.strip_suffix("List").is_some_and(ours) => Ok(Kind::List),
        (Some(API_VERSION), Some(k)) => Err((
            "kind",
            format!(
                "unknown kind `{k}` in {API_VERSION} (expected MfaProvider, Employee, AccessGrant or RevocationApproval)"
            ),
        )),
        (Some(API_VERSION), None) => Err(("apiVersion", format!("{API_VERSION} object without a `kind`"))),
        (Some(v), _) if v == "keyward.dev" || v.starts_with("keyward.dev/") => {
            Err(("apiVersion", format!("unknown apiVersion `{v}` (this keyward reads {API_VERSION})")))
        }
        (Some("v1"), Some("Secret")) => Ok(Kind::Secret),
        (Some("v1"), Some("List")) => Ok(Kind::List),
        (None, Some(k)) if ours(k) || k == "Secret" => Err(("kind", format!("{k} without an `apiVersion`"))),
        _ => Ok(Kind::Ignored),
    }
}

/// `Kind namespace/name`, as every problem names its object.
fn label(kind: &str, mapping: &Mapping, default_namespace: &str) -> String {
    let metadata = mapping.get("metadata");
    let field = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str).filter(|s| !s.is_empty());
    let namespace = field("namespace").unwrap_or(default_namespace);
    let name = field("name").unwrap_or("(no name)");
    format!("{kind} {namespace}/{name}")
}

fn kind_of(mapping: &Mapping) -> &str {
    mapping.get("kind").and_then(Value::as_str).unwrap_or("object")
}

enum Object {
    // Boxed: the largest of the kinds by far, and one per file at most in practice.
    Provider(Box<MfaProvider>),
    Employee(Employee),
    Grant(AccessGrant),
    Approval(RevocationApproval),
    Secret(Secret),
}

/// Deserializes one object of a known kind straight from the YAML events, so that errors keep
/// their line; other kinds are skipped.
struct ObjectSeed(Kind);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Option<Object>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Ok(match self.0 {
            Kind::MfaProvider => Some(Object::Provider(Box::new(MfaProvider::deserialize(deserializer)?))),
            Kind::Employee => Some(Object::Employee(Employee::deserialize(deserializer)?)),
            Kind::AccessGrant => Some(Object::Grant(AccessGrant::deserialize(deserializer)?)),
            Kind::RevocationApproval => Some(Object::Approval(RevocationApproval::deserialize(deserializer)?)),
            Kind::Secret => Some(Object::Secret(Secret::deserialize(deserializer)?)),
            Kind::List | Kind::Ignored => {
                IgnoredAny::deserialize(deserializer)?;
                None
            }
        })
    }
}

/// Deserializes the `items` of a `kind: List` document, item `i` as `kinds[i]` (known from a
/// first pass over the document as a `Value`). `current` tells which item an error is in.
struct ListSeed<'a> {
    kinds: &'a [Kind],
    current: &'a Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Vec<Option<Object>>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = Vec<Option<Object>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a List")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(key) = map.next_key::<Value>()? {
            if key.as_str() == Some("items") {
                items = map.next_value_seed(ItemsSeed { kinds: self.kinds, current: self.current })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(items)
    }
}

struct ItemsSeed<'a> {
    kinds: &'a [Kind],
    current: &'a Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Vec<Option<Object>>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Vec<Option<Object>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut objects = Vec::new();
        loop {
            let index = objects.len();
            self.current.set(index);
            let kind = self.kinds.get(index).copied().unwrap_or(Kind::Ignored);
            match seq.next_element_seed(ObjectSeed(kind))? {
                Some(object) => objects.push(object),
                None => return Ok(objects),
            }
        }
    }
}

/// serde_yaml's message without its own location, other lines it mentions made file lines.
fn describe(error: &serde_yaml::Error, document: &Document<'_>) -> String {
    let mut message = error.to_string();
    if let Some(location) = error.location() {
        message = message.replacen(&format!(" at line {} column {}", location.line(), location.column()), "", 1);
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(i) = rest.find("at line ") {
        let (head, tail) = rest.split_at(i + "at line ".len());
        out.push_str(head);
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match tail[..digits].parse::<usize>() {
            Ok(line) => out.push_str(&document.file_line(line).to_string()),
            Err(_) => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

struct FileReader<'a> {
    file: &'a Path,
    outline: &'a Outline,
    default_namespace: &'a str,
    out: &'a mut Manifests,
    problems: &'a mut Vec<Problem>,
}

impl FileReader<'_> {
    fn problem(&mut self, line: usize, message: String) {
        self.problems.push(Problem { file: self.file.to_path_buf(), line, message, severity: Severity::Error });
    }

    fn document(&mut self, document: Document<'_>, line: usize) {
        let value = match serde_yaml::from_str::<Value>(document.text) {
            Ok(value) => value,
            Err(error) => {
                let at = error.location().map_or(line, |l| document.file_line(l.line()));
                self.problem(at, format!("invalid YAML: {}", describe(&error, &document)));
                return;
            }
        };
        // A document that is not a mapping (a bare list, a scalar) is not a Kubernetes object:
        // other tools' YAML, ignored -- unless it is a list of keyward's objects, which kubectl
        // refuses and which, skipped, would read as people deleted.
        let mapping = match value {
            Value::Mapping(mapping) => mapping,
            Value::Sequence(items) => return self.bare_list(&items, line),
            _ => return,
        };
        match classify(&mapping) {
            Ok(Kind::Ignored) => {}
            Ok(Kind::List) => self.list(&document, &mapping, line),
            Ok(kind) => {
                if kind == Kind::MfaProvider {
                    self.note_default_mode(&mapping, line);
                }
                if self.check_fields(kind, &mapping, line) && self.check_scalar_types(kind, &mapping, line) {
                    let deserializer = serde_yaml::Deserializer::from_str(document.text);
                    match ObjectSeed(kind).deserialize(deserializer) {
                        Ok(Some(object)) => self.push(object, line),
                        Ok(None) => {}
                        Err(error) => self.deserialize_error(&error, &document, kind, &mapping, line, None),
                    }
                }
            }
            Err((field, message)) => {
                let at = self.outline.line(line, &[Step::Key(field)]);
                let who = label(kind_of(&mapping), &mapping, self.default_namespace);
                self.problem(at, format!("{who}: {message}"));
            }
        }
    }

    /// A document that is a YAML list holding keyward objects (or Secrets).
    fn bare_list(&mut self, items: &[Value], line: usize) {
        let ours = items.iter().find_map(|item| match item {
            Value::Mapping(item) => match classify(item) {
                Ok(Kind::Ignored | Kind::List) => None,
                Ok(kind) => Some(label(kind.name(), item, self.default_namespace)),
                Err(_) => Some(label(kind_of(item), item, self.default_namespace)),
            },
            _ => None,
        });
        if let Some(who) = ours {
            self.problem(
                line,
                format!(
                    "{who}: this document is a YAML list of objects, which is not a Kubernetes manifest (kubectl refuses it): separate the objects with `---`, or make it a `kind: List` with `items:`"
                ),
            );
        }
    }

    /// The API server reads YAML as JSON, where `name: 1234` is a number and `email: true` a
    /// boolean, and refuses them for string fields; serde_yaml would read both as text. The
    /// document as written is checked against the kind's schema for that alone (every other
    /// rule is `validate`'s, on the object as read). `true` if there is no such problem.
    fn check_scalar_types(&mut self, kind: Kind, mapping: &Mapping, line: usize) -> bool {
        let who = label(kind.name(), mapping, self.default_namespace);
        let mut clean = true;
        if let Some(Value::Mapping(metadata)) = mapping.get("metadata") {
            for field in ["name", "namespace"] {
                match metadata.get(field) {
                    None | Some(Value::String(_) | Value::Null) => {}
                    Some(other) => {
                        let at = self.outline.line(line, &[Step::Key("metadata"), Step::Key(field)]);
                        let shown = serde_json::to_string(other).unwrap_or_default();
                        self.problem(at, format!("{who}: metadata.{field}: {shown} is not a string (quote it)"));
                        clean = false;
                    }
                }
            }
        }
        // Most documents hold no number or boolean at all: no second schema pass for them.
        if !holds_number_or_bool(mapping.get("spec").unwrap_or(&Value::Null)) {
            return clean;
        }
        let Ok(raw) = serde_json::to_value(mapping) else { return clean };
        for violation in super::schema::check(kind.name(), &raw) {
            // Only a number or a boolean where text is due: a wrong structure (a list for a
            // string) is serde's to report, as it always was.
            let value = violation.path.iter().try_fold(&raw, |at, part| match part {
                super::schema::PathPart::Key(key) => at.get(key),
                super::schema::PathPart::Index(i) => at.get(i),
            });
            let scalar = value.is_some_and(|v| v.is_number() || v.is_boolean());
            if !scalar || !violation.message.contains("is not of type \"string\"") {
                continue;
            }
            let keys: Vec<&str> = violation
                .path
                .iter()
                .map_while(|part| match part {
                    super::schema::PathPart::Key(key) => Some(key.as_str()),
                    super::schema::PathPart::Index(_) => None,
                })
                .collect();
            let steps: Vec<Step<'_>> = keys.iter().map(|key| Step::Key(key)).collect();
            let at = self.outline.line(line, &steps);
            self.problem(at, format!("{who}: {}: {} (quote it)", violation.field(), violation.message));
            clean = false;
        }
        clean
    }

    /// `kind: List` (kubectl's form) and `kind: EmployeeList` and the like.
    fn list(&mut self, document: &Document<'_>, mapping: &Mapping, line: usize) {
        let items = match mapping.get("items") {
            None | Some(Value::Null) => return,
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                let at = self.outline.line(line, &[Step::Key("items")]);
                let who = label("List", mapping, self.default_namespace);
                self.problem(at, format!("{who}: items: must be a list"));
                return;
            }
        };
        let item_lines = self.outline.item_lines(line);
        let items_line = self.outline.line(line, &[Step::Key("items")]);
        let mut kinds = Vec::with_capacity(items.len());
        let mut lines = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_line =
                item_lines.get(i).copied().filter(|_| item_lines.len() == items.len()).unwrap_or(items_line);
            lines.push(item_line);
            let kind = match item {
                Value::Mapping(item) => match classify(item) {
                    Ok(Kind::List) => {
                        let who = label("List", item, self.default_namespace);
                        self.problem(item_line, format!("{who}: a List inside a List is not supported"));
                        Kind::Ignored
                    }
                    Ok(Kind::Ignored) => Kind::Ignored,
                    Ok(kind) if self.check_fields(kind, item, item_line) => kind,
                    Ok(_) => Kind::Ignored,
                    Err((field, message)) => {
                        let who = label(kind_of(item), item, self.default_namespace);
                        self.problem(self.outline.line(item_line, &[Step::Key(field)]), format!("{who}: {message}"));
                        Kind::Ignored
                    }
                },
                _ => Kind::Ignored,
            };
            kinds.push(kind);
        }
        // An error stops serde at the item it is in: report it, skip that item, read again.
        // Each pass skips one more item, so this ends.
        let current = Cell::new(0);
        for _ in 0..=kinds.len() {
            if !kinds.iter().any(|k| *k != Kind::Ignored) {
                return;
            }
            let deserializer = serde_yaml::Deserializer::from_str(document.text);
            match (ListSeed { kinds: &kinds, current: &current }).deserialize(deserializer) {
                Ok(objects) => {
                    for (object, line) in objects.into_iter().zip(&lines) {
                        if let Some(object) = object {
                            self.push(object, *line);
                        }
                    }
                    return;
                }
                Err(error) => {
                    let i = current.get();
                    let (Some(kind), Some(Value::Mapping(item))) = (kinds.get(i).copied(), items.get(i)) else {
                        self.problem(line, format!("invalid List: {}", describe(&error, document)));
                        return;
                    };
                    if kind == Kind::Ignored {
                        self.problem(line, format!("invalid List: {}", describe(&error, document)));
                        return;
                    }
                    let item_line = lines.get(i).copied().unwrap_or(line);
                    self.deserialize_error(&error, document, kind, item, item_line, Some(i));
                    kinds[i] = Kind::Ignored;
                }
            }
        }
    }

    /// Reports top-level and metadata fields the kind does not have; `true` if there are none.
    /// An MfaProvider without `spec.policy.mode` enforces: said, since a first rollout is
    /// meant to start in `Observe`.
    fn note_default_mode(&mut self, mapping: &Mapping, line: usize) {
        let mode = mapping.get("spec").and_then(|s| s.get("policy")).and_then(|p| p.get("mode"));
        if mode.is_none() {
            let who = label(Kind::MfaProvider.name(), mapping, self.default_namespace);
            let at = self.outline.line(line, &[Step::Key("spec")]);
            self.out.default_modes.push(Problem {
                file: self.file.to_path_buf(),
                line: at,
                message: format!(
                    "{who}: spec.policy.mode is not set, so it is Enforce: keyward revokes (set Observe to see the plan first)"
                ),
                severity: Severity::Note,
            });
        }
    }

    fn check_fields(&mut self, kind: Kind, mapping: &Mapping, line: usize) -> bool {
        let who = label(kind.name(), mapping, self.default_namespace);
        let mut clean = true;
        let unknown = |mapping: &Mapping, known: &[&str]| -> Vec<String> {
            mapping
                .keys()
                .filter(|k| k.as_str().is_none_or(|k| !known.contains(&k)))
                .map(|k| k.as_str().map_or_else(|| format!("{k:?}"), str::to_string))
                .collect()
        };
        for field in unknown(mapping, kind.fields()) {
            let at = self.outline.line(line, &[Step::Key(&field)]);
            self.problem(at, format!("{who}: unknown field `{field}`, expected one of {}", kind.fields().join(", ")));
            clean = false;
        }
        if let Some(Value::Mapping(metadata)) = mapping.get("metadata") {
            for field in unknown(metadata, METADATA_FIELDS) {
                let at = self.outline.line(line, &[Step::Key("metadata"), Step::Key(&field)]);
                self.problem(at, format!("{who}: metadata: unknown field `{field}`"));
                clean = false;
            }
        }
        clean
    }

    fn deserialize_error(
        &mut self,
        error: &serde_yaml::Error,
        document: &Document<'_>,
        kind: Kind,
        mapping: &Mapping,
        line: usize,
        item: Option<usize>,
    ) {
        let who = label(kind.name(), mapping, self.default_namespace);
        let mut message = describe(error, document);
        if let Some(i) = item {
            let prefix = format!("items[{i}]");
            if let Some(rest) = message.strip_prefix(&prefix) {
                message = rest.trim_start_matches('.').trim_start_matches(": ").to_string();
            }
        }
        let at = if message.contains("missing field") {
            // serde_yaml places a missing field at the start of the mapping's content (or past
            // the document); the parent field's key is where one would add it.
            match message.split_once(": missing field") {
                // In a list item, serde_yaml's location is the item's first line: good enough.
                Some((path, _)) if path.ends_with(']') => {
                    error.location().map_or(line, |l| document.file_line(l.line()))
                }
                Some((path, _)) => {
                    let keys: Vec<&str> = path.split('.').map(|k| k.split('[').next().unwrap_or(k)).collect();
                    let steps: Vec<Step<'_>> = keys.iter().map(|k| Step::Key(k)).collect();
                    self.outline.line(line, &steps)
                }
                None => line,
            }
        } else {
            error.location().map_or(line, |l| document.file_line(l.line()))
        };
        self.problem(at, format!("{who}: {message}"));
    }

    fn push(&mut self, object: Object, line: usize) {
        let source = Source { file: self.file.to_path_buf(), line };
        let namespace = self.default_namespace;
        match object {
            Object::Provider(mut object) => {
                default_namespace(&mut object.metadata, namespace);
                self.out.providers.push(Loaded { object: *object, source });
            }
            Object::Employee(mut object) => {
                default_namespace(&mut object.metadata, namespace);
                self.out.employees.push(Loaded { object, source });
            }
            Object::Grant(mut object) => {
                default_namespace(&mut object.metadata, namespace);
                self.out.grants.push(Loaded { object, source });
            }
            Object::Approval(mut object) => {
                default_namespace(&mut object.metadata, namespace);
                self.out.approvals.push(Loaded { object, source });
            }
            Object::Secret(mut object) => {
                default_namespace(&mut object.metadata, namespace);
                self.out.secrets.push(Loaded { object, source });
            }
        }
    }
}

fn holds_number_or_bool(value: &Value) -> bool {
    match value {
        Value::Number(_) | Value::Bool(_) => true,
        Value::Sequence(items) => items.iter().any(holds_number_or_bool),
        Value::Mapping(map) => map.values().any(holds_number_or_bool),
        Value::Tagged(tagged) => holds_number_or_bool(&tagged.value),
        Value::Null | Value::String(_) => false,
    }
}

fn default_namespace(metadata: &mut ObjectMeta, namespace: &str) {
    if metadata.namespace.as_deref().is_none_or(str::is_empty) {
        metadata.namespace = Some(namespace.to_string());
    }
}

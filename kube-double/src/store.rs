//! Object storage with one global, monotonically increasing resourceVersion, a bounded change
//! history for watches and consistent paged lists, and the write semantics of kube-apiserver's
//! generic registry (preconditions, generation, status subresource, finalizers, namespace and
//! CRD cleanup).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult, Cause};
use crate::patch::{self, Scope, Shape};
use crate::registry::{self, Conversion, ResourceType, Special};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};

/// Storage key of one object, shared by all versions of its group-resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change in the history.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub kind: EventType,
    pub key: Key,
    /// The object after the change (for a deletion: its last state, with the deletion's rv).
    pub object: Value,
    /// The object before the change.
    pub prev: Option<Value>,
}

/// `fieldValidation` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
    pub force: bool,
}

/// What a successful write produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    /// 201 for creations, 202 for a deletion left pending by finalizers, else 200.
    pub code: u16,
}

/// List and watch filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj["metadata"]["namespace"].as_str().unwrap_or_default() != ns
        {
            return false;
        }
        self.labels.matches(&obj["metadata"]["labels"]) && self.fields.matches(obj)
    }
}

/// How a list reads the store.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    pub filter: Filter,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub exact: bool,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Events for one watcher since its cursor, or Gone.
pub struct WatchBatch {
    pub events: Vec<(EventType, Value, u64)>,
    pub scanned_to: u64,
}

pub(crate) struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Change>,
    /// A watch or continue may resume from any rv >= this.
    compacted: u64,
    history_limit: usize,
    resources: Vec<Arc<ResourceType>>,
}

pub struct Store {
    state: Mutex<State>,
    changes: tokio::sync::watch::Sender<u64>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn new_uid() -> String {
    let x: u128 = rand::random();
    let h = format!("{x:032x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

const SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

fn name_errors(rt: &ResourceType, name: &str) -> Vec<Cause> {
    let label = rt.special == Special::Namespace;
    let (re, max, what, example) = if label {
        (LABEL, 63, "a lowercase RFC 1123 label", "'my-name',  or '123-abc'")
    } else {
        (SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain", "'example.com'")
    };
    let ok = regex::Regex::new(re).map(|r| r.is_match(name)).unwrap_or(true);
    let mut causes = vec![];
    if !ok {
        let chars = if label { "'-'" } else { "'-' or '.'" };
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!(
                "Invalid value: {name:?}: {what} must consist of lower case alphanumeric characters, {chars}, and must start and end with an alphanumeric character (e.g. {example}, regex used for validation is '{}')",
                re.trim_start_matches('^').trim_end_matches('$')
            ),
        ));
    } else if name.len() > max {
        causes.push(Cause::new(
            "FieldValueTooLong",
            "metadata.name",
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    causes
}

/// Everything but metadata (and status, when it is a subresource): what bumps generation.
fn spec_part(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if rt.status_subresource {
            m.remove("status");
        }
    }
    v
}

/// The object without the fields a no-op write may differ in.
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
    }
    v
}

fn managed_without_time(obj: &Value) -> Value {
    let mut entries = obj["metadata"]["managedFields"].clone();
    for e in entries.as_array_mut().into_iter().flatten() {
        if let Some(m) = e.as_object_mut() {
            m.remove("time");
        }
    }
    entries
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

/// Drops what Go's typed ObjectMeta omits when empty, as kube-apiserver's round trip through it
/// does (so `finalizers: []` is stored as no finalizers).
fn normalize_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty() || k == "name",
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        });
    }
}

/// Converts a stored object to the form of `rt` (its apiVersion, and Event field names).
pub fn to_version(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = match rt.conversion {
        Conversion::None => obj.clone(),
        Conversion::EventsV1 => core_event_to_v1(obj),
    };
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    out
}

/// Converts an object written through `rt` to its stored form.
fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    match rt.conversion {
        Conversion::None => obj,
        Conversion::EventsV1 => v1_event_to_core(&obj),
    }
}

const EVENT_RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn core_event_to_v1(obj: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        let name = EVENT_RENAMES.iter().find(|(c, _)| c == k).map(|(_, n)| *n).unwrap_or(k.as_str());
        out.insert(name.to_string(), v.clone());
    }
    Value::Object(out)
}

fn v1_event_to_core(obj: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        let name = EVENT_RENAMES.iter().find(|(_, n)| n == k).map(|(c, _)| *c).unwrap_or(k.as_str());
        out.insert(name.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

fn encode_continue(rv: u64, after: &Key) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}", after.namespace, after.name)});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (changes, _) = tokio::sync::watch::channel(0);
        let store = Self {
            state: Mutex::new(State {
                rv: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 0,
                history_limit: history_limit.max(1),
                resources: registry::builtins(),
            }),
            changes,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = store.resolve("", "v1", "namespaces");
            if let Some(rt) = rt {
                let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let _ = store.create(
                    &rt,
                    "",
                    body,
                    &WriteOpts { field_manager: "kube-apiserver".into(), ..Default::default() },
                );
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// All served resources.
    pub fn resources(&self) -> Vec<Arc<ResourceType>> {
        self.lock().resources.clone()
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock().resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    }

    /// Drops the change history: the next watch or continue from an older version gets 410.
    pub fn expire_history(&self) {
        let mut st = self.lock();
        st.history.clear();
        st.compacted = st.rv;
    }

    /// The stored object (storage form), for tests.
    pub fn peek(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let key =
            Key { group: group.into(), resource: resource.into(), namespace: namespace.into(), name: name.into() };
        self.lock().objects.get(&key).cloned()
    }

    fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            group: rt.storage_group.clone(),
            resource: rt.storage_resource.clone(),
            namespace: if rt.namespaced { namespace.to_string() } else { String::new() },
            name: name.to_string(),
        }
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<Value> {
        let st = self.lock();
        st.objects
            .get(&Self::key(rt, namespace, name))
            .map(|o| to_version(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    pub fn list(&self, rt: &ResourceType, opts: &ListOpts) -> ApiResult<Page> {
        let st = self.lock();
        let (snapshot_rv, start_after) = match &opts.continue_token {
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)?;
                if rv < st.compacted {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                (rv, Some((ns, name)))
            }
            None => {
                let requested = opts.resource_version.as_deref().filter(|v| !v.is_empty() && *v != "0");
                match requested {
                    Some(v) => {
                        let rv: u64 = v.parse().map_err(|_| {
                            ApiError::bad_request(format!("resourceVersion: Invalid value: {v:?}: must be an integer"))
                        })?;
                        if rv > st.rv {
                            let mut err = ApiError::new(
                                504,
                                "Timeout",
                                format!("Too large resource version: {rv}, current: {}", st.rv),
                            );
                            err.details = Some(crate::error::Details {
                                causes: vec![Cause::new("ResourceVersionTooLarge", "", "Too large resource version")],
                                ..Default::default()
                            });
                            err.retry_after = Some(1);
                            return Err(err);
                        }
                        if opts.exact {
                            if rv < st.compacted {
                                return Err(ApiError::gone(format!(
                                    "too old resource version: {rv} ({})",
                                    st.compacted
                                )));
                            }
                            (rv, None)
                        } else {
                            (st.rv, None)
                        }
                    }
                    None => (st.rv, None),
                }
            }
        };
        let gr = (rt.storage_group.clone(), rt.storage_resource.clone());
        let mut objects: BTreeMap<Key, Value> = st
            .objects
            .iter()
            .filter(|(k, _)| k.group == gr.0 && k.resource == gr.1)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if snapshot_rv < st.rv {
            // Undo the newer changes to see the store as it was at the snapshot.
            for change in st.history.iter().rev().take_while(|c| c.rv > snapshot_rv) {
                if change.key.group != gr.0 || change.key.resource != gr.1 {
                    continue;
                }
                match (&change.kind, &change.prev) {
                    (EventType::Added, _) | (_, None) => {
                        objects.remove(&change.key);
                    }
                    (_, Some(prev)) => {
                        objects.insert(change.key.clone(), prev.clone());
                    }
                }
            }
        }
        let mut matching: Vec<(Key, Value)> = objects
            .into_iter()
            .filter(|(k, _)| match &start_after {
                Some((ns, name)) => (&k.namespace, &k.name) > (ns, name),
                None => true,
            })
            .map(|(k, v)| (k, to_version(rt, &v)))
            .filter(|(_, v)| opts.filter.matches(v))
            .collect();
        let mut continue_token = None;
        let mut remaining = None;
        if let Some(limit) = opts.limit.filter(|l| *l > 0)
            && matching.len() > limit
        {
            let rest = matching.len() - limit;
            matching.truncate(limit);
            if let Some((last, _)) = matching.last() {
                continue_token = Some(encode_continue(snapshot_rv, last));
            }
            remaining = Some(rest);
        }
        Ok(Page {
            items: matching.into_iter().map(|(_, v)| v).collect(),
            resource_version: snapshot_rv,
            continue_token,
            remaining,
        })
    }

    /// Objects currently matching (for a watch's initial events) and the rv they are at.
    pub fn snapshot(&self, rt: &ResourceType, filter: &Filter) -> (Vec<Value>, u64) {
        let st = self.lock();
        let items = st
            .objects
            .iter()
            .filter(|(k, _)| k.group == rt.storage_group && k.resource == rt.storage_resource)
            .map(|(_, v)| to_version(rt, v))
            .filter(|v| filter.matches(v))
            .collect();
        (items, st.rv)
    }

    /// Changes after `since` that a watcher of `rt` with `filter` sees, or 410 Gone.
    pub fn changes_since(&self, rt: &ResourceType, filter: &Filter, since: u64) -> ApiResult<WatchBatch> {
        let st = self.lock();
        if since < st.compacted {
            return Err(ApiError::gone(format!("too old resource version: {since} ({})", st.compacted)));
        }
        let start = st.history.partition_point(|c| c.rv <= since);
        let mut events = vec![];
        for c in st.history.iter().skip(start) {
            if c.key.group != rt.storage_group || c.key.resource != rt.storage_resource {
                continue;
            }
            let new = to_version(rt, &c.object);
            let now_matches = filter.matches(&new);
            let was_matching = c.prev.as_ref().map(|p| filter.matches(&to_version(rt, p))).unwrap_or(false);
            let kind = match c.kind {
                EventType::Added if now_matches => Some(EventType::Added),
                EventType::Modified if now_matches && was_matching => Some(EventType::Modified),
                EventType::Modified if now_matches => Some(EventType::Added),
                EventType::Modified if was_matching => Some(EventType::Deleted),
                EventType::Deleted if now_matches || was_matching => Some(EventType::Deleted),
                _ => None,
            };
            if let Some(kind) = kind {
                events.push((kind, new, c.rv));
            }
        }
        Ok(WatchBatch { events, scanned_to: st.rv })
    }

    fn commit(&self, st: &mut State, kind: EventType, key: Key, mut object: Value, prev: Option<Value>) -> Value {
        st.rv += 1;
        let rv = st.rv;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(rv.to_string()));
        match kind {
            EventType::Deleted => {
                st.objects.remove(&key);
            }
            _ => {
                st.objects.insert(key.clone(), object.clone());
            }
        }
        let crd_changed = key.group == "apiextensions.k8s.io";
        st.history.push_back(Change { rv, kind, key, object: object.clone(), prev });
        while st.history.len() > st.history_limit {
            if let Some(c) = st.history.pop_front() {
                st.compacted = c.rv;
            }
        }
        if crd_changed {
            refresh_resources(st);
        }
        self.changes.send_replace(rv);
        object
    }

    // ---- writes ----------------------------------------------------------------------------

    pub fn create(&self, rt: &Arc<ResourceType>, namespace: &str, body: Value, opts: &WriteOpts) -> ApiResult<Written> {
        let mut st = self.lock();
        let out = self.create_locked(&mut st, rt, namespace, body, opts)?;
        self.settle(&mut st);
        Ok(out)
    }

    fn create_locked(
        &self,
        st: &mut State,
        rt: &Arc<ResourceType>,
        namespace: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Written> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        }
        check_type(rt, &obj)?;
        let mut warnings = unknown_metadata(&mut obj, opts, rt)?;
        let meta = meta_mut(&mut obj);
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(namespace));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        "",
                        vec![Cause::new(
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
            }
            meta.insert("name".into(), json!(name));
        }
        let causes = name_errors(rt, &name);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
        }
        if rt.namespaced {
            let ns_key = Key {
                group: String::new(),
                resource: "namespaces".into(),
                namespace: String::new(),
                name: namespace.to_string(),
            };
            match st.objects.get(&ns_key) {
                None => return Err(ApiError::not_found("", "namespaces", namespace)),
                Some(ns) if ns["metadata"].get("deletionTimestamp").is_some() => {
                    return Err(ApiError::forbidden(
                        &rt.group,
                        &rt.plural,
                        &name,
                        &format!(
                            "unable to create new content in namespace {namespace} because it is being terminated"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(crd) = &rt.crd {
            let crd_key = Key {
                group: "apiextensions.k8s.io".into(),
                resource: "customresourcedefinitions".into(),
                namespace: String::new(),
                name: crd.crd_name.clone(),
            };
            if st.objects.get(&crd_key).is_some_and(|c| c["metadata"].get("deletionTimestamp").is_some()) {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "create not allowed while custom resource definition is terminating",
                ));
            }
        }
        let key = Self::key(rt, namespace, &name);
        if st.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let now = now();
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("resourceVersion");
        meta.remove("selfLink");
        meta.remove("managedFields");
        if rt.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if rt.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        prepare_special(rt, &mut obj, None)?;
        normalize_metadata(&mut obj);
        warnings.extend(validate_schema(rt, &mut obj, None, opts)?);
        patch::record_update(
            &json!({}),
            &mut obj,
            &opts.field_manager,
            &rt.api_version(),
            "",
            shape(rt),
            Scope::All,
            &now,
        );
        let stored = to_storage(rt, obj);
        if opts.dry_run {
            return Ok(Written { object: to_version(rt, &stored), warnings, code: 201 });
        }
        let committed = self.commit(st, EventType::Added, key, stored, None);
        Ok(Written { object: to_version(rt, &committed), warnings, code: 201 })
    }

    /// PUT. `subresource` is "" or "status".
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        subresource: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Written> {
        let mut st = self.lock();
        let key = Self::key(rt, namespace, name);
        let Some(old) = st.objects.get(&key).map(|o| to_version(rt, o)) else {
            if rt.create_on_update && subresource.is_empty() {
                let out = self.create_locked(&mut st, rt, namespace, body, opts)?;
                self.settle(&mut st);
                return Ok(out);
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if !body.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        }
        check_type(rt, &body)?;
        let body_name = body["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let out = self.update_locked(&mut st, rt, key, old, body, subresource, opts, None)?;
        self.settle(&mut st);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_locked(
        &self,
        st: &mut State,
        rt: &Arc<ResourceType>,
        key: Key,
        old: Value,
        mut new: Value,
        subresource: &str,
        opts: &WriteOpts,
        applied: Option<Value>,
    ) -> ApiResult<Written> {
        let name = key.name.clone();
        // Precondition: a resourceVersion in the body must be the current one.
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty())
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &name));
        }
        let mut warnings = if applied.is_none() { unknown_metadata(&mut new, opts, rt)? } else { vec![] };
        if subresource == "status" {
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            if let Some(m) = merged.as_object_mut() {
                match status {
                    Some(s) => {
                        m.insert("status".into(), s);
                    }
                    None => {
                        m.remove("status");
                    }
                }
            }
            // Status writes may still carry metadata kube-apiserver accepts there? No: only status.
            new = merged;
        } else if rt.status_subresource
            && let Some(m) = new.as_object_mut()
        {
            match old.get("status") {
                Some(s) => {
                    m.insert("status".into(), s.clone());
                }
                None => {
                    m.remove("status");
                }
            }
        }
        {
            let old_meta = old["metadata"].clone();
            let meta = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            meta.insert("resourceVersion".into(), old_meta["resourceVersion"].clone());
            meta.remove("selfLink");
            if subresource.is_empty() {
                // Clients cannot write managedFields away; keep ours.
                match old_meta.get("managedFields") {
                    Some(v) => meta.insert("managedFields".into(), v.clone()),
                    None => meta.remove("managedFields"),
                };
            }
        }
        if old["metadata"].get("deletionTimestamp").is_some() {
            let before = finalizers(&old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    vec![Cause::new(
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
        prepare_special(rt, &mut new, Some(&old))?;
        normalize_metadata(&mut new);
        warnings.extend(validate_schema(rt, &mut new, Some(&old), opts)?);
        if rt.generation && spec_part(rt, &new) != spec_part(rt, &old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        if comparable(&new) == comparable(&old) && applied.is_none() {
            return Ok(Written { object: old, warnings, code: 200 });
        }
        let now = now();
        let scope = if subresource == "status" {
            Scope::StatusOnly
        } else if rt.status_subresource {
            Scope::MainSkippingStatus
        } else {
            Scope::All
        };
        match &applied {
            Some(after_apply) => {
                // Server-side apply computed managedFields already.
                meta_mut(&mut new).insert("managedFields".into(), after_apply["metadata"]["managedFields"].clone());
                // An apply that changes neither the object nor who owns what writes nothing
                // (its timestamp alone does not count).
                if comparable(&new) == comparable(&old) && managed_without_time(&new) == managed_without_time(&old) {
                    return Ok(Written { object: old, warnings, code: 200 });
                }
            }
            None => patch::record_update(
                &old,
                &mut new,
                &opts.field_manager,
                &rt.api_version(),
                subresource,
                shape(rt),
                scope,
                &now,
            ),
        }
        if comparable(&new) == comparable(&old) && new["metadata"]["managedFields"] == old["metadata"]["managedFields"]
        {
            return Ok(Written { object: old, warnings, code: 200 });
        }
        let stored = to_storage(rt, new);
        let deleting = stored["metadata"].get("deletionTimestamp").is_some() && finalizers(&stored).is_empty();
        if opts.dry_run {
            return Ok(Written { object: to_version(rt, &stored), warnings, code: 200 });
        }
        let prev = st.objects.get(&key).cloned();
        let kind = if deleting { EventType::Deleted } else { EventType::Modified };
        let committed = self.commit(st, kind, key, stored, prev);
        Ok(Written { object: to_version(rt, &committed), warnings, code: 200 })
    }

    /// PATCH with one of the four patch types.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        subresource: &str,
        content_type: &str,
        body: &[u8],
        opts: &WriteOpts,
    ) -> ApiResult<Written> {
        let parse_json = || -> ApiResult<Value> {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        let mut st = self.lock();
        let key = Self::key(rt, namespace, name);
        let current = st.objects.get(&key).map(|o| to_version(rt, o));
        let (cur, mut target) = match content_type {
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                let applied: Value = serde_yaml::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                if opts.field_manager.is_empty() {
                    return Err(ApiError::bad_request("PATCH /... fieldManager is required for apply requests"));
                }
                check_type(rt, &applied)?;
                let applied_name = applied["metadata"]["name"].as_str().unwrap_or_default();
                if applied_name != name {
                    return Err(ApiError::bad_request(format!(
                        "metadata.name: Invalid value: {applied_name:?}: the name of the object does not match the name on the URL ({name})"
                    )));
                }
                let scope = if subresource == "status" {
                    Scope::StatusOnly
                } else if rt.status_subresource {
                    Scope::MainSkippingStatus
                } else {
                    Scope::All
                };
                let now = now();
                match current {
                    None if subresource.is_empty() => {
                        let mut obj = patch::server_side_apply(
                            &json!({}),
                            &applied,
                            &opts.field_manager,
                            opts.force,
                            &rt.api_version(),
                            "",
                            shape(rt),
                            Scope::All,
                            &now,
                        )?;
                        if let Some(m) = obj.as_object_mut() {
                            m.insert("apiVersion".into(), json!(rt.api_version()));
                            m.insert("kind".into(), json!(rt.kind));
                        }
                        let meta = meta_mut(&mut obj);
                        meta.insert("name".into(), json!(name));
                        if let Some(ns) = applied["metadata"].get("namespace") {
                            meta.insert("namespace".into(), ns.clone());
                        }
                        let managed = obj["metadata"]["managedFields"].clone();
                        let mut written = self.create_locked(&mut st, rt, namespace, obj, opts)?;
                        // Creation through apply is owned by the applier, not recorded as Update.
                        if !opts.dry_run
                            && let Some(stored) = st.objects.get_mut(&key)
                        {
                            meta_mut(stored).insert("managedFields".into(), managed.clone());
                            if let Some(last) = st.history.back_mut() {
                                meta_mut(&mut last.object).insert("managedFields".into(), managed.clone());
                            }
                        }
                        meta_mut(&mut written.object).insert("managedFields".into(), managed);
                        self.settle(&mut st);
                        return Ok(written);
                    }
                    None => return Err(ApiError::not_found(&rt.group, &rt.plural, name)),
                    Some(cur) => {
                        let obj = patch::server_side_apply(
                            &cur,
                            &applied,
                            &opts.field_manager,
                            opts.force,
                            &rt.api_version(),
                            subresource,
                            shape(rt),
                            scope,
                            &now,
                        )?;
                        let out =
                            self.update_locked(&mut st, rt, key, cur, obj.clone(), subresource, opts, Some(obj))?;
                        self.settle(&mut st);
                        return Ok(out);
                    }
                }
            }
            _ => {
                let Some(cur) = current else { return Err(ApiError::not_found(&rt.group, &rt.plural, name)) };
                let mut target = cur.clone();
                match content_type {
                    "application/merge-patch+json" => patch::merge_patch(&mut target, &parse_json()?),
                    "application/json-patch+json" => patch::json_patch(&mut target, &parse_json()?)?,
                    "application/strategic-merge-patch+json" => {
                        if rt.crd.is_some() {
                            return Err(ApiError::unsupported_media_type(false));
                        }
                        patch::strategic_merge_patch(&mut target, &parse_json()?)?
                    }
                    _ => return Err(ApiError::unsupported_media_type(rt.crd.is_none())),
                }
                if target["metadata"]["name"].as_str() != Some(name) {
                    return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
                }
                (cur, target)
            }
        };
        // A resourceVersion in the patch is a precondition; otherwise patches apply to the latest.
        if target["metadata"]["resourceVersion"] == cur["metadata"]["resourceVersion"] {
            meta_mut(&mut target).remove("resourceVersion");
        }
        let out = self.update_locked(&mut st, rt, key, cur, target, subresource, opts, None)?;
        self.settle(&mut st);
        Ok(out)
    }

    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        preconditions: &Value,
        dry_run: bool,
    ) -> ApiResult<Written> {
        let mut st = self.lock();
        let out = self.delete_locked(&mut st, rt, namespace, name, preconditions, dry_run)?;
        self.settle(&mut st);
        Ok(out)
    }

    fn delete_locked(
        &self,
        st: &mut State,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        preconditions: &Value,
        dry_run: bool,
    ) -> ApiResult<Written> {
        let key = Self::key(rt, namespace, name);
        let Some(stored) = st.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        // A real API server words both failures the same way.
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(wanted) = preconditions[field].as_str()
                && Some(wanted) != stored["metadata"][field].as_str()
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {}",
                        stored["metadata"][field].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        let mut obj = stored.clone();
        let needs_cleanup = matches!(rt.special, Special::Namespace | Special::Crd);
        if stored["metadata"].get("deletionTimestamp").is_some() {
            return Ok(Written { object: to_version(rt, &stored), warnings: vec![], code: 202 });
        }
        if finalizers(&obj).is_empty() && !needs_cleanup {
            if dry_run {
                return Ok(Written { object: to_version(rt, &obj), warnings: vec![], code: 200 });
            }
            let committed = self.commit(st, EventType::Deleted, key, obj, Some(stored));
            return Ok(Written { object: to_version(rt, &committed), warnings: vec![], code: 200 });
        }
        let meta = meta_mut(&mut obj);
        meta.insert("deletionTimestamp".into(), json!(now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if let Some(g) = meta.get("generation").and_then(Value::as_i64) {
            meta.insert("generation".into(), json!(g + 1));
        }
        match rt.special {
            Special::Namespace => {
                obj["status"]["phase"] = json!("Terminating");
            }
            Special::Crd => {
                if let Some(conds) = obj["status"]["conditions"].as_array_mut() {
                    conds.retain(|c| c["type"] != "Terminating");
                    conds.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                        "message": "CustomResource deletion is in progress", "lastTransitionTime": now()}));
                }
            }
            _ => {}
        }
        if dry_run {
            return Ok(Written { object: to_version(rt, &obj), warnings: vec![], code: 202 });
        }
        let committed = self.commit(st, EventType::Modified, key, obj, Some(stored));
        // Namespaces and CRDs delete what they contain (finalizers still hold those back).
        match rt.special {
            Special::Namespace => {
                let inside: Vec<Key> = st.objects.keys().filter(|k| k.namespace == name).cloned().collect();
                for k in inside {
                    if let Some(child_rt) = storage_resource(st, &k) {
                        let _ = self.delete_locked(st, &child_rt, &k.namespace, &k.name, &Value::Null, false);
                    }
                }
            }
            Special::Crd => {
                let (group, plural) = crd_group_plural(&committed);
                let inside: Vec<Key> =
                    st.objects.keys().filter(|k| k.group == group && k.resource == plural).cloned().collect();
                for k in inside {
                    if let Some(child_rt) = storage_resource(st, &k) {
                        let _ = self.delete_locked(st, &child_rt, &k.namespace, &k.name, &Value::Null, false);
                    }
                }
            }
            _ => {}
        }
        Ok(Written { object: to_version(rt, &committed), warnings: vec![], code: 202 })
    }

    pub fn delete_collection(&self, rt: &Arc<ResourceType>, filter: &Filter, dry_run: bool) -> ApiResult<Vec<Value>> {
        let mut st = self.lock();
        let keys: Vec<Key> = st
            .objects
            .iter()
            .filter(|(k, v)| {
                k.group == rt.storage_group && k.resource == rt.storage_resource && filter.matches(&to_version(rt, v))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = vec![];
        for k in keys {
            if let Ok(w) = self.delete_locked(&mut st, rt, &k.namespace, &k.name, &Value::Null, dry_run) {
                out.push(w.object);
            }
        }
        self.settle(&mut st);
        Ok(out)
    }

    /// Finishes terminating namespaces and CRDs once nothing they contain remains.
    fn settle(&self, st: &mut State) {
        const SYSTEM: [&str; 2] = ["kubernetes", "customresourcecleanup.apiextensions.k8s.io"];
        loop {
            let candidates: Vec<(Key, Value)> = st
                .objects
                .iter()
                .filter(|(k, v)| {
                    if v["metadata"].get("deletionTimestamp").is_none() {
                        return false;
                    }
                    if k.group.is_empty() && k.resource == "namespaces" {
                        !st.objects.keys().any(|c| c.namespace == k.name)
                    } else if k.group == "apiextensions.k8s.io" {
                        let (group, plural) = crd_group_plural(v);
                        !st.objects.keys().any(|c| c.group == group && c.resource == plural)
                    } else {
                        false
                    }
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut progressed = false;
            for (key, obj) in candidates {
                let mut next = obj.clone();
                if let Some(f) = next["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| !x.as_str().is_some_and(|s| SYSTEM.contains(&s)));
                }
                if let Some(f) = next["spec"]["finalizers"].as_array_mut() {
                    f.retain(|x| x.as_str() != Some("kubernetes"));
                }
                let kind = if finalizers(&next).is_empty() { EventType::Deleted } else { EventType::Modified };
                if kind == EventType::Modified && comparable(&next) == comparable(&obj) {
                    // Held by a user finalizer.
                    continue;
                }
                self.commit(st, kind, key, next, Some(obj));
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }
}

fn crd_group_plural(crd: &Value) -> (String, String) {
    (
        crd["spec"]["group"].as_str().unwrap_or_default().to_string(),
        crd["spec"]["names"]["plural"].as_str().unwrap_or_default().to_string(),
    )
}

/// A resource type that stores `key` (the storage version for CRDs).
fn storage_resource(st: &State, key: &Key) -> Option<Arc<ResourceType>> {
    let mut candidates = st.resources.iter().filter(|r| {
        r.storage_group == key.group && r.storage_resource == key.resource && r.conversion == Conversion::None
    });
    let first = candidates.next()?.clone();
    Some(
        std::iter::once(first.clone())
            .chain(candidates.cloned())
            .find(|r| r.crd.as_ref().is_some_and(|c| c.storage))
            .unwrap_or(first),
    )
}

fn refresh_resources(st: &mut State) {
    let mut resources = registry::builtins();
    for (k, v) in &st.objects {
        if k.group == "apiextensions.k8s.io" && k.resource == "customresourcedefinitions" {
            resources.extend(registry::from_crd(v));
        }
    }
    st.resources = resources;
}

fn shape(rt: &ResourceType) -> Shape<'_> {
    match rt.crd.as_ref().and_then(|c| c.schema.as_ref()) {
        Some(s) => Shape::Schema(s),
        None => Shape::Builtin,
    }
}

/// The body's apiVersion and kind, when set, must be the resource's.
fn check_type(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    if (!kind.is_empty() && kind != rt.kind) || (!api_version.is_empty() && api_version != rt.api_version()) {
        // events.k8s.io and core Events share storage but not their wire form.
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    Ok(())
}

fn unknown_metadata(obj: &mut Value, opts: &WriteOpts, rt: &ResourceType) -> ApiResult<Vec<String>> {
    let unknown = schema::prune_metadata(obj);
    unknown_fields_outcome(unknown, opts, rt)
}

fn unknown_fields_outcome(unknown: Vec<String>, opts: &WriteOpts, rt: &ResourceType) -> ApiResult<Vec<String>> {
    if unknown.is_empty() {
        return Ok(vec![]);
    }
    let msgs: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    match opts.field_validation {
        FieldValidation::Ignore => Ok(vec![]),
        FieldValidation::Warn => Ok(msgs),
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            rt.kind,
            rt.version,
            rt.kind,
            msgs.join(", ")
        ))),
    }
}

/// Prune, default and validate a custom resource against its CRD version's schema.
fn validate_schema(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    opts: &WriteOpts,
) -> ApiResult<Vec<String>> {
    let Some(schema) = rt.crd.as_ref().and_then(|c| c.schema.as_ref()) else { return Ok(vec![]) };
    let unknown = schema::prune_and_default(schema, obj);
    let warnings = unknown_fields_outcome(unknown, opts, rt)?;
    let mut old_pruned = old.cloned();
    if let Some(o) = old_pruned.as_mut() {
        schema::prune_and_default(schema, o);
    }
    let causes = schema::validate(schema, obj, old_pruned.as_ref());
    if !causes.is_empty() {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        return Err(ApiError::invalid(&rt.group, &rt.kind, name, causes));
    }
    Ok(warnings)
}

/// Kind-specific defaulting and validation of built-in kinds.
fn prepare_special(rt: &ResourceType, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    match rt.special {
        Special::Namespace => {
            let labels = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("labels").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut);
            if let Some(labels) = labels {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if old.is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
        }
        Special::Secret => {
            if let Some(string_data) = obj.get("stringData").and_then(Value::as_object).cloned() {
                let data = obj
                    .as_object_mut()
                    .map(|m| m.entry("data").or_insert_with(|| json!({})))
                    .and_then(Value::as_object_mut);
                if let Some(data) = data {
                    for (k, v) in string_data {
                        let s = v.as_str().unwrap_or_default();
                        data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
                    }
                }
            }
            if let Some(m) = obj.as_object_mut() {
                m.remove("stringData");
                m.entry("type").or_insert_with(|| json!("Opaque"));
            }
            let mut causes = vec![];
            for (k, v) in obj["data"].as_object().into_iter().flatten() {
                let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
                if !ok {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        &format!("data[{k}]"),
                        "Invalid value: illegal base64 data",
                    ));
                }
            }
            if let Some(old) = old
                && old["type"] != obj["type"]
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "type",
                    format!("Invalid value: {}: field is immutable", obj["type"]),
                ));
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
            }
        }
        Special::Crd => prepare_crd(rt, obj, &name)?,
        Special::Event | Special::Review | Special::None => {}
    }
    Ok(())
}

fn prepare_crd(rt: &ResourceType, obj: &mut Value, name: &str) -> ApiResult<()> {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let mut causes = vec![];
    if group.is_empty() {
        causes.push(Cause::new("FieldValueRequired", "spec.group", "Required value"));
    }
    if plural.is_empty() {
        causes.push(Cause::new("FieldValueRequired", "spec.names.plural", "Required value"));
    }
    if spec["names"]["kind"].as_str().unwrap_or_default().is_empty() {
        causes.push(Cause::new("FieldValueRequired", "spec.names.kind", "Required value"));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version",
        ));
    }
    let storage: Vec<&Value> = versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).collect();
    if !versions.is_empty() && storage.len() != 1 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            format!("Invalid value: {:?}: must have exactly one version marked as storage version", versions),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            "Unsupported value: \"\": supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&rt.group, &rt.kind, name, causes));
    }
    let storage_version = storage.first().and_then(|v| v["name"].as_str()).unwrap_or_default().to_string();
    let mut names = spec["names"].clone();
    if names.get("singular").is_none() {
        names["singular"] = json!(spec["names"]["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{}List", spec["names"]["kind"].as_str().unwrap_or_default()));
    }
    let terminating = obj["metadata"].get("deletionTimestamp").is_some();
    let old_status = obj["status"].clone();
    let mut stored: Vec<Value> = old_status["storedVersions"].as_array().cloned().unwrap_or_default();
    if !stored.contains(&json!(storage_version)) {
        stored.push(json!(storage_version));
    }
    let since = |t: &str| -> String {
        old_status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["type"] == t))
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(now)
    };
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
            "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")}),
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted", "lastTransitionTime": since("Established")}),
    ];
    if terminating {
        conditions.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress", "lastTransitionTime": since("Terminating")}));
    }
    obj["status"] = json!({"acceptedNames": names, "conditions": conditions, "storedVersions": stored});
    // kube-apiserver adds this finalizer so the CRD outlives its instances.
    let fins = obj["metadata"]
        .as_object_mut()
        .map(|m| m.entry("finalizers").or_insert_with(|| json!([])))
        .and_then(Value::as_array_mut);
    if let Some(f) = fins
        && !terminating
        && !f.contains(&json!("customresourcecleanup.apiextensions.k8s.io"))
    {
        f.push(json!("customresourcecleanup.apiextensions.k8s.io"));
    }
    Ok(())
}

//! The HTTP front: routing Kubernetes API paths to the store, content negotiation (JSON,
//! Tables, aggregated discovery), watch streams, fault injection and the request log.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::faults::{Faults, RecordedRequest};
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{FieldValidation, Filter, ListOpts, Store, WriteOpts};
use crate::table::{self, IncludeObject};

pub type Body = BoxBody<Bytes, Infallible>;

pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub host: String,
    pub bookmark_interval: Duration,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    fn record(&self, r: RecordedRequest) {
        match self.requests.lock() {
            Ok(mut g) => g.push(r),
            Err(p) => p.into_inner().push(r),
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, v: &Value, content_type: &str, warnings: &[String]) -> Response<Body> {
    let mut builder = Response::builder()
        .status(code)
        .header("Content-Type", content_type)
        .header("Cache-Control", "no-cache, private");
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        builder = builder.header("Warning", format!("299 - \"{escaped}\""));
    }
    let body = serde_json::to_vec(v).unwrap_or_default();
    builder.body(full(body)).unwrap_or_else(|_| Response::new(full("")))
}

fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = json_response(err.code, &err.to_status(), "application/json", &[]);
    if let Some(secs) = err.retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        resp.headers_mut().insert("Retry-After", v);
    }
    resp
}

/// What a request addresses.
#[derive(Debug, Clone, Default)]
struct Target {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: String,
    legacy_watch: bool,
}

fn parse_target(store: &Store, path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, mut rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest.to_vec()),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest.to_vec()),
        _ => return None,
    };
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        legacy_watch = true;
        rest.remove(0);
    }
    if rest.is_empty() {
        return None;
    }
    let s = |i: usize| rest.get(i).map(|x| x.to_string());
    if rest[0] == "namespaces" && rest.len() >= 3 {
        let namespaced = store.resolve(&group, &version, rest[2]).is_some_and(|r| r.namespaced);
        if namespaced {
            return Some(Target {
                group,
                version,
                plural: rest[2].to_string(),
                namespace: s(1),
                name: s(3),
                subresource: s(4).unwrap_or_default(),
                legacy_watch,
            });
        }
    }
    Some(Target {
        group,
        version,
        plural: rest[0].to_string(),
        namespace: None,
        name: s(1),
        subresource: s(2).unwrap_or_default(),
        legacy_watch,
    })
}

fn verb_of(method: &str, target: &Target, query: &HashMap<String, String>) -> &'static str {
    let watch = target.legacy_watch || matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    match (method, target.name.is_some()) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or_default().to_string();
    let query: HashMap<String, String> = form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let accept = header("accept");
    let content_type = header("content-type");
    let user_agent = header("user-agent");

    if path.starts_with("/_double/") {
        let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        return Ok(admin(&shared, &method, &path, &body));
    }

    let target = parse_target(&shared.store, &path);
    let verb = match &target {
        Some(t) => verb_of(&method, t, &query),
        None => match method.as_str() {
            "GET" => "get",
            "POST" => "post",
            "PUT" => "put",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "unknown",
        },
    };
    let mut record = RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: raw_query.clone(),
        verb: verb.to_string(),
        api_group: target.as_ref().map(|t| t.group.clone()).unwrap_or_default(),
        api_version: target.as_ref().map(|t| t.version.clone()).unwrap_or_default(),
        resource: target.as_ref().map(|t| t.plural.clone()).unwrap_or_default(),
        subresource: target.as_ref().map(|t| t.subresource.clone()).unwrap_or_default(),
        namespace: target.as_ref().and_then(|t| t.namespace.clone()).unwrap_or_default(),
        name: target.as_ref().and_then(|t| t.name.clone()).unwrap_or_default(),
        user_agent: user_agent.clone(),
        content_type: content_type.clone(),
        status: 0,
    };
    if let Some(t) = &target
        && t.plural == "namespaces"
        && t.group.is_empty()
        && record.namespace.is_empty()
    {
        // A namespace is its own "namespace" for RBAC purposes.
        record.namespace = t.name.clone().unwrap_or_default();
    }

    if let Some(d) = shared.faults.delay_for(&method, verb, &path) {
        tokio::time::sleep(d).await;
    }
    if let Some(code) = shared.faults.take_failure(&method, verb, &path) {
        let err = ApiError::for_status(code, &format!("injected fault: {code} for {method} {path}"));
        if verb == "watch" && code == 410 {
            // kube-apiserver reports an expired watch position inside the stream: 200, then
            // an ERROR event carrying the 410 Status (what kube-rs's watcher re-lists on).
            record.status = 200;
            shared.record(record);
            let body = http_body_util::Full::new(watch_event("ERROR", err.to_status())).boxed();
            let resp = Response::builder().status(200).header("Content-Type", "application/json").body(body);
            return Ok(resp.unwrap_or_else(|_| Response::new(full(""))));
        }
        record.status = code;
        shared.record(record);
        return Ok(error_response(&err));
    }

    let body = match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let ctx = Ctx { accept, content_type, user_agent, query, method, path };
    let response = match target {
        Some(t) => resource_request(&shared, &ctx, t, verb, &body).await,
        None => non_resource(&shared, &ctx),
    };
    let response = response.unwrap_or_else(|e| error_response(&e));
    record.status = response.status().as_u16();
    shared.record(record);
    Ok(response)
}

struct Ctx {
    accept: String,
    content_type: String,
    user_agent: String,
    query: HashMap<String, String>,
    method: String,
    path: String,
}

impl Ctx {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    fn wants_table(&self) -> bool {
        self.accept.split(',').any(|p| p.contains("as=Table"))
    }

    /// `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`, as kube-rs's
    /// metadata API and metadata_watcher send it.
    fn wants_metadata(&self) -> bool {
        self.accept.split(',').any(|p| p.contains("as=PartialObjectMetadata"))
    }

    fn write_opts(&self) -> WriteOpts {
        let manager = match self.q("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => self.user_agent.split('/').next().unwrap_or_default().to_string(),
        };
        let field_validation = match self.q("fieldValidation") {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        };
        WriteOpts {
            dry_run: self.q("dryRun").is_some_and(|v| v == "All"),
            field_manager: if self.content_type.starts_with("application/apply-patch") {
                self.q("fieldManager").unwrap_or_default().to_string()
            } else {
                manager
            },
            field_validation,
            force: self.q("force").is_some_and(|v| v == "true" || v == "1"),
        }
    }

    fn filter(&self, namespace: Option<String>) -> ApiResult<Filter> {
        Ok(Filter {
            namespace,
            labels: LabelSelector::parse(self.q("labelSelector").unwrap_or_default())?,
            fields: FieldSelector::parse(self.q("fieldSelector").unwrap_or_default())?,
        })
    }
}

fn non_resource(shared: &Shared, ctx: &Ctx) -> ApiResult<Response<Body>> {
    if ctx.method != "GET" {
        return Err(ApiError::method_not_allowed());
    }
    let resources = shared.store.resources();
    let ok = |v: Value| Ok(json_response(200, &v, "application/json", &[]));
    let path = ctx.path.trim_end_matches('/');
    match path {
        "/version" => ok(discovery::version()),
        "/healthz" | "/readyz" | "/livez" => Ok(Response::builder()
            .status(200)
            .header("Content-Type", "text/plain")
            .body(full("ok"))
            .unwrap_or_else(|_| Response::new(full("ok")))),
        "/api" if discovery::wants_aggregated(&ctx.accept) => {
            Ok(json_response(200, &discovery::aggregated(&resources, true), discovery::AGGREGATED_CONTENT_TYPE, &[]))
        }
        "/apis" if discovery::wants_aggregated(&ctx.accept) => {
            Ok(json_response(200, &discovery::aggregated(&resources, false), discovery::AGGREGATED_CONTENT_TYPE, &[]))
        }
        "/api" => ok(discovery::api_versions(&shared.host)),
        "/apis" => ok(discovery::api_group_list(&resources)),
        "/openapi/v3" => ok(discovery::openapi_index(&resources)),
        _ => {
            if let Some(rest) = path.strip_prefix("/openapi/v3/") {
                return discovery::openapi_document(&resources, rest)
                    .map(|d| json_response(200, &d, "application/json", &[]))
                    .ok_or_else(ApiError::not_found_path);
            }
            let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
            match segs.as_slice() {
                ["api", v] => discovery::resource_list(&resources, "", v)
                    .map(|d| json_response(200, &d, "application/json", &[]))
                    .ok_or_else(ApiError::not_found_path),
                ["apis", g] => discovery::api_group(&resources, g)
                    .map(|d| json_response(200, &d, "application/json", &[]))
                    .ok_or_else(ApiError::not_found_path),
                ["apis", g, v] => discovery::resource_list(&resources, g, v)
                    .map(|d| json_response(200, &d, "application/json", &[]))
                    .ok_or_else(ApiError::not_found_path),
                _ => Err(ApiError::not_found_path()),
            }
        }
    }
}

fn parse_body(ctx: &Ctx, body: &[u8]) -> ApiResult<Value> {
    if ctx.content_type.contains("protobuf") {
        return crate::proto::decode(body);
    }
    if ctx.content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(true));
    }
    if ctx.content_type.contains("yaml") {
        return serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}")))
}

fn list_json(rt: &ResourceType, items: Vec<Value>, rv: u64, cont: Option<String>, remaining: Option<usize>) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": meta, "items": items})
}

async fn resource_request(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    t: Target,
    verb: &str,
    body: &[u8],
) -> ApiResult<Response<Body>> {
    let store = &shared.store;
    let rt = store.resolve(&t.group, &t.version, &t.plural).ok_or_else(ApiError::not_found_path)?;
    if !rt.namespaced && t.namespace.is_some() {
        return Err(ApiError::not_found_path());
    }
    if !(t.subresource.is_empty() || t.subresource == "status" && rt.status_subresource) {
        return Err(ApiError::not_found_path());
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let ok = |code: u16, v: &Value, warnings: &[String]| Ok(json_response(code, v, "application/json", warnings));
    let include = IncludeObject::parse(ctx.q("includeObject"));
    if rt.special == crate::registry::Special::Review {
        return match verb {
            "create" => ok(201, &review(&rt, ctx, body), &[]),
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    match verb {
        "get" => {
            let obj = store.get(&rt, &ns, t.name.as_deref().unwrap_or_default())?;
            if ctx.wants_table() {
                let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                return ok(200, &table::table(&rt, &[obj], meta, include), &[]);
            }
            if ctx.wants_metadata() {
                return ok(200, &partial_metadata(&obj), &[]);
            }
            ok(200, &obj, &[])
        }
        "list" => {
            let opts = ListOpts {
                filter: ctx.filter(t.namespace.clone())?,
                limit: ctx.q("limit").and_then(|l| l.parse().ok()),
                continue_token: ctx.q("continue").filter(|c| !c.is_empty()).map(str::to_string),
                resource_version: ctx.q("resourceVersion").map(str::to_string),
                exact: ctx.q("resourceVersionMatch") == Some("Exact"),
            };
            let page = store.list(&rt, &opts)?;
            if ctx.wants_table() {
                let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
                if let Some(c) = &page.continue_token {
                    meta["continue"] = json!(c);
                }
                if let Some(r) = page.remaining {
                    meta["remainingItemCount"] = json!(r);
                }
                return ok(200, &table::table(&rt, &page.items, meta, include), &[]);
            }
            let mut list = list_json(&rt, page.items, page.resource_version, page.continue_token, page.remaining);
            if ctx.wants_metadata() {
                list["kind"] = json!("PartialObjectMetadataList");
                list["apiVersion"] = json!("meta.k8s.io/v1");
                if let Some(items) = list["items"].as_array_mut() {
                    for item in items.iter_mut() {
                        *item = partial_metadata(item);
                    }
                }
            }
            ok(200, &list, &[])
        }
        "watch" => {
            let mut filter = ctx.filter(t.namespace.clone())?;
            if let Some(name) = &t.name {
                let sel = format!("metadata.name={name}");
                filter.fields = FieldSelector::parse(&sel)?;
            }
            watch(shared.clone(), rt, filter, ctx)
        }
        "create" => {
            if t.name.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            if rt.namespaced && t.namespace.is_none() {
                return Err(ApiError::not_found_path());
            }
            let obj = parse_body(ctx, body)?;
            let w = store.create(&rt, &ns, obj, &ctx.write_opts())?;
            ok(w.code, &w.object, &w.warnings)
        }
        "update" => {
            let name = t.name.as_deref().ok_or_else(ApiError::method_not_allowed)?;
            let obj = parse_body(ctx, body)?;
            let w = store.update(&rt, &ns, name, &t.subresource, obj, &ctx.write_opts())?;
            ok(w.code, &w.object, &w.warnings)
        }
        "patch" => {
            let name = t.name.as_deref().ok_or_else(ApiError::method_not_allowed)?;
            let ct = ctx.content_type.split(';').next().unwrap_or_default().trim().to_string();
            let w = store.patch(&rt, &ns, name, &t.subresource, &ct, body, &ctx.write_opts())?;
            ok(w.code, &w.object, &w.warnings)
        }
        "delete" => {
            let name = t.name.as_deref().unwrap_or_default();
            let opts: Value =
                if body.is_empty() { json!({}) } else { parse_body(ctx, body).unwrap_or_else(|_| json!({})) };
            let dry_run = ctx.q("dryRun") == Some("All")
                || opts["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
            let w = store.delete(&rt, &ns, name, &opts["preconditions"], dry_run)?;
            ok(w.code, &w.object, &[])
        }
        "deletecollection" => {
            let filter = ctx.filter(t.namespace.clone())?;
            let deleted = store.delete_collection(&rt, &filter, ctx.q("dryRun") == Some("All"))?;
            ok(200, &list_json(&rt, deleted, store.current_rv(), None, None), &[])
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Answers an access or identity review: everything is allowed, the user is `kube-double`.
fn review(rt: &ResourceType, ctx: &Ctx, body: &[u8]) -> Value {
    let spec =
        parse_body(ctx, body).ok().map(|b| b["spec"].clone()).filter(|s| !s.is_null()).unwrap_or_else(|| json!({}));
    let status = match rt.plural.as_str() {
        "selfsubjectreviews" => {
            json!({"userInfo": {"username": "kube-double", "groups": ["system:masters", "system:authenticated"]}})
        }
        "selfsubjectrulesreviews" => {
            json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false})
        }
        _ => json!({"allowed": true, "reason": "kube-double authorizes every request"}),
    };
    json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"creationTimestamp": null}, "spec": spec, "status": status})
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn watch_event(kind: &str, object: Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn watch(shared: Arc<Shared>, rt: Arc<ResourceType>, filter: Filter, ctx: &Ctx) -> ApiResult<Response<Body>> {
    let rv = ctx.q("resourceVersion").unwrap_or_default().to_string();
    let bookmarks = matches!(ctx.q("allowWatchBookmarks"), Some("true" | "1"));
    let send_initial = ctx.q("sendInitialEvents") == Some("true");
    let timeout = ctx.q("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0).unwrap_or(1800);
    let as_table = ctx.wants_table();
    let as_metadata = ctx.wants_metadata();
    let include = IncludeObject::parse(ctx.q("includeObject"));
    if send_initial && !bookmarks {
        return Err(ApiError::invalid(
            "",
            "ListOptions",
            "",
            vec![crate::error::Cause::new(
                "FieldValueForbidden",
                "allowWatchBookmarks",
                "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }
    let store = shared.store.clone();
    let (tx, rx) = futures::channel::mpsc::channel::<Bytes>(64);
    let mut changes = store.subscribe();
    let mut drops = shared.faults.watch_drops();
    let mut shutdown = shared.shutdown.clone();
    let interval = shared.bookmark_interval;
    let render = move |rt: &ResourceType, obj: Value| -> Value {
        if as_table {
            let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
            table::table(rt, &[obj], meta, include)
        } else if as_metadata {
            partial_metadata(&obj)
        } else {
            obj
        }
    };
    tokio::spawn(async move {
        let mut tx = tx;
        use futures::SinkExt as _;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut cursor: u64;
        let initial = rv.is_empty() || rv == "0" || send_initial;
        if initial {
            let (items, at) = store.snapshot(&rt, &filter);
            for obj in items {
                if tx.send(watch_event("ADDED", render(&rt, obj))).await.is_err() {
                    return;
                }
            }
            cursor = at;
            if send_initial {
                let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {
                    "resourceVersion": at.to_string(), "creationTimestamp": null,
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
                if tx.send(watch_event("BOOKMARK", bm)).await.is_err() {
                    return;
                }
            }
        } else {
            cursor = rv.parse().unwrap_or(0);
        }
        changes.mark_changed();
        let mut next_bookmark = tokio::time::Instant::now() + interval;
        loop {
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(next_bookmark) => {
                    next_bookmark = tokio::time::Instant::now() + interval;
                    // The client went away: end quietly even when there is nothing to send.
                    if tx.is_closed() {
                        return;
                    }
                    if bookmarks && !as_table {
                        let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                            "metadata": {"resourceVersion": cursor.to_string(), "creationTimestamp": null}});
                        if tx.send(watch_event("BOOKMARK", bm)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = drops.changed() => return,
                _ = shutdown.changed() => return,
            }
            match store.changes_since(&rt, &filter, cursor) {
                Ok(batch) => {
                    for (kind, obj, _) in batch.events {
                        if tx.send(watch_event(kind.as_str(), render(&rt, obj))).await.is_err() {
                            return;
                        }
                    }
                    cursor = cursor.max(batch.scanned_to);
                }
                Err(err) => {
                    let _ = tx.send(watch_event("ERROR", err.to_status())).await;
                    return;
                }
            }
        }
    });
    let stream = rx.map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let body = BodyExt::boxed(StreamBody::new(stream));
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn admin(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Response<Body> {
    let ok = |v: Value| json_response(200, &v, "application/json", &[]);
    match (method, path) {
        ("GET", "/_double/requests") => {
            let list: Vec<Value> = match shared.requests.lock() {
                Ok(g) => g.iter().map(recorded_json).collect(),
                Err(p) => p.into_inner().iter().map(recorded_json).collect(),
            };
            ok(Value::Array(list))
        }
        ("DELETE", "/_double/requests") => {
            match shared.requests.lock() {
                Ok(mut g) => g.clear(),
                Err(p) => p.into_inner().clear(),
            }
            ok(json!({}))
        }
        ("POST", "/_double/faults") => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return error_response(&ApiError::bad_request("expected a JSON fault"));
            };
            let method = v["method"].as_str().unwrap_or("*");
            let path = v["path"].as_str().unwrap_or("*");
            match v["action"].as_str() {
                Some("fail") => {
                    let status = v["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
                    let count = v["count"].as_u64().and_then(|c| usize::try_from(c).ok()).unwrap_or(1);
                    shared.faults.fail_next(count, method, path, status);
                }
                Some("delay") => {
                    shared.faults.delay(method, path, Duration::from_millis(v["millis"].as_u64().unwrap_or(0)))
                }
                Some("drop_watches") => shared.faults.drop_watches(),
                Some("expire_history") => shared.faults.expire_history(),
                Some("clear") => shared.faults.clear(),
                _ => {
                    return error_response(&ApiError::bad_request(
                        "action must be one of fail, delay, drop_watches, expire_history, clear",
                    ));
                }
            }
            ok(json!({"ok": true}))
        }
        _ => error_response(&ApiError::not_found_path()),
    }
}

fn recorded_json(r: &RecordedRequest) -> Value {
    json!({
        "method": r.method, "path": r.path, "query": r.query, "verb": r.verb, "apiGroup": r.api_group,
        "apiVersion": r.api_version, "resource": r.resource, "subresource": r.subresource,
        "namespace": r.namespace, "name": r.name, "userAgent": r.user_agent,
        "contentType": r.content_type, "status": r.status,
    })
}

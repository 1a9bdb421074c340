//! kube-double against kube-rs: client, watch, watcher, reflector, controller runtime.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, ObjectReference, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::DynamicObject;
use kube::runtime::{WatchStreamExt, controller::Action, reflector, watcher};
use kube_double::Server;
use serde_json::{Value, json};

use common::*;

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn configmap(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).expect("cm")
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn discovery_serves_builtins_and_a_crd_as_soon_as_it_is_created() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");

    let before = kube::Discovery::new(client.clone()).run().await.expect("discovery");
    assert!(before.has_group("coordination.k8s.io"));
    assert!(before.has_group("events.k8s.io"));
    assert!(!before.has_group("keyward.dev"));

    install_crds(&client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("employees.keyward.dev").await.expect("crd");
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    for t in ["Established", "NamesAccepted"] {
        assert!(conditions.iter().any(|c| c.type_ == t && c.status == "True"), "{t} condition");
    }
    let after = kube::Discovery::new(client.clone()).run().await.expect("discovery");
    let (ar, caps) = after
        .resolve_gvk(&kube::core::GroupVersionKind::gvk("keyward.dev", "v1alpha1", "Employee"))
        .expect("Employee served");
    assert_eq!(ar.plural, "employees");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "employees/status" || s.plural == "status"));
}

#[tokio::test]
async fn create_get_update_and_stale_update_conflict() {
    let server = Server::start().await.expect("start");
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let created = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}})).expect("secret"),
        )
        .await
        .expect("create");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.data.as_ref().and_then(|d| d.get("a")).map(|v| v.0.clone()), Some(b"b".to_vec()));
    assert!(created.string_data.is_none(), "stringData folded into data");
    let dup = secrets.create(&PostParams::default(), &created).await.expect_err("duplicate");
    assert_eq!(api_error(dup).code, 409);

    let mut fresh = secrets.get("s").await.expect("get");
    fresh.metadata.labels = Some([("x".to_string(), "1".to_string())].into());
    let updated = secrets.replace("s", &PostParams::default(), &fresh).await.expect("update");
    assert_ne!(updated.metadata.resource_version, created.metadata.resource_version);

    // `fresh` still carries the old resourceVersion: a second PUT with it is stale.
    let err = api_error(secrets.replace("s", &PostParams::default(), &fresh).await.expect_err("stale"));
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert!(err.message.contains("the object has been modified"), "{}", err.message);

    secrets.delete("s", &DeleteParams::default()).await.expect("delete");
    assert_eq!(api_error(secrets.get("s").await.expect_err("gone")).code, 404);
}

#[tokio::test]
async fn resource_versions_are_one_global_increasing_counter() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut last = 0u64;
    for i in 0..5 {
        let cm = cms.create(&PostParams::default(), &configmap(&format!("c{i}"), json!({}))).await.expect("create");
        let rv: u64 = cm.metadata.resource_version.expect("rv").parse().expect("numeric rv");
        assert!(rv > last, "{rv} > {last}");
        last = rv;
    }
    assert_eq!(server.resource_version(), last);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_from_a_consistent_snapshot() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for i in 0..7 {
        cms.create(&PostParams::default(), &configmap(&format!("c{i}"), json!({}))).await.expect("create");
    }
    let first = cms.list(&ListParams::default().limit(3)).await.expect("page 1");
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.clone().expect("continue token");
    // A change after the first page is not part of this list's snapshot.
    cms.create(&PostParams::default(), &configmap("c99", json!({}))).await.expect("create");
    cms.delete("c5", &DeleteParams::default()).await.expect("delete");
    let second = cms.list(&ListParams::default().limit(3).continue_token(&token)).await.expect("page 2");
    let third = cms
        .list(&ListParams::default().limit(3).continue_token(second.metadata.continue_.as_deref().expect("token")))
        .await
        .expect("page 3");
    assert!(third.metadata.continue_.is_none());
    let names: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .chain(&third.items)
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    assert_eq!(second.metadata.resource_version, first.metadata.resource_version);
}

#[tokio::test]
async fn list_continue_older_than_the_history_is_410() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for i in 0..3 {
        cms.create(&PostParams::default(), &configmap(&format!("c{i}"), json!({}))).await.expect("create");
    }
    let first = cms.list(&ListParams::default().limit(1)).await.expect("page 1");
    cms.create(&PostParams::default(), &configmap("later", json!({}))).await.expect("create");
    server.faults().expire_history();
    let err = cms
        .list(&ListParams::default().limit(1).continue_token(first.metadata.continue_.as_deref().expect("token")))
        .await
        .expect_err("too old");
    let status = api_error(err);
    assert_eq!(status.code, 410);
    assert_eq!(status.reason, "Expired");
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &configmap("a", json!({"app": "web", "tier": "front"}))).await.expect("a");
    cms.create(&PostParams::default(), &configmap("b", json!({"app": "api"}))).await.expect("b");
    cms.create(&PostParams::default(), &configmap("c", json!({}))).await.expect("c");
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.into_iter().map(|c| c.metadata.name.unwrap_or_default()).collect()
    };
    assert_eq!(names(cms.list(&ListParams::default().labels("app=web")).await.expect("eq")), ["a"]);
    assert_eq!(names(cms.list(&ListParams::default().labels("app in (web,api)")).await.expect("in")), ["a", "b"]);
    assert_eq!(names(cms.list(&ListParams::default().labels("!app")).await.expect("not")), ["c"]);
    assert_eq!(names(cms.list(&ListParams::default().labels("app,tier!=front")).await.expect("and")), ["b"]);
    assert_eq!(names(cms.list(&ListParams::default().fields("metadata.name=b")).await.expect("field")), ["b"]);
    assert_eq!(names(cms.list(&ListParams::default().fields("metadata.name!=b")).await.expect("field")), ["a", "c"]);
    let all: Api<ConfigMap> = Api::all(server.client());
    assert_eq!(
        names(all.list(&ListParams::default().fields("metadata.namespace=default")).await.expect("ns")).len(),
        3
    );
}

#[tokio::test]
async fn watch_from_a_version_sees_added_modified_deleted() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let rv = cms.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("rv");
    cms.create(&PostParams::default(), &configmap("w", json!({}))).await.expect("create");
    let stream = cms.watch(&WatchParams::default().timeout(5), &rv).await.expect("watch");
    futures::pin_mut!(stream);
    cms.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v2"}}))).await.expect("patch");
    cms.delete("w", &DeleteParams::default()).await.expect("delete");
    let mut kinds = vec![];
    while let Some(ev) = stream.try_next().await.expect("event") {
        match ev {
            WatchEvent::Added(c) => kinds.push(format!("ADDED {}", c.metadata.name.unwrap_or_default())),
            WatchEvent::Modified(c) => kinds.push(format!("MODIFIED {}", c.data.unwrap_or_default()["k"])),
            WatchEvent::Deleted(_) => {
                kinds.push("DELETED".into());
                break;
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED w", "MODIFIED v2", "DELETED"]);
}

#[tokio::test]
async fn watch_with_a_label_selector_sees_objects_leave_and_enter_it() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &configmap("x", json!({"app": "web"}))).await.expect("create");
    let rv = server.resource_version().to_string();
    let stream = cms.watch(&WatchParams::default().labels("app=web").timeout(5), &rv).await.expect("watch");
    futures::pin_mut!(stream);
    cms.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "api"}}})))
        .await
        .expect("leave");
    cms.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})))
        .await
        .expect("enter");
    let mut kinds = vec![];
    while kinds.len() < 2 {
        match stream.try_next().await.expect("event").expect("open") {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            _ => {}
        }
    }
    assert_eq!(kinds, ["DELETED", "ADDED"]);
}

#[tokio::test]
async fn watch_sends_bookmarks_when_allowed() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let rv = server.resource_version().to_string();
    let stream = cms.watch(&WatchParams::default().timeout(5), &rv).await.expect("watch");
    futures::pin_mut!(stream);
    let first = tokio::time::timeout(Duration::from_secs(4), stream.try_next()).await.expect("a bookmark within 4s");
    match first.expect("event").expect("open") {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    let no_bookmarks = cms.watch(&WatchParams::default().disable_bookmarks().timeout(2), &rv).await.expect("watch");
    let events: Vec<_> = no_bookmarks.collect().await;
    assert!(events.is_empty(), "no bookmarks were asked for: {events:?}");
}

#[tokio::test]
async fn watch_from_a_version_older_than_the_history_gets_a_410_error_event() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let old = server.resource_version().to_string();
    cms.create(&PostParams::default(), &configmap("a", json!({}))).await.expect("create");
    server.faults().expire_history();
    let stream = cms.watch(&WatchParams::default().timeout(5), &old).await.expect("watch");
    futures::pin_mut!(stream);
    match stream.try_next().await.expect("event").expect("one event") {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
}

#[tokio::test]
async fn history_limit_bounds_how_far_back_a_watch_can_resume() {
    let config = kube_double::Config { history_limit: 3, ..Default::default() };
    let server = Server::start_with(config).await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let old = server.resource_version().to_string();
    for i in 0..5 {
        cms.create(&PostParams::default(), &configmap(&format!("c{i}"), json!({}))).await.expect("create");
    }
    let stream = cms.watch(&WatchParams::default().timeout(5), &old).await.expect("watch");
    futures::pin_mut!(stream);
    assert!(matches!(stream.try_next().await.expect("event"), Some(WatchEvent::Error(s)) if s.code == 410));
    let recent = (server.resource_version() - 2).to_string();
    let stream = cms.watch(&WatchParams::default().timeout(5), &recent).await.expect("watch");
    futures::pin_mut!(stream);
    assert!(matches!(stream.try_next().await.expect("event"), Some(WatchEvent::Added(_))));
}

#[tokio::test]
async fn watcher_and_reflector_survive_dropped_watches_and_410() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &configmap("one", json!({}))).await.expect("create");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("synced");
    assert_eq!(reader.state().len(), 1);

    let watches = |s: &Server| s.requests().iter().filter(|r| r.verb == "watch" && r.resource == "configmaps").count();
    let lists = |s: &Server| s.requests().iter().filter(|r| r.verb == "list" && r.resource == "configmaps").count();
    eventually("the watcher is watching", || {
        let n = watches(&server);
        async move { n >= 1 }
    })
    .await;

    server.faults().drop_watches();
    cms.create(&PostParams::default(), &configmap("two", json!({}))).await.expect("create");
    eventually("reflector sees `two` after a dropped watch", || {
        let r = reader.clone();
        async move { r.state().len() == 2 }
    })
    .await;
    assert!(watches(&server) >= 2, "the watcher reconnected");
    assert_eq!(lists(&server), 1, "a dropped watch resumes without a re-list");

    // Hold the reconnect back while changes happen and the history is expired: the resumed
    // watch gets an ERROR 410 event and the watcher re-lists.
    server.faults().delay("watch", "*", Duration::from_millis(500));
    server.faults().drop_watches();
    cms.delete("one", &DeleteParams::default()).await.expect("delete");
    cms.create(&PostParams::default(), &configmap("three", json!({}))).await.expect("create");
    server.faults().expire_history();
    eventually("reflector re-lists after 410", || {
        let r = reader.clone();
        async move {
            let mut names: Vec<String> =
                r.state().iter().map(|c| c.metadata.name.clone().unwrap_or_default()).collect();
            names.sort();
            names == ["three", "two"]
        }
    })
    .await;
    assert!(lists(&server) >= 2, "the watcher re-listed after 410");
    task.abort();
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_and_the_end_bookmark() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &configmap("one", json!({}))).await.expect("create");
    let (reader, writer) = reflector::store();
    let stream =
        reflector(writer, watcher(cms.clone(), watcher::Config::default().streaming_lists())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    tokio::time::timeout(Duration::from_secs(5), reader.wait_until_ready()).await.expect("ready").expect("synced");
    assert_eq!(reader.state().len(), 1);
    assert!(server.requests().iter().any(|r| r.verb == "watch" && r.query.contains("sendInitialEvents=true")));
    task.abort();
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    let e =
        emps.create(&PostParams::default(), &employee("alice", "alice@acme.example", &["sre"])).await.expect("create");
    assert_eq!(e.metadata.generation, Some(1));
    let pp = PatchParams::default();
    let e = emps.patch("alice", &pp, &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}))).await.expect("labels");
    assert_eq!(e.metadata.generation, Some(1), "metadata changes keep the generation");
    let e = emps
        .patch_status("alice", &pp, &Patch::Merge(json!({"status": {"observedGeneration": 1, "conditions": []}})))
        .await
        .expect("status");
    assert_eq!(e.metadata.generation, Some(1), "status changes keep the generation");
    let e = emps.patch("alice", &pp, &Patch::Merge(json!({"spec": {"state": "Suspended"}}))).await.expect("spec");
    assert_eq!(e.metadata.generation, Some(2));
    // A no-op write changes nothing, not even the resourceVersion.
    let again = emps.patch("alice", &pp, &Patch::Merge(json!({"spec": {"state": "Suspended"}}))).await.expect("no-op");
    assert_eq!(again.metadata.resource_version, e.metadata.resource_version);
}

#[tokio::test]
async fn status_subresource_is_separate_from_the_main_resource() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    let mut with_status = employee("bob", "bob@acme.example", &["dev"]);
    with_status.data["status"] = json!({"observedGeneration": 7});
    let created = emps.create(&PostParams::default(), &with_status).await.expect("create");
    assert!(created.data.get("status").is_none(), "create drops status");

    let status = json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "Employee", "metadata": {"name": "bob"},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "R",
        "lastTransitionTime": "2025-01-01T00:00:00Z"}]}, "spec": {"email": "changed@acme.example"}});
    let after = emps.patch_status("bob", &PatchParams::default(), &Patch::Merge(&status)).await.expect("status");
    assert_eq!(after.data["status"]["observedGeneration"], 1);
    assert_eq!(after.data["spec"]["email"], "bob@acme.example", "status writes touch only status");

    let mut main = after.clone();
    main.data["status"]["observedGeneration"] = json!(99);
    main.data["spec"]["roles"] = json!(["sre"]);
    let replaced = emps.replace("bob", &PostParams::default(), &main).await.expect("replace");
    assert_eq!(replaced.data["status"]["observedGeneration"], 1, "main writes ignore status");
    assert_eq!(replaced.data["spec"]["roles"], json!(["sre"]));
    let got = emps.get_status("bob").await.expect("get status");
    assert_eq!(got.data["status"]["conditions"][0]["type"], "Ready");
}

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_they_are_removed() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    let mut e = employee("carol", "carol@acme.example", &[]);
    e.metadata.finalizers = Some(vec!["keyward.dev/revoke".into()]);
    emps.create(&PostParams::default(), &e).await.expect("create");
    let deleted = emps.delete("carol", &DeleteParams::default()).await.expect("delete");
    let pending = deleted.left().expect("object returned while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.generation, Some(2), "setting deletionTimestamp bumps generation");
    // No new finalizers on an object being deleted.
    let err = emps
        .patch(
            "carol",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["keyward.dev/revoke", "other"]}})),
        )
        .await
        .expect_err("forbidden");
    assert_eq!(api_error(err).code, 422);
    // kube-runtime's finalizer helper removes its finalizer with a JSON patch guarded by `test`.
    let stale = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "someone-else"},
        {"op": "remove", "path": "/metadata/finalizers/0"}]);
    let err = emps
        .patch("carol", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(stale).expect("patch")))
        .await
        .expect_err("test op fails");
    assert_eq!(api_error(err).code, 422);
    assert!(emps.get("carol").await.is_ok());
    let remove = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "keyward.dev/revoke"},
        {"op": "remove", "path": "/metadata/finalizers/0"}]);
    emps.patch("carol", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(remove).expect("patch")))
        .await
        .expect("remove finalizer");
    assert_eq!(api_error(emps.get("carol").await.expect_err("deleted")).code, 404);
}

#[tokio::test]
async fn schema_violations_are_422_with_field_paths() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    let mut bad = employee("bad", "not-an-email", &[]);
    bad.data["spec"]["state"] = json!("Gone");
    bad.data["spec"]["identities"] = json!([{"provider": "p"}]);
    let status = api_error(emps.create(&PostParams::default(), &bad).await.expect_err("invalid"));
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    let details = status.details.expect("details");
    assert_eq!(details.kind, "Employee");
    assert_eq!(details.group, "keyward.dev");
    let fields: Vec<&str> = details.causes.iter().map(|c| c.field.as_str()).collect();
    for f in ["spec.email", "spec.state", "spec.identities[0].username"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    let state = details.causes.iter().find(|c| c.field == "spec.state").expect("state cause");
    assert_eq!(state.reason, "FieldValueNotSupported");
    assert!(status.message.starts_with("Employee.keyward.dev \"bad\" is invalid: ["), "{}", status.message);

    let missing = serde_json::from_value(json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "Employee",
        "metadata": {"name": "nomail"}, "spec": {}}))
    .expect("obj");
    let status = api_error(emps.create(&PostParams::default(), &missing).await.expect_err("required"));
    assert_eq!(status.message, "Employee.keyward.dev \"nomail\" is invalid: spec.email: Required value");
}

#[tokio::test]
async fn cel_rules_are_enforced_with_their_messages() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    let mut e = employee("win", "win@acme.example", &[]);
    e.data["spec"]["activeFrom"] = json!("2027-01-01T00:00:00Z");
    e.data["spec"]["activeUntil"] = json!("2026-01-01T00:00:00Z");
    let status = api_error(emps.create(&PostParams::default(), &e).await.expect_err("CEL"));
    assert_eq!(status.code, 422);
    let cause = &status.details.expect("details").causes[0];
    assert_eq!(cause.field, "spec");
    assert!(cause.message.contains("activeFrom must be before activeUntil"), "{}", cause.message);
    e.data["spec"]["activeUntil"] = json!("2028-01-01T00:00:00Z");
    emps.create(&PostParams::default(), &e).await.expect("valid window");
}

#[tokio::test]
async fn defaults_are_applied_and_unknown_fields_pruned_or_rejected() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    let mut e = employee("dan", "dan@acme.example", &[]);
    e.data["spec"]["nickname"] = json!("d");
    let created = emps.create(&PostParams::default(), &e).await.expect("warn mode prunes");
    assert_eq!(created.data["spec"]["state"], "Active", "schema default applied");
    assert!(created.data["spec"].get("nickname").is_none(), "unknown field pruned");
    let strict = PatchParams { field_validation: Some(kube::api::ValidationDirective::Strict), ..Default::default() };
    let status = api_error(
        emps.patch("dan", &strict, &Patch::Merge(json!({"spec": {"nickname": "d"}}))).await.expect_err("strict"),
    );
    assert_eq!(status.code, 400);
    assert!(status.message.contains("strict decoding error: unknown field \"spec.nickname\""), "{}", status.message);
}

#[tokio::test]
async fn merge_and_json_patches() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &configmap("p", json!({"a": "1"}))).await.expect("create");
    let pp = PatchParams::default();
    let cm = cms
        .patch("p", &pp, &Patch::Merge(json!({"data": {"k": null, "n": "2"}, "metadata": {"labels": {"a": null}}})))
        .await
        .expect("merge");
    assert_eq!(cm.data.unwrap_or_default(), [("n".to_string(), "2".to_string())].into());
    assert!(cm.metadata.labels.unwrap_or_default().is_empty());
    let ops = json!([{"op": "test", "path": "/data/n", "value": "2"}, {"op": "add", "path": "/data/m", "value": "3"}]);
    let cm = cms.patch("p", &pp, &Patch::<()>::Json(serde_json::from_value(ops).expect("ops"))).await.expect("json");
    assert_eq!(cm.data.unwrap_or_default().get("m").map(String::as_str), Some("3"));
    // A resourceVersion in a patch is a precondition.
    let stale = json!({"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}});
    assert_eq!(api_error(cms.patch("p", &pp, &Patch::Merge(stale)).await.expect_err("stale")).code, 409);
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let server = Server::start().await.expect("start");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(server.client(), "default");
    let d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "app", "image": "app:1"},
        {"name": "sidecar", "image": "side:1"}]}}}});
    deployments.create(&PostParams::default(), &serde_json::from_value(d).expect("deployment")).await.expect("create");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    let d = deployments.patch("d", &PatchParams::default(), &Patch::Strategic(patch)).await.expect("strategic");
    let containers = d.spec.and_then(|s| s.template.spec).map(|s| s.containers).unwrap_or_default();
    let images: Vec<(String, Option<String>)> = containers.into_iter().map(|c| (c.name, c.image)).collect();
    assert_eq!(
        images,
        [("app".to_string(), Some("app:2".to_string())), ("sidecar".to_string(), Some("side:1".to_string()))]
    );
    assert_eq!(d.metadata.generation, Some(2));
}

#[tokio::test]
async fn strategic_merge_patch_is_unsupported_for_custom_resources() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    emps.create(&PostParams::default(), &employee("e", "e@acme.example", &[])).await.expect("create");
    let err = emps
        .patch("e", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"roles": []}})))
        .await
        .expect_err("415");
    assert_eq!(api_error(err).code, 415);
}

#[tokio::test]
async fn server_side_apply_creates_updates_removes_and_conflicts() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let apply =
        |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});
    let mine = PatchParams::apply("keyward");
    let cm = cms.patch("ssa", &mine, &Patch::Apply(apply(json!({"a": "1", "b": "2"})))).await.expect("create by apply");
    let managed = cm.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("keyward"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));

    let cm = cms.patch("ssa", &mine, &Patch::Apply(apply(json!({"a": "1"})))).await.expect("reapply");
    assert_eq!(cm.data.clone().unwrap_or_default().len(), 1, "a field the manager stopped applying is removed");
    let rv = cm.metadata.resource_version.clone();
    let same = cms.patch("ssa", &mine, &Patch::Apply(apply(json!({"a": "1"})))).await.expect("no-op apply");
    assert_eq!(same.metadata.resource_version, rv, "an unchanged apply does not write");

    let theirs = PatchParams::apply("someone-else");
    let status =
        api_error(cms.patch("ssa", &theirs, &Patch::Apply(apply(json!({"a": "9"})))).await.expect_err("conflict"));
    assert_eq!(status.code, 409);
    assert!(status.message.contains("conflict with \"keyward\""), "{}", status.message);
    assert_eq!(status.details.expect("details").causes[0].field, ".data.a");
    let forced = cms.patch("ssa", &theirs.force(), &Patch::Apply(apply(json!({"a": "9"})))).await.expect("force");
    assert_eq!(forced.data.unwrap_or_default()["a"], "9");

    let missing = api_error(
        cms.patch("nope", &PatchParams::default(), &Patch::Apply(apply(json!({})))).await.expect_err("no manager"),
    );
    assert_eq!(missing.code, 400);
}

#[tokio::test]
async fn server_side_apply_of_status_like_a_controller() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    emps.create(&PostParams::default(), &employee("al", "al@acme.example", &["sre"])).await.expect("create");
    let status = json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "Employee", "metadata": {"name": "al"},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
        "message": "ok", "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}]}});
    let pp = PatchParams::apply("keyward").force();
    let e = emps.patch_status("al", &pp, &Patch::Apply(&status)).await.expect("apply status");
    assert_eq!(e.data["status"]["conditions"][0]["status"], "True");
    // Let the clock move past the second managedFields timestamps carry.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = emps.patch_status("al", &pp, &Patch::Apply(&status)).await.expect("apply again");
    assert_eq!(again.metadata.resource_version, e.metadata.resource_version, "unchanged status apply is a no-op");
    let managed = again.metadata.managed_fields.unwrap_or_default();
    assert!(
        managed.iter().any(|m| m.manager.as_deref() == Some("keyward") && m.subresource.as_deref() == Some("status"))
    );
}

#[tokio::test]
async fn controller_reconciles_changes_and_status_writes_do_not_loop() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    emps.create(&PostParams::default(), &employee("ann", "ann@acme.example", &["sre"])).await.expect("create");

    let runs = Arc::new(AtomicUsize::new(0));
    struct Ctx {
        api: Api<DynamicObject>,
        runs: Arc<AtomicUsize>,
    }
    async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
        ctx.runs.fetch_add(1, Ordering::SeqCst);
        let generation = obj.metadata.generation.unwrap_or_default();
        let status = json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "Employee",
            "metadata": {"name": obj.metadata.name.clone()}, "status": {"observedGeneration": generation}});
        ctx.api
            .patch_status(
                obj.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::apply("ctl").force(),
                &Patch::Apply(status),
            )
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<DynamicObject>, _: &kube::Error, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let ctx = Arc::new(Ctx { api: emps.clone(), runs: runs.clone() });
    let controller = kube::runtime::Controller::new_with(emps.clone(), watcher::Config::default(), employee_resource())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    eventually("status observedGeneration 1", || {
        let emps = emps.clone();
        async move { emps.get("ann").await.map(|e| e.data["status"]["observedGeneration"] == 1).unwrap_or(false) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = runs.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(runs.load(Ordering::SeqCst), settled, "no reconcile loop from no-op status writes");

    emps.patch("ann", &PatchParams::default(), &Patch::Merge(json!({"spec": {"state": "Offboarded"}})))
        .await
        .expect("spec");
    eventually("status observedGeneration 2", || {
        let emps = emps.clone();
        async move { emps.get("ann").await.map(|e| e.data["status"]["observedGeneration"] == 2).unwrap_or(false) }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn recorder_events_are_visible_as_core_v1_events() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    let e = emps.create(&PostParams::default(), &employee("ev", "ev@acme.example", &[])).await.expect("create");
    let reference = ObjectReference {
        api_version: Some("keyward.dev/v1alpha1".into()),
        kind: Some("Employee".into()),
        name: e.metadata.name.clone(),
        namespace: Some("acme".into()),
        uid: e.metadata.uid.clone(),
        ..Default::default()
    };
    let recorder = kube::runtime::events::Recorder::new(client.clone(), "keyward".into());
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Normal,
        reason: "EnrolmentRevoked".into(),
        note: Some("revoked TOTP1".into()),
        action: "Revoke".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.expect("publish");
    recorder.publish(&event, &reference).await.expect("publish again (series patch)");
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "acme");
    let fields = format!(
        "involvedObject.name=ev,involvedObject.kind=Employee,involvedObject.uid={}",
        e.metadata.uid.unwrap_or_default()
    );
    let list = core.list(&ListParams::default().fields(&fields)).await.expect("list core events");
    assert_eq!(list.items.len(), 1, "{:?}", list.items);
    assert_eq!(list.items[0].reason.as_deref(), Some("EnrolmentRevoked"));
    assert_eq!(list.items[0].message.as_deref(), Some("revoked TOTP1"));
    assert_eq!(list.items[0].reporting_component.as_deref(), Some("keyward"));
    assert_eq!(list.items[0].series.as_ref().and_then(|s| s.count), Some(2));
}

#[tokio::test]
async fn leases_support_leader_election_writes() {
    let server = Server::start().await.expect("start");
    let leases: Api<Lease> = Api::namespaced(server.client(), "default");
    let lease = |holder: &str, rv: Option<&str>| -> Lease {
        serde_json::from_value(json!({"metadata": {"name": "keyward", "resourceVersion": rv},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
            "renewTime": "2025-01-01T00:00:00.000000Z"}}))
        .expect("lease")
    };
    // PUT creates a missing Lease, as kube-apiserver allows for leases.
    let a = leases.replace("keyward", &PostParams::default(), &lease("a", None)).await.expect("create on PUT");
    let rv = a.metadata.resource_version.clone();
    let mut renewed = lease("a", rv.as_deref());
    if let Some(spec) = renewed.spec.as_mut() {
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            "2025-01-01T00:00:05Z".parse().expect("time"),
        ));
    }
    leases.replace("keyward", &PostParams::default(), &renewed).await.expect("renew");
    let err =
        leases.replace("keyward", &PostParams::default(), &lease("b", rv.as_deref())).await.expect_err("lost race");
    assert_eq!(api_error(err).code, 409);
    let got = leases.get("keyward").await.expect("get");
    assert_eq!(got.spec.and_then(|s| s.holder_identity).as_deref(), Some("a"));
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_then_itself() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).expect("ns"))
        .await
        .expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "tmp");
    cms.create(&PostParams::default(), &configmap("plain", json!({}))).await.expect("cm");
    let mut held = configmap("held", json!({}));
    held.metadata.finalizers = Some(vec!["test/hold".into()]);
    cms.create(&PostParams::default(), &held).await.expect("held");
    namespaces.delete("tmp", &DeleteParams::default()).await.expect("delete ns");
    let ns = namespaces.get("tmp").await.expect("still there");
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    assert_eq!(api_error(cms.get("plain").await.expect_err("gone")).code, 404);
    let err = cms.create(&PostParams::default(), &configmap("new", json!({}))).await.expect_err("terminating");
    assert_eq!(api_error(err).code, 403);
    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .expect("release");
    assert_eq!(api_error(namespaces.get("tmp").await.expect_err("ns gone")).code, 404);
    let err = cms.create(&PostParams::default(), &configmap("x", json!({}))).await.expect_err("no namespace");
    assert_eq!(api_error(err).code, 404);
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_stops_serving_the_kind() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    emps.create(&PostParams::default(), &employee("x", "x@acme.example", &[])).await.expect("create");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("employees.keyward.dev", &DeleteParams::default()).await.expect("delete crd");
    assert_eq!(api_error(crds.get("employees.keyward.dev").await.expect_err("gone")).code, 404);
    let err = emps.list(&ListParams::default()).await.expect_err("kind no longer served");
    assert_eq!(api_error(err).code, 404);
    assert!(server.stored_object("keyward.dev", "employees", "acme", "x").is_none());
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let rv = server.resource_version();
    let pp = PostParams { dry_run: true, ..Default::default() };
    let cm = cms.create(&pp, &configmap("dry", json!({}))).await.expect("dry create");
    assert_eq!(cm.metadata.name.as_deref(), Some("dry"));
    assert_eq!(server.resource_version(), rv);
    assert_eq!(api_error(cms.get("dry").await.expect_err("not stored")).code, 404);
}

#[tokio::test]
async fn generate_name_and_name_validation() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let generated: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "cm-"}})).expect("cm");
    let created = cms.create(&PostParams::default(), &generated).await.expect("generateName");
    let name = created.metadata.name.expect("name");
    assert!(name.starts_with("cm-") && name.len() == 8, "{name}");
    let status =
        api_error(cms.create(&PostParams::default(), &configmap("Bad_Name", json!({}))).await.expect_err("invalid"));
    assert_eq!(status.code, 422);
    assert_eq!(status.details.expect("details").causes[0].field, "metadata.name");
}

#[tokio::test]
async fn fault_knobs_fail_and_delay_matching_requests() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let faults = server.faults();
    faults.fail_next(2, "list", "/api/v1/namespaces/*/configmaps", 500);
    for _ in 0..2 {
        assert_eq!(api_error(cms.list(&ListParams::default()).await.expect_err("injected")).code, 500);
    }
    cms.list(&ListParams::default()).await.expect("third succeeds");

    // kube-rs retries a 429 by itself (after Retry-After), so the create still succeeds.
    faults.fail_next(1, "POST", "*", 429);
    cms.create(&PostParams::default(), &configmap("x", json!({}))).await.expect("retried after 429");
    let posts: Vec<u16> = server.requests().iter().filter(|r| r.method == "POST").map(|r| r.status).collect();
    assert_eq!(posts, [429, 201]);

    faults.fail_next(1, "*", "/api/v1/namespaces/default/configmaps/x", 409);
    assert_eq!(api_error(cms.get("x").await.expect_err("409")).code, 409);
    faults.fail_next(1, "GET", "/api/v1/namespaces/default/configmaps/x", 410);
    assert_eq!(api_error(cms.get("x").await.expect_err("410")).code, 410);

    faults.delay("GET", "/api/v1/namespaces/default/configmaps", Duration::from_millis(1500));
    let start = std::time::Instant::now();
    cms.list(&ListParams::default()).await.expect("delayed");
    assert!(start.elapsed() >= Duration::from_millis(1500));
    faults.clear();
    let start = std::time::Instant::now();
    cms.list(&ListParams::default()).await.expect("not delayed");
    assert!(start.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn request_log_records_kubernetes_verbs_and_resources() {
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    server.clear_requests();
    emps.create(&PostParams::default(), &employee("r", "r@acme.example", &[])).await.expect("create");
    emps.get("r").await.expect("get");
    emps.list(&ListParams::default()).await.expect("list");
    emps.patch_status("r", &PatchParams::default(), &Patch::Merge(json!({"status": {}}))).await.expect("patch status");
    let e = emps.get("r").await.expect("get");
    emps.replace("r", &PostParams::default(), &e).await.expect("update");
    let stream = emps.watch(&WatchParams::default().timeout(1), "0").await.expect("watch");
    let _: Vec<_> = stream.collect().await;
    emps.delete("r", &DeleteParams::default()).await.expect("delete");
    let seen: Vec<(String, String, String, String)> = server
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.verb,
                r.api_group,
                format!(
                    "{}{}",
                    r.resource,
                    if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) }
                ),
                r.namespace,
            )
        })
        .collect();
    let want = [
        ("create", "employees"),
        ("get", "employees"),
        ("list", "employees"),
        ("patch", "employees/status"),
        ("get", "employees"),
        ("update", "employees"),
        ("watch", "employees"),
        ("delete", "employees"),
    ];
    assert_eq!(seen.len(), want.len(), "{seen:?}");
    for ((verb, group, resource, ns), (want_verb, want_resource)) in seen.iter().zip(want) {
        assert_eq!((verb.as_str(), resource.as_str()), (want_verb, want_resource));
        assert_eq!(group, "keyward.dev");
        assert_eq!(ns, "acme");
    }
}

#[tokio::test]
async fn metadata_api_and_metadata_watcher_get_partial_object_metadata() {
    let server = Server::start().await.expect("start");
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "m", "labels": {"a": "b"}}, "stringData": {"k": "v"}}))
            .expect("secret");
    secrets.create(&PostParams::default(), &s).await.expect("create");
    let meta = secrets.get_metadata("m").await.expect("get metadata");
    assert_eq!(meta.metadata.labels.unwrap_or_default()["a"], "b");
    let list = secrets.list_metadata(&ListParams::default()).await.expect("list metadata");
    assert_eq!(list.items.len(), 1);
    let (reader, writer) = reflector::store();
    let metadata_only: Api<kube::core::PartialObjectMeta<Secret>> = Api::namespaced(server.client(), "default");
    let stream = reflector(writer, watcher(metadata_only, watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("synced");
    assert_eq!(reader.state().len(), 1);
    secrets.delete("m", &DeleteParams::default()).await.expect("delete");
    eventually("metadata watcher sees the deletion", || {
        let r = reader.clone();
        async move { r.state().is_empty() }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn kube_runtime_finalizer_helper_adds_and_removes_its_finalizer() {
    use kube::runtime::finalizer::{Event as Finalizer, finalizer};
    let server = Server::start().await.expect("start");
    let client = server.client();
    install_crds(&client).await;
    let emps = employees(&client, "acme");
    emps.create(&PostParams::default(), &employee("fin", "fin@acme.example", &[])).await.expect("create");
    let seen = Arc::new(std::sync::Mutex::new(Vec::<&'static str>::new()));
    let step = |emps: Api<DynamicObject>, seen: Arc<std::sync::Mutex<Vec<&'static str>>>| async move {
        let obj = Arc::new(emps.get("fin").await.expect("get"));
        finalizer(&emps, "keyward.dev/revoke", obj, |ev| async move {
            let what = match ev {
                Finalizer::Apply(_) => "apply",
                Finalizer::Cleanup(_) => "cleanup",
            };
            seen.lock().expect("lock").push(what);
            Ok::<_, kube::Error>(Action::await_change())
        })
        .await
        .expect("finalizer step");
    };
    step(emps.clone(), seen.clone()).await; // adds the finalizer
    assert_eq!(emps.get("fin").await.expect("get").metadata.finalizers, Some(vec!["keyward.dev/revoke".to_string()]));
    step(emps.clone(), seen.clone()).await; // reconciles
    emps.delete("fin", &DeleteParams::default()).await.expect("delete");
    step(emps.clone(), seen.clone()).await; // cleans up and removes the finalizer
    assert_eq!(*seen.lock().expect("lock"), ["apply", "cleanup"]);
    assert_eq!(api_error(emps.get("fin").await.expect_err("gone")).code, 404);
}

#[tokio::test]
async fn delete_collection_and_delete_preconditions() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        cms.create(&PostParams::default(), &configmap(name, json!({"app": app}))).await.expect("create");
    }
    let deleted =
        cms.delete_collection(&DeleteParams::default(), &ListParams::default().labels("app=web")).await.expect("dc");
    let names: Vec<String> = deleted
        .left()
        .expect("list of deleted")
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap_or_default())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(cms.list(&ListParams::default()).await.expect("list").items.len(), 1);
    let c = cms.get("c").await.expect("get");
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: Some("not-the-uid".into()), resource_version: None }),
        ..Default::default()
    };
    assert_eq!(api_error(cms.delete("c", &wrong).await.expect_err("precondition")).code, 409);
    let right = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: c.metadata.uid.clone(),
            resource_version: c.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    cms.delete("c", &right).await.expect("delete with matching preconditions");
}

#[tokio::test]
async fn an_injected_410_on_a_watch_arrives_as_an_error_event_and_the_watcher_relists() {
    let server = Server::start().await.expect("start");
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    server.faults().fail_next(1, "watch", "/api/v1/namespaces/default/configmaps", 410);
    let rv = server.resource_version().to_string();
    let stream = cms.watch(&WatchParams::default().timeout(5), &rv).await.expect("watch starts");
    futures::pin_mut!(stream);
    assert!(matches!(stream.try_next().await.expect("event"), Some(WatchEvent::Error(s)) if s.code == 410));

    server.faults().fail_next(1, "watch", "/api/v1/namespaces/default/configmaps", 410);
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("synced");
    cms.create(&PostParams::default(), &configmap("after", json!({}))).await.expect("create");
    eventually("the watcher recovered", || {
        let r = reader.clone();
        async move { r.state().len() == 1 }
    })
    .await;
    let lists = server.requests().iter().filter(|r| r.verb == "list" && r.resource == "configmaps").count();
    assert!(lists >= 2, "re-listed after the 410 ({lists} lists)");
    task.abort();
}

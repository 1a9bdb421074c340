//! kube-double at the HTTP level: content negotiation (Tables, PartialObjectMetadata,
//! aggregated discovery), OpenAPI v3, the admin endpoints, and use without async.

use std::io::{Read, Write};
use std::net::TcpStream;

use kube_double::Server;
use serde_json::{Value, json};

/// One HTTP/1.1 request; returns (status, headers, body).
fn request(server: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", server.addr());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, rest) = raw.split_once("\r\n\r\n").expect("head");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_string() };
    (status, head.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn get_json(server: &Server, path: &str, accept: &str) -> (String, Value) {
    let (status, head, body) = request(server, "GET", path, &[("Accept", accept)], "");
    assert_eq!(status, 200, "{path}: {body}");
    (head, serde_json::from_str(&body).expect("JSON body"))
}

fn post(server: &Server, path: &str, body: &Value) -> (u16, String, String) {
    request(server, "POST", path, &[("Content-Type", "application/json")], &body.to_string())
}

fn crd(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/../crds/{name}.yaml", env!("CARGO_MANIFEST_DIR"))).expect("crd");
    serde_yaml::from_str(&text).expect("yaml")
}

fn setup() -> Server {
    let server = Server::start_blocking().expect("start without an async runtime");
    let (status, _, body) = post(&server, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd("employees"));
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = post(&server, "/api/v1/namespaces", &json!({"metadata": {"name": "acme"}}));
    assert_eq!(status, 201);
    let alice = json!({"apiVersion": "keyward.dev/v1alpha1", "kind": "Employee", "metadata": {"name": "alice"},
        "spec": {"email": "alice@acme.example", "roles": ["sre", "dev"]}});
    let (status, _, body) = post(&server, "/apis/keyward.dev/v1alpha1/namespaces/acme/employees", &alice);
    assert_eq!(status, 201, "{body}");
    server
}

const TABLE: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[test]
fn tables_use_the_crd_printer_columns() {
    let server = setup();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending",
        "lastTransitionTime": "2025-01-01T00:00:00Z"}]}});
    let (code, _, _) = request(
        &server,
        "PATCH",
        "/apis/keyward.dev/v1alpha1/namespaces/acme/employees/alice/status",
        &[("Content-Type", "application/merge-patch+json")],
        &status.to_string(),
    );
    assert_eq!(code, 200);
    let (_, table) = get_json(&server, "/apis/keyward.dev/v1alpha1/namespaces/acme/employees", TABLE);
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> =
        table["columnDefinitions"].as_array().expect("cols").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["Name", "Email", "State", "Roles", "Ready", "Last Revocation", "Age"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "alice");
    assert_eq!(cells[1], "alice@acme.example");
    assert_eq!(cells[2], "Active", "defaulted by the schema");
    assert_eq!(cells[3], r#"["sre","dev"]"#);
    assert_eq!(cells[4], "False");
    assert_eq!(cells[5], Value::Null);
    assert!(cells[6].as_str().is_some_and(|a| a.ends_with('s')), "age like 0s: {}", cells[6]);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let (_, builtin) = get_json(&server, "/api/v1/namespaces?includeObject=None", TABLE);
    let names: Vec<&str> =
        builtin["columnDefinitions"].as_array().expect("cols").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["Name", "Status", "Age"]);
    assert!(builtin["rows"][0].get("object").is_none());
}

#[test]
fn partial_object_metadata_on_request() {
    let server = setup();
    let accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let (_, list) = get_json(&server, "/apis/keyward.dev/v1alpha1/namespaces/acme/employees", accept);
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert!(list["items"][0].get("spec").is_none());
    assert_eq!(list["items"][0]["metadata"]["name"], "alice");
}

#[test]
fn aggregated_and_legacy_discovery() {
    let server = setup();
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (head, apis) = get_json(&server, "/apis", aggregated);
    assert!(head.contains("as=APIGroupDiscoveryList"), "{head}");
    let keyward = apis["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["metadata"]["name"] == "keyward.dev")
        .expect("group");
    let employees = &keyward["versions"][0]["resources"][0];
    assert_eq!(employees["resource"], "employees");
    assert_eq!(employees["scope"], "Namespaced");
    assert_eq!(employees["shortNames"], json!(["emp"]));
    assert_eq!(employees["subresources"][0]["subresource"], "status");
    let (_, core) = get_json(&server, "/api", aggregated);
    assert_eq!(core["items"][0]["versions"][0]["version"], "v1");

    let (_, legacy) = get_json(&server, "/apis", "application/json");
    assert_eq!(legacy["kind"], "APIGroupList");
    let (_, list) = get_json(&server, "/apis/keyward.dev/v1alpha1", "application/json");
    let names: Vec<&str> =
        list["resources"].as_array().expect("res").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["employees", "employees/status"]);
    let (_, core) = get_json(&server, "/api/v1", "application/json");
    assert!(core["resources"].as_array().expect("res").iter().any(|r| r["name"] == "secrets"));
    let (_, version) = get_json(&server, "/version", "application/json");
    assert_eq!(version["minor"], "33");
    assert_eq!(request(&server, "GET", "/apis/nope.example/v1", &[], "").0, 404);
}

#[test]
fn openapi_v3_describes_crd_kinds_and_field_validation() {
    let server = setup();
    let (_, index) = get_json(&server, "/openapi/v3", "application/json");
    let url = index["paths"]["apis/keyward.dev/v1alpha1"]["serverRelativeURL"].as_str().expect("gv entry").to_string();
    assert!(url.contains("?hash="));
    let (_, doc) = get_json(&server, &url, "application/json");
    let schema = &doc["components"]["schemas"]["dev.keyward.v1alpha1.Employee"];
    assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], "Employee");
    assert!(schema["properties"]["spec"]["properties"]["email"]["description"].is_string());
    let patch = &doc["paths"]["/apis/keyward.dev/v1alpha1/namespaces/{namespace}/employees/{name}"]["patch"];
    assert!(patch["parameters"].as_array().expect("params").iter().any(|p| p["name"] == "fieldValidation"));
}

#[test]
fn admin_endpoint_injects_faults_and_lists_requests() {
    let server = setup();
    let fault = json!({"action": "fail", "method": "GET", "path": "/api/v1/namespaces", "status": 503, "count": 1});
    let (code, _, _) = post(&server, "/_double/faults", &fault);
    assert_eq!(code, 200);
    assert_eq!(request(&server, "GET", "/api/v1/namespaces", &[], "").0, 503);
    assert_eq!(request(&server, "GET", "/api/v1/namespaces", &[], "").0, 200);
    let (_, log) = get_json(&server, "/_double/requests", "application/json");
    let last = log.as_array().and_then(|l| l.last()).expect("entries");
    assert_eq!(last["verb"], "list");
    assert_eq!(last["resource"], "namespaces");
    assert_eq!(server.requests().iter().filter(|r| r.status == 503).count(), 1);
    let (code, _, _) = post(&server, "/_double/faults", &json!({"action": "bogus"}));
    assert_eq!(code, 400);
}

#[test]
fn watch_streams_json_lines_and_ends_at_timeout() {
    let server = setup();
    let (status, head, body) = request(
        &server,
        "GET",
        "/apis/keyward.dev/v1alpha1/namespaces/acme/employees?watch=1&timeoutSeconds=1",
        &[],
        "",
    );
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    let events: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).expect("event JSON")).collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["type"], "ADDED", "resourceVersion unset: current state first");
    assert_eq!(events[0]["object"]["metadata"]["name"], "alice");
}

#[test]
fn kubeconfig_points_at_the_server() {
    let server = setup();
    let config = server.kubeconfig_yaml();
    assert!(config.contains(&format!("server: {}", server.url())));
    let parsed: Value = serde_yaml::from_str(&config).expect("YAML");
    assert_eq!(parsed["current-context"], "kube-double");
}

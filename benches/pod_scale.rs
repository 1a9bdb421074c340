//! keyward in Pods under the chart's default resources: `cargo bench --bench pod_scale`
//! (scripts/bench.sh runs it and puts its rows into docs/performance.md).
//!
//! A real node (`scripts/kube.sh up --node`) and keyward's image built from this release
//! build. For each size (`KEYWARD_BENCH_POD_PEOPLE`, default `1000,10000`): a namespace with
//! that many Employees (created as `kubectl apply` creates them), one privacyIDEA MfaProvider
//! on a realm without users (reached by the Pods over TLS at the host's address) and one grant;
//! then the chart is installed with its defaults (the CRDs applied beforehand) — two replicas, its requests and memory
//! limit — watching that namespace, so that both replicas start with the whole company to
//! cache. Once every Employee has its status (start-up's busiest part) and 30 s more, each
//! replica's container cgroup (v1) is read: its memory high-water mark
//! (`memory.max_usage_in_bytes`, what the limit is enforced against, page cache included),
//! its resident anonymous memory now (`total_rss`), the limit the kubelet set, and the Pod's
//! restarts and OOM kills. Prints one `pod …` line per replica and size for scripts/bench.sh.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use support::node::*;
use support::tls::TlsFront;
use support::*;

/// How long every Employee's first status may take before the run is reported unsettled.
const SETTLE_WITHIN: Duration = Duration::from_secs(600);
/// After start-up has settled, before the steady figures are read.
const STEADY_FOR: Duration = Duration::from_secs(30);

fn cgroup_value(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

fn cgroup_stat(dir: &Path, key: &str) -> u64 {
    std::fs::read_to_string(dir.join("memory.stat"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}/memory.stat has no {key}", dir.display()))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The namespace of one size: its Secret, MfaProvider (through the TLS front, trusting its
/// CA), grant, and `people` Employees.
fn declare(node: &Node, pi: &PrivacyIdea, front: &TlsFront, namespace: &str, people: usize) {
    let realm = namespace.replace('-', "");
    pi.realm(&realm);
    let objects = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "pi-admin", "namespace": namespace, "labels": {"keyward.dev/credentials": "true"}},
            "stringData": {"username": pi.env["KEYWARD_PI_ADMIN"], "password": pi.env["KEYWARD_PI_PASSWORD"]}
        }),
        json!({
            "apiVersion": "keyward.dev/v1alpha1", "kind": "MfaProvider",
            "metadata": {"name": "corp-pi", "namespace": namespace},
            "spec": {
                "privacyidea": {
                    "url": format!("https://{}", front.addr), "realm": realm,
                    "credentials": {"secretRef": {"name": "pi-admin"}}
                },
                "caBundle": front.ca_pem,
                "userMapping": "name"
            }
        }),
        json!({
            "apiVersion": "keyward.dev/v1alpha1", "kind": "AccessGrant",
            "metadata": {"name": "staff-totp", "namespace": namespace},
            "spec": {"provider": "corp-pi", "subjects": {"roles": ["staff"]}, "factors": ["totp"]}
        }),
    ];
    for object in &objects {
        node.apply(object);
    }
    crowd::employees(&node.cluster.kubeconfig, namespace, "c", 0..people);
}

/// The chart's defaults, but for what this node needs, and the CRDs applied beforehand.
fn values(image: &str, provider_host: &str, namespace: &str) -> Value {
    let (repository, tag) = image.rsplit_once(':').expect("image name:tag");
    json!({
        "crds": {"install": false},
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "providerHosts": [provider_host],
        "watch": {"namespaces": [namespace]},
    })
}

fn measure(node: &Node, pi: &PrivacyIdea, front: &TlsFront, image: &str, people: usize) {
    let namespace = format!("pods-{people}");
    let host = front.addr.to_string();
    // The company first, then the chart (its CRDs already applied): both replicas start with
    // everything to cache at once, as after an upgrade or a node failure.
    let created = Instant::now();
    declare(node, pi, front, &namespace, people);
    eprintln!("pod_scale: {people} Employees created in {:.0?}", created.elapsed());
    let out = node.helm_chart("install", &values(image, &host, &namespace));
    assert!(out.status.success(), "helm install: {}", text(&out));
    let start = Instant::now();
    support::cluster::eventually(Duration::from_secs(180), "two replicas Running and Ready", || {
        let pods = node.pods();
        pods.len() == 2 && pods.iter().all(|p| p["status"]["containerStatuses"][0]["ready"] == true)
    });
    let ready = start.elapsed();
    let settle_poll = Duration::from_secs(1 + people as u64 / 2000);
    let all_have_status = || {
        let out = node.kubectl_ok(&[
            "-n",
            &namespace,
            "get",
            "employees",
            "-o",
            "jsonpath={.items[*].status.providers[*].provider}",
        ]);
        out.split_whitespace().count() == people
    };
    let mut settled = None;
    while start.elapsed() < SETTLE_WITHIN {
        if all_have_status() {
            settled = Some(start.elapsed());
            break;
        }
        std::thread::sleep(settle_poll);
    }
    std::thread::sleep(STEADY_FOR);
    let leader = node.lease_holder();
    for pod in node.pods() {
        let name = pod_name(&pod);
        let cgroup = node.memory_cgroup(&pod);
        let status = &pod["status"]["containerStatuses"][0];
        let oom = status["lastState"]["terminated"]["reason"] == "OOMKilled";
        println!(
            "pod people={people} role={} peak_mib={:.1} usage_mib={:.1} rss_mib={:.1} cache_mib={:.1} limit_mib={:.0} \
             limit_hits={} restarts={} oomkilled={} ready_s={:.1} settled_s={}",
            if name == leader { "leader" } else { "standby" },
            mib(cgroup_value(&cgroup, "memory.max_usage_in_bytes")),
            mib(cgroup_value(&cgroup, "memory.usage_in_bytes")),
            mib(cgroup_stat(&cgroup, "total_rss")),
            mib(cgroup_stat(&cgroup, "total_cache")),
            mib(cgroup_value(&cgroup, "memory.limit_in_bytes")),
            cgroup_value(&cgroup, "memory.failcnt"),
            status["restartCount"].as_u64().unwrap_or_default(),
            u8::from(oom),
            ready.as_secs_f64(),
            settled.map_or("n/a".into(), |s| format!("{:.1}", s.as_secs_f64())),
        );
    }
    // The next size starts from fresh Pods; this namespace stays (its Employees carry
    // keyward's finalizer, which only a running keyward removes) but is no longer watched.
    let out = node.helm(&["uninstall", RELEASE, "-n", RELEASE_NS]);
    assert!(out.status.success(), "helm uninstall: {}", text(&out));
    support::cluster::eventually(Duration::from_secs(120), "the release's Pods gone", || {
        node.kubectl_ok(&["get", "pods", "-n", RELEASE_NS, "-l", PODS, "-o", "name"]).trim().is_empty()
    });
}

fn main() {
    let sizes: Vec<usize> = std::env::var("KEYWARD_BENCH_POD_PEOPLE")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pi = privacyidea();
    let node = Node::start("pod-scale", &[]);
    let upstream: SocketAddr =
        pi.url().trim_start_matches("http://").trim_end_matches('/').parse().expect("privacyIDEA address");
    let node_ip: IpAddr = node.env("KEYWARD_NODE_IP").parse().expect("KEYWARD_NODE_IP");
    let front = TlsFront::start_at(upstream, node_ip);
    let image = node.build_and_load_the_image(Path::new(env!("CARGO_BIN_EXE_keyward")), "bench");
    node.kubectl_ok(&["create", "namespace", RELEASE_NS]);
    node.kubectl_ok(&["apply", "--server-side", "-f", &repo().join("crds").display().to_string()]);
    for people in sizes {
        measure(&node, pi, &front, &image, people);
    }
}

//! Shared helpers for the kube-double integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube::api::{Api, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// keyward's CRDs, parsed.
pub fn keyward_crds() -> Vec<Value> {
    ["employees", "accessgrants", "mfaproviders"]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(repo_root().join("crds").join(format!("{n}.yaml"))).expect("CRD file");
            serde_yaml::from_str(&text).expect("CRD YAML")
        })
        .collect()
}

pub fn employee_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("keyward.dev", "v1alpha1", "Employee"), "employees")
}

/// Creates keyward's CRDs and the namespace `acme` through kube-rs.
pub async fn install_crds(client: &kube::Client) {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in keyward_crds() {
        crds.create(&PostParams::default(), &serde_json::from_value(crd).expect("CRD type")).await.expect("create CRD");
    }
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "acme"}})).expect("ns"),
    )
    .await
    .expect("create namespace");
}

pub fn employees(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &employee_resource())
}

pub fn employee(name: &str, email: &str, roles: &[&str]) -> DynamicObject {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "keyward.dev/v1alpha1",
        "kind": "Employee",
        "metadata": {"name": name},
        "spec": {"email": email, "roles": roles},
    }))
    .expect("employee")
}

/// A kubectl runner bound to one server, with its own discovery cache.
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub cache: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(server: &kube_double::Server) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
        Self { kubeconfig, cache: tempfile::tempdir().expect("tempdir"), _dir: dir }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .current_dir(repo_root())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.cache.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it exits non-zero.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

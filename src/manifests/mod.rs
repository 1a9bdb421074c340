//! Reading GitOps trees of YAML manifests for `plan`, `apply` and `validate`.
//!
//! [`load`] turns files and directories of multi-document YAML into typed objects, each with
//! the file and line it came from, and reports what serde rejects (unknown fields, bad enum
//! values, wrong types, YAML syntax) at its line. [`validate`] then makes the checks the API
//! server would make from the CRD schemas (patterns, ranges, CEL rules) and those no schema
//! can (references between objects, duplicates, identity conflicts).

mod document;
mod load;
mod schema;
mod source;
mod validate;

pub use load::{load, load_with_kustomize};
pub use source::{Loaded, Problem, Severity, Source};
pub use validate::validate;

use crate::crd::{AccessGrant, Employee, MfaProvider, RevocationApproval};
use k8s_openapi::api::core::v1::Secret;

/// The objects read from manifest files.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub providers: Vec<Loaded<MfaProvider>>,
    pub employees: Vec<Loaded<Employee>>,
    pub grants: Vec<Loaded<AccessGrant>>,
    /// Approvals of held plans (`keyward apply` honours them as it honours the annotation).
    pub approvals: Vec<Loaded<RevocationApproval>>,
    pub secrets: Vec<Loaded<Secret>>,
    /// MfaProviders whose file leaves `spec.policy.mode` to its default (Enforce), with what
    /// to say about each: a first rollout is meant to start in Observe.
    pub default_modes: Vec<Problem>,
}

impl Manifests {
    /// The Secret `namespace/name`; the first one read if it is declared twice (which
    /// [`validate`] reports).
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .map(|loaded| &loaded.object)
            .find(|s| s.metadata.namespace.as_deref() == Some(namespace) && s.metadata.name.as_deref() == Some(name))
    }

    /// The string value of `key` in the Secret `namespace/name`: `stringData` wins over
    /// (base64) `data`, as the API server merges them. `None` if the Secret or the key is
    /// absent, or if the `data` value is not UTF-8 (a password is never guessed at).
    pub fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let secret = self.secret(namespace, name)?;
        if let Some(value) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(value.clone());
        }
        let bytes = secret.data.as_ref().and_then(|d| d.get(key))?;
        String::from_utf8(bytes.0.clone()).ok()
    }

    /// Whether the Secret holds `key`, in `stringData` or `data`.
    pub(crate) fn secret_has_key(secret: &Secret, key: &str) -> bool {
        secret.string_data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret.data.as_ref().is_some_and(|d| d.contains_key(key))
    }
}

#[cfg(test)]
mod tests;

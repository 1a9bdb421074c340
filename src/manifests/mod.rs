//! Reading GitOps trees of YAML manifests for `plan`, `apply` and `validate`.

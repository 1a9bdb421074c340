//! Errors of the reconcilers: which write failed on which object.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ControllerError {
    #[error("write status of {kind} {namespace}/{name}: {source}")]
    WriteStatus { kind: &'static str, namespace: String, name: String, source: kube::Error },
    #[error("add finalizer to Employee {namespace}/{name}: {source}")]
    AddFinalizer { namespace: String, name: String, source: kube::Error },
    #[error("remove finalizer from Employee {namespace}/{name}: {source}")]
    RemoveFinalizer { namespace: String, name: String, source: kube::Error },
}

impl ControllerError {
    /// How long to wait before the next attempt: see [`crate::retry::Trouble`].
    pub fn trouble(&self) -> crate::retry::Trouble {
        match self {
            ControllerError::WriteStatus { source, .. }
            | ControllerError::AddFinalizer { source, .. }
            | ControllerError::RemoveFinalizer { source, .. } => crate::retry::Trouble::of_kube(source),
        }
    }

    pub fn category(&self) -> &'static str {
        match self {
            ControllerError::WriteStatus { .. } => "write_status",
            ControllerError::AddFinalizer { .. } => "add_finalizer",
            ControllerError::RemoveFinalizer { .. } => "remove_finalizer",
        }
    }
}

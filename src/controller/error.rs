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
    /// The audit record of a change to a guarded setting could not be written: keyward acts on
    /// the new settings only once the change is on record.
    #[error("record the settings change of MfaProvider {provider} in the audit log: {source}")]
    RecordSettings { provider: String, source: std::io::Error },
}

impl ControllerError {
    /// How long to wait before the next attempt: see [`crate::retry::Trouble`].
    pub fn trouble(&self) -> crate::retry::Trouble {
        match self {
            ControllerError::WriteStatus { source, .. }
            | ControllerError::AddFinalizer { source, .. }
            | ControllerError::RemoveFinalizer { source, .. } => crate::retry::Trouble::of_kube(source),
            ControllerError::RecordSettings { .. } => crate::retry::Trouble::Outage,
        }
    }

    pub fn category(&self) -> &'static str {
        match self {
            ControllerError::WriteStatus { .. } => "write_status",
            ControllerError::AddFinalizer { .. } => "add_finalizer",
            ControllerError::RemoveFinalizer { .. } => "remove_finalizer",
            ControllerError::RecordSettings { .. } => "record_settings",
        }
    }
}

//! `keyward run`: the in-cluster operator.
//!
//! Per watched namespace (or once cluster-wide): reflectors for the four kinds and the
//! labelled Secrets, and three controllers. The MfaProvider controller sweeps a provider
//! whenever something it depends on changes (an Employee, an AccessGrant, its Secret, its own
//! spec or approval) and every `resyncInterval`; the Employee controller owns the finalizer
//! and Employee status; the AccessGrant controller its status. Only the Lease holder acts, and
//! on an MfaProvider only when its installation holds the provider's claim (`claim`).
//!
//! `start` wires the process together; `routing` decides which change wakes which
//! reconcile; `context` is the state the reconcilers share; `provider`, `employee` and
//! `grant` are the reconcilers.

pub mod caches;
pub mod checkpoint;
pub mod claim;
pub mod config;
pub mod context;
pub mod employee;
pub mod error;
pub mod events;
#[cfg(test)]
mod fixtures;
pub mod grant;
pub mod leader;
pub mod provider;
pub mod routing;
pub mod settings;
pub mod start;
pub mod status;
pub mod targets;

pub use start::{RunError, SHUTDOWN_BOUND, read_signer, run};

//! keyward: declared MFA enrolments, enforced.
//!
//! The library holds everything; `main.rs` only parses arguments and dispatches.

pub mod audit;
pub mod cli;
pub mod conformance;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod evidence;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod plugin;
pub mod providers;
pub mod retry;
pub mod sweep;
pub mod telemetry;

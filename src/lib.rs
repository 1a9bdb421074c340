//! keyward: declared MFA enrolments, enforced.
//!
//! The library holds everything; `main.rs` only parses arguments and dispatches.

pub mod crd;
pub mod engine;
pub mod manifests;

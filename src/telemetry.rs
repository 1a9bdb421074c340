//! Logging: human-readable on a terminal, JSON lines otherwise (`KEYWARD_LOG_FORMAT=json`),
//! always on stderr so that stdout carries only the plan.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let json = std::env::var("KEYWARD_LOG_FORMAT").is_ok_and(|f| f == "json");
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

//! `kubectl keyward`: the kubectl plugin (a binary named `kubectl-keyward` on the PATH). Thin:
//! the commands live in `keyward::plugin`.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    keyward::plugin::run(keyward::plugin::Plugin::parse()).await
}

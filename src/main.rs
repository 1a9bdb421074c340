use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    keyward::telemetry::init();
    keyward::cli::run(keyward::cli::Cli::parse()).await
}

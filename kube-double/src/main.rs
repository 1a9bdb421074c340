//! `kube-double --kubeconfig PATH [--port N]`: serves the Kubernetes API test double until
//! interrupted, after writing a kubeconfig that points kubectl and kube-rs at it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// A test double of the Kubernetes API server (not a real cluster): plain HTTP, no auth.
#[derive(Debug, Parser)]
#[command(name = "kube-double", version)]
struct Args {
    /// Where to write the kubeconfig.
    #[arg(long, env = "KUBE_DOUBLE_KUBECONFIG", default_value = "kube-double.kubeconfig")]
    kubeconfig: PathBuf,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Changes kept for watches; older resume points get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = kube_double::Config {
        addr: SocketAddr::new(args.host, args.port),
        history_limit: args.history,
        ..Default::default()
    };
    let server = kube_double::Server::start_with(config).await?;
    server.write_kubeconfig(&args.kubeconfig)?;
    let path = std::fs::canonicalize(&args.kubeconfig).unwrap_or(args.kubeconfig.clone());
    println!("kube-double (a Kubernetes API test double) serving on {}", server.url());
    println!("kubeconfig written to {}", path.display());
    println!("try: KUBECONFIG={} kubectl get namespaces", path.display());
    tokio::signal::ctrl_c().await?;
    server.stop();
    Ok(())
}

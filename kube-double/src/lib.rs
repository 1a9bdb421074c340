//! kube-double: a **test double** of the Kubernetes API server.
//!
//! It speaks enough of the real HTTP API (discovery, CRUD, watch, patches, server-side apply,
//! CRD schema validation, Tables) for kube-rs clients, watchers, reflectors and controllers and
//! for `kubectl` to work against it unmodified, in one process, over plain HTTP on loopback.
//! It is not a Kubernetes: no scheduling, no controllers other than namespace and CRD cleanup,
//! no garbage collection, no authentication or authorization. See the README for the gaps.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = kube_double::Server::start().await?;
//! let client = server.client();
//! server.write_kubeconfig("/tmp/kubeconfig")?;
//! server.faults().fail_next(1, "PATCH", "/apis/keyward.dev/*", 500);
//! let requests = server.requests();
//! # drop((client, requests)); Ok(()) }
//! ```

mod discovery;
mod error;
mod faults;
mod http;
mod patch;
mod proto;
mod registry;
mod schema;
mod selector;
mod store;
mod table;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::Value;

pub use error::{ApiError, Cause};
pub use faults::{Faults, RecordedRequest};

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one. Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// How many changes the watch history keeps; a watch resuming from an older version gets
    /// 410 Gone. Default 10 000.
    pub history_limit: usize,
    /// Period of BOOKMARK events on watches that allow them. Default 1 s (kube-apiserver: ~1 min).
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// A running server. Dropping it stops it (and its runtime thread, if it has one).
pub struct Server {
    shared: Arc<http::Shared>,
    addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    runtime: Option<RuntimeThread>,
}

struct RuntimeThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    /// Starts on a random loopback port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Config::default()).await
    }

    /// Starts with `config`, on the current tokio runtime.
    pub async fn start_with(config: Config) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(store::Store::new(config.history_limit));
        let faults = Faults::new(store.clone());
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(http::Shared {
            store,
            faults,
            requests: Mutex::new(vec![]),
            host: addr.to_string(),
            bookmark_interval: config.bookmark_interval,
            shutdown: shutdown_rx.clone(),
        });
        tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
        Ok(Self { shared, addr, shutdown, runtime: None })
    }

    /// Starts on a runtime thread of its own, for tests that are not async (e.g. ones that
    /// drive `kubectl` and the operator as processes).
    pub fn start_blocking() -> std::io::Result<Self> {
        Self::start_blocking_with(Config::default())
    }

    pub fn start_blocking_with(config: Config) -> std::io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("kube-double".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match Self::start_with(config).await {
                    Ok(server) => {
                        let _ = ready_tx.send(Ok(server));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        let mut server = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("kube-double runtime thread ended before the server started"))??;
        server.runtime = Some(RuntimeThread { stop: Some(stop_tx), thread: Some(thread) });
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML) with one cluster, user and context named `kube-double`, namespace
    /// `default`.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    /// Writes [`Server::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A kube-rs client for this server. Must be called inside a tokio runtime.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap_or_default());
        kube::Client::try_from(config).unwrap_or_else(|e| unreachable!("a plain-HTTP kube config always builds: {e}"))
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Every request served so far (discovery included), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        match self.shared.requests.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn clear_requests(&self) {
        match self.shared.requests.lock() {
            Ok(mut g) => g.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.current_rv()
    }

    /// An object as stored, bypassing the HTTP API (for assertions). `group` is "" for core.
    pub fn stored_object(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store.peek(group, resource, namespace, name)
    }

    /// Stops serving: open watches end, the listener closes.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-double
  cluster:
    server: {url}
users:
- name: kube-double
  user:
    token: kube-double
contexts:
- name: kube-double
  context:
    cluster: kube-double
    user: kube-double
    namespace: default
current-context: kube-double
preferences: {{}}
"
    )
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<http::Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| http::handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "connection ended") },
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

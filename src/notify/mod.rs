//! Notifications: after each sweep, each of the MfaProvider's `spec.notifications` targets
//! gets one message about what the sweep did that it asked for (revocations, failures, a
//! plan held for approval, SLA breaches), in a Slack-compatible `{"text": …}` or as a signed
//! CloudEvent (docs/notifications.md).
//!
//! [`message`] decides what to tell and builds the bytes (pure); the [`Notifier`] spools
//! each notification to disk under its target before returning, and a [`delivery`] task per
//! target sends the spool in order, recording every attempt in the audit trail. Only the
//! leader sweeps, so only the leader spools; a replica that lost the lead still sends what it
//! spooled.

pub mod delivery;
pub mod message;
pub mod targets;

use crate::audit::AuditSink;
use crate::audit::spool::{Spool, SpoolWriter};
use crate::crd::MfaProvider;
use crate::crd::mfa_provider::NotificationTarget;
use crate::metrics::TargetLabels;
use crate::retry::Exponential;
use crate::sweep::SweepReport;
use delivery::{Envelope, SecretSource, TargetDelivery};
use kube::ResourceExt;
use message::Sink;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

/// How many told failures and held plans a target remembers: far more than are open at once,
/// few enough to read at every start.
const TOLD_KEPT: usize = 1024;

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("build the HTTP client for notifications: {0}")]
    Client(#[source] crate::outbound::ClientError),
    #[error("open the notification spool {}: {source}", dir.display())]
    OpenSpool { dir: PathBuf, source: io::Error },
    #[error("spool a notification for {provider} target {target}: {source}")]
    Spool { provider: String, target: String, source: io::Error },
    /// Spooled (it will be sent), but a later sweep may tell its failure or held plan again.
    #[error("remember what {provider} target {target} was told (the notification is spooled): {source}")]
    RememberTold { provider: String, target: String, source: io::Error },
}

/// What a [`Notifier`] needs.
pub struct Settings {
    /// Where notifications wait until delivered: `<spool>/<namespace>/<provider>/<target>/`.
    pub spool: PathBuf,
    /// Where the deliveries are recorded.
    pub audit: Arc<dyn AuditSink>,
    pub secrets: Arc<dyn SecretSource>,
    /// Between failed attempts at one notification.
    pub backoff: Exponential,
    pub backlog: Family<TargetLabels, Gauge>,
    pub failures: Family<TargetLabels, Counter>,
}

impl Settings {
    /// The production backoff: 1 s doubling to 5 min, as for the audit collector.
    pub fn backoff() -> Exponential {
        Exponential { base: Duration::from_secs(1), cap: Duration::from_secs(300) }
    }
}

/// How far a notification got on its way to disk.
enum Written {
    NotSpooled(io::Error),
    NotRemembered(io::Error),
}

/// One target's spool writer and what it was told.
struct Queue {
    writer: SpoolWriter,
    told: Told,
}

/// Spools notifications and runs one delivery task per target.
pub struct Notifier {
    settings: Settings,
    client: reqwest::Client,
    queues: Mutex<HashMap<PathBuf, Arc<Mutex<Queue>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Notifier {
    /// A notifier whose deliveries stop when `shutdown` turns true. The notifications a
    /// previous process left undelivered are sent from now on. Fails only when the HTTP client
    /// cannot be built.
    pub fn start(settings: Settings, shutdown: watch::Receiver<bool>) -> Result<Notifier, NotifyError> {
        let notifier = Notifier {
            settings,
            client: delivery::client().map_err(NotifyError::Client)?,
            queues: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            shutdown,
        };
        for (dir, labels) in notifier.left_over() {
            if let Err(e) = notifier.queue(&dir, labels) {
                tracing::error!(error = %e, "notifications left by a previous process are not delivered");
            }
        }
        Ok(notifier)
    }

    /// Spools what `report` tells each of the provider's targets; returns once each
    /// notification is on disk (or said loudly why not: a notification never holds up a
    /// sweep).
    pub async fn notify(&self, provider: &MfaProvider, report: &SweepReport, sla: Duration) {
        let time = chrono::Utc::now();
        let key = report.plan.provider.clone();
        for target in &provider.spec.notifications {
            let build = |told: &dyn Fn(&str) -> bool| message::build(target, report, sla, time, told);
            self.notify_or_count(provider, &key, target, build).await;
        }
    }

    /// Spools, for each target that wants it, that the settings that can stop revocations
    /// changed (`lines`, field by field).
    pub async fn notify_settings(&self, provider: &MfaProvider, lines: &[String]) {
        let time = chrono::Utc::now();
        let key = crate::crd::ProviderKey::of(provider);
        let key = key.as_str();
        for target in &provider.spec.notifications {
            let build = |_: &dyn Fn(&str) -> bool| message::settings_changed(target, key, lines, time);
            self.notify_or_count(provider, key, target, build).await;
        }
    }

    async fn notify_or_count(
        &self,
        provider: &MfaProvider,
        key: &str,
        target: &NotificationTarget,
        build: impl FnOnce(&dyn Fn(&str) -> bool) -> Option<message::Notification>,
    ) {
        if let Err(e) = self.notify_target(provider, key, target, build).await {
            let labels = TargetLabels { provider: key.to_string(), target: target.name.clone() };
            self.settings.failures.get_or_create(&labels).inc();
            tracing::error!(error = %e, "notify a target");
        }
    }

    async fn notify_target(
        &self,
        provider: &MfaProvider,
        key: &str,
        target: &NotificationTarget,
        build: impl FnOnce(&dyn Fn(&str) -> bool) -> Option<message::Notification>,
    ) -> Result<(), NotifyError> {
        let Some(sink) = Sink::of(target) else { return Ok(()) };
        let namespace = provider.namespace().unwrap_or_default();
        let dir = self.settings.spool.join(&namespace).join(provider.name_any()).join(&target.name);
        let labels = TargetLabels { provider: key.to_string(), target: target.name.clone() };
        let queue = self.queue(&dir, labels)?;
        let built = {
            let queue = lock(&queue);
            build(&|told_key| queue.told.contains(told_key))
        };
        let Some(notification) = built else { return Ok(()) };
        let envelope = Envelope {
            id: notification.id.clone(),
            provider: key.to_string(),
            namespace,
            target: target.name.clone(),
            events: notification.content.events.clone(),
            body: String::from_utf8_lossy(&message::body(&notification, &sink)).into_owned(),
            sink,
        };
        let (provider_key, target_name) = (key.to_string(), target.name.clone());
        let spool_error =
            |source| NotifyError::Spool { provider: provider_key.clone(), target: target_name.clone(), source };
        let line = serde_json::to_vec(&envelope).map_err(|e| spool_error(io::Error::other(e)))?;
        // On disk before the sweep goes on (fsync, off the async workers), and only then
        // remembered as told: a crash between the two tells it again rather than never.
        let written = tokio::task::spawn_blocking(move || {
            let mut queue = lock(&queue);
            queue.writer.append(&line).map_err(Written::NotSpooled)?;
            queue.told.remember(notification.keys).map_err(Written::NotRemembered)
        })
        .await
        .map_err(|e| spool_error(io::Error::other(e)))?;
        match written {
            Ok(()) => Ok(()),
            Err(Written::NotSpooled(source)) => Err(spool_error(source)),
            Err(Written::NotRemembered(source)) => {
                Err(NotifyError::RememberTold { provider: provider_key, target: target_name, source })
            }
        }
    }

    /// The queue of the target spooled under `dir`, opened (and its delivery started) the
    /// first time.
    fn queue(&self, dir: &Path, labels: TargetLabels) -> Result<Arc<Mutex<Queue>>, NotifyError> {
        let mut queues = lock(&self.queues);
        if let Some(queue) = queues.get(dir) {
            return Ok(queue.clone());
        }
        let opened = |source| NotifyError::OpenSpool { dir: dir.to_path_buf(), source };
        let spool = Spool {
            dir: dir.to_path_buf(),
            backlog: self.settings.backlog.get_or_create(&labels).clone(),
            failures: self.settings.failures.get_or_create(&labels).clone(),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        let writer = SpoolWriter::open_alone(spool.clone()).map_err(opened)?;
        let told = Told::open(dir.join("told")).map_err(opened)?;
        let delivery = TargetDelivery {
            spool,
            client: self.client.clone(),
            secrets: self.settings.secrets.clone(),
            audit: self.settings.audit.clone(),
            backoff: self.settings.backoff,
        };
        let mut shutdown = self.shutdown.clone();
        let task = tokio::spawn(delivery.run(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }));
        lock(&self.tasks).push(task);
        let queue = Arc::new(Mutex::new(Queue { writer, told }));
        queues.insert(dir.to_path_buf(), queue.clone());
        Ok(queue)
    }

    /// The target spools under the spool directory: `<namespace>/<provider>/<target>`.
    fn left_over(&self) -> Vec<(PathBuf, TargetLabels)> {
        let subdirs = |dir: &Path| -> Vec<(String, PathBuf)> {
            let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
            let mut found: Vec<(String, PathBuf)> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
                .collect();
            found.sort();
            found
        };
        let mut found = Vec::new();
        for (namespace, ns_dir) in subdirs(&self.settings.spool) {
            for (provider, provider_dir) in subdirs(&ns_dir) {
                for (target, dir) in subdirs(&provider_dir) {
                    found.push((dir, TargetLabels { provider: format!("{namespace}/{provider}"), target }));
                }
            }
        }
        found
    }

    /// Waits for the delivery tasks, once `shutdown` turned true.
    pub async fn stopped(&self) {
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// The failures and held plans a target was told about (their [`message::Notification::keys`]),
/// newest last, kept in `<target spool>/told` so that a restart does not tell them again.
struct Told {
    path: PathBuf,
    keys: VecDeque<String>,
    set: HashSet<String>,
}

impl Told {
    fn open(path: PathBuf) -> io::Result<Told> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let keys: VecDeque<String> = text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
        let set = keys.iter().cloned().collect();
        Ok(Told { path, keys, set })
    }

    fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    /// Adds `keys` and writes the file whole, then renames it into place.
    fn remember(&mut self, keys: Vec<String>) -> io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            if self.set.insert(key.clone()) {
                self.keys.push_back(key);
            }
        }
        while self.keys.len() > TOLD_KEPT {
            if let Some(old) = self.keys.pop_front() {
                self.set.remove(&old);
            }
        }
        let text: String = self.keys.iter().map(|k| format!("{k}\n")).collect();
        let partial = self.path.with_extension("partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &self.path)
    }
}

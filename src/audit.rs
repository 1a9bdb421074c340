//! The audit trail: one JSON line per revocation, and per revocation held back (SPEC item 6).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What happened to a planned revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Revoked,
    AlreadyGone,
    Blocked,
    Failed,
    /// Planned, then found no longer wanted immediately before the provider call.
    Withdrawn,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: DateTime<Utc>,
    /// `<namespace>/<name>` of the MfaProvider.
    pub provider: String,
    pub user: String,
    pub enrolment: String,
    pub kind: String,
    pub reason: String,
    pub employee: Option<String>,
    pub grants: Vec<String>,
    /// `keyward.dev/source-revision` of the Employee (else of the MfaProvider), if set.
    pub source_revision: Option<String>,
    pub outcome: Outcome,
    /// The provider's error for `failed`, the hold for `blocked`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// The approval that let this revocation's held plan through.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval: Option<crate::engine::plan::Approval>,
}

/// Where audit records go.
pub trait AuditSink: Send {
    fn record(&mut self, record: &AuditRecord) -> io::Result<()>;
}

/// Appends JSON lines to a file, flushing each: a record must survive a crash right after the
/// revocation it describes.
pub struct JsonLinesFile {
    path: PathBuf,
    file: File,
}

impl JsonLinesFile {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesFile { path: path.to_path_buf(), file })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AuditSink for JsonLinesFile {
    fn record(&mut self, record: &AuditRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

/// Keeps records in memory (tests, and callers that forward them elsewhere).
#[derive(Default)]
pub struct Memory(pub Vec<AuditRecord>);

impl AuditSink for Memory {
    fn record(&mut self, record: &AuditRecord) -> io::Result<()> {
        self.0.push(record.clone());
        Ok(())
    }
}

/// Hands records to a writer task (the operator: sweeps of several providers run at once and
/// must not wait on each other for the log).
#[derive(Clone)]
pub struct Channel(pub tokio::sync::mpsc::UnboundedSender<AuditRecord>);

impl AuditSink for Channel {
    fn record(&mut self, record: &AuditRecord) -> io::Result<()> {
        self.0.send(record.clone()).map_err(|_| io::Error::other("audit writer stopped"))
    }
}

/// Writes records from the channel to `path` (`-` = stdout), one flushed JSON line each,
/// until every sender is gone.
pub async fn write_from(mut records: tokio::sync::mpsc::UnboundedReceiver<AuditRecord>, path: PathBuf) {
    let mut file = if path.as_os_str() == "-" {
        None
    } else {
        match JsonLinesFile::open(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "open audit log; audit records go to stdout");
                None
            }
        }
    };
    while let Some(record) = records.recv().await {
        let written = match file.as_mut() {
            Some(f) => f.record(&record),
            None => serde_json::to_string(&record).map_err(io::Error::other).and_then(|line| {
                let mut out = io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()
            }),
        };
        if let Err(e) = written {
            // Never silently: the revocation happened, its record must at least reach the log.
            tracing::error!(error = %e, record = ?record, "write audit record");
        }
    }
}

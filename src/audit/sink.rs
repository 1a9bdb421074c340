//! Where records go: a chained file synced to disk after every line (the CLI's `--audit-log`,
//! the operator's volume), standard output (chained as well), or memory (tests, `plan`).
//! `record` returns only once the record is durable: the sweep writes an intent and waits for
//! it before the provider call it announces.

use super::note::{Checkpoint, ORIGIN, Signer};
use super::spool::{Spool, SpoolWriter};
use super::{AuditRecord, Chain, Resolution};
use async_trait::async_trait;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where audit records go. Shared by the revocations of a sweep, which run a few at a time.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends `record`; returns once it is durable. A blocked revocation already recorded
    /// under the same plan digest is not written again.
    async fn record(&self, record: &AuditRecord) -> io::Result<()>;

    /// The intents of `provider` this sink knows to be without an outcome.
    fn unresolved(&self, _provider: &str) -> Vec<AuditRecord> {
        Vec::new()
    }
}

/// Who writes: stamped on every record the operator writes.
#[derive(Clone, Debug, Default)]
pub struct Stamp {
    pub replica: Option<String>,
    pub service_account: Option<String>,
}

impl Stamp {
    fn on(&self, record: &AuditRecord) -> AuditRecord {
        let mut stamped = record.clone();
        stamped.replica = stamped.replica.or_else(|| self.replica.clone());
        stamped.service_account = stamped.service_account.or_else(|| self.service_account.clone());
        stamped
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The open file and its chain.
struct Appender {
    path: PathBuf,
    file: File,
    chain: Chain,
    signer: Option<Arc<Signer>>,
    /// Where lines go on to a collector, after they are on disk here.
    spool: Option<SpoolWriter>,
}

impl Appender {
    fn append(&mut self, record: &AuditRecord) -> io::Result<()> {
        let mut line = self.chain.seal(record)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()?;
        self.file.sync_data()?;
        self.forward(&line[..line.len() - 1]);
        self.checkpoint()
    }

    /// Hands a line that is on disk to the delivery spool. A failure there fails nothing: the
    /// file is the record of truth, and the next open spools again what the spool missed.
    fn forward(&mut self, line: &[u8]) {
        if let Some(spool) = &mut self.spool
            && let Err(e) = spool.append(line)
        {
            spool.spool().failures.inc();
            tracing::error!(error = %e, "audit delivery: spooling a record failed; the audit file has it");
        }
    }

    /// Writes `<log>.checkpoint`: the count and head, signed when a key is configured.
    fn checkpoint(&self) -> io::Result<()> {
        let checkpoint =
            Checkpoint { origin: ORIGIN.into(), count: self.chain.next_seq, head: self.chain.prev.clone() };
        let text = match &self.signer {
            Some(signer) => signer.sign(&checkpoint),
            None => checkpoint.body(),
        };
        let path = checkpoint_path(&self.path);
        // Written whole, then renamed: a crash leaves the old checkpoint or the new one.
        let partial = path.with_extension("checkpoint.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &path)
    }
}

/// Appends chained JSON lines to a file, each flushed and synced to disk: a record must
/// survive a crash right after the provider call it describes. A `<file>.checkpoint` beside
/// it holds the count and head hash after every line, so that a log cut short is caught.
pub struct JsonLinesFile {
    path: PathBuf,
    appender: Arc<Mutex<Appender>>,
    resolution: Mutex<Resolution>,
    stamp: Stamp,
}

impl JsonLinesFile {
    /// Opens (or creates) the log. A last line cut short by a crash mid-write is dropped: it
    /// was never synced whole, so the provider call it would have announced was not made (an
    /// outcome cut short leaves its intent open, which the next sweep resolves).
    pub fn open(path: &Path) -> io::Result<Self> {
        let (resolution, chain) = scan(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesFile {
            path: path.to_path_buf(),
            appender: Arc::new(Mutex::new(Appender {
                path: path.to_path_buf(),
                file,
                chain,
                signer: None,
                spool: None,
            })),
            resolution: Mutex::new(resolution),
            stamp: Stamp::default(),
        })
    }

    pub fn stamped(mut self, stamp: Stamp) -> Self {
        self.stamp = stamp;
        self
    }

    /// Signs every checkpoint with `signer` from now on, starting with one for the log as it
    /// is (the last checkpoint of an unsigned log, or of one signed by another key).
    pub fn signed(self, signer: Arc<Signer>) -> io::Result<Self> {
        {
            let mut appender = lock(&self.appender);
            appender.signer = Some(signer);
            appender.checkpoint()?;
        }
        Ok(self)
    }

    /// Forwards every line from now on to `spool` for delivery to a collector, and spools
    /// the lines of the log it missed (a crash between this file's fsync and the spool's).
    pub fn deliver_to(&self, spool: Spool) -> io::Result<()> {
        let writer = SpoolWriter::open(spool, &last_lines(&self.path)?)?;
        lock(&self.appender).spool = Some(writer);
        Ok(())
    }

    /// The signed checkpoint as it stands (the operator copies it out of the volume).
    pub fn checkpoint_note(&self) -> io::Result<String> {
        std::fs::read_to_string(checkpoint_path(&self.path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl AuditSink for JsonLinesFile {
    async fn record(&self, record: &AuditRecord) -> io::Result<()> {
        if !lock(&self.resolution).admits(record) {
            return Ok(());
        }
        let stamped = self.stamp.on(record);
        let appender = self.appender.clone();
        let written = stamped.clone();
        // fsync off the async workers: other sweeps and the Lease renewal go on meanwhile.
        tokio::task::spawn_blocking(move || lock(&appender).append(&written))
            .await
            .map_err(|e| io::Error::other(format!("audit writer: {e}")))??;
        lock(&self.resolution).note(&stamped);
        Ok(())
    }

    fn unresolved(&self, provider: &str) -> Vec<AuditRecord> {
        lock(&self.resolution).unresolved(provider)
    }
}

/// Reads the whole log once (line by line): the revocations it leaves open, the chain after
/// its last whole line, and a partial last line cut. Only at open: the operator's process
/// start and each `keyward apply`.
fn scan(path: &Path) -> io::Result<(Resolution, Chain)> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Resolution::default(), Chain::default())),
        Err(e) => return Err(e),
    };
    let mut reader = io::BufReader::new(file);
    let mut records = Resolution::default();
    let (mut whole, mut line, mut last) = (0u64, Vec::new(), Vec::new());
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        whole += read as u64;
        if let Ok(record) = serde_json::from_slice::<AuditRecord>(&line) {
            records.note(&record);
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            std::mem::swap(&mut last, &mut line);
        }
    }
    if !line.is_empty() {
        tracing::warn!(
            path = %path.display(),
            bytes = line.len(),
            "the audit log ends in a line cut short by a crash mid-write; dropped (it was never synced whole)"
        );
        OpenOptions::new().write(true).open(path)?.set_len(whole)?;
    }
    Ok((records, Chain::after(&String::from_utf8_lossy(&last))))
}

/// The end of a log, enough for its last line: the chain goes on without reading the log
/// again.
fn last_lines(path: &Path) -> io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let start = file.metadata()?.len().saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    // Not from the start: the first line read may be cut; whole lines only.
    let whole = if start > 0 {
        tail.iter().position(|&b| b == b'\n').map_or(&tail[..0], |i| &tail[i + 1..])
    } else {
        &tail[..]
    };
    Ok(String::from_utf8_lossy(whole).into_owned())
}

/// The checkpoint kept beside a log file.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".checkpoint");
    log.with_file_name(name)
}

/// A checkpoint's count and head hash (its signatures are checked by [`super::Verifier`]).
pub fn read_checkpoint(text: &str) -> Option<(u64, String)> {
    Checkpoint::parse(text).map(|c| (c.count, c.head))
}

/// Standard output, chained too: the log pipeline that collects it can be verified. Its
/// chain starts again with each process, and it cannot be read back: intents a crash left
/// open are not known to the next process (use a file for that).
#[derive(Default)]
pub struct Stdout {
    chain: Mutex<Chain>,
    resolution: Mutex<Resolution>,
    stamp: Stamp,
}

impl Stdout {
    pub fn stamped(stamp: Stamp) -> Self {
        Stdout { stamp, ..Stdout::default() }
    }
}

#[async_trait]
impl AuditSink for Stdout {
    async fn record(&self, record: &AuditRecord) -> io::Result<()> {
        if !lock(&self.resolution).admits(record) {
            return Ok(());
        }
        let stamped = self.stamp.on(record);
        let line = lock(&self.chain).seal(&stamped)?;
        {
            let mut out = io::stdout().lock();
            out.write_all(&line)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        lock(&self.resolution).note(&stamped);
        Ok(())
    }
}

/// The operator's log: the file at `path`, or standard output for `-` (and, said loudly,
/// when the file cannot be opened: records must reach somewhere). With a `spool`, the file's
/// lines are forwarded to it for delivery (a spool that cannot be opened is said loudly too:
/// the file still records everything).
pub fn open_log(path: &Path, stamp: Stamp, signer: Option<Arc<Signer>>, spool: Option<Spool>) -> Arc<dyn AuditSink> {
    if path.as_os_str() == "-" {
        return Arc::new(Stdout::stamped(stamp));
    }
    let opened = JsonLinesFile::open(path).and_then(|file| match signer {
        Some(signer) => file.signed(signer),
        None => Ok(file),
    });
    if let (Ok(file), Some(spool)) = (&opened, spool) {
        let dir = spool.dir.clone();
        if let Err(e) = file.deliver_to(spool) {
            tracing::error!(spool = %dir.display(), error = %e, "open the audit delivery spool; records are not delivered");
        }
    }
    match opened {
        Ok(file) => {
            let open: usize = lock(&file.resolution).pending_count();
            if open > 0 {
                tracing::warn!(path = %path.display(), intents = open, "the audit log has intents without an outcome (a crash mid-revocation); each provider's next sweep resolves them");
            }
            Arc::new(file.stamped(stamp))
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "open audit log; audit records go to stdout");
            Arc::new(Stdout::stamped(stamp))
        }
    }
}

/// Keeps records in memory (tests, `keyward plan`), with the same once-per-digest rule for
/// blocked revocations and the same bookkeeping of open intents as a file.
#[derive(Default)]
pub struct Memory {
    records: Mutex<Vec<AuditRecord>>,
    resolution: Mutex<Resolution>,
}

impl Memory {
    /// A sink whose log already holds `records` (a previous process's, say).
    pub fn after(records: Vec<AuditRecord>) -> Self {
        let resolution = Resolution::of(&records);
        Memory { records: Mutex::new(records), resolution: Mutex::new(resolution) }
    }

    pub fn records(&self) -> Vec<AuditRecord> {
        lock(&self.records).clone()
    }

    /// The outcome records (no intents).
    pub fn outcomes(&self) -> Vec<AuditRecord> {
        self.records().into_iter().filter(|r| r.event == super::Event::Outcome).collect()
    }
}

#[async_trait]
impl AuditSink for Memory {
    async fn record(&self, record: &AuditRecord) -> io::Result<()> {
        if lock(&self.resolution).admits(record) {
            lock(&self.records).push(record.clone());
            lock(&self.resolution).note(record);
        }
        Ok(())
    }

    fn unresolved(&self, provider: &str) -> Vec<AuditRecord> {
        lock(&self.resolution).unresolved(provider)
    }
}

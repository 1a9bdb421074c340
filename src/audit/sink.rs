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

    /// Intents another replica's log leaves open (it died between an intent and its outcome,
    /// its call maybe carried out) that no log has closed since: the leader's to close, since
    /// that replica may never lead again. None when no peer log is known.
    fn abandoned(&self, _provider: &str) -> Vec<AuditRecord> {
        Vec::new()
    }

    /// Another replica's final record of `intent`'s enrolment, made after the intent (see
    /// [`super::peers`]): who and when. None when no peer log says so, or none is known.
    fn settled_elsewhere(&self, _intent: &AuditRecord) -> Option<String> {
        None
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
    /// The file's size, and the size past which it is rotated (none: never).
    size: u64,
    max_size: Option<u64>,
}

impl Appender {
    fn append(&mut self, record: &AuditRecord) -> io::Result<()> {
        let mut line = self.chain.seal(record)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()?;
        self.file.sync_data()?;
        self.size += line.len() as u64;
        self.forward(&line[..line.len() - 1]);
        self.checkpoint()
    }

    fn over_size(&self) -> bool {
        self.max_size.is_some_and(|max| self.size >= max)
    }

    /// Moves the file aside as `<file>.<seq of the next record>` (sorting in chain order) and
    /// starts an empty one; the chain goes on in it. The rename and the new file are made
    /// durable before the next record: a crash in between leaves the records whole in the
    /// rotated file, and [`scan`] continues the chain from there.
    ///
    /// First, the anchor of the new file: a checkpoint marked as the start of a file
    /// (`<file>.anchor-<seq>`), signed when a key is configured. Retention may prune the
    /// rotated files; the files left verify from it, and without the key nobody can make one
    /// for a record where no file started. Written before the rename: a crash in between
    /// leaves an anchor of a start that did not happen, which anchors no file.
    fn rotate(&mut self) -> io::Result<PathBuf> {
        let anchor = Checkpoint { start: Some(self.chain.next_seq), ..self.checkpoint_now() };
        write_whole(&anchor_path(&self.path, self.chain.next_seq), &self.note(&anchor))?;
        let rotated = rotated_path(&self.path, self.chain.next_seq);
        std::fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.size = 0;
        Ok(rotated)
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

    /// Writes `<log>.checkpoint`: the count, head and time, signed when a key is configured.
    fn checkpoint(&self) -> io::Result<()> {
        write_whole(&checkpoint_path(&self.path), &self.note(&self.checkpoint_now()))
    }

    fn checkpoint_now(&self) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            count: self.chain.next_seq,
            head: self.chain.prev.clone(),
            time: Some(chrono::Utc::now()),
            start: None,
        }
    }

    fn note(&self, checkpoint: &Checkpoint) -> String {
        match &self.signer {
            Some(signer) => signer.sign(checkpoint),
            None => checkpoint.body(),
        }
    }
}

/// Writes `text` whole, then renames it into place: a crash leaves the old file or the new
/// one.
fn write_whole(path: &Path, text: &str) -> io::Result<()> {
    let mut partial = path.as_os_str().to_os_string();
    partial.push(".partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

/// Appends chained JSON lines to a file, each flushed and synced to disk: a record must
/// survive a crash right after the provider call it describes. A `<file>.checkpoint` beside
/// it holds the count and head hash after every line, so that a log cut short is caught.
pub struct JsonLinesFile {
    path: PathBuf,
    appender: Arc<Mutex<Appender>>,
    resolution: Mutex<Resolution>,
    stamp: Stamp,
    /// The other replicas' logs, consulted when an open intent is resolved.
    peers: Option<super::peers::PeerLogs>,
}

impl JsonLinesFile {
    /// Opens (or creates) the log. A last line cut short by a crash mid-write is dropped: it
    /// was never synced whole, so the provider call it would have announced was not made (an
    /// outcome cut short leaves its intent open, which the next sweep resolves).
    pub fn open(path: &Path) -> io::Result<Self> {
        let (resolution, chain) = scan(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLinesFile {
            path: path.to_path_buf(),
            appender: Arc::new(Mutex::new(Appender {
                path: path.to_path_buf(),
                file,
                chain,
                signer: None,
                spool: None,
                size,
                max_size: None,
            })),
            resolution: Mutex::new(resolution),
            stamp: Stamp::default(),
            peers: None,
        })
    }

    /// Consults `peers` before recording an open intent's enrolment as revoked.
    pub fn with_peers(mut self, peers: super::peers::PeerLogs) -> Self {
        self.peers = Some(peers);
        self
    }

    pub fn stamped(mut self, stamp: Stamp) -> Self {
        self.stamp = stamp;
        self
    }

    /// Rotates the file once it holds `max_size` bytes, at the first moment no intent is
    /// open (an intent and its outcome stay in one file, so a restart finds every open
    /// intent in the current file). Rotated files are kept; shipping or pruning them is the
    /// volume owner's business (`keyward audit verify` takes them in order, and the files
    /// left after a pruning verify from the anchor each rotation writes).
    pub fn rotating(self, max_size: Option<u64>) -> Self {
        lock(&self.appender).max_size = max_size.filter(|m| *m > 0);
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
        let quiet = {
            let mut resolution = lock(&self.resolution);
            resolution.note(&stamped);
            resolution.pending_count() == 0
        };
        if quiet && lock(&self.appender).over_size() {
            let appender = self.appender.clone();
            match tokio::task::spawn_blocking(move || lock(&appender).rotate()).await {
                Ok(Ok(rotated)) => tracing::info!(rotated = %rotated.display(), "audit log rotated"),
                // The record is durable; the file only grows on until a rotation succeeds.
                Ok(Err(e)) => tracing::error!(path = %self.path.display(), error = %e, "rotate the audit log"),
                Err(e) => tracing::error!(error = %e, "rotate the audit log"),
            }
        }
        Ok(())
    }

    fn unresolved(&self, provider: &str) -> Vec<AuditRecord> {
        lock(&self.resolution).unresolved(provider)
    }

    /// The intents the peers' logs leave open that no log has closed (reading and verifying
    /// every peer log: asked by full sweeps only).
    fn abandoned(&self, provider: &str) -> Vec<AuditRecord> {
        let own = lock(&self.resolution).unresolved(provider);
        let Some(peers) = &self.peers else { return Vec::new() };
        peers.open_intents(provider).into_iter().filter(|i| !own.iter().any(|o| o.key() == i.key())).collect()
    }

    fn settled_elsewhere(&self, intent: &AuditRecord) -> Option<String> {
        self.peers.as_ref()?.settled(intent)
    }
}

/// Where a log rotated before record `next_seq` goes: zero-padded, so that rotated files sort
/// in chain order.
pub fn rotated_path(log: &Path, next_seq: u64) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{next_seq:012}"));
    log.with_file_name(name)
}

/// The files rotated out of `log`, oldest first.
pub fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return Ok(Vec::new());
    };
    numbered_files(dir, &format!("{name}."))
}

/// The files of `dir` named `<prefix><12 digits>` (a rotated log, an anchor), in name order,
/// which is sequence order since the digits are zero-padded.
fn numbered_files(dir: &Path, prefix: &str) -> io::Result<Vec<PathBuf>> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(prefix))
                    .is_some_and(|rest| rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    found.sort();
    Ok(found)
}

/// Reads the whole log once (line by line): the revocations it leaves open, the chain after
/// its last whole line, and a partial last line cut. Only at open: the operator's process
/// start and each `keyward apply`. A log with no line yet continues the chain of the newest
/// file rotated out of it.
fn scan(path: &Path) -> io::Result<(Resolution, Chain)> {
    let (resolution, chain) = scan_one(path)?;
    if chain.next_seq > 0 {
        return Ok((resolution, chain));
    }
    match rotated_files(path)?.last() {
        Some(newest) => Ok((resolution, Chain::after(&last_lines(newest)?))),
        None => Ok((resolution, chain)),
    }
}

fn scan_one(path: &Path) -> io::Result<(Resolution, Chain)> {
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

/// Where the anchor of the file that starts at record `seq` goes (see `Appender::rotate`).
/// Not a rotated file's name (`rotated_files` takes twelve digits only), and not matched by
/// a retention rule that prunes `<log>.0*`.
pub fn anchor_path(log: &Path, seq: u64) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".anchor-{seq:012}"));
    log.with_file_name(name)
}

/// The anchors beside the log that `first` (the current file or one rotated out of it)
/// belongs to, oldest first: the starting points a log whose older files were pruned can
/// verify from.
pub fn anchor_files(first: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = first.file_name().and_then(|n| n.to_str()) else { return Ok(Vec::new()) };
    // `audit.jsonl.000000003000` belongs to `audit.jsonl`.
    let log = match name.rsplit_once('.') {
        Some((log, seq)) if seq.len() == 12 && seq.bytes().all(|b| b.is_ascii_digit()) => log,
        _ => name,
    };
    numbered_files(first.parent().unwrap_or(Path::new("")), &format!("{log}.anchor-"))
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
pub fn open_log(
    path: &Path,
    stamp: Stamp,
    signer: Option<Arc<Signer>>,
    spool: Option<Spool>,
    rotate_size: Option<u64>,
    peers: Vec<PathBuf>,
) -> Arc<dyn AuditSink> {
    if path.as_os_str() == "-" {
        return Arc::new(Stdout::stamped(stamp));
    }
    let opened = JsonLinesFile::open(path)
        .map(|file| file.rotating(rotate_size))
        .map(|file| if peers.is_empty() { file } else { file.with_peers(super::peers::PeerLogs::new(peers, path)) })
        .and_then(|file| match signer {
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

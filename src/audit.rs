//! The audit trail: one JSON line per revocation, and per revocation held back (SPEC item 6).
//!
//! Lines are hash-chained ([`Chain`]): each carries a format version, a sequence number and the
//! SHA-256 of the previous line's exact bytes, so that an edited, removed or reordered line
//! breaks the chain at that point; `keyward audit verify` ([`verify`]) finds the first break.
//! A file the writer opens again continues its chain from the last line.

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

/// The format of a chained line.
pub const FORMAT_VERSION: u32 = 1;

/// The chain's state: the next sequence number and the hash of the last line written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    pub next_seq: u64,
    /// Lower-case hex SHA-256 of the previous line (without its newline); empty before the
    /// first line.
    pub prev: String,
}

/// A record as it is written: its place in the chain, then its own fields.
#[derive(Serialize, Deserialize)]
struct Sealed<'a> {
    v: u32,
    seq: u64,
    prev: String,
    #[serde(flatten)]
    record: std::borrow::Cow<'a, AuditRecord>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Chain {
    /// The chain after the last line of `text` (a log written before), or a new one. The
    /// sequence goes on from that line's; a last line that is not a chained record (an older,
    /// unchained log) still gives its hash.
    pub fn after(text: &str) -> Chain {
        let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else { return Chain::default() };
        let seq = serde_json::from_str::<serde_json::Value>(last)
            .ok()
            .and_then(|v| v.get("seq").and_then(|s| s.as_u64()))
            .map_or(0, |s| s + 1);
        Chain { next_seq: seq, prev: sha256_hex(last.as_bytes()) }
    }

    /// The line for `record` (without a newline), and the chain moved past it.
    pub fn seal(&mut self, record: &AuditRecord) -> io::Result<Vec<u8>> {
        let sealed = Sealed {
            v: FORMAT_VERSION,
            seq: self.next_seq,
            prev: self.prev.clone(),
            record: std::borrow::Cow::Borrowed(record),
        };
        let line = serde_json::to_vec(&sealed).map_err(io::Error::other)?;
        self.next_seq += 1;
        self.prev = sha256_hex(&line);
        Ok(line)
    }
}

/// The first place where a chained log is not what its writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.problem)
    }
}

/// What [`verify`] found in a whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    /// The chain after the last line (its `next_seq` is the count the log claims).
    pub head: Chain,
}

/// Checks `files` (in order; a rotated log continues its chain in the next file): every line
/// a record of this format, sequence numbers without gaps, each `prev` the hash of the line
/// before it. `expect_at_least`: a checkpoint's count; a log shorter than it was truncated.
pub fn verify(files: &[(PathBuf, String)], expect_at_least: Option<(u64, &str)>) -> Result<Verified, Break> {
    let mut chain: Option<Chain> = None;
    let mut records = 0;
    let mut last_at = (PathBuf::new(), 0);
    for (file, text) in files {
        for (i, line) in text.lines().enumerate() {
            let at = |problem: String| Break { file: file.clone(), line: i + 1, problem };
            if line.trim().is_empty() {
                return Err(at("an empty line in the chain".into()));
            }
            let sealed: Sealed = serde_json::from_str(line).map_err(|e| at(format!("not an audit record: {e}")))?;
            if sealed.v != FORMAT_VERSION {
                return Err(at(format!("format version {} (this keyward reads {FORMAT_VERSION})", sealed.v)));
            }
            match &chain {
                // The first line: a log that starts the chain (seq 0) has no predecessor; a
                // rotated file may start later, its predecessor in a file not given.
                None if sealed.seq == 0 && !sealed.prev.is_empty() => {
                    return Err(at("the first record names a predecessor".into()));
                }
                None => {}
                Some(expected) => {
                    if sealed.seq != expected.next_seq {
                        return Err(at(format!(
                            "sequence {} where {} was due: records were removed, added or reordered",
                            sealed.seq, expected.next_seq
                        )));
                    }
                    if sealed.prev != expected.prev {
                        return Err(at(
                            "the previous line is not the one this record was chained to: it was edited or replaced"
                                .into(),
                        ));
                    }
                }
            }
            chain = Some(Chain { next_seq: sealed.seq + 1, prev: sha256_hex(line.as_bytes()) });
            records += 1;
            last_at = (file.clone(), i + 1);
        }
    }
    let head = chain.unwrap_or_default();
    if let Some((count, hash)) = expect_at_least {
        let at = |problem: String| Break { file: last_at.0.clone(), line: last_at.1, problem };
        if head.next_seq < count {
            return Err(at(format!(
                "the log ends at record {} but a checkpoint saw {count}: it was truncated",
                head.next_seq
            )));
        }
        if head.next_seq == count && head.prev != hash {
            return Err(at("the last record is not the one the checkpoint saw".into()));
        }
    }
    Ok(Verified { records, head })
}

/// Where audit records go.
pub trait AuditSink: Send {
    fn record(&mut self, record: &AuditRecord) -> io::Result<()>;
}

/// Appends chained JSON lines to a file, each flushed and synced to disk: a record must
/// survive a crash right after the revocation it describes. A `<file>.checkpoint` beside it
/// holds the count and head hash after every line, so that a log cut short is caught.
pub struct JsonLinesFile {
    path: PathBuf,
    file: File,
    chain: Chain,
}

impl JsonLinesFile {
    pub fn open(path: &Path) -> io::Result<Self> {
        let chain = Chain::after(&last_lines(path)?);
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesFile { path: path.to_path_buf(), file, chain })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AuditSink for JsonLinesFile {
    fn record(&mut self, record: &AuditRecord) -> io::Result<()> {
        let mut line = self.chain.seal(record)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()?;
        self.file.sync_data()?;
        let checkpoint = checkpoint_path(&self.path);
        let text = format!("{}\n{}\n", self.chain.next_seq, self.chain.prev);
        // Written whole, then renamed: a crash leaves the old checkpoint or the new one.
        let partial = checkpoint.with_extension("checkpoint.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &checkpoint)
    }
}

/// The end of a log, enough for its last line: a log of months is not read whole to go on
/// with its chain. Empty when there is no log yet.
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

/// A checkpoint's count and head hash.
pub fn read_checkpoint(text: &str) -> Option<(u64, String)> {
    let mut lines = text.lines();
    let count = lines.next()?.trim().parse().ok()?;
    Some((count, lines.next()?.trim().to_string()))
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
    // Standard output is chained too: the log pipeline that collects it can be verified.
    let mut stdout_chain = Chain::default();
    while let Some(record) = records.recv().await {
        let written = match file.as_mut() {
            Some(f) => f.record(&record),
            None => stdout_chain.seal(&record).and_then(|line| {
                let mut out = io::stdout().lock();
                out.write_all(&line)?;
                out.write_all(b"\n")?;
                out.flush()
            }),
        };
        if let Err(e) = written {
            // Never silently: the revocation happened, its record must at least reach the log.
            tracing::error!(error = %e, record = ?record, "write audit record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> AuditRecord {
        AuditRecord {
            time: chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").expect("time").to_utc(),
            provider: "acme/corp-pi".into(),
            user: format!("user{n}"),
            enrolment: format!("TOTP{n}"),
            kind: "totp".into(),
            reason: "EmployeeOffboarded".into(),
            employee: Some(format!("user{n}")),
            grants: vec![],
            source_revision: None,
            outcome: Outcome::Revoked,
            detail: None,
            approval: None,
        }
    }

    fn log(n: usize) -> String {
        let mut chain = Chain::default();
        (0..n).map(|i| String::from_utf8(chain.seal(&record(i)).expect("seal")).expect("utf-8") + "\n").collect()
    }

    fn check(text: &str, checkpoint: Option<(u64, &str)>) -> Result<Verified, Break> {
        verify(&[(PathBuf::from("audit.jsonl"), text.to_string())], checkpoint)
    }

    #[test]
    fn an_untouched_log_verifies_and_every_tampering_is_caught_at_its_line() {
        let text = log(5);
        let head = check(&text, None).expect("intact");
        assert_eq!((head.records, head.head.next_seq), (5, 5));
        let lines: Vec<&str> = text.lines().collect();
        let join = |lines: Vec<&str>| lines.iter().map(|l| format!("{l}\n")).collect::<String>();

        let edited = text.replacen("user2", "user9", 1);
        assert_eq!(check(&edited, None).expect_err("edited").line, 4, "the line after the edit names it");

        let mut removed = lines.clone();
        removed.remove(2);
        let error = check(&join(removed), None).expect_err("removed");
        assert_eq!(error.line, 3);
        assert!(error.problem.contains("sequence 3 where 2 was due"), "{error}");

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(check(&join(swapped), None).expect_err("reordered").line, 2);

        // Cut short: only a checkpoint can tell, and it does.
        let truncated = join(lines[..3].to_vec());
        assert!(check(&truncated, None).is_ok(), "a prefix is a valid chain by itself");
        let error = check(&truncated, Some((5, &head.head.prev))).expect_err("truncated");
        assert!(error.problem.contains("truncated"), "{error}");
        assert!(check(&text, Some((5, &head.head.prev))).is_ok());

        assert_eq!(check(&format!("{text}not json\n"), None).expect_err("garbage").line, 6);
    }

    #[test]
    fn a_log_opened_again_continues_its_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        for i in 0..3 {
            JsonLinesFile::open(&path).expect("open").record(&record(i)).expect("write");
        }
        let text = std::fs::read_to_string(&path).expect("log");
        let checkpoint = read_checkpoint(&std::fs::read_to_string(checkpoint_path(&path)).expect("checkpoint"));
        let (count, hash) = checkpoint.expect("parsed");
        let verified = check(&text, Some((count, &hash))).expect("one chain across three opens");
        assert_eq!(verified.records, 3);
        assert_eq!(count, 3);
    }
}

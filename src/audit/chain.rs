//! The hash chain over the log's lines, and its verification.

use super::AuditRecord;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

/// The format of a chained line: 2 added write-ahead intents and the fields of
/// `docs/audit.md`; 3 added `notification` records; 1 and 2 are still read.
pub const FORMAT_VERSION: u32 = 4;

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
/// before it. `expect_at_least`: a checkpoint's count and head. The log may be longer (the
/// checkpoint trails it), but the record it counted last must hash to its head: the chain is
/// unkeyed, so whoever edits a record can recompute every `prev` after it, and only a hash
/// from outside the log (the checkpoint's) tells. A log shorter than the count was truncated.
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
            if !(1..=FORMAT_VERSION).contains(&sealed.v) {
                return Err(at(format!("format version {} (this keyward reads {FORMAT_VERSION})", sealed.v)));
            }
            match &chain {
                // The first line: a log that starts the chain (seq 0) has no predecessor; a
                // rotated file may start later, its predecessor in a file not given.
                None if sealed.seq == 0 && !sealed.prev.is_empty() => {
                    return Err(at("the first record names a predecessor".into()));
                }
                None => {
                    if let Some((count, head)) = expect_at_least {
                        pinned_before(count, head, &sealed).map_err(at)?;
                    }
                }
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
            let hash = sha256_hex(line.as_bytes());
            if let Some((count, head)) = expect_at_least
                && sealed.seq + 1 == count
                && hash != head
            {
                return Err(at(format!(
                    "record {} is not the one the checkpoint saw as its last (of {count}): it or a record before it \
                     was edited, and the chain after it recomputed",
                    sealed.seq
                )));
            }
            chain = Some(Chain { next_seq: sealed.seq + 1, prev: hash });
            records += 1;
            last_at = (file.clone(), i + 1);
        }
    }
    let head = chain.unwrap_or_default();
    if let Some((count, _)) = expect_at_least {
        let at = |problem: String| Break { file: last_at.0.clone(), line: last_at.1, problem };
        if head.next_seq < count {
            return Err(at(format!(
                "the log ends at record {} but a checkpoint saw {count}: it was truncated",
                head.next_seq
            )));
        }
    }
    Ok(Verified { records, head })
}

/// The checkpoint's last record against a log whose first record is `first`: when that
/// record comes before the log, it is the one `first` is chained to; further back, the
/// checkpoint pins a record that was not given, and holds the log to nothing.
fn pinned_before(count: u64, head: &str, first: &Sealed) -> Result<(), String> {
    if count == first.seq && first.prev != head {
        return Err(format!(
            "the first record (seq {}) is not chained to the record the checkpoint saw as its last: \
             the record before it was replaced",
            first.seq
        ));
    }
    if 0 < count && count < first.seq {
        return Err(format!(
            "the log starts at seq {} but the checkpoint saw only {count} record(s): it pins a record not given \
             (give the files from there, or a newer checkpoint)",
            first.seq
        ));
    }
    Ok(())
}

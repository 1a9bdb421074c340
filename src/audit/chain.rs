//! The hash chain over the log's lines, and its verification.

use super::AuditRecord;
use super::note::Checkpoint;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

/// The format of a chained line: 2 added write-ahead intents and the fields of
/// `docs/audit.md`; 3 added `notification` records; 4 invitations and approvals; 5
/// `settings-changed` records. Older formats are still read.
pub const FORMAT_VERSION: u32 = 5;

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

/// A checkpoint handed to [`verify`]: what it says, where it came from, and whether a
/// signature by the auditor's key was found valid on it. Without that, it holds the log only
/// against accidents: whoever can write the volume can write a checkpoint too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub checkpoint: Checkpoint,
    pub file: PathBuf,
    pub signed: bool,
}

/// What a log is held to besides its own chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The newest checkpoint (the ConfigMap copy, or `<log>.checkpoint`): the log is not
    /// shorter than its count, and the record it counted last hashes to its head.
    pub checkpoint: Option<Held>,
    /// The anchors a log may start from when its first record is not seq 0: checkpoints
    /// written at a rotation (`start`); others are not taken.
    pub anchors: Vec<Held>,
}

/// How the first record given is known to be where the log starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// No record at all.
    Empty,
    /// Seq 0, with no predecessor: the start of the chain.
    Genesis,
    /// A later record, chained to the record an anchor names (a rotation's checkpoint).
    Anchor(Held),
}

impl Start {
    /// Where the log starts and what says so, in words (`audit verify`, the report).
    pub fn label(&self) -> String {
        match self {
            Start::Empty => "no record".into(),
            Start::Genesis => "seq 0, the start of the chain".into(),
            Start::Anchor(held) if held.signed => format!(
                "seq {}, anchored by the signed checkpoint {} (written when the log was rotated there; the files \
                 before it were pruned)",
                held.checkpoint.count,
                held.file.display()
            ),
            Start::Anchor(held) => format!(
                "seq {}, anchored by the checkpoint {}, whose signature was not checked: an unsigned anchor anchors \
                 nothing against whoever can write the volume (check it with the verifier key)",
                held.checkpoint.count,
                held.file.display()
            ),
        }
    }
}

/// How old `held` (the newest checkpoint) is at `now`, in words; an error when it is older
/// than `max_age`, or `max_age` is asked for and its age cannot be told. A signed checkpoint
/// that is too old is what is left when a log is cut back to an earlier checkpoint and the
/// newer ones are removed: the cut verifies, but only up to that time.
pub fn checkpoint_age(
    held: Option<&Held>,
    now: DateTime<Utc>,
    max_age: Option<chrono::Duration>,
) -> Result<String, String> {
    let too_old = |age: String| match max_age {
        Some(max) => Err(format!("{age}; --max-age {} asks for a newer one", duration_label(max))),
        None => Ok(age),
    };
    let Some(held) = held else { return too_old("none".into()) };
    match (held.checkpoint.time, held.checkpoint.age(now)) {
        (Some(time), Some(age)) => {
            let label = format!(
                "written {} ({} ago)",
                time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                duration_label(age)
            );
            if max_age.is_some_and(|max| age > max) { too_old(label) } else { Ok(label) }
        }
        _ => too_old("without a time (written by a keyward before checkpoints carried one)".into()),
    }
}

fn duration_label(duration: chrono::Duration) -> String {
    // Whole seconds: a checkpoint's time has no more.
    let seconds = std::time::Duration::from_secs(duration.num_seconds().max(0).unsigned_abs());
    humantime::format_duration(seconds).to_string()
}

/// What [`verify`] found in a whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    /// The seq of the first record (0 for an empty log).
    pub first_seq: u64,
    pub start: Start,
    /// The chain after the last line (its `next_seq` is the count the log claims).
    pub head: Chain,
}

/// Checks `files` (in order; a rotated log continues its chain in the next file): every line
/// a record of this format, sequence numbers without gaps, each `prev` the hash of the line
/// before it; the first record is seq 0, or the start an anchor of `expected` names (files
/// before it pruned), since otherwise the oldest records could be cut away unseen. With
/// `expected.checkpoint`, the log may be longer than its count (the checkpoint trails it),
/// but the record it counted last must hash to its head: the chain is unkeyed, so whoever
/// edits a record can recompute every `prev` after it, and only a hash from outside the log
/// (the checkpoint's) tells. A log shorter than the count was truncated.
pub fn verify(files: &[(PathBuf, String)], expected: &Expected) -> Result<Verified, Break> {
    let pin = expected.checkpoint.as_ref().map(|held| (held.checkpoint.count, held.checkpoint.head.as_str()));
    let mut chain: Option<Chain> = None;
    let (mut records, mut first_seq, mut start) = (0, 0, Start::Empty);
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
                None => {
                    start = anchored(&sealed, &expected.anchors).map_err(at)?;
                    first_seq = sealed.seq;
                    if let Some((count, head)) = pin {
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
            if let Some((count, head)) = pin
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
    if let Some((count, _)) = pin
        && head.next_seq < count
    {
        return Err(Break {
            file: last_at.0,
            line: last_at.1,
            problem: format!("the log ends at record {} but a checkpoint saw {count}: it was truncated", head.next_seq),
        });
    }
    Ok(Verified { records, first_seq, start, head })
}

/// How the log's first record is anchored: seq 0 with no predecessor, or the start an anchor
/// names, with the `prev` it names (so the cut is pinned to that record, not merely to its
/// number).
fn anchored(first: &Sealed, anchors: &[Held]) -> Result<Start, String> {
    if first.seq == 0 {
        return if first.prev.is_empty() {
            Ok(Start::Genesis)
        } else {
            Err("the first record names a predecessor".into())
        };
    }
    let mut candidates: Vec<&Held> =
        anchors.iter().filter(|a| a.checkpoint.start == Some(first.seq) && a.checkpoint.count == first.seq).collect();
    // A signed anchor first: it is the one that means something.
    candidates.sort_by_key(|a| !a.signed);
    match candidates.iter().find(|a| a.checkpoint.head == first.prev) {
        Some(anchor) => Ok(Start::Anchor((*anchor).clone())),
        None if !candidates.is_empty() => Err(format!(
            "the first record (seq {}) is not chained to the record its anchor names: the record before it was \
             replaced",
            first.seq
        )),
        None => Err(format!(
            "the log starts at seq {} and no anchor names that start: the records before it were removed (give \
             the files from seq 0, or the anchor written when the log was rotated there)",
            first.seq
        )),
    }
}

/// The checkpoint's last record against a log whose first record is `first`: when that
/// record comes right before the log, it is the one `first` is chained to; further back, the
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

//! The other replicas' audit logs, read (never written) when an intent a crash left open is
//! resolved.
//!
//! Each replica keeps its own chained log. When replica A dies between an intent and its
//! outcome and replica B, leading meanwhile, revokes the same enrolment, A later finds the
//! enrolment gone. Without B's log, A would record it `revoked` too: two final records for one
//! revocation across the logs. With the peers' logs (a shared volume, `--audit-peer-logs`), A
//! sees B's final record made after its intent and closes its intent as `interrupted`, naming
//! B's record, which stays the only final one.

use super::{AuditRecord, Event, Outcome};
use std::path::{Path, PathBuf};

/// Paths of peer logs: each a path whose components may hold one `*` (any run of
/// characters), e.g. `/var/log/keyward-peers/*/audit.jsonl`.
#[derive(Clone, Debug, Default)]
pub struct PeerLogs {
    patterns: Vec<PathBuf>,
    /// This replica's own log, never counted as a peer.
    own: Option<PathBuf>,
}

impl PeerLogs {
    pub fn new(patterns: Vec<PathBuf>, own: &Path) -> PeerLogs {
        PeerLogs { patterns, own: std::fs::canonicalize(own).ok().or_else(|| Some(own.to_path_buf())) }
    }

    /// The peers' current log files (rotated ones go with them in [`Self::verified_logs`]).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = self.patterns.iter().flat_map(|p| expand(p)).collect();
        found.sort();
        found.dedup();
        found.retain(|f| std::fs::canonicalize(f).ok().as_ref() != self.own.as_ref());
        found
    }

    /// The records of every peer log whose chain verifies (rotated files first). A log that
    /// does not verify is no evidence: whoever edited it could have written anything into it
    /// (an open intent to make the leader read a user, a final record to hide a revocation's
    /// own), so it is said in the operator's log and left out.
    fn verified_logs(&self) -> Vec<(PathBuf, Vec<AuditRecord>)> {
        let mut logs = Vec::new();
        for current in self.files() {
            match read_verified(&current) {
                Ok(records) => logs.push((current, records)),
                Err(broken) => tracing::error!(
                    peer = %current.display(),
                    %broken,
                    "a peer's audit log does not verify: it is not taken as evidence of any revocation"
                ),
            }
        }
        logs
    }

    /// The intents of `provider` that a peer's log leaves open (its writer died or stopped
    /// between an intent and its outcome) and that no log, this replica's own included, has
    /// closed since. The leader closes them: a replica that died mid-revocation may never lead
    /// again, and the call it made may well have reached the provider, so without this the
    /// revocation could stay without a final record anywhere.
    pub fn open_intents(&self, provider: &str) -> Vec<AuditRecord> {
        let peers = self.verified_logs();
        let mut open: Vec<AuditRecord> =
            peers.iter().flat_map(|(_, records)| super::Resolution::of(records).unresolved(provider)).collect();
        if open.is_empty() {
            return open;
        }
        let mut closing: Vec<AuditRecord> = peers.into_iter().flat_map(|(_, records)| records).collect();
        if let Some(own) = &self.own {
            let mut files = super::sink::rotated_files(own).unwrap_or_default();
            files.push(own.clone());
            closing.extend(
                files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).flat_map(|text| records_of(&text)),
            );
        }
        closing.retain(|r| r.event == Event::Outcome && r.outcome != Outcome::Failed);
        open.retain(|intent| !closing.iter().any(|r| r.key() == intent.key() && r.time >= intent.time));
        open
    }

    /// The final record another replica wrote for `intent`'s enrolment after the intent, if
    /// any: `<replica> at <time>`.
    pub fn settled(&self, intent: &AuditRecord) -> Option<String> {
        self.verified_logs().iter().find_map(|(file, records)| {
            records.iter().find_map(|r| {
                let final_outcome = matches!(r.outcome, Outcome::Revoked | Outcome::AlreadyGone);
                (r.event == Event::Outcome
                    && final_outcome
                    && r.provider == intent.provider
                    && r.enrolment == intent.enrolment
                    && r.time >= intent.time)
                    .then(|| {
                        let who = r.replica.clone().unwrap_or_else(|| file.display().to_string());
                        format!("{who} at {}", r.time.to_rfc3339())
                    })
            })
        })
    }
}

fn records_of(text: &str) -> Vec<AuditRecord> {
    text.lines().filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok()).collect()
}

/// A peer's log (its rotated files, then `current`), held to its chain, to its own checkpoint
/// and to the anchors beside it as `keyward audit verify` holds a log. Signatures are not
/// checked here (the operator holds no verifier key); the chain still catches an edit that did
/// not recompute every later line, a truncation behind the checkpoint, and a cut front.
fn read_verified(current: &Path) -> Result<Vec<AuditRecord>, String> {
    // The checkpoint first: the writer appends a line, then rewrites the checkpoint, so the
    // log read after it holds at least what it counted.
    let held = |file: PathBuf| -> Option<super::Held> {
        let checkpoint = super::Checkpoint::parse(&std::fs::read_to_string(&file).ok()?)?;
        Some(super::Held { checkpoint, file, signed: false })
    };
    let checkpoint = held(super::checkpoint_path(current));
    let mut files = super::sink::rotated_files(current).map_err(|e| format!("list its rotated files: {e}"))?;
    files.push(current.to_path_buf());
    let mut texts = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
        texts.push((file, text));
    }
    // The writer may be mid-line: a last line without its newline is not written yet.
    if let Some((_, last)) = texts.last_mut()
        && !last.ends_with('\n')
    {
        last.truncate(last.rfind('\n').map_or(0, |i| i + 1));
    }
    let first = texts.first().map(|(f, _)| f.clone()).unwrap_or_else(|| current.to_path_buf());
    let anchors = super::anchor_files(&first).unwrap_or_default().into_iter().filter_map(held).collect();
    super::verify(&texts, &super::Expected { checkpoint, anchors }).map_err(|broken| broken.to_string())?;
    Ok(texts.iter().flat_map(|(_, text)| records_of(text)).collect())
}

/// The files matching `pattern` (a `*` stands for any run of characters within one path
/// component).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy().to_string();
        found = match part.split_once('*') {
            None => found.into_iter().map(|base| base.join(&part)).collect(),
            Some((prefix, suffix)) => found
                .into_iter()
                .flat_map(|base| {
                    let dir = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base.clone() };
                    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                        .map(|entries| {
                            entries
                                .filter_map(Result::ok)
                                .filter(|e| {
                                    let name = e.file_name().to_string_lossy().to_string();
                                    name.len() >= prefix.len() + suffix.len()
                                        && name.starts_with(prefix)
                                        && name.ends_with(suffix)
                                })
                                .map(|e| base.join(e.file_name()))
                                .collect()
                        })
                        .unwrap_or_default();
                    entries
                })
                .collect(),
        };
    }
    found.into_iter().filter(|p| p.is_file()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `records` as a writer chains them (a peer log must verify to count).
    fn chained(records: &[AuditRecord]) -> String {
        let mut chain = crate::audit::Chain::default();
        records.iter().map(|r| String::from_utf8(chain.seal(r).expect("seal")).expect("utf-8") + "\n").collect()
    }

    fn record(event: Event, outcome: Outcome, minute: u32, replica: &str) -> AuditRecord {
        serde_json::from_value(serde_json::json!({
            "time": format!("2026-11-30T11:{minute:02}:00Z"), "event": event, "provider": "acme/corp-pi",
            "user": "dave", "enrolment": "TOTP1", "kind": "totp", "reason": "EmployeeOffboarded",
            "employee": "dave", "grants": [], "source_revision": null, "outcome": outcome, "replica": replica,
        }))
        .expect("record")
    }

    #[test]
    fn a_final_record_of_a_peer_after_the_intent_settles_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for pod in ["a", "b"] {
            std::fs::create_dir(dir.path().join(pod)).expect("dir");
        }
        let own = dir.path().join("a/audit.jsonl");
        let peer = dir.path().join("b/audit.jsonl");
        let line = |r: &AuditRecord| serde_json::to_string(r).expect("json") + "\n";
        let intent = record(Event::Intent, Outcome::Intended, 10, "a");
        // Its own log holds a revocation too: never its own peer.
        std::fs::write(&own, line(&intent) + &line(&record(Event::Outcome, Outcome::Revoked, 12, "a"))).expect("own");
        std::fs::write(&peer, chained(&[record(Event::Outcome, Outcome::Revoked, 5, "b")])).expect("peer");
        let peers = PeerLogs::new(vec![dir.path().join("*/audit.jsonl")], &own);
        assert_eq!(peers.files(), vec![peer.clone()]);
        assert_eq!(peers.settled(&intent), None, "the peer's record is older than the intent");

        let later = chained(&[
            record(Event::Outcome, Outcome::Revoked, 5, "b"),
            record(Event::Outcome, Outcome::Interrupted, 11, "b"),
            record(Event::Outcome, Outcome::AlreadyGone, 11, "b"),
        ]);
        std::fs::write(&peer, &later).expect("peer");
        assert_eq!(peers.settled(&intent).as_deref(), Some("b at 2026-11-30T11:11:00+00:00"));

        // An edited peer log is no evidence: its final record no longer settles anything.
        std::fs::write(&peer, later.replacen("11:11:00", "11:11:30", 1)).expect("edit the peer");
        assert_eq!(peers.settled(&intent), None, "a log that does not verify settled an intent");
    }

    #[test]
    fn a_peer_intent_left_open_is_the_leaders_to_close_until_some_log_closes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for pod in ["a", "b"] {
            std::fs::create_dir(dir.path().join(pod)).expect("dir");
        }
        let (own, peer) = (dir.path().join("b/audit.jsonl"), dir.path().join("a/audit.jsonl"));
        let line = |r: &AuditRecord| serde_json::to_string(r).expect("json") + "\n";
        // a died between its intent and the outcome; an earlier intent of its own it closed.
        let intent = record(Event::Intent, Outcome::Intended, 10, "a");
        let log = chained(&[
            record(Event::Intent, Outcome::Intended, 5, "a"),
            record(Event::Outcome, Outcome::Revoked, 6, "a"),
            intent.clone(),
        ]);
        std::fs::write(&peer, &log).expect("peer");
        std::fs::write(&own, line(&record(Event::Outcome, Outcome::Revoked, 7, "b"))).expect("own");
        let peers = PeerLogs::new(vec![dir.path().join("*/audit.jsonl")], &own);
        let open = peers.open_intents("acme/corp-pi");
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].time, intent.time);
        assert!(peers.open_intents("acme/other").is_empty(), "another provider's");

        // b, leading, closed it (its own log): no longer open; a failed attempt closes nothing.
        std::fs::write(&own, line(&record(Event::Outcome, Outcome::Failed, 11, "b"))).expect("own");
        assert_eq!(peers.open_intents("acme/corp-pi").len(), 1, "a failed call closes nothing");
        std::fs::write(&own, line(&record(Event::Outcome, Outcome::Revoked, 11, "b"))).expect("own");
        assert!(peers.open_intents("acme/corp-pi").is_empty());

        // A forged open intent (a line added without its chain) makes the leader read nobody.
        std::fs::write(&own, "").expect("own");
        let forged = chained(&[record(Event::Outcome, Outcome::Revoked, 1, "a")]) + &line(&intent);
        std::fs::write(&peer, forged).expect("peer");
        assert!(peers.open_intents("acme/corp-pi").is_empty(), "an unchained line was taken as an intent");
    }
}

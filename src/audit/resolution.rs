//! What a log tells about the revocations still open: write-ahead intents without an outcome
//! (a crash between the intent and the provider's answer, or between the answer and its
//! record), and the blocked revocations already recorded under a plan's digest. Pure: the
//! sinks feed it every line they read and write.

use super::{AuditRecord, Event, Outcome};
use std::collections::HashSet;

#[derive(Debug, Default, Clone)]
pub struct Resolution {
    /// Intents without an outcome yet, oldest first.
    pending: Vec<AuditRecord>,
    /// (provider, plan digest, user, enrolment) of every blocked revocation recorded.
    blocked: HashSet<(String, String, String, String)>,
}

impl Resolution {
    /// What the records of a log (in order) leave open.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Self {
        let mut resolution = Resolution::default();
        for record in records {
            resolution.note(record);
        }
        resolution
    }

    /// From the lines of a log as written (chained or not); lines that are not records are
    /// skipped: `verify` is where they are reported.
    pub fn of_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut resolution = Resolution::default();
        for line in lines {
            if let Ok(record) = serde_json::from_str::<AuditRecord>(line) {
                resolution.note(&record);
            }
        }
        resolution
    }

    fn blocked_key(record: &AuditRecord) -> Option<(String, String, String, String)> {
        let digest = record.plan_digest.clone()?;
        Some((record.provider.clone(), digest, record.user.clone(), record.enrolment.clone()))
    }

    /// Whether `record` is worth writing: a blocked revocation is recorded once per plan
    /// digest, not on every sweep that finds the plan still held.
    pub fn admits(&self, record: &AuditRecord) -> bool {
        record.outcome != Outcome::Blocked || Self::blocked_key(record).is_none_or(|k| !self.blocked.contains(&k))
    }

    /// Takes a written record into account.
    pub fn note(&mut self, record: &AuditRecord) {
        match record.event {
            Event::Intent => self.pending.push(record.clone()),
            Event::Outcome => {
                // A failed call may still have been carried out (its answer lost or cut short,
                // a timeout after the provider acted): the intent stays open, and the next
                // read of the provider settles it as revoked or planned again. Otherwise such
                // a revocation would end with `failed` as its only record.
                if record.outcome != Outcome::Failed {
                    self.pending.retain(|p| p.key() != record.key());
                }
                if record.outcome == Outcome::Blocked
                    && let Some(key) = Self::blocked_key(record)
                {
                    self.blocked.insert(key);
                }
            }
            // None of these announces a revocation or settles one.
            Event::Notification | Event::Invitation | Event::Approval | Event::SettingsChanged => {}
        }
    }

    /// How many intents are still without an outcome.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The intents of `provider` still without an outcome.
    pub fn unresolved(&self, provider: &str) -> Vec<AuditRecord> {
        self.pending.iter().filter(|p| p.provider == provider).cloned().collect()
    }
}

//! Following the providers' event logs: drift found in seconds at any size
//! (docs/contract.md, rule 8).
//!
//! An enrolment made past keyward (an admin in the provider's console, a self-service portal)
//! would otherwise wait for the next full resync. The leader reads each provider's event log
//! a few seconds apart and sweeps the users it names with a targeted sweep. The full resync stays
//! the safety net: a provider without a followed log, a read that fails, or a burst larger
//! than one read follows all end in a full sweep at the latest at the resync.
//!
//! The cursor is kept in memory, per leadership term. A term starts with a full sweep of every
//! provider, which sees every enrolment made before it; the cursor of a term is taken just
//! before those sweeps are sent ([`start_term`]). Where that read failed, the follower's first
//! read takes it and asks for one more full sweep, so that nothing enrolled between the term's
//! first sweep and that read goes unseen.

use super::context::{Context, locked};
use super::targets;
use crate::crd::ProviderKey;
use crate::providers::EnrolmentEvents;
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where each provider's log was read up to, in this leadership term.
#[derive(Default)]
pub struct Cursors {
    /// By provider: (leadership epoch, cursor).
    at: HashMap<ProviderKey, (u64, String)>,
}

/// What one read of a provider's log asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Follow {
    /// Nothing new.
    Nothing,
    /// A targeted sweep of these users.
    Users(Vec<String>),
    /// A full sweep: the first read of the term, or a burst the read could not follow.
    Full(&'static str),
}

impl Cursors {
    /// The cursor to read on from: none when the term changed since it was taken.
    pub fn after(&self, provider: &ProviderKey, epoch: u64) -> Option<&str> {
        self.at.get(provider).filter(|(e, _)| *e == epoch).map(|(_, c)| c.as_str())
    }

    /// Takes a read's result in: moves the cursor and says what to sweep.
    pub fn advance(&mut self, provider: &ProviderKey, epoch: u64, events: EnrolmentEvents) -> Follow {
        let first = self.after(provider, epoch).is_none();
        self.at.insert(provider.clone(), (epoch, events.cursor));
        if first {
            Follow::Full("the event log is followed from here on")
        } else if events.overflowed {
            Follow::Full("more enrolment events than one read follows")
        } else if events.users.is_empty() {
            Follow::Nothing
        } else {
            Follow::Users(events.users)
        }
    }

    /// Takes the cursor of a term before the term's first sweep: that sweep sees everything
    /// before it, so reads from here on need no full sweep of their own.
    pub fn start_term(&mut self, provider: &ProviderKey, epoch: u64, cursor: String) {
        self.at.insert(provider.clone(), (epoch, cursor));
    }

    /// Forgets a provider no longer there.
    pub fn retain(&mut self, providers: &[ProviderKey]) {
        self.at.retain(|key, _| providers.contains(key));
    }
}

/// Reads every provider's event log every `interval` while this replica leads, until the
/// process ends, and asks for the sweeps the events call for.
pub async fn follow(ctx: Arc<Context>, interval: Duration) {
    // Providers whose last read failed rest until then (backing off by what failed).
    let mut resting: HashMap<ProviderKey, tokio::time::Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !ctx.is_leader() || ctx.synced().is_err() {
            continue;
        }
        let providers: Vec<_> = ctx
            .caches
            .providers
            .state()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && !p.spec.suspend && !ctx.args.paused)
            .collect();
        locked(&ctx.sweep.cursors).retain(&providers.iter().map(|p| ProviderKey::of(p)).collect::<Vec<_>>());
        let now = tokio::time::Instant::now();
        resting.retain(|_, until| *until > now);
        for provider in providers {
            let key = ProviderKey::of(&provider);
            if resting.contains_key(&key) {
                continue;
            }
            if let Err(wait) = read_once(&ctx, &provider).await {
                resting.insert(key, now + wait);
            }
        }
    }
}

/// Takes every provider's cursor as a leadership term begins, before its first sweeps are
/// sent: those sweeps see everything enrolled before, the follower everything after, and no
/// extra full sweep is needed (one at 10,000 tokens takes a minute, and an offboarding made
/// meanwhile waits for it). A provider whose log cannot be read in time gets its cursor from
/// the follower's first read, with the full sweep that then asks for.
pub async fn start_term(ctx: &Context) {
    let epoch = ctx.leading.epoch.load(std::sync::atomic::Ordering::SeqCst);
    let providers = ctx.caches.providers.state();
    let reads =
        providers.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && !p.spec.suspend).map(|p| async {
            let connected = ctx.connect(p).ok()?;
            let read = tokio::time::timeout(TERM_START_BOUND, connected.enrolment_events(None)).await;
            Some((ProviderKey::of(p), read.ok()?.ok()??.cursor))
        });
    for (key, cursor) in futures::future::join_all(reads).await.into_iter().flatten() {
        locked(&ctx.sweep.cursors).start_term(&key, epoch, cursor);
    }
}

/// How long a new term's first sweeps wait for the providers' cursors.
const TERM_START_BOUND: Duration = Duration::from_secs(3);

/// One read of one provider's log, and the sweep it calls for; after a failed read, how long
/// the provider's log rests.
async fn read_once(ctx: &Context, provider: &Arc<crate::crd::MfaProvider>) -> Result<(), Duration> {
    let key = ProviderKey::of(provider);
    let retry_key = format!("EventLog/{key}");
    // A provider whose client cannot be made is reported by its sweeps.
    let Ok(connected) = ctx.connect(provider) else { return Ok(()) };
    let epoch = ctx.leading.epoch.load(std::sync::atomic::Ordering::SeqCst);
    let after = locked(&ctx.sweep.cursors).after(&key, epoch).map(str::to_string);
    let events = match connected.enrolment_events(after.as_deref()).await {
        Ok(Some(events)) => events,
        Ok(None) => return Ok(()),
        Err(e) => {
            let wait = ctx.sweep.retries.next(&retry_key, crate::retry::Trouble::of_category(e.category()));
            tracing::warn!(error = %e, retry_in = ?wait, "follow the provider's event log");
            return Err(wait);
        }
    };
    ctx.sweep.retries.reset(&retry_key);
    let follow = locked(&ctx.sweep.cursors).advance(&key, epoch, events);
    match follow {
        Follow::Nothing => return Ok(()),
        Follow::Users(users) => {
            tracing::info!(provider = %key, ?users, "enrolment events: sweeping these users");
            targets::add_users(&ctx.sweep.targets, &key, users.iter().map(String::as_str));
        }
        Follow::Full(why) => targets::require_full(&ctx.sweep.targets, &key, why),
    }
    locked(&ctx.sweep.changes).entry(key).or_insert_with(std::time::Instant::now);
    let _ = ctx.outputs.provider_trigger.unbounded_send(ObjectRef::from_obj(provider.as_ref()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(cursor: &str, users: &[&str], overflowed: bool) -> EnrolmentEvents {
        EnrolmentEvents { cursor: cursor.into(), users: users.iter().map(|u| u.to_string()).collect(), overflowed }
    }

    #[test]
    fn a_term_starts_with_a_full_sweep_then_follows_the_users_named() {
        let mut cursors = Cursors::default();
        let pi = ProviderKey::new("acme", "pi");
        assert_eq!(cursors.after(&pi, 1), None);
        assert_eq!(
            cursors.advance(&pi, 1, read("40", &[], false)),
            Follow::Full("the event log is followed from here on")
        );
        assert_eq!(cursors.after(&pi, 1), Some("40"));
        assert_eq!(cursors.advance(&pi, 1, read("40", &[], false)), Follow::Nothing);
        assert_eq!(cursors.advance(&pi, 1, read("42", &["mallory"], false)), Follow::Users(vec!["mallory".into()]));
        assert_eq!(
            cursors.advance(&pi, 1, read("900", &["a", "b"], true)),
            Follow::Full("more enrolment events than one read follows")
        );
        // Another term: the cursor of the last one is not trusted.
        assert_eq!(cursors.after(&pi, 2), None);
        assert_eq!(
            cursors.advance(&pi, 2, read("901", &[], false)),
            Follow::Full("the event log is followed from here on")
        );
        cursors.retain(&[]);
        assert_eq!(cursors.after(&pi, 2), None);
        // A term whose cursor was taken before its first sweep needs no extra full sweep.
        cursors.start_term(&pi, 3, "950".into());
        assert_eq!(cursors.advance(&pi, 3, read("951", &["eve"], false)), Follow::Users(vec!["eve".into()]));
    }
}

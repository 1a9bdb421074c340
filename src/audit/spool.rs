//! The delivery spool: a directory beside the audit file (`<log>.spool/`) holding the sealed
//! lines still to be delivered to a collector, and how far the collector acknowledged them.
//!
//! The file sink appends each line here after the log's own fsync ([`SpoolWriter`]); a
//! delivery task drains them in order ([`Spool::drain_until`], with a [`Deliver`] saying what
//! is done with each line) and records each acknowledgement. Notifications use the same
//! mechanism, one spool per target. Lines go to numbered segments
//! (`00000000000000000007.jsonl`), a new one past [`SEGMENT_BYTES`]; the writer only ever
//! appends to the newest, so a segment with a newer one beside it is final and is deleted once
//! acknowledged to its end.
//! `acked` holds the acknowledged position (segment, byte offset) and the hash of the line
//! there, written whole and renamed: a restart resends nothing the collector acknowledged.

use super::sha256_hex;
use crate::retry::Exponential;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A segment grows to about this size before the next one starts.
pub const SEGMENT_BYTES: u64 = 1024 * 1024;

/// How often an idle drain looks at the spool without being woken (a spool a previous
/// process left, a wake-up lost).
pub const POLL: Duration = Duration::from_secs(5);

/// What a delivery does with each spooled line; [`Spool::drain_until`] hands the lines out.
pub trait Deliver {
    /// Names the delivery in the drain's log messages ("audit delivery").
    const NAME: &'static str;

    /// Takes one line (without its newline) as far as it will go: delivered, or given up on.
    /// The line is acknowledged when this returns, so it must not return while the line may
    /// still need sending; a line that can never be delivered is given up here, or it would
    /// hold back every line behind it.
    fn deliver(&self, line: &[u8]) -> impl Future<Output = ()> + Send;
}

/// The spool of one audit file, shared by its writer and its delivery task.
#[derive(Clone, Debug)]
pub struct Spool {
    pub dir: PathBuf,
    /// Lines spooled and not yet acknowledged (`keyward_audit_delivery_backlog`).
    pub backlog: Gauge,
    /// Spool writes and delivery attempts that failed (`keyward_audit_delivery_failures_total`).
    pub failures: Counter,
    /// Woken on every append, so delivery does not wait for its poll.
    pub wake: Arc<Notify>,
}

/// A place in the spool: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// The collector's acknowledgement: everything before `position`; `hash` is the id of the
/// last line acknowledged (empty before the first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    pub position: Position,
    pub hash: String,
}

impl Ack {
    fn parse(text: &str) -> Option<Ack> {
        let mut words = text.split_whitespace();
        let segment = words.next()?.parse().ok()?;
        let offset = words.next()?.parse().ok()?;
        let hash = words.next().unwrap_or_default().to_string();
        Some(Ack { position: Position { segment, offset }, hash })
    }
}

impl Spool {
    /// The spool of the audit file `log`: `<log>.spool/`.
    pub fn beside(log: &Path, backlog: Gauge, failures: Counter) -> Spool {
        let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".spool");
        Spool { dir: log.with_file_name(name), backlog, failures, wake: Arc::new(Notify::new()) }
    }

    fn segment_path(&self, segment: u64) -> PathBuf {
        self.dir.join(format!("{segment:020}.jsonl"))
    }

    /// The segment numbers present, oldest first.
    fn segments(&self) -> io::Result<Vec<u64>> {
        let mut numbers: Vec<u64> = fs::read_dir(&self.dir)
            .map_err(|e| named(e, "list the spool", &self.dir))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".jsonl")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The acknowledged position; the start of the oldest segment when nothing was
    /// acknowledged yet.
    pub fn acked(&self) -> io::Result<Ack> {
        let path = self.dir.join("acked");
        match fs::read_to_string(&path) {
            Ok(text) => Ack::parse(&text).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a spool position", path.display()))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let first = self.segments()?.first().copied().unwrap_or_default();
                Ok(Ack { position: Position { segment: first, offset: 0 }, hash: String::new() })
            }
            Err(e) => Err(named(e, "read", &path)),
        }
    }

    /// Records `ack`: written whole, synced, then renamed over the old one.
    pub fn acknowledge(&self, ack: &Ack) -> io::Result<()> {
        let path = self.dir.join("acked");
        let partial = self.dir.join("acked.partial");
        let text = format!("{} {} {}\n", ack.position.segment, ack.position.offset, ack.hash);
        let mut file = File::create(&partial).map_err(|e| named(e, "create", &partial))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_data()).map_err(|e| named(e, "write", &partial))?;
        fs::rename(&partial, &path).map_err(|e| named(e, "rename onto", &path))
    }

    /// The line at `at`, if a whole one is there, and the position after it.
    fn line_at(&self, at: Position) -> io::Result<Option<(Vec<u8>, Position)>> {
        let path = self.segment_path(at.segment);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(named(e, "open", &path)),
        };
        file.seek(SeekFrom::Start(at.offset)).map_err(|e| named(e, "seek in", &path))?;
        let mut line = Vec::new();
        let read = io::BufReader::new(file).read_until(b'\n', &mut line).map_err(|e| named(e, "read", &path))?;
        // A line still being written is not there yet.
        if read == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        line.pop();
        Ok(Some((line, Position { segment: at.segment, offset: at.offset + read as u64 })))
    }

    /// The next whole line from `at` on, and the position after it. A segment read to its end
    /// with a newer one beside it is final: it is deleted (everything in it was acknowledged
    /// when `at` is the acknowledged position) and reading goes on in the next one.
    pub fn next_line(&self, mut at: Position) -> io::Result<Option<(Vec<u8>, Position)>> {
        loop {
            if let Some(found) = self.line_at(at)? {
                return Ok(Some(found));
            }
            let Some(newer) = self.segments()?.into_iter().find(|&s| s > at.segment) else { return Ok(None) };
            // The writer moved on only after its last write here: read once more before
            // dropping the segment, or a line landed just before the switch is lost.
            if let Some(found) = self.line_at(at)? {
                return Ok(Some(found));
            }
            let finished = self.segment_path(at.segment);
            if let Err(e) = fs::remove_file(&finished)
                && e.kind() != io::ErrorKind::NotFound
            {
                return Err(named(e, "delete the delivered segment", &finished));
            }
            at = Position { segment: newer, offset: 0 };
        }
    }

    /// Hands every spooled line to `delivery` in order, the ones a previous process left
    /// first, until `shutdown`. A line is acknowledged only after `deliver` returned: a line in
    /// hand at shutdown is abandoned, and the next process hands it out again. A spool that
    /// cannot be read is counted as a failure and tried again after `backoff`.
    pub async fn drain_until<D: Deliver>(
        &self,
        delivery: &D,
        backoff: Exponential,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            () = self.drain_forever(delivery, backoff) => {}
        }
    }

    async fn drain_forever<D: Deliver>(&self, delivery: &D, backoff: Exponential) {
        let mut attempt = 0;
        loop {
            match self.drain(delivery).await {
                Ok(()) => {
                    attempt = 0;
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Err(e) => {
                    self.failures.inc();
                    tracing::warn!(
                        error = %e,
                        spool = %self.dir.display(),
                        backlog = self.backlog.get(),
                        "{}: reading the spool failed",
                        D::NAME
                    );
                    tokio::time::sleep(backoff.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// Hands out the lines from the acknowledged position to the end of the spool.
    async fn drain<D: Deliver>(&self, delivery: &D) -> io::Result<()> {
        let mut ack = self.acked()?;
        while let Some((line, after)) = self.next_line(ack.position)? {
            delivery.deliver(&line).await;
            ack = Ack { position: after, hash: sha256_hex(&line) };
            self.acknowledge(&ack)?;
            self.backlog.dec();
        }
        Ok(())
    }

    /// How many whole lines wait from `at` on (read once, at open, for the backlog gauge).
    fn count_from(&self, at: Position) -> io::Result<i64> {
        let mut count = 0;
        for segment in self.segments()?.into_iter().filter(|&s| s >= at.segment) {
            let path = self.segment_path(segment);
            let mut file = File::open(&path).map_err(|e| named(e, "open", &path))?;
            if segment == at.segment {
                file.seek(SeekFrom::Start(at.offset)).map_err(|e| named(e, "seek in", &path))?;
            }
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(|e| named(e, "read", &path))?;
            count += bytes.iter().filter(|&&b| b == b'\n').count() as i64;
        }
        Ok(count)
    }
}

/// Appends sealed lines to the newest segment; owned by the file sink's appender.
pub struct SpoolWriter {
    spool: Spool,
    segment: u64,
    file: File,
    len: u64,
    pub max_segment_bytes: u64,
}

impl SpoolWriter {
    /// Opens the spool for writing. `log_tail`: the end of the audit
    /// file; the lines of it after the last one spooled (or acknowledged) are spooled again:
    /// a crash between the log's fsync and the spool's append loses no delivery.
    pub fn open(spool: Spool, log_tail: &str) -> io::Result<SpoolWriter> {
        Self::opened(spool, Some(log_tail))
    }

    /// Opens a spool that no log feeds (notifications, `crate::notify`): what it holds is all
    /// there is, and nothing is spooled again.
    pub fn open_alone(spool: Spool) -> io::Result<SpoolWriter> {
        Self::opened(spool, None)
    }

    fn opened(spool: Spool, log_tail: Option<&str>) -> io::Result<SpoolWriter> {
        fs::create_dir_all(&spool.dir).map_err(|e| named(e, "create the spool", &spool.dir))?;
        let ack = spool.acked()?;
        let segments = spool.segments()?;
        let mut last = None;
        for &segment in segments.iter().rev() {
            last = last_whole_line_hash(&spool.segment_path(segment))?;
            if last.is_some() {
                break;
            }
        }
        let last = last.or_else(|| Some(ack.hash.clone()).filter(|h| !h.is_empty()));
        let segment = writing_segment(segments.last().copied(), ack.position);
        let path = spool.segment_path(segment);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| named(e, "open", &path))?;
        let len = file.metadata().map_err(|e| named(e, "stat", &path))?.len();
        spool.backlog.set(spool.count_from(ack.position)?);
        let mut writer = SpoolWriter { spool, segment, file, len, max_segment_bytes: SEGMENT_BYTES };
        for line in log_tail.map(|tail| missing_lines(tail, last.as_deref())).unwrap_or_default() {
            writer.append(line.as_bytes())?;
        }
        Ok(writer)
    }

    /// Appends one sealed line (without its newline) and wakes the delivery.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.len >= self.max_segment_bytes {
            let next = self.segment + 1;
            let path = self.spool.segment_path(next);
            self.file =
                OpenOptions::new().create(true).append(true).open(&path).map_err(|e| named(e, "open", &path))?;
            (self.segment, self.len) = (next, 0);
        }
        let path = self.spool.segment_path(self.segment);
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
        self.file.write_all(&bytes).and_then(|()| self.file.sync_data()).map_err(|e| named(e, "append to", &path))?;
        self.len += bytes.len() as u64;
        self.spool.backlog.inc();
        self.spool.wake.notify_one();
        Ok(())
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }
}

/// The segment to append to: the newest, else the acknowledged one, or the one after it when
/// part of it was acknowledged (gone, it must not be written again below that offset).
fn writing_segment(newest: Option<u64>, acked: Position) -> u64 {
    newest.filter(|&n| n >= acked.segment).unwrap_or(acked.segment + u64::from(acked.offset > 0))
}

/// The lines of `log_tail` after the one whose hash is `last` (all of them when it is not
/// there: a spool that was never written to starts with the log's next record instead).
fn missing_lines<'a>(log_tail: &'a str, last: Option<&str>) -> Vec<&'a str> {
    let Some(last) = last else { return Vec::new() };
    let lines: Vec<&str> = log_tail.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.iter().rposition(|l| sha256_hex(l.as_bytes()) == last) {
        Some(i) => lines[i + 1..].to_vec(),
        None => {
            tracing::warn!(
                "the last line delivered or spooled is not in the audit file's tail (a new or replaced log): delivery goes on from its next record"
            );
            Vec::new()
        }
    }
}

/// The hash of the last whole line of a segment; a line cut short by a crash is cut off.
fn last_whole_line_hash(path: &Path) -> io::Result<Option<String>> {
    let bytes = fs::read(path).map_err(|e| named(e, "read", path))?;
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(whole as u64))
            .map_err(|e| named(e, "cut the partial line of", path))?;
    }
    let text = &bytes[..whole];
    let last = text[..whole.saturating_sub(1)].rsplit(|&b| b == b'\n').next().filter(|l| !l.is_empty());
    Ok(last.map(sha256_hex))
}

fn named(e: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(dir: &Path) -> Spool {
        Spool::beside(&dir.join("audit.jsonl"), Gauge::default(), Counter::default())
    }

    fn drain(spool: &Spool) -> Vec<String> {
        let mut ack = spool.acked().expect("acked");
        let mut lines = Vec::new();
        while let Some((line, after)) = spool.next_line(ack.position).expect("next") {
            ack = Ack { position: after, hash: sha256_hex(&line) };
            spool.acknowledge(&ack).expect("ack");
            spool.backlog.dec();
            lines.push(String::from_utf8(line).expect("utf-8"));
        }
        lines
    }

    #[test]
    fn lines_come_out_in_order_across_segments_and_finished_segments_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = SpoolWriter::open(spool(dir.path()), "").expect("open");
        writer.max_segment_bytes = 20;
        for i in 0..10 {
            writer.append(format!("line {i} ......").as_bytes()).expect("append");
        }
        assert_eq!(writer.spool().backlog.get(), 10);
        let lines = drain(writer.spool());
        assert_eq!(lines, (0..10).map(|i| format!("line {i} ......")).collect::<Vec<_>>());
        assert_eq!(writer.spool().backlog.get(), 0);
        // Only the segment being written is left.
        assert_eq!(writer.spool().segments().expect("segments").len(), 1);
    }

    #[test]
    fn a_reopened_spool_resumes_after_the_acknowledged_line_and_counts_its_backlog() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = SpoolWriter::open(spool(dir.path()), "").expect("open");
        for i in 0..3 {
            writer.append(format!("a{i}").as_bytes()).expect("append");
        }
        let first = writer.spool().next_line(writer.spool().acked().expect("acked").position).expect("next");
        let (line, after) = first.expect("a line");
        writer.spool().acknowledge(&Ack { position: after, hash: sha256_hex(&line) }).expect("ack");
        drop(writer);
        let reopened = SpoolWriter::open(spool(dir.path()), "").expect("reopen");
        assert_eq!(reopened.spool().backlog.get(), 2);
        assert_eq!(drain(reopened.spool()), vec!["a1", "a2"]);
    }

    #[test]
    fn lines_the_log_has_and_the_spool_missed_are_spooled_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = SpoolWriter::open(spool(dir.path()), "").expect("open");
        writer.append(b"one").expect("append");
        drop(writer);
        // A crash after the log's fsync of "two" and "three", before their spool appends, and
        // one that cut the spool's next line short.
        let newest = *spool(dir.path()).segments().expect("segments").last().expect("a segment");
        let path = spool(dir.path()).segment_path(newest);
        OpenOptions::new().append(true).open(&path).and_then(|mut f| f.write_all(b"tw")).expect("cut line");
        let reopened = SpoolWriter::open(spool(dir.path()), "one\ntwo\nthree\n").expect("reopen");
        assert_eq!(drain(reopened.spool()), vec!["one", "two", "three"]);
    }

    /// Records each line handed out, with the hash acknowledged when it was handed out, and
    /// never returns from `stall_on`.
    struct Recorder {
        spool: Spool,
        seen: std::sync::Mutex<Vec<(String, String)>>,
        stall_on: Option<&'static str>,
    }

    impl Recorder {
        fn new(spool: &Spool, stall_on: Option<&'static str>) -> Arc<Recorder> {
            Arc::new(Recorder { spool: spool.clone(), seen: Default::default(), stall_on })
        }

        fn lines(&self) -> Vec<String> {
            self.seen.lock().expect("seen").iter().map(|(line, _)| line.clone()).collect()
        }
    }

    impl Deliver for Recorder {
        const NAME: &'static str = "test delivery";

        async fn deliver(&self, line: &[u8]) {
            let line = String::from_utf8(line.to_vec()).expect("utf-8");
            let acked = self.spool.acked().expect("acked").hash;
            self.seen.lock().expect("seen").push((line.clone(), acked));
            if self.stall_on == Some(line.as_str()) {
                std::future::pending::<()>().await;
            }
        }
    }

    const QUICK: Exponential = Exponential { base: Duration::from_millis(10), cap: Duration::from_millis(50) };

    /// Drains `spool` into `recorder` on a task until the returned sender is used or dropped.
    fn start(
        spool: &Spool,
        recorder: &Arc<Recorder>,
    ) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (spool, recorder) = (spool.clone(), recorder.clone());
        let task = tokio::spawn(async move {
            spool
                .drain_until(&*recorder, QUICK, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        (stop, task)
    }

    /// Waits up to `limit` for `done`.
    async fn within(limit: Duration, what: &str, done: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stopped(stop: tokio::sync::oneshot::Sender<()>, task: tokio::task::JoinHandle<()>) {
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the drain stops at shutdown")
            .expect("the drain did not panic");
    }

    #[tokio::test]
    async fn the_drain_hands_out_lines_in_order_and_acknowledges_each_only_after_its_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = SpoolWriter::open_alone(spool(dir.path())).expect("open");
        writer.max_segment_bytes = 20;
        let lines: Vec<String> = (0..5).map(|i| format!("line {i} ......")).collect();
        for line in &lines {
            writer.append(line.as_bytes()).expect("append");
        }
        let spool = writer.spool().clone();
        let recorder = Recorder::new(&spool, None);
        let (stop, task) = start(&spool, &recorder);
        within(Duration::from_secs(2), "five lines", || recorder.lines().len() >= 5).await;
        within(Duration::from_secs(2), "the last acknowledgement", || spool.backlog.get() == 0).await;
        stopped(stop, task).await;

        let seen = recorder.seen.lock().expect("seen").clone();
        let acked_before: Vec<String> = std::iter::once(String::new())
            .chain(lines.iter().map(|l| sha256_hex(l.as_bytes())))
            .take(lines.len())
            .collect();
        assert_eq!(seen, lines.iter().cloned().zip(acked_before).collect::<Vec<_>>());
        assert_eq!(spool.acked().expect("acked").hash, sha256_hex(lines[4].as_bytes()));
        assert_eq!(spool.failures.get(), 0);
    }

    #[tokio::test]
    async fn a_line_in_hand_at_shutdown_is_handed_out_again_by_the_next_drain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = SpoolWriter::open_alone(spool(dir.path())).expect("open");
        for line in ["a0", "a1", "a2"] {
            writer.append(line.as_bytes()).expect("append");
        }
        let first = Recorder::new(writer.spool(), Some("a1"));
        let (stop, task) = start(writer.spool(), &first);
        within(Duration::from_secs(2), "a1 in hand", || first.lines().len() >= 2).await;
        // The delivery of a1 never returns: shutdown abandons it.
        stopped(stop, task).await;
        assert_eq!(first.lines(), vec!["a0", "a1"]);
        assert_eq!(writer.spool().acked().expect("acked").hash, sha256_hex(b"a0"));
        drop(writer);

        let reopened = SpoolWriter::open_alone(spool(dir.path())).expect("reopen");
        assert_eq!(reopened.spool().backlog.get(), 2);
        let next = Recorder::new(reopened.spool(), None);
        let (stop, task) = start(reopened.spool(), &next);
        within(Duration::from_secs(2), "the rest", || next.lines().len() >= 2).await;
        within(Duration::from_secs(2), "the last acknowledgement", || reopened.spool().backlog.get() == 0).await;
        stopped(stop, task).await;
        assert_eq!(next.lines(), vec!["a1", "a2"]);
    }

    #[tokio::test]
    async fn an_idle_drain_is_woken_by_an_append_and_stops_at_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = SpoolWriter::open_alone(spool(dir.path())).expect("open");
        let recorder = Recorder::new(writer.spool(), None);
        let (stop, task) = start(writer.spool(), &recorder);
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.append(b"woken").expect("append");
        // Well before the poll: the append's wake-up, not the poll, brought it.
        within(POLL / 2, "the appended line", || recorder.lines() == ["woken"]).await;
        stopped(stop, task).await;
        writer.append(b"after").expect("append");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(recorder.lines(), vec!["woken"]);
        assert_eq!(writer.spool().backlog.get(), 1);
    }

    #[tokio::test]
    async fn a_spool_that_cannot_be_read_counts_failures_and_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = SpoolWriter::open_alone(spool(dir.path())).expect("open");
        writer.append(b"held").expect("append");
        let acked = writer.spool().dir.join("acked");
        fs::write(&acked, "not a position\n").expect("spoil acked");
        let recorder = Recorder::new(writer.spool(), None);
        let (stop, task) = start(writer.spool(), &recorder);
        within(Duration::from_secs(2), "failed reads", || writer.spool().failures.get() >= 2).await;
        assert!(recorder.lines().is_empty());
        assert_eq!(writer.spool().backlog.get(), 1);

        fs::remove_file(&acked).expect("mend acked");
        within(Duration::from_secs(2), "the held line", || recorder.lines() == ["held"]).await;
        within(Duration::from_secs(2), "its acknowledgement", || writer.spool().backlog.get() == 0).await;
        stopped(stop, task).await;
    }

    #[test]
    fn a_new_spool_does_not_replay_the_existing_log() {
        assert!(missing_lines("one\ntwo\n", None).is_empty());
        assert_eq!(missing_lines("one\ntwo\n", Some(&sha256_hex(b"one"))), vec!["two"]);
        assert!(missing_lines("one\ntwo\n", Some("unknown")).is_empty());
    }
}

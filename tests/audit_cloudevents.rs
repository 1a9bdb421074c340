//! Delivery of the audit trail to a collector as CloudEvents, against a local HTTP receiver
//! that can be down (connection refused), failing (503) or up.

#[path = "support/shown.rs"]
mod shown;

use keyward::audit::cloudevents::{CONTENT_TYPE, CollectorDelivery, Endpoint};
use keyward::audit::spool::Spool;
use keyward::audit::{AuditRecord, AuditSink, Event, JsonLinesFile, Outcome, sha256_hex};
use keyward::retry::Exponential;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the receiver saw: the accepted requests (headers, body) and how many it refused.
#[derive(Default)]
struct Received {
    accepted: Vec<(String, serde_json::Value)>,
    refused: usize,
    failing: bool,
}

/// A collector on `addr` until the returned task is aborted; answers 503 while `failing`.
async fn receiver(addr: SocketAddr, state: Arc<Mutex<Received>>) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.expect("bind the receiver");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut stream).await else { return };
                let status = {
                    let mut state = state.lock().expect("state");
                    if state.failing {
                        state.refused += 1;
                        "503 Service Unavailable"
                    } else {
                        state.accepted.push((head, serde_json::from_slice(&body).expect("a JSON body")));
                        "202 Accepted"
                    }
                };
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    })
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < end + length {
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf[end..end + length].to_vec()))
}

/// A port nothing listens on (yet).
async fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr")
}

fn record(n: usize) -> AuditRecord {
    AuditRecord {
        time: chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").expect("time").to_utc(),
        event: if n.is_multiple_of(2) { Event::Intent } else { Event::Outcome },
        provider: "acme/corp-pi".into(),
        endpoint: None,
        user: format!("user{}", n / 2),
        enrolment: format!("TOTP{}", n / 2),
        kind: "totp".into(),
        reason: "EmployeeOffboarded".into(),
        employee: None,
        employee_uid: None,
        grants: vec![],
        source_revision: None,
        outcome: if n.is_multiple_of(2) { Outcome::Intended } else { Outcome::Revoked },
        detail: None,
        plan_digest: None,
        approval: None,
        trigger: None,
        latency_seconds: None,
        replica: Some("keyward-0".into()),
        service_account: None,
        notification: None,
    }
}

/// The audit file at `log` forwarding to a fresh spool (as a process start does).
fn open(log: &Path) -> (JsonLinesFile, Spool) {
    let spool = Spool::beside(log, Gauge::default(), Counter::default());
    let file = JsonLinesFile::open(log).expect("open the log");
    file.deliver_to(spool.clone()).expect("open the spool");
    (file, spool)
}

/// Delivery of `spool` to `addr`, quick to retry, until the returned sender is dropped.
fn deliver(spool: &Spool, addr: SocketAddr, token: Option<&Path>) -> tokio::sync::oneshot::Sender<()> {
    let endpoint = Endpoint { url: format!("http://{addr}/events"), token_file: token.map(Path::to_path_buf) };
    let mut delivery = CollectorDelivery::new(spool.clone(), endpoint).expect("build the delivery");
    delivery.backoff = Exponential { base: Duration::from_millis(20), cap: Duration::from_millis(100) };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(delivery.run(async move {
        let _ = stopped.await;
    }));
    stop
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn accepted_ids(state: &Mutex<Received>) -> Vec<String> {
    state.lock().expect("state").accepted.iter().map(|(_, e)| e["id"].as_str().expect("id").to_string()).collect()
}

fn log_hashes(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).expect("read log").lines().map(|l| sha256_hex(l.as_bytes())).collect()
}

#[tokio::test]
async fn records_arrive_in_order_as_structured_cloudevents_with_the_line_hash_as_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{}\n", shown::BEARER)).expect("token");
    let (file, spool) = open(&log);
    let state = Arc::new(Mutex::new(Received::default()));
    let addr = free_addr().await;
    let _server = receiver(addr, state.clone()).await;
    let _stop = deliver(&spool, addr, Some(&token));
    for n in 0..6 {
        file.record(&record(n)).await.expect("record");
    }
    eventually("six events", || state.lock().expect("state").accepted.len() >= 6).await;

    let hashes = log_hashes(&log);
    assert_eq!(accepted_ids(&state), hashes, "one event per line, in the log's order, id = the line's hash");
    let state = state.lock().expect("state");
    for (n, (head, event)) in state.accepted.iter().enumerate() {
        assert!(head.contains(&format!("content-type: {CONTENT_TYPE}")), "{head}");
        assert!(head.contains(&format!("authorization: bearer {}", shown::BEARER.to_lowercase())), "{head}");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], "keyward/keyward-0");
        let kind = if n % 2 == 0 { "intent" } else { "outcome" };
        assert_eq!(event["type"], format!("dev.keyward.audit.{kind}"));
        assert_eq!(event["time"], "2026-11-30T12:00:00Z");
        assert_eq!(event["data"]["seq"], n as u64);
        assert_eq!(event["data"]["user"], format!("user{}", n / 2));
        // The next line's `prev` is this event's id: the collector can follow the chain.
        if n > 0 {
            assert_eq!(event["data"]["prev"], state.accepted[n - 1].1["id"]);
        }
    }
    assert_eq!(spool.backlog.get(), 0);
    assert_eq!(spool.failures.get(), 0);
}

#[tokio::test]
async fn a_collector_down_then_failing_then_up_loses_nothing_and_duplicates_no_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let (file, spool) = open(&log);
    let addr = free_addr().await;
    let _stop = deliver(&spool, addr, None);

    // Down: nothing listens. Revocations are recorded all the same, without waiting.
    for n in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), file.record(&record(n)))
            .await
            .expect("recording does not wait for the collector")
            .expect("record");
    }
    eventually("failed attempts while down", || spool.failures.get() >= 2).await;
    assert_eq!(spool.backlog.get(), 3);

    // Failing: 503 for a while.
    let state = Arc::new(Mutex::new(Received { failing: true, ..Received::default() }));
    let _server = receiver(addr, state.clone()).await;
    eventually("503s", || state.lock().expect("state").refused >= 3).await;
    for n in 3..5 {
        file.record(&record(n)).await.expect("record");
    }
    assert_eq!(spool.backlog.get(), 5);

    // Up.
    state.lock().expect("state").failing = false;
    eventually("five events", || state.lock().expect("state").accepted.len() >= 5).await;
    file.record(&record(5)).await.expect("record");
    eventually("six events", || state.lock().expect("state").accepted.len() >= 6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted_ids(&state), log_hashes(&log), "every record once, in order");
    assert_eq!(spool.backlog.get(), 0);
}

#[tokio::test]
async fn a_restart_delivers_the_rest_of_the_spool_and_resends_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let state = Arc::new(Mutex::new(Received::default()));
    let addr = free_addr().await;
    {
        // The first process: three records delivered, then the collector goes away and three
        // more are recorded before the process stops.
        let (file, spool) = open(&log);
        let server = receiver(addr, state.clone()).await;
        let stop = deliver(&spool, addr, None);
        for n in 0..3 {
            file.record(&record(n)).await.expect("record");
        }
        eventually("three events", || state.lock().expect("state").accepted.len() >= 3).await;
        server.abort();
        let _ = server.await;
        for n in 3..6 {
            file.record(&record(n)).await.expect("record");
        }
        eventually("a failed attempt", || spool.failures.get() >= 1).await;
        drop(stop);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The next process: the spool it finds is its backlog, sent first.
    let (file, spool) = open(&log);
    assert_eq!(spool.backlog.get(), 3);
    let _server = receiver(addr, state.clone()).await;
    let _stop = deliver(&spool, addr, None);
    eventually("six events", || state.lock().expect("state").accepted.len() >= 6).await;
    file.record(&record(6)).await.expect("record");
    eventually("seven events", || state.lock().expect("state").accepted.len() >= 7).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted_ids(&state), log_hashes(&log), "the rest once, in order, nothing acknowledged again");
    assert_eq!(spool.backlog.get(), 0);
}

//! Delivery of the audit trail to a collector as CloudEvents 1.0 in structured mode: one
//! `application/cloudevents+json` POST per record, in the order of the chain, from the spool
//! ([`super::spool`]). At least once: a record is acknowledged in the spool only after a 2xx,
//! so a crash between the answer and the acknowledgement sends it again with the same `id`
//! (the SHA-256 of its chained line) for the collector to drop. A failed attempt is retried
//! with backoff and holds back the records behind it; the audit file, the record of truth,
//! and the revocations never wait for the collector.

use super::sha256_hex;
use super::spool::{Deliver, Spool};
use crate::retry::Exponential;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// The media type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// How long a collector may take to answer one event.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum DeliveryError {
    #[error("build the HTTP client for audit delivery to {url}: {source}")]
    Client { url: String, source: crate::outbound::ClientError },
    #[error("audit line is not a JSON record: {0}")]
    Record(#[source] serde_json::Error),
    #[error("read the collector's bearer token from {path}: {source}")]
    Token { path: PathBuf, source: std::io::Error },
    #[error("POST the audit event to {url}: {source}")]
    Send { url: String, source: reqwest::Error },
    #[error("the collector at {url} answered {status}")]
    Refused { url: String, status: reqwest::StatusCode },
}

/// The structured-mode CloudEvent of a sealed audit line (without its newline). `source` names
/// the replica that wrote it (`keyward/<replica>`), else its provider (`keyward/<ns>/<name>`);
/// `subject` is the provider; `data` is the line's record with its `v`, `seq` and `prev`, so
/// the collector can check the chain.
pub fn cloud_event(line: &[u8]) -> Result<serde_json::Value, DeliveryError> {
    let data: serde_json::Value = serde_json::from_slice(line).map_err(DeliveryError::Record)?;
    let field = |name: &str| data.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let provider = field("provider").unwrap_or_default();
    let source = format!("keyward/{}", field("replica").unwrap_or_else(|| provider.clone()));
    let kind = field("event").unwrap_or_else(|| "outcome".into());
    Ok(serde_json::json!({
        "specversion": "1.0",
        "id": sha256_hex(line),
        "source": source,
        "type": format!("dev.keyward.audit.{kind}"),
        "subject": provider,
        "time": data.get("time").cloned().unwrap_or_default(),
        "datacontenttype": "application/json",
        "data": data,
    }))
}

/// Where and how records are delivered.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    /// A file holding a bearer token, read before every attempt (a rotated Secret applies
    /// without a restart).
    pub token_file: Option<PathBuf>,
}

/// Delivers a spool's records to the collector at an endpoint.
pub struct CollectorDelivery {
    spool: Spool,
    endpoint: Endpoint,
    client: reqwest::Client,
    /// Between failed attempts at one record, and at reading the spool.
    pub backoff: Exponential,
}

impl CollectorDelivery {
    /// Fails when the HTTP client cannot be built: a client without the timeout and the
    /// redirect rules must never stand in for it.
    pub fn new(spool: Spool, endpoint: Endpoint) -> Result<CollectorDelivery, DeliveryError> {
        // No redirects and no link-local address: a collector's URL goes where it was checked.
        let client = crate::outbound::client(REQUEST_TIMEOUT)
            .map_err(|source| DeliveryError::Client { url: endpoint.url.clone(), source })?;
        let backoff = Exponential { base: Duration::from_secs(1), cap: Duration::from_secs(300) };
        Ok(CollectorDelivery { spool, endpoint, client, backoff })
    }

    /// Delivers every spooled record in order, the ones a previous process left first, until
    /// `shutdown`. A POST in flight then is abandoned and sent again by the next process.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.spool.drain_until(&self, self.backoff, shutdown).await;
    }

    /// Retries `event` with backoff until the collector accepts it.
    async fn send_until_accepted(&self, event: &serde_json::Value) {
        let mut attempt = 0;
        while let Err(e) = self.send(event).await {
            self.spool.failures.inc();
            let wait = self.backoff.delay(attempt);
            tracing::warn!(error = %e, retry_in = ?wait, backlog = self.spool.backlog.get(), "audit delivery failed");
            tokio::time::sleep(wait).await;
            attempt = attempt.saturating_add(1);
        }
    }

    async fn send(&self, event: &serde_json::Value) -> Result<(), DeliveryError> {
        let url = &self.endpoint.url;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(serde_json::to_vec(event).map_err(DeliveryError::Record)?);
        if let Some(path) = &self.endpoint.token_file {
            let token =
                std::fs::read_to_string(path).map_err(|source| DeliveryError::Token { path: path.clone(), source })?;
            request = request.bearer_auth(token.trim());
        }
        let response = request.send().await.map_err(|source| DeliveryError::Send { url: url.clone(), source })?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(DeliveryError::Refused { url: url.clone(), status }),
        }
    }
}

impl Deliver for CollectorDelivery {
    const NAME: &'static str = "audit delivery";

    /// Sends the record until the collector accepts it.
    async fn deliver(&self, line: &[u8]) {
        match cloud_event(line) {
            Ok(event) => self.send_until_accepted(&event).await,
            // Not a record (a spool edited by hand): it cannot be delivered, and waiting
            // would stop every record behind it. The audit file keeps it.
            Err(e) => {
                self.spool.failures.inc();
                tracing::error!(error = %e, "audit delivery: skipped a spool line that is not a record");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_the_line_hash_its_kind_and_the_record() {
        let line = br#"{"v":2,"seq":3,"prev":"","time":"2026-01-02T03:04:05Z","event":"intent","provider":"acme/corp-pi","replica":"keyward-0"}"#;
        let event = cloud_event(line).expect("event");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], sha256_hex(line));
        assert_eq!(event["type"], "dev.keyward.audit.intent");
        assert_eq!(event["source"], "keyward/keyward-0");
        assert_eq!(event["subject"], "acme/corp-pi");
        assert_eq!(event["time"], "2026-01-02T03:04:05Z");
        assert_eq!(event["data"]["seq"], 3);
    }

    #[test]
    fn without_a_replica_the_source_is_the_provider() {
        let line = br#"{"time":"2026-01-02T03:04:05Z","event":"outcome","provider":"acme/corp-pi"}"#;
        let event = cloud_event(line).expect("event");
        assert_eq!(event["source"], "keyward/acme/corp-pi");
        assert_eq!(event["type"], "dev.keyward.audit.outcome");
        assert!(cloud_event(b"not json").is_err());
    }

    #[test]
    fn a_client_that_cannot_be_built_is_said_with_the_collector_it_was_for() {
        let source = reqwest::Client::builder()
            .min_tls_version(reqwest::tls::Version::TLS_1_3)
            .max_tls_version(reqwest::tls::Version::TLS_1_2)
            .build()
            .expect_err("no TLS version left");
        let source = crate::outbound::ClientError::from(source);
        let said = DeliveryError::Client { url: "https://collector.example/events".into(), source }.to_string();
        assert!(
            said.starts_with(
                "build the HTTP client for audit delivery to https://collector.example/events: builder error: "
            ),
            "{said}"
        );
    }
}

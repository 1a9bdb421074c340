//! Sending spooled notifications to one target: one POST at a time, in the order spooled,
//! at least once. The spool (`crate::audit::spool`, the audit trail's own mechanism) holds
//! each notification on disk before anything is sent; a notification is acknowledged there
//! only after the receiver accepted it (2xx) or refused it for good, so a receiver that is
//! down for a while, or an operator restart, loses nothing. A notification sent again after a
//! crash carries the same id, for the receiver to drop.
//!
//! Every attempt is an audit record: `delivered`, `failed` (tried again after a backoff) or
//! `undeliverable`. The URL is read from its Secret before every attempt (a rotated Secret
//! applies at once) and never written anywhere: a Slack webhook URL is its own credential.

use super::message::{SIGNATURE_HEADER, Sink, signature};
use crate::audit::spool::{Deliver, Spool};
use crate::audit::{AuditRecord, AuditSink, NotificationDelivery, Outcome};
use crate::crd::mfa_provider::{NotificationEvent, SecretKeyRef};
use crate::retry::Exponential;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// How long a receiver may take to answer one notification.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Refusals in a row (4xx other than 408 and 429) after which a notification is given up:
/// a webhook that was deleted or a payload the receiver will never take must not hold back
/// every notification behind it. A few tries cover a Secret being fixed meanwhile.
pub const REFUSALS_BEFORE_GIVING_UP: u32 = 5;

/// The header carrying the notification's id on every POST (a Slack message has no room for
/// it in its body).
pub const ID_HEADER: &str = "X-Keyward-Notification-Id";

/// Reads Secret keys; the operator answers from its Secret cache.
pub trait SecretSource: Send + Sync {
    fn value(&self, namespace: &str, name: &str, key: &str) -> Option<String>;
}

/// A spooled notification: everything needed to send it again, without a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub id: String,
    /// `<namespace>/<name>` of the MfaProvider.
    pub provider: String,
    /// Where the Secrets are: the MfaProvider's namespace.
    pub namespace: String,
    pub target: String,
    #[serde(flatten)]
    pub sink: Sink,
    pub events: Vec<NotificationEvent>,
    /// The exact body, as signed.
    pub body: String,
}

#[derive(Debug, Error)]
pub enum AttemptError {
    #[error(
        "Secret {namespace}/{} has no key {:?} (or does not exist; the operator sees only Secrets labelled {})",
        secret.name,
        secret.key,
        crate::crd::CREDENTIALS_LABEL
    )]
    ReadSecret { namespace: String, secret: SecretKeyRef },
    #[error("the key {:?} of Secret {namespace}/{} is not an http(s) URL", secret.key, secret.name)]
    ParseUrl { namespace: String, secret: SecretKeyRef },
    #[error("sign the notification: {0}")]
    Sign(String),
    /// A target keyward never posts to (see [`crate::outbound`]).
    #[error("refused target: {0}")]
    Forbidden(String),
    /// The error without its URL (see [`reqwest::Error::without_url`]), and its causes.
    #[error("send the notification: {0}")]
    Send(String),
    #[error("the receiver answered {0}")]
    Refused(reqwest::StatusCode),
}

impl AttemptError {
    /// A refusal that trying again soon will not change.
    pub fn is_refusal(&self) -> bool {
        matches!(self, AttemptError::Forbidden(_))
            || matches!(self, AttemptError::Refused(status)
            if status.is_client_error() && *status != reqwest::StatusCode::REQUEST_TIMEOUT && *status != reqwest::StatusCode::TOO_MANY_REQUESTS)
    }

    fn status(&self) -> Option<u16> {
        match self {
            AttemptError::Refused(status) => Some(status.as_u16()),
            _ => None,
        }
    }
}

/// Delivers one notification target's spool.
pub struct TargetDelivery {
    pub spool: Spool,
    pub client: reqwest::Client,
    pub secrets: Arc<dyn SecretSource>,
    pub audit: Arc<dyn AuditSink>,
    /// Between failed attempts at one notification, and at reading the spool.
    pub backoff: Exponential,
}

/// The client notifications are sent with: a timeout, and no redirects (a POST whose URL is
/// a credential goes where the Secret says, nowhere else). An error when it cannot be built:
/// a client without those rules must never stand in for it.
pub fn client() -> Result<reqwest::Client, crate::outbound::ClientError> {
    crate::outbound::client(REQUEST_TIMEOUT)
}

impl Deliver for TargetDelivery {
    const NAME: &'static str = "notification delivery";

    /// Tries the notification until it is accepted or given up.
    async fn deliver(&self, line: &[u8]) {
        match serde_json::from_slice::<Envelope>(line) {
            Ok(envelope) => self.deliver_envelope(&envelope).await,
            // Not a notification (a spool edited by hand): waiting would stop every one
            // behind it.
            Err(e) => {
                self.spool.failures.inc();
                tracing::error!(error = %e, spool = %self.spool.dir.display(), "notification delivery: skipped a spool line that is not a notification");
            }
        }
    }
}

impl TargetDelivery {
    /// Delivers every spooled notification in order, those a previous process left first,
    /// until `shutdown`. A POST in flight then is abandoned and sent again by the next process.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.spool.drain_until(&self, self.backoff, shutdown).await;
    }

    /// Tries `envelope` until the receiver accepts it, or refuses it
    /// [`REFUSALS_BEFORE_GIVING_UP`] times in a row; each attempt is recorded.
    async fn deliver_envelope(&self, envelope: &Envelope) {
        let mut refusals = 0;
        let mut attempt: u32 = 1;
        loop {
            let (outcome, status, detail) = match self.attempt(envelope).await {
                Ok(status) => (Outcome::Delivered, Some(status), None),
                Err(e) => {
                    self.spool.failures.inc();
                    refusals = if e.is_refusal() { refusals + 1 } else { 0 };
                    // A target keyward never posts to stays so: given up at once.
                    if refusals >= REFUSALS_BEFORE_GIVING_UP || matches!(e, AttemptError::Forbidden(_)) {
                        (Outcome::Undeliverable, e.status(), Some(format!("{e}; given up after {attempt} attempts")))
                    } else {
                        (Outcome::Failed, e.status(), Some(e.to_string()))
                    }
                }
            };
            self.record(envelope, attempt, outcome, status, detail.clone()).await;
            if outcome != Outcome::Failed {
                return;
            }
            let wait = self.backoff.delay(attempt - 1);
            tracing::warn!(
                provider = %envelope.provider,
                target = %envelope.target,
                id = %envelope.id,
                error = detail.unwrap_or_default(),
                retry_in = ?wait,
                backlog = self.spool.backlog.get(),
                "notification delivery failed"
            );
            tokio::time::sleep(wait).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// The audit record of one attempt. One that cannot be written is logged: the delivery
    /// itself happened (or not) either way.
    async fn record(
        &self,
        envelope: &Envelope,
        attempt: u32,
        outcome: Outcome,
        status: Option<u16>,
        detail: Option<String>,
    ) {
        let delivery = NotificationDelivery {
            id: envelope.id.clone(),
            target: envelope.target.clone(),
            sink: envelope.sink.name().into(),
            events: envelope.events.iter().map(|e| e.as_str().to_string()).collect(),
            attempt,
            status,
        };
        let record = AuditRecord::notification(&envelope.provider, delivery, outcome, detail);
        if let Err(e) = self.audit.record(&record).await {
            tracing::error!(error = %e, id = %envelope.id, "write the audit record of a notification delivery");
        }
    }

    /// One POST; the receiver's status when it accepted.
    async fn attempt(&self, envelope: &Envelope) -> Result<u16, AttemptError> {
        let (url_ref, hmac_ref) = match &envelope.sink {
            Sink::Slack { url } => (url, None),
            Sink::Webhook { url, hmac } => (url, hmac.as_ref()),
        };
        let url = self.secret(&envelope.namespace, url_ref)?;
        let url = url::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| AttemptError::ParseUrl { namespace: envelope.namespace.clone(), secret: url_ref.clone() })?;
        crate::outbound::check(&url).map_err(AttemptError::Forbidden)?;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, envelope.sink.content_type())
            .header(ID_HEADER, &envelope.id)
            .body(envelope.body.clone());
        if let Some(key_ref) = hmac_ref {
            // A configured key that cannot be read stops the POST: an unsigned notification
            // would be dropped by a receiver that checks, or worse, trusted by one that does not.
            let key = self.secret(&envelope.namespace, key_ref)?;
            let signed =
                signature(key.as_bytes(), envelope.body.as_bytes()).map_err(|e| AttemptError::Sign(e.to_string()))?;
            request = request.header(SIGNATURE_HEADER, signed);
        }
        let response = request.send().await.map_err(|e| AttemptError::Send(without_url(e)))?;
        match response.status() {
            status if status.is_success() => Ok(status.as_u16()),
            status => Err(AttemptError::Refused(status)),
        }
    }

    fn secret(&self, namespace: &str, secret: &SecretKeyRef) -> Result<String, AttemptError> {
        self.secrets
            .value(namespace, &secret.name, &secret.key)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| AttemptError::ReadSecret { namespace: namespace.to_string(), secret: secret.clone() })
    }
}

/// A send error and its causes, without the URL (which carries the webhook's token).
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

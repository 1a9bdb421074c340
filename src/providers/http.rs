//! The HTTP client under every provider's requests (`rest::Transport`): timeouts, request
//! counting, and transport errors mapped to a [`Failure`] that says what could not be reached.

use super::error::Failure;
use reqwest::header::HeaderMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A response read in full.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// `Retry-After` in seconds (the only form the providers keyward speaks to send).
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    }
}

/// The certificates of a `caBundle`: at least one, every PEM block a certificate.
fn ca_certificates(ca_bundle: Option<&str>) -> Result<Vec<reqwest::Certificate>, Failure> {
    let Some(pem) = ca_bundle.filter(|p| !p.trim().is_empty()) else { return Ok(Vec::new()) };
    let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| Failure::Configuration(format!("caBundle is not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(Failure::Configuration("caBundle holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certificates)
}

pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    requests: AtomicU64,
}

impl HttpClient {
    /// `ca_bundle`: PEM certificates of authorities to trust beside the public roots (a
    /// self-hosted server behind an internal CA).
    pub fn new(timeout: Duration, ca_bundle: Option<&str>) -> Result<Self, Failure> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Not a privacyIDEA plugin name: those are metered by its subscription check.
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")));
        for certificate in ca_certificates(ca_bundle)? {
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder.build().map_err(|e| Failure::Configuration(format!("cannot build HTTP client: {e}")))?;
        Ok(HttpClient { client, timeout, requests: AtomicU64::new(0) })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one request and reads the whole body. Any HTTP status is a `Response`; only
    /// transport failures are errors.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.transport(e))?.to_vec();
        Ok(Response { status, headers, body })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn transport(&self, e: reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure::Timeout(self.timeout);
        }
        let url = e.url().map(|u| u.to_string()).unwrap_or_default();
        // The innermost cause says "connection refused" or "dns error"; reqwest's own text
        // only says "error sending request".
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            detail = cause.to_string();
            source = cause.source();
        }
        Failure::Unreachable { url, detail }
    }
}

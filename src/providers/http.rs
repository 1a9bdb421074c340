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

/// A redirect as an error: where it pointed, as scheme, host and port only (a `Location`'s
/// path and query can carry tokens), resolved against the URL asked.
fn redirected(status: u16, asked: &reqwest::Url, headers: &HeaderMap) -> Failure {
    let location = headers.get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok());
    let to = match location.map(|l| asked.join(l)) {
        Some(Ok(url)) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
            (Some(host), None) => format!("{}://{host}", url.scheme()),
            (None, _) => url.scheme().to_string(),
        },
        Some(Err(_)) => "an unreadable Location".to_string(),
        None => "no Location".to_string(),
    };
    Failure::Redirected { status, to }
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

/// The requests a task made, as `keyward conformance` prints them: method, URL without its
/// query (which may carry names) and the answer's status — never a header or a body, where
/// credentials travel. Only a task inside [`journal::recording`] is recorded.
pub mod journal {
    use std::cell::RefCell;

    tokio::task_local! {
        static JOURNAL: RefCell<Vec<String>>;
    }

    /// Runs `work`, returning what it returned and the requests it made, in order.
    pub async fn recording<F: std::future::Future>(work: F) -> (F::Output, Vec<String>) {
        JOURNAL
            .scope(RefCell::new(Vec::new()), async {
                let out = work.await;
                (out, JOURNAL.with(|j| j.take()))
            })
            .await
    }

    /// `METHOD scheme://host/path` of a request about to be sent, when it is being recorded.
    pub(super) fn note_of(request: &reqwest::RequestBuilder) -> Option<String> {
        JOURNAL.try_with(|_| ()).ok()?;
        let built = request.try_clone()?.build().ok()?;
        let mut url = built.url().clone();
        url.set_query(None);
        url.set_fragment(None);
        let _ = url.set_password(None);
        let _ = url.set_username("");
        Some(format!("{} {url}", built.method()))
    }

    pub(super) fn record(noted: Option<String>, answer: &str) {
        if let Some(line) = noted {
            let _ = JOURNAL.try_with(|j| j.borrow_mut().push(format!("{line} → {answer}")));
        }
    }
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
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            // Never followed: a redirect would carry the admin's header (privacyIDEA's JWT) or
            // a 307/308's form body (a password, a client secret) to a host the allowlist was
            // never asked about, plain http and link-local addresses included.
            .redirect(reqwest::redirect::Policy::none());
        for certificate in ca_certificates(ca_bundle)? {
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder.build().map_err(|e| Failure::Configuration(format!("cannot build HTTP client: {e}")))?;
        Ok(HttpClient { client, timeout, requests: AtomicU64::new(0) })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one request and reads the whole body. Any HTTP status is a `Response`, but for a
    /// redirect, which is an error naming where it pointed; otherwise only transport failures
    /// are errors.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, Failure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let noted = journal::note_of(&request);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let failure = self.transport(e);
                journal::record(noted, &failure.to_string());
                return Err(failure);
            }
        };
        let status = response.status().as_u16();
        journal::record(noted, &status.to_string());
        if response.status().is_redirection() {
            return Err(redirected(status, response.url(), response.headers()));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A provider that answers with a redirect gets no second request anywhere: not to the
    /// host it names (which received nothing), not with the header or the form body.
    #[tokio::test]
    async fn a_redirect_is_an_error_naming_its_host_and_is_never_followed() {
        let elsewhere = MockServer::start().await;
        let provider = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("Location", format!("{}/collect?token=kwCANARY-redirect-query", elsewhere.uri())),
            )
            .mount(&provider)
            .await;
        let http = HttpClient::new(Duration::from_secs(5), None).expect("client");
        let request = http
            .client()
            .post(format!("{}/auth", provider.uri()))
            .header("PI-Authorization", "kwCANARY-redirect-header")
            .form(&[("password", "kwCANARY-redirect-body")]);
        let failure = http.send(request).await.expect_err("a redirect is refused");
        let host = elsewhere.uri();
        assert_eq!(failure, Failure::Redirected { status: 307, to: host.clone() });
        let said = failure.to_string();
        assert!(said.contains(&host) && !said.contains("kwCANARY"), "{said}");
        assert!(elsewhere.received_requests().await.unwrap_or_default().is_empty(), "followed to {host}");

        // A relative Location names the provider's own host.
        let relative = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(302).insert_header("Location", "/login"))
            .mount(&relative)
            .await;
        let failure = http.send(http.client().get(relative.uri())).await.expect_err("refused");
        assert_eq!(failure, Failure::Redirected { status: 302, to: relative.uri() });
    }
}

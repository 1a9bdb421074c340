//! The request layer the SaaS provider clients share: one pace ([`Limiter`]), one way to
//! authenticate ([`Auth`]), and one retry loop that tells rate limits from outages and honours
//! each provider's hints (`Retry-After`, `X-Rate-Limit-Remaining`/`-Reset`, Duo's bare 429,
//! Google's 403 `userRateLimitExceeded`).

use super::error::Failure;
use super::http::{HttpClient, Response};
use super::limiter::Limiter;
use async_trait::async_trait;
use rand::Rng;
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A request body.
#[derive(Clone, Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    /// Serialized JSON, sent as `application/json`.
    Json(Vec<u8>),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
}

/// One provider request, kept whole so that it can be signed, sent and sent again.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub url: url::Url,
    pub body: Body,
}

impl Call {
    pub fn new(method: Method, url: url::Url) -> Self {
        Call { method, url, body: Body::Empty }
    }
    pub fn get(url: url::Url) -> Self {
        Call::new(Method::GET, url)
    }
    pub fn delete(url: url::Url) -> Self {
        Call::new(Method::DELETE, url)
    }
    pub fn post(url: url::Url) -> Self {
        Call::new(Method::POST, url)
    }
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Body::Json(serde_json::to_vec(value).unwrap_or_default());
        self
    }
    pub fn form(mut self, form: Vec<(String, String)>) -> Self {
        self.body = Body::Form(form);
        self
    }
    /// `METHOD path` for messages (no query: it may carry user names).
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }
}

/// How a provider client proves who it is.
#[async_trait]
pub trait Auth: Send + Sync {
    /// Headers that authenticate `call` (a bearer token, an API token, a request signature).
    async fn authorize(&self, transport: &Transport, call: &Call) -> Result<Vec<(String, String)>, Failure>;
    /// The provider answered 401: drop cached tokens. `true` when a new attempt may succeed.
    async fn rejected(&self) -> bool;
}

/// Sends requests at the provider's pace, only to allowed hosts, and reads its quota headers.
pub struct Transport {
    pub http: HttpClient,
    pub limiter: Limiter,
    allowed: super::allowlist::HostAllowlist,
}

/// What an MfaProvider says about the transport to its provider, beside the block's own
/// `timeout`: the pace (`policy.maxRequestsPerSecond`) and the certificate authorities to
/// trust beside the public roots (`spec.caBundle`).
#[derive(Clone, Debug, Default)]
pub struct TransportSettings {
    pub max_requests_per_second: Option<u32>,
    /// PEM certificates.
    pub ca_bundle: Option<String>,
}

impl Transport {
    /// A transport under the process's host allowlist.
    pub fn new(timeout: Duration, max_requests_per_second: Option<u32>) -> Result<Self, Failure> {
        Self::trusting(timeout, max_requests_per_second, None)
    }

    /// [`Transport::new`], also trusting the certificate authorities of `ca_bundle` (PEM).
    pub fn trusting(
        timeout: Duration,
        max_requests_per_second: Option<u32>,
        ca_bundle: Option<&str>,
    ) -> Result<Self, Failure> {
        Ok(Transport {
            http: HttpClient::new(timeout, ca_bundle)?,
            limiter: Limiter::new(max_requests_per_second),
            allowed: super::allowlist::current(),
        })
    }

    /// The same under `allowed` instead (tests).
    pub fn allowing(mut self, allowed: super::allowlist::HostAllowlist) -> Self {
        self.allowed = allowed;
        self
    }

    pub async fn send(&self, call: &Call, headers: &[(String, String)]) -> Result<Response, Failure> {
        // Before anything leaves: no credentials (headers, form, assertion) to other hosts.
        if !self.allowed.allows(&call.url) {
            return Err(Failure::Configuration(super::allowlist::HostAllowlist::refusal(&call.url)));
        }
        self.limiter.acquire().await;
        let mut request = self
            .http
            .client()
            .request(call.method.clone(), call.url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request = match &call.body {
            Body::Empty if call.method == Method::POST || call.method == Method::PUT => {
                // Okta answers 411 to a body-less POST without Content-Length.
                request.header(reqwest::header::CONTENT_LENGTH, "0")
            }
            Body::Empty => request,
            Body::Json(bytes) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes.clone()),
            Body::Form(form) => request.form(form),
        };
        let response = self.http.send(request).await?;
        self.observe_quota(&response);
        Ok(response)
    }

    /// `X-Rate-Limit-Remaining`/`-Reset` (Okta, and others that send them): when the window
    /// is spent, nothing more is sent before it resets; when it is nearly spent, the rest of
    /// the window is shared out among the requests left.
    fn observe_quota(&self, response: &Response) {
        let Some(remaining) = header_u64(response, "x-rate-limit-remaining") else { return };
        let Some(reset) = reset_in(response) else { return };
        const LOW: u64 = 5;
        if remaining == 0 {
            self.limiter.pause_until(Instant::now() + reset);
        } else if remaining < LOW {
            self.limiter.pause_until(Instant::now() + reset / (remaining as u32 + 1));
        }
    }
}

/// Time until the `X-Rate-Limit-Reset` epoch, measured against the response's own `Date` so
/// that a skewed local clock does not shorten or stretch the wait.
pub fn reset_in(response: &Response) -> Option<Duration> {
    let reset = header_u64(response, "x-rate-limit-reset")?;
    let now = response
        .headers
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
        .map(|d| d.timestamp().max(0) as u64)
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

pub fn header_u64(response: &Response, name: &str) -> Option<u64> {
    response.headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Which responses are a rate limit, and what the provider said about when to come back.
/// `Some(None)`: throttled without a hint; `Some(Some(d))`: come back after `d`.
pub type Throttle = fn(&Response) -> Option<Option<Duration>>;

/// 429, with `Retry-After` when present: what most providers send.
pub fn throttle_429(response: &Response) -> Option<Option<Duration>> {
    (response.status == 429).then(|| response.retry_after())
}

/// Retry timing. Outages (transport errors, 5xx) and rate limits are retried separately:
/// a provider that throttles is healthy and worth waiting for; one that is down is not.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// Attempts for transport errors and 5xx answers.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// Attempts for rate-limit answers.
    pub throttled_attempts: u32,
    /// Backoff for rate limits that came without a hint (Duo: 1 s doubling to 32 s).
    pub throttled_base: Duration,
    pub throttled_cap: Duration,
    /// Longest hint waited for within one request; a longer one fails the request (and so the
    /// sweep's read, which decides nothing) rather than hold the sweep for minutes.
    pub longest_hint: Duration,
    /// Upper bound of the random delay added to every wait, so clients do not return together.
    pub jitter: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 3,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(8),
            throttled_attempts: 7,
            throttled_base: Duration::from_secs(1),
            throttled_cap: Duration::from_secs(32),
            longest_hint: Duration::from_secs(120),
            jitter: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// Short waits, for tests against a mock server.
    pub fn quick() -> Self {
        Backoff {
            attempts: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            throttled_attempts: 4,
            throttled_base: Duration::from_millis(10),
            throttled_cap: Duration::from_millis(40),
            longest_hint: Duration::from_secs(5),
            jitter: Duration::from_millis(5),
        }
    }

    fn jitter(&self) -> Duration {
        let max = self.jitter.as_millis() as u64;
        Duration::from_millis(if max == 0 { 0 } else { rand::rng().random_range(0..=max) })
    }

    /// Exponential from `base`, capped, with up to half of it taken off at random.
    fn outage_delay(&self, attempt: u32) -> Duration {
        crate::retry::Exponential { base: self.base, cap: self.cap }.delay(attempt)
    }

    /// The wait before retrying a rate-limited request, `None` when the hint is too long.
    pub fn throttled_delay(&self, attempt: u32, hint: Option<Duration>) -> Option<Duration> {
        match hint {
            Some(hint) if hint > self.longest_hint => None,
            Some(hint) => Some(hint + self.jitter()),
            None => {
                let doubling = self.throttled_base.saturating_mul(2u32.saturating_pow(attempt)).min(self.throttled_cap);
                Some(doubling + self.jitter())
            }
        }
    }
}

/// An authenticated, paced, retrying client of one provider.
pub struct Rest {
    pub transport: Transport,
    auth: Box<dyn Auth>,
    throttle: Throttle,
    pub backoff: Backoff,
}

impl Rest {
    pub fn new(transport: Transport, auth: Box<dyn Auth>, throttle: Throttle) -> Self {
        Rest { transport, auth, throttle, backoff: Backoff::default() }
    }

    pub fn requests(&self) -> u64 {
        self.transport.http.requests()
    }

    /// Sends `call` until it gets an answer worth reading: retries outages and rate limits,
    /// authenticates once more after a 401. Returns the final response whatever its status
    /// (the provider module reads its error body); only when retries run out on a transport
    /// error or a rate limit is the result an `Err`.
    pub async fn send(&self, call: &Call) -> Result<Response, Failure> {
        let (mut outages, mut throttled, mut reauthenticated) = (0u32, 0u32, false);
        loop {
            let headers = self.auth.authorize(&self.transport, call).await?;
            let response = match self.transport.send(call, &headers).await {
                Ok(response) => response,
                Err(failure) if failure.is_transient() && outages + 1 < self.backoff.attempts => {
                    tokio::time::sleep(self.backoff.outage_delay(outages)).await;
                    outages += 1;
                    continue;
                }
                Err(failure) => return Err(failure),
            };
            if response.status == 401 && !reauthenticated && self.auth.rejected().await {
                // An expired or revoked token: fetch a new one, once.
                reauthenticated = true;
                continue;
            }
            if let Some(hint) = (self.throttle)(&response) {
                if throttled + 1 < self.backoff.throttled_attempts
                    && let Some(wait) = self.backoff.throttled_delay(throttled, hint)
                {
                    tracing::debug!(request = %call.describe(), ?wait, "rate limited; waiting");
                    tokio::time::sleep(wait).await;
                    throttled += 1;
                    continue;
                }
                return Err(Failure::RateLimited { retry_after: hint });
            }
            if response.status >= 500 && outages + 1 < self.backoff.attempts {
                let wait = match response.retry_after() {
                    Some(hint) if hint <= self.backoff.cap => hint + self.backoff.jitter(),
                    _ => self.backoff.outage_delay(outages),
                };
                tokio::time::sleep(wait).await;
                outages += 1;
                continue;
            }
            return Ok(response);
        }
    }
}

/// The body as `T`, or a `Malformed` failure that quotes the start of what came instead.
pub fn decode<T: DeserializeOwned>(response: &Response, what: &str) -> Result<T, Failure> {
    serde_json::from_slice(&response.body)
        .map_err(|e| Failure::Malformed(format!("{what}: {e}: {}", snippet(&response.body))))
}

/// The body of an authentication response (a token endpoint, a login) as `T`. On failure the
/// error says only where the JSON broke, never what the body held: a 2xx answer that does not
/// decode may still carry the access token, and errors end up in logs, Events and status.
pub fn decode_credential<T: DeserializeOwned>(response: &Response, what: &str) -> Result<T, Failure> {
    serde_json::from_slice(&response.body).map_err(|e| Failure::Malformed(withheld(what, response, &e)))
}

/// The description of an authentication response that did not decode, without its content
/// (serde's own message may quote a value).
pub fn withheld(what: &str, response: &Response, e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected JSON fields",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!(
        "{what} (HTTP {}) could not be read: {category} at line {}, column {} of {} bytes; body withheld, since it may hold a credential",
        response.status,
        e.line(),
        e.column(),
        response.body.len()
    )
}

/// The first 200 characters of a body, for error messages. Never for authentication
/// responses: see [`decode_credential`].
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() { "(empty body)".to_string() } else { text.chars().take(200).collect() }
}

/// The failure an error status stands for, with the provider's own message.
pub fn status_failure(response: &Response, message: String) -> Failure {
    match response.status {
        401 => Failure::Unauthorized(message),
        403 => Failure::Forbidden(message),
        429 => Failure::RateLimited { retry_after: response.retry_after() },
        status => Failure::Status { status, code: None, message },
    }
}

/// Appends path segments to a base URL, each percent-encoded: an id or a login is data, not a
/// path. Encoded here, not by `url`'s segment setter, which drops tabs and line breaks
/// (`bo<TAB>b` would address the user `bob`). A segment that is only `.` or `..` is resolved
/// away by every URL parser, here and at the server: `validate` refuses such user names.
pub fn join(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    let mut path = url.path().trim_end_matches('/').to_string();
    for segment in segments {
        path.push('/');
        for byte in segment.bytes() {
            // RFC 3986 `pchar`, less `%`: everything else is data to encode.
            if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
                path.push(char::from(byte));
            } else {
                path.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    url.set_path(&path);
    url
}

/// Parses a provider base URL, without a trailing slash.
pub fn base_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url.trim_end_matches('/')).map_err(|e| format!("url {url:?}: {e}"))?;
    if parsed.host().is_none() || parsed.cannot_be_a_base() {
        return Err(format!("url {url:?} has no host"));
    }
    // A query or fragment would ride along on every call, ahead of keyward's own parameters
    // (privacyIDEA reads the first `tokenrealm`); user info would show a password wherever the
    // URL is shown, or pass a host off as loopback (`http://127.0.0.1@pi.example`).
    if parsed.query().is_some() {
        return Err(format!("url {url:?} has a query (`?…`): give the base URL only"));
    }
    if parsed.fragment().is_some() {
        return Err(format!("url {url:?} has a fragment (`#…`): give the base URL only"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "url {:?} has a user name or password before the host: credentials go in the Secret",
            parsed.host_str().unwrap_or_default()
        ));
    }
    Ok(parsed)
}

/// The transport of one provider: its `timeout` field, its pace —
/// `policy.maxRequestsPerSecond`, else the provider's `default_rps` (`None`: unpaced) — and
/// the certificate authorities of `spec.caBundle`.
pub fn provider_transport(
    provider: &str,
    timeout_field: Option<&str>,
    settings: &TransportSettings,
    default_rps: Option<u32>,
) -> Result<Transport, super::error::ProviderError> {
    let configure =
        |message: String| super::error::ProviderError::Configure { provider: provider.to_string(), message };
    let timeout = timeout(timeout_field).map_err(configure)?;
    let pace = settings.max_requests_per_second.or(default_rps);
    Transport::trusting(timeout, pace, settings.ca_bundle.as_deref()).map_err(|f| configure(f.to_string()))
}

/// A URL field of a provider block, as [`base_url`] reads it.
pub fn url_field(provider: &str, url: &str) -> Result<url::Url, super::error::ProviderError> {
    base_url(url).map_err(|message| super::error::ProviderError::Configure { provider: provider.to_string(), message })
}

/// Parses a `timeout` field (default 10 s).
pub fn timeout(spec: Option<&str>) -> Result<Duration, String> {
    match spec {
        Some(t) => humantime::parse_duration(t).map_err(|e| format!("timeout {t:?}: {e}")),
        None => Ok(Duration::from_secs(10)),
    }
}

/// The name a provider user goes by in keyward: the first of its names (login, e-mail,
/// aliases) that an Employee maps to, else its first name. Without this, `scope: All` on a
/// provider whose logins differ from the e-mails Employees map to would take every user for
/// an undeclared one.
pub fn declared_name(declared: &std::collections::HashSet<String>, names: &[&str]) -> String {
    names
        .iter()
        .find(|n| !n.is_empty() && declared.contains(&n.to_lowercase()))
        .or_else(|| names.iter().find(|n| !n.is_empty()))
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Lower-cased declared names, for [`declared_name`].
pub fn declared_set(declared: &[String]) -> std::collections::HashSet<String> {
    declared.iter().map(|n| n.to_lowercase()).collect()
}

/// Whether `next` (a paging link the provider sent) points at the same origin as `base`: a
/// token is never sent to another host on a provider's say-so.
pub fn same_origin(base: &url::Url, next: &url::Url) -> bool {
    base.scheme() == next.scheme()
        && base.host() == next.host()
        && base.port_or_known_default() == next.port_or_known_default()
}

/// An [`Auth`] that sends one fixed header (Okta's `SSWS` API token).
pub struct StaticHeader {
    pub name: String,
    pub value: String,
}

#[async_trait]
impl Auth for StaticHeader {
    async fn authorize(&self, _: &Transport, _: &Call) -> Result<Vec<(String, String)>, Failure> {
        Ok(vec![(self.name.clone(), self.value.clone())])
    }
    async fn rejected(&self) -> bool {
        false // the same token would be rejected again
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn response(status: u16, headers: &[(&'static str, &str)]) -> Response {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        Response { status, headers: map, body: Vec::new() }
    }

    #[test]
    fn reset_is_measured_against_the_servers_clock() {
        let r = response(
            429,
            &[("date", "Tue, 21 Aug 2012 17:29:18 -0000"), ("x-rate-limit-reset", "1345570163")], // +5 s
        );
        assert_eq!(reset_in(&r), Some(Duration::from_secs(5)));
        let past = response(429, &[("date", "Tue, 21 Aug 2012 17:29:18 -0000"), ("x-rate-limit-reset", "1")]);
        assert_eq!(reset_in(&past), Some(Duration::ZERO));
    }

    #[test]
    fn hintless_throttling_doubles_to_the_cap() {
        let b = Backoff { jitter: Duration::ZERO, ..Backoff::default() };
        let waits: Vec<u64> = (0..7).map(|a| b.throttled_delay(a, None).expect("wait").as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 32]);
        assert_eq!(b.throttled_delay(0, Some(Duration::from_secs(3))), Some(Duration::from_secs(3)));
        assert_eq!(b.throttled_delay(0, Some(Duration::from_secs(3600))), None, "too long a hint fails the read");
    }

    #[test]
    fn a_base_url_is_scheme_host_port_and_path() {
        assert!(base_url("https://pi.acme.example/pi/").is_ok());
        for (url, why) in [
            ("https://pi.acme.example/?tokenrealm=other", "has a query"),
            ("https://pi.acme.example/#x", "has a fragment"),
            ("https://admin:secret@pi.acme.example", "user name or password"),
            ("http://127.0.0.1@evil.example", "user name or password"),
        ] {
            let error = base_url(url).expect_err(url);
            assert!(error.contains(why), "{url}: {error}");
            assert!(!error.contains("secret"), "the password is not repeated: {error}");
        }
    }

    #[test]
    fn joins_segments_encoded() {
        let base = base_url("https://acme.okta.com/").expect("url");
        assert_eq!(
            join(&base, &["api", "v1", "users", "a b/c@x"]).as_str(),
            "https://acme.okta.com/api/v1/users/a%20b%2Fc@x"
        );
        // `url`'s own segment setter dropped the tab, and so addressed `bob`.
        assert_eq!(join(&base, &["users", "bo\tb"]).as_str(), "https://acme.okta.com/users/bo%09b");
        assert_eq!(join(&base, &["users", "a\r\nb"]).as_str(), "https://acme.okta.com/users/a%0D%0Ab");
        assert_eq!(
            join(&base, &["users", "x?y#z%2F..\\名"]).as_str(),
            "https://acme.okta.com/users/x%3Fy%23z%252F..%5C%E5%90%8D"
        );
        let under = base_url("https://pi.acme.example/pi/").expect("url");
        assert_eq!(join(&under, &["token", ""]).as_str(), "https://pi.acme.example/pi/token/");
    }

    /// A fixed header, and a count of 401s it answered (each makes the next attempt fresh).
    struct Counting(std::sync::atomic::AtomicU32);

    #[async_trait]
    impl Auth for Counting {
        async fn authorize(&self, _: &Transport, _: &Call) -> Result<Vec<(String, String)>, Failure> {
            Ok(vec![("Authorization".into(), "x".into())])
        }
        async fn rejected(&self) -> bool {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        }
    }

    /// The one retry loop every provider's requests go through: outages are retried up to
    /// `attempts`, a 401 is answered by authenticating again once, other refusals are final.
    #[tokio::test]
    async fn outages_are_retried_a_401_reauthenticates_once_and_refusals_are_final() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(path("/busy")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
        Mock::given(path("/expired")).respond_with(ResponseTemplate::new(401)).mount(&server).await;
        Mock::given(path("/forbidden")).respond_with(ResponseTemplate::new(403)).mount(&server).await;
        let transport = Transport::new(Duration::from_secs(5), None).expect("transport");
        let mut rest = Rest::new(transport, Box::new(Counting(Default::default())), throttle_429);
        rest.backoff = Backoff::quick();
        let url = |p: &str| url::Url::parse(&format!("{}{p}", server.uri())).expect("url");

        let busy = rest.send(&Call::get(url("/busy"))).await.expect("an answer");
        assert_eq!((busy.status, rest.requests()), (503, 3), "three attempts, then the 503 is the answer");
        let expired = rest.send(&Call::get(url("/expired"))).await.expect("an answer");
        assert_eq!((expired.status, rest.requests()), (401, 5), "one more attempt after authenticating again");
        let forbidden = rest.send(&Call::get(url("/forbidden"))).await.expect("an answer");
        assert_eq!((forbidden.status, rest.requests()), (403, 6), "a refusal is not retried");
    }

    /// A request to a host off the allowlist never leaves the process — whatever asks for it:
    /// a token endpoint, a paging link, a service account key's `token_uri`.
    #[tokio::test]
    async fn a_host_off_the_allowlist_gets_no_request() {
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(200)).mount(&server).await;
        let other = url::Url::parse(&server.uri()).expect("url");
        let listed = super::super::allowlist::HostAllowlist::only(&["acme.okta.com"]).expect("list");
        let transport = Transport::new(Duration::from_secs(5), None).expect("transport").allowing(listed);
        let call = Call::post(other.join("/oauth2/v1/token").expect("url")).form(vec![("secret".into(), "x".into())]);
        let refused = transport.send(&call, &[("Authorization".into(), "SSWS token".into())]).await;
        assert!(
            matches!(&refused, Err(Failure::Configuration(m)) if m.contains("not on the provider host allowlist")),
            "{refused:?}"
        );
        assert_eq!(server.received_requests().await.map(|r| r.len()), Some(0));
    }
}

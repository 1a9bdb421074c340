//! OAuth 2.0 access tokens for the providers that use them (Okta service apps, Entra ID,
//! Google service accounts, Keycloak): fetched on first use, cached, renewed shortly before
//! they expire and again when the provider answers 401. A source made
//! [`TokenSource::offering_dpop`] binds its tokens to a DPoP key when the authorization server
//! asks for it (RFC 9449).

use super::dpop::ProofKey;
use super::error::Failure;
use super::jwt::{self, SigningKey};
use super::rest::{Auth, Call, Transport, decode_credential};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of the JWTs keyward signs (Okta and Entra accept at most 1 h; 5 min is plenty for
/// one token request).
const ASSERTION_LIFETIME: u64 = 300;

/// How the token is obtained.
pub enum Grant {
    /// `client_credentials` with `client_secret` in the body (Entra, Keycloak).
    ClientSecret { client_id: String, client_secret: String, scope: Option<String> },
    /// `password` (Keycloak's `admin-cli`).
    Password { client_id: String, username: String, password: String },
    /// `client_credentials` with a signed JWT client assertion (Okta `private_key_jwt`, Entra
    /// certificate credentials).
    ClientAssertion {
        client_id: String,
        key: SigningKey,
        /// Extra JWT header fields: `kid` (Okta), `x5t`/`x5t#S256` (Entra).
        header: Vec<(&'static str, Value)>,
        scope: String,
    },
    /// The JWT bearer grant of a Google service account acting for `subject` (domain-wide
    /// delegation).
    ServiceAccount { client_email: String, key: SigningKey, key_id: Option<String>, subject: String, scope: String },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of Debug output.
        f.write_str(match self {
            Grant::ClientSecret { .. } => "Grant::ClientSecret",
            Grant::Password { .. } => "Grant::Password",
            Grant::ClientAssertion { .. } => "Grant::ClientAssertion",
            Grant::ServiceAccount { .. } => "Grant::ServiceAccount",
        })
    }
}

#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
    /// `token_type: DPoP`: sent as `Authorization: DPoP` with a proof on every request.
    bound: bool,
}

/// An access-token source and the [`Auth`] that sends it as `Authorization: Bearer` (or
/// `DPoP`).
pub struct TokenSource {
    token_url: url::Url,
    grant: Grant,
    cache: Mutex<Option<Cached>>,
    dpop: Option<Dpop>,
}

/// DPoP as the authorization server asks for it: off until it answers `invalid_dpop_proof`,
/// then a proof on every token request, with the last `DPoP-Nonce` it gave.
struct Dpop {
    key: ProofKey,
    state: std::sync::Mutex<DpopState>,
}

#[derive(Default)]
struct DpopState {
    required: bool,
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The standard OAuth error fields of a token endpoint's refusal (RFC 6749 §5.2), and nothing
/// else of its body.
fn oauth_error(response: &super::http::Response) -> String {
    match serde_json::from_slice::<TokenError>(&response.body) {
        Ok(e) if !e.error.is_empty() => {
            // `error` is a fixed code; the description is free text meant for the developer,
            // kept short.
            let code: String = e.error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
            let description: String = e.error_description.chars().take(200).collect();
            format!("{code}: {description}")
        }
        _ => format!("no OAuth error in the answer ({} bytes withheld)", response.body.len()),
    }
}

impl TokenSource {
    pub fn new(token_url: url::Url, grant: Grant) -> Self {
        TokenSource { token_url, grant, cache: Mutex::new(None), dpop: None }
    }

    /// Binds tokens to a DPoP key of its own when the authorization server requires it (an
    /// Okta service app with "Require DPoP"); others never see a proof.
    pub fn offering_dpop(mut self) -> Result<Self, Failure> {
        let key = ProofKey::generate().map_err(Failure::Configuration)?;
        self.dpop = Some(Dpop { key, state: std::sync::Mutex::new(DpopState::default()) });
        Ok(self)
    }

    /// The cached token, or a new one when it is missing or about to expire.
    pub async fn token(&self, transport: &Transport) -> Result<String, Failure> {
        self.cached(transport).await.map(|c| c.token)
    }

    async fn cached(&self, transport: &Transport) -> Result<Cached, Failure> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(cached.clone());
        }
        // Token requests are retried like any other on outages, but a rejection is final.
        let mut last = None;
        let mut attempt = 0u32;
        // A DPoP server's asks (a proof, then a nonce) are answered at most twice each.
        let mut dpop_rounds = 0;
        while attempt < 3 {
            // A fresh assertion each time: a `jti` must not be sent twice.
            let call = Call::post(self.token_url.clone()).form(self.form()?);
            let headers = self.dpop_header()?;
            let answer = transport.send(&call, &headers).await;
            if let Ok(response) = &answer {
                self.keep_nonce(response);
                if response.status == 400 && dpop_rounds < 4 && self.dpop_asked(response) {
                    dpop_rounds += 1;
                    continue;
                }
            }
            match answer {
                Ok(response) if (200..300).contains(&response.status) => {
                    let body: TokenResponse = decode_credential(&response, "token response")?;
                    let lifetime = Duration::from_secs(body.expires_in.unwrap_or(300));
                    // Renew a tenth of the lifetime early (6 s of Keycloak's 60 s master
                    // tokens, 6 min of an hour), so that no request races the expiry.
                    let renew_at = Instant::now() + lifetime - (lifetime / 10).min(Duration::from_secs(300));
                    let bound = body.token_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("DPoP"));
                    if bound && self.dpop.is_none() {
                        return Err(Failure::Malformed("token endpoint issued a DPoP-bound token unasked".into()));
                    }
                    let cached = Cached { token: body.access_token, renew_at, bound };
                    *cache = Some(cached.clone());
                    return Ok(cached);
                }
                Ok(response) if response.status >= 500 || response.status == 429 => {
                    // The body is not quoted: nothing of a token endpoint's answer leaves the
                    // process except the standard OAuth error fields.
                    last = Some(Failure::Status {
                        status: response.status,
                        code: None,
                        message: format!("token endpoint {}: {}", self.token_url.path(), oauth_error(&response)),
                    });
                }
                Ok(response) => {
                    return Err(Failure::Unauthorized(format!(
                        "token endpoint {} answered {}: {}",
                        self.token_url.path(),
                        response.status,
                        oauth_error(&response)
                    )));
                }
                Err(failure) if failure.is_transient() => last = Some(failure),
                Err(failure) => return Err(failure),
            }
            // Jittered: the clients of several providers behind one identity provider must not
            // come back in lockstep.
            let backoff = crate::retry::Exponential { base: Duration::from_millis(200), cap: Duration::from_secs(2) };
            tokio::time::sleep(backoff.delay(attempt)).await;
            attempt += 1;
        }
        Err(last.unwrap_or_else(|| Failure::Malformed("token endpoint gave no answer".into())))
    }

    fn dpop_state(&self) -> Option<std::sync::MutexGuard<'_, DpopState>> {
        self.dpop.as_ref().map(|d| d.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The `DPoP` header of a token request, once the server asked for proofs.
    fn dpop_header(&self) -> Result<Vec<(String, String)>, Failure> {
        let Some(dpop) = &self.dpop else { return Ok(Vec::new()) };
        let (required, nonce) = {
            let state = dpop.state.lock().unwrap_or_else(|p| p.into_inner());
            (state.required, state.nonce.clone())
        };
        if !required {
            return Ok(Vec::new());
        }
        let proof = dpop.key.proof("POST", &self.token_url, nonce.as_deref(), None).map_err(Failure::Configuration)?;
        Ok(vec![("DPoP".to_string(), proof)])
    }

    /// Remembers the server's latest `DPoP-Nonce`.
    fn keep_nonce(&self, response: &super::http::Response) {
        let nonce = response.headers.get("dpop-nonce").and_then(|v| v.to_str().ok());
        if let (Some(mut state), Some(nonce)) = (self.dpop_state(), nonce) {
            state.nonce = Some(nonce.to_string());
        }
    }

    /// Whether a 400 asks for DPoP (`invalid_dpop_proof` while none was sent) or for a nonce
    /// (`use_dpop_nonce`, kept by [`Self::keep_nonce`]): then the request is made again.
    fn dpop_asked(&self, response: &super::http::Response) -> bool {
        let Some(mut state) = self.dpop_state() else { return false };
        let code = serde_json::from_slice::<TokenError>(&response.body).map(|e| e.error).unwrap_or_default();
        match code.as_str() {
            "invalid_dpop_proof" if !state.required => {
                state.required = true;
                true
            }
            "use_dpop_nonce" => state.required && state.nonce.is_some(),
            _ => false,
        }
    }

    pub async fn forget(&self) {
        *self.cache.lock().await = None;
    }

    fn form(&self) -> Result<Vec<(String, String)>, Failure> {
        let pairs: Vec<(&str, String)> = match &self.grant {
            Grant::ClientSecret { client_id, client_secret, scope } => {
                let mut pairs = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.clone()),
                ];
                if let Some(scope) = scope {
                    pairs.push(("scope", scope.clone()));
                }
                pairs
            }
            Grant::Password { client_id, username, password } => vec![
                ("grant_type", "password".to_string()),
                ("client_id", client_id.clone()),
                ("username", username.clone()),
                ("password", password.clone()),
            ],
            Grant::ClientAssertion { client_id, key, header, scope } => {
                let now = jwt::now();
                let claims = json!({
                    "iss": client_id, "sub": client_id, "aud": self.token_url.as_str(),
                    "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME, "jti": jwt::jti(),
                });
                let assertion = key.sign(header, &claims).map_err(Failure::Configuration)?;
                vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", client_id.clone()),
                    ("scope", scope.clone()),
                    ("client_assertion_type", ASSERTION_TYPE.to_string()),
                    ("client_assertion", assertion),
                ]
            }
            Grant::ServiceAccount { client_email, key, key_id, subject, scope } => {
                let now = jwt::now();
                let claims = json!({
                    "iss": client_email, "sub": subject, "scope": scope, "aud": self.token_url.as_str(),
                    "iat": now, "exp": now + 3600,
                });
                let header: Vec<(&str, Value)> = key_id.iter().map(|k| ("kid", json!(k))).collect();
                let assertion = key.sign(&header, &claims).map_err(Failure::Configuration)?;
                vec![
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string()),
                    ("assertion", assertion),
                ]
            }
        };
        Ok(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

#[async_trait]
impl Auth for TokenSource {
    async fn authorize(&self, transport: &Transport, call: &Call) -> Result<Vec<(String, String)>, Failure> {
        let cached = self.cached(transport).await?;
        match &self.dpop {
            Some(dpop) if cached.bound => {
                let proof = dpop
                    .key
                    .proof(call.method.as_str(), &call.url, None, Some(&cached.token))
                    .map_err(Failure::Configuration)?;
                Ok(vec![("Authorization".to_string(), format!("DPoP {}", cached.token)), ("DPoP".to_string(), proof)])
            }
            _ => Ok(vec![("Authorization".to_string(), format!("Bearer {}", cached.token))]),
        }
    }

    async fn rejected(&self) -> bool {
        self.forget().await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A token endpoint's answer is never quoted, whatever its shape: a 2xx that does not
    /// decode may hold the access token.
    #[tokio::test]
    async fn token_responses_never_leave_the_process() {
        for (status, body) in [
            (200, "access_token=SECRETTOKEN&expires_in=3600".to_string()),
            (200, r#"{"access_token":"SECRETTOKEN","expires_in":"SECRETTOKEN"}"#.to_string()),
            (200, r#"{"accessToken":"SECRETTOKEN"}"#.to_string()),
            (400, "SECRETTOKEN".to_string()),
            (503, r#"{"access_token":"SECRETTOKEN"}"#.to_string()),
        ] {
            let server = MockServer::start().await;
            Mock::given(any())
                .respond_with(ResponseTemplate::new(status).set_body_string(body.clone()))
                .mount(&server)
                .await;
            let url = url::Url::parse(&format!("{}/token", server.uri())).expect("url");
            let grant = Grant::ClientSecret { client_id: "id".into(), client_secret: "cs".into(), scope: None };
            let source = TokenSource::new(url, grant);
            let transport = Transport::new(Duration::from_secs(5), None).expect("transport");
            let error = source.token(&transport).await.expect_err("not a token");
            assert!(!error.to_string().contains("SECRET"), "{status} {body}: {error}");
        }
    }

    #[tokio::test]
    async fn an_oauth_refusal_keeps_its_error_code() {
        let server = MockServer::start().await;
        let refusal = r#"{"error":"invalid_client","error_description":"bad secret"}"#;
        Mock::given(any()).respond_with(ResponseTemplate::new(401).set_body_string(refusal)).mount(&server).await;
        let url = url::Url::parse(&format!("{}/token", server.uri())).expect("url");
        let grant = Grant::ClientSecret { client_id: "id".into(), client_secret: "cs".into(), scope: None };
        let transport = Transport::new(Duration::from_secs(5), None).expect("transport");
        let error = TokenSource::new(url, grant).token(&transport).await.expect_err("refused");
        assert!(error.to_string().contains("invalid_client: bad secret"), "{error}");
    }
}

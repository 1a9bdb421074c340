//! An authenticated admin session: JWT from `POST /auth`, renewed before it expires and once
//! more when the server answers 401, over the request layer every
//! provider shares (`rest::Rest`: pace, retries, timeouts).

use super::types::{AuthValue, Envelope};
use crate::providers::error::Failure;
use crate::providers::http::Response;
use crate::providers::rest::{Auth, Body, Call, Rest, Transport};
use async_trait::async_trait;
use base64::Engine;
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// Renew this long before `exp`, so that a request never races the expiry.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

struct Jwt {
    token: String,
    expires: Option<SystemTime>,
}

impl Jwt {
    fn fresh(&self) -> bool {
        self.expires.is_none_or(|exp| SystemTime::now() + RENEW_MARGIN < exp)
    }
}

pub struct Session {
    base: url::Url,
    rest: Rest,
}

/// The admin login: `POST /auth` with the admin's name and password, and the JWT it returns,
/// sent raw in `PI-Authorization` (`Bearer <jwt>` fails with 4304).
struct AdminLogin {
    url: url::Url,
    username: String,
    password: String,
    jwt: Mutex<Option<Jwt>>,
}

impl Session {
    pub fn new(base: url::Url, username: String, password: String, transport: Transport) -> Self {
        let url = join(&base, &["auth"]);
        let login = AdminLogin { url, username, password, jwt: Mutex::new(None) };
        // privacyIDEA sends no rate-limit signal of its own; a 429 from a proxy in front of it
        // is waited out like any provider's.
        let rest = Rest::new(transport, Box::new(login), crate::providers::rest::throttle_429);
        Session { base, rest }
    }

    pub fn set_backoff(&mut self, backoff: crate::providers::rest::Backoff) {
        self.rest.backoff = backoff;
    }

    pub fn requests(&self) -> u64 {
        self.rest.requests()
    }

    /// Calls an admin endpoint and returns `result.value`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Result<T, Failure> {
        let mut url = join(&self.base, path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, quoted(v))));
        }
        let mut call = Call::new(method, url);
        if let Some(form) = form {
            call.body = Body::Form(form.iter().map(|(k, v)| (k.to_string(), quoted(v))).collect());
        }
        decode(self.rest.send(&call).await?)
    }
}

/// A parameter value as privacyIDEA must receive it to read it as written: it URL-decodes
/// every query and form parameter a second time (`check_unquote`, for any client but its own
/// plugins), so the user `p%2Fq` would be read as `p/q`, another user, and a password holding
/// `%41` as another password. A `%` sent as `%25` comes out of that second decoding as itself.
fn quoted(value: &str) -> String {
    value.replace('%', "%25")
}

/// `base` with `path` appended; segments are percent-encoded (a serial is data, not a path).
fn join(base: &url::Url, path: &[&str]) -> url::Url {
    crate::providers::rest::join(base, path)
}

impl AdminLogin {
    /// The session JWT, logging in when there is none or it is about to expire. A login that
    /// meets an outage is tried again (three times in all); a refused one is final.
    async fn token(&self, transport: &Transport) -> Result<String, Failure> {
        let mut guard = self.jwt.lock().await;
        if let Some(jwt) = guard.as_ref().filter(|j| j.fresh()) {
            return Ok(jwt.token.clone());
        }
        let form =
            vec![("username".to_string(), quoted(&self.username)), ("password".to_string(), quoted(&self.password))];
        let call = Call::post(self.url.clone()).form(form);
        let backoff = crate::retry::Exponential { base: Duration::from_millis(200), cap: Duration::from_secs(2) };
        let mut attempt = 0;
        let value: AuthValue = loop {
            let answer = match transport.send(&call, &[]).await {
                Ok(response) => decode_auth(response),
                Err(failure) => Err(failure),
            };
            match answer {
                Ok(value) => break value,
                Err(Failure::Status { status: 401 | 403, message, .. }) => return Err(Failure::Unauthorized(message)),
                Err(failure) if failure.is_transient() && attempt < 2 => {
                    tokio::time::sleep(backoff.delay(attempt)).await;
                    attempt += 1;
                }
                Err(failure) => return Err(failure),
            }
        };
        let expires = expiry(&value.token);
        let token = value.token.clone();
        *guard = Some(Jwt { token: value.token, expires });
        Ok(token)
    }
}

#[async_trait]
impl Auth for AdminLogin {
    async fn authorize(&self, transport: &Transport, _: &Call) -> Result<Vec<(String, String)>, Failure> {
        Ok(vec![("PI-Authorization".to_string(), self.token(transport).await?)])
    }

    /// Expired or revoked JWT (codes 4304/4305): log in again, once.
    async fn rejected(&self) -> bool {
        *self.jwt.lock().await = None;
        true
    }
}

/// `exp` of a JWT, read without verifying the signature (only the server verifies it; keyward
/// only needs to know when to renew).
fn expiry(jwt: &str) -> Option<SystemTime> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(UNIX_EPOCH + Duration::from_secs(exp))
}

/// Maps privacyIDEA's envelope and HTTP status onto a value or a [`Failure`].
fn decode<T: DeserializeOwned>(response: Response) -> Result<T, Failure> {
    decode_envelope(response, true)
}

/// [`decode`] for the answer of `POST /auth`, which carries the session JWT: a body that does
/// not decode is never quoted.
fn decode_auth<T: DeserializeOwned>(response: Response) -> Result<T, Failure> {
    decode_envelope(response, false)
}

fn decode_envelope<T: DeserializeOwned>(response: Response, quote_body: bool) -> Result<T, Failure> {
    let envelope: Result<Envelope<T>, _> = serde_json::from_slice(&response.body);
    let status = response.status;
    match envelope {
        Ok(envelope) if (200..300).contains(&status) && envelope.result.status => {
            envelope.result.value.ok_or_else(|| Failure::Malformed("result.value missing".into()))
        }
        Ok(envelope) => {
            let (code, message) =
                envelope.result.error.map(|e| (e.code, e.message)).unwrap_or((None, "no error message".into()));
            Err(match status {
                401 => Failure::Unauthorized(message),
                403 => Failure::Forbidden(message),
                429 => Failure::RateLimited { retry_after: response.retry_after() },
                // privacyIDEA answers some errors with 200 and status false.
                200..=299 => Failure::Status { status: 400, code, message },
                _ => Failure::Status { status, code, message },
            })
        }
        Err(_) if status == 429 => Err(Failure::RateLimited { retry_after: response.retry_after() }),
        Err(e) if !quote_body => {
            let message = crate::providers::rest::withheld("authentication response", &response, &e);
            Err(if status >= 400 {
                Failure::Status { status, code: None, message }
            } else {
                Failure::Malformed(message)
            })
        }
        Err(e) => {
            let snippet: String = String::from_utf8_lossy(&response.body).chars().take(200).collect();
            Err(match status {
                s if s >= 400 => Failure::Status { status: s, code: None, message: snippet },
                _ => Failure::Malformed(format!("{e}: {snippet}")),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response { status, headers: Default::default(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn decodes_value_and_errors() {
        let ok: i64 = decode(response(200, r#"{"result":{"status":true,"value":1}}"#)).unwrap();
        assert_eq!(ok, 1);
        let gone = decode::<i64>(response(
            404,
            r#"{"result":{"status":false,"error":{"code":601,"message":"No token found for serials: X"}}}"#,
        ));
        assert_eq!(
            gone,
            Err(Failure::Status { status: 404, code: Some(601), message: "No token found for serials: X".into() })
        );
        assert!(matches!(
            decode::<i64>(response(502, "<html>bad gateway</html>")),
            Err(Failure::Status { status: 502, .. })
        ));
        assert!(matches!(decode::<i64>(response(200, "not json")), Err(Failure::Malformed(_))));
        assert!(matches!(
            decode::<i64>(response(
                401,
                r#"{"result":{"status":false,"error":{"code":4031,"message":"Authentication failed."}}}"#
            )),
            Err(Failure::Unauthorized(_))
        ));
    }

    #[test]
    fn an_auth_answer_that_does_not_decode_is_never_quoted() {
        // A 2xx answer with the JWT in an unexpected shape, and an error page echoing it.
        for (status, body) in [
            (200, r#"{"result":{"status":true,"value":{"tokn":"eyJSECRETJWT"}}}"#),
            (200, r#"{"result":{"status":true,"value":{"token":["eyJSECRETJWT"]}}}"#),
            (200, "token=eyJSECRETJWT"),
            (500, "<html>eyJSECRETJWT</html>"),
        ] {
            let error = decode_auth::<AuthValue>(response(status, body)).expect_err("undecodable");
            assert!(!error.to_string().contains("SECRET"), "{status} {body}: {error}");
            assert!(error.to_string().contains("body withheld"), "{error}");
        }
    }

    #[test]
    fn a_percent_survives_privacyideas_second_decoding() {
        // What privacyIDEA's `unquote` makes of what arrives, for text without `%XX` escapes
        // other than the ones `quoted` writes.
        let unquote = |s: &str| s.replace("%25", "%");
        for value in ["p%2Fq", "100%", "%41%42", "a&b", "plain"] {
            assert_eq!(unquote(&quoted(value)), value);
        }
        assert_eq!(quoted("p%2Fq"), "p%252Fq");
    }

    #[test]
    fn reads_jwt_expiry() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":2000000000}"#);
        let jwt = format!("h.{payload}.s");
        assert_eq!(expiry(&jwt), Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)));
        assert_eq!(expiry("garbage"), None);
    }
}

//! privacyIDEA's JSON envelope and token object, as its API answers them.

use serde::Deserialize;

/// `{"result": {"status": bool, "value": …, "error": {…}}}`
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub result: EnvelopeResult<T>,
}

#[derive(Debug, Deserialize)]
pub struct EnvelopeResult<T> {
    pub status: bool,
    pub value: Option<T>,
    pub error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
pub struct ApiError {
    pub code: Option<i64>,
    #[serde(default)]
    pub message: String,
}

/// `POST /auth` value.
#[derive(Debug, Deserialize)]
pub struct AuthValue {
    pub token: String,
}

/// `GET /token/` value.
#[derive(Debug, Deserialize)]
pub struct TokenPage {
    pub tokens: Vec<Token>,
    pub next: Option<u64>,
}

/// The fields of a token keyward reads; privacyIDEA sends many more.
#[derive(Debug, Deserialize, Clone)]
pub struct Token {
    pub serial: String,
    pub tokentype: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub user_realm: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub resolver: String,
}

fn yes() -> bool {
    true
}

/// `GET /audit/` value (only what orphan attribution needs).
#[derive(Debug, Deserialize)]
pub struct AuditPage {
    #[serde(default)]
    pub auditdata: Vec<AuditEntry>,
    #[serde(default)]
    pub next: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct AuditEntry {
    /// The entry's id, increasing with time.
    #[serde(default)]
    pub number: u64,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub realm: String,
    #[serde(default)]
    pub resolver: String,
}

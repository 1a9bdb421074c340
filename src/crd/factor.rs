//! Normalized factor kinds: each provider maps its own enrolment types onto these.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A normalized second-factor kind: `totp`, `hotp`, `webauthn`, `push`, `sms`, `email`, or
/// another provider type by its own lower-case name (e.g. `yubikey`, `paper`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(transparent)]
pub struct FactorKind(
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"), length(min = 1, max = 63))] pub String,
);

impl FactorKind {
    pub fn new(kind: &str) -> Self {
        FactorKind(kind.to_ascii_lowercase())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether the name is a well-formed kind (lower-case letters, digits, `-`, `_`).
    pub fn is_well_formed(&self) -> bool {
        let s = self.0.as_bytes();
        !s.is_empty()
            && s.len() <= 63
            && (s[0].is_ascii_lowercase() || s[0].is_ascii_digit())
            && s.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
    }
}

impl fmt::Display for FactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for FactorKind {
    fn from(s: &str) -> Self {
        FactorKind::new(s)
    }
}
